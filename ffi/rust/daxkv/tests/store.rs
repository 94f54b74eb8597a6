use daxkv::{Config, ErrorKind, Store};
use std::sync::Arc;

const MIB: u64 = 1 << 20;

fn open_with(extra: &[(&str, &str)]) -> Store {
    let mut cfg = Config::new().unwrap();
    cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 24 * MIB).unwrap();
    for (k, v) in extra {
        cfg.set(k, v).unwrap();
    }
    Store::open(&cfg).unwrap()
}

fn open() -> Store {
    open_with(&[])
}

#[test]
fn round_trip() {
    let s = open();
    assert!(s.put(b"k", b"hello", false).unwrap());
    assert!(!s.put(b"k", b"other", false).unwrap());
    assert_eq!(s.get(b"k").unwrap().as_deref(), Some(&b"hello"[..]));
    assert!(s.put(b"k", b"replaced", true).unwrap());
    let mut buf = [0u8; 16];
    assert_eq!(s.get_into(b"k", &mut buf).unwrap(), Some(8));
    assert_eq!(&buf[..8], b"replaced");
    assert_eq!(s.get_into(b"nope", &mut buf).unwrap(), None);
    assert_eq!(s.get(b"nope").unwrap(), None);
    assert_eq!(s.value_len(b"k").unwrap(), Some(8));
    assert!(s.contains(b"k").unwrap());
    assert!(s.remove(b"k", false).unwrap());
    assert!(!s.remove(b"k", false).unwrap());
}

#[test]
fn small_buffer_reports_buffer_too_small() {
    let s = open();
    s.put(b"k", &[7u8; 100], false).unwrap();
    let e = s.get_into(b"k", &mut [0u8; 10]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BufferTooSmall);
    assert_eq!(e.errno(), Some(105));
    assert!(!e.message().is_empty());
    assert_eq!(e.needed(), Some(100), "the length a destination needs");
    // Other errors carry no length.
    assert_eq!(s.get_into(b"", &mut [0u8; 10]).unwrap_err().needed(), None);
}

