//! Where entries live: the committed keys (a cursor), the slots of leases
//! and reservations, and how each device's arena is laid out. For callers
//! that copy into or out of the arena by offset, and for restarted servers
//! that must learn what the store recovered.

use crate::{check, path_cstring, sys, Error, Lease, Reservation, Result, Store};
use std::iter::FusedIterator;
use std::path::Path;
use std::ptr::{self, NonNull};

/// One committed entry, as the key cursor reports it. Key and metadata are
/// copies: the library's pointers only last until the cursor moves on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyInfo {
    pub key: Vec<u8>,
    /// The metadata stored with the entry (empty when none).
    pub meta: Vec<u8>,
    pub value_len: u64,
    /// "device_id" of the pool status (and of [`DeviceLayout::device_id`]).
    pub device_id: u32,
    /// The entry's slot on its device.
    pub slot: u64,
    /// Its commit sequence: a larger one is a newer commit.
    pub seq: u64,
    pub pins: u32,
    pub leases: u32,
}

/// An iterator over committed keys, from [`Store::keys`].
///
/// The walk runs beside puts, gets and removals: a key that stays committed
/// for the whole walk is reported exactly once; one added or removed during
/// the walk may or may not be. Each step can fail (with
/// [`ErrorKind::Shutdown`](crate::ErrorKind::Shutdown) once the store is shut
/// down or closed); after an error or the end, the iterator only returns
/// `None`.
///
/// The cursor keeps the store's memory alive by itself, so it does not borrow
/// the [`Store`]: it stays safe to use after the store is dropped (and then
/// reports the shutdown error). It is closed when the walk ends or on drop.
pub struct Keys {
    c: Option<NonNull<sys::daxkv_cursor>>,
}

// A cursor is used by one thread at a time (next needs &mut) and the
// library allows it to move between threads.
unsafe impl Send for Keys {}

impl Keys {
    fn finish(&mut self) {
        if let Some(c) = self.c.take() {
            // Closing at the end, not only on drop, lets go of the store's
            // memory as soon as the walk is over.
            unsafe { sys::daxkv_cursor_close(c.as_ptr()) }
        }
    }
}

impl Iterator for Keys {
    type Item = Result<KeyInfo>;

