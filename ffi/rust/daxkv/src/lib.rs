//! Safe Rust binding of libdaxkv, a KV-cache store for LLM inference on
//! Device-DAX and other byte-addressable memory.
//!
//! ```
//! use daxkv::{Config, Store};
//!
//! # fn main() -> Result<(), daxkv::Error> {
//! let mut cfg = Config::new()?;
//! cfg.set("slot_bytes", "1MiB")?.add_device("mem:", 16 << 20)?;
//! let store = Store::open(&cfg)?;
//! assert!(store.put(b"key", b"value", false)?);
//! {
//!     let lease = store.lease(b"key")?; // zero copy: bytes in place
//!     assert_eq!(&lease[..], b"value");
//! }
//! assert_eq!(store.get(b"key")?.as_deref(), Some(&b"value"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! Thread safety: every libdaxkv function is thread-safe, so [`Store`] is
//! `Send + Sync` and can be shared through an `Arc`. [`Lease`] borrows the
//! store, so the borrow checker keeps the store open while a lease lives.
//!
//! Beyond single keys and batches: asynchronous batches ([`Store::submit`],
//! whose [`Ticket`] is a `Future` needing no runtime), the committed keys
//! ([`Store::keys`]) and where entries lie ([`Lease::slot`],
//! [`Store::describe_device`]), the device pool ([`Store::add_device`] and
//! the calls after it), discovery ([`list_devices`], [`probe`]), the log
//! callback ([`set_log_fn`]), Prometheus text ([`Store::stats_prometheus`]),
//! the statistics of a store running elsewhere ([`stats_peek`]) and GPU
//! transfers ([`Store::cuda_register`]).

// The README's example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExample;

use daxkv_sys as sys;
use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Arc;

mod aio;
mod cuda;
mod devices;
mod keys;
mod log;
mod os;
mod peek;
mod pool;

pub use aio::{Batch, Completion, Outcome, Ticket};
pub use cuda::{cuda_available, CudaItem};
pub use devices::{list_devices, probe, DaxMode, DeviceInfo, DeviceKind};
pub use keys::{DeviceLayout, DeviceState, KeyInfo, Keys, SlotInfo};
pub use log::{clear_log_fn, set_log_fn, LogLevel};
pub use peek::{stats_peek, stats_prometheus_peek, status_peek};
pub use pool::{HotplugResult, RemoveMode, ResizeMode};
pub use sys::daxkv_stats as Stats;
pub use sys::DAXKV_KEY_MAX as KEY_MAX;

/// What went wrong, from the library's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    NotFound,
    NoSpace,
    TooBig,
    Busy,
    BufferTooSmall,
    Shutdown,
    Cancelled,
    /// The call would wait for a lease the calling thread holds (a forced
    /// device removal or shrink waits for it): release it, then call again.
    Deadlock,
    InvalidArgument,
    NoDevice,
    PermissionDenied,
    OutOfMemory,
    Io,
    NotSupported,
    Corrupt,
    Foreign,
    Exists,
    TimedOut,
    /// EAGAIN: a thread the call needed could not be started, or a store's
    /// statistics page was being rewritten throughout; a later try may work.
    TryAgain,
    /// EPROTO: a statistics page of another format.
    Protocol,
    /// EISDIR: a path that must name a device or file names a directory.
    IsADirectory,
    /// ELOOP, ENOTDIR, ENAMETOOLONG: a device path that cannot be followed
    /// (a symbolic link loop, a component that is not a directory, a name
    /// too long).
    BadPath,
    /// EMFILE, ENFILE: no file descriptor was left (the event fd).
    TooManyOpenFiles,
    /// EOVERFLOW: a count (an entry's pins) would overflow.
    Overflow,
    /// A code the library does not document; [`Error::code`] keeps it.
    Other,
}

/// A failed libdaxkv call: the negative code and the thread's detail message,
/// read right after the failing call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: i32,
    message: String,
    /// BufferTooSmall from a get: the length of the value it found.
    needed: Option<usize>,
}

impl Error {
    fn from_code(code: c_int) -> Error {
        // daxkv_errmsg is thread-local and overwritten by the next call on
        // this thread: it must be read before anything else.
        let message = unsafe { CStr::from_ptr(sys::daxkv_errmsg()) }.to_string_lossy().into_owned();
        let message = if message.is_empty() { strerror(code) } else { message };
        Error { code, message, needed: None }
    }

    fn item(code: c_int) -> Error {
        Error { code, message: strerror(code), needed: None }
    }
}

/// The library's message after a batch whose items failed (daxkv_errmsg,
/// read before any other call) and the item it belongs to: the one it names
/// ("item N: ", stripped), else the failed item when no other item's status
/// is negative (a miss and a busy key leave a message too). Other items get
/// their code's description.
struct ItemDetail {
    owner: Option<usize>,
    text: String,
}

