/*
 * The control interface of the fake CUDA runtime (libfakecudart.so), which
 * the test suite builds and points libdaxkv at with DAXKV_TEST_CUDART. The
 * tests reach these functions with dlsym on the same library.
 *
 * The fake exports the CUDA runtime functions libdaxkv loads. "Device
 * memory" is host memory from its cudaMalloc; copies run with memcpy on one
 * simulated stream thread in submission order (all streams share it, which
 * is a legal CUDA schedule); events and host functions complete in that
 * order. It records every call, checks what a real runtime would reject or
 * what would be unsafe on a real GPU, and injects failures on request.
 * A stream argument must be 0, cudaStreamLegacy (1), cudaStreamPerThread
 * (2) or a stream cudaStreamCreate made and cudaStreamDestroy did not end;
 * any other fails with cudaErrorInvalidResourceHandle (400), as a real
 * runtime's checked handles do.
 */
#ifndef FAKECUDA_H
#define FAKECUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One recorded call. Entries named "exec:memcpy" and "exec:hostfn" are the
 * stream thread executing an operation. */
struct fakecuda_call {
    char fn[32];
    const void *a; /* dst / ptr / event */
    const void *b; /* src / stream */
    size_t len;
    int kind;      /* memcpy kind or registration flags */
    int result;    /* the cudaError_t returned */
};

/* Forget the log and counters, restore the settings from the FAKECUDA_*
 * environment variables (or their defaults), release a held stream, and
 * wait until the stream is idle. Registrations and allocations stay. */
typedef void (*fakecuda_reset_fn)(void);
/* Settings:
 *   devices                  devices reported (default 1; 0: cudaErrorNoDevice)
 *   host_register_supported  cudaDevAttrHostRegisterSupported (default 1)
 *   fail_register_at         the Nth cudaHostRegister from now fails with
 *                            cudaErrorMemoryAllocation (0: none)
 *   fail_memcpy_at           the Nth cudaMemcpyAsync from now fails with
 *                            cudaErrorInvalidValue (0: none)
 *   fail_launch_host_func    every cudaLaunchHostFunc fails (0/1)
 *   fail_host_alloc          every cudaHostAlloc fails (0/1: with
 *                            cudaErrorMemoryAllocation; above 1: with that
 *                            cudaError_t, e.g. 46 cudaErrorDevicesUnavailable)
 *   fail_event_create        every cudaEventCreateWithFlags fails with
 *                            cudaErrorMemoryAllocation (0/1)
 *   fail_event_record        every cudaEventRecord fails with
 *                            cudaErrorInvalidValue (0/1)
 *   fail_event_sync          every cudaEventSynchronize fails with
 *                            cudaErrorInvalidValue, after the wait (0/1)
 *   fail_stream_sync         every cudaStreamSynchronize fails likewise (0/1)
 *   fail_call_at             the Nth call from now of any entry below fails
 *                            as that entry's own setting above makes it
 *                            fail (0: none): cudaGetDevice and
 *                            cudaDeviceGetAttribute (cudaErrorInvalidValue),
 *                            cudaHostRegister, cudaHostAlloc, cudaMemcpyAsync,
 *                            cudaLaunchHostFunc, cudaEventCreateWithFlags,
 *                            cudaEventRecord, cudaEventSynchronize,
 *                            cudaStreamSynchronize
 *   copy_delay_us            the stream thread sleeps before each copy
 *   hold                     1: the stream thread executes nothing until 0
 */
typedef void (*fakecuda_set_fn)(const char *key, long value);
/* Counters and state:
 *   registered_ranges, registered_bytes  live cudaHostRegister ranges
 *   max_register_bytes       the largest single cudaHostRegister since reset
 *   host_allocs              live cudaHostAlloc buffers
 *   device_allocs            live cudaMalloc buffers
 *   events                   live events (created and not destroyed)
 *   sticky_error             this thread's pending error (not cleared)
 *   queued                   operations waiting on the stream
 *   queued_copies            of those, the copies (a host function stays
 *                            queued until it has returned)
 *   calls:NAME               calls of NAME since reset (e.g. calls:cudaMemcpyAsync)
 *   api_calls                calls of the entries fail_call_at counts, since
 *                            reset
 *   pageable_copies          async copies whose host side was neither
 *                            within one registered range nor allocated
 *                            with cudaHostAlloc
 *   violations               unsafe uses seen: CUDA calls from a host
 *                            function, cudaHostUnregister or cudaFreeHost of
 *                            memory a queued copy still uses, IoMemory flags,
 *                            a registration above 64 GiB, registering
 *                            memory that is not mapped, a registered
 *                            range unmapped before its unregistration
 */
typedef long (*fakecuda_get_fn)(const char *key);
/* Copy up to cap recorded calls into out; returns how many were recorded. */
typedef size_t (*fakecuda_log_fn)(struct fakecuda_call *out, size_t cap);
/* Why the last violation was counted ("" if none). */
typedef const char *(*fakecuda_violation_fn)(void);

void fakecuda_reset(void);
void fakecuda_set(const char *key, long value);
long fakecuda_get(const char *key);
size_t fakecuda_log(struct fakecuda_call *out, size_t cap);
const char *fakecuda_violation(void);

#ifdef __cplusplus
}
#endif

#endif /* FAKECUDA_H */
