package daxkv

// Batches: many keys in one library call, each item with its own status;
// and MemcpyBatch, the library's batched copy between two buffers.

/*
#include "dk.h"

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
	for (size_t i = 0; i < n; i++) {
		status[i] = it[i].status;
		if (data && op == DK_GET)
			lens[i] = it[i].len;
	}
	*msg = dk_batch_msg(rc, status, n);
	free(it);
	return rc;
}
*/
import "C"

import (
	"fmt"
	"sort"
	"unsafe"
)

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

// addLen adds a caller's length to a running total. ok is false when the
// total would pass the largest int: a wrapped sum could pass the check
// against the buffer while the regions it adds up lie far outside it.
func addLen(total, l int) (int, bool) {
	if l > int(^uint(0)>>1)-total {
		return total, false
	}
	return total + l, true
}

func (s *Store) batch(op C.int, name string, keys [][]byte, data []byte, lens []C.size_t, flags C.unsigned) ([]C.int, int, itemDetail, error) {
	none := itemDetail{owner: -1}
	if len(keys) == 0 {
		if _, err := s.enter(); err != nil {
			return nil, 0, none, err
		}
		s.leave()
		return nil, 0, none, nil
	}
	p := packKeys(keys)
	status := make([]C.int, len(keys))
	h, err := s.enter()
	if err != nil {
		return nil, 0, none, err
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
		return nil, 0, none, mkerr(rc, name, msg)
	}
	return status, int(rc), batchDetail(status, msg), nil
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
		var ok bool
		if total, ok = addLen(total, l); !ok {
			return nil, nil, invalid("daxkv_put_batch", "lens exceed the buffer")
		}
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
	st, _, detail, err := s.batch(C.DK_PUT, "daxkv_put_batch", keys, buf, cl, f)
	if err != nil {
		return nil, nil, err
	}
	stored := make([]bool, len(keys))
	errs := make([]error, len(keys))
	for i, v := range st {
		stored[i] = v == 0
		errs[i] = detail.err("daxkv_put_batch", i, v)
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
// holds other per-item failures, with -1 as the length, except
// ErrBufferTooSmall, whose length (and Needed) is the value's. With prefix the
// copy stops at the first miss and n is the prefix length (the keys past
// the one it stopped at were not looked at: their -1 is not a miss);
// otherwise n is the number of hits.
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
		var ok bool
		if total, ok = addLen(total, c); !ok {
			return nil, nil, 0, invalid("daxkv_get_batch", "caps exceed the buffer")
		}
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
	st, n, detail, err := s.batch(C.DK_GET, "daxkv_get_batch", keys, buf, cl, f)
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
		case v == -C.ENOBUFS:
			lens[i] = int(cl[i])
			errs[i] = withNeeded(detail.err("daxkv_get_batch", i, v), cl[i])
		default:
			lens[i] = -1
			errs[i] = detail.err("daxkv_get_batch", i, v)
		}
	}
	return lens, errs, n, nil
}

// ContainsMany reports per key whether it is committed; pin pins every hit.
// When an item fails (a bad key), only its error is returned, and the call
// leaves no key pinned.
func (s *Store) ContainsMany(keys [][]byte, pin bool) ([]bool, error) {
	var f C.unsigned
	if pin {
		f = C.DAXKV_PIN
	}
	st, _, detail, err := s.batch(C.DK_CONTAINS, "daxkv_contains_batch", keys, nil, nil, f)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(keys))
	var failed C.int
	at := 0
	for i, v := range st {
		if v < 0 && failed == 0 {
			failed, at = v, i
		}
		out[i] = v == 1
	}
	if failed != 0 {
		if pin {
			// Only the error is returned, so the caller cannot tell which
			// keys the call pinned: drop those pins again rather than
			// leave entries that can be neither evicted nor removed.
			var hit [][]byte
			for i, ok := range out {
				if ok {
					hit = append(hit, keys[i])
				}
			}
			if len(hit) > 0 {
				s.batch(C.DK_UNPIN, "daxkv_unpin_batch", hit, nil, nil, 0)
			}
		}
		return nil, detail.err("daxkv_contains_batch", at, failed)
	}
	return out, nil
}

