package daxkv

// Statistics: the Stats snapshot with its histograms, the status JSON and
// the Prometheus text; and readText, the loop around every call of the
// (buf, cap, needed) kind, which pool.go and peek.go use as well.

/*
#include "dk.h"

// Each helper returns the code and, on failure, the message (see dk.h).
static int dk_stats(daxkv_store *s, struct daxkv_stats *out, char **msg) { out->struct_size = sizeof *out; int rc = daxkv_stats(s, out); *msg = dk_msg(rc); return rc; }
static int dk_status_json(daxkv_store *s, char *buf, size_t cap, size_t *need, char **msg) { int rc = daxkv_status_json(s, buf, cap, need); *msg = dk_msg(rc); return rc; }
static int dk_stats_prometheus(daxkv_store *s, char *buf, size_t cap, size_t *need, char **msg) { int rc = daxkv_stats_prometheus(s, buf, cap, need); *msg = dk_msg(rc); return rc; }
*/
import "C"

import "unsafe"

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
	CopyFaults             uint64    // copies that faulted (sigbus=handle)
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
