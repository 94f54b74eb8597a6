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

// This file holds what the whole package shares: the cgo flags (a #cgo
// directive applies to every file of the package, so they are given here
// only), the check of the library's version, and small helpers. The other
// files hold one object each (store.go, config.go, batch.go, lease.go,
// stats.go, errors.go, ...); each one's preamble includes dk.h and defines
// the C helpers that file calls, since cgo compiles every preamble apart.

/*
#cgo pkg-config: libdaxkv
#include "dk.h"

#if DAXKV_VERSION_MAJOR != 0 || DAXKV_VERSION_MINOR < 1
#error "this binding is written for libdaxkv 0.x (x >= 1)"
#endif
*/
import "C"

import "unsafe"

// KeyMax is the largest key in bytes.
const KeyMax = C.DAXKV_KEY_MAX

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

// goBytes copies n bytes of C memory into a new slice. C.GoBytes takes a
// C int: a value of 2 GiB or more (slot_bytes has no such limit) turned
// negative there, and the goroutine delivering it panicked.
func goBytes(p unsafe.Pointer, n C.size_t) []byte {
	out := make([]byte, int(n))
	if n > 0 {
		copy(out, unsafe.Slice((*byte)(p), int(n)))
	}
	return out
}

func hasNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}
