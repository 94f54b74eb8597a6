//! stats_peek, status_peek and stats_prometheus_peek: a store opened here
//! publishes every 10 ms, and is read back by its device path as another
//! process would read it.
//!
//! One test function in its own binary: the library reads DAXKV_STATS_DIR
//! at every open, close and peek, so the variable is set once, before any
//! store exists, and no other thread of this process can be reading it
//! meanwhile.

mod common;

use common::*;
use daxkv::ErrorKind;
use std::time::{Duration, Instant};

/// Peeks until `done` holds for what the store published, for at most 10 s.
fn wait_published(path: &std::path::Path, done: impl Fn(&daxkv::Stats) -> bool) -> daxkv::Stats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = daxkv::stats_peek(path).unwrap();
        if done(&st) {
            return st;
        }
        assert!(Instant::now() < deadline, "the store did not publish within 10 s: {st:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn peek_a_running_store() {
    let d = TempDir::new("peek");
    let dir = d.join("stats");
    std::fs::create_dir(&dir).unwrap();
    std::env::set_var("DAXKV_STATS_DIR", &dir);

    let arena = d.join("arena");
    let s = open_files(&[&arena], 24 * MIB, &[("stats_interval", "10")]);
    let own = s.stats().unwrap();

    // Published at open already.
    let st = daxkv::stats_peek(&arena).unwrap();
    assert_eq!(st.struct_size as usize, std::mem::size_of::<daxkv::Stats>());
    assert_eq!((st.slots_total, st.slot_bytes, st.devices), (own.slots_total, 1 << 20, 1));

    for k in ["a", "b", "c"] {
        assert!(s.put(k.as_bytes(), b"value", false).unwrap());
    }
    let st = wait_published(&arena, |st| st.puts >= 3);
    assert_eq!((st.puts, st.entries), (3, 3));

    let status = daxkv::status_peek(&arena).unwrap();
    let publisher = &status[status.find("\"publisher\":{").expect("a publisher object")..];
    let publisher = &publisher[..publisher.find('}').unwrap()];
    assert!(publisher.contains(&format!("\"pid\":{},", std::process::id())), "{publisher}");
    assert!(publisher.contains("\"published_unix_ns\":"), "{publisher}");
    let id = publisher.split("\"store_id\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
    assert_eq!(id.len(), 36, "{publisher}");
    assert!(status.contains(&format!("\"path\":\"{}\"", arena.display())), "{status}");

    // The same exposition as the store's own, labelled with the same id.
    let text = daxkv::stats_prometheus_peek(&arena).unwrap();
    assert!(text.len() > 4096, "the text outgrows the first buffer: the retry is exercised");
    assert!(text.contains(&format!("daxkv_puts_total{{store=\"{id}\"}} 3\n")), "{text}");
    assert!(text.contains(&format!("daxkv_slots{{store=\"{id}\"}} {}\n", own.slots_total)), "{text}");
    let device = format!("daxkv_device_slots{{store=\"{id}\",device=\"{}\"}} ", arena.display());
    assert!(text.contains(&device), "{text}");
    assert!(s.stats_prometheus().unwrap().contains(&format!("daxkv_puts_total{{store=\"{id}\"}} 3\n")));

    // A path no store has open, a path that does not exist.
    let plain = d.join("plain");
    std::fs::write(&plain, [0u8; 4096]).unwrap();
    for p in [&plain, &d.join("missing")] {
        assert_eq!(daxkv::stats_peek(p).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(daxkv::status_peek(p).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(daxkv::stats_prometheus_peek(p).unwrap_err().kind(), ErrorKind::NotFound);
    }

    // Bad input: an empty path, "mem:" (no other process can name it), a NUL.
    for p in ["", "mem:", "a\0b"] {
        let e = daxkv::stats_peek(p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{p:?}: {e}");
        assert!(!e.message().is_empty());
        assert_eq!(daxkv::status_peek(p).unwrap_err().kind(), ErrorKind::InvalidArgument, "{p:?}");
        assert_eq!(daxkv::stats_prometheus_peek(p).unwrap_err().kind(), ErrorKind::InvalidArgument, "{p:?}");
    }

    // The page goes with the store.
    drop(s);
    assert_eq!(daxkv::stats_peek(&arena).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(daxkv::status_peek(&arena).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(daxkv::stats_prometheus_peek(&arena).unwrap_err().kind(), ErrorKind::NotFound);
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "a page was left behind");

    // stats_interval 0 publishes nothing.
    let s = open_files(&[&arena], 24 * MIB, &[("stats_interval", "0")]);
    assert_eq!(daxkv::stats_peek(&arena).unwrap_err().kind(), ErrorKind::NotFound);
    drop(s);
    std::env::remove_var("DAXKV_STATS_DIR");
}