impl ItemDetail {
    fn read(statuses: impl Iterator<Item = c_int>) -> ItemDetail {
        let none = ItemDetail { owner: None, text: String::new() };
        let st: Vec<c_int> = statuses.collect();
        let failed: Vec<usize> = st
            .iter()
            .enumerate()
            .filter(|&(_, &s)| s < 0 && s != -libc_errno::ENOENT && s != -libc_errno::EBUSY)
            .map(|(i, _)| i)
            .collect();
        let negative = st.iter().filter(|&&s| s < 0).count();
        if failed.is_empty() {
            return none;
        }
        let text = unsafe { CStr::from_ptr(sys::daxkv_errmsg()) }.to_string_lossy().into_owned();
        if let Some(rest) = text.strip_prefix("item ") {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if let (Ok(i), Some(tail)) = (rest[..digits].parse::<usize>(), rest[digits..].strip_prefix(": ")) {
                return ItemDetail { owner: Some(i), text: tail.to_owned() };
            }
        }
        match failed.as_slice() {
            [only] if negative == 1 => ItemDetail { owner: Some(*only), text },
            _ => none,
        }
    }

    /// Item i's error (its status `code`).
    fn err(&self, i: usize, code: c_int) -> Error {
        if self.owner == Some(i) && !self.text.is_empty() {
            Error { code, message: self.text.clone(), needed: None }
        } else {
            Error::item(code)
        }
    }
}

impl Error {
    fn invalid(message: impl Into<String>) -> Error {
        Error { code: -libc_errno::EINVAL, message: message.into(), needed: None }
    }

    /// A failure of the binding's own system calls (threads, eventfds).
    fn io(what: &str, e: std::io::Error) -> Error {
        Error { code: -e.raw_os_error().unwrap_or(libc_errno::EIO), message: format!("{what}: {e}"), needed: None }
    }

    /// A get's BufferTooSmall carries the length the value needs.
    fn with_needed(mut self, len: usize) -> Error {
        if self.code == -libc_errno::ENOBUFS {
            self.needed = Some(len);
        }
        self
    }

    /// The negative error code (a negative errno or a DAXKV_E_* value).
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The positive errno, when the code is one.
    pub fn errno(&self) -> Option<i32> {
        (self.code < 0 && self.code > -4096).then_some(-self.code)
    }

    /// The library's description of this failure.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For [`ErrorKind::BufferTooSmall`] from a get (`get_into`,
    /// `get_many_into`): the length of the value, the capacity that would
    /// have held it. None for every other error.
    pub fn needed(&self) -> Option<usize> {
        self.needed
    }

    pub fn kind(&self) -> ErrorKind {
        use libc_errno::*;
        // Negating i32::MIN overflows (a panic in debug builds): wrapped, it
        // stays negative and matches no errno.
        match self.code.wrapping_neg() {
            ENOENT => ErrorKind::NotFound,
            ENOSPC => ErrorKind::NoSpace,
            E2BIG => ErrorKind::TooBig,
            EBUSY => ErrorKind::Busy,
            ENOBUFS => ErrorKind::BufferTooSmall,
            ESHUTDOWN => ErrorKind::Shutdown,
            ECANCELED => ErrorKind::Cancelled,
            EDEADLK => ErrorKind::Deadlock,
            EINVAL => ErrorKind::InvalidArgument,
            ENODEV => ErrorKind::NoDevice,
            EACCES | EPERM => ErrorKind::PermissionDenied,
            ENOMEM => ErrorKind::OutOfMemory,
            EIO => ErrorKind::Io,
            ENOTSUP => ErrorKind::NotSupported,
            EEXIST => ErrorKind::Exists,
            ETIMEDOUT => ErrorKind::TimedOut,
            EAGAIN => ErrorKind::TryAgain,
            EPROTO => ErrorKind::Protocol,
            EISDIR => ErrorKind::IsADirectory,
            ELOOP | ENOTDIR | ENAMETOOLONG => ErrorKind::BadPath,
            EMFILE | ENFILE => ErrorKind::TooManyOpenFiles,
            EOVERFLOW => ErrorKind::Overflow,
            _ if self.code == sys::DAXKV_E_CORRUPT => ErrorKind::Corrupt,
            _ if self.code == sys::DAXKV_E_FOREIGN => ErrorKind::Foreign,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (error {})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Linux errno values used by the library (std exposes no constants).
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const E2BIG: i32 = 7;
    pub const EAGAIN: i32 = 11;
    pub const ENOMEM: i32 = 12;
    pub const EACCES: i32 = 13;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const ENFILE: i32 = 23;
    pub const EMFILE: i32 = 24;
    pub const ENOSPC: i32 = 28;
    pub const EDEADLK: i32 = 35;
    pub const ENAMETOOLONG: i32 = 36;
    pub const ELOOP: i32 = 40;
    pub const EPROTO: i32 = 71;
    pub const EOVERFLOW: i32 = 75;
    pub const ENOTSUP: i32 = 95;
    pub const ENOBUFS: i32 = 105;
    pub const ESHUTDOWN: i32 = 108;
    pub const ETIMEDOUT: i32 = 110;
    pub const ECANCELED: i32 = 125;
}

fn check(rc: c_int) -> Result<c_int> {
    if rc < 0 {
        Err(Error::from_code(rc))
    } else {
        Ok(rc)
    }
}

/// The library's static description of an error code.
pub fn strerror(code: i32) -> String {
    unsafe { CStr::from_ptr(sys::daxkv_strerror(code)) }.to_string_lossy().into_owned()
}

/// "major.minor.patch" of the library actually loaded.
pub fn version() -> String {
    unsafe { CStr::from_ptr(sys::daxkv_version_string()) }.to_string_lossy().into_owned()
}

/// major*10000 + minor*100 + patch of the library actually loaded.
pub fn version_number() -> u32 {
    unsafe { sys::daxkv_version_number() }
}

fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid(format!("{what} contains a NUL byte")))
}

