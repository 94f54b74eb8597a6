//! GPU transfers. The library loads the CUDA runtime itself on first use
//! (it never links it): without a runtime these calls fail with
//! [`ErrorKind::NotSupported`](crate::ErrorKind::NotSupported), without a
//! GPU with [`ErrorKind::NoDevice`](crate::ErrorKind::NoDevice), and
//! everything else works unchanged. Device pointers and streams come from
//! whatever CUDA binding the program uses; they cross this API as raw
//! pointers, so the batch calls are `unsafe`.

use crate::{check, items_for, libc_errno, sys, Error, ItemResult, Result, Store};
use std::os::raw::c_void;

/// True if a CUDA runtime is loaded and sees at least one GPU.
pub fn cuda_available() -> bool {
    unsafe { sys::daxkv_cuda_available() == 1 }
}

/// One item of a GPU batch: a key and a buffer in device memory.
#[derive(Debug, Clone, Copy)]
pub struct CudaItem<'k> {
    pub key: &'k [u8],
    /// Device pointer: the source of a put, the destination of a get.
    pub data: *mut c_void,
    /// Bytes to put, or the destination's capacity.
    pub len: usize,
}

impl Store {
    /// Page-lock the arena mappings with cudaHostRegister so GPU copies go
    /// straight between GPU and arena (`mapped`: Portable|Mapped instead of
    /// Default). On failure nothing stays registered and the staged path
    /// keeps working. Registering again with the same flags is Ok.
    pub fn cuda_register(&self, mapped: bool) -> Result<()> {
        let flags = if mapped { sys::DAXKV_CUDA_MAPPED } else { 0 };
        check(unsafe { sys::daxkv_cuda_register(self.h(), flags) }).map(|_| ())
    }

    /// Unregister the arenas, after GPU reads still copying out of them.
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) if not registered.
    pub fn cuda_unregister(&self) -> Result<()> {
        check(unsafe { sys::daxkv_cuda_unregister(self.h()) }).map(|_| ())
    }

    /// [`Store::get_many_into`] into GPU memory: per item Ok(Some(len)) hit,
    /// Ok(None) miss, or its error (a copy CUDA refused is Io). The bytes
    /// arrive in `stream` order: synchronize the stream before reading them.
    ///
    /// # Safety
    /// Each `data` must be a device pointer valid for `len` bytes until the
    /// stream has completed the copies, and `stream` a valid
    /// `cudaStream_t` (or null: the default stream) of the runtime the
    /// library loaded.
    pub unsafe fn get_many_cuda(&self, items: &[CudaItem<'_>], stream: *mut c_void, prefix: bool)
        -> Result<Vec<ItemResult<Option<usize>>>> {
        let mut it = cuda_items(items);
        let flags = if prefix { sys::DAXKV_PREFIX } else { 0 };
        let n = check(sys::daxkv_get_batch_cuda(self.h(), it.as_mut_ptr(), it.len(), stream, flags))? as usize;
        let take = if prefix { n } else { it.len() };
        Ok(it[..take]
            .iter()
            .map(|i| match i.status {
                0 => Ok(Some(i.len)),
                s if s == -libc_errno::ENOENT => Ok(None),
                s => Err(Error::item(s).with_needed(i.len)),
            })
            .collect())
    }

    /// [`Store::put_many`] from GPU memory: per item Ok(true) stored,
    /// Ok(false) already present (and `replace` false), or its error. The
    /// copies are ordered after the work already on `stream`; the call
    /// returns once they are done.
    ///
    /// # Safety
    /// As [`Store::get_many_cuda`]: device pointers valid for `len` bytes,
    /// and a valid stream or null.
    pub unsafe fn put_many_cuda(&self, items: &[CudaItem<'_>], stream: *mut c_void, replace: bool)
        -> Result<Vec<ItemResult<bool>>> {
        let mut it = cuda_items(items);
        let flags = if replace { sys::DAXKV_REPLACE } else { 0 };
        check(sys::daxkv_put_batch_cuda(self.h(), it.as_mut_ptr(), it.len(), stream, flags))?;
        Ok(it.iter().map(|i| if i.status >= 0 { Ok(i.status == 0) } else { Err(Error::item(i.status)) }).collect())
    }
}

fn cuda_items(items: &[CudaItem<'_>]) -> Vec<sys::daxkv_item> {
    let keys: Vec<&[u8]> = items.iter().map(|i| i.key).collect();
    let mut it = items_for(&keys);
    for (d, s) in it.iter_mut().zip(items) {
        d.data = s.data;
        d.len = s.len;
    }
    it
}
