package daxkv

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

// The library loads its CUDA runtime once per process, so this one test
// picks it: the suite's fake runtime (libfakecudart, found in the build
// tree next to the library under test) when there is one, else a path
// that does not exist (no runtime).
func TestCUDA(t *testing.T) {
	fake := ""
	if lib := os.Getenv("DAXKV_LIBRARY"); lib != "" {
		p := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(lib))), "tests", "fakecuda", ".libs", "libfakecudart.so")
		if _, err := os.Stat(p); err == nil {
			fake = p
		}
	}
	if fake != "" {
		os.Setenv("DAXKV_TEST_CUDART", fake)
	} else {
		os.Setenv("DAXKV_TEST_CUDART", "/nonexistent/libcudart.so")
	}
	defer os.Unsetenv("DAXKV_TEST_CUDART")
	s := open(t, nil)
	s.Put([]byte("k"), make([]byte, 1000), false)
	host := make([]byte, 4096)
	// Not device memory: a real runtime, and the fake, refuse the copy.
	notDev := []uintptr{uintptr(unsafe.Pointer(&host[0]))}

	if fake == "" {
		if CudaAvailable() {
			t.Fatal("a runtime that does not exist is available")
		}
		if err := s.CudaRegister(false); !errors.Is(err, ErrNotSupported) {
			t.Fatalf("register: %v", err)
		}
		if _, _, _, err := s.GetManyCUDA([][]byte{[]byte("k")}, notDev, []int{4096}, 0, false); !errors.Is(err, ErrNotSupported) {
			t.Fatalf("get: %v", err)
		}
		if _, _, err := s.PutManyCUDA([][]byte{[]byte("k")}, notDev, []int{16}, 0, false); !errors.Is(err, ErrNotSupported) {
			t.Fatalf("put: %v", err)
		}
		return
	}
	if !CudaAvailable() {
		t.Fatal("the fake runtime is not available")
	}
	if err := s.CudaRegister(false); err != nil {
		t.Fatal(err)
	}
	if err := s.CudaRegister(false); err != nil {
		t.Fatalf("again with the same flags: %v", err)
	}
	if err := s.CudaRegister(true); !errors.Is(err, ErrBusy) {
		t.Fatalf("other flags: %v", err)
	}
	lens, errs, n, err := s.GetManyCUDA([][]byte{[]byte("k"), []byte("absent"), []byte("k")}, []uintptr{notDev[0], notDev[0], notDev[0]}, []int{4096, 16, 16}, 0, false)
	if err != nil || n != 0 || !errors.Is(errs[0], ErrIO) || lens[1] != -1 || errs[1] != nil {
		t.Fatalf("get: %v %v %d %v", lens, errs, n, err)
	}
	if !errors.Is(errs[2], ErrBufferTooSmall) || lens[2] != 1000 || errs[2].(*Error).Needed != 1000 {
		t.Fatalf("get into a small buffer: %v %#v", lens, errs[2])
	}
	stored, errs, err := s.PutManyCUDA([][]byte{[]byte("new")}, notDev, []int{16}, 0, false)
	if err != nil || stored[0] || !errors.Is(errs[0], ErrIO) {
		t.Fatalf("put: %v %v %v", stored, errs, err)
	}
	if ok, _ := s.Contains([]byte("new")); ok {
		t.Fatal("a failed GPU put left its key")
	}
	if _, _, _, err := s.GetManyCUDA([][]byte{[]byte("k")}, nil, []int{1}, 0, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("mismatched lengths: %v", err)
	}
	if err := s.CudaUnregister(); err != nil {
		t.Fatal(err)
	}
	if err := s.CudaUnregister(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unregister twice: %v", err)
	}
}
