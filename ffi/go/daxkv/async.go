package daxkv

// Asynchronous batches (daxkv_submit, daxkv_event_fd, daxkv_poll), with
// each batch's completion delivered on its own channel.
//
// The library reads and writes a submitted batch's items after
// daxkv_submit returns, and cgo forbids C to keep Go memory past a call, so
// a batch is copied into one C allocation (items, keys, values or
// destination buffers) that is freed when its completion is delivered. One
// goroutine per store waits for the library's event fd in Go's network
// poller (no OS thread blocks on it), collects completions and delivers
// them.

/*
#include "dk.h"

typedef struct {
	daxkv_item *items;
	size_t n;
} dk_async;

// One allocation: the header, the items, then the keys and data bytes.
// data/lens: put values (copied) or, for get, the capacities (data NULL).
static dk_async *dk_async_new(const char *keys, const size_t *klens, const char *data,
                              const size_t *lens, size_t n) {
	size_t kb = 0, db = 0;
	for (size_t i = 0; i < n; i++) {
		// A wrapped sum would allocate less than the items are told they
		// have: refuse it as the allocation it cannot be.
		if (klens[i] > SIZE_MAX - kb || (lens && lens[i] > SIZE_MAX - db))
			return NULL;
		kb += klens[i];
		if (lens)
			db += lens[i];
	}
	size_t head = sizeof(dk_async) + n * sizeof(daxkv_item);
	if (kb > SIZE_MAX - head || db > SIZE_MAX - head - kb)
		return NULL;
	char *mem = calloc(1, head + kb + db + 1);
	if (!mem)
		return NULL;
	dk_async *a = (dk_async *)mem;
	a->items = (daxkv_item *)(mem + sizeof(dk_async));
	a->n = n;
	char *kp = mem + head, *dp = kp + kb;
	size_t ko = 0;
	for (size_t i = 0; i < n; i++) {
		if (klens[i])
			memcpy(kp, keys + ko, klens[i]);
		a->items[i].key = kp;
		a->items[i].key_len = klens[i];
		kp += klens[i];
		ko += klens[i];
	}
	size_t off = 0;
	for (size_t i = 0; lens && i < n; i++) {
		if (data && lens[i])
			memcpy(dp, data + off, lens[i]);
		a->items[i].data = dp;
		a->items[i].len = lens[i];
		dp += lens[i];
		off += lens[i];
	}
	return a;
}

static int dk_submit(daxkv_store *s, int op, dk_async *a, unsigned flags, uint64_t tag, char **msg) {
	int rc = daxkv_submit(s, op, a->items, a->n, flags, tag);
	*msg = dk_msg(rc);
	return rc;
}

static int dk_poll(daxkv_store *s, daxkv_completion *out, size_t cap, char **msg) {
	int rc = daxkv_poll(s, out, cap);
	*msg = dk_msg(rc);
	return rc;
}

static int dk_event_fd(daxkv_store *s, char **msg) {
	int rc = daxkv_event_fd(s);
	*msg = dk_msg(rc);
	return rc;
}
*/
import "C"

