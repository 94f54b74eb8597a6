package daxkv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The library reads DAXKV_STATS_DIR at every open, close and peek, from
// whichever thread makes the call: the variable is set once here, before
// any test (and any store) runs, to a directory of this run's own, so that
// no store of these tests publishes into the shared /dev/shm and nothing
// changes the environment while C code may read it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "daxkv-go-stats-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("DAXKV_STATS_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// statsDirEntries are the names in the statistics directory.
func statsDirEntries(t *testing.T) []string {
	t.Helper()
	es, err := os.ReadDir(os.Getenv("DAXKV_STATS_DIR"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestPeek(t *testing.T) {
	dir := t.TempDir()
	arena := filepath.Join(dir, "arena")
	s, err := OpenOptions(arena, 24*mib, map[string]string{"slot_bytes": "1MiB", "stats_interval": "10"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	own, _ := s.Stats()

	// Published at open already.
	st, err := StatsPeek(arena)
	if err != nil || st.SlotsTotal != own.SlotsTotal || st.SlotBytes != 1<<20 || st.Devices != 1 {
		t.Fatalf("%+v %v", st, err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if ok, err := s.Put([]byte(k), []byte("value"), false); !ok || err != nil {
			t.Fatalf("put %s: %v %v", k, ok, err)
		}
	}
	// A bounded wait for the next publication.
	deadline := time.Now().Add(10 * time.Second)
	for st.Puts < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the store did not publish within 10 s: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
		if st, err = StatsPeek(arena); err != nil {
			t.Fatal(err)
		}
	}
	if st.Puts != 3 || st.Entries != 3 {
		t.Fatalf("%+v", st)
	}

	text, err := StatusPeek(arena)
	if err != nil {
		t.Fatal(err)
	}
	var status struct {
		Devices []struct {
			Path string `json:"path"`
		} `json:"devices"`
		Publisher struct {
			Pid       int    `json:"pid"`
			StoreID   string `json:"store_id"`
			Published uint64 `json:"published_unix_ns"`
		} `json:"publisher"`
	}
	if err := json.Unmarshal([]byte(text), &status); err != nil {
		t.Fatalf("%v: %s", err, text)
	}
	pub := status.Publisher
	if pub.Pid != os.Getpid() || len(pub.StoreID) != 36 || pub.Published == 0 {
		t.Fatalf("publisher %+v", pub)
	}
	if len(status.Devices) != 1 || status.Devices[0].Path != arena {
		t.Fatalf("devices %+v", status.Devices)
	}

	// The same exposition as the store's own, labelled with the same id.
	prom, err := StatsPrometheusPeek(arena)
	if err != nil {
		t.Fatal(err)
	}
	if len(prom) <= 4096 {
		t.Fatalf("the text should outgrow the first buffer (%d bytes)", len(prom))
	}
	for _, want := range []string{
		fmt.Sprintf("\ndaxkv_puts_total{store=%q} 3\n", pub.StoreID),
		fmt.Sprintf("\ndaxkv_slots{store=%q} %d\n", pub.StoreID, own.SlotsTotal),
		fmt.Sprintf("\ndaxkv_device_slots{store=%q,device=%q} ", pub.StoreID, arena),
	} {
		if !strings.Contains(prom, want) {
			t.Fatalf("%q not in\n%s", want, prom)
		}
	}
	if own, _ := s.StatsPrometheus(); !strings.Contains(own, fmt.Sprintf("\ndaxkv_puts_total{store=%q} 3\n", pub.StoreID)) {
		t.Fatalf("the store's own text has another id:\n%s", own)
	}

	// A path no store has open, a path that does not exist.
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	peekAll := func(path string) []error {
		_, e1 := StatsPeek(path)
		_, e2 := StatusPeek(path)
		_, e3 := StatsPrometheusPeek(path)
		return []error{e1, e2, e3}
	}
	for _, p := range []string{plain, filepath.Join(dir, "missing")} {
		for i, err := range peekAll(p) {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s, call %d: %v", p, i, err)
			}
		}
	}
	// Bad input: an empty path, "mem:" (no other process can name it), a NUL.
	for _, p := range []string{"", "mem:", "a\x00b"} {
		for i, err := range peekAll(p) {
			var e *Error
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &e) || e.Message == "" {
				t.Fatalf("%q, call %d: %v", p, i, err)
			}
		}
	}

	// The page goes with the store.
	s.Close()
	for i, err := range peekAll(arena) {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("after close, call %d: %v", i, err)
		}
	}
	if left := statsDirEntries(t); len(left) != 0 {
		t.Fatalf("pages left behind: %v", left)
	}

	// stats_interval 0 publishes nothing.
	s0, err := OpenOptions(arena, 24*mib, map[string]string{"slot_bytes": "1MiB", "stats_interval": "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s0.Close()
	if _, err := StatsPeek(arena); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stats_interval 0: %v", err)
	}
}
