//! The library's log messages, delivered to a Rust closure.

use crate::sys;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, RwLock};

/// Severity of a log message (syslog's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Err,
    Warning,
    Info,
    Debug,
}

impl LogLevel {
    fn raw(self) -> c_int {
        match self {
            LogLevel::Err => sys::DAXKV_LOG_ERR,
            LogLevel::Warning => sys::DAXKV_LOG_WARNING,
            LogLevel::Info => sys::DAXKV_LOG_INFO,
            LogLevel::Debug => sys::DAXKV_LOG_DEBUG,
        }
    }

    fn from_raw(l: c_int) -> LogLevel {
        // syslog levels the library does not use fall to the nearest kind.
        match l {
            l if l <= sys::DAXKV_LOG_ERR => LogLevel::Err,
            l if l <= 5 => LogLevel::Warning,
            l if l <= sys::DAXKV_LOG_INFO => LogLevel::Info,
            _ => LogLevel::Debug,
        }
    }
}

type LogFn = dyn Fn(LogLevel, &str) + Send + Sync;

// The logger is process-wide, as the library's. The C side gets a fixed
// trampoline and no argument, so it never holds a pointer into Rust memory
// that could be freed while a message is being delivered on another thread.
static LOGGER: RwLock<Option<Arc<LogFn>>> = RwLock::new(None);
// Serializes changes so that the library's level and the closure agree.
static SETTING: Mutex<()> = Mutex::new(());

extern "C" fn trampoline(level: c_int, msg: *const c_char, _arg: *mut c_void) {
    // A panic must not unwind into C (it would abort the process): it is
    // caught and the message dropped.
    let r = catch_unwind(AssertUnwindSafe(|| {
        let f = LOGGER.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let (Some(f), false) = (f, msg.is_null()) {
            let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
            f(LogLevel::from_raw(level), &text);
        }
    }));
    if let Err(payload) = r {
        // The payload's drop may panic too (any type can be a payload):
        // caught as well, and the payload of that panic is leaked rather
        // than dropped here.
        if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(again);
        }
    }
}

/// Send the library's messages up to `max_level` to `f`, process-wide
/// (replacing any earlier logger). `f` runs on the thread that logs (a
/// caller's or one of the library's), with no library lock held; a panic in
/// it is caught and the message dropped (as is a panic in dropping that
/// panic's payload).
pub fn set_log_fn<F>(max_level: LogLevel, f: F)
where
    F: Fn(LogLevel, &str) + Send + Sync + 'static,
{
    let _g = SETTING.lock().unwrap_or_else(|e| e.into_inner());
    *LOGGER.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(f));
    unsafe { sys::daxkv_set_log_fn(Some(trampoline), max_level.raw(), std::ptr::null_mut()) }
}

/// Turn logging off (the default: the library never prints by itself).
pub fn clear_log_fn() {
    let _g = SETTING.lock().unwrap_or_else(|e| e.into_inner());
    unsafe { sys::daxkv_set_log_fn(None, 0, std::ptr::null_mut()) }
    *LOGGER.write().unwrap_or_else(|e| e.into_inner()) = None;
}
