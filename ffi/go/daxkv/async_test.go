package daxkv

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

func recv(t *testing.T, ch <-chan Completion) Completion {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("channel closed without a completion")
		}
		if _, again := <-ch; again {
			t.Fatal("a second completion on one channel")
		}
		return c
	case <-time.After(30 * time.Second):
		t.Fatal("no completion within 30 s")
	}
	return Completion{}
}

// bigValues: n values of size bytes (above the inline limit when large, so
// that the batch runs on the library's dispatcher thread).
func bigValues(base, n, size int) ([][]byte, [][]byte) {
	ks := make([][]byte, n)
	vs := make([][]byte, n)
	for i := range ks {
		ks[i] = []byte(fmt.Sprintf("k%d", base+i))
		vs[i] = bytes.Repeat([]byte{byte(base + i)}, size)
	}
	return ks, vs
}

func TestSubmitEveryOp(t *testing.T) {
	s := open(t, nil)
	ks, vs := bigValues(0, 3, 10)
	ch, err := s.SubmitPut(ks, vs, false, 7)
	if err != nil {
		t.Fatal(err)
	}
	c := recv(t, ch)
	if c.Op != OpPut || c.Tag != 7 || c.Result != 3 || c.Err != nil || fmt.Sprint(c.OK) != "[true true true]" {
		t.Fatalf("put: %+v", c)
	}
	if c := recv(t, must(s.SubmitPut(ks[:1], vs[:1], false, 0))); c.OK[0] || c.Errs[0] != nil {
		t.Fatalf("put of a present key: %+v", c)
	}
	c = recv(t, must(s.SubmitGet([][]byte{ks[1], []byte("absent"), ks[2]}, []int{64, 64, 4}, false, 8)))
	if c.Op != OpGet || c.Result != 1 || !bytes.Equal(c.Values[0], vs[1]) || c.Values[1] != nil || c.Errs[1] != nil {
		t.Fatalf("get: %+v", c)
	}
	if !errors.Is(c.Errs[2], ErrBufferTooSmall) || c.Values[2] != nil || c.Errs[2].(*Error).Needed != len(vs[2]) {
		t.Fatalf("get into a small buffer: %+v", c)
	}
	c = recv(t, must(s.SubmitContains([][]byte{ks[0], []byte("absent"), ks[2]}, true, false, 0)))
	if c.Result != 2 || fmt.Sprint(c.OK) != "[true false true]" {
		t.Fatalf("contains: %+v", c)
	}
	if _, err := s.Remove(ks[0], false); !errors.Is(err, ErrBusy) {
		t.Fatalf("contains did not pin: %v", err)
	}
	c = recv(t, must(s.SubmitRemove([][]byte{ks[0], []byte("absent")}, true, 0)))
	if c.Result != 1 || fmt.Sprint(c.OK) != "[true false]" || c.Errs[1] != nil {
		t.Fatalf("remove: %+v", c)
	}
	// The key past the miss was not looked at: no item of its own (it was
	// reported as a miss, though stored).
	c = recv(t, must(s.SubmitGet([][]byte{ks[1], []byte("absent"), ks[2]}, []int{64, 64, 64}, true, 0)))
	if c.Result != 1 || len(c.Values) != 1 || len(c.Errs) != 1 || !bytes.Equal(c.Values[0], vs[1]) {
		t.Fatalf("prefix get: %+v", c)
	}
	c = recv(t, must(s.SubmitRemove(nil, false, 0)))
	if c.Result != 0 || c.Err != nil || len(c.OK) != 0 {
		t.Fatalf("empty batch: %+v", c)
	}
	c = recv(t, must(s.SubmitPut([][]byte{{}, []byte("ok")}, [][]byte{[]byte("v"), []byte("v")}, false, 0)))
	if !errors.Is(c.Errs[0], ErrInvalid) || !c.OK[1] {
		t.Fatalf("bad key: %+v", c)
	}
	if _, err := s.SubmitPut(ks, vs[:1], false, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("length mismatch: %v", err)
	}
	if _, err := s.SubmitGet(ks[:1], []int{-1}, false, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative capacity: %v", err)
	}
	st, _ := s.Stats()
	if st.AsyncSubmitted != 8 || st.AsyncCompleted != 8 {
		t.Fatalf("stats: %d submitted, %d completed", st.AsyncSubmitted, st.AsyncCompleted)
	}
}

