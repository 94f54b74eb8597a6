package daxkv

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const mib = 1 << 20

func open(t *testing.T, opts map[string]string) *Store {
	t.Helper()
	o := map[string]string{"slot_bytes": "1MiB"}
	for k, v := range opts {
		o[k] = v
	}
	s, err := OpenOptions(filepath.Join(t.TempDir(), "arena"), 24*mib, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRoundTrip(t *testing.T) {
	s := open(t, nil)
	if ok, err := s.Put([]byte("k"), []byte("hello"), false); !ok || err != nil {
		t.Fatalf("put: %v %v", ok, err)
	}
	if ok, err := s.Put([]byte("k"), []byte("other"), false); ok || err != nil {
		t.Fatalf("second put: stored=%v err=%v, want existed", ok, err)
	}
	v, found, err := s.Get([]byte("k"))
	if err != nil || !found || string(v) != "hello" {
		t.Fatalf("get: %q %v %v", v, found, err)
	}
	buf := make([]byte, 3)
	n, _, err := s.GetInto([]byte("k"), buf)
	if !errors.Is(err, ErrBufferTooSmall) || n != 5 || err.(*Error).Needed != 5 {
		t.Fatalf("small buffer: n=%d err=%#v", n, err)
	}
	if !errors.Is(err, syscall.ENOBUFS) {
		t.Fatalf("error does not unwrap to ENOBUFS: %v", err)
	}
	if _, found, err := s.GetInto([]byte("nope"), buf); found || err != nil {
		t.Fatalf("miss: %v %v", found, err)
	}
	if ok, _ := s.Contains([]byte("k")); !ok {
		t.Fatal("contains")
	}
	if ok, err := s.Remove([]byte("k"), false); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if ok, err := s.Remove([]byte("k"), false); ok || err != nil {
		t.Fatalf("remove miss: %v %v", ok, err)
	}
}

func TestPins(t *testing.T) {
	s := open(t, nil)
	s.Put([]byte("k"), []byte("v"), false)
	if err := s.Pin([]byte("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove([]byte("k"), false); !errors.Is(err, ErrBusy) {
		t.Fatalf("remove pinned: %v", err)
	}
	if err := s.Unpin([]byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin([]byte("k")); err == nil {
		t.Fatal("unpin below zero succeeded")
	}
	if err := s.Pin([]byte("absent")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pin miss: %v", err)
	}
	var e *Error
	if err := s.Pin([]byte("absent")); !errors.As(err, &e) || e.Op != "daxkv_pin" || e.Message == "" {
		t.Fatalf("error fields: %#v", err)
	}
}

func keys(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("key-%04d", i))
	}
	return out
}

func TestBatches(t *testing.T) {
	s := open(t, nil)
	ks := keys(6)
	vals := [][]byte{[]byte("zero"), []byte("one"), []byte("three")}
	stored, errs, err := s.PutMany([][]byte{ks[0], ks[1], ks[3]}, vals, false)
	if err != nil || !stored[0] || !stored[1] || !stored[2] || errs[0] != nil {
		t.Fatalf("put many: %v %v %v", stored, errs, err)
	}
	buf := make([]byte, 6*16)
	caps := []int{16, 16, 16, 16, 16, 16}
	lens, errs, n, err := s.GetManyInto(ks, buf, caps, false)
	if err != nil || n != 3 {
		t.Fatalf("get many: %v n=%d", err, n)
	}
	want := []int{4, 3, -1, 5, -1, -1}
	for i := range want {
		if lens[i] != want[i] || errs[i] != nil {
			t.Fatalf("item %d: len %d err %v, want %d", i, lens[i], errs[i], want[i])
		}
	}
	if string(buf[48:53]) != "three" {
		t.Fatalf("item 3 bytes: %q", buf[48:53])
	}
	buf2 := make([]byte, 6*16)
	_, _, n, err = s.GetManyInto(ks, buf2, caps, true)
	if err != nil || n != 2 || !bytes.Equal(buf2[48:64], make([]byte, 16)) {
		t.Fatalf("prefix get: n=%d err=%v", n, err)
	}
	if p, err := s.PrefixLen(ks, false); p != 2 || err != nil {
		t.Fatalf("prefix len %d %v", p, err)
	}
	hits, err := s.ContainsMany(ks, true)
	if err != nil || !hits[0] || hits[2] || !hits[3] {
		t.Fatalf("contains many: %v %v", hits, err)
	}
	rerrs, removed, err := s.RemoveMany(ks, false)
	if err != nil || removed != 0 || !errors.Is(rerrs[0], ErrBusy) || !errors.Is(rerrs[2], ErrNotFound) {
		t.Fatalf("remove pinned: %v %d %v", rerrs, removed, err)
	}
	if _, unpinned, err := s.UnpinMany(ks); unpinned != 3 || err != nil {
		t.Fatalf("unpin many: %d %v", unpinned, err)
	}
	if _, removed, _ := s.RemoveMany(ks, false); removed != 3 {
		t.Fatalf("removed %d", removed)
	}
}

func TestBatchItemErrors(t *testing.T) {
	s := open(t, nil)
	big := make([]byte, mib+1)
	stored, errs, err := s.PutMany([][]byte{[]byte("a"), []byte("big")}, [][]byte{[]byte("1"), big}, false)
	if err != nil || !stored[0] || stored[1] || !errors.Is(errs[1], ErrTooBig) {
		t.Fatalf("%v %v %v", stored, errs, err)
	}
	s.Put([]byte("long"), make([]byte, 100), false)
	lens, errs, _, err := s.GetManyInto([][]byte{[]byte("a"), []byte("long")}, make([]byte, 20), []int{10, 10}, false)
	if err != nil || lens[0] != 1 || !errors.Is(errs[1], ErrBufferTooSmall) {
		t.Fatalf("%v %v %v", lens, errs, err)
	}
	// The too-small item gives the length it needs, as GetInto does; other
	// failures (an empty key) give -1 and no length.
	if lens[1] != 100 || errs[1].(*Error).Needed != 100 {
		t.Fatalf("needed length: %v %#v", lens, errs[1])
	}
	lens, errs, _, _ = s.GetManyInto([][]byte{[]byte("long"), {}}, make([]byte, 20), []int{10, 10}, false)
	if lens[0] != 100 || lens[1] != -1 || !errors.Is(errs[1], ErrInvalid) || errs[1].(*Error).Needed != 0 {
		t.Fatalf("needed length beside a bad key: %v %#v", lens, errs[1])
	}
	if _, _, err := s.PutMany(keys(2), [][]byte{[]byte("x")}, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("length mismatch: %v", err)
	}
	if _, _, _, err := s.GetManyInto(keys(1), make([]byte, 4), []int{8}, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("caps beyond buffer: %v", err)
	}
	if _, _, err := s.PutManyFrom(keys(1), make([]byte, 4), []int{-1}, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative length: %v", err)
	}
	hits, err := s.ContainsMany(nil, false)
	if err != nil || len(hits) != 0 {
		t.Fatalf("empty batch: %v %v", hits, err)
	}
}

// A batch item's error said only the code's description ("invalid
// argument or configuration"), where the library had said why. Bad inputs:
// a 513-byte key and an empty key, alone and together in one batch.
func TestBatchItemErrorsCarryTheLibrarysMessage(t *testing.T) {
	s := open(t, nil)
	long := bytes.Repeat([]byte("x"), 513)
	message := func(err error) string {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("not an *Error: %v", err)
		}
		return e.Message
	}
	_, errs, err := s.PutMany([][]byte{[]byte("a"), long}, [][]byte{[]byte("1"), []byte("2")}, false)
	if err != nil || message(errs[1]) != "key length 513 is not in 1..512" {
		t.Fatalf("put: %v %v", errs, err)
	}
	_, errs, _, err = s.GetManyInto([][]byte{long}, make([]byte, 4), []int{4}, false)
	if err != nil || message(errs[0]) != "key length 513 is not in 1..512" {
		t.Fatalf("get: %v %v", errs, err)
	}
	if _, err := s.ContainsMany([][]byte{[]byte("a"), {}}, true); message(err) != "key length 0 is not in 1..512" {
		t.Fatalf("contains: %v", err)
	}
	_, errs, err = s.LeaseMany([][]byte{[]byte("a"), long}, false)
	if err != nil || message(errs[1]) != "key length 513 is not in 1..512" {
		t.Fatalf("lease: %v %v", errs, err)
	}
	// Two items failing: the message is the last one's and names neither;
	// neither item is given it.
	_, errs, err = s.PutMany([][]byte{{}, long}, [][]byte{[]byte("1"), []byte("2")}, false)
	if err != nil || strings.Contains(message(errs[0]), "513") {
		t.Fatalf("two failing: %v %v", errs, err)
	}
	// A miss after the failed item leaves its own message ("key not
	// found"), which the failed item was given.
	errs, _, err = s.RemoveMany([][]byte{long, []byte("nokey")}, false)
	if err != nil || message(errs[0]) == "key not found" {
		t.Fatalf("failure then miss: %v %v", errs, err)
	}
}

func TestBadInputs(t *testing.T) {
	s := open(t, nil)
	if _, err := s.Put(nil, []byte("v"), false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
	long := bytes.Repeat([]byte("k"), KeyMax+1)
	if _, err := s.Put(long, []byte("v"), false); !errors.Is(err, ErrTooBig) && !errors.Is(err, ErrInvalid) {
		t.Fatalf("long key: %v", err)
	}
	if ok, err := s.Put(long[:KeyMax], []byte("v"), false); !ok || err != nil {
		t.Fatalf("longest key: %v %v", ok, err)
	}
	if _, err := s.ContainsMany([][]byte{[]byte("ok"), long}, false); err == nil {
		t.Fatal("a too-long key in a batch was not reported")
	}
	cfg, _ := NewConfig()
	defer cfg.Free()
	err := cfg.Set("no_such_key", "1")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no_such_key") {
		t.Fatalf("unknown key: %v", err)
	}
	if err := cfg.Set("slot_bytes", "x\x00y"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NUL: %v", err)
	}
	if _, err := Open(cfg); err == nil {
		t.Fatal("open without slot_bytes or devices succeeded")
	}
	if _, err := Open(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil config: %v", err)
	}
	if _, err := ConfigFromJSON("{"); err == nil {
		t.Fatal("bad JSON accepted")
	}
	if _, _, err := s.Reserve([]byte("r"), -1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative reserve: %v", err)
	}
}

func TestLeaseLifetime(t *testing.T) {
	s := open(t, nil)
	s.Put([]byte("k"), []byte("payload"), false)
	l, err := s.Lease([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 7 {
		t.Fatalf("len %d", l.Len())
	}
	// The bytes stay in place after remove and after the store closes.
	s.Remove([]byte("k"), false)
	s.Put([]byte("k"), []byte("PAYLOAD"), false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err = l.View(func(b []byte) error {
		if string(b) != "payload" {
			return fmt.Errorf("got %q", b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	l.Release()
	if err := l.View(func([]byte) error { return nil }); err != ErrReleased {
		t.Fatalf("view after release: %v", err)
	}
	if _, err := l.Bytes(); err != ErrReleased {
		t.Fatalf("bytes after release: %v", err)
	}
	if _, err := s.Lease([]byte("k")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("lease on closed store: %v", err)
	}
}

// ReadInto copies a leased value out through the library (the bytes of a
// removed entry too, while leased); a buffer too small reports the length
// needed and copies nothing; an empty one copies nothing of its part; a
// released lease is ErrReleased.
func TestLeaseReadInto(t *testing.T) {
	s := open(t, nil)
	s.Put([]byte("a"), []byte("first value"), false)
	l, err := s.Lease([]byte("a"))
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	if ok, err := s.Remove([]byte("a"), false); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	buf := make([]byte, 16)
	meta := make([]byte, 4)
	n, ml, err := l.ReadInto(buf, meta)
	if err != nil || n != 11 || ml != 0 || string(buf[:n]) != "first value" {
		t.Fatalf("read: %d %d %v %q", n, ml, err, buf[:n])
	}
	small := []byte("xxxx")
	n, _, err = l.ReadInto(small, nil)
	if !errors.Is(err, ErrBufferTooSmall) || n != 11 || err.(*Error).Needed != 11 || string(small) != "xxxx" {
		t.Fatalf("small buffer: n=%d err=%v %q", n, err, small)
	}
	if n, _, err = l.ReadInto(nil, nil); err != nil || n != 11 {
		t.Fatalf("lengths only: %d %v", n, err)
	}
	l.Release()
	if _, _, err := l.ReadInto(buf, nil); err != ErrReleased {
		t.Fatalf("after release: %v", err)
	}
}

func TestLeaseManyGivesWhatSingleLeasesGive(t *testing.T) {
	s := open(t, nil)
	s.Put([]byte("a"), []byte("first"), false)
	s.Put([]byte("b"), []byte("second"), false)
	keys := [][]byte{[]byte("a"), []byte("missing"), []byte("b"), {}}
	leases, errs, err := s.LeaseMany(keys, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"first", "", "second", ""} {
		if want == "" {
			if leases[i] != nil {
				t.Fatalf("item %d leased", i)
			}
			continue
		}
		if got, err := leases[i].Bytes(); err != nil || string(got) != want || errs[i] != nil {
			t.Fatalf("item %d: %q %v %v", i, got, err, errs[i])
		}
	}
	if !errors.Is(errs[1], ErrNotFound) {
		t.Fatalf("missing key: %v", errs[1])
	}
	if !errors.Is(errs[3], ErrInvalid) { // key length 0
		t.Fatalf("empty key: %v", errs[3])
	}
	for _, l := range leases {
		if l != nil {
			l.Release()
		}
	}
	// prefix: the run before the first miss.
	leases, _, err = s.LeaseMany(keys, true)
	if err != nil || len(leases) != 1 || leases[0] == nil {
		t.Fatalf("prefix: %v %v", leases, err)
	}
	leases[0].Release()
	st, _ := s.Stats()
	if st.LeasesActive != 0 {
		t.Fatalf("%d leases left", st.LeasesActive)
	}
	s.Close()
	if _, _, err := s.LeaseMany(keys, false); !errors.Is(err, ErrShutdown) {
		t.Fatalf("lease_many on a closed store: %v", err)
	}
}

// With prefix, a key that fails rather than misses (a key of 513 bytes,
// one of 0) is reported, not taken for the end of the prefix: PrefixLen
// returned (1, nil), and LeaseMany dropped the key's error. The keys a
// failed pinning PrefixLen pinned are unpinned again.
func TestAPrefixStoppedByAFailingKeyReportsIt(t *testing.T) {
	s := open(t, nil)
	defer s.Close()
	s.Put([]byte("a"), []byte("first"), false)
	bad := bytes.Repeat([]byte("k"), 513)
	for _, pin := range []bool{false, true} {
		if n, err := s.PrefixLen([][]byte{[]byte("a"), bad}, pin); n != 0 || !errors.Is(err, ErrInvalid) {
			t.Fatalf("PrefixLen(pin=%v) with a bad key: %d %v", pin, n, err)
		}
	}
	if st, _ := s.Stats(); st.EntriesPinned != 0 {
		t.Fatalf("%d entries left pinned", st.EntriesPinned)
	}
	if n, err := s.PrefixLen([][]byte{[]byte("a"), []byte("missing"), bad}, false); n != 1 || err != nil {
		t.Fatalf("a miss still ends the prefix: %d %v", n, err)
	}
	leases, errs, err := s.LeaseMany([][]byte{[]byte("a"), {}}, true)
	if err != nil || len(leases) != 2 || leases[0] == nil || leases[1] != nil || !errors.Is(errs[1], ErrInvalid) {
		t.Fatalf("LeaseMany prefix with an empty key: %v %v %v", leases, errs, err)
	}
	leases[0].Release()
	leases, errs, err = s.LeaseMany([][]byte{[]byte("a"), []byte("missing"), {}}, true)
	if err != nil || len(leases) != 1 || len(errs) != 1 {
		t.Fatalf("LeaseMany prefix stopped by a miss: %v %v %v", leases, errs, err)
	}
	leases[0].Release()
	if st, _ := s.Stats(); st.LeasesActive != 0 {
		t.Fatalf("%d leases left", st.LeasesActive)
	}
}

func TestLeaseKeepsStoreReachable(t *testing.T) {
	var l *Lease
	func() {
		s, err := OpenOptions("mem:", 8*mib, map[string]string{"slot_bytes": "1MiB"})
		if err != nil {
			t.Fatal(err)
		}
		s.Put([]byte("k"), []byte("alive"), false)
		l, err = s.Lease([]byte("k"))
		if err != nil {
			t.Fatal(err)
		}
	}()
	// The store is unreachable except through the lease: its finalizer
	// must not run, and the bytes must stay valid.
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	b, err := l.Bytes()
	if err != nil || string(b) != "alive" {
		t.Fatalf("%q %v", b, err)
	}
	l.store.Close()
	l.Release()
}

func TestReservationWithMeta(t *testing.T) {
	s := open(t, nil)
	r, ok, err := s.ReserveWithMeta([]byte("rm"), 4, []byte("shape"))
	if err != nil || !ok {
		t.Fatal(err)
	}
	if _, ok, _ := s.ReserveWithMeta([]byte("rm"), 4, nil); ok {
		t.Fatal("second reservation of an in-flight key")
	}
	r.Fill(func(b []byte) error { copy(b, "abcd"); return nil })
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	l, _ := s.Lease([]byte("rm"))
	m, _ := l.Meta()
	b, _ := l.Bytes()
	l.Release()
	if string(b) != "abcd" || string(m) != "shape" {
		t.Fatalf("%q %q", b, m)
	}
	// Metadata larger than meta_bytes reserves nothing.
	if _, ok, err := s.ReserveWithMeta([]byte("fat"), 4, make([]byte, 1<<20)); ok || !errors.Is(err, ErrTooBig) {
		t.Fatalf("oversized metadata: %v %v", ok, err)
	}
	if ok, _ := s.Put([]byte("fat"), []byte("v"), false); !ok {
		t.Fatal("a refused reservation left the key in flight")
	}
	if _, _, err := s.ReserveWithMeta([]byte("neg"), -1, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative size: %v", err)
	}
}

func TestReservation(t *testing.T) {
	s := open(t, nil)
	r, ok, err := s.Reserve([]byte("r"), 4)
	if err != nil || !ok {
		t.Fatal(err)
	}
	if _, ok, _ := s.Reserve([]byte("r"), 4); ok {
		t.Fatal("second reservation of an in-flight key")
	}
	if in, _ := s.Contains([]byte("r")); in {
		t.Fatal("in-flight key visible")
	}
	r.Fill(func(b []byte) error { copy(b, "data"); return nil })
	r.SetMeta([]byte("m"))
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != ErrReleased {
		t.Fatalf("double commit: %v", err)
	}
	l, _ := s.Lease([]byte("r"))
	m, _ := l.Meta()
	b, _ := l.Bytes()
	l.Release()
	if string(b) != "data" || string(m) != "m" {
		t.Fatalf("%q %q", b, m)
	}

	r2, _, _ := s.Reserve([]byte("gone"), 4)
	r2.Abort()
	if ok, _ := s.Put([]byte("gone"), []byte("v"), false); !ok {
		t.Fatal("aborted key not free")
	}
	r3, _, _ := s.Reserve([]byte("cancel"), 4)
	if ok, err := s.Remove([]byte("cancel"), true); !ok || err != nil {
		t.Fatalf("forced remove of in-flight key: %v %v", ok, err)
	}
	if err := r3.Commit(); !errors.Is(err, ErrCanceled) {
		t.Fatalf("commit after cancel: %v", err)
	}
}

func TestStats(t *testing.T) {
	s := open(t, map[string]string{"eviction": "none"})
	st, err := s.Stats()
	if err != nil || st.SlotBytes != mib || st.SlotsTotal == 0 {
		t.Fatalf("%+v %v", st, err)
	}
	for i := uint64(0); i < st.SlotsTotal; i++ {
		if _, err := s.Put([]byte(fmt.Sprint(i)), []byte("v"), false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Put([]byte("full"), []byte("v"), false); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("full: %v", err)
	}
	st2, _ := s.Stats()
	if st2.Entries != st.SlotsTotal || st2.SlotsFree != 0 {
		t.Fatalf("%+v", st2)
	}
	// The histograms: one latency per put call, one size per value.
	if st2.PutLatency.Count != st2.Puts+st2.PutsFailed || st2.ItemBytes.Count < st2.Puts {
		t.Fatalf("put latency %d, item sizes %d, puts %d", st2.PutLatency.Count, st2.ItemBytes.Count, st2.Puts)
	}
	sum := uint64(0)
	for _, b := range st2.PutLatency.Bucket {
		sum += b
	}
	if sum != st2.PutLatency.Count {
		t.Fatalf("buckets sum to %d, count %d", sum, st2.PutLatency.Count)
	}
	if b, ok := st2.PutLatency.Bound(0); !ok || b != 1000 {
		t.Fatalf("first latency bound %d %v", b, ok)
	}
	if b, ok := st2.ItemBytes.Bound(2); !ok || b != 16384 {
		t.Fatalf("third size bound %d %v", b, ok)
	}
	if _, ok := st2.ItemBytes.Bound(HistBuckets - 1); ok {
		t.Fatal("the last bucket has no bound")
	}
	j, err := s.StatusJSON()
	if err != nil || !strings.HasPrefix(j, "{") {
		t.Fatalf("%q %v", j, err)
	}
}

func TestConcurrentUseAndClose(t *testing.T) {
	s := open(t, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				k := []byte(fmt.Sprintf("g%d-%d", g, i%8))
				if _, err := s.Put(k, k, true); err != nil {
					if !errors.Is(err, ErrShutdown) {
						t.Errorf("put: %v", err)
					}
					return
				}
				if v, found, err := s.Get(k); err == nil && found && !bytes.Equal(v, k) {
					t.Errorf("got %q for %q", v, k)
				}
				if err := s.Pin([]byte("absent")); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrShutdown) {
					// Each goroutine sees its own error despite moving threads.
					t.Errorf("pin: %v", err)
				}
				if i == 300 && g == 0 {
					s.Close()
				}
			}
		}(g)
	}
	wg.Wait()
	if _, err := s.Put([]byte("x"), nil, false); !errors.Is(err, ErrShutdown) {
		t.Fatalf("after close: %v", err)
	}
}

func TestVersion(t *testing.T) {
	n := VersionNumber()
	if Version() != fmt.Sprintf("%d.%d.%d", n/10000, n/100%100, n%100) {
		t.Fatalf("%s vs %d", Version(), n)
	}
}

// Lengths and capacities are checked against the buffer by their sum; a
// sum that wraps around must not let C address memory outside it. Bad
// inputs: PutManyFrom lens {MaxInt, MaxInt, 2} (sum wraps to 0, the third
// value would be read from 2 bytes before buf), GetManyInto caps of the
// same shape, and caps {MaxInt, 1} (sum wraps negative, the second region
// would start MaxInt bytes past buf).
func TestBatchLengthsThatOverflow(t *testing.T) {
	s := open(t, nil)
	const maxInt = int(^uint(0) >> 1)
	ks := [][]byte{[]byte("o1"), []byte("o2"), []byte("o3")}
	buf := make([]byte, 8)
	stored, _, err := s.PutManyFrom(ks, buf, []int{maxInt, maxInt, 2}, false)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("put lens wrapping to 0: stored %v, err %v", stored, err)
	}
	if ok, _ := s.Contains([]byte("o3")); ok {
		t.Fatal("a value read from outside the buffer was stored")
	}
	// The keys are absent, so the library writes nothing even where the
	// check is missing.
	if _, _, _, err := s.GetManyInto(ks, buf, []int{maxInt, maxInt, 2}, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("get caps wrapping to 0: %v", err)
	}
	if _, _, _, err := s.GetManyInto(ks[:2], buf, []int{maxInt, 1}, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("get caps wrapping negative: %v", err)
	}
}

// finishes runs f and fails the test if it has not returned within 10 s
// (a deadlock would otherwise hang the whole test binary).
func finishes(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still blocked after 10 s", what)
	}
}

// A View's callback may use its lease: its accessors, and Release. Bad
// inputs: Release called inside View (the lease must go back once View
// returns, not deadlock); Release called on another goroutine during a
// View, then Len/Meta/Slot/Bytes inside the View (they report the lease
// released, while the View's bytes stay valid until it returns).
func TestLeaseUsedInsideView(t *testing.T) {
	s := open(t, nil)
	s.Put([]byte("k"), []byte("payload"), false)
	t.Run("Release", func(t *testing.T) { leaseReleasedInsideView(t, s) })
	t.Run("accessors", func(t *testing.T) { leaseAccessorsInsideView(t, s) })
}

func leaseReleasedInsideView(t *testing.T, s *Store) {
	l, err := s.Lease([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	finishes(t, "Release inside View", func() {
		err = l.View(func(b []byte) error {
			l.Release()
			if string(b) != "payload" { // still valid until View returns
				return fmt.Errorf("bytes after Release inside View: %q", b)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.View(func([]byte) error { return nil }); err != ErrReleased {
		t.Fatalf("view after release: %v", err)
	}
	if st, _ := s.Stats(); st.LeasesActive != 0 {
		t.Fatalf("%d leases active after View returned", st.LeasesActive)
	}
}

func leaseAccessorsInsideView(t *testing.T, s *Store) {
	l, err := s.Lease([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	finishes(t, "Release on another goroutine during View", func() {
		err = l.View(func(b []byte) error {
			released := make(chan struct{})
			go func() {
				l.Release()
				close(released)
			}()
			<-released // Release must not wait for this View
			if n := l.Len(); n != 0 {
				return fmt.Errorf("Len after Release: %d", n)
			}
			if _, err := l.Meta(); err != ErrReleased {
				return fmt.Errorf("Meta after Release: %v", err)
			}
			if _, err := l.Slot(); err != ErrReleased {
				return fmt.Errorf("Slot after Release: %v", err)
			}
			if _, err := l.Bytes(); err != ErrReleased {
				return fmt.Errorf("Bytes after Release: %v", err)
			}
			if string(b) != "payload" {
				return fmt.Errorf("bytes during View after Release: %q", b)
			}
			if st, _ := s.Stats(); st.LeasesActive != 1 {
				return fmt.Errorf("%d leases active during View, want 1", st.LeasesActive)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(); st.LeasesActive != 0 {
		t.Fatalf("%d leases active after View returned", st.LeasesActive)
	}
}

// A batch lookup that pins its hits and fails on another item reports only
// the error: the caller cannot know which keys it pinned, so none may stay
// pinned (they could then be neither evicted nor removed).
func TestContainsManyPinFailureLeavesNoPins(t *testing.T) {
	s := open(t, nil)
	if ok, err := s.Put([]byte("a"), []byte("v"), false); !ok || err != nil {
		t.Fatalf("put: %v %v", ok, err)
	}
	long := bytes.Repeat([]byte("k"), KeyMax+1)
	if _, err := s.ContainsMany([][]byte{[]byte("a"), long}, true); err == nil {
		t.Fatal("a too-long key in a pinning batch was not reported")
	}
	if ok, err := s.Remove([]byte("a"), false); !ok || err != nil {
		t.Fatalf("remove after the failed pinning batch: %v %v (a pin was left behind)", ok, err)
	}
}

// JSON with a NUL byte: C would parse only what comes before it.
func TestConfigFromJSONRefusesNUL(t *testing.T) {
	j := `{"device_path": "mem:", "max_dax_size_gb": 0.015625, "slot_bytes": 1048576}`
	cfg, err := ConfigFromJSON(j)
	if err != nil {
		t.Fatalf("valid JSON: %v", err)
	}
	cfg.Free()
	if cfg, err := ConfigFromJSON(j + "\x00 trailing bytes C never sees"); !errors.Is(err, ErrInvalid) {
		if cfg != nil {
			cfg.Free()
		}
		t.Fatalf("JSON with a NUL byte: %v, want ErrInvalid", err)
	}
}

// A Reservation finished from inside its own Fill, while the callback still
// holds the slice. Bad inputs tried: Abort inside Fill, then a reservation
// of another key (which the library handed the same slot) filled and
// committed, then the first callback writing its slice (the other key read
// back the first callback's bytes); Commit inside Fill (the entry was
// committed while the callback could still write it); Len, SetMeta, Slot
// and Fill after an Abort inside Fill; Abort twice inside Fill.
func TestReservationFinishedInsideFill(t *testing.T) {
	s := open(t, nil)
	r, ok, err := s.Reserve([]byte("a"), 4)
	if !ok || err != nil {
		t.Fatalf("reserve a: %v %v", ok, err)
	}
	err = r.Fill(func(b []byte) error {
		r.Abort()
		r.Abort()
		if n := r.Len(); n != 0 {
			return fmt.Errorf("Len after Abort inside Fill: %d", n)
		}
		if err := r.SetMeta([]byte("m")); err != ErrReleased {
			return fmt.Errorf("SetMeta after Abort inside Fill: %v", err)
		}
		if _, err := r.Slot(); err != ErrReleased {
			return fmt.Errorf("Slot after Abort inside Fill: %v", err)
		}
		if err := r.Fill(func([]byte) error { return nil }); err != ErrReleased {
			return fmt.Errorf("Fill after Abort inside Fill: %v", err)
		}
		r2, ok, err := s.Reserve([]byte("b"), 4)
		if !ok || err != nil {
			return fmt.Errorf("reserve b: %v %v", ok, err)
		}
		if err := r2.Fill(func(b2 []byte) error { copy(b2, "good"); return nil }); err != nil {
			return err
		}
		if err := r2.Commit(); err != nil {
			return err
		}
		copy(b, "evil") // still this callback's slice
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, err := s.Get([]byte("b")); string(v) != "good" || err != nil {
		t.Fatalf("b = %q, %v; want \"good\" (another reservation's Fill wrote it)", v, err)
	}
	if err := r.Commit(); err != ErrReleased {
		t.Fatalf("commit after abort: %v", err)
	}
	if r3, ok, err := s.Reserve([]byte("a"), 4); !ok || err != nil {
		t.Fatalf("a still in flight after Fill returned: %v %v", ok, err)
	} else {
		r3.Abort()
	}

	r, _, _ = s.Reserve([]byte("c"), 4)
	err = r.Fill(func(b []byte) error {
		copy(b, "half")
		if err := r.Commit(); !errors.Is(err, ErrBusy) {
			return fmt.Errorf("commit inside Fill: %v, want ErrBusy", err)
		}
		copy(b, "full")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Contains([]byte("c")); ok {
		t.Fatal("c committed by a Commit inside Fill")
	}
	if err := r.Commit(); err != nil {
		t.Fatalf("commit after Fill: %v", err)
	}
	if v, _, _ := s.Get([]byte("c")); string(v) != "full" {
		t.Fatalf("c = %q, want \"full\"", v)
	}
}
