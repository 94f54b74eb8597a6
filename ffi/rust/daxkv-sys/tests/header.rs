//! Checks the hand-written declarations in src/lib.rs against daxkv.h:
//! every DAXKV_API function is declared with the same parameter count, and
//! struct layouts and constants match what the system C compiler sees.

use daxkv_sys::*;
use std::collections::BTreeMap;
use std::mem::size_of;
use std::path::PathBuf;
use std::process::Command;

fn include_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = option_env!("DAXKV_INCLUDE_DIRS")
        .unwrap_or("")
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    // The source tree, for builds against a library found without -I flags.
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../include"));
    dirs
}

fn header_path() -> PathBuf {
    if let Ok(p) = std::env::var("DAXKV_HEADER") {
        return PathBuf::from(p);
    }
    include_dirs()
        .into_iter()
        .map(|d| d.join("daxkv.h"))
        .find(|p| p.is_file())
        .expect("daxkv.h not found (set DAXKV_HEADER or PKG_CONFIG_PATH)")
}

fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(i) = rest.find("/*").into_iter().chain(rest.find("//")).min() {
        out.push_str(&rest[..i]);
        if rest[i..].starts_with("/*") {
            let end = rest[i..].find("*/").expect("unterminated comment") + i + 2;
            rest = &rest[end..];
        } else {
            let end = rest[i..].find('\n').map(|e| e + i).unwrap_or(rest.len());
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

fn count_params(params: &str) -> usize {
    // A trailing comma (multi-line Rust declarations) adds no parameter.
    let p = params.trim().trim_end_matches(',').trim();
    if p.is_empty() || p == "void" {
        return 0;
    }
    let mut depth = 0;
    let mut n = 1;
    for c in p.chars() {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' => depth -= 1,
            ',' if depth == 0 => n += 1,
            _ => {}
        }
    }
    n
}

/// name -> parameter count, from `DAXKV_API ... name(params);` in the header.
fn header_functions(h: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    // Preprocessor lines (the DAXKV_API definition itself) are not declarations.
    let h: String = h.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    for decl in h.split("DAXKV_API").skip(1) {
        let decl = &decl[..decl.find(';').expect("declaration without ';'")];
        let open = decl.find('(').expect("declaration without '('");
        let name = decl[..open]
            .trim()
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()
            .unwrap()
            .to_string();
        let close = decl.rfind(')').unwrap();
        out.insert(name, count_params(&decl[open + 1..close]));
    }
    out
}

/// name -> parameter count, from `pub fn name(params)` in src/lib.rs.
fn rust_functions(src: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for part in src.split("pub fn ").skip(1) {
        let open = part.find('(').unwrap();
        let name = part[..open].trim().to_string();
        let mut depth = 0;
        let mut close = open;
        for (i, c) in part[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.insert(name, count_params(&part[open + 1..close]));
    }
    out
}

#[test]
fn every_function_is_declared_with_the_same_arity() {
    let h = strip_comments(&std::fs::read_to_string(header_path()).unwrap());
    let want = header_functions(&h);
    let have = rust_functions(include_str!("../src/lib.rs"));
    assert!(want.len() >= 38, "parsed only {} functions from daxkv.h", want.len());
    let missing: Vec<_> = want.keys().filter(|k| !have.contains_key(*k)).collect();
    let extra: Vec<_> = have.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(missing.is_empty(), "declared in daxkv.h but not in daxkv-sys: {missing:?}");
    assert!(extra.is_empty(), "declared in daxkv-sys but not in daxkv.h: {extra:?}");
    for (name, n) in &want {
        assert_eq!(have[name], *n, "{name}: parameter count differs from daxkv.h");
    }
}

fn struct_fields(h: &str, tag: &str) -> Vec<String> {
    let start = h.find(&format!("struct {tag} {{")).unwrap_or_else(|| panic!("struct {tag} not in header"));
    let body = &h[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
    body.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.rsplit(|c: char| c.is_whitespace() || c == '*').next().unwrap())
        .map(|s| s.split('[').next().unwrap().to_string()) // char path[256] -> path
        .collect()
}

/// The struct tags the header defines (`struct daxkv_x {`, typedef'd or not).
fn header_structs(h: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = h;
    while let Some(i) = rest.find("struct ") {
        rest = &rest[i + 7..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if rest[name.len()..].trim_start().starts_with('{') && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The object-like `#define DAXKV_*` macros with a value (the include guard
/// and the visibility macro excluded).
fn header_constants(h: &str) -> Vec<String> {
    h.lines()
        .filter_map(|l| l.trim().strip_prefix("#define "))
        .filter_map(|d| {
            let mut it = d.split_whitespace();
            let name = it.next()?;
            it.next()?; // a value
            (name.starts_with("DAXKV_") && !name.contains('(') && name != "DAXKV_API").then(|| name.to_string())
        })
        .collect()
}

// The C types src/lib.rs spells out (core::ffi's are stable only from Rust
// 1.64) are std's: these only compile if they are the same types.
const _: unsafe extern "C" fn() -> *const std::os::raw::c_char = daxkv_version_string;
const _: unsafe extern "C" fn() -> std::os::raw::c_uint = daxkv_version_number;
const _: unsafe extern "C" fn(std::os::raw::c_int) -> *const std::os::raw::c_char = daxkv_strerror;

/// A field's offset, as std::mem::offset_of! (Rust 1.77) gives it: the
/// distance from a struct's address to its field's, with no reference to
/// the uninitialised value made.
macro_rules! offset_of {
    ($t:ty, $f:ident) => {{
        let v = std::mem::MaybeUninit::<$t>::uninit();
        let base = v.as_ptr();
        // SAFETY: addr_of! only computes the address of a field of the
        // allocation behind `base`; nothing is read.
        let field = unsafe { std::ptr::addr_of!((*base).$f) };
        field as usize - base as usize
    }};
}

fn size_of_field<T, F>(_: impl Fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// What the Rust declaration of one struct says: its size, and each field's
/// name, offset and size in declaration order.
struct RustLayout {
    tag: &'static str,
    size: usize,
    fields: Vec<(&'static str, usize, usize)>,
}

macro_rules! layout {
    ($t:ident; $($f:ident),* $(,)?) => {
        RustLayout {
            tag: stringify!($t),
            size: size_of::<$t>(),
            fields: vec![$((stringify!($f), offset_of!($t, $f), size_of_field(|s: &$t| &s.$f))),*],
        }
    };
}

fn rust_layouts() -> Vec<RustLayout> {
    vec![
        layout!(daxkv_item; key, key_len, data, len, meta, meta_len, status),
        layout!(daxkv_completion; tag, op, result),
        layout!(daxkv_histogram; count, sum, bucket),
        layout!(daxkv_stats; struct_size, devices, slot_bytes, meta_bytes, capacity_bytes,
            slots_total, slots_used, slots_free, entries, entries_pinned, slots_inflight, slots_pending_free,
            leases_active, hits, misses, puts, puts_existed, puts_failed, removes, evictions, bytes_written,
            bytes_read, verify_failures, recovered_entries, recovery_dropped_torn, recovery_dropped_corrupt,
            recovery_dropped_stale, recovery_usec, copy_faults, batches, async_submitted, async_completed,
            async_cancelled, put_latency, get_latency, batch_latency, item_bytes, slots_leased),
        layout!(daxkv_device_info; struct_size, kind, mode, numa_node, target_node, reserved0,
            size, align, path, name),
        layout!(daxkv_hotplug_result; struct_size, state, device_index, reserved0, moved_keys,
            moved_bytes, deleted_keys, source_slots_freed, old_size_bytes, new_size_bytes, evicted_keys),
        layout!(daxkv_slot_info; struct_size, device_id, slot, generation, offset, payload_base),
        layout!(daxkv_lease_item; key, key_len, lease, data, size, meta, meta_len, slot, generation, offset,
            device_id, status),
        layout!(daxkv_device_layout; struct_size, device_id, state, device_index, slot_bytes, layout_slots,
            usable_slots, used_end, arena_bytes, data_offset, payload_base),
        layout!(daxkv_key_info; struct_size, device_id, key, key_len, meta, meta_len, value_len, slot, seq,
            pins, leases),
    ]
}

fn constants() -> Vec<(&'static str, i64)> {
    vec![
        ("DAXKV_KEY_MAX", DAXKV_KEY_MAX as i64),
        ("DAXKV_EXISTED", DAXKV_EXISTED as i64),
        ("DAXKV_E_BASE", DAXKV_E_BASE as i64),
        ("DAXKV_E_CORRUPT", DAXKV_E_CORRUPT as i64),
        ("DAXKV_E_FOREIGN", DAXKV_E_FOREIGN as i64),
        ("DAXKV_REPLACE", DAXKV_REPLACE as i64),
        ("DAXKV_FORCE", DAXKV_FORCE as i64),
        ("DAXKV_PREFIX", DAXKV_PREFIX as i64),
        ("DAXKV_PIN", DAXKV_PIN as i64),
        ("DAXKV_CUDA_MAPPED", DAXKV_CUDA_MAPPED as i64),
        ("DAXKV_OP_PUT", DAXKV_OP_PUT as i64),
        ("DAXKV_OP_GET", DAXKV_OP_GET as i64),
        ("DAXKV_OP_CONTAINS", DAXKV_OP_CONTAINS as i64),
        ("DAXKV_OP_REMOVE", DAXKV_OP_REMOVE as i64),
        ("DAXKV_HIST_BUCKETS", DAXKV_HIST_BUCKETS as i64),
        ("DAXKV_HIST_NS_UNIT", DAXKV_HIST_NS_UNIT as i64),
        ("DAXKV_HIST_BYTES_UNIT", DAXKV_HIST_BYTES_UNIT as i64),
        ("DAXKV_KIND_DEVDAX", DAXKV_KIND_DEVDAX as i64),
        ("DAXKV_KIND_FILE", DAXKV_KIND_FILE as i64),
        ("DAXKV_KIND_MEMORY", DAXKV_KIND_MEMORY as i64),
        ("DAXKV_MODE_NONE", DAXKV_MODE_NONE as i64),
        ("DAXKV_MODE_DEVDAX", DAXKV_MODE_DEVDAX as i64),
        ("DAXKV_MODE_SYSTEM_RAM", DAXKV_MODE_SYSTEM_RAM as i64),
        ("DAXKV_LOG_ERR", DAXKV_LOG_ERR as i64),
        ("DAXKV_LOG_WARNING", DAXKV_LOG_WARNING as i64),
        ("DAXKV_LOG_INFO", DAXKV_LOG_INFO as i64),
        ("DAXKV_LOG_DEBUG", DAXKV_LOG_DEBUG as i64),
        ("DAXKV_DEV_ACTIVE", DAXKV_DEV_ACTIVE as i64),
        ("DAXKV_DEV_DRAINING", DAXKV_DEV_DRAINING as i64),
        ("DAXKV_DEV_MIGRATING", DAXKV_DEV_MIGRATING as i64),
        ("DAXKV_DEV_RESIZING", DAXKV_DEV_RESIZING as i64),
        ("DAXKV_DEV_REMOVING", DAXKV_DEV_REMOVING as i64),
        ("DAXKV_DEV_REMOVED", DAXKV_DEV_REMOVED as i64),
        ("DAXKV_DEV_MISSING", DAXKV_DEV_MISSING as i64),
        ("DAXKV_MIGRATE", DAXKV_MIGRATE as i64),
        ("DAXKV_EVICT", DAXKV_EVICT as i64),
        ("DAXKV_DRAIN", DAXKV_DRAIN as i64),
    ]
}

#[test]
fn every_struct_and_constant_of_the_header_is_declared() {
    let h = strip_comments(&std::fs::read_to_string(header_path()).unwrap());
    let declared: Vec<&str> = rust_layouts().iter().map(|l| l.tag).collect();
    let structs = header_structs(&h);
    assert!(structs.len() >= 9, "parsed only {} structs from daxkv.h", structs.len());
    let missing: Vec<_> = structs.iter().filter(|t| !declared.contains(&t.as_str())).collect();
    assert!(missing.is_empty(), "structs of daxkv.h without a layout check: {missing:?}");
    let have: Vec<&str> = constants().iter().map(|c| c.0).collect();
    let consts = header_constants(&h);
    assert!(consts.len() >= 37, "parsed only {} constants from daxkv.h", consts.len());
    let missing: Vec<_> = consts.iter().filter(|c| !have.contains(&c.as_str())).collect();
    assert!(missing.is_empty(), "constants of daxkv.h missing in daxkv-sys: {missing:?}");
}

#[test]
fn layouts_and_constants_match_the_c_compiler() {
    let header = header_path();
    let h = strip_comments(&std::fs::read_to_string(&header).unwrap());
    let layouts = rust_layouts();
    for l in &layouts {
        let names: Vec<&str> = l.fields.iter().map(|f| f.0).collect();
        assert_eq!(names, struct_fields(&h, l.tag), "{} field order", l.tag);
    }

    // A C program prints what the compiler sees; the Rust side must agree.
    let mut c = String::from("#include <stdio.h>\n#include <stddef.h>\n#include \"daxkv.h\"\nint main(void) {\n");
    for l in &layouts {
        let t = l.tag;
        c += &format!("printf(\"sizeof {t} %zu\\n\", sizeof(struct {t}));\n");
        for (f, _, _) in &l.fields {
            c += &format!("printf(\"offset {t}.{f} %zu\\n\", offsetof(struct {t}, {f}));\n");
            c += &format!("printf(\"size {t}.{f} %zu\\n\", sizeof(((struct {t} *)0)->{f}));\n");
        }
    }
    let consts = constants();
    for (name, _) in &consts {
        c += &format!("printf(\"const {name} %lld\\n\", (long long)({name}));\n");
    }
    c += "return 0;\n}\n";

    let dir = std::env::temp_dir().join(format!("daxkv-sys-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, c).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.arg("-std=c99").arg("-o").arg(&exe).arg(&src);
    cmd.arg(format!("-I{}", header.parent().unwrap().display()));
    for d in include_dirs() {
        cmd.arg(format!("-I{}", d.display()));
    }
    let st = cmd.status().unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    let out = st.success().then(|| Command::new(&exe).output().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.expect("compiling the layout probe failed");
    let text = String::from_utf8(out.stdout).unwrap();

    let mut c_vals = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.rsplitn(2, ' ');
        let v: i64 = it.next().unwrap().parse().unwrap();
        c_vals.insert(it.next().unwrap().to_string(), v);
    }
    for l in &layouts {
        let t = l.tag;
        assert_eq!(c_vals[&format!("sizeof {t}")] as usize, l.size, "sizeof {t}");
        for (f, off, size) in &l.fields {
            assert_eq!(c_vals[&format!("offset {t}.{f}")] as usize, *off, "{t}.{f} offset");
            assert_eq!(c_vals[&format!("size {t}.{f}")] as usize, *size, "{t}.{f} size");
        }
    }
    for (name, v) in &consts {
        assert_eq!(c_vals[&format!("const {name}")], *v, "{name}");
    }
}

#[test]
fn linked_library_reports_a_version() {
    // Also proves the link line from pkg-config resolves at run time.
    let n = unsafe { daxkv_version_number() };
    let s = unsafe { std::ffi::CStr::from_ptr(daxkv_version_string()) }.to_str().unwrap().to_string();
    assert_eq!(s, format!("{}.{}.{}", n / 10000, n / 100 % 100, n % 100));
}