/// Paths go to the library byte for byte (it matches devices by the exact
/// string they were configured with), so no UTF-8 is required.
fn path_cstring(what: &str, p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::invalid(format!("{what} contains a NUL byte")))
}

/// A store configuration (daxkv_config).
pub struct Config {
    c: NonNull<sys::daxkv_config>,
}

// The builder is plain data owned by this value; the library keeps no
// reference to it, so moving it between threads is fine. It is not Sync:
// daxkv_config_set mutates it.
unsafe impl Send for Config {}

impl Config {
    pub fn new() -> Result<Config> {
        let mut p = ptr::null_mut();
        check(unsafe { sys::daxkv_config_new(&mut p) })?;
        let c = NonNull::new(p).ok_or_else(|| Error::invalid("daxkv_config_new returned no configuration"))?;
        Ok(Config { c })
    }

    /// LMCache's dax adapter JSON (single-device or "devices" form).
    pub fn from_json(json: &str) -> Result<Config> {
        let j = cstring("JSON configuration", json)?;
        let mut p = ptr::null_mut();
        check(unsafe { sys::daxkv_config_from_json(&mut p, j.as_ptr()) })?;
        let c = NonNull::new(p).ok_or_else(|| Error::invalid("daxkv_config_from_json returned no configuration"))?;
        Ok(Config { c })
    }

    /// Set a key (slot_bytes, eviction, durability, ...). Returns self for chaining.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        let k = cstring("configuration key", key)?;
        let v = cstring("configuration value", value)?;
        check(unsafe { sys::daxkv_config_set(self.c.as_ptr(), k.as_ptr(), v.as_ptr()) })?;
        Ok(self)
    }

    /// Add a device: /dev/daxX.Y, a regular file, or "mem:"; bytes = 0 is the whole device.
    /// A path, not a string: the pool calls take device paths that are not
    /// UTF-8, and a store that holds one must be reopened with it.
    pub fn add_device(&mut self, path: impl AsRef<Path>, bytes: u64) -> Result<&mut Self> {
        let p = path_cstring("device path", path.as_ref())?;
        check(unsafe { sys::daxkv_config_add_device(self.c.as_ptr(), p.as_ptr(), bytes) })?;
        Ok(self)
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        unsafe { sys::daxkv_config_free(self.c.as_ptr()) }
    }
}

/// An open store. Closed (shutdown, then freed) on drop.
pub struct Store {
    h: NonNull<sys::daxkv_store>,
    aio: Arc<aio::State>,
}

// Every daxkv function is documented thread-safe, and the handle stays valid
// until daxkv_close, which only Drop calls (with exclusive access).
unsafe impl Send for Store {}
unsafe impl Sync for Store {}

/// One item's outcome in a batch.
pub type ItemResult<T> = std::result::Result<T, Error>;

/// Whether the item a PREFIX batch stopped at (`n`, the prefix's length)
/// failed rather than missed: its status, as `status` reads it, is an
/// error other than -ENOENT. Such a failure is reported with the prefix.
pub(crate) fn stopped_by_a_failure<T>(items: &[T], n: usize, status: impl Fn(&T) -> i32) -> bool {
    items.get(n).map_or(false, |it| {
        let s = status(it);
        s < 0 && s != -libc_errno::ENOENT
    })
}

fn items_for(keys: &[&[u8]]) -> Vec<sys::daxkv_item> {
    keys.iter()
        .map(|k| sys::daxkv_item { key: k.as_ptr().cast(), key_len: k.len(), ..Default::default() })
        .collect()
}

impl Store {
    /// Open (and recover) a store. On failure nothing stays open or
    /// mapped, and arena files the attempt created are removed again.
    pub fn open(cfg: &Config) -> Result<Store> {
        let mut p = ptr::null_mut();
        let rc = unsafe { sys::daxkv_open(&mut p, cfg.c.as_ptr()) };
        if rc < 0 {
            return Err(Error::from_code(rc));
        }
        let h = NonNull::new(p).ok_or_else(|| Error::invalid("daxkv_open returned no store"))?;
        Ok(Store { h, aio: Arc::default() })
    }

    fn h(&self) -> *mut sys::daxkv_store {
        self.h.as_ptr()
    }

    /// Refuse new calls (they fail with ErrorKind::Shutdown); waits for calls in flight.
    pub fn shutdown(&self) -> Result<()> {
        check(unsafe { sys::daxkv_shutdown(self.h()) }).map(|_| ())
    }

    /// Close now (the same as dropping the store).
    pub fn close(self) {}

    /// Store a value. Ok(true) if stored, Ok(false) if the key was present
    /// or in flight (nothing written) and `replace` is false.
    pub fn put(&self, key: &[u8], value: &[u8], replace: bool) -> Result<bool> {
        let flags = if replace { sys::DAXKV_REPLACE } else { 0 };
        let rc = check(unsafe {
            sys::daxkv_put(self.h(), key.as_ptr().cast(), key.len(), value.as_ptr().cast(), value.len(), flags)
        })?;
        Ok(rc == 0)
    }

