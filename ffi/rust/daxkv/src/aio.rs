//! Asynchronous batches: daxkv_submit, daxkv_event_fd and daxkv_poll.
//!
//! [`Store::submit`] queues a [`Batch`] and returns a [`Ticket`]. The batch
//! owns its keys and buffers, because the library reads and writes them
//! after `submit` returns, until its completion is collected; the binding
//! keeps them until then, even when the ticket is dropped. A ticket gives
//! its [`Completion`] in any of three ways:
//!
//! - as a [`Future`]: no runtime is needed; a helper thread of the store
//!   waits on the library's event fd while futures are pending and wakes
//!   them;
//! - blocking, with [`Ticket::wait`] / [`Ticket::wait_timeout`];
//! - from a poll loop of your own: register [`Store::event_fd`] with any
//!   reactor (epoll, mio, ...), call [`Store::collect_completions`] when it
//!   is readable (this also wakes the futures it completes), then
//!   [`Ticket::try_take`].
//!
//! Collecting is shared: whichever of these drains the library's queue
//! routes every completion to its own ticket. Until the event fd has been
//! asked for, [`Store::submit`] and dropping a ticket collect too, so the
//! batches of tickets dropped unclaimed are freed as they finish. The one combination to avoid
//! is a `try_take` poll loop driven only by the event fd while other tickets
//! of the same store are awaited as futures: the helper thread may collect
//! the loop's completions without the fd becoming readable for it.

use crate::os::{self, EventFd};
use crate::{check, libc_errno, sys, Error, ItemResult, Result, Store};
use std::collections::HashMap;
use std::future::Future;
use std::os::raw::{c_int, c_uint, c_void};
use std::os::unix::io::{BorrowedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Get,
    Contains,
    Remove,
}

impl Op {
    fn code(self) -> c_int {
        match self {
            Op::Put => sys::DAXKV_OP_PUT,
            Op::Get => sys::DAXKV_OP_GET,
            Op::Contains => sys::DAXKV_OP_CONTAINS,
            Op::Remove => sys::DAXKV_OP_REMOVE,
        }
    }
}

/// A batch to submit. It owns its keys and values (or destination
/// buffers), which the library uses until the batch completes.
pub struct Batch {
    op: Op,
    flags: c_uint,
    keys: Vec<Vec<u8>>,
    /// put: the values; get: one destination buffer per key (its length is
    /// the capacity); others: empty.
    bufs: Vec<Vec<u8>>,
    items: Vec<sys::daxkv_item>,
}

// The raw pointers in `items` point into the batch's own heap buffers,
// which never move or change while the batch is in flight.
unsafe impl Send for Batch {}

impl Batch {
    fn new(op: Op, flags: c_uint, keys: Vec<Vec<u8>>, bufs: Vec<Vec<u8>>) -> Batch {
        Batch { op, flags, keys, bufs, items: Vec::new() }
    }

    /// Store values (daxkv_put_batch); `replace` overwrites present keys.
    pub fn put<K: Into<Vec<u8>>, V: Into<Vec<u8>>>(items: impl IntoIterator<Item = (K, V)>, replace: bool) -> Batch {
        let (keys, vals) = items.into_iter().map(|(k, v)| (k.into(), v.into())).unzip();
        Batch::new(Op::Put, if replace { sys::DAXKV_REPLACE } else { 0 }, keys, vals)
    }

    /// Copy values out (daxkv_get_batch), up to `capacity` bytes for each
    /// key; `prefix` stops at the first key that is not copied.
    pub fn get<K: Into<Vec<u8>>>(items: impl IntoIterator<Item = (K, usize)>, prefix: bool) -> Batch {
        let (keys, bufs) = items.into_iter().map(|(k, cap)| (k.into(), vec![0u8; cap])).unzip();
        Batch::new(Op::Get, if prefix { sys::DAXKV_PREFIX } else { 0 }, keys, bufs)
    }