// PrefixLen counts consecutive committed keys from the start (pinning them
// if pin). A key that fails rather than misses (a bad key) is returned as
// the error, not taken for the end of the prefix; the keys pinned are
// unpinned again.
func (s *Store) PrefixLen(keys [][]byte, pin bool) (int, error) {
	f := C.unsigned(C.DAXKV_PREFIX)
	if pin {
		f |= C.DAXKV_PIN
	}
	st, n, detail, err := s.batch(C.DK_CONTAINS, "daxkv_contains_batch", keys, nil, nil, f)
	if err != nil {
		return 0, err
	}
	if n < len(st) && st[n] < 0 {
		if pin && n > 0 {
			s.batch(C.DK_UNPIN, "daxkv_unpin_batch", keys[:n], nil, nil, 0)
		}
		return 0, detail.err("daxkv_contains_batch", n, st[n])
	}
	return n, nil
}

// RemoveMany removes keys; per item the error (ErrNotFound, ErrBusy, ...) or nil.
func (s *Store) RemoveMany(keys [][]byte, force bool) ([]error, int, error) {
	var f C.unsigned
	if force {
		f = C.DAXKV_FORCE
	}
	st, n, detail, err := s.batch(C.DK_REMOVE, "daxkv_remove_batch", keys, nil, nil, f)
	if err != nil {
		return nil, 0, err
	}
	errs := make([]error, len(keys))
	for i, v := range st {
		errs[i] = detail.err("daxkv_remove_batch", i, v)
	}
	return errs, n, nil
}

// UnpinMany drops one pin per key; per item the error or nil.
func (s *Store) UnpinMany(keys [][]byte) ([]error, int, error) {
	st, n, detail, err := s.batch(C.DK_UNPIN, "daxkv_unpin_batch", keys, nil, nil, 0)
	if err != nil {
		return nil, 0, err
	}
	errs := make([]error, len(keys))
	for i, v := range st {
		errs[i] = detail.err("daxkv_unpin_batch", i, v)
	}
	return errs, n, nil
}

// CopyRange is one copy of MemcpyBatch: Len bytes from src[SrcOff:] to
// dst[DstOff:].
type CopyRange struct {
	DstOff, SrcOff, Len int
}

// MemcpyBatch copies ranges between two buffers on the library's copy
// workers (memmove semantics per range). Each range must lie inside its
// buffer. Go's rules for passing memory to C allow one buffer per
// argument, hence offsets rather than a list of slices. The library copies
// distinct ranges at the same time, so a range may not write bytes that
// another range writes or reads (dst and src may be the same buffer, or
// slices of one array): ErrInvalid, and nothing is copied.
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
	if i, j, ok := rangesOverlap(dst, src, ranges); ok {
		return invalid("daxkv_memcpy_batch", fmt.Sprintf("ranges %d and %d overlap: one writes bytes the other writes or reads", i, j))
	}
	var msg *C.char
	rc := C.dk_memcpy_batch((*C.char)(unsafe.Pointer(&dst[0])), (*C.char)(unsafe.Pointer(&src[0])), &doff[0], &soff[0], &lens[0], C.size_t(n), &msg)
	if rc < 0 {
		return mkerr(rc, "daxkv_memcpy_batch", msg)
	}
	return nil
}

// rangesOverlap finds two distinct ranges of a MemcpyBatch where one writes
// bytes the other writes or reads, by address (the buffers may share
// memory). Ranges are within their buffers and neither buffer is empty.
func rangesOverlap(dst, src []byte, ranges []CopyRange) (int, int, bool) {
	type span struct {
		lo, hi uintptr
		i      int
	}
	db, sb := uintptr(unsafe.Pointer(&dst[0])), uintptr(unsafe.Pointer(&src[0]))
	var w []span
	for i, r := range ranges {
		if r.Len > 0 {
			lo := db + uintptr(r.DstOff)
			w = append(w, span{lo, lo + uintptr(r.Len), i})
		}
	}
	sort.Slice(w, func(a, b int) bool { return w[a].lo < w[b].lo })
	for k := 1; k < len(w); k++ {
		if w[k].lo < w[k-1].hi {
			return w[k-1].i, w[k].i, true
		}
	}
	// The writes are disjoint and sorted: those a read overlaps are one run.
	for j, r := range ranges {
		if r.Len == 0 {
			continue
		}
		lo := sb + uintptr(r.SrcOff)
		hi := lo + uintptr(r.Len)
		for k := sort.Search(len(w), func(k int) bool { return w[k].hi > lo }); k < len(w) && w[k].lo < hi; k++ {
			if w[k].i != j {
				return w[k].i, j, true
			}
		}
	}
	return 0, 0, false
}
