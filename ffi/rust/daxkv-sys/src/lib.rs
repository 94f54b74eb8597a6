//! Raw declarations of libdaxkv's C ABI, written by hand from
//! `include/daxkv.h` (bindgen is not available offline, and the ABI is small
//! and stable). `tests/header.rs` checks every declaration against the
//! header: function names and parameter counts, struct layouts and
//! constants, the last two through a C program built with the system
//! compiler.
//!
//! Everything here is `unsafe` to call; use the `daxkv` crate instead.

#![no_std]
#![allow(non_camel_case_types)]

use core::ffi::c_void;

// The C types other than c_void are in core only from Rust 1.64
// (core::ffi::c_char etc.), and std::os::raw is out of reach of a no_std
// crate, so they are spelled out here exactly as core and std define them for
// Linux, libdaxkv's only platform: the same types, hence the same API
// (tests/header.rs checks them against std::os::raw).
type c_int = i32;
type c_uint = u32;
#[cfg(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "csky",
    target_arch = "hexagon",
    target_arch = "msp430",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "riscv32",
    target_arch = "riscv64",
    target_arch = "s390x",
    target_arch = "xtensa"
))]
type c_char = u8;
#[cfg(not(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "csky",
    target_arch = "hexagon",
    target_arch = "msp430",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "riscv32",
    target_arch = "riscv64",
    target_arch = "s390x",
    target_arch = "xtensa"
)))]
type c_char = i8;

pub const DAXKV_KEY_MAX: usize = 512;
pub const DAXKV_EXISTED: c_int = 1;
pub const DAXKV_E_BASE: c_int = -10000;
pub const DAXKV_E_CORRUPT: c_int = -10001;
pub const DAXKV_E_FOREIGN: c_int = -10002;

pub const DAXKV_REPLACE: c_uint = 1 << 0;
pub const DAXKV_FORCE: c_uint = 1 << 1;
pub const DAXKV_PREFIX: c_uint = 1 << 2;
pub const DAXKV_PIN: c_uint = 1 << 3;
/// daxkv_cuda_register: cudaHostRegisterPortable|Mapped instead of Default.
pub const DAXKV_CUDA_MAPPED: c_uint = 1 << 4;

pub const DAXKV_OP_PUT: c_int = 1;
pub const DAXKV_OP_GET: c_int = 2;
pub const DAXKV_OP_CONTAINS: c_int = 3;
pub const DAXKV_OP_REMOVE: c_int = 4;

