//! The few Linux calls std does not offer (waiting on file descriptors,
//! eventfd), declared by hand: the crate depends on nothing from
//! crates.io, and these come from the C library std already links.

use std::fs::File;
use std::io;
use std::os::raw::{c_int, c_short, c_uint, c_ulong};
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: c_short,
    revents: c_short,
}

const POLLIN: c_short = 0x1;
const EFD_NONBLOCK: c_int = 0o4000;
const EFD_CLOEXEC: c_int = 0o2000000;

extern "C" {
    fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
    fn eventfd(initval: c_uint, flags: c_int) -> c_int;
}

/// Wait until one of `fds` is readable or `timeout` passes (None: no
/// limit). Returns which were readable (all false on a timeout).
pub(crate) fn wait_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut p: Vec<PollFd> = fds.iter().map(|&fd| PollFd { fd, events: POLLIN, revents: 0 }).collect();
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up: a sub-millisecond rest must still wait, not spin.
                left.as_millis().saturating_add(u128::from(left.subsec_nanos() % 1_000_000 != 0)).min(i32::MAX as u128)
                    as c_int
            }
        };
        let rc = unsafe { poll(p.as_mut_ptr(), p.len() as c_ulong, ms) };
        if rc >= 0 {
            return Ok(p.iter().map(|x| x.revents != 0).collect());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A non-blocking eventfd, used to wake a thread blocked in poll(2).
pub(crate) struct EventFd(File);

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        let fd = unsafe { eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EventFd(File::from(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    pub(crate) fn signal(&self) {
        use std::io::Write;
        // Cannot fail short of a counter overflow, which leaves it readable.
        let _ = (&self.0).write(&1u64.to_ne_bytes());
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
