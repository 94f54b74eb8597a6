package daxkv

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The logger is process-wide; the package's tests do not run in parallel.
func TestLogger(t *testing.T) {
	defer SetLogger(0, nil)
	type entry struct {
		level LogLevel
		msg   string
	}
	var mu sync.Mutex
	var seen []entry
	collect := func(l LogLevel, m string) {
		mu.Lock()
		seen = append(seen, entry{l, m})
		mu.Unlock()
	}
	snapshot := func() []entry {
		mu.Lock()
		defer mu.Unlock()
		return append([]entry(nil), seen...)
	}
	SetLogger(LogInfo, collect)
	s, err := OpenOptions("mem:", 8*mib, map[string]string{"slot_bytes": "1MiB"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	found := false
	for _, e := range snapshot() {
		found = found || (e.level == LogInfo && strings.Contains(e.msg, "opened store"))
		if e.level > LogInfo {
			t.Fatalf("above the level: %+v", e)
		}
	}
	if !found {
		t.Fatalf("no open message: %+v", snapshot())
	}

	// Messages of the pool, from library calls on other goroutines.
	dir := t.TempDir()
	s = openFiles(t, []string{filepath.Join(dir, "a")}, 4*mib, map[string]string{"hotplug": "1"})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.AddDevice(filepath.Join(dir, "b"), 4*mib); err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	s.Close()
	found = false
	for _, e := range snapshot() {
		found = found || strings.Contains(e.msg, "added")
	}
	if !found {
		t.Fatalf("no add message: %+v", snapshot())
	}

	mu.Lock()
	seen = nil
	mu.Unlock()
	SetLogger(LogErr, collect)
	s, _ = OpenOptions("mem:", 8*mib, map[string]string{"slot_bytes": "1MiB"})
	s.Close()
	if got := snapshot(); len(got) != 0 {
		t.Fatalf("filtered level delivered: %+v", got)
	}

	// A panicking logger cannot unwind through C: recovered.
	SetLogger(LogDebug, func(LogLevel, string) { panic("a logger that panics") })
	s, _ = OpenOptions("mem:", 8*mib, map[string]string{"slot_bytes": "1MiB"})
	s.Put([]byte("k"), []byte("v"), false)
	s.Close()

	SetLogger(LogDebug, nil)
	s, _ = OpenOptions("mem:", 8*mib, map[string]string{"slot_bytes": "1MiB"})
	s.Close()
	if got := snapshot(); len(got) != 0 {
		t.Fatalf("logging off delivered: %+v", got)
	}
	if LogErr.String() != "error" || LogDebug.String() != "debug" {
		t.Fatal(LogErr, LogDebug)
	}
}

// The library lets a log callback call into the store, closing it
// included, and hands a call's messages out on the caller's goroutine
// before the call returns. Bad inputs: a logger that closes the store from
// inside the AddDevice call whose message it receives, and a logger that
// makes another call on the store while Close waits on another goroutine.
func TestLoggerCallsIntoTheStore(t *testing.T) {
	defer SetLogger(0, nil)
	dir := t.TempDir()

	t.Run("Close", func(t *testing.T) {
		s := openHotplug(t, filepath.Join(dir, "a"))
		SetLogger(LogInfo, func(_ LogLevel, m string) {
			if strings.Contains(m, "added") {
				s.Close()
			}
		})
		finishes(t, "Close inside a call's log callback", func() {
			if err := s.AddDevice(filepath.Join(dir, "b"), 4*mib); err != nil {
				t.Errorf("add: %v", err)
			}
		})
		SetLogger(0, nil)
		if _, err := s.Put([]byte("k"), []byte("v"), false); !errors.Is(err, ErrShutdown) {
			t.Fatalf("put after the callback closed the store: %v", err)
		}
		s.mu.Lock()
		freed := s.h == nil
		s.mu.Unlock()
		if !freed {
			t.Fatal("the store was not freed once the call returned")
		}
		// The devices were let go of: they open again.
		s2 := openFiles(t, []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}, 4*mib, nil)
		s2.Close()
	})

	// A message of the store's own event thread (a device drained), with
	// no call of the caller's in flight: Close in the logger freed the store
	// there and then, and daxkv_close waited for the event thread, which
	// waited for the logger. Both hung, and so did any later Close.
	t.Run("Close on an event thread's message", func(t *testing.T) {
		s := openFiles(t, []string{filepath.Join(dir, "e"), filepath.Join(dir, "f")}, 8*mib,
			map[string]string{"hotplug": "1"})
		putN(t, s, "k", 6)
		onF, err := s.AllKeys(filepath.Join(dir, "f"))
		if err != nil || len(onF) == 0 {
			t.Fatalf("keys on the second device: %d, %v", len(onF), err)
		}
		closed := make(chan struct{})
		SetLogger(LogInfo, func(_ LogLevel, m string) {
			if strings.Contains(m, "is drained") {
				s.Close()
				close(closed)
			}
		})
		if _, err := s.RemoveDevice(filepath.Join(dir, "f"), RemoveDrain, false); err != nil {
			t.Fatal(err)
		}
		for _, k := range onF {
			if _, err := s.Remove(k.Key, false); err != nil {
				t.Fatal(err)
			}
		}
		finishes(t, "Close in the logger on the event thread's message", func() { <-closed })
		finishes(t, "Close after it", func() { s.Close() })
		SetLogger(0, nil)
		s2 := openFiles(t, []string{filepath.Join(dir, "e"), filepath.Join(dir, "f")}, 8*mib,
			map[string]string{"hotplug": "1"})
		s2.Close()
	})

	t.Run("call while Close waits", func(t *testing.T) {
		s := openHotplug(t, filepath.Join(dir, "c"))
		closed := make(chan struct{})
		SetLogger(LogInfo, func(_ LogLevel, m string) {
			if !strings.Contains(m, "added") {
				return
			}
			go func() {
				s.Close()
				close(closed)
			}()
			time.Sleep(50 * time.Millisecond) // let Close wait for this call
			if _, err := s.Stats(); err != nil && !errors.Is(err, ErrShutdown) {
				t.Errorf("stats inside the callback: %v", err)
			}
		})
		finishes(t, "a store call in a log callback while Close waits", func() {
			if err := s.AddDevice(filepath.Join(dir, "d"), 4*mib); err != nil {
				t.Errorf("add: %v", err)
			}
			<-closed
		})
		SetLogger(0, nil)
	})
}

// openHotplug opens a store on one file with hotplug=1, with no Close at
// the end of the test: one that deadlocked must not hang the cleanup too.
func openHotplug(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenOptions(path, 4*mib, map[string]string{"slot_bytes": "1MiB", "hotplug": "1"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A logger that ends its goroutine: runtime.Goexit, as t.FailNow, t.Fatal
// and t.SkipNow call. Bad inputs tried: Goexit in the logger during Open
// (the goroutine that called Open died inside the library: Open never
// returned, and the store it opened was never closed); panic(nil) in the
// logger.
func TestLoggerGoexit(t *testing.T) {
	defer SetLogger(0, nil)
	dir := t.TempDir()
	for _, end := range []struct {
		name string
		fn   func()
	}{{"Goexit", runtime.Goexit}, {"panic(nil)", func() { panic(nil) }}} {
		SetLogger(LogInfo, func(LogLevel, string) { end.fn() })
		returned := make(chan error, 1)
		finishes(t, end.name+" in the logger during Open", func() {
			done := make(chan struct{})
			go func() {
				defer close(done)
				s, err := OpenOptions(filepath.Join(dir, end.name), 4*mib, map[string]string{"slot_bytes": "1MiB"})
				if err == nil {
					s.Close()
				}
				returned <- err
			}()
			<-done
		})
		SetLogger(0, nil)
		select {
		case err := <-returned:
			if err != nil {
				t.Fatalf("%s: open: %v", end.name, err)
			}
		default:
			t.Fatalf("%s in the logger: Open never returned to its goroutine", end.name)
		}
	}
}