pub const DAXKV_HIST_BUCKETS: usize = 24;
pub const DAXKV_HIST_NS_UNIT: u64 = 1000;
pub const DAXKV_HIST_BYTES_UNIT: u64 = 4096;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct daxkv_completion {
    pub tag: u64,
    pub op: c_int,
    pub result: c_int,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct daxkv_histogram {
    pub count: u64,
    pub sum: u64,
    pub bucket: [u64; DAXKV_HIST_BUCKETS],
}

pub const DAXKV_KIND_DEVDAX: u32 = 0;
pub const DAXKV_KIND_FILE: u32 = 1;
pub const DAXKV_KIND_MEMORY: u32 = 2;

pub const DAXKV_MODE_NONE: u32 = 0;
pub const DAXKV_MODE_DEVDAX: u32 = 1;
pub const DAXKV_MODE_SYSTEM_RAM: u32 = 2;

pub const DAXKV_LOG_ERR: c_int = 3;
pub const DAXKV_LOG_WARNING: c_int = 4;
pub const DAXKV_LOG_INFO: c_int = 6;
pub const DAXKV_LOG_DEBUG: c_int = 7;

/// Opaque handles: only ever used behind pointers.
#[repr(C)]
pub struct daxkv_config {
    _private: [u8; 0],
}
#[repr(C)]
pub struct daxkv_store {
    _private: [u8; 0],
}
#[repr(C)]
pub struct daxkv_lease {
    _private: [u8; 0],
}
#[repr(C)]
pub struct daxkv_reservation {
    _private: [u8; 0],
}
#[repr(C)]
pub struct daxkv_cursor {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct daxkv_item {
    pub key: *const c_void,
    pub key_len: usize,
    pub data: *mut c_void,
    pub len: usize,
    pub meta: *mut c_void,
    pub meta_len: usize,
    pub status: c_int,
}

impl Default for daxkv_item {
    fn default() -> Self {
        daxkv_item {
            key: core::ptr::null(),
            key_len: 0,
            data: core::ptr::null_mut(),
            len: 0,
            meta: core::ptr::null_mut(),
            meta_len: 0,
            status: 0,
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct daxkv_stats {
    pub struct_size: u32,
    pub devices: u32,
    pub slot_bytes: u64,
    pub meta_bytes: u64,
    pub capacity_bytes: u64,
    pub slots_total: u64,
    pub slots_used: u64,
    pub slots_free: u64,
    pub entries: u64,
    pub entries_pinned: u64,
    pub slots_inflight: u64,
    pub slots_pending_free: u64,
    pub leases_active: u64,
    pub hits: u64,
    pub misses: u64,
    pub puts: u64,
    pub puts_existed: u64,
    pub puts_failed: u64,
    pub removes: u64,
    pub evictions: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub verify_failures: u64,
    pub recovered_entries: u64,
    pub recovery_dropped_torn: u64,
    pub recovery_dropped_corrupt: u64,
    pub recovery_dropped_stale: u64,
    pub recovery_usec: u64,
    pub copy_faults: u64,
    pub batches: u64,
    pub async_submitted: u64,
    pub async_completed: u64,
    pub async_cancelled: u64,
    pub put_latency: daxkv_histogram,
    pub get_latency: daxkv_histogram,
    pub batch_latency: daxkv_histogram,
    pub item_bytes: daxkv_histogram,
    pub slots_leased: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct daxkv_device_info {
    pub struct_size: u32,
    pub kind: u32,
    pub mode: u32,
    pub numa_node: i32,
    pub target_node: i32,
    pub reserved0: u32,
    pub size: u64,
    pub align: u64,
    pub path: [c_char; 256],
    pub name: [c_char; 32],
}

impl Default for daxkv_device_info {
    fn default() -> Self {
        daxkv_device_info {
            struct_size: core::mem::size_of::<daxkv_device_info>() as u32,
            kind: 0,
            mode: 0,
            numa_node: -1,
            target_node: -1,
            reserved0: 0,
            size: 0,
            align: 0,
            path: [0; 256],
            name: [0; 32],
        }
    }
}

pub const DAXKV_DEV_ACTIVE: u32 = 0;
pub const DAXKV_DEV_DRAINING: u32 = 1;
pub const DAXKV_DEV_MIGRATING: u32 = 2;
pub const DAXKV_DEV_RESIZING: u32 = 3;
pub const DAXKV_DEV_REMOVING: u32 = 4;
pub const DAXKV_DEV_REMOVED: u32 = 5;
pub const DAXKV_DEV_MISSING: u32 = 6;

pub const DAXKV_MIGRATE: c_int = 1;
pub const DAXKV_EVICT: c_int = 2;
pub const DAXKV_DRAIN: c_int = 3;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct daxkv_hotplug_result {
    pub struct_size: u32,
    pub state: u32,
    pub device_index: i32,
    pub reserved0: u32,
    pub moved_keys: u64,
    pub moved_bytes: u64,
    pub deleted_keys: u64,
    pub source_slots_freed: u64,
    pub old_size_bytes: u64,
    pub new_size_bytes: u64,
    pub evicted_keys: u64,
}

impl Default for daxkv_hotplug_result {
    fn default() -> Self {
        daxkv_hotplug_result {
            struct_size: core::mem::size_of::<daxkv_hotplug_result>() as u32,
            state: 0,
            device_index: -1,
            reserved0: 0,
            moved_keys: 0,
            moved_bytes: 0,
            deleted_keys: 0,
            source_slots_freed: 0,
            old_size_bytes: 0,
            new_size_bytes: 0,
            evicted_keys: 0,
        }
    }
}

/// Where one entry's bytes are: `payload_base + offset` is its first byte.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct daxkv_slot_info {
    pub struct_size: u32,
    pub device_id: u32,
    pub slot: u64,
    pub generation: u64,
    pub offset: u64,
    pub payload_base: *mut c_void,
}

impl Default for daxkv_slot_info {
    fn default() -> Self {
        daxkv_slot_info {
            struct_size: core::mem::size_of::<daxkv_slot_info>() as u32,
            device_id: 0,
            slot: 0,
            generation: 0,
            offset: 0,
            payload_base: core::ptr::null_mut(),
        }
    }
}

/// One key of daxkv_lease_batch, and what its lease gives.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct daxkv_lease_item {
    pub key: *const c_void,
    pub key_len: usize,
    pub lease: *mut daxkv_lease,
    pub data: *const c_void,
    pub size: usize,
    pub meta: *const c_void,
    pub meta_len: usize,
    pub slot: u64,
    pub generation: u64,
    pub offset: u64,
    pub device_id: u32,
    pub status: c_int,
}

impl Default for daxkv_lease_item {
    fn default() -> Self {
        daxkv_lease_item {
            key: core::ptr::null(),
            key_len: 0,
            lease: core::ptr::null_mut(),
            data: core::ptr::null(),
            size: 0,
            meta: core::ptr::null(),
            meta_len: 0,
            slot: 0,
            generation: 0,
            offset: 0,
            device_id: 0,
            status: 0,
        }
    }
}

/// A device of the pool as its arena is laid out.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct daxkv_device_layout {
    pub struct_size: u32,
    pub device_id: u32,
    pub state: u32,
    pub device_index: i32,
    pub slot_bytes: u64,
    pub layout_slots: u64,
    pub usable_slots: u64,
    pub used_end: u64,
    pub arena_bytes: u64,
    pub data_offset: u64,
    pub payload_base: *mut c_void,
}

impl Default for daxkv_device_layout {
    fn default() -> Self {
        daxkv_device_layout {
            struct_size: core::mem::size_of::<daxkv_device_layout>() as u32,
            device_id: 0,
            state: 0,
            device_index: -1,
            slot_bytes: 0,
            layout_slots: 0,
            usable_slots: 0,
            used_end: 0,
            arena_bytes: 0,
            data_offset: 0,
            payload_base: core::ptr::null_mut(),
        }
    }
}

/// One committed entry, as daxkv_cursor_next reports it. `key` and `meta`
/// stay valid until the next call on the cursor.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct daxkv_key_info {
    pub struct_size: u32,
    pub device_id: u32,
    pub key: *const c_void,
    pub key_len: usize,
    pub meta: *const c_void,
    pub meta_len: usize,
    pub value_len: u64,
    pub slot: u64,
    pub seq: u64,
    pub pins: u32,
    pub leases: u32,
}

impl Default for daxkv_key_info {
    fn default() -> Self {
        daxkv_key_info {
            struct_size: core::mem::size_of::<daxkv_key_info>() as u32,
            device_id: 0,
            key: core::ptr::null(),
            key_len: 0,
            meta: core::ptr::null(),
            meta_len: 0,
            value_len: 0,
            slot: 0,
            seq: 0,
            pins: 0,
            leases: 0,
        }
    }
}

pub type daxkv_log_fn = Option<unsafe extern "C" fn(level: c_int, msg: *const c_char, arg: *mut c_void)>;

extern "C" {
    pub fn daxkv_version_number() -> c_uint;
    pub fn daxkv_version_string() -> *const c_char;
    pub fn daxkv_strerror(err: c_int) -> *const c_char;
    pub fn daxkv_errmsg() -> *const c_char;
    pub fn daxkv_set_log_fn(f: daxkv_log_fn, max_level: c_int, arg: *mut c_void);

    pub fn daxkv_config_new(out: *mut *mut daxkv_config) -> c_int;
    pub fn daxkv_config_free(cfg: *mut daxkv_config);
    pub fn daxkv_config_set(cfg: *mut daxkv_config, key: *const c_char, value: *const c_char) -> c_int;
    pub fn daxkv_config_add_device(cfg: *mut daxkv_config, path: *const c_char, bytes: u64) -> c_int;
    pub fn daxkv_config_from_json(out: *mut *mut daxkv_config, json: *const c_char) -> c_int;

    pub fn daxkv_open(out: *mut *mut daxkv_store, cfg: *const daxkv_config) -> c_int;
    pub fn daxkv_shutdown(s: *mut daxkv_store) -> c_int;
    pub fn daxkv_close(s: *mut daxkv_store);

    pub fn daxkv_put(
        s: *mut daxkv_store,
        key: *const c_void,
        key_len: usize,
        val: *const c_void,
        len: usize,
        flags: c_uint,
    ) -> c_int;
    pub fn daxkv_get(
        s: *mut daxkv_store,
        key: *const c_void,
        key_len: usize,
        dst: *mut c_void,
        cap: usize,
        len_out: *mut usize,
    ) -> c_int;
    pub fn daxkv_contains(s: *mut daxkv_store, key: *const c_void, key_len: usize) -> c_int;
    pub fn daxkv_remove(s: *mut daxkv_store, key: *const c_void, key_len: usize, flags: c_uint) -> c_int;
    pub fn daxkv_pin(s: *mut daxkv_store, key: *const c_void, key_len: usize) -> c_int;
    pub fn daxkv_unpin(s: *mut daxkv_store, key: *const c_void, key_len: usize) -> c_int;

    pub fn daxkv_put_batch(s: *mut daxkv_store, items: *mut daxkv_item, n: usize, flags: c_uint) -> c_int;
    pub fn daxkv_get_batch(s: *mut daxkv_store, items: *mut daxkv_item, n: usize, flags: c_uint) -> c_int;
    pub fn daxkv_contains_batch(s: *mut daxkv_store, items: *mut daxkv_item, n: usize, flags: c_uint) -> c_int;
    pub fn daxkv_remove_batch(s: *mut daxkv_store, items: *mut daxkv_item, n: usize, flags: c_uint) -> c_int;
    pub fn daxkv_unpin_batch(s: *mut daxkv_store, items: *mut daxkv_item, n: usize, flags: c_uint) -> c_int;

    pub fn daxkv_lease_acquire(
        s: *mut daxkv_store,
        key: *const c_void,
        key_len: usize,
        out: *mut *mut daxkv_lease,
    ) -> c_int;
    pub fn daxkv_lease_data(l: *const daxkv_lease) -> *const c_void;
    pub fn daxkv_lease_size(l: *const daxkv_lease) -> usize;
    pub fn daxkv_lease_meta(l: *const daxkv_lease, len: *mut usize) -> *const c_void;
    pub fn daxkv_lease_release(l: *mut daxkv_lease);
    pub fn daxkv_lease_batch(s: *mut daxkv_store, items: *mut daxkv_lease_item, n: usize, flags: c_uint) -> c_int;
    pub fn daxkv_lease_read_batch(
        s: *mut daxkv_store,
        leases: *const *mut daxkv_lease,
        items: *mut daxkv_item,
        n: usize,
        flags: c_uint,
    ) -> c_int;

    pub fn daxkv_reserve(
        s: *mut daxkv_store,
        key: *const c_void,
        key_len: usize,
        len: usize,
        out: *mut *mut daxkv_reservation,
    ) -> c_int;
    pub fn daxkv_reserve_meta(
        s: *mut daxkv_store,
        key: *const c_void,
        key_len: usize,
        len: usize,
        meta: *const c_void,
        meta_len: usize,
        data: *mut *mut c_void,
        out: *mut *mut daxkv_reservation,
    ) -> c_int;
    pub fn daxkv_reservation_data(r: *mut daxkv_reservation) -> *mut c_void;
    pub fn daxkv_reservation_size(r: *const daxkv_reservation) -> usize;
    pub fn daxkv_reservation_set_meta(r: *mut daxkv_reservation, meta: *const c_void, len: usize) -> c_int;
    pub fn daxkv_commit(r: *mut daxkv_reservation) -> c_int;
    pub fn daxkv_abort(r: *mut daxkv_reservation);

    pub fn daxkv_stats(s: *mut daxkv_store, out: *mut daxkv_stats) -> c_int;
    pub fn daxkv_status_json(s: *mut daxkv_store, buf: *mut c_char, cap: usize, needed: *mut usize) -> c_int;
    pub fn daxkv_stats_prometheus(s: *mut daxkv_store, buf: *mut c_char, cap: usize, needed: *mut usize) -> c_int;

    // A running store's statistics, read by the path of any of its devices
    // (the page it publishes every stats_interval ms), without opening it.
    pub fn daxkv_stats_peek(path: *const c_char, out: *mut daxkv_stats) -> c_int;
    pub fn daxkv_status_peek(path: *const c_char, buf: *mut c_char, cap: usize, needed: *mut usize) -> c_int;
    pub fn daxkv_stats_prometheus_peek(path: *const c_char, buf: *mut c_char, cap: usize, needed: *mut usize)
        -> c_int;

    pub fn daxkv_submit(
        s: *mut daxkv_store,
        op: c_int,
        items: *mut daxkv_item,
        n: usize,
        flags: c_uint,
        tag: u64,
    ) -> c_int;
    pub fn daxkv_event_fd(s: *mut daxkv_store) -> c_int;
    pub fn daxkv_poll(s: *mut daxkv_store, out: *mut daxkv_completion, cap: usize) -> c_int;

    pub fn daxkv_list_devices(out: *mut daxkv_device_info, cap: usize, count: *mut usize) -> c_int;
    pub fn daxkv_probe(path: *const c_char, out: *mut daxkv_device_info) -> c_int;

    pub fn daxkv_memcpy_batch(
        dst: *const *mut c_void,
        src: *const *const c_void,
        len: *const usize,
        n: usize,
        flags: c_uint,
    ) -> c_int;

    // GPU transfers (the CUDA runtime is loaded by the library at run time;
    // item data are device pointers, stream a cudaStream_t or null).
    pub fn daxkv_cuda_available() -> c_int;
    pub fn daxkv_cuda_register(s: *mut daxkv_store, flags: c_uint) -> c_int;
    pub fn daxkv_cuda_unregister(s: *mut daxkv_store) -> c_int;
    pub fn daxkv_get_batch_cuda(
        s: *mut daxkv_store,
        items: *mut daxkv_item,
        n: usize,
        stream: *mut c_void,
        flags: c_uint,
    ) -> c_int;
    pub fn daxkv_put_batch_cuda(
        s: *mut daxkv_store,
        items: *mut daxkv_item,
        n: usize,
        stream: *mut c_void,
        flags: c_uint,
    ) -> c_int;

    // Pools: runtime device changes (hotplug=1).
    pub fn daxkv_device_add(s: *mut daxkv_store, path: *const c_char, bytes: u64) -> c_int;
    pub fn daxkv_device_remove(
        s: *mut daxkv_store,
        path: *const c_char,
        mode: c_int,
        flags: c_uint,
        out: *mut daxkv_hotplug_result,
    ) -> c_int;
    pub fn daxkv_device_resize(
        s: *mut daxkv_store,
        path: *const c_char,
        bytes: u64,
        mode: c_int,
        flags: c_uint,
        out: *mut daxkv_hotplug_result,
    ) -> c_int;
    pub fn daxkv_device_wait_drained(s: *mut daxkv_store, path: *const c_char, timeout_ms: c_int) -> c_int;
    pub fn daxkv_pool_status_json(s: *mut daxkv_store, buf: *mut c_char, cap: usize, needed: *mut usize) -> c_int;

    // Where entries live: slots, device layouts, and the committed keys.
    pub fn daxkv_lease_slot(l: *const daxkv_lease, out: *mut daxkv_slot_info) -> c_int;
    pub fn daxkv_reservation_slot(r: *const daxkv_reservation, out: *mut daxkv_slot_info) -> c_int;
    pub fn daxkv_device_describe(s: *mut daxkv_store, path: *const c_char, out: *mut daxkv_device_layout) -> c_int;
    pub fn daxkv_cursor_open(s: *mut daxkv_store, device_path: *const c_char, out: *mut *mut daxkv_cursor) -> c_int;
    pub fn daxkv_cursor_next(c: *mut daxkv_cursor, out: *mut daxkv_key_info) -> c_int;
    pub fn daxkv_cursor_close(c: *mut daxkv_cursor);
}