func must(ch <-chan Completion, err error) <-chan Completion {
	if err != nil {
		panic(err)
	}
	return ch
}

// A prefix batch that stops at an item that failed (a destination too
// small) reports that item's error, and nothing for the keys after it,
// which were not looked at (a stored key among them was reported as a
// miss); a prefix lookup the hits before its first miss.
func TestSubmitPrefixEndsAtTheItemItStoppedAt(t *testing.T) {
	s := open(t, nil)
	ks, vs := bigValues(0, 3, 10)
	for i := range ks {
		if _, err := s.Put(ks[i], vs[i], false); err != nil {
			t.Fatal(err)
		}
	}
	c := recv(t, must(s.SubmitGet(ks, []int{64, 4, 64}, true, 0)))
	if c.Result != 1 || len(c.Values) != 2 || len(c.Errs) != 2 || !bytes.Equal(c.Values[0], vs[0]) {
		t.Fatalf("prefix get: %+v", c)
	}
	if !errors.Is(c.Errs[1], ErrBufferTooSmall) || c.Errs[1].(*Error).Needed != len(vs[1]) {
		t.Fatalf("the item the prefix stopped at: %+v", c)
	}
	c = recv(t, must(s.SubmitContains([][]byte{ks[0], []byte("absent"), ks[2]}, false, true, 0)))
	if c.Result != 1 || fmt.Sprint(c.OK) != "[true]" {
		t.Fatalf("prefix contains: %+v", c)
	}
}

func TestSubmitFromManyGoroutines(t *testing.T) {
	s := open(t, nil)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for round := 0; round < 20; round++ {
				size := 100
				if round%2 == 1 {
					size = 40 << 10
				}
				ks, vs := bigValues(g*1000+round*3, 3, size)
				ch, err := s.SubmitPut(ks, vs, true, uint64(round))
				if err != nil {
					t.Error(err)
					return
				}
				if c := <-ch; c.Result != 3 || c.Tag != uint64(round) {
					t.Errorf("%+v", c)
				}
			}
		}(g)
	}
	wg.Wait()
	if st, _ := s.Stats(); st.AsyncCompleted != 80 {
		t.Fatalf("%d completed", st.AsyncCompleted)
	}
	// The values are copies: reusing the caller's slices changes nothing.
	ks, vs := bigValues(0, 1, 64<<10)
	ch := must(s.SubmitPut(ks, vs, true, 0))
	vs[0][0] ^= 0xff
	<-ch
	if v, _, _ := s.Get(ks[0]); v[0] == vs[0][0] {
		t.Fatal("the stored value changed with the caller's slice")
	}
}

func TestShutdownCancelsQueuedBatches(t *testing.T) {
	s := open(t, nil)
	var chans []<-chan Completion
	for b := 0; b < 16; b++ {
		ks, vs := bigValues(b*8, 8, 256<<10)
		chans = append(chans, must(s.SubmitPut(ks, vs, false, uint64(b))))
	}
	s.Shutdown()
	if _, err := s.SubmitRemove([][]byte{[]byte("x")}, false, 0); !errors.Is(err, ErrShutdown) {
		t.Fatalf("submit after shutdown: %v", err)
	}
	cancelled := uint64(0)
	for _, ch := range chans {
		c := recv(t, ch)
		if c.Err != nil {
			if !errors.Is(c.Err, ErrCanceled) {
				t.Fatalf("%+v", c)
			}
			cancelled++
			for _, e := range c.Errs {
				if !errors.Is(e, ErrCanceled) {
					t.Fatalf("item of a cancelled batch: %v", e)
				}
			}
		}
	}
	if st, _ := s.Stats(); st.AsyncCancelled != cancelled {
		t.Fatalf("stats say %d cancelled, channels %d", st.AsyncCancelled, cancelled)
	}
}

func TestCloseDeliversEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := OpenOptions("mem:", 24*mib, map[string]string{"slot_bytes": "1MiB"})
	if err != nil {
		t.Fatal(err)
	}
	var chans []<-chan Completion
	for b := 0; b < 8; b++ {
		ks, vs := bigValues(b*4, 4, 128<<10)
		chans = append(chans, must(s.SubmitPut(ks, vs, false, 0)))
	}
	s.Close()
	for _, ch := range chans {
		if c := recv(t, ch); c.Err != nil && !errors.Is(c.Err, ErrCanceled) {
			t.Fatalf("%+v", c)
		}
	}
	if _, err := s.SubmitPut(nil, nil, false, 0); !errors.Is(err, ErrShutdown) {
		t.Fatalf("submit after close: %v", err)
	}
	// The delivering goroutine is gone.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after close, %d before", n, before)
	}
}

func TestMemcpyBatch(t *testing.T) {
	src := []byte("0123456789abcdef")
	dst := make([]byte, 16)
	err := MemcpyBatch(dst, src, []CopyRange{{DstOff: 0, SrcOff: 10, Len: 6}, {DstOff: 8, SrcOff: 0, Len: 4}, {Len: 0}})
	if err != nil || string(dst[:6]) != "abcdef" || string(dst[8:12]) != "0123" {
		t.Fatalf("%q %v", dst, err)
	}
	if err := MemcpyBatch(dst, src, []CopyRange{{DstOff: 12, Len: 5}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("out of range: %v", err)
	}
	if err := MemcpyBatch(dst, src, []CopyRange{{SrcOff: -1, Len: 1}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative: %v", err)
	}
	if err := MemcpyBatch(nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// daxkv_memcpy_batch copies distinct ranges concurrently and requires that
// they do not overlap; a range overlapping itself is a memmove. Bad inputs
// tried: two ranges writing the same bytes of dst; one range reading the
// bytes another writes, with dst and src the same buffer, and with dst and
// src different slices of one array; ranges of the same buffer that only
// touch (allowed); the same source read by two ranges (allowed); a range
// overlapping itself (allowed, a memmove); an empty range inside another
// (allowed).
func TestMemcpyBatchOverlappingRanges(t *testing.T) {
	buf := []byte("0123456789abcdef")
	refused := []struct {
		name     string
		dst, src []byte
		ranges   []CopyRange
	}{
		{"two writes of the same bytes", make([]byte, 16), buf,
			[]CopyRange{{DstOff: 0, SrcOff: 0, Len: 8}, {DstOff: 4, SrcOff: 8, Len: 8}}},
		{"a read of bytes another range writes", buf, buf,
			[]CopyRange{{DstOff: 0, SrcOff: 8, Len: 4}, {DstOff: 8, SrcOff: 12, Len: 4}}},
		{"slices of one array", buf[:8], buf[6:],
			[]CopyRange{{DstOff: 0, SrcOff: 0, Len: 2}, {DstOff: 6, SrcOff: 8, Len: 2}}},
	}
	for _, c := range refused {
		before := string(buf)
		dstBefore := string(c.dst)
		if err := MemcpyBatch(c.dst, c.src, c.ranges); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.name, err)
		}
		if string(buf) != before || string(c.dst) != dstBefore {
			t.Errorf("%s: buffers changed by a refused call", c.name)
		}
	}
	b := []byte("0123456789abcdef")
	if err := MemcpyBatch(b, b, []CopyRange{{DstOff: 0, SrcOff: 8, Len: 4}, {DstOff: 4, SrcOff: 8, Len: 4}}); err != nil ||
		string(b) != "89ab89ab89abcdef" {
		t.Fatalf("touching ranges, one source: %q %v", b, err)
	}
	b = []byte("0123456789abcdef")
	if err := MemcpyBatch(b, b, []CopyRange{{DstOff: 2, SrcOff: 0, Len: 8}, {DstOff: 4, SrcOff: 12, Len: 0}}); err != nil ||
		string(b) != "0101234567abcdef" {
		t.Fatalf("memmove range with an empty range inside: %q %v", b, err)
	}
}

// A store dropped without Close (a bug, but one the finalizer covers)
// must not be kept alive by its delivering goroutine.
func TestFinalizerClosesAnAbandonedStore(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		s, err := OpenOptions("mem:", 8*mib, map[string]string{"slot_bytes": "1MiB"})
		if err != nil {
			t.Fatal(err)
		}
		ks, vs := bigValues(0, 2, 64<<10)
		<-must(s.SubmitPut(ks, vs, false, 0))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines, %d before: the store was never finalized", n, before)
	}
}

// Completion channels are all that is left of their store while its
// batches run: the store's finalizer closed the store under them (nothing
// of the asynchronous state held it), and the queued batches came back
// cancelled although nobody had closed it. Once nothing is pending the
// store is left to its finalizer again, which closes it.
func TestPendingBatchesKeepTheirStoreFromItsFinalizer(t *testing.T) {
	arena := filepath.Join(t.TempDir(), "arena")
	put, lookup := func() (<-chan Completion, <-chan Completion) {
		s, err := OpenOptions(arena, 24*mib,
			map[string]string{"slot_bytes": "1MiB"})
		if err != nil {
			t.Fatal(err)
		}
		ks, vs := bigValues(0, 20, 1<<20)
		return must(s.SubmitPut(ks, vs, false, 1)), must(s.SubmitContains(ks, false, false, 2))
	}()
	var got []Completion
	for len(got) < 2 {
		runtime.GC()
		select {
		case c := <-put:
			got = append(got, c)
			put = nil
		case c := <-lookup:
			got = append(got, c)
			lookup = nil
		case <-time.After(time.Millisecond):
		}
	}
	for _, c := range got {
		if c.Err != nil || c.Result != 20 {
			t.Errorf("%v batch: result %d, %v; nobody closed the store", c.Op, c.Result, c.Err)
		}
	}
	waitFinalized(t, arena) // nothing pending: the store is the finalizer's again
}

// A get batch's destination buffers are allocated in C from the sum of the
// capacities. Bad inputs: capacities {1<<62} x 4, whose size_t sum wraps
// to 0 (each item would get a 2^62-byte capacity in a one-byte
// allocation), and {MaxInt, MaxInt, 2}, whose int sum wraps. The keys are
// absent, so nothing is written even where the check is missing.
func TestSubmitGetCapacitiesThatOverflow(t *testing.T) {
	s := open(t, nil)
	const maxInt = int(^uint(0) >> 1)
	for _, caps := range [][]int{{1 << 62, 1 << 62, 1 << 62, 1 << 62}, {maxInt, maxInt, 2}} {
		ks := make([][]byte, len(caps))
		for i := range ks {
			ks[i] = []byte(fmt.Sprintf("absent%d", i))
		}
		ch, err := s.SubmitGet(ks, caps, false, 7)
		if err == nil {
			recv(t, ch)
			t.Fatalf("caps %v: submitted", caps)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("caps %v: %v, want ErrInvalid", caps, err)
		}
	}
}

// A completion names the keys of its batch, as they were submitted. Bad
// input: the caller reuses its key buffers (and value buffers, which the
// documentation allows) at once for the next batch, before the first
// completion is received.
func TestCompletionKeysSurviveBufferReuse(t *testing.T) {
	s := open(t, nil)
	kbuf := []byte("first")
	vbuf := []byte("one")
	ch1 := must(s.SubmitPut([][]byte{kbuf}, [][]byte{vbuf}, false, 1))
	copy(kbuf, "other")
	copy(vbuf, "two")
	ch2 := must(s.SubmitPut([][]byte{kbuf}, [][]byte{vbuf}, false, 2))
	copy(kbuf, "xxxxx")
	c1, c2 := recv(t, ch1), recv(t, ch2)
	if string(c1.Keys[0]) != "first" || string(c2.Keys[0]) != "other" {
		t.Fatalf("completion keys %q and %q, want \"first\" and \"other\"", c1.Keys[0], c2.Keys[0])
	}
	if v, _, _ := s.Get([]byte("first")); string(v) != "one" {
		t.Fatalf("first = %q", v)
	}
}
