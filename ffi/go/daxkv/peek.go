package daxkv

// A running store's statistics, read without opening the store: each open
// store publishes its counters and status every stats_interval
// milliseconds (configuration key, default 1000; "0" publishes nothing)
// into a page file in $DAXKV_STATS_DIR (default /dev/shm), found by the
// path of any of its devices. A monitor or exporter process can watch a
// store that serves in another process without disturbing it.
//
// Errors: ErrNotFound when no running store publishes for the path (none
// has it open, its stats_interval is 0, it died, or the path does not
// exist); ErrInvalid for an empty path or "mem:" (which no other process
// can name); otherwise codes that errors.Is matches with syscall.EACCES,
// syscall.EPROTO (a page of another format) or syscall.EAGAIN (the store
// was publishing throughout the attempts to read).

/*
#include "dk.h"

static int dk_stats_peek(const char *path, struct daxkv_stats *out, char **msg) {
	out->struct_size = sizeof *out;
	int rc = daxkv_stats_peek(path, out);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_status_peek(const char *path, char *buf, size_t cap, size_t *need, char **msg) {
	int rc = daxkv_status_peek(path, buf, cap, need);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_stats_prometheus_peek(const char *path, char *buf, size_t cap, size_t *need, char **msg) {
	int rc = daxkv_stats_prometheus_peek(path, buf, cap, need);
	*msg = dk_msg(rc);
	return rc;
}
*/
import "C"

import "unsafe"

// StatsPeek returns the statistics that the running store holding the
// device at path last published (at most its stats_interval old). Members
// a publisher of an older library did not have are zero.
func StatsPeek(path string) (Stats, error) {
	if hasNUL(path) {
		return Stats{}, invalid("daxkv_stats_peek", "path contains a NUL byte")
	}
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	var c C.struct_daxkv_stats
	var msg *C.char
	if rc := C.dk_stats_peek(p, &c, &msg); rc < 0 {
		return Stats{}, mkerr(rc, "daxkv_stats_peek", msg)
	}
	return statsFrom(&c), nil
}

// StatusPeek returns that store's status JSON (as Store.StatusJSON) with a
// "publisher" object: pid, store_id (the uuid of its first device's arena,
// also the store label of its Prometheus samples) and published_unix_ns.
func StatusPeek(path string) (string, error) {
	return peekText("daxkv_status_peek", path, func(p, buf *C.char, capacity C.size_t, need *C.size_t, msg **C.char) C.int {
		return C.dk_status_peek(p, buf, capacity, need, msg)
	})
}

// StatsPrometheusPeek returns that store's statistics in the Prometheus
// text exposition format (as Store.StatsPrometheus), every sample labelled
// with the store's id: what an exporter serves for a store running in
// another process.
func StatsPrometheusPeek(path string) (string, error) {
	return peekText("daxkv_stats_prometheus_peek", path, func(p, buf *C.char, capacity C.size_t, need *C.size_t, msg **C.char) C.int {
		return C.dk_stats_prometheus_peek(p, buf, capacity, need, msg)
	})
}

func peekText(op, path string, call func(p, buf *C.char, capacity C.size_t, need *C.size_t, msg **C.char) C.int) (string, error) {
	if hasNUL(path) {
		return "", invalid(op, "path contains a NUL byte")
	}
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	return readText(op, func(buf *C.char, capacity C.size_t, need *C.size_t, msg **C.char) C.int {
		return call(p, buf, capacity, need, msg)
	})
}
