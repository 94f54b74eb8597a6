package daxkv

// Zero copy: leases (an entry's bytes read in place) and reservations (a
// slot filled in place, then committed). Both stay valid after the store
// is closed; where their bytes lie is in keys.go (Lease.Slot,
// Reservation.Slot).

/*
#include "dk.h"

// Each helper returns the code and, on failure, the message (see dk.h).
static int dk_lease_acquire(daxkv_store *s, const void *k, size_t kl, daxkv_lease **out, char **msg) { int rc = daxkv_lease_acquire(s, k, kl, out); *msg = dk_msg(rc); return rc; }
static int dk_reserve(daxkv_store *s, const void *k, size_t kl, size_t n, daxkv_reservation **out, char **msg) { int rc = daxkv_reserve(s, k, kl, n, out); *msg = dk_msg(rc); return rc; }
static int dk_reserve_meta(daxkv_store *s, const void *k, size_t kl, size_t n, const void *m, size_t ml, daxkv_reservation **out, char **msg) { int rc = daxkv_reserve_meta(s, k, kl, n, m, ml, NULL, out); *msg = dk_msg(rc); return rc; }
static int dk_set_meta(daxkv_reservation *r, const void *m, size_t n, char **msg) { int rc = daxkv_reservation_set_meta(r, m, n); *msg = dk_msg(rc); return rc; }
static int dk_commit(daxkv_reservation *r, char **msg) { int rc = daxkv_commit(r); *msg = dk_msg(rc); return rc; }

// daxkv_lease_batch over keys packed back to back (cgo forbids passing Go
// memory that holds Go pointers, so the item array is built here): each
// key's lease (NULL if not leased) and status.
static int dk_lease_batch(daxkv_store *s, const char *keys, const size_t *klens, size_t n, unsigned flags,
                          daxkv_lease **leases, int *status, char **msg) {
	*msg = NULL;
	daxkv_lease_item *it = calloc(n ? n : 1, sizeof *it);
	if (!it) {
		*msg = strdup("out of memory");
		return -ENOMEM;
	}
	size_t ko = 0;
	for (size_t i = 0; i < n; i++) {
		it[i].key = keys + ko;
		it[i].key_len = klens[i];
		ko += klens[i];
	}
	int rc = daxkv_lease_batch(s, it, n, flags);
	for (size_t i = 0; i < n; i++) {
		leases[i] = it[i].lease;
		status[i] = it[i].status;
	}
	*msg = dk_batch_msg(rc, status, n);
	free(it);
	return rc;
}

// daxkv_lease_read_batch of one lease: its value into dst (NULL: not
// copied) and its metadata into meta (NULL: not copied); *len and
// *meta_len get their lengths, also with -ENOBUFS.
static int dk_lease_read(daxkv_store *s, daxkv_lease *l, void *dst, size_t cap, void *meta, size_t meta_cap,
                         size_t *len, size_t *meta_len, char **msg) {
	daxkv_item it = {NULL, 0, dst, cap, meta, meta_cap, 0};
	int rc = daxkv_lease_read_batch(s, &l, &it, 1, 0);
	if (rc >= 0)
		rc = it.status;
	*len = it.len;
	*meta_len = it.meta_len;
	*msg = dk_msg(rc);
	return rc;
}
*/
import "C"

import (
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// Lease is a read-only, zero-copy borrow of an entry's bytes. It keeps its
// store reachable, and the library keeps the bytes valid until Release,
// even after the store is closed.
//
// No lock is held while a View's callback runs, so the callback may call
// the lease's other methods, Release included: a Release during a View
// (on any goroutine) returns at once, later calls see the lease released,
// and the lease goes back to the library when the last View returns.
type Lease struct {
	mu       sync.Mutex
	l        *C.daxkv_lease
	store    *Store // keeps the store (and its finalizer) from running first
	users    int    // calls using l now (Views and accessors)
	released bool   // Release was called; l goes back once users is 0
}

// use hands out l for one call, or nil once the lease is released. Each
// non-nil result is paired with a call of done.
func (l *Lease) use() *C.daxkv_lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.l == nil || l.released {
		return nil
	}
	l.users++
	return l.l
}

