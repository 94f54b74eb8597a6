//! The README's table of C calls lists every DAXKV_API function of the
//! header, and each one it says is offered is called by this crate.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn header() -> String {
    let p = std::env::var_os("DAXKV_HEADER").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../include/daxkv.h")
    });
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn api_functions(h: &str) -> Vec<String> {
    h.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let decl = &l[l.find("DAXKV_API")? + "DAXKV_API".len()..];
            let name = decl[..decl.find('(')?].rsplit([' ', '*']).next()?;
            Some(name.to_string())
        })
        .collect()
}

#[test]
fn readme_lists_every_c_function() {
    let readme = include_str!("../../README.md");
    assert!(readme.lines().nth(2).unwrap_or("").starts_with("```rust"), "the README starts with its example");
    // | `daxkv_x` | offered as | notes |
    let mut rows = BTreeMap::new();
    for l in readme.lines() {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        if cells.len() >= 4 && cells[1].starts_with("`daxkv_") {
            rows.insert(cells[1].trim_matches('`').to_string(), (cells[2].to_string(), cells[3].to_string()));
        }
    }
    let funcs = api_functions(&header());
    assert!(funcs.len() >= 60, "parsed only {} functions", funcs.len());
    // Every module of the crate, so that a new one needs no change here.
    let src: String = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some(std::ffi::OsStr::new("rs")))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for f in &funcs {
        let (offered, notes) = rows.get(f).unwrap_or_else(|| panic!("{f} is not in the README's table"));
        if offered == "—" || offered.is_empty() {
            assert!(!notes.is_empty(), "{f}: not offered, and the table does not say why");
        } else {
            assert!(src.contains(&format!("sys::{f}(")) || src.contains(&format!("sys::{f},"))
                || src.contains(&format!("sys::{f})")), "{f}: the README says offered, the crate never calls it");
        }
    }
    for f in rows.keys() {
        assert!(funcs.contains(f), "{f} is in the README's table but not in daxkv.h");
    }
}
