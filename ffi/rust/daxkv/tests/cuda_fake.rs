//! GPU batches end to end against the test suite's fake CUDA runtime
//! (libfakecudart: "device memory" is host memory from its cudaMalloc),
//! found in the build tree next to the library under test. Skipped when
//! the build tree has none. Its own binary: the runtime loads once.

mod common;

use common::*;
use daxkv::{CudaItem, ErrorKind};
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::path::PathBuf;

extern "C" {
    fn dlopen(file: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(h: *mut c_void, name: *const c_char) -> *mut c_void;
}

type Malloc = unsafe extern "C" fn(*mut *mut c_void, usize) -> c_int;
type Free = unsafe extern "C" fn(*mut c_void) -> c_int;
type Memcpy = unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int) -> c_int;
type Sync = unsafe extern "C" fn(*mut c_void) -> c_int;
const H2D: c_int = 1;
const D2H: c_int = 2;

fn fake_runtime() -> Option<PathBuf> {
    // DAXKV_LIBRARY: <build>/lib/.libs/libdaxkv.so.0, set by the suite.
    let lib = PathBuf::from(std::env::var_os("DAXKV_LIBRARY")?);
    let build = lib.parent()?.parent()?.parent()?;
    Some(build.join("tests/fakecuda/.libs/libfakecudart.so")).filter(|p| p.is_file())
}

unsafe fn sym<T>(h: *mut c_void, name: &str) -> T {
    let n = CString::new(name).unwrap();
    let p = dlsym(h, n.as_ptr());
    assert!(!p.is_null(), "{name} not in the fake runtime");
    std::mem::transmute_copy(&p)
}

#[test]
fn gpu_batches_with_the_fake_runtime() {
    let fake = match fake_runtime() {
        Some(fake) => fake,
        None => {
            eprintln!("no fake CUDA runtime in the build tree: skipped");
            return;
        }
    };
    std::env::set_var("DAXKV_TEST_CUDART", &fake);
    let path = CString::new(fake.to_str().unwrap()).unwrap();
    let h = unsafe { dlopen(path.as_ptr(), 2 /* RTLD_NOW */) };
    assert!(!h.is_null());
    let (malloc, free, memcpy, sync): (Malloc, Free, Memcpy, Sync) = unsafe {
        (sym(h, "cudaMalloc"), sym(h, "cudaFree"), sym(h, "cudaMemcpy"), sym(h, "cudaStreamSynchronize"))
    };
    assert!(daxkv::cuda_available());

    let s = open_mem(&[]);
    let vals: Vec<Vec<u8>> = (0..3).map(|i| vec![i as u8 + 1; 1000 * (i + 1)]).collect();
    let mut dev: Vec<*mut c_void> = Vec::new();
    for v in &vals {
        let mut p = std::ptr::null_mut();
        assert_eq!(unsafe { malloc(&mut p, 4096) }, 0);
        assert_eq!(unsafe { memcpy(p, v.as_ptr().cast(), v.len(), H2D) }, 0);
        dev.push(p);
    }
    let keys: Vec<String> = (0..3).map(|i| format!("gpu{i}")).collect();
    let items: Vec<CudaItem> =
        (0..3).map(|i| CudaItem { key: keys[i].as_bytes(), data: dev[i], len: vals[i].len() }).collect();
    for round in 0..2 {
        if round == 1 {
            s.cuda_register(false).unwrap(); // the direct path; round 0 was staged
            s.cuda_register(false).unwrap(); // again, same flags: fine
            assert_eq!(s.cuda_register(true).unwrap_err().kind(), ErrorKind::Busy);
        }
        let stored = unsafe { s.put_many_cuda(&items, std::ptr::null_mut(), true) }.unwrap();
        assert!(stored.iter().all(|r| *r.as_ref().unwrap()), "{stored:?}");
        for (k, v) in keys.iter().zip(&vals) {
            assert_eq!(&s.get(k.as_bytes()).unwrap().unwrap(), v);
        }
        // Back into zeroed device buffers.
        let zero = vec![0u8; 4096];
        for p in &dev {
            unsafe { memcpy(*p, zero.as_ptr().cast(), 4096, H2D) };
        }
        let mut get = items.clone();
        for g in get.iter_mut() {
            g.len = 4096;
        }
        get.push(CudaItem { key: b"absent", data: dev[0], len: 16 });
        let got = unsafe { s.get_many_cuda(&get, std::ptr::null_mut(), false) }.unwrap();
        unsafe { sync(std::ptr::null_mut()) };
        assert_eq!(got.iter().map(|r| *r.as_ref().unwrap()).collect::<Vec<_>>(),
            vec![Some(1000), Some(2000), Some(3000), None]);
        for (p, v) in dev.iter().zip(&vals) {
            let mut back = vec![0u8; v.len()];
            unsafe { memcpy(back.as_mut_ptr().cast(), *p, v.len(), D2H) };
            assert_eq!(&back, v);
        }
    }
    s.cuda_unregister().unwrap();
    assert_eq!(s.cuda_unregister().unwrap_err().kind(), ErrorKind::NotFound);

    // A host pointer where a device one belongs: CUDA refuses the copy,
    // that item fails alone.
    let mut host = vec![0u8; 4096];
    let bad = [
        CudaItem { key: b"gpu0", data: host.as_mut_ptr().cast(), len: 4096 },
        CudaItem { key: b"gpu1", data: dev[1], len: 4096 },
        CudaItem { key: b"gpu2", data: dev[2], len: 16 },
    ];
    let got = unsafe { s.get_many_cuda(&bad, std::ptr::null_mut(), false) }.unwrap();
    unsafe { sync(std::ptr::null_mut()) };
    assert_eq!(got[0].as_ref().unwrap_err().kind(), ErrorKind::Io);
    assert_eq!(got[0].as_ref().unwrap_err().needed(), None);
    assert_eq!(got[1].as_ref().unwrap(), &Some(2000));
    // Too small: the length it needs, as get_many_into gives it.
    assert_eq!(got[2].as_ref().unwrap_err().kind(), ErrorKind::BufferTooSmall);
    assert_eq!(got[2].as_ref().unwrap_err().needed(), Some(3000));
    drop(s);
    for p in dev {
        unsafe { free(p) };
    }
}
