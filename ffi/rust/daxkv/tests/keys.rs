//! The key cursor, slot locations, device layouts and the slots_leased counter.

mod common;

use common::*;
use daxkv::{DeviceState, ErrorKind, KeyInfo, Store};
use std::collections::BTreeMap;
use std::path::Path;

fn put_meta(s: &Store, key: &[u8], value: &[u8], meta: &[u8]) {
    let mut r = s.reserve(key, value.len()).unwrap().expect("fresh key");
    r.data_mut().copy_from_slice(value);
    r.set_meta(meta).unwrap();
    r.commit().unwrap();
}

fn by_key(s: &Store, device: Option<&Path>) -> BTreeMap<Vec<u8>, KeyInfo> {
    s.keys(device).unwrap().map(|k| k.unwrap()).map(|k| (k.key.clone(), k)).collect()
}

#[test]
fn keys_lists_committed_entries_with_metadata_and_sizes() {
    let s = open_mem(&[]);
    assert_eq!(s.keys(None).unwrap().count(), 0, "an empty store has no keys");
    s.put(b"plain", b"12345", false).unwrap();
    put_meta(&s, b"with-meta", b"abc", b"the meta");
    put_meta(&s, b"gone", b"x", b"m");
    assert!(s.remove(b"gone", false).unwrap());
    // A reservation in flight is not committed: not listed.
    let _inflight = s.reserve(b"inflight", 10).unwrap().unwrap();
    s.pin(b"plain").unwrap();
    let lease = s.lease(b"with-meta").unwrap();

    let keys = by_key(&s, None);
    assert_eq!(keys.keys().map(|k| k.as_slice()).collect::<Vec<_>>(), vec![&b"plain"[..], b"with-meta"]);
    let plain = &keys[&b"plain"[..]];
    assert_eq!((plain.value_len, plain.meta.as_slice(), plain.pins, plain.leases), (5, &b""[..], 1, 0));
    let wm = &keys[&b"with-meta"[..]];
    assert_eq!((wm.value_len, wm.meta.as_slice(), wm.pins, wm.leases), (3, &b"the meta"[..], 0, 1));
    assert_eq!(wm.slot, lease.slot().unwrap().slot);
    assert!(wm.seq > plain.seq, "the later commit has the larger sequence");

    // A replaced key is reported once, with its new size.
    drop(lease);
    s.put(b"plain", b"1234567", true).unwrap();
    let keys = by_key(&s, None);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[&b"plain"[..]].value_len, 7);
}

#[test]
fn keys_of_one_device() {
    let d = TempDir::new("keys-dev");
    let (a, b) = (d.join("a"), d.join("b"));
    let s = open_files(&[&a, &b], 8 * MIB, &[]);
    for i in 0..8 {
        s.put(format!("k{i}").as_bytes(), &vec![i as u8; 100 + i], false).unwrap();
    }
    let all = by_key(&s, None);
    let on_a = by_key(&s, Some(&a));
    let on_b = by_key(&s, Some(&b));
    assert_eq!(all.len(), 8);
    assert!(!on_a.is_empty() && !on_b.is_empty(), "new entries go to the least used device");
    assert_eq!(on_a.len() + on_b.len(), 8);
    let (ida, idb) = (s.describe_device(&a).unwrap().device_id, s.describe_device(&b).unwrap().device_id);
    assert_ne!(ida, idb);
    for (k, info) in &on_a {
        assert_eq!(info.device_id, ida);
        assert_eq!(&all[k], info);
        assert!(!on_b.contains_key(k));
    }
    for info in on_b.values() {
        assert_eq!(info.device_id, idb);
    }
}

#[test]
fn keys_of_an_unknown_device_is_not_found() {
    let d = TempDir::new("keys-unknown");
    let s = open_files(&[&d.join("a")], 8 * MIB, &[]);
    let e = s.keys(Some(&d.join("nope"))).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(s.keys(Some(Path::new(""))).err().unwrap().kind(), ErrorKind::InvalidArgument);
    assert_eq!(s.keys(Some(Path::new("a\0b"))).err().unwrap().kind(), ErrorKind::InvalidArgument);
    assert_eq!(s.describe_device(d.join("nope")).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(s.describe_device("").unwrap_err().kind(), ErrorKind::InvalidArgument);
}

/// The header documents -ESHUTDOWN from daxkv_cursor_open; the library at
/// hand reports it from the first step instead. Either way the walk yields
/// nothing but the shutdown error.
fn assert_walk_shut_down(r: daxkv::Result<daxkv::Keys>) {
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Shutdown, "{e}"),
        Ok(k) => {
            let v: Vec<_> = k.collect();
            assert_eq!(v.len(), 1, "{v:?}");
            assert_eq!(v[0].as_ref().unwrap_err().kind(), ErrorKind::Shutdown);
        }
    }
}

