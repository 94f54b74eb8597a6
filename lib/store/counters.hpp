// The store's event counters, in one table: each row is a field name, its
// Prometheus name and its help text. The table makes the counters below,
// the status JSON's "counters" object (reports.cpp), and, in lib/capi, the
// daxkv_stats fields of the same names and the Prometheus text. Adding a
// counter is a row here, its increments, and its daxkv_stats field
// (docs/hacking.md, "Add a stats counter").
#pragma once

#include <atomic>
#include <cstdint>

#define DAXKV_STORE_COUNTERS(X)                                                                \
    X(hits, "hits_total", "Reads that found their key and gave its bytes.")                   \
    X(misses, "misses_total", "Reads that did not find their key.")                            \
    X(puts, "puts_total", "Committed puts.")                                                   \
    X(puts_existed, "puts_existed_total", "Puts that found the key present or in flight.")    \
    X(puts_failed, "puts_failed_total", "Puts that failed or were refused.")                   \
    X(removes, "removes_total", "Entries removed by callers.")                                 \
    X(evictions, "evictions_total", "Entries evicted.")                                        \
    X(bytes_written, "written_bytes_total", "Value bytes committed.")                          \
    X(bytes_read, "read_bytes_total", "Value bytes copied out.")                               \
    X(verify_failures, "verify_failures_total", "Values that failed their checksum on read.") \
    X(copy_faults, "copy_faults_total", "Copies, slot header and superblock accesses that faulted (SIGBUS); a faulting slot is quarantined.")

namespace daxkv {

// The counters as the store counts them (relaxed increments, read one by
// one: not a snapshot of one instant).
struct Counters {
#define DAXKV_COUNTER_ATOMIC(name, prometheus, help) std::atomic<uint64_t> name{0};
    DAXKV_STORE_COUNTERS(DAXKV_COUNTER_ATOMIC)
#undef DAXKV_COUNTER_ATOMIC
};

// Their values, as a report reads them.
struct CounterValues {
#define DAXKV_COUNTER_VALUE(name, prometheus, help) uint64_t name = 0;
    DAXKV_STORE_COUNTERS(DAXKV_COUNTER_VALUE)
#undef DAXKV_COUNTER_VALUE
};

// Runs a put's argument checks (check returns 0 or a negative code, or
// throws): a put they refuse counts as failed, as one that fails later
// does (a value larger than slot_bytes, a bad key or buffer, unknown flags).
template <typename Fn>
int check_put_arguments(Counters &c, Fn &&check) {
    int rc;
    try {
        rc = check();
    } catch (...) {
        c.puts_failed.fetch_add(1, std::memory_order_relaxed);
        throw;
    }
    if (rc)
        c.puts_failed.fetch_add(1, std::memory_order_relaxed);
    return rc;
}

inline CounterValues read_counters(const Counters &c) noexcept {
    CounterValues v;
#define DAXKV_COUNTER_READ(name, prometheus, help) v.name = c.name.load(std::memory_order_relaxed);
    DAXKV_STORE_COUNTERS(DAXKV_COUNTER_READ)
#undef DAXKV_COUNTER_READ
    return v;
}

} // namespace daxkv