func (l *Lease) done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users--
	if l.users == 0 && l.released {
		l.free()
	}
}

// free gives the lease back to the library; l.mu is held.
func (l *Lease) free() {
	C.daxkv_lease_release(l.l)
	l.l = nil
	l.store = nil
	runtime.SetFinalizer(l, nil)
}

// Lease borrows key's bytes in place. ErrNotFound on a miss.
func (s *Store) Lease(key []byte) (*Lease, error) {
	h, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer s.leave()
	var l *C.daxkv_lease
	var msg *C.char
	if rc := C.dk_lease_acquire(h, ptr(key), C.size_t(len(key)), &l, &msg); rc < 0 {
		return nil, mkerr(rc, "daxkv_lease_acquire", msg)
	}
	lease := &Lease{l: l, store: s}
	runtime.SetFinalizer(lease, (*Lease).Release)
	return lease, nil
}

// LeaseMany leases every key's entry in one call (daxkv_lease_batch). Per
// key: its lease, or nil with the key's error (ErrNotFound on a miss) in
// errs. With prefix, only the leading run of leased keys is returned, and
// the key it stopped at too where that key failed rather than missed (a
// bad key: nil, with its error), so that a failure is not taken for the
// end of the prefix. Every lease returned must be released.
func (s *Store) LeaseMany(keys [][]byte, prefix bool) ([]*Lease, []error, error) {
	h, err := s.enter()
	if err != nil {
		return nil, nil, err
	}
	defer s.leave()
	if len(keys) == 0 {
		return nil, nil, nil
	}
	p := packKeys(keys)
	raw := make([]*C.daxkv_lease, len(keys))
	status := make([]C.int, len(keys))
	var f C.unsigned
	if prefix {
		f = C.DAXKV_PREFIX
	}
	var msg *C.char
	kp := (*C.char)(unsafe.Pointer(&p.keys[:1][0]))
	rc := C.dk_lease_batch(h, kp, &p.klens[0], C.size_t(len(keys)), f, &raw[0], &status[0], &msg)
	if rc < 0 {
		return nil, nil, mkerr(rc, "daxkv_lease_batch", msg)
	}
	detail := batchDetail(status, msg)
	n := len(keys)
	if prefix {
		n = int(rc)
		if n < len(keys) && raw[n] == nil && status[n] != -C.ENOENT {
			n++ // the key the prefix stopped at failed: its error is returned
		}
	}
	leases := make([]*Lease, n)
	errs := make([]error, n)
	for i := range raw {
		if raw[i] == nil {
			if i < n {
				errs[i] = detail.err("daxkv_lease_batch", i, status[i])
			}
			continue
		}
		l := &Lease{l: raw[i], store: s}
		runtime.SetFinalizer(l, (*Lease).Release)
		leases[i] = l
	}
	return leases, errs, nil
}

// Len is the entry's size (0 after Release).
func (l *Lease) Len() int {
	p := l.use()
	if p == nil {
		return 0
	}
	defer l.done()
	return int(C.daxkv_lease_size(p))
}

// View calls fn with the bytes in place. The slice is valid only during
// fn and must not be written or retained: kept past fn, it reads whatever
// the slot holds next (or faults after Close). Bytes copies them.
func (l *Lease) View(fn func(data []byte) error) error {
	p := l.use()
	if p == nil {
		return ErrReleased
	}
	defer l.done()
	n := int(C.daxkv_lease_size(p))
	var b []byte
	if n > 0 {
		b = unsafe.Slice((*byte)(C.daxkv_lease_data(p)), n)
	}
	return fn(b)
}

