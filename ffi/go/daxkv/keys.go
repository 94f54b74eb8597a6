package daxkv

// Where entries live: the committed keys (a cursor), the slots of leases
// and reservations, and how each device's arena is laid out. For callers
// that copy into or out of the arena by offset, and for restarted servers
// that must learn what the store recovered.

/*
#include "dk.h"

static int dk_cursor_open(daxkv_store *s, const char *dev, daxkv_cursor **out, char **msg) {
	int rc = daxkv_cursor_open(s, dev, out);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_cursor_next(daxkv_cursor *c, daxkv_key_info *out, char **msg) {
	out->struct_size = sizeof *out;
	int rc = daxkv_cursor_next(c, out);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_lease_slot(const daxkv_lease *l, daxkv_slot_info *out, char **msg) {
	out->struct_size = sizeof *out;
	int rc = daxkv_lease_slot(l, out);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_reservation_slot(const daxkv_reservation *r, daxkv_slot_info *out, char **msg) {
	out->struct_size = sizeof *out;
	int rc = daxkv_reservation_slot(r, out);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_device_describe(daxkv_store *s, const char *path, daxkv_device_layout *out, char **msg) {
	out->struct_size = sizeof *out;
	int rc = daxkv_device_describe(s, path, out);
	*msg = dk_msg(rc);
	return rc;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// KeyInfo is one committed entry, as a KeyCursor reports it. Key and Meta
// are copies owned by Go.
type KeyInfo struct {
	Key      []byte
	Meta     []byte // the metadata stored with the entry (empty when none)
	ValueLen uint64
	DeviceID uint32 // "device_id" of the pool status and of DeviceLayout
	Slot     uint64 // the entry's slot on its device
	Seq      uint64 // commit sequence: a larger one is a newer commit
	Pins     uint32
	Leases   uint32
}

// KeyCursor walks the committed keys of a store (see Store.Keys). It is
// safe for concurrent use, though each entry goes to one caller of Next.
//
// The walk runs beside puts, gets and removals: a key that stays committed
// for the whole walk is reported exactly once; one added or removed during
// the walk may or may not be. The cursor keeps the store's memory alive by
// itself, so it stays safe to use after the store is closed (Next then
// returns ErrShutdown). Close it when done; it also closes itself at the
// end of the walk or after an error.
type KeyCursor struct {
	mu    sync.Mutex
	c     *C.daxkv_cursor
	store *Store // keeps the store (and its finalizer) from running first while the walk goes on
}

// cstr converts a path or name for C, refusing NUL bytes (C would see a
// shorter string than the caller passed).
func cstr(op, what, s string) (*C.char, error) {
	if hasNUL(s) {
		return nil, invalid(op, what+" contains a NUL byte")
	}
	return C.CString(s), nil
}

// Keys starts a walk over the committed keys of every device (device "")
// or of the pool's device at device, the path as it was configured or
// added. An unknown device is ErrNotFound.
func (s *Store) Keys(device string) (*KeyCursor, error) {
	var dev *C.char
	if device != "" {
		var err error
		if dev, err = cstr("daxkv_cursor_open", "device path", device); err != nil {
			return nil, err
		}
		defer C.free(unsafe.Pointer(dev))
	}
	h, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer s.leave()
	var c *C.daxkv_cursor
	var msg *C.char
	if rc := C.dk_cursor_open(h, dev, &c, &msg); rc < 0 {
		return nil, mkerr(rc, "daxkv_cursor_open", msg)
	}
	kc := &KeyCursor{c: c, store: s}
	// A safety net only: cursors should be closed (or walked to the end).
	runtime.SetFinalizer(kc, (*KeyCursor).Close)
	return kc, nil
}

// Next returns the next entry; ok is false at the end of the walk and
// after an error. Once it returned !ok or an error, it keeps returning
// !ok with a nil error.
func (kc *KeyCursor) Next() (info KeyInfo, ok bool, err error) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if kc.c == nil {
		return KeyInfo{}, false, nil
	}
	var k C.daxkv_key_info
	var msg *C.char
	rc := C.dk_cursor_next(kc.c, &k, &msg)
	switch {
	case rc == 1:
		// The key and metadata pointers only last until the next call on
		// the cursor: copy them now, under the lock.
		return KeyInfo{
			Key:      goBytes(k.key, k.key_len),
			Meta:     goBytes(k.meta, k.meta_len),
			ValueLen: uint64(k.value_len),
			DeviceID: uint32(k.device_id),
			Slot:     uint64(k.slot),
			Seq:      uint64(k.seq),
			Pins:     uint32(k.pins),
			Leases:   uint32(k.leases),
		}, true, nil
	case rc == 0:
		kc.closeLocked()
		return KeyInfo{}, false, nil
	default:
		if rc > 0 {
			err = invalid("daxkv_cursor_next", fmt.Sprintf("unexpected result %d", int(rc)))
		} else {
			err = mkerr(rc, "daxkv_cursor_next", msg)
		}
		kc.closeLocked()
		return KeyInfo{}, false, err
	}
}

func (kc *KeyCursor) closeLocked() {
	if kc.c != nil {
		// Closing at the end, not only on Close, lets go of the store's
		// memory as soon as the walk is over.
		C.daxkv_cursor_close(kc.c)
		kc.c = nil
		kc.store = nil
		runtime.SetFinalizer(kc, nil)
	}
}

// Close ends the walk. Idempotent.
func (kc *KeyCursor) Close() {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	kc.closeLocked()
}

// AllKeys walks the committed keys of every device (device "") or of one
// device to the end and returns them.
func (s *Store) AllKeys(device string) ([]KeyInfo, error) {
	kc, err := s.Keys(device)
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	var out []KeyInfo
	for {
		k, ok, err := kc.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out = append(out, k)
	}
}

// SlotInfo says where one entry's bytes are: PayloadBase + Offset is its
// first byte. The address is only meaningful while the lease or
// reservation it came from is held.
type SlotInfo struct {
	DeviceID    uint32
	Slot        uint64 // the slot's index on its device
	Generation  uint64 // changes each time the slot is handed out again
	Offset      uint64 // Slot * slot_bytes
	PayloadBase uintptr
}

// Addr is PayloadBase + Offset: the entry's first byte.
func (i SlotInfo) Addr() uintptr { return i.PayloadBase + uintptr(i.Offset) }

func slotInfo(c *C.daxkv_slot_info) SlotInfo {
	return SlotInfo{
		DeviceID:    uint32(c.device_id),
		Slot:        uint64(c.slot),
		Generation:  uint64(c.generation),
		Offset:      uint64(c.offset),
		PayloadBase: uintptr(c.payload_base),
	}
}

// Slot says which slot holds the leased entry.
func (l *Lease) Slot() (SlotInfo, error) {
	p := l.use()
	if p == nil {
		return SlotInfo{}, ErrReleased
	}
	defer l.done()
	var c C.daxkv_slot_info
	var msg *C.char
	if rc := C.dk_lease_slot(p, &c, &msg); rc < 0 {
		return SlotInfo{}, mkerr(rc, "daxkv_lease_slot", msg)
	}
	return slotInfo(&c), nil
}

// Slot says which slot the reservation fills.
func (r *Reservation) Slot() (SlotInfo, error) {
	p := r.live()
	if p == nil {
		return SlotInfo{}, ErrReleased
	}
	var c C.daxkv_slot_info
	var msg *C.char
	rc := C.dk_reservation_slot(p, &c, &msg)
	runtime.KeepAlive(r)
	if rc < 0 {
		return SlotInfo{}, mkerr(rc, "daxkv_reservation_slot", msg)
	}
	return slotInfo(&c), nil
}

// DeviceState is a device's state in the pool (DAXKV_DEV_*).
type DeviceState uint32

// Device states.
const (
	DeviceActive    DeviceState = C.DAXKV_DEV_ACTIVE    // readable, writable
	DeviceDraining  DeviceState = C.DAXKV_DEV_DRAINING  // readable; no new entries; empties as entries go
	DeviceMigrating DeviceState = C.DAXKV_DEV_MIGRATING // readable; its entries are being moved away
	DeviceResizing  DeviceState = C.DAXKV_DEV_RESIZING  // readable; a resize is under way
	DeviceRemoving  DeviceState = C.DAXKV_DEV_REMOVING  // readable; waiting for leases before unmapping
	DeviceRemoved   DeviceState = C.DAXKV_DEV_REMOVED   // gone (a tombstone in the pool status)
	DeviceMissing   DeviceState = C.DAXKV_DEV_MISSING   // configured but not found at open
)

func (st DeviceState) String() string {
	switch st {
	case DeviceActive:
		return "active"
	case DeviceDraining:
		return "draining"
	case DeviceMigrating:
		return "migrating"
	case DeviceResizing:
		return "resizing"
	case DeviceRemoving:
		return "removing"
	case DeviceRemoved:
		return "removed"
	case DeviceMissing:
		return "missing"
	}
	return fmt.Sprintf("DeviceState(%d)", uint32(st))
}

// DeviceLayout is a device of the pool as its arena is laid out: slot n
// starts at PayloadBase + n*SlotBytes.
type DeviceLayout struct {
	DeviceID    uint32
	State       DeviceState
	DeviceIndex int32 // row in the pool status's "devices"
	SlotBytes   uint64
	LayoutSlots uint64 // slots the arena is laid out for (room to grow included)
	UsableSlots uint64 // slots in use now
	UsedEnd     uint64 // one past the highest slot holding or awaiting an entry (0: none)
	ArenaBytes  uint64 // bytes of the device the layout covers
	DataOffset  uint64 // where the first payload starts in the device
	// PayloadBase is the first payload's address in this process; 0 for a
	// missing device. Valid until the device is removed or the store closed.
	PayloadBase uintptr
}

// DescribeDevice says how the pool's device at path is laid out and used.
// ErrNotFound for a path that is not (or no longer) in the pool.
func (s *Store) DescribeDevice(path string) (DeviceLayout, error) {
	p, err := cstr("daxkv_device_describe", "device path", path)
	if err != nil {
		return DeviceLayout{}, err
	}
	defer C.free(unsafe.Pointer(p))
	h, err := s.enter()
	if err != nil {
		return DeviceLayout{}, err
	}
	defer s.leave()
	var d C.daxkv_device_layout
	var msg *C.char
	if rc := C.dk_device_describe(h, p, &d, &msg); rc < 0 {
		return DeviceLayout{}, mkerr(rc, "daxkv_device_describe", msg)
	}
	return DeviceLayout{
		DeviceID:    uint32(d.device_id),
		State:       DeviceState(d.state),
		DeviceIndex: int32(d.device_index),
		SlotBytes:   uint64(d.slot_bytes),
		LayoutSlots: uint64(d.layout_slots),
		UsableSlots: uint64(d.usable_slots),
		UsedEnd:     uint64(d.used_end),
		ArenaBytes:  uint64(d.arena_bytes),
		DataOffset:  uint64(d.data_offset),
		PayloadBase: uintptr(d.payload_base),
	}, nil
}