#[test]
fn pins_block_remove() {
    let s = open();
    s.put(b"k", b"v", false).unwrap();
    s.pin(b"k").unwrap();
    assert_eq!(s.remove(b"k", false).unwrap_err().kind(), ErrorKind::Busy);
    s.unpin(b"k").unwrap();
    assert!(s.unpin(b"k").is_err()); // never below zero
    assert!(s.remove(b"k", false).unwrap());
    assert_eq!(s.pin(b"k").unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn batches_with_holes_and_prefix() {
    let s = open();
    let keys: Vec<Vec<u8>> = (0..6).map(|i| format!("key-{i}").into_bytes()).collect();
    let kr: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let vals: Vec<Vec<u8>> = (0..6).map(|i| vec![i as u8; 10 + i]).collect();
    let stored: Vec<&[u8]> = vec![&vals[0], &vals[1], &vals[3]];
    let r = s.put_many(&[kr[0], kr[1], kr[3]], &stored, false).unwrap();
    assert!(r.iter().all(|x| *x.as_ref().unwrap()));

    let mut bufs: Vec<Vec<u8>> = vec![vec![0u8; 64]; 6];
    let mut dsts: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
    let got = s.get_many_into(&kr, &mut dsts, false).unwrap();
    let lens: Vec<Option<usize>> = got.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(lens, vec![Some(10), Some(11), None, Some(13), None, None]);
    assert_eq!(&bufs[3][..13], &vals[3][..]);

    let mut bufs2: Vec<Vec<u8>> = vec![vec![0u8; 64]; 6];
    let mut dsts2: Vec<&mut [u8]> = bufs2.iter_mut().map(|b| b.as_mut_slice()).collect();
    assert_eq!(s.get_many_into(&kr, &mut dsts2, true).unwrap().len(), 2);
    assert!(bufs2[3].iter().all(|&b| b == 0), "nothing copied past the prefix");

    assert_eq!(s.prefix_len(&kr, false).unwrap(), 2);
    let hits: Vec<bool> = s.contains_many(&kr, true).unwrap().into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(hits, vec![true, true, false, true, false, false]);
    let removed = s.remove_many(&kr, false).unwrap();
    assert_eq!(removed[0].as_ref().unwrap_err().kind(), ErrorKind::Busy);
    assert_eq!(removed[2].as_ref().unwrap(), &false);
    let unpinned = s.unpin_many(&kr).unwrap();
    assert!(unpinned[0].is_ok() && unpinned[1].is_ok() && unpinned[3].is_ok());
    assert!(unpinned[2].is_err());
    let removed = s.remove_many(&kr, false).unwrap();
    assert_eq!(removed.iter().filter(|r| matches!(r, Ok(true))).count(), 3);
}

#[test]
fn batch_item_errors_do_not_fail_the_batch() {
    let s = open();
    let big = vec![0u8; (MIB + 1) as usize];
    let r = s.put_many(&[b"a", b"big", b"c"], &[b"1", &big, b"3"], false).unwrap();
    assert!(r[0].is_ok() && r[2].is_ok());
    assert_eq!(r[1].as_ref().unwrap_err().kind(), ErrorKind::TooBig);
    assert!(s.put_many(&[b"a"], &[], false).is_err());
}

// A batch item's error said only the code's description ("invalid
// argument or configuration"), where the library had said why. Bad inputs:
// a 513-byte key and an empty key, alone and together in one batch.
#[test]
fn batch_item_errors_carry_the_librarys_message() {
    let s = open();
    let long = vec![b'x'; 513];
    let why = "key length 513 is not in 1..512";
    let r = s.put_many(&[b"a", &long], &[b"1", b"2"], false).unwrap();
    assert_eq!(r[1].as_ref().unwrap_err().message(), why);
    let mut buf = [0u8; 4];
    let r = s.get_many_into(&[&long], &mut [&mut buf[..]], false).unwrap();
    assert_eq!(r[0].as_ref().unwrap_err().message(), why);
    let r = s.contains_many(&[b"a", b""], true).unwrap();
    assert_eq!(r[1].as_ref().unwrap_err().message(), "key length 0 is not in 1..512");
    s.unpin_many(&[b"a"]).unwrap();
    assert_eq!(s.prefix_len(&[b"a", &long], true).unwrap_err().message(), why);
    let r = s.lease_many(&[b"a", &long], false).unwrap();
    assert_eq!(r[1].as_ref().err().unwrap().message(), why);
    drop(r);
    let r = s.remove_many(&[&long], false).unwrap();
    assert_eq!(r[0].as_ref().unwrap_err().message(), why);
    // Two items failing: the message is the last one's and names neither;
    // neither item is given it.
    let r = s.put_many(&[b"", &long], &[b"1", b"2"], false).unwrap();
    assert!(!r[0].as_ref().unwrap_err().message().contains("513"));
    // A miss after the failed item leaves its own message ("key not
    // found"), which the failed item was given.
    let r = s.remove_many(&[&long, b"nokey"], false).unwrap();
    assert_ne!(r[0].as_ref().unwrap_err().message(), "key not found");
}

#[test]
fn lease_many_gives_what_single_leases_give() {
    let s = open();
    s.put(b"a", b"first", false).unwrap();
    s.put(b"b", b"second", false).unwrap();
    let keys: [&[u8]; 4] = [b"a", b"missing", b"b", b""];
    let r = s.lease_many(&keys, false).unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(&r[0].as_ref().unwrap().as_ref().unwrap()[..], b"first");
    assert!(r[1].as_ref().unwrap().is_none());
    assert_eq!(&r[2].as_ref().unwrap().as_ref().unwrap()[..], b"second");
    match &r[3] {
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidArgument), // key length 0
        Ok(_) => panic!("an empty key was leased"),
    }
    assert_eq!(s.stats().unwrap().leases_active, 2);
    drop(r);
    assert_eq!(s.stats().unwrap().leases_active, 0);
    // prefix: the run before the first miss.
    let p = s.lease_many(&keys, true).unwrap();
    assert_eq!(p.len(), 1);
    drop(p);
    assert!(s.lease_many(&[], false).unwrap().is_empty());
    assert_eq!(s.stats().unwrap().leases_active, 0);
}

/// read_leases copies leased values and metadata out (the bytes of a
/// removed entry too, while leased), an empty buffer copying nothing of its
/// part, a buffer too small reporting the length needed, a lease of another
/// store refused; the leases stay held.
#[test]
fn read_leases_copies_leased_entries_out() {
    let s = open_with(&[("meta_bytes", "16")]);
    s.put(b"a", b"first", false).unwrap();
    s.put_many(&[b"b"], &[b"second value"], false).unwrap();
    let r = s.lease_many(&[b"a", b"b"], false).unwrap();
    let (la, lb) = (r[0].as_ref().unwrap().as_ref().unwrap(), r[1].as_ref().unwrap().as_ref().unwrap());
    s.remove(b"a", false).unwrap();
    let (mut va, mut vb, mut m0, mut m1) = (vec![0u8; 8], vec![0u8; 12], vec![0u8; 0], vec![0u8; 4]);
    let got = s.read_leases(&[la, lb], &mut [&mut va, &mut vb], &mut [&mut m0, &mut m1]).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(*got[0].as_ref().unwrap(), (5, 0));
    assert_eq!(&va[..5], b"first");
    assert_eq!(*got[1].as_ref().unwrap(), (12, 0));
    assert_eq!(&vb[..], b"second value");
    // Too small: the length needed; nothing copied.
    let mut small = vec![7u8; 4];
    let got = s.read_leases(&[lb], &mut [&mut small], &mut [&mut m0]).unwrap();
    let e = got[0].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BufferTooSmall);
    assert_eq!(e.needed(), Some(12));
    assert_eq!(small, vec![7u8; 4]);
    // An empty destination: the value's length alone.
    let mut none = vec![0u8; 0];
    let got = s.read_leases(&[lb], &mut [&mut none], &mut [&mut m0]).unwrap();
    assert_eq!(*got[0].as_ref().unwrap(), (12, 0));
    // Mismatched lengths and a lease of another store: refused.
    assert_eq!(s.read_leases(&[la, lb], &mut [&mut va], &mut [&mut m0]).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let other = open();
    other.put(b"x", b"y", false).unwrap();
    let foreign = other.lease(b"x").unwrap();
    assert_eq!(s.read_leases(&[&foreign], &mut [&mut va], &mut [&mut m0]).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(s.stats().unwrap().leases_active, 2);
    assert!(s.read_leases(&[], &mut [], &mut []).unwrap().is_empty());
    drop(r);
    assert_eq!(s.stats().unwrap().leases_active, 0);
}

/// With `prefix`, the item a batch stopped at is reported where it failed
/// rather than missed (a 513-byte key, an empty one, a destination too
/// small): prefix_len returned Ok(1), and lease_many and get_many_into
/// dropped the item's error, so a failure read as the end of the prefix.
/// A failed pinning prefix_len unpins the keys it pinned.
#[test]
fn a_prefix_stopped_by_a_failing_item_reports_it() {
    let s = open();
    s.put(b"a", b"12345678", false).unwrap();
    let bad = vec![b'k'; 513];
    for pin in [false, true] {
        let e = s.prefix_len(&[b"a", &bad], pin).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
    assert_eq!(s.stats().unwrap().entries_pinned, 0);
    assert_eq!(s.prefix_len(&[b"a", b"missing", &bad], false).unwrap(), 1);

    let p = s.lease_many(&[b"a", b""], true).unwrap();
    assert_eq!(p.len(), 2);
    assert!(p[0].as_ref().unwrap().is_some());
    match &p[1] {
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidArgument),
        Ok(_) => panic!("the empty key's failure was dropped"),
    }
    drop(p);
    assert_eq!(s.lease_many(&[b"a", b"missing", b""], true).unwrap().len(), 1);

    let (mut big, mut small) = ([0u8; 8], [0u8; 2]);
    let r = s.get_many_into(&[b"a", b"a"], &mut [&mut big[..], &mut small[..]], true).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(*r[0].as_ref().unwrap(), Some(8));
    assert_eq!(r[1].as_ref().unwrap_err().kind(), ErrorKind::BufferTooSmall);
    assert_eq!(r[1].as_ref().unwrap_err().needed(), Some(8));
    // Not prefix: the too-small item's length, and the failed key's none.
    let (mut big, mut small, mut other) = ([0u8; 8], [0u8; 3], [0u8; 8]);
    let r = s.get_many_into(&[b"a", b"a", b""], &mut [&mut big[..], &mut small[..], &mut other[..]], false).unwrap();
    assert_eq!(r[1].as_ref().unwrap_err().needed(), Some(8));
    assert_eq!(r[2].as_ref().unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(r[2].as_ref().unwrap_err().needed(), None);
    let (mut one, mut two) = ([0u8; 8], [0u8; 8]);
    assert_eq!(s.get_many_into(&[b"a", b"missing"], &mut [&mut one[..], &mut two[..]], true).unwrap().len(), 1);
    assert_eq!(s.stats().unwrap().leases_active, 0);
}

#[test]
fn lease_and_reservation() {
    let s = open();
    {
        let mut r = s.reserve(b"r", 5).unwrap().expect("fresh key");
        assert_eq!(r.len(), 5);
        r.data_mut().copy_from_slice(b"12345");
        r.set_meta(b"meta").unwrap();
        assert!(!s.contains(b"r").unwrap());
        assert!(s.reserve(b"r", 5).unwrap().is_none()); // in flight
        r.commit().unwrap();
    }
    let l = s.lease(b"r").unwrap();
    assert_eq!(&l[..], b"12345");
    assert_eq!(l.meta(), b"meta");
    // The bytes stay valid while leased even if the entry is removed.
    assert!(s.remove(b"r", false).unwrap());
    assert_eq!(&l[..], b"12345");
    drop(l);

    // Dropping a reservation aborts it: the key is free again.
    drop(s.reserve(b"x", 3).unwrap());
    assert!(s.put(b"x", b"v", false).unwrap());

    // A forced remove cancels an in-flight reservation.
    let r = s.reserve(b"y", 3).unwrap().unwrap();
    assert!(s.remove(b"y", true).unwrap());
    assert_eq!(r.commit().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(s.lease(b"zzz").err().unwrap().kind(), ErrorKind::NotFound);
}

#[test]
fn reservation_with_its_metadata_in_one_call() {
    let s = open_with(&[("meta_bytes", "64")]);
    {
        let mut r = s.reserve_with_meta(b"m", 4, b"shape").unwrap().expect("fresh key");
        r.data_mut().copy_from_slice(b"abcd");
        assert!(s.reserve_with_meta(b"m", 4, b"x").unwrap().is_none()); // in flight
        r.commit().unwrap();
    }
    let l = s.lease(b"m").unwrap();
    assert_eq!(&l[..], b"abcd");
    assert_eq!(l.meta(), b"shape");
    drop(l);
    assert!(s.reserve_with_meta(b"m", 4, b"").unwrap().is_none()); // committed
    // Metadata larger than meta_bytes reserves nothing.
    let fat = [7u8; 65];
    assert_eq!(s.reserve_with_meta(b"n", 4, &fat).err().unwrap().kind(), ErrorKind::TooBig);
    assert!(!s.contains(b"n").unwrap());
    assert!(s.put(b"n", b"v", false).unwrap());
}

#[test]
fn shutdown_refuses_new_calls() {
    let s = open();
    s.put(b"k", b"v", false).unwrap();
    let l = s.lease(b"k").unwrap();
    s.shutdown().unwrap();
    assert_eq!(s.put(b"a", b"b", false).unwrap_err().kind(), ErrorKind::Shutdown);
    assert_eq!(&l[..], b"v"); // leases outlive shutdown
}

#[test]
fn bad_inputs() {
    let s = open();
    assert_eq!(s.put(b"", b"v", false).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let long = vec![b'k'; daxkv::KEY_MAX + 1];
    let e = s.put(&long, b"v", false).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::TooBig | ErrorKind::InvalidArgument), "{e}");
    assert!(s.put(&vec![b'k'; daxkv::KEY_MAX], b"v", false).unwrap());

    let mut cfg = Config::new().unwrap();
    let e = cfg.set("no_such_key", "1").err().unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("no_such_key"), "{}", e.message());
    assert!(cfg.set("slot_bytes", "lots").is_err());
    assert!(cfg.set("slot\0bytes", "1").is_err());
    assert!(cfg.add_device("a\0b", 0).is_err());
    assert!(Store::open(&cfg).is_err()); // no slot_bytes, no device
    assert!(Config::from_json("{").is_err());
    assert!(Config::from_json("").is_err());
}

#[test]
fn stats_and_status() {
    let s = open();
    let before = s.stats().unwrap();
    assert_eq!(before.slot_bytes, MIB);
    s.put(b"a", b"1", false).unwrap();
    let st = s.stats().unwrap();
    assert_eq!(st.entries, before.entries + 1);
    assert_eq!(st.slots_used + st.slots_free, st.slots_total);
    let j = s.status_json().unwrap();
    assert!(j.starts_with('{') && j.ends_with('}'), "{j}");
}

#[test]
fn full_store_without_eviction() {
    let s = open_with(&[("eviction", "none")]);
    let n = s.stats().unwrap().slots_total;
    for i in 0..n {
        s.put(format!("k{i}").as_bytes(), b"v", false).unwrap();
    }
    assert_eq!(s.put(b"more", b"v", false).unwrap_err().kind(), ErrorKind::NoSpace);
}

#[test]
fn shared_across_threads() {
    let s = Arc::new(open());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..200 {
                    let k = format!("t{t}-{}", i % 4);
                    let v = format!("{t}:{i}");
                    s.put(k.as_bytes(), v.as_bytes(), true).unwrap();
                    if let Some(got) = s.get(k.as_bytes()).unwrap() {
                        assert_eq!(got, v.as_bytes());
                    }
                    // Errors are per thread: this thread's message is its own.
                    let e = s.pin(format!("absent-{t}").as_bytes()).unwrap_err();
                    assert_eq!(e.kind(), ErrorKind::NotFound);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn memcpy_batch_copies() {
    let src: Vec<Vec<u8>> = (0..4).map(|i| vec![i as u8 + 1; 1000 + i]).collect();
    let mut dst: Vec<Vec<u8>> = src.iter().map(|s| vec![0u8; s.len()]).collect();
    let sr: Vec<&[u8]> = src.iter().map(|s| s.as_slice()).collect();
    let mut dr: Vec<&mut [u8]> = dst.iter_mut().map(|d| d.as_mut_slice()).collect();
    daxkv::memcpy_batch(&mut dr, &sr).unwrap();
    assert_eq!(dst, src);
    let mut short = [0u8; 1];
    assert!(daxkv::memcpy_batch(&mut [&mut short[..]], &[b"too long"]).is_err());
}

#[test]
fn version_matches_the_header_major() {
    let n = daxkv::version_number();
    assert_eq!(daxkv::version(), format!("{}.{}.{}", n / 10000, n / 100 % 100, n % 100));
}
