//! The device pool: runtime add, remove, resize and drain (hotplug=1), and
//! the pool status.

use crate::{check, path_cstring, sys, DeviceState, Result, Store};
use std::os::raw::c_int;
use std::path::Path;
use std::time::Duration;

/// How [`Store::remove_device`] empties the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveMode {
    /// Move every entry to the other writable devices, all or nothing
    /// ([`ErrorKind::NoSpace`](crate::ErrorKind::NoSpace) when they run out
    /// of room; the device is then left as it was).
    Migrate,
    /// Delete the entries.
    Evict,
    /// Only stop new entries and return at once; the device drains as its
    /// entries go (see [`Store::wait_drained`]).
    Drain,
}

/// How [`Store::resize_device`] treats the entries above a new, smaller end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// Move them to lower free slots or other devices, all or nothing.
    Migrate,
    /// Delete them (only with `force`: a shrink never drops keys silently).
    Evict,
}

/// What a device change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotplugResult {
    /// The device's state after the call.
    pub state: DeviceState,
    /// Row in the pool status's "devices".
    pub device_index: i32,
    /// Entries copied to other devices (or lower slots).
    pub moved_keys: u64,
    /// Their value bytes.
    pub moved_bytes: u64,
    /// Entries deleted (evict).
    pub deleted_keys: u64,
    /// Slots of the device given back.
    pub source_slots_freed: u64,
    /// Usable bytes before the call.
    pub old_size_bytes: u64,
    /// Usable bytes after the call.
    pub new_size_bytes: u64,
    /// Cold entries of the destinations evicted to make room for moved ones.
    pub evicted_keys: u64,
}

impl From<&sys::daxkv_hotplug_result> for HotplugResult {
    fn from(r: &sys::daxkv_hotplug_result) -> HotplugResult {
        HotplugResult {
            state: r.state.into(),
            device_index: r.device_index,
            moved_keys: r.moved_keys,
            moved_bytes: r.moved_bytes,
            deleted_keys: r.deleted_keys,
            source_slots_freed: r.source_slots_freed,
            old_size_bytes: r.old_size_bytes,
            new_size_bytes: r.new_size_bytes,
            evicted_keys: r.evicted_keys,
        }
    }
}

fn force_flag(force: bool) -> u32 {
    if force {
        sys::DAXKV_FORCE
    } else {
        0
    }
}

impl Store {
    /// Map and add a device to the pool (`bytes` 0: the whole device or
    /// existing file); an arena already on it is recovered. Adding a path
    /// already active with the same size does nothing. Needs hotplug=1
    /// (else [`ErrorKind::PermissionDenied`](crate::ErrorKind::PermissionDenied)).
    /// A file the call created is removed again when it fails.
    pub fn add_device(&self, path: impl AsRef<Path>, bytes: u64) -> Result<()> {
        let path = path.as_ref();
        let p = path_cstring("device path", path)?;
        let rc = unsafe { sys::daxkv_device_add(self.h(), p.as_ptr(), bytes) };
        if rc < 0 {
            return Err(crate::Error::from_code(rc));
        }
        Ok(())
    }

    /// Take a device out of the pool. Entries pinned or leased make
    /// Migrate and Evict fail with [`ErrorKind::Busy`](crate::ErrorKind::Busy)
    /// before anything changes, unless `force` (pins move with migrated
    /// entries; the call then waits for leases before unmapping).
    pub fn remove_device(&self, path: impl AsRef<Path>, mode: RemoveMode, force: bool) -> Result<HotplugResult> {
        let p = path_cstring("device path", path.as_ref())?;
        let m = match mode {
            RemoveMode::Migrate => sys::DAXKV_MIGRATE,
            RemoveMode::Evict => sys::DAXKV_EVICT,
            RemoveMode::Drain => sys::DAXKV_DRAIN,
        };
        let mut out = sys::daxkv_hotplug_result::default();
        check(unsafe { sys::daxkv_device_remove(self.h(), p.as_ptr(), m, force_flag(force), &mut out) })?;
        Ok((&out).into())
    }

    /// Change the usable size of a device. Growing keeps every entry in
    /// place, up to the size the arena was laid out for (see the
    /// grow_limit key); shrinking moves or deletes the entries above the
    /// new end as `mode` says.
    pub fn resize_device(&self, path: impl AsRef<Path>, bytes: u64, mode: ResizeMode, force: bool)
        -> Result<HotplugResult> {
        let p = path_cstring("device path", path.as_ref())?;
        let m = match mode {
            ResizeMode::Migrate => sys::DAXKV_MIGRATE,
            ResizeMode::Evict => sys::DAXKV_EVICT,
        };
        let mut out = sys::daxkv_hotplug_result::default();
        check(unsafe { sys::daxkv_device_resize(self.h(), p.as_ptr(), bytes, m, force_flag(force), &mut out) })?;
        Ok((&out).into())
    }

    /// Wait until a draining device holds no entries; `None` waits without
    /// a limit. [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) when the
    /// time is up, InvalidArgument when the device is not draining.
    pub fn wait_drained(&self, path: impl AsRef<Path>, timeout: Option<Duration>) -> Result<()> {
        let p = path_cstring("device path", path.as_ref())?;
        let ms: c_int = match timeout {
            None => -1,
            // Whole milliseconds, rounded up so that a short timeout still
            // waits; the longest finite wait is about 24 days.
            Some(t) => {
                let ns = t.as_nanos();
                (ns / 1_000_000 + u128::from(ns % 1_000_000 != 0)).min(c_int::MAX as u128) as c_int
            }
        };
        check(unsafe { sys::daxkv_device_wait_drained(self.h(), p.as_ptr(), ms) }).map(|_| ())
    }

    /// The pool as JSON, in the shape of LMCache's hotplug_status.
    pub fn pool_status_json(&self) -> Result<String> {
        self.text(|h, buf, cap, need| unsafe { sys::daxkv_pool_status_json(h, buf, cap, need) })
    }
}
