package daxkv

// The device pool: runtime add, remove, resize and drain (hotplug=1).

/*
#include "dk.h"

static int dk_device_add(daxkv_store *s, const char *p, uint64_t n, char **msg) {
	int rc = daxkv_device_add(s, p, n);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_device_remove(daxkv_store *s, const char *p, int mode, unsigned f, daxkv_hotplug_result *out, char **msg) {
	out->struct_size = sizeof *out;
	int rc = daxkv_device_remove(s, p, mode, f, out);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_device_resize(daxkv_store *s, const char *p, uint64_t n, int mode, unsigned f, daxkv_hotplug_result *out, char **msg) {
	out->struct_size = sizeof *out;
	int rc = daxkv_device_resize(s, p, n, mode, f, out);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_wait_drained(daxkv_store *s, const char *p, int ms, char **msg) {
	int rc = daxkv_device_wait_drained(s, p, ms);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_pool_status_json(daxkv_store *s, char *buf, size_t cap, size_t *need, char **msg) {
	int rc = daxkv_pool_status_json(s, buf, cap, need);
	*msg = dk_msg(rc);
	return rc;
}
*/
import "C"

import (
	"fmt"
	"math"
	"time"
	"unsafe"
)

// RemoveMode is how Store.RemoveDevice empties a device.
type RemoveMode int

// Modes of Store.RemoveDevice.
const (
	// RemoveMigrate moves every entry to the other writable devices, all
	// or nothing (ErrNoSpace when they run out of room; the device is then
	// left as it was).
	RemoveMigrate RemoveMode = C.DAXKV_MIGRATE
	// RemoveEvict deletes the entries.
	RemoveEvict RemoveMode = C.DAXKV_EVICT
	// RemoveDrain only stops new entries and returns at once; the device
	// drains as its entries go (see Store.WaitDrained).
	RemoveDrain RemoveMode = C.DAXKV_DRAIN
)

// ResizeMode is what Store.ResizeDevice does with the entries above a new,
// smaller end.
type ResizeMode int

// Modes of Store.ResizeDevice.
const (
	ResizeMigrate ResizeMode = C.DAXKV_MIGRATE // move them, all or nothing
	ResizeEvict   ResizeMode = C.DAXKV_EVICT   // delete them (only with force)
)

// HotplugResult is what a device change did.
type HotplugResult struct {
	State            DeviceState // the device's state after the call
	DeviceIndex      int32       // row in the pool status's "devices"
	MovedKeys        uint64      // entries copied to other devices (or lower slots)
	MovedBytes       uint64      // their value bytes
	DeletedKeys      uint64      // entries deleted (evict)
	SourceSlotsFreed uint64      // slots of the device given back
	OldSizeBytes     uint64      // usable bytes before the call
	NewSizeBytes     uint64      // usable bytes after the call
	EvictedKeys      uint64      // cold entries of the destinations evicted to make room
}

func hotplugResult(r *C.daxkv_hotplug_result) HotplugResult {
	return HotplugResult{
		State:            DeviceState(r.state),
		DeviceIndex:      int32(r.device_index),
		MovedKeys:        uint64(r.moved_keys),
		MovedBytes:       uint64(r.moved_bytes),
		DeletedKeys:      uint64(r.deleted_keys),
		SourceSlotsFreed: uint64(r.source_slots_freed),
		OldSizeBytes:     uint64(r.old_size_bytes),
		NewSizeBytes:     uint64(r.new_size_bytes),
		EvictedKeys:      uint64(r.evicted_keys),
	}
}

// withPath runs a pool call on the store with path converted for C.
func (s *Store) withPath(op, path string, call func(h *C.daxkv_store, p *C.char, msg **C.char) C.int) error {
	p, err := cstr(op, "device path", path)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(p))
	h, err := s.enter()
	if err != nil {
		return err
	}
	defer s.leave()
	var msg *C.char
	if rc := call(h, p, &msg); rc < 0 {
		return mkerr(rc, op, msg)
	}
	return nil
}

