package daxkv

// GPU transfers. The library loads the CUDA runtime itself on first use
// (it never links it): without a runtime these calls return
// ErrNotSupported, without a GPU ErrNoDevice, and everything else works
// unchanged. Device pointers and streams come from whatever CUDA binding
// the program uses and cross this API as uintptr.

/*
#include "dk.h"

static int dk_cuda_register(daxkv_store *s, unsigned f, char **msg) {
	int rc = daxkv_cuda_register(s, f);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_cuda_unregister(daxkv_store *s, char **msg) {
	int rc = daxkv_cuda_unregister(s);
	*msg = dk_msg(rc);
	return rc;
}
// keys packed as in dk_batch; dev[i]/lens[i] the device buffers.
static int dk_cuda_batch(int get, daxkv_store *s, const char *keys, const size_t *klens,
                         const uintptr_t *dev, size_t *lens, int *status, size_t n,
                         uintptr_t stream, unsigned flags, char **msg) {
	*msg = NULL;
	daxkv_item *it = calloc(n ? n : 1, sizeof *it);
	if (!it) {
		*msg = strdup("out of memory");
		return -ENOMEM;
	}
	size_t ko = 0;
	for (size_t i = 0; i < n; i++) {
		it[i].key = keys + ko;
		it[i].key_len = klens[i];
		ko += klens[i];
		it[i].data = (void *)dev[i];
		it[i].len = lens[i];
	}
	int rc = get ? daxkv_get_batch_cuda(s, it, n, (void *)stream, flags)
	             : daxkv_put_batch_cuda(s, it, n, (void *)stream, flags);
	*msg = dk_msg(rc);
	for (size_t i = 0; i < n; i++) {
		status[i] = it[i].status;
		lens[i] = it[i].len;
	}
	free(it);
	return rc;
}
*/
import "C"

import "unsafe"

// CudaAvailable reports whether a CUDA runtime is loaded and sees a GPU.
func CudaAvailable() bool { return C.daxkv_cuda_available() == 1 }

// CudaRegister page-locks the arena mappings with cudaHostRegister, so GPU
// copies go straight between GPU and arena (mapped: Portable|Mapped instead
// of Default). On failure nothing stays registered and the staged path
// keeps working. Registering again with the same flags is fine.
func (s *Store) CudaRegister(mapped bool) error {
	h, err := s.enter()
	if err != nil {
		return err
	}
	defer s.leave()
	f := C.unsigned(0)
	if mapped {
		f = C.DAXKV_CUDA_MAPPED
	}
	var msg *C.char
	if rc := C.dk_cuda_register(h, f, &msg); rc < 0 {
		return mkerr(rc, "daxkv_cuda_register", msg)
	}
	return nil
}

// CudaUnregister unregisters the arenas, after GPU reads still copying out
// of them. ErrNotFound if they are not registered.
func (s *Store) CudaUnregister() error {
	h, err := s.enter()
	if err != nil {
		return err
	}
	defer s.leave()
	var msg *C.char
	if rc := C.dk_cuda_unregister(h, &msg); rc < 0 {
		return mkerr(rc, "daxkv_cuda_unregister", msg)
	}
	return nil
}

func (s *Store) cudaBatch(get bool, op string, keys [][]byte, dev []uintptr, lens []int, stream uintptr, flags C.unsigned) ([]C.int, []C.size_t, int, error) {
	if len(keys) != len(dev) || len(keys) != len(lens) {
		return nil, nil, 0, invalid(op, "keys, device pointers and lengths differ in length")
	}
	n := len(keys)
	p := packKeys(keys)
	klens := append(p.klens, 0) // a valid address even for n == 0
	cdev := make([]C.uintptr_t, n+1)
	cl := make([]C.size_t, n+1)
	for i := range keys {
		if lens[i] < 0 {
			return nil, nil, 0, invalid(op, "negative length")
		}
		cdev[i], cl[i] = C.uintptr_t(dev[i]), C.size_t(lens[i])
	}
	status := make([]C.int, n+1)
	h, err := s.enter()
	if err != nil {
		return nil, nil, 0, err
	}
	defer s.leave()
	g := C.int(0)
	if get {
		g = 1
	}
	var msg *C.char
	kp := (*C.char)(unsafe.Pointer(&p.keys[:1][0]))
	rc := C.dk_cuda_batch(g, h, kp, &klens[0], &cdev[0], &cl[0], &status[0], C.size_t(n), C.uintptr_t(stream), flags, &msg)
	if rc < 0 {
		return nil, nil, 0, mkerr(rc, op, msg)
	}
	return status[:n], cl[:n], int(rc), nil
}

// GetManyCUDA is GetManyInto into GPU memory: dev[i] is a device buffer of
// caps[i] bytes. Per item the value length, or -1 for a miss; errs holds
// other failures (a copy CUDA refused is ErrIO), with the lengths as
// GetManyInto gives them. The bytes arrive in
// stream order (0: the default stream): synchronize it before use. The
// buffers must stay valid until the stream has done the copies.
func (s *Store) GetManyCUDA(keys [][]byte, dev []uintptr, caps []int, stream uintptr, prefix bool) (lens []int, errs []error, n int, err error) {
	var f C.unsigned
	if prefix {
		f = C.DAXKV_PREFIX
	}
	st, cl, n, err := s.cudaBatch(true, "daxkv_get_batch_cuda", keys, dev, caps, stream, f)
	if err != nil {
		return nil, nil, 0, err
	}
	lens = make([]int, len(keys))
	errs = make([]error, len(keys))
	for i, v := range st {
		lens[i] = -1
		switch {
		case v == 0:
			lens[i] = int(cl[i])
		case v == -C.ENOBUFS:
			lens[i] = int(cl[i])
			errs[i] = withNeeded(itemErr("daxkv_get_batch_cuda", v), cl[i])
		case v != -C.ENOENT:
			errs[i] = itemErr("daxkv_get_batch_cuda", v)
		}
	}
	return lens, errs, n, nil
}

// PutManyCUDA is PutMany from GPU memory: dev[i] holds lens[i] bytes. The
// copies are ordered after the work already on stream; the call returns
// once they are done. Per item: stored (false: already present) and its
// error.
func (s *Store) PutManyCUDA(keys [][]byte, dev []uintptr, lens []int, stream uintptr, replace bool) ([]bool, []error, error) {
	var f C.unsigned
	if replace {
		f = C.DAXKV_REPLACE
	}
	st, _, _, err := s.cudaBatch(false, "daxkv_put_batch_cuda", keys, dev, lens, stream, f)
	if err != nil {
		return nil, nil, err
	}
	stored := make([]bool, len(keys))
	errs := make([]error, len(keys))
	for i, v := range st {
		stored[i] = v == 0
		errs[i] = itemErr("daxkv_put_batch_cuda", v)
	}
	return stored, errs, nil
}