    /// Look keys up (daxkv_contains_batch); `pin` pins every hit, `prefix`
    /// stops at the first miss.
    pub fn contains<K: Into<Vec<u8>>>(keys: impl IntoIterator<Item = K>, pin: bool, prefix: bool) -> Batch {
        let flags = if pin { sys::DAXKV_PIN } else { 0 } | if prefix { sys::DAXKV_PREFIX } else { 0 };
        Batch::new(Op::Contains, flags, keys.into_iter().map(Into::into).collect(), Vec::new())
    }

    /// Remove keys (daxkv_remove_batch); `force` removes pinned ones too.
    pub fn remove<K: Into<Vec<u8>>>(keys: impl IntoIterator<Item = K>, force: bool) -> Batch {
        let flags = if force { sys::DAXKV_FORCE } else { 0 };
        Batch::new(Op::Remove, flags, keys.into_iter().map(Into::into).collect(), Vec::new())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The completion of this batch reaches nobody (its ticket was dropped):
    /// a pinning lookup's hits are unpinned, since nobody is left who knows
    /// which keys they are. `rc` is the batch call's result; a lookup that
    /// failed as a whole pinned nothing.
    fn unpin_unclaimed(&mut self, h: *mut sys::daxkv_store, rc: c_int) {
        if self.op != Op::Contains || self.flags & sys::DAXKV_PIN == 0 || rc < 0 {
            return;
        }
        // With prefix, the items past the first miss are 0: only hits are 1.
        let mut hits: Vec<sys::daxkv_item> = self
            .items
            .iter()
            .filter(|it| it.status == 1)
            .map(|it| sys::daxkv_item { key: it.key, key_len: it.key_len, ..Default::default() })
            .collect();
        if !hits.is_empty() {
            // A failure (the store shutting down) leaves nothing to undo:
            // the pins go with the store.
            unsafe { sys::daxkv_unpin_batch(h, hits.as_mut_ptr(), hits.len(), 0) };
        }
    }

    fn build_items(&mut self) {
        let op = self.op;
        self.items = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let mut it = sys::daxkv_item { key: k.as_ptr().cast(), key_len: k.len(), ..Default::default() };
                if let Some(b) = self.bufs.get_mut(i) {
                    // put only reads its source; the field is shared with get.
                    it.data = if op == Op::Put { b.as_ptr() as *mut c_void } else { b.as_mut_ptr().cast() };
                    it.len = b.len();
                }
                it
            })
            .collect();
    }
}

/// What each item of a completed batch came to, by operation. A batch
/// with `prefix` has an outcome for the leading run of hits only, followed
/// by the item it stopped at where that item failed rather than missed (a
/// destination too small, a bad key): the keys after it were not looked at.
#[derive(Debug)]
pub enum Outcome {
    /// Per item: Ok(true) stored, Ok(false) already present or in flight.
    Put(Vec<ItemResult<bool>>),
    /// Per item: the value (Some) or a miss (None).
    Get(Vec<ItemResult<Option<Vec<u8>>>>),
    /// Per item: committed (pinned too, with `pin`) or not.
    Contains(Vec<ItemResult<bool>>),
    /// Per item: Ok(true) removed, Ok(false) a miss.
    Remove(Vec<ItemResult<bool>>),
}

/// A finished batch.
#[derive(Debug)]
pub struct Completion {
    /// The ticket's tag.
    pub tag: u64,
    /// What the batch call returned (items stored, hits, prefix length or
    /// items removed), or its error: [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled)
    /// when a shutdown cancelled it before it ran.
    pub result: Result<usize>,
    /// The batch's keys, in submission order.
    pub keys: Vec<Vec<u8>>,
    pub outcome: Outcome,
}

