package daxkv

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

func putN(t *testing.T, s *Store, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if ok, err := s.Put([]byte(fmt.Sprintf("%s%d", prefix, i)), make([]byte, 1000), false); !ok || err != nil {
			t.Fatalf("put %d: %v %v", i, ok, err)
		}
	}
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestForcedRemovalOfADeviceThisThreadLeasesFromIsDeadlock(t *testing.T) {
	// The library knows a lease by the OS thread that acquired it: this
	// goroutine stays on one thread from the lease to the removal.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	s := openFiles(t, []string{a}, 8*mib, map[string]string{"hotplug": "1"})
	putN(t, s, "k", 2)
	if err := s.AddDevice(b, 8*mib); err != nil {
		t.Fatal(err)
	}
	l, err := s.Lease([]byte("k0")) // on a, the only device when it was put
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveDevice(a, RemoveMigrate, true); !errors.Is(err, ErrDeadlock) ||
		!strings.Contains(err.Error(), "lease") {
		l.Release()
		t.Fatalf("forced removal of a leased device: %v", err)
	}
	l.Release()
	if r, err := s.RemoveDevice(a, RemoveMigrate, true); err != nil || r.State != DeviceRemoved {
		t.Fatalf("after the release: %+v %v", r, err)
	}
}

func TestAddMigrateRemove(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	s := openFiles(t, []string{a}, 8*mib, map[string]string{"hotplug": "1"})
	putN(t, s, "k", 4)
	if err := s.AddDevice(b, 8*mib); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDevice(b, 8*mib); err != nil {
		t.Fatalf("same path and size again: %v", err)
	}
	if err := s.AddDevice(b, 4*mib); !errors.Is(err, ErrBusy) {
		t.Fatalf("other size: %v", err)
	}
	j, err := s.PoolStatusJSON()
	if err != nil || !strings.Contains(j, `"num_devices"`) || !strings.Contains(j, b) {
		t.Fatalf("%s %v", j, err)
	}
	r, err := s.RemoveDevice(a, RemoveMigrate, false)
	if err != nil || r.State != DeviceRemoved || r.MovedKeys != 4 || r.MovedBytes != 4000 || r.DeletedKeys != 0 {
		t.Fatalf("%+v %v", r, err)
	}
	for i := 0; i < 4; i++ {
		if ok, _ := s.Contains([]byte(fmt.Sprint("k", i))); !ok {
			t.Fatalf("k%d lost in the migration", i)
		}
	}
	if _, err := s.DescribeDevice(a); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed device: %v", err)
	}
	if _, err := s.RemoveDevice(b, RemoveMigrate, false); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("last device: %v", err)
	}
	s.Pin([]byte("k0"))
	if _, err := s.RemoveDevice(b, RemoveEvict, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("pinned: %v", err)
	}
	if r, err := s.RemoveDevice(b, RemoveEvict, true); err != nil || r.DeletedKeys != 4 {
		t.Fatalf("forced: %+v %v", r, err)
	}
	if got := dirEntries(t, dir); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("files: %v", got)
	}
}

func TestResizeAndDrain(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	s := openFiles(t, []string{a}, 4*mib, map[string]string{"hotplug": "1", "grow_limit": "16MiB"})
	before, _ := s.DescribeDevice(a)
	r, err := s.ResizeDevice(a, 12*mib, ResizeMigrate, false)
	if err != nil || r.NewSizeBytes <= r.OldSizeBytes {
		t.Fatalf("grow: %+v %v", r, err)
	}
	after, _ := s.DescribeDevice(a)
	if after.UsableSlots <= before.UsableSlots || after.PayloadBase != before.PayloadBase {
		t.Fatalf("%+v -> %+v", before, after)
	}
	if _, err := s.ResizeDevice(a, 64*mib, ResizeMigrate, false); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("beyond the layout: %v", err)
	}
	putN(t, s, "k", int(after.UsableSlots))
	if _, err := s.ResizeDevice(a, 2*mib, ResizeEvict, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("evicting shrink without force: %v", err)
	}
	if r, err := s.ResizeDevice(a, 3*mib, ResizeEvict, true); err != nil || r.DeletedKeys == 0 {
		t.Fatalf("forced shrink: %+v %v", r, err)
	}
	if err := s.AddDevice(b, 8*mib); err != nil {
		t.Fatal(err)
	}
	putN(t, s, "on-b", 2)
	onB, _ := s.AllKeys(b)
	if len(onB) == 0 {
		t.Fatal("nothing went to the emptiest device")
	}
	if r, err := s.RemoveDevice(b, RemoveDrain, false); err != nil || r.State != DeviceDraining {
		t.Fatalf("drain: %+v %v", r, err)
	}
	if err := s.WaitDrained(b, 20*time.Millisecond); !errors.Is(err, ErrTimedOut) {
		t.Fatalf("still full: %v", err)
	}
	for _, k := range onB {
		s.Remove(k.Key, false)
	}
	if err := s.WaitDrained(b, -1); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDrained(a, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("not draining: %v", err)
	}
}

