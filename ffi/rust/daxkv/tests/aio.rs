//! Asynchronous batches: tickets as futures (no runtime), blocking waits,
//! and a poll loop on the event fd.

mod common;

use common::*;
use daxkv::{Batch, Completion, ErrorKind, Outcome, Store};
use std::future::Future;
use std::os::unix::io::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

struct Unpark(std::thread::Thread);
impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Poll every future to completion on this thread: the smallest executor.
fn block_on_all<F: Future + Unpin>(mut futs: Vec<F>) -> Vec<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    while out.iter().any(Option::is_none) {
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                if let Poll::Ready(v) = Pin::new(f).poll(&mut cx) {
                    *o = Some(v);
                }
            }
        }
        if out.iter().any(Option::is_none) {
            std::thread::park_timeout(Duration::from_secs(5));
        }
    }
    out.into_iter().map(Option::unwrap).collect()
}

fn puts(c: &Completion) -> Vec<bool> {
    match &c.outcome {
        Outcome::Put(v) => v.iter().map(|r| *r.as_ref().unwrap()).collect(),
        o => panic!("not a put: {o:?}"),
    }
}

/// Keys k{base}..k{base+n}, values of `len` bytes (above the inline limit
/// when large, so that the batch runs on the dispatcher thread).
fn put_batch(base: usize, n: usize, len: usize) -> Batch {
    Batch::put((base..base + n).map(|i| (format!("k{i}"), vec![(i % 251) as u8; len])), false)
}

