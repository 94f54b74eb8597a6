//! A running store's statistics, read without opening the store: each open
//! store publishes its counters and status every `stats_interval`
//! milliseconds (configuration key, default 1000; 0 publishes nothing) into
//! a page file in `$DAXKV_STATS_DIR` (default `/dev/shm`), found by the
//! path of any of its devices. A monitor or exporter process can watch a
//! store that serves in another process without disturbing it.
//!
//! Errors: [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when no
//! running store publishes for the path (none has it open, its
//! stats_interval is 0, it died, or the path does not exist);
//! [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) for an
//! empty path or `"mem:"` (which no other process can name);
//! [`ErrorKind::PermissionDenied`](crate::ErrorKind::PermissionDenied);
//! [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) (`EPROTO`: a page of
//! another format) and [`ErrorKind::TryAgain`](crate::ErrorKind::TryAgain)
//! (`EAGAIN`: the store was publishing throughout the attempts).

use crate::{check, path_cstring, read_text, sys, Result, Stats};
use std::path::Path;

/// The statistics that the store holding the device at `path` last
/// published (at most its stats_interval old). Members a publisher of an
/// older library did not have are zero.
pub fn stats_peek(path: impl AsRef<Path>) -> Result<Stats> {
    let p = path_cstring("device path", path.as_ref())?;
    let mut st = Stats { struct_size: std::mem::size_of::<Stats>() as u32, ..Default::default() };
    check(unsafe { sys::daxkv_stats_peek(p.as_ptr(), &mut st) })?;
    Ok(st)
}

/// That store's status JSON (as [`Store::status_json`](crate::Store::status_json)) with a
/// `"publisher"` object: `pid`, `store_id` (the uuid of its first device's
/// arena, also the `store` label of its Prometheus samples) and
/// `published_unix_ns`.
pub fn status_peek(path: impl AsRef<Path>) -> Result<String> {
    let p = path_cstring("device path", path.as_ref())?;
    read_text(|buf, cap, need| unsafe { sys::daxkv_status_peek(p.as_ptr(), buf, cap, need) })
}

/// That store's statistics in the Prometheus text exposition format (as
/// [`Store::stats_prometheus`](crate::Store::stats_prometheus)), every sample labelled with the
/// store's id: what an exporter process serves for a store running elsewhere.
pub fn stats_prometheus_peek(path: impl AsRef<Path>) -> Result<String> {
    let p = path_cstring("device path", path.as_ref())?;
    read_text(|buf, cap, need| unsafe { sys::daxkv_stats_prometheus_peek(p.as_ptr(), buf, cap, need) })
}