// Bytes returns a copy of the bytes.
func (l *Lease) Bytes() ([]byte, error) {
	var out []byte
	err := l.View(func(b []byte) error {
		out = append(make([]byte, 0, len(b)), b...)
		return nil
	})
	return out, err
}

// Meta returns a copy of the entry's metadata blob.
func (l *Lease) Meta() ([]byte, error) {
	p := l.use()
	if p == nil {
		return nil, ErrReleased
	}
	defer l.done()
	var n C.size_t
	m := C.daxkv_lease_meta(p, &n)
	if m == nil || n == 0 {
		return []byte{}, nil
	}
	return goBytes(m, n), nil
}

// ReadInto copies the entry's value into dst and its metadata into meta
// (an empty slice copies nothing of that part) through the library
// (daxkv_lease_read_batch): on its copy workers, under sigbus=handle's
// guard and verify=read's checks, which View, Bytes and Meta are not. It
// returns the value's and the metadata's lengths; ErrBufferTooSmall
// (Needed: the length that did not fit) copies nothing; an EIO error means
// the entry's bytes faulted or failed their checksum, and the library
// dropped the entry (the lease is still to be released).
func (l *Lease) ReadInto(dst, meta []byte) (n, metaLen int, err error) {
	p := l.use()
	if p == nil {
		return 0, 0, ErrReleased
	}
	defer l.done()
	h, err := l.store.enter()
	if err != nil {
		return 0, 0, err
	}
	defer l.store.leave()
	var dp, mp unsafe.Pointer
	if len(dst) > 0 {
		dp = unsafe.Pointer(&dst[0])
	}
	if len(meta) > 0 {
		mp = unsafe.Pointer(&meta[0])
	}
	var vl, ml C.size_t
	var msg *C.char
	rc := C.dk_lease_read(h, p, dp, C.size_t(len(dst)), mp, C.size_t(len(meta)), &vl, &ml, &msg)
	if rc < 0 {
		err = mkerr(rc, "daxkv_lease_read_batch", msg)
		if rc == -C.ENOBUFS {
			needed := ml
			if len(dst) > 0 && C.size_t(len(dst)) < vl {
				needed = vl
			}
			err = withNeeded(err, needed)
		}
		return int(vl), int(ml), err
	}
	return int(vl), int(ml), nil
}

// Release returns the lease. Idempotent; later calls return ErrReleased
// (Len 0). During a View it only marks the lease released: it goes back
// when the View returns.
func (l *Lease) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.l != nil && !l.released {
		l.released = true
		if l.users == 0 {
			l.free()
		}
	}
}

// Reservation is a slot reserved for a key, filled in place and made
// visible by Commit. Not safe for concurrent use.
//
// Fill's callback may call Abort: the slot goes back to the library only
// when Fill returns, since the callback still holds the slice (returned
// at once, the slot could be reserved again for another key and the
// callback's writes land in that key's value). Commit inside Fill fails
// with ErrBusy and leaves the reservation as it was.
type Reservation struct {
	r       *C.daxkv_reservation
	store   *Store
	filling int  // Fill callbacks running now
	aborted bool // Abort was called during a Fill; r goes back when filling is 0
}

// live is the reservation, or nil once it is committed or aborted.
func (r *Reservation) live() *C.daxkv_reservation {
	if r.aborted {
		return nil
	}
	return r.r
}

// Reserve reserves size bytes for key. ok is false (and r nil) if the key
// is already present or in flight.
func (s *Store) Reserve(key []byte, size int) (r *Reservation, ok bool, err error) {
	return s.reserve("daxkv_reserve", key, size, nil, false)
}

// ReserveWithMeta is Reserve with the entry's metadata attached in the same
// library call (daxkv_reserve_meta); metadata larger than meta_bytes
// reserves nothing.
func (s *Store) ReserveWithMeta(key []byte, size int, meta []byte) (r *Reservation, ok bool, err error) {
	return s.reserve("daxkv_reserve_meta", key, size, meta, true)
}