#[test]
fn every_operation_through_wait() {
    let s = open_mem(&[]);
    let c = s.submit(put_batch(0, 3, 10)).unwrap().wait().unwrap();
    assert_eq!(c.result.as_ref().unwrap(), &3);
    assert_eq!(puts(&c), vec![true, true, true]);
    assert_eq!(c.keys, vec![b"k0".to_vec(), b"k1".to_vec(), b"k2".to_vec()]);
    // Present keys are not overwritten without replace.
    assert_eq!(puts(&s.submit(put_batch(0, 1, 5)).unwrap().wait().unwrap()), vec![false]);

    let c = s.submit(Batch::get([("k1", 64), ("absent", 64), ("k2", 4)], false)).unwrap().wait().unwrap();
    assert_eq!(c.result.as_ref().unwrap(), &1);
    let v = match c.outcome {
        Outcome::Get(v) => v,
        _ => panic!(),
    };
    assert_eq!(v[0].as_ref().unwrap().as_deref(), Some(&[1u8; 10][..]));
    assert_eq!(v[1].as_ref().unwrap(), &None);
    assert_eq!(v[2].as_ref().unwrap_err().kind(), ErrorKind::BufferTooSmall);
    assert_eq!(v[2].as_ref().unwrap_err().needed(), Some(10));

    let c = s.submit(Batch::contains(["k0", "absent", "k2"], true, false)).unwrap().wait().unwrap();
    let v = match c.outcome {
        Outcome::Contains(v) => v,
        _ => panic!(),
    };
    assert_eq!(v.into_iter().map(Result::unwrap).collect::<Vec<_>>(), vec![true, false, true]);
    assert_eq!(s.remove(b"k0", false).unwrap_err().kind(), ErrorKind::Busy, "contains pinned it");

    let c = s.submit(Batch::remove(["k0", "absent"], true)).unwrap().wait().unwrap();
    let v = match c.outcome {
        Outcome::Remove(v) => v,
        _ => panic!(),
    };
    assert_eq!(v.into_iter().map(Result::unwrap).collect::<Vec<_>>(), vec![true, false]);
    assert!(!s.contains(b"k0").unwrap());

    // Prefix: stops at the first miss.
    let c = s.submit(Batch::get([("k1", 64), ("absent", 64), ("k2", 64)], true)).unwrap().wait().unwrap();
    assert_eq!(c.result.unwrap(), 1);

    // Empty batches complete too; bad items fail alone.
    let c = s.submit(Batch::remove(Vec::<Vec<u8>>::new(), false)).unwrap().wait().unwrap();
    assert_eq!(c.result.unwrap(), 0);
    let c = s.submit(Batch::put([("", "v"), ("ok", "v")], false)).unwrap().wait().unwrap();
    let v = match c.outcome {
        Outcome::Put(v) => v,
        _ => panic!(),
    };
    assert_eq!(v[0].as_ref().unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert!(v[1].as_ref().unwrap());

    let st = s.stats().unwrap();
    assert_eq!(st.async_submitted, 8);
    assert_eq!(st.async_completed, 8);
}

#[test]
fn futures_complete_without_a_runtime() {
    let s = open_mem(&[]);
    // 64 KiB and more per batch: these run on the dispatcher thread.
    let tickets: Vec<_> = (0..4).map(|b| s.submit(put_batch(b * 4, 4, 32 << 10)).unwrap()).collect();
    let tags: Vec<u64> = tickets.iter().map(|t| t.tag()).collect();
    let done = block_on_all(tickets);
    for (c, tag) in done.iter().zip(&tags) {
        let c = c.as_ref().unwrap();
        assert_eq!(c.tag, *tag);
        assert_eq!(puts(c), vec![true; 4]);
    }
    let gets: Vec<_> = (0..4)
        .map(|b| s.submit(Batch::get((b * 4..b * 4 + 4).map(|i| (format!("k{i}"), 64 << 10)), false)).unwrap())
        .collect();
    for (b, c) in block_on_all(gets).into_iter().enumerate() {
        let v = match c.unwrap().outcome {
            Outcome::Get(v) => v,
            _ => panic!(),
        };
        for (j, r) in v.into_iter().enumerate() {
            let i = b * 4 + j;
            assert_eq!(r.unwrap().unwrap(), vec![(i % 251) as u8; 32 << 10]);
        }
    }
}

#[test]
fn futures_from_many_threads() {
    let s = Arc::new(open_mem(&[]));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for round in 0..20 {
                    let base = t * 1000 + round * 3;
                    let tk = s.submit(put_batch(base, 3, if round % 2 == 0 { 100 } else { 40 << 10 })).unwrap();
                    let c = block_on_all(vec![tk]).pop().unwrap().unwrap();
                    assert_eq!(c.result.unwrap(), 3);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s.stats().unwrap().async_completed, 80);
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}
extern "C" {
    fn poll(fds: *mut PollFd, n: u64, timeout: i32) -> i32;
}
fn readable(fd: i32, ms: i32) -> bool {
    let mut p = PollFd { fd, events: 1, revents: 0 };
    unsafe { poll(&mut p, 1, ms) == 1 }
}

#[test]
fn poll_loop_on_the_event_fd() {
    let s = open_mem(&[]);
    let fd = s.event_fd().unwrap().as_raw_fd();
    assert!(fd >= 0);
    assert!(!readable(fd, 0), "nothing waits yet");
    let mut tickets: Vec<_> = (0..3).map(|b| Some(s.submit(put_batch(b * 2, 2, 40 << 10)).unwrap())).collect();
    let mut done = Vec::new();
    while done.len() < 3 {
        assert!(readable(fd, 10_000), "a completion must make the fd readable");
        assert!(s.collect_completions().unwrap() >= 1);
        for slot in tickets.iter_mut() {
            if let Some(t) = slot {
                if let Some(c) = t.try_take().unwrap() {
                    assert_eq!(t.try_take().unwrap_err().kind(), ErrorKind::InvalidArgument, "already taken");
                    done.push(c);
                    *slot = None;
                }
            }
        }
    }
    assert!(!readable(fd, 0), "every completion was collected");
    assert_eq!(s.collect_completions().unwrap(), 0);
    assert!(done.iter().all(|c| c.result.as_ref().unwrap() == &2));
}

#[test]
fn wait_timeout_and_try_take() {
    let s = open_mem(&[]);
    let mut t = s.submit(put_batch(0, 2, 40 << 10)).unwrap();
    let c = loop {
        if let Some(c) = t.wait_timeout(Duration::from_millis(1)).unwrap() {
            break c;
        }
    };
    assert_eq!(c.result.unwrap(), 2);
    assert!(t.wait_timeout(Duration::from_millis(1)).is_err(), "already taken");
}

/// A timeout too long for the clock to add. Bad inputs: Duration::MAX and
/// u64::MAX seconds, which must wait like no limit rather than panic.
#[test]
fn wait_timeout_without_end() {
    let s = open_mem(&[]);
    for (i, d) in [Duration::MAX, Duration::from_secs(u64::MAX)].into_iter().enumerate() {
        let mut t = s.submit(put_batch(10 * i, 2, 40 << 10)).unwrap();
        let c = t.wait_timeout(d).unwrap().expect("no deadline: the wait ends with the completion");
        assert_eq!(c.result.unwrap(), 2);
    }
}

#[test]
fn shutdown_cancels_what_is_queued() {
    let s = open_mem(&[("eviction", "lru")]);
    let tickets: Vec<_> = (0..16).map(|b| s.submit(put_batch(b * 8, 8, 256 << 10)).unwrap()).collect();
    s.shutdown().unwrap();
    assert_eq!(s.submit(put_batch(999, 1, 1)).err().unwrap().kind(), ErrorKind::Shutdown);
    let mut cancelled = 0;
    for c in block_on_all(tickets) {
        let c = c.unwrap();
        match &c.result {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Cancelled);
                cancelled += 1;
                let v = match &c.outcome {
                    Outcome::Put(v) => v,
                    _ => panic!(),
                };
                assert!(v.iter().all(|r| r.as_ref().unwrap_err().kind() == ErrorKind::Cancelled));
            }
        }
    }
    assert_eq!(s.stats().unwrap().async_cancelled, cancelled);
}