    /// Copy a value into `dst`. Ok(Some(len)) on a hit, Ok(None) on a miss;
    /// ErrorKind::BufferTooSmall if `dst` is too small, with the value's
    /// length in [`Error::needed`].
    pub fn get_into(&self, key: &[u8], dst: &mut [u8]) -> Result<Option<usize>> {
        let mut n = 0usize;
        let rc = unsafe {
            sys::daxkv_get(self.h(), key.as_ptr().cast(), key.len(), dst.as_mut_ptr().cast(), dst.len(), &mut n)
        };
        if rc == -libc_errno::ENOENT {
            return Ok(None);
        }
        check(rc).map_err(|e| e.with_needed(n))?;
        Ok(Some(n))
    }

    /// The stored value's length, or None on a miss.
    pub fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        let mut n = 0usize;
        let rc = unsafe { sys::daxkv_get(self.h(), key.as_ptr().cast(), key.len(), ptr::null_mut(), 0, &mut n) };
        match rc {
            0 => Ok(Some(n)),
            r if r == -libc_errno::ENOBUFS => Ok(Some(n)),
            r if r == -libc_errno::ENOENT => Ok(None),
            r => Err(Error::from_code(r)),
        }
    }

    /// The value as a Vec (one copy, through a lease), or None on a miss.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.lease(key) {
            Ok(l) => Ok(Some(l.to_vec())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// True if committed (in-flight keys are not).
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(check(unsafe { sys::daxkv_contains(self.h(), key.as_ptr().cast(), key.len()) })? == 1)
    }

    /// Ok(true) if removed, Ok(false) on a miss; ErrorKind::Busy if pinned or
    /// in flight unless `force` (which also cancels a reservation).
    pub fn remove(&self, key: &[u8], force: bool) -> Result<bool> {
        let flags = if force { sys::DAXKV_FORCE } else { 0 };
        let rc = unsafe { sys::daxkv_remove(self.h(), key.as_ptr().cast(), key.len(), flags) };
        if rc == -libc_errno::ENOENT {
            return Ok(false);
        }
        check(rc).map(|_| true)
    }

    /// Pin (refcount) a committed entry.
    pub fn pin(&self, key: &[u8]) -> Result<()> {
        check(unsafe { sys::daxkv_pin(self.h(), key.as_ptr().cast(), key.len()) }).map(|_| ())
    }

    /// Drop one pin.
    pub fn unpin(&self, key: &[u8]) -> Result<()> {
        check(unsafe { sys::daxkv_unpin(self.h(), key.as_ptr().cast(), key.len()) }).map(|_| ())
    }

    fn run(&self, f: unsafe extern "C" fn(*mut sys::daxkv_store, *mut sys::daxkv_item, usize, u32) -> c_int,
           items: &mut [sys::daxkv_item], flags: u32) -> Result<usize> {
        Ok(check(unsafe { f(self.h(), items.as_mut_ptr(), items.len(), flags) })? as usize)
    }

    /// Store many values. Per item: Ok(true) stored, Ok(false) already
    /// present or in flight, Err for that item's failure.
    pub fn put_many(&self, keys: &[&[u8]], values: &[&[u8]], replace: bool) -> Result<Vec<ItemResult<bool>>> {
        if keys.len() != values.len() {
            return Err(Error::invalid("keys and values differ in length"));
        }
        let mut items = items_for(keys);
        for (it, v) in items.iter_mut().zip(values) {
            // The library only reads put sources; the field is shared with get.
            it.data = v.as_ptr() as *mut c_void;
            it.len = v.len();
        }
        self.run(sys::daxkv_put_batch, &mut items, if replace { sys::DAXKV_REPLACE } else { 0 })?;
        let d = ItemDetail::read(items.iter().map(|it| it.status));
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, it)| if it.status >= 0 { Ok(it.status == 0) } else { Err(d.err(i, it.status)) })
            .collect())
    }

    /// Copy many values into `dsts`. Per item: Ok(Some(len)) hit, Ok(None)
    /// miss, Err (e.g. BufferTooSmall, with the value's length in
    /// [`Error::needed`]). With `prefix`, only the run of hits
    /// from the start is returned, followed by the error of the item it
    /// stopped at where that item failed rather than missed (a destination
    /// too small, a bad key), which is not the end of a prefix.
    pub fn get_many_into(&self, keys: &[&[u8]], dsts: &mut [&mut [u8]], prefix: bool)
        -> Result<Vec<ItemResult<Option<usize>>>> {
        if keys.len() != dsts.len() {
            return Err(Error::invalid("keys and destinations differ in length"));
        }
        let mut items = items_for(keys);
        for (it, d) in items.iter_mut().zip(dsts.iter_mut()) {
            it.data = d.as_mut_ptr().cast();
            it.len = d.len();
        }
        let n = self.run(sys::daxkv_get_batch, &mut items, if prefix { sys::DAXKV_PREFIX } else { 0 })?;
        let d = ItemDetail::read(items.iter().map(|it| it.status));
        let take = if prefix { n + stopped_by_a_failure(&items, n, |it| it.status) as usize } else { items.len() };
        Ok(items[..take]
            .iter()
            .enumerate()
            .map(|(i, it)| match it.status {
                0 => Ok(Some(it.len)),
                s if s == -libc_errno::ENOENT => Ok(None),
                s => Err(d.err(i, s).with_needed(it.len)),
            })
            .collect())
    }

    /// Per key, whether it is committed; `pin` pins every hit.
    pub fn contains_many(&self, keys: &[&[u8]], pin: bool) -> Result<Vec<ItemResult<bool>>> {
        let mut items = items_for(keys);
        self.run(sys::daxkv_contains_batch, &mut items, if pin { sys::DAXKV_PIN } else { 0 })?;
        let d = ItemDetail::read(items.iter().map(|it| it.status));
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, it)| if it.status >= 0 { Ok(it.status == 1) } else { Err(d.err(i, it.status)) })
            .collect())
    }

    /// Consecutive committed keys from the start (pinned if `pin`). A key
    /// that fails rather than misses (a bad key) is returned as the error,
    /// not taken for the end of the prefix; the keys pinned are unpinned
    /// again.
    pub fn prefix_len(&self, keys: &[&[u8]], pin: bool) -> Result<usize> {
        let mut items = items_for(keys);
        let flags = sys::DAXKV_PREFIX | if pin { sys::DAXKV_PIN } else { 0 };
        let n = self.run(sys::daxkv_contains_batch, &mut items, flags)?;
        match items.get(n) {
            Some(it) if it.status < 0 => {
                // Read before the unpin, which would leave its own message.
                let err = ItemDetail::read(items.iter().map(|it| it.status)).err(n, it.status);
                if pin && n > 0 {
                    // Best effort, as the error is what is returned.
                    let _ = self.unpin_many(&keys[..n]);
                }
                Err(err)
            }
            _ => Ok(n),
        }
    }

    /// Per key: Ok(true) removed, Ok(false) miss, Err (e.g. Busy) otherwise.
    pub fn remove_many(&self, keys: &[&[u8]], force: bool) -> Result<Vec<ItemResult<bool>>> {
        let mut items = items_for(keys);
        self.run(sys::daxkv_remove_batch, &mut items, if force { sys::DAXKV_FORCE } else { 0 })?;
        let d = ItemDetail::read(items.iter().map(|it| it.status));
        Ok(items.iter().enumerate().map(|(i, it)| match it.status {
            0 => Ok(true),
            s if s == -libc_errno::ENOENT => Ok(false),
            s => Err(d.err(i, s)),
        }).collect())
    }

    /// Per key: Ok(()) if a pin was dropped, else that item's error.
    pub fn unpin_many(&self, keys: &[&[u8]]) -> Result<Vec<ItemResult<()>>> {
        let mut items = items_for(keys);
        self.run(sys::daxkv_unpin_batch, &mut items, 0)?;
        let d = ItemDetail::read(items.iter().map(|it| it.status));
        Ok(items.iter().enumerate().map(|(i, it)| if it.status >= 0 { Ok(()) } else { Err(d.err(i, it.status)) }).collect())
    }

    /// Borrow an entry's bytes in place (zero copy).
    pub fn lease(&self, key: &[u8]) -> Result<Lease<'_>> {
        let mut p = ptr::null_mut();
        check(unsafe { sys::daxkv_lease_acquire(self.h(), key.as_ptr().cast(), key.len(), &mut p) })?;
        Ok(Lease { l: NonNull::new(p).expect("daxkv_lease_acquire returned NULL"), _store: std::marker::PhantomData })
    }

    /// Lease every key's entry in one call (daxkv_lease_batch): per key,
    /// Ok(Some(lease)), Ok(None) if it is not committed, or its error.
    /// With `prefix`, only the leading run of leased keys is returned,
    /// followed by the error of the key it stopped at where that key
    /// failed rather than missed (a bad key).
    pub fn lease_many(&self, keys: &[&[u8]], prefix: bool) -> Result<Vec<ItemResult<Option<Lease<'_>>>>> {
        let mut items: Vec<sys::daxkv_lease_item> = keys
            .iter()
            .map(|k| sys::daxkv_lease_item { key: k.as_ptr().cast(), key_len: k.len(), ..Default::default() })
            .collect();
        let flags = if prefix { sys::DAXKV_PREFIX } else { 0 };
        let n = check(unsafe { sys::daxkv_lease_batch(self.h(), items.as_mut_ptr(), items.len(), flags) })?;
        let d = ItemDetail::read(items.iter().map(|it| if it.lease.is_null() { it.status } else { 0 }));
        // Every lease becomes a Lease at once, so that each is released
        // (on drop) whatever is returned.
        let results: Vec<ItemResult<Option<Lease<'_>>>> = items
            .iter()
            .enumerate()
            .map(|(i, it)| match NonNull::new(it.lease) {
                Some(l) => Ok(Some(Lease { l, _store: std::marker::PhantomData })),
                None if it.status == -libc_errno::ENOENT => Ok(None),
                None => Err(d.err(i, it.status)),
            })
            .collect();
        let take = if prefix {
            n as usize + stopped_by_a_failure(&items, n as usize, |it| if it.lease.is_null() { it.status } else { 0 }) as usize
        } else {
            results.len()
        };
        Ok(results.into_iter().take(take).collect())
    }

    /// Copy leased entries out (daxkv_lease_read_batch): on the library's
    /// workers, under `sigbus=handle`'s guard and `verify=read`'s checks,
    /// which reads through [`Lease::as_bytes`] and [`Lease::meta`] are not.
    /// Item i gets `leases[i]`'s value into `dsts[i]` and its metadata into
    /// `metas[i]`; an empty buffer copies nothing of that part. Per item:
    /// Ok((value length, metadata length)), or Err: BufferTooSmall with the
    /// length needed in [`Error::needed`] (the value's, or where the value
    /// fits, the metadata's), Io where the entry's bytes faulted or failed
    /// their checksum (the library dropped the entry; the lease stays held
    /// until dropped). A lease of another store is refused (InvalidArgument).
    pub fn read_leases(&self, leases: &[&Lease<'_>], dsts: &mut [&mut [u8]], metas: &mut [&mut [u8]])
        -> Result<Vec<ItemResult<(usize, usize)>>> {
        if leases.len() != dsts.len() || leases.len() != metas.len() {
            return Err(Error::invalid("leases, destinations and metadata buffers differ in length"));
        }
        let handles: Vec<*mut sys::daxkv_lease> = leases.iter().map(|l| l.l.as_ptr()).collect();
        let buffer = |b: &mut [u8]| if b.is_empty() { ptr::null_mut() } else { b.as_mut_ptr().cast() };
        let mut items: Vec<sys::daxkv_item> = dsts
            .iter_mut()
            .zip(metas.iter_mut())
            .map(|(d, m)| sys::daxkv_item {
                data: buffer(d),
                len: d.len(),
                meta: buffer(m),
                meta_len: m.len(),
                ..Default::default()
            })
            .collect();
        check(unsafe { sys::daxkv_lease_read_batch(self.h(), handles.as_ptr(), items.as_mut_ptr(), items.len(), 0) })?;
        let d = ItemDetail::read(items.iter().map(|it| it.status));
        Ok(items
            .iter()
            .zip(dsts.iter())
            .enumerate()
            .map(|(i, (it, dst))| match it.status {
                0 => Ok((it.len, it.meta_len)),
                s => Err(d.err(i, s).with_needed(if !dst.is_empty() && dst.len() < it.len { it.len } else { it.meta_len })),
            })
            .collect())
    }

    /// Reserve a slot of `len` bytes for `key`, to fill in place. Ok(None)
    /// if the key is already present or in flight.
    pub fn reserve(&self, key: &[u8], len: usize) -> Result<Option<Reservation<'_>>> {
        let mut p = ptr::null_mut();
        let rc = check(unsafe { sys::daxkv_reserve(self.h(), key.as_ptr().cast(), key.len(), len, &mut p) })?;
        if rc == sys::DAXKV_EXISTED || p.is_null() {
            return Ok(None);
        }
        Ok(Some(Reservation { r: NonNull::new(p).unwrap(), _store: std::marker::PhantomData }))
    }

    /// `reserve` with the entry's metadata attached in the same library
    /// call (daxkv_reserve_meta). Ok(None) if the key is already present or
    /// in flight; metadata larger than `meta_bytes` reserves nothing.
    pub fn reserve_with_meta(&self, key: &[u8], len: usize, meta: &[u8]) -> Result<Option<Reservation<'_>>> {
        let mut p = ptr::null_mut();
        let rc = check(unsafe {
            sys::daxkv_reserve_meta(
                self.h(),
                key.as_ptr().cast(),
                key.len(),
                len,
                meta.as_ptr().cast(),
                meta.len(),
                ptr::null_mut(),
                &mut p,
            )
        })?;
        if rc == sys::DAXKV_EXISTED || p.is_null() {
            return Ok(None);
        }
        Ok(Some(Reservation { r: NonNull::new(p).unwrap(), _store: std::marker::PhantomData }))
    }

    /// Counters and capacity.
    pub fn stats(&self) -> Result<Stats> {
        let mut st = Stats { struct_size: std::mem::size_of::<Stats>() as u32, ..Default::default() };
        check(unsafe { sys::daxkv_stats(self.h(), &mut st) })?;
        Ok(st)
    }

    /// The store's state as JSON.
    pub fn status_json(&self) -> Result<String> {
        self.text(|h, buf, cap, need| unsafe { sys::daxkv_status_json(h, buf, cap, need) })
    }

    /// Counters, gauges and histograms in the Prometheus text exposition
    /// format (0.0.4); metric names start with "daxkv_".
    pub fn stats_prometheus(&self) -> Result<String> {
        self.text(|h, buf, cap, need| unsafe { sys::daxkv_stats_prometheus(h, buf, cap, need) })
    }

    /// Calls a function of the `(buf, cap, needed)` kind until the text fits.
    fn text(&self, f: impl Fn(*mut sys::daxkv_store, *mut std::os::raw::c_char, usize, *mut usize) -> c_int)
        -> Result<String> {
        read_text(|buf, cap, need| f(self.h(), buf, cap, need))
    }
}

