//! GPU calls without a CUDA runtime: clean errors, everything else works.
//! Its own binary: the library loads the runtime once per process.

mod common;

use common::*;
use daxkv::{CudaItem, ErrorKind};

#[test]
fn gpu_calls_without_a_runtime() {
    // The suite's way to choose the runtime: a path that does not exist.
    std::env::set_var("DAXKV_TEST_CUDART", "/nonexistent/libcudart.so");
    assert!(!daxkv::cuda_available());
    let s = open_mem(&[]);
    s.put(b"k", b"v", false).unwrap();
    let unavailable = |k: ErrorKind| matches!(k, ErrorKind::NotSupported | ErrorKind::NoDevice);
    assert!(unavailable(s.cuda_register(false).unwrap_err().kind()));
    let e = s.cuda_unregister().unwrap_err();
    assert!(unavailable(e.kind()) || e.kind() == ErrorKind::NotFound, "{e}");
    let items = [CudaItem { key: b"k", data: std::ptr::null_mut(), len: 16 }];
    let e = unsafe { s.get_many_cuda(&items, std::ptr::null_mut(), false) }.unwrap_err();
    assert!(unavailable(e.kind()), "{e}");
    let e = unsafe { s.put_many_cuda(&items, std::ptr::null_mut(), false) }.unwrap_err();
    assert!(unavailable(e.kind()), "{e}");
    assert_eq!(s.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}