impl Completion {
    fn new(tag: u64, rc: c_int, b: Batch) -> Completion {
        let result = if rc < 0 { Err(Error::item(rc)) } else { Ok(rc as usize) };
        let st = |it: &sys::daxkv_item| it.status;
        // With prefix, the items the batch did not come to are not misses:
        // the outcome ends at the prefix, as the synchronous calls' results
        // do, with the item it stopped at where that one failed.
        let take = match (rc, b.flags & sys::DAXKV_PREFIX != 0) {
            (n, true) if n >= 0 => {
                let n = n as usize;
                n + crate::stopped_by_a_failure(&b.items, n, |it| it.status) as usize
            }
            _ => b.items.len(),
        };
        let items = &b.items[..take.min(b.items.len())];
        let outcome = match b.op {
            Op::Put => Outcome::Put(items.iter().map(|it| flag_result(st(it), 0)).collect()),
            Op::Contains => Outcome::Contains(items.iter().map(|it| flag_result(st(it), 1)).collect()),
            Op::Remove => Outcome::Remove(
                items
                    .iter()
                    .map(|it| match st(it) {
                        0 => Ok(true),
                        s if s == -libc_errno::ENOENT => Ok(false),
                        s => Err(Error::item(s)),
                    })
                    .collect(),
            ),
            Op::Get => Outcome::Get(
                items
                    .iter()
                    .zip(b.bufs)
                    .map(|(it, mut buf)| match it.status {
                        0 => {
                            buf.truncate(it.len);
                            Ok(Some(buf))
                        }
                        s if s == -libc_errno::ENOENT => Ok(None),
                        s => Err(Error::item(s).with_needed(it.len)),
                    })
                    .collect(),
            ),
        };
        Completion { tag, result, keys: b.keys, outcome }
    }
}

/// put: 0 stored, 1 existed; contains: 1 hit, 0 miss.
fn flag_result(status: c_int, yes: c_int) -> ItemResult<bool> {
    if status < 0 {
        Err(Error::item(status))
    } else {
        Ok(status == yes)
    }
}

struct Entry {
    batch: Batch,
    /// The batch call's result, once collected.
    done: Option<c_int>,
    waker: Option<Waker>,
    /// The ticket was dropped: free the buffers once the batch is done.
    abandoned: bool,
}

#[derive(Default)]
struct Inner {
    pending: HashMap<u64, Entry>,
    /// The library's event fd, once asked for.
    efd: Option<RawFd>,
    /// [`Store::event_fd`] handed the fd out: a poll loop of the caller's
    /// may be waiting for it to become readable.
    fd_lent: bool,
    helper: Option<JoinHandle<()>>,
    helper_running: bool,
    /// Wakes the helper thread out of poll(2) when the store closes.
    stop_fd: Option<Arc<EventFd>>,
    stopping: bool,
    /// The process that started the helper thread and made `stop_fd`. A
    /// child forked after that has neither the thread nor an eventfd of its
    /// own (it shares the parent's).
    owner: u32,
}

/// The store's side of the asynchronous API: batches in flight, by tag.
#[derive(Default)]
pub(crate) struct State {
    inner: Mutex<Inner>,
    next_tag: AtomicU64,
}