/// Calls a function of the `(buf, cap, needed)` kind until the text fits.
fn read_text(f: impl Fn(*mut std::os::raw::c_char, usize, *mut usize) -> c_int) -> Result<String> {
    let mut cap = 4096usize;
    loop {
        let mut buf = vec![0u8; cap];
        let mut needed = 0usize;
        let rc = f(buf.as_mut_ptr().cast(), cap, &mut needed);
        if rc == -libc_errno::ENOBUFS && needed > cap {
            cap = needed; // grew between calls: retry
            continue;
        }
        check(rc)?;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        buf.truncate(end);
        return String::from_utf8(buf).map_err(|_| Error::invalid("the library's text is not UTF-8"));
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // The completion thread uses the handle: it goes first. Batches
        // still in flight are finished or cancelled by daxkv_close, after
        // which their buffers (in `aio`) can be freed.
        self.aio.stop();
        unsafe { sys::daxkv_close(self.h.as_ptr()) }
    }
}

/// A read-only, zero-copy view of an entry. Borrows its store, so the store
/// cannot be dropped while the lease lives; released on drop.
///
/// ```compile_fail
/// # use daxkv::{Config, Store};
/// let mut cfg = Config::new().unwrap();
/// cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 16 << 20).unwrap();
/// let store = Store::open(&cfg).unwrap();
/// store.put(b"k", b"v", false).unwrap();
/// let lease = store.lease(b"k").unwrap();
/// drop(store); // error: `store` is still borrowed by `lease`
/// assert_eq!(&lease[..], b"v");
/// ```
///
/// Nor can the bytes outlive the lease that holds them:
///
/// ```compile_fail
/// # use daxkv::{Config, Store};
/// # let mut cfg = Config::new().unwrap();
/// # cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 16 << 20).unwrap();
/// # let store = Store::open(&cfg).unwrap();
/// # store.put(b"k", b"v", false).unwrap();
/// let bytes: &[u8] = {
///     let lease = store.lease(b"k").unwrap();
///     &lease[..] // error: `lease` is dropped (released) here
/// };
/// assert_eq!(bytes, b"v");
/// ```
pub struct Lease<'s> {
    l: NonNull<sys::daxkv_lease>,
    _store: std::marker::PhantomData<&'s Store>,
}

