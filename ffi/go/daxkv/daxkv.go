// Package daxkv is the Go binding of libdaxkv, a KV-cache store for LLM
// inference on Device-DAX and other byte-addressable memory.
//
// A Store is safe for concurrent use. Errors are *Error values carrying the
// library's code and message; they match the sentinel errors of this
// package (ErrNotFound, ...) and, for errno codes, syscall.Errno values
// through errors.Is.
//
// Zero-copy access is scoped: Lease.View and Reservation.Fill hand a slice
// of the arena to a callback and the slice must not be kept after it
// returns, since the bytes belong to the library once the lease is released.
//
// Beyond single keys and batches: asynchronous batches (Store.SubmitPut and
// the other Submit calls, each delivering its Completion on a channel), the
// committed keys (Store.Keys) and where entries lie (Lease.Slot,
// Store.DescribeDevice), the device pool (Store.AddDevice and the calls
// after it), discovery (ListDevices, Probe), the log callback (SetLogger),
// Prometheus text (Store.StatsPrometheus), the statistics of a store
// running elsewhere (StatsPeek) and GPU transfers (Store.CudaRegister).
package daxkv

/*
#cgo pkg-config: libdaxkv
#include "dk.h"

#if DAXKV_VERSION_MAJOR != 0 || DAXKV_VERSION_MINOR < 1
#error "this binding is written for libdaxkv 0.x (x >= 1)"
#endif

// Each helper returns the code and, on failure, the message (see dk.h).
static int dk_config_new(daxkv_config **out, char **msg) { int rc = daxkv_config_new(out); *msg = dk_msg(rc); return rc; }
static int dk_config_from_json(daxkv_config **out, const char *j, char **msg) { int rc = daxkv_config_from_json(out, j); *msg = dk_msg(rc); return rc; }
static int dk_config_set(daxkv_config *c, const char *k, const char *v, char **msg) { int rc = daxkv_config_set(c, k, v); *msg = dk_msg(rc); return rc; }
static int dk_config_add_device(daxkv_config *c, const char *p, uint64_t n, char **msg) { int rc = daxkv_config_add_device(c, p, n); *msg = dk_msg(rc); return rc; }
static int dk_open(daxkv_store **out, const daxkv_config *c, char **msg) { int rc = daxkv_open(out, c); *msg = dk_msg(rc); return rc; }
static int dk_shutdown(daxkv_store *s, char **msg) { int rc = daxkv_shutdown(s); *msg = dk_msg(rc); return rc; }
static int dk_put(daxkv_store *s, const void *k, size_t kl, const void *v, size_t n, unsigned f, char **msg) { int rc = daxkv_put(s, k, kl, v, n, f); *msg = dk_msg(rc); return rc; }
static int dk_get(daxkv_store *s, const void *k, size_t kl, void *d, size_t cap, size_t *len, char **msg) { int rc = daxkv_get(s, k, kl, d, cap, len); *msg = dk_msg(rc); return rc; }
static int dk_contains(daxkv_store *s, const void *k, size_t kl, char **msg) { int rc = daxkv_contains(s, k, kl); *msg = dk_msg(rc); return rc; }
static int dk_remove(daxkv_store *s, const void *k, size_t kl, unsigned f, char **msg) { int rc = daxkv_remove(s, k, kl, f); *msg = dk_msg(rc); return rc; }
static int dk_pin(daxkv_store *s, const void *k, size_t kl, char **msg) { int rc = daxkv_pin(s, k, kl); *msg = dk_msg(rc); return rc; }
static int dk_unpin(daxkv_store *s, const void *k, size_t kl, char **msg) { int rc = daxkv_unpin(s, k, kl); *msg = dk_msg(rc); return rc; }
static int dk_lease_acquire(daxkv_store *s, const void *k, size_t kl, daxkv_lease **out, char **msg) { int rc = daxkv_lease_acquire(s, k, kl, out); *msg = dk_msg(rc); return rc; }
static int dk_reserve(daxkv_store *s, const void *k, size_t kl, size_t n, daxkv_reservation **out, char **msg) { int rc = daxkv_reserve(s, k, kl, n, out); *msg = dk_msg(rc); return rc; }
static int dk_set_meta(daxkv_reservation *r, const void *m, size_t n, char **msg) { int rc = daxkv_reservation_set_meta(r, m, n); *msg = dk_msg(rc); return rc; }
static int dk_commit(daxkv_reservation *r, char **msg) { int rc = daxkv_commit(r); *msg = dk_msg(rc); return rc; }
static int dk_stats(daxkv_store *s, struct daxkv_stats *out, char **msg) { out->struct_size = sizeof *out; int rc = daxkv_stats(s, out); *msg = dk_msg(rc); return rc; }
static int dk_status_json(daxkv_store *s, char *buf, size_t cap, size_t *need, char **msg) { int rc = daxkv_status_json(s, buf, cap, need); *msg = dk_msg(rc); return rc; }
static int dk_stats_prometheus(daxkv_store *s, char *buf, size_t cap, size_t *need, char **msg) { int rc = daxkv_stats_prometheus(s, buf, cap, need); *msg = dk_msg(rc); return rc; }
static int dk_pool_status_json(daxkv_store *s, char *buf, size_t cap, size_t *need, char **msg) { int rc = daxkv_pool_status_json(s, buf, cap, need); *msg = dk_msg(rc); return rc; }
static int dk_memcpy_batch(char *dst, const char *src, const size_t *doff, const size_t *soff, const size_t *len, size_t n, char **msg) {
	*msg = NULL;
	void **d = malloc((n ? n : 1) * sizeof *d);
	const void **sp = malloc((n ? n : 1) * sizeof *sp);
	if (!d || !sp) {
		free(d);
		free(sp);
		*msg = strdup("out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		d[i] = dst + doff[i];
		sp[i] = src + soff[i];
	}
	int rc = daxkv_memcpy_batch(d, sp, len, n, 0);
	*msg = dk_msg(rc);
	free(d);
	free(sp);
	return rc;
}

enum { DK_PUT, DK_GET, DK_CONTAINS, DK_REMOVE, DK_UNPIN };

// Batches: cgo forbids passing Go memory that holds Go pointers, so the
// item array (which points at keys and buffers) is built here in C from
// one packed key buffer and one packed data buffer plus lengths.
static int dk_batch(int op, daxkv_store *s, const char *keys, const size_t *klens, char *data,
                    size_t *lens, int *status, size_t n, unsigned flags, char **msg) {
	*msg = NULL;
	daxkv_item *it = calloc(n ? n : 1, sizeof *it);
	if (!it) {
		*msg = strdup("out of memory");
		return -ENOMEM;
	}
	size_t ko = 0, dof = 0;
	for (size_t i = 0; i < n; i++) {
		it[i].key = keys + ko;
		it[i].key_len = klens[i];
		ko += klens[i];
		if (data) {
			it[i].data = data + dof;
			it[i].len = lens[i];
			dof += lens[i];
		}
	}
	int rc;
	switch (op) {
	case DK_PUT: rc = daxkv_put_batch(s, it, n, flags); break;
	case DK_GET: rc = daxkv_get_batch(s, it, n, flags); break;
	case DK_CONTAINS: rc = daxkv_contains_batch(s, it, n, flags); break;
	case DK_REMOVE: rc = daxkv_remove_batch(s, it, n, flags); break;
	default: rc = daxkv_unpin_batch(s, it, n, flags); break;
	}
	*msg = dk_msg(rc);
	for (size_t i = 0; i < n; i++) {
		status[i] = it[i].status;
		if (data && op == DK_GET)
			lens[i] = it[i].len;
	}
	free(it);
	return rc;
}
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// KeyMax is the largest key in bytes.
const KeyMax = C.DAXKV_KEY_MAX

// Error codes of daxkv's own (negative errno values are used otherwise).
const (
	ECorrupt = C.DAXKV_E_CORRUPT
	EForeign = C.DAXKV_E_FOREIGN
)

// Error is a failed libdaxkv call.
type Error struct {
	Code    int    // the negative value the C function returned
	Op      string // the C function
	Message string // the library's detail message, read on the failing thread
}

func (e *Error) Error() string {
	if e.Op == "" {
		return fmt.Sprintf("daxkv: %s (%d)", e.Message, e.Code)
	}
	return fmt.Sprintf("%s: %s (%d)", e.Op, e.Message, e.Code)
}

// Is matches errors with the same code, so errors.Is(err, ErrBusy) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Unwrap exposes errno codes as syscall.Errno (errors.Is(err, syscall.ENOENT)).
func (e *Error) Unwrap() error {
	if e.Code < 0 && e.Code > -4096 {
		return syscall.Errno(-e.Code)
	}
	return nil
}

func sentinel(code syscall.Errno) *Error {
	return &Error{Code: -int(code), Message: code.Error()}
}

// Sentinel errors for errors.Is.
var (
	ErrNotFound       = sentinel(syscall.ENOENT)
	ErrNoSpace        = sentinel(syscall.ENOSPC)
	ErrTooBig         = sentinel(syscall.E2BIG)
	ErrBusy           = sentinel(syscall.EBUSY)
	ErrBufferTooSmall = sentinel(syscall.ENOBUFS)
	ErrShutdown       = sentinel(syscall.ESHUTDOWN)
	ErrCanceled       = sentinel(syscall.ECANCELED)
	ErrInvalid        = sentinel(syscall.EINVAL)
	ErrNoDevice       = sentinel(syscall.ENODEV)
	ErrNoMemory       = sentinel(syscall.ENOMEM)
	ErrIO             = sentinel(syscall.EIO)
	ErrPermission     = sentinel(syscall.EPERM)
	ErrTimedOut       = sentinel(syscall.ETIMEDOUT)
	ErrNotSupported   = sentinel(syscall.ENOTSUP)
	ErrCorrupt        = &Error{Code: ECorrupt, Message: "on-device metadata is corrupt"}
	ErrForeign        = &Error{Code: EForeign, Message: "the device holds data that is not a daxkv arena"}
	// ErrReleased is returned by a Lease or Reservation used after release,
	// commit or abort.
	ErrReleased = errors.New("daxkv: lease or reservation already released")
)

func mkerr(rc C.int, op string, msg *C.char) error {
	m := ""
	if msg != nil {
		m = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	if m == "" {
		m = Strerror(int(rc))
	}
	return &Error{Code: int(rc), Op: op, Message: m}
}

func invalid(op, msg string) error {
	return &Error{Code: -int(syscall.EINVAL), Op: op, Message: msg}
}

// Strerror is the library's static description of a code.
func Strerror(code int) string {
	return C.GoString(C.daxkv_strerror(C.int(code)))
}

// Version is "major.minor.patch" of the library actually loaded.
func Version() string { return C.GoString(C.daxkv_version_string()) }

// VersionNumber is major*10000 + minor*100 + patch of the library loaded.
func VersionNumber() uint { return uint(C.daxkv_version_number()) }

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// Config is a store configuration. It is not safe for concurrent use.
type Config struct {
	c *C.daxkv_config
	// The device paths, as far as they are known: a failed Open removes
	// the arena files it created, and the library's configuration is opaque.
	devices []string
}

// NewConfig returns an empty configuration; Free it when done.
func NewConfig() (*Config, error) {
	var c *C.daxkv_config
	var msg *C.char
	if rc := C.dk_config_new(&c, &msg); rc < 0 {
		return nil, mkerr(rc, "daxkv_config_new", msg)
	}
	cfg := &Config{c: c}
	runtime.SetFinalizer(cfg, (*Config).Free)
	return cfg, nil
}

// ConfigFromJSON parses LMCache's dax adapter JSON.
func ConfigFromJSON(json string) (*Config, error) {
	cs := C.CString(json)
	defer C.free(unsafe.Pointer(cs))
	var c *C.daxkv_config
	var msg *C.char
	if rc := C.dk_config_from_json(&c, cs, &msg); rc < 0 {
		return nil, mkerr(rc, "daxkv_config_from_json", msg)
	}
	cfg := &Config{c: c, devices: jsonDevicePaths(json)}
	runtime.SetFinalizer(cfg, (*Config).Free)
	return cfg, nil
}

func hasNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// Set sets a key (slot_bytes, eviction, durability, ...).
func (cfg *Config) Set(key, value string) error {
	if cfg.c == nil {
		return invalid("daxkv_config_set", "the configuration was freed")
	}
	if hasNUL(key) || hasNUL(value) {
		return invalid("daxkv_config_set", "key or value contains a NUL byte")
	}
	k, v := C.CString(key), C.CString(value)
	defer C.free(unsafe.Pointer(k))
	defer C.free(unsafe.Pointer(v))
	var msg *C.char
	if rc := C.dk_config_set(cfg.c, k, v, &msg); rc < 0 {
		return mkerr(rc, "daxkv_config_set", msg)
	}
	return nil
}

// AddDevice adds /dev/daxX.Y, a regular file or "mem:"; bytes 0 = whole device.
func (cfg *Config) AddDevice(path string, bytes uint64) error {
	if cfg.c == nil {
		return invalid("daxkv_config_add_device", "the configuration was freed")
	}
	if hasNUL(path) {
		return invalid("daxkv_config_add_device", "path contains a NUL byte")
	}
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	var msg *C.char
	if rc := C.dk_config_add_device(cfg.c, p, C.uint64_t(bytes), &msg); rc < 0 {
		return mkerr(rc, "daxkv_config_add_device", msg)
	}
	cfg.devices = append(cfg.devices, path)
	return nil
}

// jsonDevicePaths are the "device_path" values of an LMCache dax
// configuration (top level and "devices" list). The library accepted the
// text already; anything unexpected just yields fewer paths.
func jsonDevicePaths(text string) []string {
	var doc map[string]json.RawMessage
	if json.Unmarshal([]byte(text), &doc) != nil {
		return nil
	}
	var out []string
	var p string
	if json.Unmarshal(doc["device_path"], &p) == nil && p != "" {
		out = append(out, p)
	}
	var devs []map[string]json.RawMessage
	if json.Unmarshal(doc["devices"], &devs) == nil {
		for _, d := range devs {
			if json.Unmarshal(d["device_path"], &p) == nil && p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// Free releases the configuration. Idempotent.
func (cfg *Config) Free() {
	if cfg.c != nil {
		C.daxkv_config_free(cfg.c)
		cfg.c = nil
		runtime.SetFinalizer(cfg, nil)
	}
}

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
	fresh := absentPaths(cfg.devices)
	var h *C.daxkv_store
	var msg *C.char
	rc := C.dk_open(&h, cfg.c, &msg)
	runtime.KeepAlive(cfg)
	if rc < 0 {
		err := mkerr(rc, "daxkv_open", msg)
		removeLeftovers(fresh)
		return nil, err
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

// ItemError is one item's failure in a batch (nil when the item succeeded).
func itemErr(op string, st C.int) error {
	if st >= 0 {
		return nil
	}
	return &Error{Code: int(st), Op: op, Message: Strerror(int(st))}
}

type packed struct {
	keys  []byte
	klens []C.size_t
}

func packKeys(keys [][]byte) packed {
	total := 0
	for _, k := range keys {
		total += len(k)
	}
	p := packed{keys: make([]byte, 0, total+1), klens: make([]C.size_t, len(keys))}
	for i, k := range keys {
		p.keys = append(p.keys, k...)
		p.klens[i] = C.size_t(len(k))
	}
	return p
}

func (s *Store) batch(op C.int, name string, keys [][]byte, data []byte, lens []C.size_t, flags C.unsigned) ([]C.int, int, error) {
	if len(keys) == 0 {
		if _, err := s.enter(); err != nil {
			return nil, 0, err
		}
		s.leave()
		return nil, 0, nil
	}
	p := packKeys(keys)
	status := make([]C.int, len(keys))
	h, err := s.enter()
	if err != nil {
		return nil, 0, err
	}
	defer s.leave()
	var lp *C.size_t
	if lens != nil {
		lp = &lens[0]
	}
	var msg *C.char
	kp := (*C.char)(unsafe.Pointer(&p.keys[:1][0]))
	rc := C.dk_batch(op, h, kp, &p.klens[0], (*C.char)(ptr(data)), lp, &status[0], C.size_t(len(keys)), flags, &msg)
	if rc < 0 {
		return nil, 0, mkerr(rc, name, msg)
	}
	return status, int(rc), nil
}

// PutManyFrom stores values laid out back to back in buf (value i has
// length lens[i]) without copying them on the Go side. Per item: stored
// (true) or already present/in flight (false), and that item's error.
func (s *Store) PutManyFrom(keys [][]byte, buf []byte, lens []int, replace bool) ([]bool, []error, error) {
	if len(keys) != len(lens) {
		return nil, nil, invalid("daxkv_put_batch", "keys and lens differ in length")
	}
	cl := make([]C.size_t, len(lens))
	total := 0
	for i, l := range lens {
		if l < 0 {
			return nil, nil, invalid("daxkv_put_batch", "negative length")
		}
		cl[i] = C.size_t(l)
		total += l
	}
	if total > len(buf) {
		return nil, nil, invalid("daxkv_put_batch", "lens exceed the buffer")
	}
	var f C.unsigned
	if replace {
		f = C.DAXKV_REPLACE
	}
	if len(buf) == 0 {
		buf = make([]byte, 1) // a non-NULL base for all-empty values
	}
	st, _, err := s.batch(C.DK_PUT, "daxkv_put_batch", keys, buf, cl, f)
	if err != nil {
		return nil, nil, err
	}
	stored := make([]bool, len(keys))
	errs := make([]error, len(keys))
	for i, v := range st {
		stored[i] = v == 0
		errs[i] = itemErr("daxkv_put_batch", v)
	}
	return stored, errs, nil
}

// PutMany stores many values in one library call (values are packed into
// one buffer first: cgo cannot pass a list of Go buffers).
func (s *Store) PutMany(keys, values [][]byte, replace bool) ([]bool, []error, error) {
	if len(keys) != len(values) {
		return nil, nil, invalid("daxkv_put_batch", "keys and values differ in length")
	}
	total := 0
	for _, v := range values {
		total += len(v)
	}
	buf := make([]byte, 0, total)
	lens := make([]int, len(values))
	for i, v := range values {
		buf = append(buf, v...)
		lens[i] = len(v)
	}
	return s.PutManyFrom(keys, buf, lens, replace)
}

// GetManyInto copies values into consecutive regions of buf (region i has
// capacity caps[i]). Per item: the value length, or -1 for a miss; errs
// holds other per-item failures (e.g. ErrBufferTooSmall). With prefix the
// copy stops at the first miss and n is the prefix length; otherwise n is
// the number of hits.
func (s *Store) GetManyInto(keys [][]byte, buf []byte, caps []int, prefix bool) (lens []int, errs []error, n int, err error) {
	if len(keys) != len(caps) {
		return nil, nil, 0, invalid("daxkv_get_batch", "keys and caps differ in length")
	}
	cl := make([]C.size_t, len(caps))
	total := 0
	for i, c := range caps {
		if c < 0 {
			return nil, nil, 0, invalid("daxkv_get_batch", "negative capacity")
		}
		cl[i] = C.size_t(c)
		total += c
	}
	if total > len(buf) {
		return nil, nil, 0, invalid("daxkv_get_batch", "caps exceed the buffer")
	}
	if len(buf) == 0 {
		buf = make([]byte, 1)
	}
	var f C.unsigned
	if prefix {
		f = C.DAXKV_PREFIX
	}
	st, n, err := s.batch(C.DK_GET, "daxkv_get_batch", keys, buf, cl, f)
	if err != nil {
		return nil, nil, 0, err
	}
	lens = make([]int, len(keys))
	errs = make([]error, len(keys))
	for i, v := range st {
		switch {
		case v == 0:
			lens[i] = int(cl[i])
		case v == -C.ENOENT:
			lens[i] = -1
		default:
			lens[i] = -1
			errs[i] = itemErr("daxkv_get_batch", v)
		}
	}
	return lens, errs, n, nil
}

// ContainsMany reports per key whether it is committed; pin pins every hit.
func (s *Store) ContainsMany(keys [][]byte, pin bool) ([]bool, error) {
	var f C.unsigned
	if pin {
		f = C.DAXKV_PIN
	}
	st, _, err := s.batch(C.DK_CONTAINS, "daxkv_contains_batch", keys, nil, nil, f)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(keys))
	for i, v := range st {
		if v < 0 {
			return nil, itemErr("daxkv_contains_batch", v)
		}
		out[i] = v == 1
	}
	return out, nil
}

// PrefixLen counts consecutive committed keys from the start (pinning them if pin).
func (s *Store) PrefixLen(keys [][]byte, pin bool) (int, error) {
	f := C.unsigned(C.DAXKV_PREFIX)
	if pin {
		f |= C.DAXKV_PIN
	}
	_, n, err := s.batch(C.DK_CONTAINS, "daxkv_contains_batch", keys, nil, nil, f)
	return n, err
}

// RemoveMany removes keys; per item the error (ErrNotFound, ErrBusy, ...) or nil.
func (s *Store) RemoveMany(keys [][]byte, force bool) ([]error, int, error) {
	var f C.unsigned
	if force {
		f = C.DAXKV_FORCE
	}
	st, n, err := s.batch(C.DK_REMOVE, "daxkv_remove_batch", keys, nil, nil, f)
	if err != nil {
		return nil, 0, err
	}
	errs := make([]error, len(keys))
	for i, v := range st {
		errs[i] = itemErr("daxkv_remove_batch", v)
	}
	return errs, n, nil
}

// UnpinMany drops one pin per key; per item the error or nil.
func (s *Store) UnpinMany(keys [][]byte) ([]error, int, error) {
	st, n, err := s.batch(C.DK_UNPIN, "daxkv_unpin_batch", keys, nil, nil, 0)
	if err != nil {
		return nil, 0, err
	}
	errs := make([]error, len(keys))
	for i, v := range st {
		errs[i] = itemErr("daxkv_unpin_batch", v)
	}
	return errs, n, nil
}

// HistBuckets is the number of buckets of a Histogram.
const HistBuckets = C.DAXKV_HIST_BUCKETS

// Histogram is a histogram of latencies (nanoseconds) or sizes (bytes).
// Bucket[i] counts the values v with Bound(i-1) < v <= Bound(i) (not
// cumulative); the last bucket counts everything above. Count is the sum
// of the buckets.
type Histogram struct {
	Count  uint64
	Sum    uint64
	Bucket [HistBuckets]uint64
	Unit   uint64 // Bound(0): 1000 ns for latencies, 4096 bytes for sizes
}

// Bound is the upper bound of bucket i; ok is false for the last bucket,
// which has none.
func (h Histogram) Bound(i int) (bound uint64, ok bool) {
	if i < 0 || i >= HistBuckets-1 {
		return 0, false
	}
	return h.Unit << uint(i), true
}

func histogram(c *C.struct_daxkv_histogram, unit uint64) Histogram {
	h := Histogram{Count: uint64(c.count), Sum: uint64(c.sum), Unit: unit}
	for i := range h.Bucket {
		h.Bucket[i] = uint64(c.bucket[i])
	}
	return h
}

// Stats is a snapshot of struct daxkv_stats. The members from CopyFaults
// on were appended to the C struct later; a library that predates them
// leaves them zero.
type Stats struct {
	Devices                uint32
	SlotBytes              uint64
	MetaBytes              uint64
	CapacityBytes          uint64
	SlotsTotal             uint64
	SlotsUsed              uint64
	SlotsFree              uint64
	Entries                uint64
	EntriesPinned          uint64
	SlotsInflight          uint64
	SlotsPendingFree       uint64
	LeasesActive           uint64
	Hits                   uint64
	Misses                 uint64
	Puts                   uint64
	PutsExisted            uint64
	PutsFailed             uint64
	Removes                uint64
	Evictions              uint64
	BytesWritten           uint64
	BytesRead              uint64
	VerifyFailures         uint64
	RecoveredEntries       uint64
	RecoveryDroppedTorn    uint64
	RecoveryDroppedCorrupt uint64
	RecoveryDroppedStale   uint64
	RecoveryUsec           uint64
	CopyFaults             uint64    // reads that faulted (sigbus=handle)
	Batches                uint64    // put and get batch calls, synchronous and submitted
	AsyncSubmitted         uint64    // batches queued by Submit
	AsyncCompleted         uint64    // ... that ran and posted their completion
	AsyncCancelled         uint64    // ... cancelled by shutdown
	PutLatency             Histogram // Put, ns per call
	GetLatency             Histogram // GetInto, ns per call
	BatchLatency           Histogram // put and get batches, ns per call
	ItemBytes              Histogram // bytes of each value stored or copied out
	SlotsLeased            uint64    // slots with at least one lease (removed entries' too, until released)
}

// Stats returns counters and capacity.
func (s *Store) Stats() (Stats, error) {
	h, err := s.enter()
	if err != nil {
		return Stats{}, err
	}
	defer s.leave()
	var c C.struct_daxkv_stats
	var msg *C.char
	if rc := C.dk_stats(h, &c, &msg); rc < 0 {
		return Stats{}, mkerr(rc, "daxkv_stats", msg)
	}
	return statsFrom(&c), nil
}

// statsFrom converts the C struct (of Store.Stats or StatsPeek).
func statsFrom(c *C.struct_daxkv_stats) Stats {
	const ns, bytes = C.DAXKV_HIST_NS_UNIT, C.DAXKV_HIST_BYTES_UNIT
	return Stats{
		Devices:                uint32(c.devices),
		SlotBytes:              uint64(c.slot_bytes),
		MetaBytes:              uint64(c.meta_bytes),
		CapacityBytes:          uint64(c.capacity_bytes),
		SlotsTotal:             uint64(c.slots_total),
		SlotsUsed:              uint64(c.slots_used),
		SlotsFree:              uint64(c.slots_free),
		Entries:                uint64(c.entries),
		EntriesPinned:          uint64(c.entries_pinned),
		SlotsInflight:          uint64(c.slots_inflight),
		SlotsPendingFree:       uint64(c.slots_pending_free),
		LeasesActive:           uint64(c.leases_active),
		Hits:                   uint64(c.hits),
		Misses:                 uint64(c.misses),
		Puts:                   uint64(c.puts),
		PutsExisted:            uint64(c.puts_existed),
		PutsFailed:             uint64(c.puts_failed),
		Removes:                uint64(c.removes),
		Evictions:              uint64(c.evictions),
		BytesWritten:           uint64(c.bytes_written),
		BytesRead:              uint64(c.bytes_read),
		VerifyFailures:         uint64(c.verify_failures),
		RecoveredEntries:       uint64(c.recovered_entries),
		RecoveryDroppedTorn:    uint64(c.recovery_dropped_torn),
		RecoveryDroppedCorrupt: uint64(c.recovery_dropped_corrupt),
		RecoveryDroppedStale:   uint64(c.recovery_dropped_stale),
		RecoveryUsec:           uint64(c.recovery_usec),
		CopyFaults:             uint64(c.copy_faults),
		Batches:                uint64(c.batches),
		AsyncSubmitted:         uint64(c.async_submitted),
		AsyncCompleted:         uint64(c.async_completed),
		AsyncCancelled:         uint64(c.async_cancelled),
		PutLatency:             histogram(&c.put_latency, ns),
		GetLatency:             histogram(&c.get_latency, ns),
		BatchLatency:           histogram(&c.batch_latency, ns),
		ItemBytes:              histogram(&c.item_bytes, bytes),
		SlotsLeased:            uint64(c.slots_leased),
	}
}

// StatusJSON returns the store's state as JSON.
func (s *Store) StatusJSON() (string, error) {
	return s.text("daxkv_status_json", func(h *C.daxkv_store, buf *C.char, capacity C.size_t, need *C.size_t, msg **C.char) C.int {
		return C.dk_status_json(h, buf, capacity, need, msg)
	})
}

// StatsPrometheus returns the store's counters, gauges and histograms in
// the Prometheus text exposition format (0.0.4), metric names prefixed
// "daxkv_".
func (s *Store) StatsPrometheus() (string, error) {
	return s.text("daxkv_stats_prometheus", func(h *C.daxkv_store, buf *C.char, capacity C.size_t, need *C.size_t, msg **C.char) C.int {
		return C.dk_stats_prometheus(h, buf, capacity, need, msg)
	})
}

// PoolStatusJSON returns the pool as JSON, in the shape of LMCache's
// hotplug_status.
func (s *Store) PoolStatusJSON() (string, error) {
	return s.text("daxkv_pool_status_json", func(h *C.daxkv_store, buf *C.char, capacity C.size_t, need *C.size_t, msg **C.char) C.int {
		return C.dk_pool_status_json(h, buf, capacity, need, msg)
	})
}

// text calls a function of the (buf, cap, needed) kind until the text fits.
func (s *Store) text(op string, call func(*C.daxkv_store, *C.char, C.size_t, *C.size_t, **C.char) C.int) (string, error) {
	h, err := s.enter()
	if err != nil {
		return "", err
	}
	defer s.leave()
	return readText(op, func(buf *C.char, capacity C.size_t, need *C.size_t, msg **C.char) C.int {
		return call(h, buf, capacity, need, msg)
	})
}

// readText calls a function of the (buf, cap, needed) kind until the text
// fits: the text may grow between the size query and the copy.
func readText(op string, call func(*C.char, C.size_t, *C.size_t, **C.char) C.int) (string, error) {
	capacity := 4096
	for {
		buf := make([]byte, capacity)
		var need C.size_t
		var msg *C.char
		rc := call((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(capacity), &need, &msg)
		if rc == -C.ENOBUFS && int(need) > capacity {
			C.free(unsafe.Pointer(msg))
			capacity = int(need) // grew between calls: retry
			continue
		}
		if rc < 0 {
			return "", mkerr(rc, op, msg)
		}
		for i, b := range buf {
			if b == 0 {
				return string(buf[:i]), nil
			}
		}
		return string(buf), nil
	}
}

// CopyRange is one copy of MemcpyBatch: Len bytes from src[SrcOff:] to
// dst[DstOff:].
type CopyRange struct {
	DstOff, SrcOff, Len int
}

// MemcpyBatch copies ranges between two buffers on the library's copy
// workers (memmove semantics per range). Each range must lie inside its
// buffer. Go's rules for passing memory to C allow one buffer per
// argument, hence offsets rather than a list of slices.
func MemcpyBatch(dst, src []byte, ranges []CopyRange) error {
	n := len(ranges)
	if n == 0 {
		return nil
	}
	doff := make([]C.size_t, n)
	soff := make([]C.size_t, n)
	lens := make([]C.size_t, n)
	for i, r := range ranges {
		if r.DstOff < 0 || r.SrcOff < 0 || r.Len < 0 || r.DstOff > len(dst)-r.Len || r.SrcOff > len(src)-r.Len {
			return invalid("daxkv_memcpy_batch", fmt.Sprintf("range %d lies outside its buffer", i))
		}
		doff[i], soff[i], lens[i] = C.size_t(r.DstOff), C.size_t(r.SrcOff), C.size_t(r.Len)
	}
	if len(dst) == 0 || len(src) == 0 {
		return nil // every range is empty
	}
	var msg *C.char
	rc := C.dk_memcpy_batch((*C.char)(unsafe.Pointer(&dst[0])), (*C.char)(unsafe.Pointer(&src[0])), &doff[0], &soff[0], &lens[0], C.size_t(n), &msg)
	if rc < 0 {
		return mkerr(rc, "daxkv_memcpy_batch", msg)
	}
	return nil
}

// Lease is a read-only, zero-copy borrow of an entry's bytes. It keeps its
// store reachable, and the library keeps the bytes valid until Release,
// even after the store is closed.
type Lease struct {
	mu    sync.RWMutex
	l     *C.daxkv_lease
	store *Store // keeps the store (and its finalizer) from running first
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

// Len is the entry's size (0 after Release).
func (l *Lease) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.l == nil {
		return 0
	}
	return int(C.daxkv_lease_size(l.l))
}

// View calls fn with the bytes in place. The slice is valid only during
// fn and must not be written or retained.
func (l *Lease) View(fn func(data []byte) error) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.l == nil {
		return ErrReleased
	}
	n := int(C.daxkv_lease_size(l.l))
	var b []byte
	if n > 0 {
		b = unsafe.Slice((*byte)(C.daxkv_lease_data(l.l)), n)
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
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.l == nil {
		return nil, ErrReleased
	}
	var n C.size_t
	p := C.daxkv_lease_meta(l.l, &n)
	if p == nil || n == 0 {
		return []byte{}, nil
	}
	return C.GoBytes(p, C.int(n)), nil
}

// Release returns the lease. Idempotent; later View calls return ErrReleased.
func (l *Lease) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.l != nil {
		C.daxkv_lease_release(l.l)
		l.l = nil
		l.store = nil
		runtime.SetFinalizer(l, nil)
	}
}

// Reservation is a slot reserved for a key, filled in place and made
// visible by Commit. Not safe for concurrent use.
type Reservation struct {
	r     *C.daxkv_reservation
	store *Store
}

// Reserve reserves size bytes for key. ok is false (and r nil) if the key
// is already present or in flight.
func (s *Store) Reserve(key []byte, size int) (r *Reservation, ok bool, err error) {
	if size < 0 {
		return nil, false, invalid("daxkv_reserve", "negative size")
	}
	h, err := s.enter()
	if err != nil {
		return nil, false, err
	}
	defer s.leave()
	var p *C.daxkv_reservation
	var msg *C.char
	rc := C.dk_reserve(h, ptr(key), C.size_t(len(key)), C.size_t(size), &p, &msg)
	if rc < 0 {
		return nil, false, mkerr(rc, "daxkv_reserve", msg)
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
	if r.r == nil {
		return 0
	}
	return int(C.daxkv_reservation_size(r.r))
}

// Fill calls fn with the reserved bytes in place; the slice is valid only
// during fn.
func (r *Reservation) Fill(fn func(buf []byte) error) error {
	if r.r == nil {
		return ErrReleased
	}
	n := int(C.daxkv_reservation_size(r.r))
	var b []byte
	if n > 0 {
		b = unsafe.Slice((*byte)(C.daxkv_reservation_data(r.r)), n)
	}
	err := fn(b)
	runtime.KeepAlive(r)
	return err
}

// SetMeta attaches a metadata blob (copied) to be committed with the entry.
func (r *Reservation) SetMeta(meta []byte) error {
	if r.r == nil {
		return ErrReleased
	}
	var msg *C.char
	if rc := C.dk_set_meta(r.r, ptr(meta), C.size_t(len(meta)), &msg); rc < 0 {
		return mkerr(rc, "daxkv_reservation_set_meta", msg)
	}
	return nil
}

// Commit makes the entry visible. The reservation is finished even on
// error (ErrCanceled after a forced remove, ErrShutdown after shutdown).
func (r *Reservation) Commit() error {
	if r.r == nil {
		return ErrReleased
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

// Abort drops the reservation. Idempotent.
func (r *Reservation) Abort() {
	if r.r != nil {
		C.daxkv_abort(r.r)
		r.r, r.store = nil, nil
		runtime.SetFinalizer(r, nil)
	}
}