#[test]
fn dropped_tickets_and_stores_in_flight() {
    let s = open_mem(&[]);
    for b in 0..8 {
        drop(s.submit(put_batch(b * 4, 4, 128 << 10)).unwrap());
    }
    // Still usable; the abandoned batches' buffers are kept until done.
    // Batches run in submission order: the last key is there (older ones
    // may have been evicted).
    let c = s.submit(Batch::contains(["k31"], false, false)).unwrap().wait().unwrap();
    assert_eq!(c.result.unwrap(), 1);
    for b in 0..8 {
        drop(s.submit(put_batch(100 + b * 4, 4, 128 << 10)).unwrap());
    }
    drop(s); // closes with batches queued: they finish or are cancelled first

    // A pending future's helper thread is stopped when the store goes.
    let s: Store = open_mem(&[]);
    let mut t = s.submit(put_batch(0, 4, 128 << 10)).unwrap();
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let _ = Pin::new(&mut t).poll(&mut Context::from_waker(&waker));
    drop(t);
    drop(s);
}

/// A pinning lookup whose ticket is dropped (a future given up by a
/// `select!` or a timeout) leaves nobody who knows which keys it pinned:
/// its hits stayed pinned for good, and a remove without force was refused
/// with Busy. Dropped after the lookup completed (it runs inline: the drop
/// collects it) and before (queued behind 16 MiB of puts: collected
/// later), with and without prefix, with a miss among the keys.
#[test]
fn a_dropped_pinning_lookup_unpins_its_hits() {
    let s = open_mem(&[]);
    let keys = ["p0", "p1", "p2"];
    for k in keys {
        s.put(k.as_bytes(), b"v", false).unwrap();
    }
    let pins = |s: &Store| -> Vec<u32> {
        keys.iter()
            .map(|k| s.keys(None).unwrap().map(|e| e.unwrap()).find(|e| e.key == k.as_bytes()).unwrap().pins)
            .collect()
    };
    for prefix in [false, true] {
        for queued in [false, true] {
            if queued {
                drop(s.submit(put_batch(0, 16, 1 << 20)).unwrap());
            }
            let lookup = ["p0", "p1", "p2", "miss"];
            drop(s.submit(Batch::contains(lookup, true, prefix)).unwrap());
            // Whatever is still queued runs first: a lookup that completes
            // is collected here.
            let c = s.submit(Batch::contains(["p0"], false, false)).unwrap().wait().unwrap();
            assert_eq!(c.result.unwrap(), 1);
            s.collect_completions().unwrap();
            assert_eq!(pins(&s), vec![0, 0, 0], "prefix {prefix}, queued {queued}");
            if queued {
                let puts = (0..16).map(|i| format!("k{i}"));
                s.submit(Batch::remove(puts, false)).unwrap().wait().unwrap();
            }
        }
    }
    // A lookup whose ticket is claimed keeps its pins.
    let c = s.submit(Batch::contains(keys, true, false)).unwrap().wait().unwrap();
    assert_eq!(c.result.unwrap(), 3);
    assert_eq!(pins(&s), vec![1, 1, 1]);
    for k in keys {
        s.unpin(k.as_bytes()).unwrap();
        s.remove(k.as_bytes(), false).unwrap();
    }
}