/// The store handle, for the helper thread. The store joins the thread
/// before it closes the handle.
#[derive(Clone, Copy)]
struct Handle(*mut sys::daxkv_store);
unsafe impl Send for Handle {}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while the lock was held cannot leave the map half-changed
        // in a way that matters here: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Move every completion waiting in the library to its entry, and its
    /// future's waker to `woken`. Returns how many were collected. The
    /// wakers are for the caller to [`wake_all`] once it has let go of the
    /// lock: a waker may call into the store (an executor that polls the
    /// woken task at once), which takes the lock again.
    fn drain(inner: &mut Inner, h: *mut sys::daxkv_store, woken: &mut Vec<Waker>) -> Result<usize> {
        let mut buf = [sys::daxkv_completion::default(); 64];
        let mut total = 0;
        loop {
            let n = check(unsafe { sys::daxkv_poll(h, buf.as_mut_ptr(), buf.len()) })? as usize;
            for c in &buf[..n] {
                if let Some(e) = inner.pending.get_mut(&c.tag) {
                    if e.abandoned {
                        let mut e = inner.pending.remove(&c.tag).unwrap();
                        e.batch.unpin_unclaimed(h, c.result);
                    } else {
                        e.done = Some(c.result);
                        woken.extend(e.waker.take());
                    }
                }
            }
            total += n;
            if n < buf.len() {
                return Ok(total);
            }
        }
    }

    /// Collect what the library has finished, so that the batches of
    /// dropped tickets are freed even when nothing else ever collects
    /// (fire and forget). Not once the event fd was lent: collecting here
    /// would take completions from under a poll loop waiting for the fd,
    /// and that loop collects (and frees) them itself.
    fn reap(inner: &mut Inner, h: *mut sys::daxkv_store, woken: &mut Vec<Waker>) {
        if !inner.fd_lent {
            // A failure here is reported by the next collection that is
            // asked for; freeing early is only an economy.
            let _ = State::drain(inner, h, woken);
        }
    }

    fn event_fd(inner: &mut Inner, h: *mut sys::daxkv_store) -> Result<RawFd> {
        if let Some(fd) = inner.efd {
            return Ok(fd);
        }
        let fd = check(unsafe { sys::daxkv_event_fd(h) })?;
        inner.efd = Some(fd);
        Ok(fd)
    }

    fn ensure_helper(self: &Arc<Self>, inner: &mut Inner, h: *mut sys::daxkv_store) -> Result<()> {
        if inner.helper_running {
            return Ok(());
        }
        let efd = State::event_fd(inner, h)?;
        let stop = match &inner.stop_fd {
            Some(s) => Arc::clone(s),
            None => {
                let s = Arc::new(EventFd::new().map_err(|e| Error::io("cannot create an eventfd", e))?);
                inner.stop_fd = Some(Arc::clone(&s));
                s
            }
        };
        // A helper that just decided to exit has released the lock for
        // good: joining it here cannot deadlock.
        if let Some(old) = inner.helper.take() {
            let _ = old.join();
        }
        let me = Arc::clone(self);
        let handle = Handle(h);
        let t = thread::Builder::new()
            .name("daxkv-completions".into())
            .spawn(move || me.helper(handle, efd, stop))
            .map_err(|e| Error::io("cannot start the completion thread", e))?;
        inner.helper = Some(t);
        inner.owner = std::process::id();
        inner.helper_running = true;
        Ok(())
    }

    /// Waits on the event fd while futures are pending, collecting their
    /// completions; exits when none is left waiting or the store closes.
    fn helper(&self, h: Handle, efd: RawFd, stop: Arc<EventFd>) {
        loop {
            let ready = os::wait_readable(&[efd, stop.raw()], None);
            let mut woken = Vec::new();
            {
                let mut inner = self.lock();
                if inner.stopping {
                    inner.helper_running = false;
                    return;
                }
                let drained = ready.is_ok() && State::drain(&mut inner, h.0, &mut woken).is_ok();
                if !drained {
                    // Waiting or collecting failed: hand the failure to the
                    // futures (their next poll reports it) instead of spinning.
                    woken.extend(inner.pending.values_mut().filter_map(|e| e.waker.take()));
                }
            }
            wake_all(woken);
            // Decided under the lock, and the thread ends with it held: a
            // poll that finds the helper not running may join it at once.
            let mut inner = self.lock();
            if inner.stopping || !inner.pending.values().any(|e| e.waker.is_some()) {
                inner.helper_running = false;
                return;
            }
        }
    }

    /// The event fd, when the calling thread is the completion thread
    /// (running a waker): there nothing else collects while it blocks.
    fn helper_event_fd(&self) -> Option<RawFd> {
        let inner = self.lock();
        match &inner.helper {
            Some(t) if inner.helper_running && t.thread().id() == thread::current().id() => inner.efd,
            _ => None,
        }
    }

    /// Called by the store before it closes: stop and join the helper.
    pub(crate) fn stop(&self) {
        let t = {
            let mut inner = self.lock();
            inner.stopping = true;
            if inner.stop_fd.is_some() && inner.owner != std::process::id() {
                // A child forked after the helper started: the thread is
                // the parent's (it does not run here) and the stop eventfd
                // is shared with the parent, whose helper a signal would
                // stop being able to sleep. Touch neither.
                if let Some(t) = inner.helper.take() {
                    std::mem::forget(t);
                }
                return;
            }
            if let Some(s) = &inner.stop_fd {
                s.signal();
            }
            inner.helper.take()
        };
        if let Some(t) = t {
            if t.thread().id() == thread::current().id() {
                // The store's last owner was a waker run on the helper
                // itself (an executor's task that owns its future and the
                // store): a thread cannot join itself. Once its wakes are
                // done the helper sees `stopping` and returns without
                // touching the handle again, so the store closes now and
                // the helper is left to end on its own.
                drop(t);
            } else {
                let _ = t.join();
            }
        }
    }
}

