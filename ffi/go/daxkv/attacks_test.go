package daxkv

// Attacks from outside the package: inputs a caller can pass through the
// exported API only, each listed where it is tried.

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"syscall"
	"testing"
)

// errnoByName holds the Linux values of the errno names the C ABI's
// documentation uses.
var errnoByName = map[string]syscall.Errno{
	"EPERM": syscall.EPERM, "ENOENT": syscall.ENOENT, "EIO": syscall.EIO, "E2BIG": syscall.E2BIG,
	"EAGAIN": syscall.EAGAIN, "ENOMEM": syscall.ENOMEM, "EACCES": syscall.EACCES, "EBUSY": syscall.EBUSY,
	"EEXIST": syscall.EEXIST, "ENODEV": syscall.ENODEV, "EISDIR": syscall.EISDIR, "EINVAL": syscall.EINVAL,
	"ENFILE": syscall.ENFILE, "EMFILE": syscall.EMFILE, "ENOSPC": syscall.ENOSPC, "EDEADLK": syscall.EDEADLK, "EPROTO": syscall.EPROTO,
	"EOVERFLOW": syscall.EOVERFLOW, "ENOTSUP": syscall.ENOTSUP, "ENOBUFS": syscall.ENOBUFS,
	"ESHUTDOWN": syscall.ESHUTDOWN, "ETIMEDOUT": syscall.ETIMEDOUT, "ECANCELED": syscall.ECANCELED,
	"ELOOP": syscall.ELOOP, "ENOTDIR": syscall.ENOTDIR, "ENAMETOOLONG": syscall.ENAMETOOLONG,
}

// documentedErrnoNames is every "-ENAME" the C header and the man pages name.
func documentedErrnoNames(t *testing.T) []string {
	t.Helper()
	top := filepath.Join("..", "..", "..")
	files, err := filepath.Glob(filepath.Join(top, "docs", "man", "*.3"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no man pages under %s: %v", top, err)
	}
	files = append(files, filepath.Join(top, "include", "daxkv.h"))
	re := regexp.MustCompile(`-(E[A-Z][A-Z0-9]+)\b`)
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			seen[string(m[1])] = true
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Bad input: every error code the C ABI documents, daxkv's own codes, and
// codes it does not document (-9999, -4095, the smallest int32). Each
// documented errno must be matched by errors.Is with its syscall.Errno
// (and by no other), daxkv's own by their sentinels, and an unknown code
// must be kept as it was.
func TestAttackEveryDocumentedCodeIsMatched(t *testing.T) {
	names := documentedErrnoNames(t)
	if len(names) < 10 {
		t.Fatalf("the documentation was not read: %v", names)
	}
	for _, name := range names {
		errno, ok := errnoByName[name]
		if !ok {
			t.Fatalf("%s is documented but not in this test's table", name)
		}
		err := error(&Error{Code: -int(errno), Op: "daxkv_op", Message: "detail"})
		if !errors.Is(err, errno) {
			t.Errorf("-%s: errors.Is(err, syscall.%s) is false", name, name)
		}
		if errors.Is(err, syscall.Errno(0xfff)) {
			t.Errorf("-%s matches an unrelated errno", name)
		}
	}
	if !errors.Is(&Error{Code: ECorrupt}, ErrCorrupt) || !errors.Is(&Error{Code: EForeign}, ErrForeign) {
		t.Error("daxkv's own codes are not matched by their sentinels")
	}
	for _, code := range []int{-9999, -4095, -1 << 31} {
		e := &Error{Code: code}
		var got *Error
		if !errors.As(error(e), &got) || got.Code != code {
			t.Errorf("code %d was not kept", code)
		}
	}
}

// Bad input: keys that differ only after a NUL byte, a key of NUL bytes
// only, and keys that are not UTF-8. Each must be its own key: a key cut
// at its first NUL would read and overwrite another key's value.
func TestAttackKeysWithNULAndNonUTF8Bytes(t *testing.T) {
	s := open(t, nil)
	keys := [][]byte{[]byte("a"), []byte("a\x00b"), []byte("a\x00c"), {0}, {0, 0}, {0xff, 0xfe, 0x80}}
	for i, k := range keys {
		if ok, err := s.Put(k, []byte{byte('0' + i)}, false); !ok || err != nil {
			t.Fatalf("put %q: stored=%v err=%v", k, ok, err)
		}
	}
	for i, k := range keys {
		v, found, err := s.Get(k)
		if err != nil || !found || !bytes.Equal(v, []byte{byte('0' + i)}) {
			t.Fatalf("get %q: %q %v %v", k, v, found, err)
		}
	}
}

// Bad input: negative sizes and capacities where the API takes an int.
// Each is refused with ErrInvalid before the library sees a huge size_t.
func TestAttackNegativeSizes(t *testing.T) {
	s := open(t, nil)
	if _, _, err := s.Reserve([]byte("k"), -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("Reserve -1: %v", err)
	}
	if _, _, err := s.ReserveWithMeta([]byte("k"), -1<<62, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("ReserveWithMeta -2^62: %v", err)
	}
	if _, _, err := s.PutManyFrom([][]byte{[]byte("k")}, make([]byte, 8), []int{-1}, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("PutManyFrom len -1: %v", err)
	}
	if _, _, _, err := s.GetManyInto([][]byte{[]byte("k")}, make([]byte, 8), []int{-8}, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("GetManyInto cap -8: %v", err)
	}
}