/// A waker that owns the last reference to the store, as an executor's
/// task owns its future: it lets go of it when woken, on the completion
/// thread, once the test has let go of its own.
struct OwnsTheStore {
    store: std::sync::Mutex<Option<Arc<Store>>>,
    woken: std::sync::atomic::AtomicBool,
    go: std::sync::atomic::AtomicBool,
    dropped: std::sync::atomic::AtomicBool,
}

impl Wake for OwnsTheStore {
    fn wake(self: Arc<Self>) {
        use std::sync::atomic::Ordering::SeqCst;
        self.woken.store(true, SeqCst);
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while !self.go.load(SeqCst) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let last = self.store.lock().unwrap().take();
        drop(last); // on the completion thread
        self.dropped.store(true, SeqCst);
    }
}

#[test]
fn a_store_whose_last_owner_is_woken_on_the_completion_thread_closes() {
    // The store was dropped on the thread its drop joins: the join failed
    // (a panic the waker's guard swallowed) and daxkv_close never ran, so
    // the arena stayed mapped and locked and could not be opened again.
    use std::sync::atomic::Ordering::SeqCst;
    let d = TempDir::new("owned-by-waker");
    let p = d.join("arena");
    let s = Arc::new(open_files(&[&p], 24 * MIB, &[]));
    let w = Arc::new(OwnsTheStore {
        store: std::sync::Mutex::new(Some(Arc::clone(&s))),
        woken: Default::default(),
        go: Default::default(),
        dropped: Default::default(),
    });
    let mut pending = false;
    for attempt in 0..20 {
        // A batch of large values ahead keeps the dispatcher busy, so
        // that the lookup behind it is still pending when first polled.
        drop(s.submit(put_batch(attempt * 20, 20, 1 << 20)).unwrap());
        let mut t = s.submit(Batch::contains(["k0"], false, false)).unwrap();
        let waker = Waker::from(Arc::clone(&w));
        if Pin::new(&mut t).poll(&mut Context::from_waker(&waker)).is_pending() {
            pending = true;
            // The completion thread wakes it (and waits in the waker);
            // only then does the ticket go, with the test's own store.
            let until = std::time::Instant::now() + Duration::from_secs(20);
            while !w.woken.load(SeqCst) {
                assert!(std::time::Instant::now() < until, "the waker was never run");
                std::thread::sleep(Duration::from_millis(1));
            }
            break;
        }
    }
    assert!(pending, "the lookup never waited for its completion");
    drop(s);
    w.go.store(true, SeqCst);
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while !w.dropped.load(SeqCst) {
        assert!(std::time::Instant::now() < until, "the waker never let go of the store");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Closed: the arena opens again, with what the batches stored.
    let again = open_files(&[&p], 24 * MIB, &[]);
    assert!(again.stats().unwrap().entries > 0);
}

/// A waker that waits for a batch of its own, blocking, as a task run
/// inline by its executor on the waking thread does with `wait()`.
struct WaitsInTheWaker {
    store: Arc<Store>,
    timeout: Option<Duration>,
    out: std::sync::Mutex<Option<(String, Duration)>>,
}

impl Wake for WaitsInTheWaker {
    fn wake(self: Arc<Self>) {
        let started = std::time::Instant::now();
        let mut t = self.store.submit(put_batch(1000, 8, 60_000)).unwrap();
        let r = match self.timeout {
            None => format!("{:?}", t.wait().map(|c| c.result)),
            Some(d) => format!("{:?}", t.wait_timeout(d).map(|c| c.map(|c| c.result))),
        };
        *self.out.lock().unwrap() = Some((r, started.elapsed()));
    }
}

#[test]
fn a_waker_on_the_completion_thread_may_wait_for_another_batch() {
    // The completion thread that ran the waker parked in wait() for a
    // wake-up only it could give: wait() never returned, and
    // wait_timeout() returned only at its deadline, the batch long done.
    for timeout in [None, Some(Duration::from_secs(30))] {
        let s = Arc::new(open_mem(&[]));
        let w = Arc::new(WaitsInTheWaker { store: Arc::clone(&s), timeout, out: Default::default() });
        let mut pending = false;
        for attempt in 0..20 {
            // A batch of large values ahead keeps the dispatcher busy, so
            // that the one behind it is still pending when first polled.
            drop(s.submit(put_batch(attempt * 20, 20, 60_000)).unwrap());
            let mut t = s.submit(Batch::contains(["k0"], false, false)).unwrap();
            let waker = Waker::from(Arc::clone(&w) as Arc<WaitsInTheWaker>);
            if Pin::new(&mut t).poll(&mut Context::from_waker(&waker)).is_pending() {
                pending = true;
                let until = std::time::Instant::now() + Duration::from_secs(20);
                while w.out.lock().unwrap().is_none() {
                    assert!(std::time::Instant::now() < until, "{timeout:?}: the waker's wait never returned");
                    std::thread::sleep(Duration::from_millis(1));
                }
                break;
            }
        }
        assert!(pending, "the lookup never waited for its completion");
        let (r, took) = w.out.lock().unwrap().clone().unwrap();
        let want = if timeout.is_some() { "Ok(Some(Ok(8)))" } else { "Ok(Ok(8))" };
        assert_eq!(r, want, "{timeout:?}");
        assert!(took < Duration::from_secs(10), "{timeout:?}: waited {took:?}, past the batch's end");
        assert_eq!(s.contains(b"k1007").unwrap(), true);
    }
}

#[test]
fn a_prefix_batch_reports_the_prefix_not_the_keys_after_it() {
    // The items after the one a prefix batch stopped at came back as
    // misses (Ok(None), Ok(false)), committed keys among them; the
    // synchronous get_many_into ends its result at the prefix.
    let s = open_mem(&[]);
    for k in ["p0", "p2", "p3"] {
        s.put(k.as_bytes(), &[7u8; 100], false).unwrap();
    }
    let get = |caps: [usize; 4]| {
        let items = ["p0", "p1", "p2", "p3"].into_iter().zip(caps);
        match s.submit(Batch::get(items, true)).unwrap().wait().unwrap() {
            Completion { result, outcome: Outcome::Get(v), .. } => (result.unwrap(), v),
            c => panic!("not a get: {c:?}"),
        }
    };
    // A miss ends the prefix: only the hit before it.
    let (n, v) = get([100, 100, 100, 100]);
    assert_eq!(n, 1);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].as_ref().unwrap().as_deref(), Some(&[7u8; 100][..]));
    // A failure ends it too, and is reported; what follows is not.
    s.put(b"p1", &[7u8; 100], false).unwrap();
    let (n, v) = get([100, 10, 100, 100]);
    assert_eq!(n, 1);
    assert_eq!(v.len(), 2);
    assert_eq!(v[1].as_ref().unwrap_err().kind(), ErrorKind::BufferTooSmall);
    let mut dst = [vec![0u8; 100], vec![0u8; 10], vec![0u8; 100], vec![0u8; 100]];
    let mut dsts: Vec<&mut [u8]> = dst.iter_mut().map(|d| d.as_mut_slice()).collect();
    let keys: Vec<&[u8]> = vec![b"p0", b"p1", b"p2", b"p3"];
    assert_eq!(s.get_many_into(&keys, &mut dsts, true).unwrap().len(), v.len());
    // Lookups: the hits up to the first miss.
    s.remove(b"p2", false).unwrap();
    match s.submit(Batch::contains(["p0", "p1", "p2", "p3"], false, true)).unwrap().wait().unwrap() {
        Completion { result, outcome: Outcome::Contains(v), .. } => {
            assert_eq!(result.unwrap(), 2);
            assert_eq!(v.iter().map(|r| *r.as_ref().unwrap()).collect::<Vec<_>>(), vec![true, true]);
        }
        c => panic!("not a lookup: {c:?}"),
    }
}