// The lease's bytes are immutable while it is held and the library allows
// releasing it from any thread. The library knows a lease by the thread
// that took it: moved elsewhere, a pool call that waits for it there is not
// refused as Deadlock but waits (the README says so).
unsafe impl Send for Lease<'_> {}
unsafe impl Sync for Lease<'_> {}

impl Lease<'_> {
    /// The entry's first byte in the arena (what [`SlotInfo::addr`] gives).
    pub fn as_ptr(&self) -> *const u8 {
        unsafe { sys::daxkv_lease_data(self.l.as_ptr()) }.cast()
    }

    pub fn as_bytes(&self) -> &[u8] {
        let n = unsafe { sys::daxkv_lease_size(self.l.as_ptr()) };
        if n == 0 {
            return &[];
        }
        unsafe { std::slice::from_raw_parts(sys::daxkv_lease_data(self.l.as_ptr()).cast(), n) }
    }

    /// The entry's metadata blob.
    pub fn meta(&self) -> &[u8] {
        let mut n = 0usize;
        let p = unsafe { sys::daxkv_lease_meta(self.l.as_ptr(), &mut n) };
        if p.is_null() || n == 0 {
            return &[];
        }
        unsafe { std::slice::from_raw_parts(p.cast(), n) }
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        unsafe { sys::daxkv_lease_release(self.l.as_ptr()) }
    }
}

