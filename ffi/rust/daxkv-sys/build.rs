//! Finds libdaxkv through `pkg-config` (std only: crates.io is not needed).
//!
//! PKG_CONFIG_PATH is honoured as pkg-config itself honours it, so pointing
//! it at `<builddir>/pkgconfig` picks up `libdaxkv-uninstalled.pc` and links
//! the build tree's library. DAXKV_NO_PKG_CONFIG=1 with DAXKV_LIB_DIR skips
//! pkg-config for systems without it.

use std::env;
use std::process::Command;

fn pkg_config(args: &[&str]) -> Result<String, String> {
    let tool = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = Command::new(&tool)
        .args(args)
        .arg("libdaxkv")
        .output()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{tool} {} libdaxkv failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    for v in ["PKG_CONFIG_PATH", "PKG_CONFIG", "PKG_CONFIG_LIBDIR", "DAXKV_NO_PKG_CONFIG", "DAXKV_LIB_DIR"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    if env::var_os("DAXKV_NO_PKG_CONFIG").is_some() {
        if let Ok(dir) = env::var("DAXKV_LIB_DIR") {
            println!("cargo:rustc-link-search=native={dir}");
        }
        println!("cargo:rustc-link-lib=dylib=daxkv");
        return;
    }

    let libs = match pkg_config(&["--libs"]) {
        Ok(s) => s,
        Err(e) => panic!(
            "{e}\nlibdaxkv was not found. Install it, or set PKG_CONFIG_PATH=<builddir>/pkgconfig \
             to use a build tree."
        ),
    };
    let mut linked = false;
    for tok in libs.split_whitespace() {
        if let Some(dir) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = tok.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
            linked |= lib == "daxkv";
        }
    }
    if !linked {
        println!("cargo:rustc-link-lib=dylib=daxkv");
    }
    // Header directories, for the declaration check in tests/header.rs and
    // for dependants (DEP_DAXKV_INCLUDE).
    let cflags = pkg_config(&["--cflags-only-I"]).unwrap_or_default();
    let dirs: Vec<&str> = cflags.split_whitespace().filter_map(|t| t.strip_prefix("-I")).collect();
    println!("cargo:rustc-env=DAXKV_INCLUDE_DIRS={}", dirs.join(":"));
    println!("cargo:include={}", dirs.join(":"));
}
