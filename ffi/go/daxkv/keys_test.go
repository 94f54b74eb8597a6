package daxkv

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"
	"unsafe"
)

func putMeta(t *testing.T, s *Store, key, value, meta string) {
	t.Helper()
	r, ok, err := s.Reserve([]byte(key), len(value))
	if err != nil || !ok {
		t.Fatalf("reserve %q: %v %v", key, ok, err)
	}
	r.Fill(func(b []byte) error { copy(b, value); return nil })
	if err := r.SetMeta([]byte(meta)); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
}

func keyMap(t *testing.T, s *Store, device string) map[string]KeyInfo {
	t.Helper()
	all, err := s.AllKeys(device)
	if err != nil {
		t.Fatalf("keys of %q: %v", device, err)
	}
	m := map[string]KeyInfo{}
	for _, k := range all {
		if _, dup := m[string(k.Key)]; dup {
			t.Fatalf("key %q listed twice", k.Key)
		}
		m[string(k.Key)] = k
	}
	return m
}

func openFiles(t *testing.T, paths []string, bytes uint64, opts map[string]string) *Store {
	t.Helper()
	cfg, err := NewConfig()
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Free()
	if err := cfg.Set("slot_bytes", "1MiB"); err != nil {
		t.Fatal(err)
	}
	for k, v := range opts {
		if err := cfg.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range paths {
		if err := cfg.AddDevice(p, bytes); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestKeysWithMetadataAndSizes(t *testing.T) {
	s := open(t, nil)
	if m := keyMap(t, s, ""); len(m) != 0 {
		t.Fatalf("empty store lists %v", m)
	}
	s.Put([]byte("plain"), []byte("12345"), false)
	putMeta(t, s, "with-meta", "abc", "the meta")
	putMeta(t, s, "gone", "x", "m")
	if ok, err := s.Remove([]byte("gone"), false); !ok || err != nil {
		t.Fatal(ok, err)
	}
	inflight, _, _ := s.Reserve([]byte("inflight"), 10) // not committed: not listed
	defer inflight.Abort()
	s.Pin([]byte("plain"))
	l, err := s.Lease([]byte("with-meta"))
	if err != nil {
		t.Fatal(err)
	}
	m := keyMap(t, s, "")
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	if fmt.Sprint(names) != "[plain with-meta]" {
		t.Fatalf("keys %v", names)
	}
	p, w := m["plain"], m["with-meta"]
	if p.ValueLen != 5 || len(p.Meta) != 0 || p.Pins != 1 || p.Leases != 0 {
		t.Fatalf("plain: %+v", p)
	}
	if w.ValueLen != 3 || string(w.Meta) != "the meta" || w.Pins != 0 || w.Leases != 1 {
		t.Fatalf("with-meta: %+v", w)
	}
	if slot, _ := l.Slot(); slot.Slot != w.Slot || slot.DeviceID != w.DeviceID {
		t.Fatalf("lease slot %+v vs key %+v", slot, w)
	}
	if w.Seq <= p.Seq {
		t.Fatalf("later commit has seq %d <= %d", w.Seq, p.Seq)
	}
	l.Release()
	s.Put([]byte("plain"), []byte("1234567"), true)
	if m := keyMap(t, s, ""); len(m) != 2 || m["plain"].ValueLen != 7 {
		t.Fatalf("after replace: %+v", m)
	}
}

func TestKeysOfOneDevice(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	s := openFiles(t, []string{a, b}, 8*mib, nil)
	for i := 0; i < 8; i++ {
		s.Put([]byte(fmt.Sprintf("k%d", i)), bytes.Repeat([]byte{byte(i)}, 100+i), false)
	}
	all, onA, onB := keyMap(t, s, ""), keyMap(t, s, a), keyMap(t, s, b)
	if len(all) != 8 || len(onA) == 0 || len(onB) == 0 || len(onA)+len(onB) != 8 {
		t.Fatalf("all %d, a %d, b %d", len(all), len(onA), len(onB))
	}
	la, _ := s.DescribeDevice(a)
	lb, _ := s.DescribeDevice(b)
	if la.DeviceID == lb.DeviceID {
		t.Fatalf("same device id %d", la.DeviceID)
	}
	for k, info := range onA {
		if info.DeviceID != la.DeviceID || !bytes.Equal(all[k].Meta, info.Meta) || all[k].Slot != info.Slot {
			t.Fatalf("%s: %+v vs %+v", k, info, all[k])
		}
		if _, also := onB[k]; also {
			t.Fatalf("%s on both devices", k)
		}
	}
	for _, info := range onB {
		if info.DeviceID != lb.DeviceID {
			t.Fatalf("%+v not on b", info)
		}
	}
}

func TestKeysBadDevice(t *testing.T) {
	dir := t.TempDir()
	s := openFiles(t, []string{filepath.Join(dir, "a")}, 8*mib, nil)
	if _, err := s.Keys(filepath.Join(dir, "nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	if _, err := s.AllKeys(filepath.Join(dir, "nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	if _, err := s.Keys("a\x00b"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NUL: %v", err)
	}
	if _, err := s.DescribeDevice(filepath.Join(dir, "nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("describe unknown: %v", err)
	}
	if _, err := s.DescribeDevice(""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("describe empty: %v", err)
	}
}

// expectWalkShutDown: the header documents -ESHUTDOWN from
// daxkv_cursor_open; the library at hand reports it from the first step.
// Either way the walk yields nothing but the shutdown error.
func expectWalkShutDown(t *testing.T, kc *KeyCursor, err error) {
	t.Helper()
	if err == nil {
		_, ok, err2 := kc.Next()
		if ok {
			t.Fatal("a shut-down store listed a key")
		}
		err = err2
	}
	if !errors.Is(err, ErrShutdown) {
		t.Fatalf("want the shutdown error, got %v", err)
	}
}

func TestCursorAfterClose(t *testing.T) {
	s := open(t, nil)
	for i := 0; i < 4; i++ {
		s.Put([]byte(fmt.Sprint(i)), []byte("v"), false)
	}
	fresh, err := s.Keys("")
	if err != nil {
		t.Fatal(err)
	}
	partial, _ := s.Keys("")
	if _, ok, err := partial.Next(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	s.Close()
	if _, ok, err := fresh.Next(); ok || !errors.Is(err, ErrShutdown) {
		t.Fatalf("next after close: %v %v", ok, err)
	}
	if _, ok, err := fresh.Next(); ok || err != nil {
		t.Fatalf("next after the error: %v %v", ok, err)
	}
	// A cursor in the middle of its walk may still hand out what it
	// copied, then fails the same way.
	var last error
	for i := 0; i < 10; i++ {
		_, ok, err := partial.Next()
		if !ok {
			last = err
			break
		}
	}
	if !errors.Is(last, ErrShutdown) {
		t.Fatalf("partial walk after close: %v", last)
	}
	partial.Close()
	partial.Close()
	fresh.Close()
	if _, err := s.Keys(""); !errors.Is(err, ErrShutdown) {
		t.Fatalf("keys of a closed store: %v", err)
	}
	if _, err := s.DescribeDevice("mem:"); !errors.Is(err, ErrShutdown) {
		t.Fatalf("describe on a closed store: %v", err)
	}

	s2 := open(t, nil)
	s2.Shutdown()
	kc, err := s2.Keys("")
	expectWalkShutDown(t, kc, err)
	if _, err := s2.AllKeys(""); !errors.Is(err, ErrShutdown) {
		t.Fatalf("all keys after shutdown: %v", err)
	}
}

func TestSlotsPointAtTheBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "arena")
	s := openFiles(t, []string{path}, 8*mib, nil)
	layout, err := s.DescribeDevice(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Put([]byte("a"), []byte("first"), false)
	s.Put([]byte("b"), []byte("second"), false)
	for _, k := range []string{"a", "b"} {
		l, _ := s.Lease([]byte(k))
		slot, err := l.Slot()
		if err != nil {
			t.Fatal(err)
		}
		l.View(func(b []byte) error {
			if slot.Addr() != uintptr(unsafe.Pointer(&b[0])) {
				t.Errorf("%s: slot address %#x, lease data %p", k, slot.Addr(), &b[0])
			}
			return nil
		})
		if slot.PayloadBase != layout.PayloadBase || slot.Offset != slot.Slot*layout.SlotBytes || slot.DeviceID != layout.DeviceID {
			t.Errorf("%s: %+v vs layout %+v", k, slot, layout)
		}
		l.Release()
		if _, err := l.Slot(); err != ErrReleased {
			t.Errorf("slot of a released lease: %v", err)
		}
	}
	r, _, _ := s.Reserve([]byte("c"), 4)
	slot, err := r.Slot()
	if err != nil {
		t.Fatal(err)
	}
	r.Fill(func(b []byte) error {
		if slot.Addr() != uintptr(unsafe.Pointer(&b[0])) {
			t.Errorf("reservation slot %#x, data %p", slot.Addr(), &b[0])
		}
		copy(b, "in p")
		return nil
	})
	r.Commit()
	if _, err := r.Slot(); err != ErrReleased {
		t.Errorf("slot of a committed reservation: %v", err)
	}
	l, _ := s.Lease([]byte("c"))
	defer l.Release()
	again, _ := l.Slot()
	if again.Slot != slot.Slot || again.Generation != slot.Generation {
		t.Fatalf("committed slot %+v, reserved %+v", again, slot)
	}
}

func TestDeviceLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "arena")
	s := openFiles(t, []string{path}, 8*mib, map[string]string{"grow_limit": "16MiB"})
	l, err := s.DescribeDevice(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.State != DeviceActive || l.State.String() != "active" || l.DeviceIndex != 0 || l.SlotBytes != mib {
		t.Fatalf("%+v", l)
	}
	if l.UsableSlots < 1 || l.UsableSlots > 8 || l.LayoutSlots <= l.UsableSlots || l.UsedEnd != 0 {
		t.Fatalf("slots: %+v", l)
	}
	if l.DataOffset == 0 || l.ArenaBytes < l.DataOffset+l.LayoutSlots*l.SlotBytes || l.PayloadBase == 0 {
		t.Fatalf("extent: %+v", l)
	}
	if st, _ := s.Stats(); st.SlotsTotal != l.UsableSlots {
		t.Fatalf("stats %d slots, layout %d", st.SlotsTotal, l.UsableSlots)
	}
	s.Put([]byte("k"), []byte("v"), false)
	l2, _ := s.DescribeDevice(path)
	lease, _ := s.Lease([]byte("k"))
	defer lease.Release()
	slot, _ := lease.Slot()
	if l2.UsedEnd != slot.Slot+1 || l2.PayloadBase+uintptr(slot.Slot*l2.SlotBytes) != slot.Addr() {
		t.Fatalf("after a put: %+v, slot %+v", l2, slot)
	}
}

func TestSlotsLeased(t *testing.T) {
	s := open(t, nil)
	leased := func() uint64 {
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return st.SlotsLeased
	}
	if n := leased(); n != 0 {
		t.Fatalf("fresh store: %d", n)
	}
	s.Put([]byte("a"), []byte("1"), false)
	s.Put([]byte("b"), []byte("2"), false)
	la, _ := s.Lease([]byte("a"))
	la2, _ := s.Lease([]byte("a"))
	if n := leased(); n != 1 {
		t.Fatalf("two leases of one slot: %d", n)
	}
	lb, _ := s.Lease([]byte("b"))
	if n := leased(); n != 2 {
		t.Fatalf("two slots: %d", n)
	}
	s.Remove([]byte("b"), false) // the removed entry's slot stays leased
	if n := leased(); n != 2 {
		t.Fatalf("after remove: %d", n)
	}
	lb.Release()
	la.Release()
	la2.Release()
	if n := leased(); n != 0 {
		t.Fatalf("after release: %d", n)
	}
}

// A cursor is all that is left of its store while it walks: the store's
// finalizer closed the store under it (the cursor held no reference to
// it), and the walk ended in ErrShutdown after a key or none.
func TestACursorKeepsItsStoreFromItsFinalizer(t *testing.T) {
	arena := filepath.Join(t.TempDir(), "arena")
	kc := func() *KeyCursor {
		// Not openFiles: its cleanup would keep the store reachable.
		s, err := OpenOptions(arena, 24*mib, map[string]string{"slot_bytes": "1MiB"})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			if _, err := s.Put([]byte(fmt.Sprintf("k%d", i)), []byte("v"), false); err != nil {
				t.Fatal(err)
			}
		}
		kc, err := s.Keys("")
		if err != nil {
			t.Fatal(err)
		}
		return kc
	}()
	n := 0
	for {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
		_, ok, err := kc.Next()
		if err != nil {
			t.Fatalf("after %d keys: %v", n, err)
		}
		if !ok {
			break
		}
		n++
	}
	if n != 10 {
		t.Fatalf("walked %d keys, want 10", n)
	}
	waitFinalized(t, arena) // the walk is over: the store is the finalizer's again
}

// waitFinalized waits until the store left open on arena has been closed
// by its finalizer: the arena then opens again.
func waitFinalized(t *testing.T, arena string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		s, err := OpenOptions(arena, 24*mib, map[string]string{"slot_bytes": "1MiB"})
		if err == nil {
			s.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned store on %s was never finalized: %v", arena, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
