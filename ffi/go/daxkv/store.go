package daxkv

// The Store: opening and closing it, the lock every call holds (enter and
// leave) so that Close never frees the handle under a running call, and
// the single-key calls.

/*
#include "dk.h"

// Each helper returns the code and, on failure, the message (see dk.h).
static int dk_open(daxkv_store **out, const daxkv_config *c, char **msg) { int rc = daxkv_open(out, c); *msg = dk_msg(rc); return rc; }
static int dk_shutdown(daxkv_store *s, char **msg) { int rc = daxkv_shutdown(s); *msg = dk_msg(rc); return rc; }
static int dk_put(daxkv_store *s, const void *k, size_t kl, const void *v, size_t n, unsigned f, char **msg) { int rc = daxkv_put(s, k, kl, v, n, f); *msg = dk_msg(rc); return rc; }
static int dk_get(daxkv_store *s, const void *k, size_t kl, void *d, size_t cap, size_t *len, char **msg) { int rc = daxkv_get(s, k, kl, d, cap, len); *msg = dk_msg(rc); return rc; }
static int dk_contains(daxkv_store *s, const void *k, size_t kl, char **msg) { int rc = daxkv_contains(s, k, kl); *msg = dk_msg(rc); return rc; }
static int dk_remove(daxkv_store *s, const void *k, size_t kl, unsigned f, char **msg) { int rc = daxkv_remove(s, k, kl, f); *msg = dk_msg(rc); return rc; }
static int dk_pin(daxkv_store *s, const void *k, size_t kl, char **msg) { int rc = daxkv_pin(s, k, kl); *msg = dk_msg(rc); return rc; }
static int dk_unpin(daxkv_store *s, const void *k, size_t kl, char **msg) { int rc = daxkv_unpin(s, k, kl); *msg = dk_msg(rc); return rc; }
*/
import "C"