/// A slot reserved for a key, filled through `data_mut()` and made visible
/// by `commit()`. Aborted on drop unless committed.
///
/// The slice `data_mut()` gives cannot be written after the reservation is
/// committed (or aborted), when the slot may already be another entry's:
///
/// ```compile_fail
/// # use daxkv::{Config, Store};
/// # let mut cfg = Config::new().unwrap();
/// # cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 16 << 20).unwrap();
/// # let store = Store::open(&cfg).unwrap();
/// let mut r = store.reserve(b"k", 4).unwrap().unwrap();
/// let buf = r.data_mut();
/// r.commit().unwrap(); // error: `r` is still borrowed by `buf`
/// buf[0] = 1;
/// ```
///
/// It is used by one thread at a time (the C ABI's rule), so it is not
/// `Sync`:
///
/// ```compile_fail
/// # use daxkv::{Config, Store};
/// # let mut cfg = Config::new().unwrap();
/// # cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 16 << 20).unwrap();
/// # let store = Store::open(&cfg).unwrap();
/// fn shared<T: Sync>(_: &T) {}
/// let r = store.reserve(b"k", 4).unwrap().unwrap();
/// shared(&r); // error: `Reservation` is not `Sync`
/// ```
pub struct Reservation<'s> {
    r: NonNull<sys::daxkv_reservation>,
    _store: std::marker::PhantomData<&'s Store>,
}

// Owned exclusively; writing needs &mut. Not Sync: set_meta mutates it.
// Known to the library by the thread that took it, as a lease is.
unsafe impl Send for Reservation<'_> {}

