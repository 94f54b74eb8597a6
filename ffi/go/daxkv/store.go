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
type Store struct {
	mu    sync.RWMutex // read-held by every call; Close takes it to free the handle
	h     *C.daxkv_store
	async *asyncState // batches submitted and not yet delivered
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

// enter read-locks the store for one call; the handle cannot be freed until leave.
func (s *Store) enter() (*C.daxkv_store, error) {
	s.mu.RLock()
	if s.h == nil {
		s.mu.RUnlock()
		return nil, errClosed
	}
	return s.h, nil
}

func (s *Store) leave() { s.mu.RUnlock() }

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
// goroutines return. Leases and reservations stay valid. Idempotent.
func (s *Store) Close() error {
	s.mu.RLock()
	h := s.h
	if h != nil {
		// Makes calls in flight finish promptly; the handle stays valid.
		var msg *C.char
		C.dk_shutdown(h, &msg)
		if msg != nil {
			C.free(unsafe.Pointer(msg))
		}
	}
	s.mu.RUnlock()
	// The completion goroutine uses the handle: it stops first (it takes
	// no store lock, so calls in flight cannot hold it up).
	s.async.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h != nil {
		// No call is in flight and the store is shut down: every batch has
		// posted its completion (ran or cancelled). Deliver them all.
		s.async.drain()
		C.daxkv_close(s.h)
		s.h = nil
		s.async.abandon()
		runtime.SetFinalizer(s, nil)
	}
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
// on a miss. ErrBufferTooSmall if dst is too small (n is the size needed).
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
		return int(l), false, mkerr(rc, "daxkv_get", msg)
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