import (
	"errors"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// Store is an open store, safe for concurrent use.
//
// Every call counts itself in calls while it uses the handle; Close frees
// the handle only once no call uses it. No lock is held during a library
// call, because the library hands a call's log messages to the logger on
// the caller's goroutine before the call returns, and the logger may call
// into the store again, Close included.
type Store struct {
	mu      sync.Mutex
	idle    sync.Cond // broadcast when the handle has been freed
	h       *C.daxkv_store
	calls   int         // calls using h now
	closing bool        // Close has begun: new calls fail with ErrShutdown
	async   *asyncState // batches submitted and not yet delivered
}

// Open opens (and recovers) a store. On failure nothing stays open, and
// arena files the attempt created are removed again.
func Open(cfg *Config) (*Store, error) {
	if cfg == nil || cfg.c == nil {
		return nil, invalid("daxkv_open", "nil or freed configuration")
	}
	var h *C.daxkv_store
	var msg *C.char
	rc := C.dk_open(&h, cfg.c, &msg)
	runtime.KeepAlive(cfg)
	if rc < 0 {
		return nil, mkerr(rc, "daxkv_open", msg)
	}
	s := &Store{h: h, async: newAsyncState(h)}
	s.idle.L = &s.mu
	// A safety net only: stores should be closed explicitly.
	runtime.SetFinalizer(s, (*Store).Close)
	return s, nil
}

// OpenOptions opens a store on one device with daxkv_config_set options.
func OpenOptions(path string, bytes uint64, options map[string]string) (*Store, error) {
	cfg, err := NewConfig()
	if err != nil {
		return nil, err
	}
	defer cfg.Free()
	for k, v := range options {
		if err := cfg.Set(k, v); err != nil {
			return nil, err
		}
	}
	if err := cfg.AddDevice(path, bytes); err != nil {
		return nil, err
	}
	return Open(cfg)
}

var errClosed = &Error{Code: -int(syscall.ESHUTDOWN), Op: "daxkv", Message: "the store is closed"}

// enter counts one call on the store; the handle cannot be freed until
// leave. It never blocks, so a call made from a log callback (inside
// another call) cannot wait for a Close that waits for that call.
func (s *Store) enter() (*C.daxkv_store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil || s.closing {
		return nil, errClosed
	}
	s.calls++
	return s.h, nil
}

// leave ends a call; the last one out after Close began frees the handle.
// Once Close has begun no call enters, so that happens exactly once.
func (s *Store) leave() {
	s.mu.Lock()
	s.calls--
	last := s.calls == 0 && s.closing && s.h != nil
	h := s.h
	s.mu.Unlock()
	if !last {
		return
	}
	if inLogCallback() {
		// The logger runs on a goroutine of its own while the library
		// thread that logs (the store's event thread, its dispatcher)
		// waits for it: daxkv_close here would wait for that thread to
		// end, and it for this goroutine. Freed beside it instead.
		go s.free(h)
		return
	}
	s.free(h)
}

// free frees the store once the last call has left a closing store.
func (s *Store) free(h *C.daxkv_store) {
	// No call is in flight and the store is shut down: every batch has
	// posted its completion (ran or cancelled). Deliver them all. s.mu is
	// not held: daxkv_close may hand messages to the logger, which may
	// call into the store (and get ErrShutdown).
	s.async.drain()
	C.daxkv_close(h)
	s.async.abandon()
	runtime.SetFinalizer(s, nil)
	s.mu.Lock()
	s.h = nil
	s.idle.Broadcast()
	s.mu.Unlock()
}

// Shutdown refuses new calls (ErrShutdown); leases stay valid.
func (s *Store) Shutdown() error {
	h, err := s.enter()
	if err != nil {
		return err
	}
	defer s.leave()
	var msg *C.char
	if rc := C.dk_shutdown(h, &msg); rc < 0 {
		return mkerr(rc, "daxkv_shutdown", msg)
	}
	return nil
}

// Close shuts the store down and frees it, after calls in flight on other
// goroutines return. Leases and reservations stay valid. Idempotent. From
// a log callback of a call on this store, it returns at once and the store
// is freed when that call returns.
func (s *Store) Close() error {
	inCallback := inLogCallback()
	s.mu.Lock()
	if s.h == nil {
		s.mu.Unlock()
		return nil
	}
	first := !s.closing
	s.closing = true
	h := s.h
	if first {
		s.calls++ // Close's own use of the handle, until leave below
	}
	s.mu.Unlock()
	if first {
		// Makes calls in flight finish promptly; the handle stays valid.
		var msg *C.char
		C.dk_shutdown(h, &msg)
		if msg != nil {
			C.free(unsafe.Pointer(msg))
		}
		// The completion goroutine uses the handle: it stops first (it
		// takes no store lock, so calls in flight cannot hold it up).
		s.async.stop()
		s.leave()
	}
	if inCallback {
		// The call whose message this is may be a call on this store:
		// waiting for it would never end. The last call out frees it.
		return nil
	}
	s.mu.Lock()
	for s.h != nil {
		s.idle.Wait()
	}
	s.mu.Unlock()
	return nil
}

// Put stores value under key: true if stored, false if the key was present
// or in flight (nothing written) and replace is false.
func (s *Store) Put(key, value []byte, replace bool) (bool, error) {
	h, err := s.enter()
	if err != nil {
		return false, err
	}
	defer s.leave()
	var f C.unsigned
	if replace {
		f = C.DAXKV_REPLACE
	}
	var msg *C.char
	rc := C.dk_put(h, ptr(key), C.size_t(len(key)), ptr(value), C.size_t(len(value)), f, &msg)
	if rc < 0 {
		return false, mkerr(rc, "daxkv_put", msg)
	}
	return rc == 0, nil
}

// GetInto copies the value into dst and returns its length; found is false
// on a miss. ErrBufferTooSmall if dst is too small (n, and the error's
// Needed, is the size needed).
func (s *Store) GetInto(key, dst []byte) (n int, found bool, err error) {
	h, err := s.enter()
	if err != nil {
		return 0, false, err
	}
	defer s.leave()
	var l C.size_t
	var msg *C.char
	rc := C.dk_get(h, ptr(key), C.size_t(len(key)), ptr(dst), C.size_t(len(dst)), &l, &msg)
	if rc == -C.ENOENT {
		C.free(unsafe.Pointer(msg))
		return 0, false, nil
	}
	if rc < 0 {
		return int(l), false, withNeeded(mkerr(rc, "daxkv_get", msg), l)
	}
	return int(l), true, nil
}

// Get returns a copy of the value, or nil, false on a miss.
func (s *Store) Get(key []byte) ([]byte, bool, error) {
	l, err := s.Lease(key)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer l.Release()
	b, err := l.Bytes()
	return b, err == nil, err
}

func (s *Store) keyOp(op string, key []byte, call func(h *C.daxkv_store, k unsafe.Pointer, kl C.size_t, msg **C.char) C.int) (C.int, error) {
	h, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer s.leave()
	var msg *C.char
	rc := call(h, ptr(key), C.size_t(len(key)), &msg)
	if rc < 0 {
		return rc, mkerr(rc, op, msg)
	}
	return rc, nil
}

// Contains reports whether key is committed (in-flight keys are not).
func (s *Store) Contains(key []byte) (bool, error) {
	rc, err := s.keyOp("daxkv_contains", key, func(h *C.daxkv_store, k unsafe.Pointer, kl C.size_t, m **C.char) C.int {
		return C.dk_contains(h, k, kl, m)
	})
	return rc == 1, err
}

// Remove removes key: false on a miss; ErrBusy if pinned or in flight unless force.
func (s *Store) Remove(key []byte, force bool) (bool, error) {
	var f C.unsigned
	if force {
		f = C.DAXKV_FORCE
	}
	_, err := s.keyOp("daxkv_remove", key, func(h *C.daxkv_store, k unsafe.Pointer, kl C.size_t, m **C.char) C.int {
		return C.dk_remove(h, k, kl, f, m)
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Pin pins (refcounts) a committed entry.
func (s *Store) Pin(key []byte) error {
	_, err := s.keyOp("daxkv_pin", key, func(h *C.daxkv_store, k unsafe.Pointer, kl C.size_t, m **C.char) C.int {
		return C.dk_pin(h, k, kl, m)
	})
	return err
}

// Unpin drops one pin.
func (s *Store) Unpin(key []byte) error {
	_, err := s.keyOp("daxkv_unpin", key, func(h *C.daxkv_store, k unsafe.Pointer, kl C.size_t, m **C.char) C.int {
		return C.dk_unpin(h, k, kl, m)
	})
	return err
}