// Values past a C int were cut to one: a remove or resize mode of 1<<32|2
// ran as an eviction (deleting entries), Strerror(-22 - 1<<32) described
// -22, and a log level of 1<<32|3 was LogErr. Bad inputs: modes 1<<32|2
// and -1<<40, codes -22-1<<32 and 1<<40.
func TestValuesPastACIntAreNotCutToOne(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	s := openFiles(t, []string{a, b}, 8*mib, map[string]string{"hotplug": "1"})
	defer s.Close()
	putN(t, s, "k", 8)
	for _, mode := range []int{1<<32 | int(RemoveEvict), -1 << 40} {
		if _, err := s.RemoveDevice(b, RemoveMode(mode), true); !errors.Is(err, ErrInvalid) {
			t.Errorf("remove mode %d: %v", mode, err)
		}
		if _, err := s.ResizeDevice(b, mib, ResizeMode(mode), true); !errors.Is(err, ErrInvalid) {
			t.Errorf("resize mode %d: %v", mode, err)
		}
	}
	st, err := s.Stats()
	if err != nil || st.Entries != 8 {
		t.Fatalf("entries after refused changes: %d, %v", st.Entries, err)
	}
	for _, code := range []int{-22 - 1<<32, 1 << 40} {
		if got := Strerror(code); got != "unknown error" {
			t.Errorf("Strerror(%d) = %q", code, got)
		}
	}
	var got []string
	SetLogger(LogLevel(1<<32|int(LogErr)), func(_ LogLevel, m string) { got = append(got, m) })
	defer SetLogger(0, nil)
	s2 := openFiles(t, []string{filepath.Join(dir, "c")}, 4*mib, nil)
	s2.Close()
	SetLogger(0, nil)
	if len(got) == 0 {
		t.Error("a level above every level logged nothing (it was cut to LogErr)")
	}
}

func TestPoolNeedsHotplug(t *testing.T) {
	dir := t.TempDir()
	s := openFiles(t, []string{filepath.Join(dir, "a")}, 4*mib, nil)
	if err := s.AddDevice(filepath.Join(dir, "b"), 4*mib); !errors.Is(err, ErrPermission) {
		t.Fatalf("hotplug off: %v", err)
	}
	if err := s.AddDevice("a\x00b", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NUL: %v", err)
	}
	s2 := openFiles(t, []string{filepath.Join(dir, "c")}, 4*mib, map[string]string{"hotplug": "1"})
	if err := s2.AddDevice(filepath.Join(dir, "tiny"), 64<<10); err == nil {
		t.Fatal("a device below one slot was added")
	}
	if err := s2.AddDevice(filepath.Join(dir, "huge"), 1<<60); err == nil {
		t.Fatal("an exabyte device was added")
	}
	if got := dirEntries(t, dir); fmt.Sprint(got) != "[a c]" {
		t.Fatalf("failed adds left files: %v", got)
	}
	s.Close()
	if err := s.AddDevice(filepath.Join(dir, "d"), 4*mib); !errors.Is(err, ErrShutdown) {
		t.Fatalf("closed store: %v", err)
	}
	if _, err := s.PoolStatusJSON(); !errors.Is(err, ErrShutdown) {
		t.Fatalf("closed store: %v", err)
	}
}

func TestFailedOpensLeaveNoFiles(t *testing.T) {
	dir := t.TempDir()
	tryOpen := func(opts map[string]string, devs map[string]uint64) error {
		cfg, _ := NewConfig()
		defer cfg.Free()
		for k, v := range opts {
			if err := cfg.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		names := make([]string, 0, len(devs))
		for n := range devs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			cfg.AddDevice(filepath.Join(dir, n), devs[n])
		}
		s, err := Open(cfg)
		if err == nil {
			s.Close()
			t.Fatalf("open with %v %v succeeded", opts, devs)
		}
		return err
	}
	tryOpen(map[string]string{"slot_bytes": "4MiB"}, map[string]uint64{"small": mib})
	tryOpen(map[string]string{"slot_bytes": "1MiB"}, map[string]uint64{"huge": 1 << 60})
	tryOpen(map[string]string{"slot_bytes": "1MiB"}, map[string]uint64{"a-good": 4 * mib, "b-bad": 1 << 60})
	tryOpen(nil, map[string]uint64{"noslot": 4 * mib})
	for _, j := range []string{
		fmt.Sprintf(`{"device_path": %q, "max_dax_size_gb": 1000000, "slot_bytes": 1048576}`, filepath.Join(dir, "json")),
		fmt.Sprintf(`{"devices": [{"device_path": %q, "max_dax_size_gb": 0.004}, {"device_path": %q, "max_dax_size_gb": 1000000}], "slot_bytes": 1048576}`,
			filepath.Join(dir, "json-a"), filepath.Join(dir, "json-b")),
	} {
		cfg, err := ConfigFromJSON(j)
		if err != nil {
			t.Fatal(err)
		}
		if s, err := Open(cfg); err == nil {
			s.Close()
			t.Fatalf("open of %s succeeded", j)
		}
		cfg.Free()
	}
	if got := dirEntries(t, dir); len(got) != 0 {
		t.Fatalf("failed opens left files: %v", got)
	}
	// A file that was there before stays.
	os.WriteFile(filepath.Join(dir, "foreign"), bytes4MiB(0x5a), 0o600)
	if err := tryOpen(map[string]string{"slot_bytes": "1MiB"}, map[string]uint64{"foreign": 4 * mib}); !errors.Is(err, ErrForeign) {
		t.Fatalf("foreign: %v", err)
	}
	if got := dirEntries(t, dir); fmt.Sprint(got) != "[foreign]" {
		t.Fatalf("files: %v", got)
	}
}

