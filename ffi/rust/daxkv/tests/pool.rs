//! The device pool (hotplug), discovery, Prometheus text, and failed opens
//! that must leave no files behind.

mod common;

use common::*;
use daxkv::{Config, DaxMode, DeviceKind, DeviceState, ErrorKind, RemoveMode, ResizeMode, Store};
use std::time::Duration;

fn put_n(s: &Store, prefix: &str, n: usize) {
    for i in 0..n {
        assert!(s.put(format!("{prefix}{i}").as_bytes(), &[i as u8; 1000], false).unwrap());
    }
}

#[test]
fn add_migrate_away_and_remove() {
    let d = TempDir::new("pool");
    let (a, b) = (d.join("a"), d.join("b"));
    let s = open_files(&[&a], 8 * MIB, &[("hotplug", "1")]);
    put_n(&s, "k", 4);
    s.add_device(&b, 8 * MIB).unwrap();
    s.add_device(&b, 8 * MIB).unwrap(); // same path and size: nothing to do
    assert_eq!(s.add_device(&b, 4 * MIB).unwrap_err().kind(), ErrorKind::Busy);
    assert_eq!(s.describe_device(&b).unwrap().state, DeviceState::Active);
    let status = s.pool_status_json().unwrap();
    assert!(status.contains("\"num_devices\"") && status.contains(b.to_str().unwrap()), "{status}");

    let on_a = s.keys(Some(&a)).unwrap().count() as u64;
    assert_eq!(on_a, 4, "a was the only device");
    let r = s.remove_device(&a, RemoveMode::Migrate, false).unwrap();
    assert_eq!(r.state, DeviceState::Removed);
    assert_eq!(r.moved_keys, on_a);
    assert_eq!(r.moved_bytes, on_a * 1000);
    assert_eq!(r.deleted_keys, 0);
    for i in 0..4 {
        assert_eq!(s.get(format!("k{i}").as_bytes()).unwrap().unwrap(), vec![i as u8; 1000]);
    }
    assert_eq!(s.describe_device(&a).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(s.keys(Some(&a)).err().unwrap().kind(), ErrorKind::NotFound);
    assert_eq!(s.remove_device(&a, RemoveMode::Evict, false).unwrap_err().kind(), ErrorKind::NotFound);
    // The last device cannot migrate anywhere.
    assert_eq!(s.remove_device(&b, RemoveMode::Migrate, false).unwrap_err().kind(), ErrorKind::NoSpace);
    // Pinned entries block removal unless forced.
    s.pin(b"k0").unwrap();
    assert_eq!(s.remove_device(&b, RemoveMode::Evict, false).unwrap_err().kind(), ErrorKind::Busy);
    let r = s.remove_device(&b, RemoveMode::Evict, true).unwrap();
    assert_eq!(r.deleted_keys, 4);
    assert!(!s.contains(b"k0").unwrap());
    assert!(a.exists() && b.exists(), "removing a device keeps its file");
}

#[test]
fn forced_removal_of_a_device_this_thread_leases_from_is_deadlock() {
    // It would wait for the lease, which this thread holds while it waits.
    let d = TempDir::new("deadlock");
    let (a, b) = (d.join("a"), d.join("b"));
    let s = open_files(&[&a], 8 * MIB, &[("hotplug", "1")]);
    put_n(&s, "k", 2);
    s.add_device(&b, 8 * MIB).unwrap();
    let lease = s.lease(b"k0").unwrap(); // on a, the only device when it was put
    let e = s.remove_device(&a, RemoveMode::Migrate, true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Deadlock, "{e}");
    assert!(e.message().contains("lease"), "{e}");
    assert_eq!(s.describe_device(&a).unwrap().state, DeviceState::Active, "nothing changed");
    drop(lease);
    assert_eq!(s.remove_device(&a, RemoveMode::Migrate, true).unwrap().state, DeviceState::Removed);
    assert_eq!(s.get(b"k0").unwrap().unwrap(), vec![0u8; 1000]);
}

#[test]
fn resize_and_drain() {
    let d = TempDir::new("resize");
    let (a, b) = (d.join("a"), d.join("b"));
    let s = open_files(&[&a], 4 * MIB, &[("hotplug", "1"), ("grow_limit", "16MiB")]);
    let before = s.describe_device(&a).unwrap();
    let r = s.resize_device(&a, 12 * MIB, ResizeMode::Migrate, false).unwrap();
    assert!(r.new_size_bytes > r.old_size_bytes, "{r:?}");
    let after = s.describe_device(&a).unwrap();
    assert!(after.usable_slots > before.usable_slots);
    assert_eq!(after.payload_base, before.payload_base, "growing keeps every entry in place");
    assert_eq!(
        s.resize_device(&a, 64 * MIB, ResizeMode::Migrate, false).unwrap_err().kind(),
        ErrorKind::NoSpace,
        "beyond the layout"
    );
    put_n(&s, "k", after.usable_slots as usize);
    // Shrinking would drop keys: refused without force in evict mode, and
    // migrate has nowhere to go.
    let e = s.resize_device(&a, 2 * MIB, ResizeMode::Evict, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    let r = s.resize_device(&a, 3 * MIB, ResizeMode::Evict, true).unwrap();
    assert!(r.deleted_keys > 0 && r.new_size_bytes < r.old_size_bytes, "{r:?}");

    // Drain: b takes no new entries and empties as its entries go.
    s.add_device(&b, 8 * MIB).unwrap();
    put_n(&s, "on-b", 2); // the least used device: b
    let on_b = s.keys(Some(&b)).unwrap().count();
    assert!(on_b >= 1);
    let r = s.remove_device(&b, RemoveMode::Drain, false).unwrap();
    assert_eq!(r.state, DeviceState::Draining);
    assert_eq!(s.describe_device(&b).unwrap().state, DeviceState::Draining);
    let e = s.wait_drained(&b, Some(Duration::from_millis(20))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    for k in s.keys(Some(&b)).unwrap() {
        assert!(s.remove(&k.unwrap().key, false).unwrap());
    }
    s.wait_drained(&b, None).unwrap();
    assert_eq!(s.wait_drained(&a, Some(Duration::ZERO)).unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn pool_calls_need_hotplug_and_good_paths() {
    let d = TempDir::new("nohotplug");
    let s = open_files(&[&d.join("a")], 4 * MIB, &[]);
    assert_eq!(s.add_device(d.join("b"), 4 * MIB).unwrap_err().kind(), ErrorKind::PermissionDenied);
    assert!(!d.join("b").exists());
    assert_eq!(s.add_device("a\0b", 0).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(s.wait_drained("x\0", None).unwrap_err().kind(), ErrorKind::InvalidArgument);

    let s = open_files(&[&d.join("c")], 4 * MIB, &[("hotplug", "1")]);
    // A failed add removes the file it created.
    assert!(s.add_device(d.join("tiny"), 64 << 10).is_err());
    assert!(s.add_device(d.join("huge"), 1 << 60).is_err());
    assert_eq!(d.entries(), vec!["a", "c"]);
}

#[test]
fn failed_opens_leave_no_files() {
    let d = TempDir::new("failed-open");
    let try_open = |extra: &[(&str, &str)], devices: &[(&str, u64)]| {
        let mut cfg = Config::new().unwrap();
        for (k, v) in extra {
            cfg.set(k, v).unwrap();
        }
        for (name, bytes) in devices {
            cfg.add_device(d.join(name).to_str().unwrap(), *bytes).unwrap();
        }
        Store::open(&cfg).err().expect("the open must fail")
    };
    // A device too small for one slot, one too large for the file system,
    // and a good device next to a bad one.
    try_open(&[("slot_bytes", "4MiB")], &[("small", MIB)]);
    try_open(&[("slot_bytes", "1MiB")], &[("huge", 1 << 60)]);
    try_open(&[("slot_bytes", "1MiB")], &[("good", 4 * MIB), ("bad", 1 << 60)]);
    // No slot_bytes at all.
    try_open(&[], &[("noslot", 4 * MIB)]);
    let j = format!(r#"{{"device_path": "{}", "max_dax_size_gb": 1000000, "slot_bytes": 1048576}}"#,
        d.join("json").display());
    assert!(Store::open(&Config::from_json(&j).unwrap()).is_err());
    let j = format!(r#"{{"devices": [{{"device_path": "{}", "max_dax_size_gb": 0.004}},
        {{"device_path": "{}", "max_dax_size_gb": 1000000}}], "slot_bytes": 1048576}}"#,
        d.join("json-a").display(), d.join("json-b").display());
    assert!(Store::open(&Config::from_json(&j).unwrap()).is_err());
    assert_eq!(d.entries(), Vec::<String>::new(), "a failed open left files behind");

    // Files that were there before a failed open stay.
    std::fs::write(d.join("foreign"), vec![0x5a; 4 << 20]).unwrap();
    let e = try_open(&[("slot_bytes", "1MiB")], &[("foreign", 4 * MIB)]);
    assert_eq!(e.kind(), ErrorKind::Foreign, "{e}");
    assert_eq!(d.entries(), vec!["foreign"]);
    // And a successful open keeps its file, of course.
    drop(open_files(&[&d.join("ok")], 4 * MIB, &[]));
    assert_eq!(d.entries(), vec!["foreign", "ok"]);
}

#[test]
fn discovery() {
    for dev in daxkv::list_devices().unwrap() {
        assert_eq!(dev.kind, DeviceKind::DevDax);
        assert!(matches!(dev.mode, DaxMode::DevDax | DaxMode::SystemRam), "{dev:?}");
        assert!(dev.name.starts_with("dax"), "{dev:?}");
    }
    let m = daxkv::probe("mem:").unwrap();
    assert_eq!((m.kind, m.mode), (DeviceKind::Memory, DaxMode::None));
    let d = TempDir::new("probe");
    let f = d.join("arena");
    std::fs::write(&f, vec![0u8; 2 << 20]).unwrap();
    let p = daxkv::probe(&f).unwrap();
    assert_eq!((p.kind, p.size, p.path.as_path()), (DeviceKind::File, 2 << 20, f.as_path()));
    assert!(p.align > 0);
    assert_eq!(daxkv::probe(d.join("missing")).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(daxkv::probe("a\0b").unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn prometheus_text() {
    let s = open_mem(&[]);
    s.put(b"a", b"1", false).unwrap();
    s.put(b"b", b"2", false).unwrap();
    let _ = s.get(b"a").unwrap();
    let text = s.stats_prometheus().unwrap();
    assert!(text.contains("# TYPE daxkv_"), "{text}");
    let metric = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .unwrap_or_else(|| panic!("{name} not in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let st = s.stats().unwrap();
    assert_eq!(metric("daxkv_entries"), st.entries as f64);
    assert_eq!(metric("daxkv_puts_total"), st.puts as f64);
    assert_eq!(metric("daxkv_hits_total"), st.hits as f64);
    assert_eq!(metric("daxkv_leases_active"), 0.0);
    // Every sample is labelled with the store's id (the uuid of its first
    // arena), so that several stores never share a series.
    let id = text.split("store=\"").nth(1).and_then(|r| r.split('"').next()).expect("a store label");
    assert_eq!(id.len(), 36, "{id}");
    for l in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        assert!(l.contains(&format!("{{store=\"{id}\"")), "{l}");
    }
    assert!(text.contains(&format!("daxkv_device_slots{{store=\"{id}\",device=\"mem:\"}} ")), "{text}");
    // Counters stay readable after shutdown, for a last scrape.
    s.shutdown().unwrap();
    assert!(s.stats_prometheus().unwrap().contains(&format!("daxkv_puts_total{{store=\"{id}\"}} 2\n")));
}

/// A device whose path is not UTF-8: the pool calls take it (paths go to
/// the library byte for byte), so a store that grew onto it must also be
/// reopened with it, through the configuration.
#[test]
fn device_path_that_is_not_utf8() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let d = TempDir::new("nonutf8");
    let (a, b) = (d.join("a"), d.path().join(OsStr::from_bytes(b"b-\xff\xfe")));
    let s = open_files(&[&a], 8 * MIB, &[("hotplug", "1")]);
    s.add_device(&b, 8 * MIB).unwrap();
    s.remove_device(&a, RemoveMode::Migrate, false).unwrap();
    assert!(s.put(b"k", b"on the second device", false).unwrap());
    drop(s);
    let mut cfg = Config::new().unwrap();
    cfg.set("slot_bytes", "1MiB").unwrap().add_device(&b, 8 * MIB).unwrap();
    let s = Store::open(&cfg).unwrap();
    assert_eq!(s.get(b"k").unwrap().as_deref(), Some(&b"on the second device"[..]));
    assert_eq!(s.keys(Some(&b)).unwrap().count(), 1);
}
