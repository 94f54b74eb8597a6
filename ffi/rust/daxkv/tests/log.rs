//! The process-wide log callback. One test function: the logger is global,
//! and tests of one binary run in parallel.

mod common;

use common::*;
use daxkv::LogLevel;
use std::sync::{Arc, Mutex};

#[test]
fn log_callback() {
    let seen: Arc<Mutex<Vec<(LogLevel, String)>>> = Arc::default();
    let sink = Arc::clone(&seen);
    daxkv::set_log_fn(LogLevel::Info, move |level, msg| sink.lock().unwrap().push((level, msg.to_string())));
    drop(open_mem(&[]));
    {
        let v = seen.lock().unwrap();
        assert!(v.iter().any(|(l, m)| *l == LogLevel::Info && m.contains("opened store")), "{v:?}");
        assert!(v.iter().all(|(l, _)| *l <= LogLevel::Info), "above max_level: {v:?}");
    }

    // Messages from the library's own threads, and of hotplug.
    let d = TempDir::new("log");
    let s = open_files(&[&d.join("a")], 4 * MIB, &[("hotplug", "1")]);
    s.add_device(d.join("b"), 4 * MIB).unwrap();
    drop(s);
    assert!(seen.lock().unwrap().iter().any(|(_, m)| m.contains("added")));

    // A lower level filters.
    seen.lock().unwrap().clear();
    let sink = Arc::clone(&seen);
    daxkv::set_log_fn(LogLevel::Err, move |level, msg| sink.lock().unwrap().push((level, msg.to_string())));
    drop(open_mem(&[]));
    assert!(seen.lock().unwrap().is_empty());

    // A panicking logger must not unwind into C (which would abort).
    daxkv::set_log_fn(LogLevel::Debug, |_, _| panic!("a logger that panics"));
    let s = open_mem(&[]);
    s.put(b"k", b"v", false).unwrap();
    drop(s);

    // Bad input: a logger that panics with a payload whose drop panics
    // too. The payload is dropped after the first panic was caught, still
    // inside the extern "C" trampoline: that second panic aborted the
    // process.
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("a panic payload whose drop panics");
        }
    }
    daxkv::set_log_fn(LogLevel::Debug, |_, _| std::panic::panic_any(Bomb));
    let s = open_mem(&[]);
    s.put(b"k", b"v", false).unwrap();
    drop(s);

    // Off again: nothing arrives.
    let sink = Arc::clone(&seen);
    daxkv::set_log_fn(LogLevel::Debug, move |level, msg| sink.lock().unwrap().push((level, msg.to_string())));
    daxkv::clear_log_fn();
    drop(open_mem(&[]));
    assert!(seen.lock().unwrap().is_empty());
}
