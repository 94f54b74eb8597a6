package daxkv

// Errors: the Error type of every failed call, the sentinel errors that
// errors.Is matches it with, and the constructors the other files use.

/*
#include "dk.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"syscall"
	"unsafe"
)

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
	// Needed is, for ErrBufferTooSmall from a get, the length of the value:
	// the capacity that would have held it (0 for every other error).
	Needed int
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
	// ErrDeadlock: the call would wait for a lease the calling OS thread
	// acquired (a forced device removal or shrink waits for it). Goroutines
	// move between threads: one that holds leases across a pool call runs
	// it on the thread that acquired them with runtime.LockOSThread.
	ErrDeadlock = sentinel(syscall.EDEADLK)
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
	if !fitsCInt(int64(code)) {
		// Past a C int it was cut to one (-4294967318 read as -22).
		code = int(C.DAXKV_E_BASE) // a code with no description: "unknown error"
	}
	return C.GoString(C.daxkv_strerror(C.int(code)))
}

// fitsCInt says whether v survives its conversion to a C int: a mode, a
// code or a level past one was cut to another value (a remove mode of
// 1<<32|2 ran as an eviction).
func fitsCInt(v int64) bool {
	return v == int64(C.int(v))
}

// ItemError is one item's failure in a batch (nil when the item succeeded).
func itemErr(op string, st C.int) error {
	if st >= 0 {
		return nil
	}
	return &Error{Code: int(st), Op: op, Message: Strerror(int(st))}
}

// withNeeded gives a get's ErrBufferTooSmall the value's length.
func withNeeded(err error, length C.size_t) error {
	if e, ok := err.(*Error); ok && e.Code == -int(syscall.ENOBUFS) {
		e.Needed = int(length)
	}
	return err
}

// itemDetail is the library's message after a batch whose items failed
// (dk_batch_msg), with the item it belongs to: the one it names ("item N:
// ", stripped), else the failed item when no other item's status is
// negative (a miss and a busy key leave a message too). owner is -1 when
// it cannot be told whose it is.
type itemDetail struct {
	owner int
	text  string
}

var itemPrefix = regexp.MustCompile(`^item ([0-9]+): `)

func batchDetail(st []C.int, msg *C.char) itemDetail {
	d := itemDetail{owner: -1}
	if msg == nil {
		return d
	}
	text := C.GoString(msg)
	C.free(unsafe.Pointer(msg))
	if m := itemPrefix.FindStringSubmatch(text); m != nil {
		if i, err := strconv.Atoi(m[1]); err == nil && i < len(st) {
			d.owner, d.text = i, text[len(m[0]):]
		}
		return d
	}
	// dk_batch_msg kept a message only for a batch with a failed item:
	// the only negative status is that item's.
	for i, v := range st {
		if v < 0 {
			if d.owner >= 0 {
				return itemDetail{owner: -1} // several: whose is unknown
			}
			d.owner, d.text = i, text
		}
	}
	return d
}

// err is item i's error (status v), with the library's message if it is
// the item's.
func (d itemDetail) err(op string, i int, v C.int) error {
	if v >= 0 {
		return nil
	}
	if i == d.owner && d.text != "" {
		return &Error{Code: int(v), Op: op, Message: d.text}
	}
	return itemErr(op, v)
}
