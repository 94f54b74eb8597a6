package daxkv

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