func (s *Store) reserve(fn string, key []byte, size int, meta []byte, withMeta bool) (*Reservation, bool, error) {
	if size < 0 {
		return nil, false, invalid(fn, "negative size")
	}
	h, err := s.enter()
	if err != nil {
		return nil, false, err
	}
	defer s.leave()
	var p *C.daxkv_reservation
	var msg *C.char
	var rc C.int
	if withMeta {
		rc = C.dk_reserve_meta(h, ptr(key), C.size_t(len(key)), C.size_t(size), ptr(meta), C.size_t(len(meta)), &p, &msg)
	} else {
		rc = C.dk_reserve(h, ptr(key), C.size_t(len(key)), C.size_t(size), &p, &msg)
	}
	if rc < 0 {
		return nil, false, mkerr(rc, fn, msg)
	}
	if rc == C.DAXKV_EXISTED || p == nil {
		return nil, false, nil
	}
	res := &Reservation{r: p, store: s}
	runtime.SetFinalizer(res, (*Reservation).Abort)
	return res, true, nil
}

// Len is the reserved size.
func (r *Reservation) Len() int {
	if r.live() == nil {
		return 0
	}
	n := int(C.daxkv_reservation_size(r.r))
	// Its finalizer (Abort) must not run while the library reads it.
	runtime.KeepAlive(r)
	return n
}

// Fill calls fn with the reserved bytes in place; the slice is valid only
// during fn, and one kept past it would write into whatever entry the slot
// holds next. An Abort inside fn takes effect when fn returns.
func (r *Reservation) Fill(fn func(buf []byte) error) error {
	p := r.live()
	if p == nil {
		return ErrReleased
	}
	n := int(C.daxkv_reservation_size(p))
	var b []byte
	if n > 0 {
		b = unsafe.Slice((*byte)(C.daxkv_reservation_data(p)), n)
	}
	r.filling++
	defer func() {
		r.filling--
		if r.filling == 0 && r.aborted {
			r.aborted = false
			r.Abort()
		}
		runtime.KeepAlive(r)
	}()
	return fn(b)
}

// SetMeta attaches a metadata blob (copied) to be committed with the entry.
func (r *Reservation) SetMeta(meta []byte) error {
	if r.live() == nil {
		return ErrReleased
	}
	var msg *C.char
	rc := C.dk_set_meta(r.r, ptr(meta), C.size_t(len(meta)), &msg)
	runtime.KeepAlive(r) // its finalizer (Abort) must not run during the call
	if rc < 0 {
		return mkerr(rc, "daxkv_reservation_set_meta", msg)
	}
	return nil
}

// Commit makes the entry visible. The reservation is finished even on
// error (ErrCanceled after a forced remove, ErrShutdown after shutdown),
// except inside Fill, where it fails with ErrBusy and changes nothing.
func (r *Reservation) Commit() error {
	if r.live() == nil {
		return ErrReleased
	}
	if r.filling > 0 {
		return &Error{Code: -int(syscall.EBUSY), Op: "daxkv_commit",
			Message: "the reservation is being filled: commit it after Fill returns"}
	}
	p := r.r
	r.r, r.store = nil, nil
	runtime.SetFinalizer(r, nil)
	var msg *C.char
	if rc := C.dk_commit(p, &msg); rc < 0 {
		return mkerr(rc, "daxkv_commit", msg)
	}
	return nil
}

// Abort drops the reservation. Idempotent. Inside Fill it takes effect
// when Fill returns (later calls see the reservation released at once).
func (r *Reservation) Abort() {
	if r.filling > 0 {
		if r.r != nil {
			r.aborted = true
		}
		return
	}
	if r.r != nil {
		C.daxkv_abort(r.r)
		r.r, r.store = nil, nil
		runtime.SetFinalizer(r, nil)
	}
}