/// Wake futures, with the state's lock let go (a waker may call into the
/// store). A waker is the executor's (or the caller's) code, run on the
/// completion thread or on a thread collecting for another ticket: a panic
/// in it is caught, so that it neither ends the completion thread (which
/// would still count as running, and wake no future again) nor fails an
/// unrelated call. The panicking waker's own future is the one left
/// unwoken. A panic in dropping the panic's payload is caught too, and
/// that payload leaked.
fn wake_all(woken: Vec<Waker>) {
    for w in woken {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || w.wake())) {
            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(again);
            }
        }
    }
}

/// A submitted batch: its claim on the [`Completion`]. Borrows the store,
/// which therefore outlives it. Dropping it unclaimed is fine: the binding
/// keeps the batch's buffers until the library is done with them, and
/// unpins the hits of a pinning lookup once it completed (nobody else knows
/// which keys they are).
///
/// ```compile_fail
/// # use daxkv::{Batch, Config, Store};
/// # let mut cfg = Config::new().unwrap();
/// # cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 16 << 20).unwrap();
/// let store = Store::open(&cfg).unwrap();
/// let ticket = store.submit(Batch::contains(["k"], false, false)).unwrap();
/// drop(store); // error: `store` is still borrowed by `ticket`
/// ticket.wait().unwrap();
/// ```
#[must_use = "a dropped ticket discards the batch's results"]
pub struct Ticket<'s> {
    store: &'s Store,
    tag: u64,
    taken: bool,
}

impl Store {
    /// Queue a batch on the store's dispatcher thread (batches run in
    /// submission order). [`ErrorKind::Shutdown`](crate::ErrorKind::Shutdown)
    /// after shutdown.
    pub fn submit(&self, mut batch: Batch) -> Result<Ticket<'_>> {
        let tag = self.aio.next_tag.fetch_add(1, Ordering::Relaxed);
        batch.build_items();
        let (op, flags, n) = (batch.op.code(), batch.flags, batch.items.len());
        let items = batch.items.as_mut_ptr();
        // Registered before submitting: a small batch runs inside
        // daxkv_submit and its completion can be collected at once.
        let mut woken = Vec::new();
        {
            let mut inner = self.aio.lock();
            State::reap(&mut inner, self.h(), &mut woken);
            inner.pending.insert(tag, Entry { batch, done: None, waker: None, abandoned: false });
        }
        wake_all(woken);
        let rc = unsafe { sys::daxkv_submit(self.h(), op, items, n, flags, tag) };
        if rc < 0 {
            let e = Error::from_code(rc);
            self.aio.lock().pending.remove(&tag);
            return Err(e);
        }
        Ok(Ticket { store: self, tag, taken: false })
    }

    /// The library's event fd: readable while completions wait to be
    /// collected. Owned by the store (do not close it); register it with a
    /// reactor and call [`Store::collect_completions`] when it is readable.
    ///
    /// ```compile_fail
    /// # use daxkv::{Config, Store};
    /// # let mut cfg = Config::new().unwrap();
    /// # cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 16 << 20).unwrap();
    /// let store = Store::open(&cfg).unwrap();
    /// let fd = store.event_fd().unwrap();
    /// drop(store); // error: the fd is closed with the store
    /// println!("{fd:?}");
    /// ```
    pub fn event_fd(&self) -> Result<BorrowedFd<'_>> {
        let mut inner = self.aio.lock();
        let fd = State::event_fd(&mut inner, self.h())?;
        inner.fd_lent = true;
        // Valid until daxkv_close, which only happens when the store (which
        // this borrow ties the fd to) is dropped.
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Collect the completions waiting in the library (without blocking):
    /// each goes to its ticket, whose future is woken. Returns how many
    /// were collected. Works after shutdown, so every result arrives.
    pub fn collect_completions(&self) -> Result<usize> {
        let mut woken = Vec::new();
        let r = State::drain(&mut self.aio.lock(), self.h(), &mut woken);
        wake_all(woken);
        r
    }
}