// AddDevice maps and adds a device to the pool (bytes 0: the whole device
// or existing file); an arena already on it is recovered. Adding a path
// already active with the same size does nothing. Needs hotplug=1 (else
// ErrPermission). A failed add leaves nothing behind (the library removes a
// file it created).
func (s *Store) AddDevice(path string, bytes uint64) error {
	return s.withPath("daxkv_device_add", path, func(h *C.daxkv_store, p *C.char, msg **C.char) C.int {
		return C.dk_device_add(h, p, C.uint64_t(bytes), msg)
	})
}

// RemoveDevice takes a device out of the pool. Entries pinned or leased
// make RemoveMigrate and RemoveEvict fail with ErrBusy before anything
// changes, unless force (pins move with migrated entries; the call then
// waits for leases before unmapping).
func (s *Store) RemoveDevice(path string, mode RemoveMode, force bool) (HotplugResult, error) {
	if !fitsCInt(int64(mode)) {
		return HotplugResult{}, invalid("daxkv_device_remove", fmt.Sprintf("unknown mode %d", int64(mode)))
	}
	var out C.daxkv_hotplug_result
	f := C.unsigned(0)
	if force {
		f = C.DAXKV_FORCE
	}
	err := s.withPath("daxkv_device_remove", path, func(h *C.daxkv_store, p *C.char, msg **C.char) C.int {
		return C.dk_device_remove(h, p, C.int(mode), f, &out, msg)
	})
	if err != nil {
		return HotplugResult{}, err
	}
	return hotplugResult(&out), nil
}

// ResizeDevice changes the usable size of a device. Growing keeps every
// entry in place, up to the size the arena was laid out for (see the
// grow_limit key); shrinking moves or deletes the entries above the new
// end as mode says (evicting needs force: a shrink never drops keys
// silently).
func (s *Store) ResizeDevice(path string, bytes uint64, mode ResizeMode, force bool) (HotplugResult, error) {
	if !fitsCInt(int64(mode)) {
		return HotplugResult{}, invalid("daxkv_device_resize", fmt.Sprintf("unknown mode %d", int64(mode)))
	}
	var out C.daxkv_hotplug_result
	f := C.unsigned(0)
	if force {
		f = C.DAXKV_FORCE
	}
	err := s.withPath("daxkv_device_resize", path, func(h *C.daxkv_store, p *C.char, msg **C.char) C.int {
		return C.dk_device_resize(h, p, C.uint64_t(bytes), C.int(mode), f, &out, msg)
	})
	if err != nil {
		return HotplugResult{}, err
	}
	return hotplugResult(&out), nil
}

// WaitDrained waits until a draining device holds no entries; a negative
// timeout waits without a limit. ErrTimedOut when the time is up, ErrInvalid
// when the device is not draining. Close waits for it to return, which it
// does within a few milliseconds of a shutdown.
func (s *Store) WaitDrained(path string, timeout time.Duration) error {
	ms := waitMillis(timeout)
	return s.withPath("daxkv_device_wait_drained", path, func(h *C.daxkv_store, p *C.char, msg **C.char) C.int {
		return C.dk_wait_drained(h, p, C.int(ms), msg)
	})
}

// waitMillis is a WaitDrained timeout in whole milliseconds for C: -1 for a
// negative one (no limit), else rounded up so that a short timeout still
// waits, at most the largest C int. Rounding up by adding first wrapped a
// timeout within a millisecond of the largest Duration to a negative
// count, which waited without a limit.
func waitMillis(timeout time.Duration) int {
	if timeout < 0 {
		return -1
	}
	m := timeout / time.Millisecond
	if timeout%time.Millisecond != 0 {
		m++
	}
	if m > math.MaxInt32 {
		m = math.MaxInt32
	}
	return int(m)
}

// PoolStatusJSON returns the pool as JSON, in the shape of LMCache's
// hotplug_status.
func (s *Store) PoolStatusJSON() (string, error) {
	return s.text("daxkv_pool_status_json", func(h *C.daxkv_store, buf *C.char, capacity C.size_t, need *C.size_t, msg **C.char) C.int {
		return C.dk_pool_status_json(h, buf, capacity, need, msg)
	})
}