#[test]
fn cursor_after_shutdown_or_close_reports_shutdown() {
    let s = open_mem(&[]);
    for i in 0..4 {
        s.put(format!("k{i}").as_bytes(), b"v", false).unwrap();
    }
    let mut keys = s.keys(None).unwrap();
    let mut partial = s.keys(None).unwrap();
    assert!(partial.next().unwrap().is_ok());
    drop(s); // closes the store; the cursors keep its memory alive
    let e = keys.next().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Shutdown, "{e}");
    assert!(keys.next().is_none(), "fused after an error");
    // A cursor in the middle of a walk may still hand out what it copied,
    // then fails the same way.
    let rest: Vec<_> = partial.by_ref().collect();
    assert_eq!(rest.last().unwrap().as_ref().unwrap_err().kind(), ErrorKind::Shutdown);
    assert!(partial.next().is_none());

    let s = open_mem(&[]);
    s.shutdown().unwrap();
    assert_walk_shut_down(s.keys(None));
    assert_walk_shut_down(s.keys(Some(Path::new("mem:"))));
    assert_eq!(s.describe_device("mem:").unwrap_err().kind(), ErrorKind::Shutdown);
}

#[test]
fn keys_iterator_moves_to_another_thread() {
    let s = open_mem(&[]);
    s.put(b"k", b"v", false).unwrap();
    let keys = s.keys(None).unwrap();
    let got = std::thread::spawn(move || keys.map(|k| k.unwrap().key).collect::<Vec<_>>()).join().unwrap();
    assert_eq!(got, vec![b"k".to_vec()]);
}

#[test]
fn lease_and_reservation_slots_point_at_their_bytes() {
    let d = TempDir::new("slots");
    let path = d.join("arena");
    let s = open_files(&[&path], 8 * MIB, &[]);
    let layout = s.describe_device(&path).unwrap();
    s.put(b"a", b"first", false).unwrap();
    s.put(b"b", b"second", false).unwrap();
    for k in [&b"a"[..], b"b"] {
        let l = s.lease(k).unwrap();
        let slot = l.slot().unwrap();
        assert_eq!(slot.addr() as *const u8, l.as_ptr());
        assert_eq!(slot.payload_base, layout.payload_base);
        assert_eq!(slot.offset, slot.slot * layout.slot_bytes);
        assert_eq!(slot.device_id, layout.device_id);
        assert_eq!(unsafe { std::slice::from_raw_parts(slot.addr(), l.len()) }, &l[..]);
    }
    let mut r = s.reserve(b"c", 4).unwrap().unwrap();
    let slot = r.slot().unwrap();
    assert_eq!(slot.addr(), r.as_mut_ptr());
    r.data_mut().copy_from_slice(b"in p");
    r.commit().unwrap();
    let l = s.lease(b"c").unwrap();
    let again = l.slot().unwrap();
    assert_eq!((again.slot, again.generation), (slot.slot, slot.generation));
    assert_eq!(&l[..], b"in p");

    // The slot keeps its generation until it is handed out again.
    drop(l);
    assert!(s.remove(b"c", false).unwrap());
    let mut seen = Vec::new();
    for i in 0..6 {
        let k = format!("n{i}");
        s.put(k.as_bytes(), b"x", false).unwrap();
        let info = s.lease(k.as_bytes()).unwrap().slot().unwrap();
        seen.push((info.slot, info.generation));
    }
    if let Some(&(_, g)) = seen.iter().find(|(sl, _)| *sl == slot.slot) {
        assert_ne!(g, slot.generation, "a reused slot has a new generation");
    }
}

#[test]
fn device_layout_fields() {
    let d = TempDir::new("layout");
    let path = d.join("arena");
    let s = open_files(&[&path], 8 * MIB, &[("grow_limit", "16MiB")]);
    let l = s.describe_device(&path).unwrap();
    assert_eq!(l.state, DeviceState::Active);
    assert_eq!(l.device_index, 0);
    assert_eq!(l.slot_bytes, MIB);
    assert!(l.usable_slots >= 1 && l.usable_slots <= 8, "{l:?}");
    assert!(l.layout_slots > l.usable_slots, "grow_limit lays out room to grow: {l:?}");
    assert_eq!(l.used_end, 0, "nothing stored yet");
    assert!(l.data_offset > 0 && l.data_offset < l.arena_bytes, "{l:?}");
    assert!(l.arena_bytes >= l.data_offset + l.layout_slots * l.slot_bytes, "{l:?}");
    assert!(!l.payload_base.is_null());
    assert_eq!(s.stats().unwrap().slots_total, l.usable_slots);

    s.put(b"k", b"v", false).unwrap();
    let l2 = s.describe_device(&path).unwrap();
    let lease = s.lease(b"k").unwrap();
    let slot = lease.slot().unwrap().slot;
    assert_eq!(l2.used_end, slot + 1);
    assert_eq!(l2.payload_base.wrapping_add((slot * l2.slot_bytes) as usize) as *const u8, lease.as_ptr());
}

#[test]
fn stats_count_leased_slots() {
    let s = open_mem(&[]);
    assert_eq!(s.stats().unwrap().slots_leased, 0);
    s.put(b"a", b"1", false).unwrap();
    s.put(b"b", b"2", false).unwrap();
    let la = s.lease(b"a").unwrap();
    let la2 = s.lease(b"a").unwrap();
    assert_eq!(s.stats().unwrap().slots_leased, 1, "two leases of one slot count once");
    let lb = s.lease(b"b").unwrap();
    assert_eq!(s.stats().unwrap().slots_leased, 2);
    // A removed entry's slot stays leased until the lease goes.
    assert!(s.remove(b"b", false).unwrap());
    assert_eq!(s.stats().unwrap().slots_leased, 2);
    drop(lb);
    assert_eq!(s.stats().unwrap().slots_leased, 1);
    drop((la, la2));
    assert_eq!(s.stats().unwrap().slots_leased, 0);
}