impl Reservation<'_> {
    pub fn len(&self) -> usize {
        unsafe { sys::daxkv_reservation_size(self.r.as_ptr()) }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first byte of the reserved slot (what [`SlotInfo::addr`] gives).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        unsafe { sys::daxkv_reservation_data(self.r.as_ptr()) }.cast()
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        let n = self.len();
        if n == 0 {
            return &mut [];
        }
        unsafe { std::slice::from_raw_parts_mut(sys::daxkv_reservation_data(self.r.as_ptr()).cast(), n) }
    }

    /// Attach a metadata blob (copied) to be committed with the entry.
    pub fn set_meta(&mut self, meta: &[u8]) -> Result<()> {
        check(unsafe { sys::daxkv_reservation_set_meta(self.r.as_ptr(), meta.as_ptr().cast(), meta.len()) })
            .map(|_| ())
    }

    /// Make the entry visible. The reservation is consumed even on error
    /// (Cancelled after a forced remove, Shutdown after shutdown).
    pub fn commit(self) -> Result<()> {
        let r = self.r.as_ptr();
        std::mem::forget(self);
        check(unsafe { sys::daxkv_commit(r) }).map(|_| ())
    }

    /// Drop the reservation; its slot is returned.
    pub fn abort(self) {}
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        unsafe { sys::daxkv_abort(self.r.as_ptr()) }
    }
}

/// Copy `src[i]` into `dst[i]` for every pair on the library's worker pool.
/// Each destination must be at least as long as its source.
pub fn memcpy_batch(dst: &mut [&mut [u8]], src: &[&[u8]]) -> Result<()> {
    if dst.len() != src.len() {
        return Err(Error::invalid("dst and src differ in length"));
    }
    for (i, (d, s)) in dst.iter().zip(src).enumerate() {
        if d.len() < s.len() {
            return Err(Error::invalid(format!("range {i}: destination shorter than source")));
        }
    }
    let d: Vec<*mut c_void> = dst.iter_mut().map(|d| d.as_mut_ptr().cast()).collect();
    let s: Vec<*const c_void> = src.iter().map(|s| s.as_ptr().cast()).collect();
    let l: Vec<usize> = src.iter().map(|s| s.len()).collect();
    check(unsafe { sys::daxkv_memcpy_batch(d.as_ptr(), s.as_ptr(), l.as_ptr(), d.len(), 0) }).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::{sys, Error, ErrorKind};
    use std::collections::BTreeSet;

    /// Linux values of the errno names the C ABI's documentation uses.
    const ERRNO: &[(&str, i32)] = &[
        ("EPERM", 1), ("ENOENT", 2), ("EIO", 5), ("E2BIG", 7), ("EAGAIN", 11), ("ENOMEM", 12),
        ("EACCES", 13), ("EBUSY", 16), ("EEXIST", 17), ("ENODEV", 19), ("ENOTDIR", 20), ("EISDIR", 21),
        ("EINVAL", 22), ("ENFILE", 23), ("EMFILE", 24), ("ENOSPC", 28), ("EDEADLK", 35), ("ENAMETOOLONG", 36),
        ("ELOOP", 40), ("EPROTO", 71), ("EOVERFLOW", 75),
        ("ENOTSUP", 95), ("ENOBUFS", 105), ("ESHUTDOWN", 108), ("ETIMEDOUT", 110), ("ECANCELED", 125),
    ];

    /// Every "-ENAME" the header and the man pages name.
    fn documented_errno_names() -> BTreeSet<String> {
        let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
        let mut texts = vec![std::fs::read_to_string(top.join("include/daxkv.h")).unwrap()];
        for e in std::fs::read_dir(top.join("docs/man")).unwrap() {
            texts.push(std::fs::read_to_string(e.unwrap().path()).unwrap());
        }
        let mut names = BTreeSet::new();
        for t in &texts {
            // The header writes "-ENOENT", the man pages "\-ENOENT".
            for (i, _) in t.match_indices("-E") {
                let name: String = t[i + 1..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit()).collect();
                if name.len() > 2 {
                    names.insert(name);
                }
            }
        }
        names
    }

    /// Bad input: every error code the C ABI documents and the library's
    /// own codes. Each must give a kind of its own, never Other.
    #[test]
    fn every_documented_code_has_a_kind_of_its_own() {
        let names = documented_errno_names();
        assert!(names.contains("ENOENT") && names.contains("EPROTO"), "the documentation was not read: {names:?}");
        for name in &names {
            let code = ERRNO
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{name} is documented but not in this test's table"))
                .1;
            let e = Error::item(-code);
            assert_ne!(e.kind(), ErrorKind::Other, "-{name} ({}) is documented but maps to Other", -code);
            assert_eq!(e.code(), -code);
            assert_eq!(e.errno(), Some(code));
        }
        assert_eq!(Error::item(sys::DAXKV_E_CORRUPT).kind(), ErrorKind::Corrupt);
        assert_eq!(Error::item(sys::DAXKV_E_FOREIGN).kind(), ErrorKind::Foreign);
    }

    /// Bad input: codes the C ABI does not document: -9999, -4095, the
    /// smallest i32 (whose negation overflows) and a positive one. Each is
    /// Other, with its code kept.
    #[test]
    fn an_undocumented_code_is_other_and_kept() {
        for code in [-9999, -4095, i32::MIN, 7] {
            let e = Error::item(code);
            assert_eq!(e.kind(), ErrorKind::Other, "code {code}");
            assert_eq!(e.code(), code, "an unknown code must be kept");
        }
    }
}