impl Ticket<'_> {
    /// The tag the batch was submitted with (also [`Completion::tag`]).
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// The completion if the batch has finished (collecting what the
    /// library has first), without blocking. Once it returned Some, the
    /// ticket is spent and later calls are an InvalidArgument error.
    pub fn try_take(&mut self) -> Result<Option<Completion>> {
        self.poll_with(None)
    }

    /// Block until the batch finishes.
    pub fn wait(mut self) -> Result<Completion> {
        match block_on(&mut self, None) {
            Some(r) => r,
            None => Err(Error::invalid("no completion (unreachable without a deadline)")),
        }
    }

    /// Block until the batch finishes or `timeout` passes (Ok(None); the
    /// ticket stays usable).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<Completion>> {
        // Instant + Duration panics past the clock's range: a timeout that
        // long is no limit.
        block_on(self, Instant::now().checked_add(timeout)).transpose()
    }

    fn poll_with(&mut self, waker: Option<&Waker>) -> Result<Option<Completion>> {
        let mut woken = Vec::new();
        let r = self.poll_locked(waker, &mut woken);
        wake_all(woken);
        r
    }

    /// [`Ticket::poll_with`] under the state's lock; the wakers of the other
    /// tickets it completes go to `woken`.
    fn poll_locked(&mut self, waker: Option<&Waker>, woken: &mut Vec<Waker>) -> Result<Option<Completion>> {
        if self.taken {
            return Err(Error::invalid("the completion was already taken"));
        }
        let aio = &self.store.aio;
        let h = self.store.h();
        let mut inner = aio.lock();
        State::drain(&mut inner, h, woken)?;
        let e = inner.pending.get_mut(&self.tag).ok_or_else(|| Error::invalid("unknown ticket"))?;
        if let Some(rc) = e.done {
            let e = inner.pending.remove(&self.tag).unwrap();
            self.taken = true;
            return Ok(Some(Completion::new(self.tag, rc, e.batch)));
        }
        if let Some(w) = waker {
            if !matches!(&e.waker, Some(old) if old.will_wake(w)) {
                e.waker = Some(w.clone());
            }
            if let Err(err) = aio.ensure_helper(&mut inner, h) {
                inner.pending.get_mut(&self.tag).unwrap().waker = None;
                return Err(err);
            }
        }
        Ok(None)
    }
}

impl Future for Ticket<'_> {
    type Output = Result<Completion>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Completion>> {
        match self.get_mut().poll_with(Some(cx.waker())) {
            Ok(None) => Poll::Pending,
            Ok(Some(c)) => Poll::Ready(Ok(c)),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let mut woken = Vec::new();
        {
            let mut inner = self.store.aio.lock();
            State::reap(&mut inner, self.store.h(), &mut woken);
            if let Some(e) = inner.pending.get_mut(&self.tag) {
                if let Some(rc) = e.done {
                    let mut e = inner.pending.remove(&self.tag).unwrap();
                    e.batch.unpin_unclaimed(self.store.h(), rc);
                } else {
                    e.abandoned = true;
                    e.waker = None;
                }
            }
        }
        wake_all(woken);
    }
}

struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drive a ticket's future on this thread (parking between wake-ups).
/// None when the deadline passed first.
fn block_on(t: &mut Ticket<'_>, deadline: Option<Instant>) -> Option<Result<Completion>> {
    let waker = Waker::from(Arc::new(Unparker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(r) = Pin::new(&mut *t).poll(&mut cx) {
            return Some(r);
        }
        let left = match deadline {
            None => None,
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    // Forget the waker: nobody parks for it any more.
                    if let Some(e) = t.store.aio.lock().pending.get_mut(&t.tag) {
                        e.waker = None;
                    }
                    return None;
                }
                Some(d - now)
            }
        };
        match t.store.aio.helper_event_fd() {
            // A waker run by the completion thread waits: parked, it would
            // wait for itself, the thread that collects. It waits for the
            // event fd instead, and the next poll collects. Another thread
            // may collect first (a poll of its own, with the fd then no
            // longer readable): the wait is cut into short turns, so that
            // this one looks again after at most one of them.
            Some(efd) => {
                const TURN: Duration = Duration::from_millis(10);
                let _ = os::wait_readable(&[efd], Some(left.map_or(TURN, |l| l.min(TURN))));
            }
            None => match left {
                None => thread::park(),
                Some(l) => thread::park_timeout(l),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Batch, Config, Store};
    use std::time::{Duration, Instant};

    fn pending(s: &Store) -> usize {
        s.aio.lock().pending.len()
    }

    extern "C" {
        fn fork() -> i32;
        fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
        fn kill(pid: i32, sig: i32) -> i32;
        fn _exit(code: i32) -> !;
    }

    /// The header lets a child forked after the open close the store. The
    /// child has no completion thread (threads do not survive a fork) and
    /// shares the parent's stop eventfd: dropping the store there must
    /// neither wait for that thread nor signal the parent's.
    #[test]
    fn forked_child_drops_the_store_without_touching_the_parents_helper() {
        let mut cfg = Config::new().unwrap();
        cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 8 << 20).unwrap();
        let s = Store::open(&cfg).unwrap();
        // The helper thread runs (blocked in poll) from here on.
        {
            let mut inner = s.aio.lock();
            s.aio.ensure_helper(&mut inner, s.h()).unwrap();
        }
        let stop = s.aio.lock().stop_fd.clone().unwrap();
        let pid = unsafe { fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            drop(s);
            unsafe { _exit(0) }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        loop {
            let r = unsafe { waitpid(pid, &mut status, 1 /* WNOHANG */) };
            if r == pid {
                break;
            }
            if Instant::now() > deadline {
                unsafe {
                    kill(pid, 9);
                    waitpid(pid, &mut status, 0);
                }
                panic!("the forked child hung dropping the store");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(status, 0, "the child did not exit cleanly");
        let readable = crate::os::wait_readable(&[stop.raw()], Some(Duration::ZERO)).unwrap();
        assert!(!readable[0], "the child signalled the parent's stop eventfd");
        assert!(s.aio.lock().helper_running, "the parent's helper thread was stopped by the child");
    }

    struct PanickingWaker(std::sync::atomic::AtomicBool);

    impl std::task::Wake for PanickingWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            panic!("a waker that panics");
        }
    }

    /// Bad input: a future polled with a waker that panics when woken (an
    /// executor's bug, or a waker of the caller's own). The panic is that
    /// waker's: the completion thread must survive it, or be known to be
    /// gone, so that the futures awaited after it are still woken.
    #[test]
    fn a_panicking_waker_does_not_leave_the_other_futures_unwoken() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use std::task::Waker;
        let mut cfg = Config::new().unwrap();
        cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 8 << 20).unwrap();
        let s = Store::open(&cfg).unwrap();
        let woken = Arc::new(PanickingWaker(AtomicBool::new(false)));
        let t = s.submit(Batch::contains(["k"], false, false)).unwrap();
        // The waker is registered as a poll would, and the completion
        // thread started for it.
        {
            let mut inner = s.aio.lock();
            inner.pending.get_mut(&t.tag).unwrap().waker = Some(Waker::from(Arc::clone(&woken)));
            s.aio.ensure_helper(&mut inner, s.h()).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let helper_gone = || s.aio.lock().helper.as_ref().map_or(true, |h| h.is_finished());
        // With no other future waiting, the thread ends after waking this
        // one, however the waker behaved.
        while !helper_gone() {
            assert!(Instant::now() < deadline, "the completion thread never finished");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(woken.0.load(Ordering::SeqCst), "the completion thread never woke the future");
        assert!(!s.aio.lock().helper_running, "the completion thread is gone but counts as running");
        drop(t);
        // A future awaited now is woken by a completion thread of its own.
        let c = s.submit(Batch::contains(["k"], false, false)).unwrap();
        assert!(c.wait().is_ok());
    }

    struct CollectingWaker {
        store: std::sync::Arc<Store>,
        collected: std::sync::atomic::AtomicBool,
    }

    impl std::task::Wake for CollectingWaker {
        fn wake(self: std::sync::Arc<Self>) {
            // As an executor that polls a task as soon as it is woken.
            let _ = self.store.collect_completions();
            self.collected.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Bad input: a waker that calls into the store when woken (an executor
    /// that polls the woken task at once, on the waking thread). Wakers run
    /// after the state's lock is let go: the call returns, rather than wait
    /// forever for a lock its own thread holds.
    #[test]
    fn a_waker_that_calls_into_the_store_does_not_deadlock() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use std::task::Waker;
        let mut cfg = Config::new().unwrap();
        cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 8 << 20).unwrap();
        let s = Arc::new(Store::open(&cfg).unwrap());
        let w = Arc::new(CollectingWaker { store: Arc::clone(&s), collected: AtomicBool::new(false) });
        let t = s.submit(Batch::contains(["k"], false, false)).unwrap();
        {
            let mut inner = s.aio.lock();
            inner.pending.get_mut(&t.tag).unwrap().waker = Some(Waker::from(Arc::clone(&w)));
            s.aio.ensure_helper(&mut inner, s.h()).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !w.collected.load(Ordering::SeqCst) {
            if Instant::now() > deadline {
                // The completion thread is stuck for good: dropping the
                // store would wait for it too.
                std::mem::forget(t);
                std::mem::forget(w);
                std::mem::forget(s);
                panic!("the waker's call into the store never returned");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(t);
    }

    /// Fire-and-forget: tickets dropped at once, nobody collecting. Bad
    /// inputs: 64 abandoned put batches of 64 KiB values, then one more
    /// submission and one more dropped ticket. The binding must let go of
    /// every batch the library has finished with, not keep all of them
    /// (values included) until the store closes.
    #[test]
    fn abandoned_tickets_do_not_pile_up() {
        let mut cfg = Config::new().unwrap();
        cfg.set("slot_bytes", "1MiB").unwrap().add_device("mem:", 24 << 20).unwrap();
        cfg.set("eviction", "lru").unwrap();
        let s = Store::open(&cfg).unwrap();
        let n = 64u64;
        for i in 0..n {
            drop(s.submit(Batch::put([(format!("k{i}"), vec![i as u8; 64 << 10])], true)).unwrap());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.stats().unwrap().async_completed < n {
            assert!(Instant::now() < deadline, "the batches never completed");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(s.submit(Batch::contains(["k0"], false, false)).unwrap());
        assert!(pending(&s) <= 1, "{} batches kept after the library finished them", pending(&s));
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.stats().unwrap().async_completed < n + 1 {
            assert!(Instant::now() < deadline, "the last batch never completed");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(s.submit(Batch::contains(["k1"], false, false)).unwrap());
        assert!(pending(&s) <= 1, "{} batches kept after the library finished them", pending(&s));
    }
}
