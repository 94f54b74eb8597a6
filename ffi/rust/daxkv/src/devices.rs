//! Discovery: the DAX devices of the host, and what an open would see at a
//! path.

use crate::{check, libc_errno, path_cstring, sys, Error, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;

/// What a device is (DAXKV_KIND_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A Device-DAX character device.
    DevDax,
    /// A regular file (file arena).
    File,
    /// "mem:" anonymous memory.
    Memory,
    /// A kind this binding does not know (a newer library).
    Other(u32),
}

/// How a DAX device is set up (DAXKV_MODE_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DaxMode {
    /// Not a DAX device.
    None,
    /// Usable through its /dev node.
    DevDax,
    /// Onlined as system RAM (kmem): no usable /dev node.
    SystemRam,
    /// A mode this binding does not know (a newer library).
    Other(u32),
}

/// A device as the library sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub kind: DeviceKind,
    pub mode: DaxMode,
    /// The NUMA node, when known.
    pub numa_node: Option<i32>,
    /// The memory's target node, when known.
    pub target_node: Option<i32>,
    /// Bytes.
    pub size: u64,
    /// Mapping alignment in bytes.
    pub align: u64,
    /// /dev/daxX.Y, the file path, or "mem:".
    pub path: PathBuf,
    /// daxX.Y for DAX devices (empty otherwise).
    pub name: String,
}

fn c_chars(a: &[std::os::raw::c_char]) -> &[u8] {
    let b = unsafe { std::slice::from_raw_parts(a.as_ptr().cast::<u8>(), a.len()) };
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

impl From<&sys::daxkv_device_info> for DeviceInfo {
    fn from(d: &sys::daxkv_device_info) -> DeviceInfo {
        DeviceInfo {
            kind: match d.kind {
                sys::DAXKV_KIND_DEVDAX => DeviceKind::DevDax,
                sys::DAXKV_KIND_FILE => DeviceKind::File,
                sys::DAXKV_KIND_MEMORY => DeviceKind::Memory,
                k => DeviceKind::Other(k),
            },
            mode: match d.mode {
                sys::DAXKV_MODE_NONE => DaxMode::None,
                sys::DAXKV_MODE_DEVDAX => DaxMode::DevDax,
                sys::DAXKV_MODE_SYSTEM_RAM => DaxMode::SystemRam,
                m => DaxMode::Other(m),
            },
            numa_node: (d.numa_node >= 0).then_some(d.numa_node),
            target_node: (d.target_node >= 0).then_some(d.target_node),
            size: d.size,
            align: d.align,
            path: PathBuf::from(OsStr::from_bytes(c_chars(&d.path))),
            name: String::from_utf8_lossy(c_chars(&d.name)).into_owned(),
        }
    }
}

/// Every DAX device of the host (devdax and system-ram modes).
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    let mut count = 0usize;
    check(unsafe { sys::daxkv_list_devices(ptr::null_mut(), 0, &mut count) })
        .or_else(|e| if e.code() == -libc_errno::ENOBUFS { Ok(0) } else { Err(e) })?;
    // Devices can appear between the calls: retry with the new count.
    for _ in 0..8 {
        let mut v = vec![sys::daxkv_device_info::default(); count.max(1)];
        let rc = unsafe { sys::daxkv_list_devices(v.as_mut_ptr(), v.len(), &mut count) };
        if rc == -libc_errno::ENOBUFS {
            continue;
        }
        check(rc)?;
        v.truncate(count);
        return Ok(v.iter().map(DeviceInfo::from).collect());
    }
    Err(Error::invalid("the device list kept changing while it was read"))
}

/// What an open would see at `path`:
/// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when it is missing,
/// [`ErrorKind::NoDevice`](crate::ErrorKind::NoDevice) when it is not usable.
pub fn probe(path: impl AsRef<Path>) -> Result<DeviceInfo> {
    let p = path_cstring("device path", path.as_ref())?;
    let mut d = sys::daxkv_device_info::default();
    check(unsafe { sys::daxkv_probe(p.as_ptr(), &mut d) })?;
    Ok((&d).into())
}
