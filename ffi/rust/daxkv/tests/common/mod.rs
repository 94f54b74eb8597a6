//! Helpers shared by the integration tests.
#![allow(dead_code)]

use daxkv::{Config, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const MIB: u64 = 1 << 20;

/// A directory removed on drop (std has no temporary-directory helper).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "daxkv-rs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Names of the entries in the directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store of 1 MiB slots on the given file devices (`bytes` each).
pub fn open_files(paths: &[&Path], bytes: u64, extra: &[(&str, &str)]) -> Store {
    let mut cfg = Config::new().unwrap();
    cfg.set("slot_bytes", "1MiB").unwrap();
    for (k, v) in extra {
        cfg.set(k, v).unwrap();
    }
    for p in paths {
        cfg.add_device(p.to_str().unwrap(), bytes).unwrap();
    }
    Store::open(&cfg).unwrap()
}

/// A store of 1 MiB slots on anonymous memory.
pub fn open_mem(extra: &[(&str, &str)]) -> Store {
    let mut cfg = Config::new().unwrap();
    cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 24 * MIB).unwrap();
    for (k, v) in extra {
        cfg.set(k, v).unwrap();
    }
    Store::open(&cfg).unwrap()
}