import (
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Op is the operation of a submitted batch.
type Op int

// Operations of submitted batches.
const (
	OpPut      Op = C.DAXKV_OP_PUT
	OpGet      Op = C.DAXKV_OP_GET
	OpContains Op = C.DAXKV_OP_CONTAINS
	OpRemove   Op = C.DAXKV_OP_REMOVE
)

func (op Op) String() string {
	switch op {
	case OpPut:
		return "put"
	case OpGet:
		return "get"
	case OpContains:
		return "contains"
	case OpRemove:
		return "remove"
	}
	return "unknown"
}

func (op Op) cName() string {
	return "daxkv_" + op.String() + "_batch"
}

// Completion is a finished batch.
type Completion struct {
	Op     Op
	Tag    uint64 // the tag given to Submit*
	Result int    // what the batch call returned: items stored, hits, prefix length or items removed
	// Err is the batch call's own error (ErrCanceled when a shutdown
	// cancelled it before it ran); Result is 0 then.
	Err  error
	Keys [][]byte
	// OK per item: put stored (false: already present or in flight),
	// contains hit, remove removed (false: a miss). Nil for get.
	OK []bool
	// Values per item for get: the value, nil on a miss or failure.
	Values [][]byte
	// Errs per item: its failure, nil when it succeeded (a miss is not a
	// failure). A get's ErrBufferTooSmall has the value's length in Needed.
	Errs []error
	// With prefix, OK, Values and Errs hold the prefix's items only (Result
	// of them), and the item it stopped at where that one failed rather
	// than missed: the keys after it were not looked at.
}

type pendingBatch struct {
	a      *C.dk_async
	op     Op
	tag    uint64
	prefix bool // submitted with DAXKV_PREFIX
	keys   [][]byte
	ch     chan Completion
}

// asyncState is a store's submitted batches and the goroutine delivering
// their completions. It holds the Store only while batches are pending
// (the delivering goroutine keeps it reachable then, so that the Store's
// finalizer cannot cancel batches whose channels are still waited on), so
// an abandoned Store with nothing pending can still be finalized.
type asyncState struct {
	h       *C.daxkv_store
	mu      sync.Mutex
	pending map[uint64]*pendingBatch
	owner   *Store // while pending is not empty
	nextTag uint64
	started bool
	stopped bool
	file    *os.File      // a duplicate of the library's event fd, in Go's poller
	quit    chan struct{} // closed to stop the polling fallback
	done    chan struct{} // closed when the goroutine has returned
}

func newAsyncState(h *C.daxkv_store) *asyncState {
	return &asyncState{h: h, pending: map[uint64]*pendingBatch{}}
}

// SubmitPut queues a put batch. The keys and values are copied, so the
// slices may be reused at once (every Submit call copies its keys). The channel receives the completion, then closes.
func (s *Store) SubmitPut(keys, values [][]byte, replace bool, tag uint64) (<-chan Completion, error) {
	if len(keys) != len(values) {
		return nil, invalid("daxkv_submit", "keys and values differ in length")
	}
	lens := make([]int, len(values))
	total := 0
	for i, v := range values {
		lens[i] = len(v)
		total += len(v)
	}
	buf := make([]byte, 0, total)
	for _, v := range values {
		buf = append(buf, v...)
	}
	var f C.unsigned
	if replace {
		f = C.DAXKV_REPLACE
	}
	return s.submit(OpPut, keys, buf, lens, f, tag)
}

// SubmitGet queues a get batch, copying up to caps[i] bytes of each value;
// prefix stops at the first key that is not copied.
func (s *Store) SubmitGet(keys [][]byte, caps []int, prefix bool, tag uint64) (<-chan Completion, error) {
	if len(keys) != len(caps) {
		return nil, invalid("daxkv_submit", "keys and caps differ in length")
	}
	total := 0
	for _, c := range caps {
		if c < 0 {
			return nil, invalid("daxkv_submit", "negative capacity")
		}
		var ok bool
		if total, ok = addLen(total, c); !ok {
			return nil, invalid("daxkv_submit", "the capacities add up to more than an int holds")
		}
	}
	var f C.unsigned
	if prefix {
		f = C.DAXKV_PREFIX
	}
	return s.submit(OpGet, keys, nil, caps, f, tag)
}

// SubmitContains queues a contains batch; pin pins every hit, prefix stops
// at the first miss.
func (s *Store) SubmitContains(keys [][]byte, pin, prefix bool, tag uint64) (<-chan Completion, error) {
	var f C.unsigned
	if pin {
		f |= C.DAXKV_PIN
	}
	if prefix {
		f |= C.DAXKV_PREFIX
	}
	return s.submit(OpContains, keys, nil, nil, f, tag)
}

// SubmitRemove queues a remove batch; force removes pinned keys too.
func (s *Store) SubmitRemove(keys [][]byte, force bool, tag uint64) (<-chan Completion, error) {
	var f C.unsigned
	if force {
		f = C.DAXKV_FORCE
	}
	return s.submit(OpRemove, keys, nil, nil, f, tag)
}

func (s *Store) submit(op Op, keys [][]byte, data []byte, lens []int, flags C.unsigned, tag uint64) (<-chan Completion, error) {
	p := packKeys(keys)
	klens := p.klens
	if len(klens) == 0 {
		klens = make([]C.size_t, 1) // a valid address for C; n is 0
	}
	var cl []C.size_t
	if lens != nil {
		cl = make([]C.size_t, len(lens)+1)
		for i, l := range lens {
			cl[i] = C.size_t(l)
		}
	}
	h, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer s.leave()
	var lp *C.size_t
	if cl != nil {
		lp = &cl[0]
	}
	kp := (*C.char)(unsafe.Pointer(&p.keys[:1][0]))
	a := C.dk_async_new(kp, &klens[0], (*C.char)(ptr(data)), lp, C.size_t(len(keys)))
	if a == nil {
		return nil, &Error{Code: -int(syscall.ENOMEM), Op: "daxkv_submit", Message: "out of memory for the batch"}
	}
	st := s.async
	if err := st.start(); err != nil {
		C.free(unsafe.Pointer(a))
		return nil, err
	}
	// The completion names the keys as they were submitted: slices of the
	// packed copy, since the caller may reuse its buffers at once.
	own := make([][]byte, len(keys))
	off := 0
	for i, k := range keys {
		own[i] = p.keys[off : off+len(k) : off+len(k)]
		off += len(k)
	}
	pb := &pendingBatch{a: a, op: op, tag: tag, prefix: flags&C.DAXKV_PREFIX != 0, keys: own, ch: make(chan Completion, 1)}
	// Registered before submitting: a small batch runs inside daxkv_submit
	// and its completion can be collected at once.
	st.mu.Lock()
	id := st.nextTag
	st.nextTag++
	st.pending[id] = pb
	st.owner = s
	st.mu.Unlock()
	var msg *C.char
	if rc := C.dk_submit(h, C.int(op), a, flags, C.uint64_t(id), &msg); rc < 0 {
		st.mu.Lock()
		st.forget(id)
		st.mu.Unlock()
		C.free(unsafe.Pointer(a))
		return nil, mkerr(rc, "daxkv_submit", msg)
	}
	return pb.ch, nil
}

// start launches the delivering goroutine on the first submission.
func (st *asyncState) start() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.stopped {
		return errClosed // Close has begun: no goroutine may start now
	}
	if st.started {
		return nil
	}
	var msg *C.char
	fd := C.dk_event_fd(st.h, &msg)
	if fd < 0 {
		return mkerr(fd, "daxkv_event_fd", msg)
	}
	// The fd belongs to the store: the poller gets a duplicate (the same
	// eventfd, non-blocking), which closing later does not affect.
	dup, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return &Error{Code: -int(e), Op: "daxkv_event_fd", Message: "cannot duplicate the event fd: " + e.Error()}
	}
	st.file = os.NewFile(dup, "daxkv-events")
	st.quit = make(chan struct{})
	st.done = make(chan struct{})
	st.started = true
	go st.run()
	return nil
}