func bytes4MiB(b byte) []byte {
	out := make([]byte, 4<<20)
	for i := range out {
		out[i] = b
	}
	return out
}

func TestDiscovery(t *testing.T) {
	devs, err := ListDevices()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Kind != KindDevDax || (d.Mode != ModeDevDax && d.Mode != ModeSystemRAM) || !strings.HasPrefix(d.Name, "dax") {
			t.Fatalf("%+v", d)
		}
	}
	m, err := Probe("mem:")
	if err != nil || m.Kind != KindMemory || m.Mode != ModeNone {
		t.Fatalf("%+v %v", m, err)
	}
	f := filepath.Join(t.TempDir(), "arena")
	os.WriteFile(f, make([]byte, 2<<20), 0o600)
	p, err := Probe(f)
	if err != nil || p.Kind != KindFile || p.Size != 2<<20 || p.Path != f || p.Align == 0 {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := Probe(f + ".missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := Probe("a\x00b"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NUL: %v", err)
	}
}

func TestPrometheus(t *testing.T) {
	s := open(t, nil)
	s.Put([]byte("a"), []byte("1"), false)
	s.Put([]byte("b"), []byte("2"), false)
	text, err := s.StatsPrometheus()
	if err != nil || !strings.Contains(text, "# TYPE daxkv_") {
		t.Fatalf("%v", err)
	}
	st, _ := s.Stats()
	// Every sample is labelled with the store's id (the uuid of its first
	// arena), so that several stores never share a series.
	m := regexp.MustCompile(`\ndaxkv_devices\{store="([0-9a-f-]{36})"\} 1\n`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no store label in\n%s", text)
	}
	id := m[1]
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if !strings.HasPrefix(l, "#") && !strings.Contains(l, fmt.Sprintf("{store=%q", id)) {
			t.Fatalf("sample without the store label: %s", l)
		}
	}
	for _, want := range []string{
		fmt.Sprintf("\ndaxkv_entries{store=%q} %d\n", id, st.Entries),
		fmt.Sprintf("\ndaxkv_puts_total{store=%q} %d\n", id, st.Puts),
		fmt.Sprintf("\ndaxkv_leases_active{store=%q} 0\n", id),
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("%q not in\n%s", want, text)
		}
	}
	if !regexp.MustCompile(`\ndaxkv_device_slots\{store="` + id + `",device="[^"]*/arena"\} \d+\n`).MatchString(text) {
		t.Fatalf("no per-device gauge labelled with store and device in\n%s", text)
	}
	s.Close()
	if _, err := s.StatsPrometheus(); !errors.Is(err, ErrShutdown) {
		t.Fatalf("closed: %v", err)
	}
}

// WaitDrained's timeout as C gets it. Bad inputs tried: the largest
// Duration and durations within a millisecond of it (rounding up by adding
// first wrapped them negative: a wait without a limit), a nanosecond, zero,
// -1, the smallest Duration, and a Duration just past the largest C int of
// milliseconds.
func TestWaitMillis(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{math.MaxInt64, math.MaxInt32},
		{math.MaxInt64 - 1, math.MaxInt32},
		{math.MaxInt64 - time.Millisecond + 2, math.MaxInt32},
		{time.Duration(math.MaxInt32)*time.Millisecond + 1, math.MaxInt32},
		{time.Duration(math.MaxInt32) * time.Millisecond, math.MaxInt32},
		{time.Nanosecond, 1},
		{time.Millisecond, 1},
		{time.Millisecond + 1, 2},
		{0, 0},
		{-1, -1},
		{math.MinInt64, -1},
	} {
		if got := waitMillis(c.d); got != c.want {
			t.Errorf("waitMillis(%d) = %d, want %d", int64(c.d), got, c.want)
		}
	}
}
