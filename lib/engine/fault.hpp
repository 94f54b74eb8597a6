// Copy faults: what can make one copy of a batch fail, and how the engine
// finds out.
//
// - SIGBUS recovery (config sigbus=handle): a truncated file arena, or
//   poisoned media on real DAX, raises SIGBUS on the load that touches it.
//   A process-wide handler (installed once, on the caller's request) turns
//   a SIGBUS whose address lies in a guarded range of the copy running on
//   the faulting thread into a jump back to that copy's recovery point; the
//   copy reports kMediaFault (a load from its source faulted) or
//   kMediaFaultWriting (a store into its destination did). Any other SIGBUS
//   is passed on to the handler that was installed before ours (or the
//   default action): a fault in a caller's buffer is the caller's.
// - A fault injector for tests: a hook the engine consults before every
//   chunk, which can delay the chunk (a slow worker) or fail it (a failing
//   worker). Compiled in, but inert until a test installs a hook.
#pragma once

#include <atomic>
#include <csetjmp>
#include <cstddef>
#include <cstdint>

#include "platform/copy.hpp"

namespace daxkv {
namespace engine {

struct CopyOp;

// Result of a copy whose source could not be read (SIGBUS: media error or
// a truncated file). The store reports it as -EIO and quarantines the slot.
constexpr int kMediaFault = -133; // -EHWPOISON
// Result of a copy whose destination could not be written (the same causes,
// on a copy into the arena). The store reports it as -EIO and quarantines
// the slot it was writing.
constexpr int kMediaFaultWriting = -134;

// ---------------------------------------------------------------------------
// SIGBUS recovery

// Install the process-wide SIGBUS handler (idempotent, thread-safe). The
// handler stays installed for the life of the process: it only acts on
// faults inside a guarded copy and chains every other one. Throws
// Error(-errno) if sigaction fails.
void install_sigbus_handler();
bool sigbus_handler_installed() noexcept;

// The sides of a copy stream a guard covers (a bit set; 0: none).
constexpr uint8_t kGuardSource = 1;
constexpr uint8_t kGuardDest = 2;

// platform::copy_streams() of count streams, stream i guarded on the sides
// guard[i] names: a SIGBUS on a load from a guarded source, or a store into
// a guarded destination, fails that stream alone instead of killing the
// process. codes[i] gets kMediaFault or kMediaFaultWriting for a stream
// that faulted, 0 for one copied whole (every other is); returns how many
// faulted. After a fault every other stream is copied again on its own
// (the streams' ranges must not overlap). Only meaningful once
// install_sigbus_handler() ran; without it a fault takes the default
// action.
size_t guarded_copy_streams(const platform::CopyStream *streams, const uint8_t *guard,
                            size_t count, int *codes) noexcept;

// fn(arg) under the same guard, for reads of [lo, lo+n) that copy nothing
// (a checksum computed in place): kMediaFault when a load from that range
// faulted and cut fn short, 0 when fn returned. fn must hold nothing that
// needs destroying: a fault leaves it by a jump.
int guarded_call(const void *lo, size_t n, void (*fn)(void *arg), void *arg) noexcept;

// ---------------------------------------------------------------------------
// Fault injection (tests only)

// Consulted before each chunk of each op; chunk is [offset, offset+len) of
// op. Returns 0 to let the chunk run (after any delay it chose), or a
// negative code to fail the op without copying that chunk. Called from the
// worker threads and the calling thread concurrently: it must be
// thread-safe.
class FaultHook {
public:
    virtual ~FaultHook() = default;
    virtual int before_chunk(const CopyOp &op, size_t offset, size_t len) noexcept = 0;
};

namespace testing {
// Install (or, with nullptr, remove) the process-wide hook. The caller keeps
// the hook alive until it is removed and no batch is running.
void set_fault_hook(FaultHook *hook) noexcept;
} // namespace testing

// The installed hook, or null (one relaxed load: the cost in production).
FaultHook *fault_hook() noexcept;

} // namespace engine
} // namespace daxkv