    fn next(&mut self) -> Option<Result<KeyInfo>> {
        let c = self.c?;
        let mut k = sys::daxkv_key_info::default();
        let rc = unsafe { sys::daxkv_cursor_next(c.as_ptr(), &mut k) };
        match rc {
            1 => Some(Ok(KeyInfo {
                // The pointers are valid until the next call on the cursor:
                // copy now.
                key: unsafe { copy_bytes(k.key, k.key_len) },
                meta: unsafe { copy_bytes(k.meta, k.meta_len) },
                value_len: k.value_len,
                device_id: k.device_id,
                slot: k.slot,
                seq: k.seq,
                pins: k.pins,
                leases: k.leases,
            })),
            0 => {
                self.finish();
                None
            }
            r => {
                let e = if r < 0 {
                    Error::from_code(r)
                } else {
                    Error::invalid(format!("daxkv_cursor_next returned {r}"))
                };
                self.finish();
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for Keys {}

impl Drop for Keys {
    fn drop(&mut self) {
        self.finish();
    }
}

unsafe fn copy_bytes(p: *const std::os::raw::c_void, n: usize) -> Vec<u8> {
    if p.is_null() || n == 0 {
        return Vec::new();
    }
    std::slice::from_raw_parts(p.cast::<u8>(), n).to_vec()
}

/// Where one entry's bytes are: `payload_base + offset` is its first byte
/// (the address [`Lease::as_ptr`] and [`Reservation::as_mut_ptr`] give).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    pub device_id: u32,
    /// The slot's index on its device.
    pub slot: u64,
    /// Changes each time the slot is handed out again.
    pub generation: u64,
    /// `slot * slot_bytes`.
    pub offset: u64,
    /// Address of the device's first payload in this process.
    pub payload_base: *mut u8,
}

// Plain values: holding an address is harmless, only dereferencing it is
// unsafe (and needs the lease or reservation it came from).
unsafe impl Send for SlotInfo {}
unsafe impl Sync for SlotInfo {}

impl SlotInfo {
    fn from_sys(s: &sys::daxkv_slot_info) -> SlotInfo {
        SlotInfo {
            device_id: s.device_id,
            slot: s.slot,
            generation: s.generation,
            offset: s.offset,
            payload_base: s.payload_base.cast(),
        }
    }

    /// `payload_base + offset`: the entry's first byte.
    pub fn addr(&self) -> *mut u8 {
        self.payload_base.wrapping_add(self.offset as usize)
    }
}

/// State of a device in the pool (DAXKV_DEV_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Readable and writable.
    Active,
    /// Readable; takes no new entries and empties as entries go.
    Draining,
    /// Readable; its entries are being moved away.
    Migrating,
    /// Readable; a resize is under way.
    Resizing,
    /// Readable; waiting for leases before it is unmapped.
    Removing,
    /// Gone (kept in the pool status as a tombstone).
    Removed,
    /// Configured but not found at open.
    Missing,
    /// A state this binding does not know (a newer library).
    Other(u32),
}

impl From<u32> for DeviceState {
    fn from(v: u32) -> DeviceState {
        match v {
            sys::DAXKV_DEV_ACTIVE => DeviceState::Active,
            sys::DAXKV_DEV_DRAINING => DeviceState::Draining,
            sys::DAXKV_DEV_MIGRATING => DeviceState::Migrating,
            sys::DAXKV_DEV_RESIZING => DeviceState::Resizing,
            sys::DAXKV_DEV_REMOVING => DeviceState::Removing,
            sys::DAXKV_DEV_REMOVED => DeviceState::Removed,
            sys::DAXKV_DEV_MISSING => DeviceState::Missing,
            v => DeviceState::Other(v),
        }
    }
}

/// A device of the pool as its arena is laid out: slot `n` starts at
/// `payload_base + n * slot_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLayout {
    pub device_id: u32,
    pub state: DeviceState,
    /// Row in the pool status's "devices".
    pub device_index: i32,
    pub slot_bytes: u64,
    /// Slots the arena is laid out for (room to grow included).
    pub layout_slots: u64,
    /// Slots in use now.
    pub usable_slots: u64,
    /// One past the highest slot that holds or awaits an entry (0: none):
    /// a shrink to `n` slots moves nothing when `used_end <= n`.
    pub used_end: u64,
    /// Bytes of the device the layout covers.
    pub arena_bytes: u64,
    /// Where the first payload starts in the device.
    pub data_offset: u64,
    /// The first payload's address in this process; null for a missing
    /// device. Valid until the device is removed or the store closed.
    pub payload_base: *mut u8,
}

// Plain values, as SlotInfo.
unsafe impl Send for DeviceLayout {}
unsafe impl Sync for DeviceLayout {}

impl Store {
    /// Walk the committed keys of every device (`None`) or of the pool's
    /// device at `device` (the path as it was configured or added). An
    /// unknown device is [`ErrorKind::NotFound`](crate::ErrorKind::NotFound).
    ///
    /// ```
    /// # let mut cfg = daxkv::Config::new().unwrap();
    /// # cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 8 << 20).unwrap();
    /// # let store = daxkv::Store::open(&cfg).unwrap();
    /// store.put(b"k", b"value", false)?;
    /// for k in store.keys(None)? {
    ///     let k = k?;
    ///     println!("{:?}: {} bytes on device {}", k.key, k.value_len, k.device_id);
    /// }
    /// # Ok::<(), daxkv::Error>(())
    /// ```
    pub fn keys(&self, device: Option<&Path>) -> Result<Keys> {
        let path = device.map(|p| path_cstring("device path", p)).transpose()?;
        let mut c = ptr::null_mut();
        check(unsafe {
            sys::daxkv_cursor_open(self.h(), path.as_ref().map_or(ptr::null(), |p| p.as_ptr()), &mut c)
        })?;
        let c = NonNull::new(c).ok_or_else(|| Error::invalid("daxkv_cursor_open returned no cursor"))?;
        Ok(Keys { c: Some(c) })
    }

    /// How the pool's device at `path` is laid out and used.
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) for a path that is
    /// not (or no longer) in the pool.
    pub fn describe_device(&self, path: impl AsRef<Path>) -> Result<DeviceLayout> {
        let p = path_cstring("device path", path.as_ref())?;
        let mut d = sys::daxkv_device_layout::default();
        check(unsafe { sys::daxkv_device_describe(self.h(), p.as_ptr(), &mut d) })?;
        Ok(DeviceLayout {
            device_id: d.device_id,
            state: d.state.into(),
            device_index: d.device_index,
            slot_bytes: d.slot_bytes,
            layout_slots: d.layout_slots,
            usable_slots: d.usable_slots,
            used_end: d.used_end,
            arena_bytes: d.arena_bytes,
            data_offset: d.data_offset,
            payload_base: d.payload_base.cast(),
        })
    }
}

impl Lease<'_> {
    /// The slot that holds this entry.
    pub fn slot(&self) -> Result<SlotInfo> {
        let mut s = sys::daxkv_slot_info::default();
        check(unsafe { sys::daxkv_lease_slot(self.l.as_ptr(), &mut s) })?;
        Ok(SlotInfo::from_sys(&s))
    }
}

impl Reservation<'_> {
    /// The slot this reservation fills.
    pub fn slot(&self) -> Result<SlotInfo> {
        let mut s = sys::daxkv_slot_info::default();
        check(unsafe { sys::daxkv_reservation_slot(self.r.as_ptr(), &mut s) })?;
        Ok(SlotInfo::from_sys(&s))
    }
}