func (st *asyncState) run() {
	defer close(st.done)
	if rc, err := st.file.SyscallConn(); err == nil {
		// Read calls the function, and while it returns false waits until
		// the fd is readable (the library makes it readable exactly while
		// completions wait). It returns an error once the file is closed.
		_ = rc.Read(func(uintptr) bool {
			st.drain()
			return false
		})
		select {
		case <-st.quit:
			return
		default:
		}
	}
	// The fd could not go into the poller: look every millisecond instead.
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-st.quit:
			return
		case <-t.C:
			st.drain()
		}
	}
}

// drain collects every waiting completion and delivers it.
func (st *asyncState) drain() {
	st.mu.Lock()
	defer st.mu.Unlock()
	var buf [64]C.daxkv_completion
	for {
		var msg *C.char
		n := C.dk_poll(st.h, &buf[0], C.size_t(len(buf)), &msg)
		if n <= 0 {
			if msg != nil {
				C.free(unsafe.Pointer(msg))
			}
			return
		}
		for _, c := range buf[:n] {
			if pb := st.pending[uint64(c.tag)]; pb != nil {
				st.forget(uint64(c.tag))
				pb.deliver(int(c.result))
			}
		}
		if int(n) < len(buf) {
			return
		}
	}
}

// forget drops a batch from pending (st.mu held), and the Store with the
// last one.
func (st *asyncState) forget(tag uint64) {
	delete(st.pending, tag)
	if len(st.pending) == 0 {
		st.owner = nil
	}
}

// deliver builds the completion from the C items, frees them, and sends it.
func (pb *pendingBatch) deliver(rc int) {
	all := unsafe.Slice(pb.a.items, int(pb.a.n))
	items := all
	if pb.prefix && rc >= 0 && rc < len(all) {
		// The keys past the prefix were not looked at: not misses. The
		// item it stopped at stays where it failed rather than missed.
		n := rc
		if s := int(all[n].status); s < 0 && s != -int(syscall.ENOENT) {
			n++
		}
		items = all[:n]
	}
	c := Completion{Op: pb.op, Tag: pb.tag, Keys: pb.keys, Errs: make([]error, len(items))}
	if rc < 0 {
		c.Err = &Error{Code: rc, Op: pb.op.cName(), Message: Strerror(rc)}
	} else {
		c.Result = rc
	}
	if pb.op == OpGet {
		c.Values = make([][]byte, len(items))
	} else {
		c.OK = make([]bool, len(items))
	}
	for i, it := range items {
		s := int(it.status)
		switch {
		case pb.op == OpGet && s == 0:
			c.Values[i] = goBytes(it.data, it.len)
		case s == -int(syscall.ENOENT) && (pb.op == OpGet || pb.op == OpRemove):
			// a miss
		case s < 0:
			c.Errs[i] = itemErr(pb.op.cName(), C.int(s))
			if pb.op == OpGet {
				c.Errs[i] = withNeeded(c.Errs[i], it.len)
			}
		case pb.op == OpPut:
			c.OK[i] = s == 0
		case pb.op == OpContains:
			c.OK[i] = s == 1
		case pb.op == OpRemove:
			c.OK[i] = true
		}
	}
	C.free(unsafe.Pointer(pb.a))
	pb.a = nil
	pb.ch <- c // buffered for exactly this one completion
	close(pb.ch)
}

// stop ends the delivering goroutine and waits for it. Idempotent.
func (st *asyncState) stop() {
	st.mu.Lock()
	running := st.started && !st.stopped
	st.stopped = true
	st.mu.Unlock()
	if !running {
		return
	}
	// Closing the file wakes the poller wait; it must happen without
	// st.mu, which the goroutine takes while it collects.
	close(st.quit)
	st.file.Close()
	<-st.done
}

// abandon runs after daxkv_close: the library no longer touches any
// batch, so whatever was never completed (none, short of a library bug)
// is freed and reported cancelled.
func (st *asyncState) abandon() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for id, pb := range st.pending {
		st.forget(id)
		pb.deliver(-int(syscall.ECANCELED))
	}
}
