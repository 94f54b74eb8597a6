//! Attacks through the safe API only: inputs a caller can pass without
//! `unsafe`, each listed where it is tried. What the borrow checker must
//! refuse is in the `compile_fail` examples of the crate's documentation.

mod common;

use common::{open_mem, TempDir, MIB};
use daxkv::{Batch, Config, ErrorKind, Outcome, Store};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Bad input: keys that differ only after a NUL byte, keys of NUL bytes
/// only, keys that are not UTF-8. Each must be a key of its own: one cut at
/// its first NUL would read and overwrite another key's value.
#[test]
fn keys_with_nul_and_non_utf8_bytes_are_keys_of_their_own() {
    let s = open_mem(&[]);
    let keys: [&[u8]; 6] = [b"a", b"a\0b", b"a\0c", b"\0", b"\0\0", b"\xff\xfe\x80"];
    for (i, k) in keys.iter().enumerate() {
        assert!(s.put(k, &[i as u8], false).unwrap(), "put {k:?}");
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(s.get(k).unwrap().as_deref(), Some(&[i as u8][..]), "get {k:?}");
        assert_eq!(&s.lease(k).unwrap()[..], &[i as u8][..]);
    }
    let c = s.submit(Batch::get(keys.iter().map(|k| (k.to_vec(), 4)), false)).unwrap().wait().unwrap();
    match c.outcome {
        Outcome::Get(v) => {
            for (i, r) in v.into_iter().enumerate() {
                assert_eq!(r.unwrap(), Some(vec![i as u8]), "async get {:?}", keys[i]);
            }
        }
        o => panic!("{o:?}"),
    }
}

/// Bad input: NUL bytes inside configuration keys, values, JSON and device
/// paths. Each is refused as InvalidArgument, never cut at the NUL (which
/// would configure something else than asked).
#[test]
fn strings_with_nul_bytes_are_refused() {
    let mut cfg = Config::new().unwrap();
    assert_eq!(cfg.set("slot_bytes\0x", "1MiB").err().unwrap().kind(), ErrorKind::InvalidArgument);
    assert_eq!(cfg.set("slot_bytes", "1MiB\0junk").err().unwrap().kind(), ErrorKind::InvalidArgument);
    assert_eq!(cfg.add_device("mem:\0/etc/passwd", MIB).err().unwrap().kind(), ErrorKind::InvalidArgument);
    let j = r#"{"dax_device_path": "mem:", "max_local_cache_size": 0.1}"#.replace(':', ":\0");
    assert_eq!(Config::from_json(&j).err().unwrap().kind(), ErrorKind::InvalidArgument);
    let s = open_mem(&[]);
    assert_eq!(s.add_device("mem:\0x", 8 * MIB).err().unwrap().kind(), ErrorKind::InvalidArgument);
    assert_eq!(daxkv::stats_peek("/tmp/x\0y").err().unwrap().kind(), ErrorKind::InvalidArgument);
}

/// Bad input: a device path that is not UTF-8. It goes to the library byte
/// for byte, and reopening with the same bytes finds the same arena.
#[test]
fn a_device_path_that_is_not_utf8_is_kept_byte_for_byte() {
    let d = TempDir::new("attack-path");
    let mut raw = d.path().as_os_str().as_bytes().to_vec();
    raw.extend_from_slice(b"/arena-\xff\xfe");
    let p = std::path::PathBuf::from(OsStr::from_bytes(&raw));
    let open = || {
        let mut cfg = Config::new().unwrap();
        cfg.set("slot_bytes", "1MiB").unwrap().add_device(&p, 8 * MIB).unwrap();
        cfg.set("durability", "process").unwrap();
        Store::open(&cfg).unwrap()
    };
    {
        let s = open();
        assert!(s.put(b"k", b"v", false).unwrap());
    }
    assert!(p.exists(), "the arena was created under another name");
    assert_eq!(open().get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

/// Bad input: sizes at and above 2^31 and 2^32 (a C int or a u32 would
/// truncate them to small or negative values), usize::MAX, and an empty
/// key and a key one byte over the limit. Each is refused by the library
/// as too big or invalid; nothing is reserved or stored.
#[test]
fn sizes_past_the_c_int_range_are_refused_not_truncated() {
    let s = open_mem(&[]);
    for len in [1usize << 31, (1usize << 32) + 1, usize::MAX] {
        let e = s.reserve(b"k", len).err().unwrap_or_else(|| panic!("reserve of {len} bytes succeeded"));
        assert!(matches!(e.kind(), ErrorKind::TooBig | ErrorKind::InvalidArgument), "{len}: {e}");
    }
    assert_eq!(s.put(b"", b"v", false).err().unwrap().kind(), ErrorKind::InvalidArgument);
    let long = vec![b'k'; daxkv::KEY_MAX as usize + 1];
    assert!(s.put(&long, b"v", false).is_err());
    assert_eq!(s.stats().unwrap().entries, 0);
}

/// Bad input: a forced remove of a leased key, then puts that fill every
/// slot the store has (the removed entry's slot included, were it freed),
/// while other threads read the lease. The leased bytes must stay the
/// entry's until the lease is dropped.
#[test]
fn a_leased_entry_keeps_its_bytes_through_a_forced_remove_and_refill() {
    let s = open_mem(&[("eviction", "lru")]);
    let old = vec![0xa5u8; 4096];
    assert!(s.put(b"k", &old, false).unwrap());
    let lease = s.lease(b"k").unwrap();
    assert!(s.remove(b"k", true).unwrap());
    std::thread::scope(|t| {
        for _ in 0..2 {
            t.spawn(|| {
                for _ in 0..200 {
                    assert!(lease.iter().all(|&b| b == 0xa5), "the leased bytes changed");
                }
            });
        }
        for i in 0..64u32 {
            let _ = s.put(format!("fill{i}").as_bytes(), &vec![0x5a; 4096], true);
        }
    });
    assert_eq!(&lease[..], &old[..]);
    drop(lease);
    assert_eq!(s.get(b"k").unwrap(), None);
}
