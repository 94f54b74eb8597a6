// GPU transfers of a store: registration of the arenas with CUDA, and the
// batch calls between device memory and the arenas.
//
// Two paths. When the arenas are registered (cuda_register), the DMA engine
// reads and writes the mapped arena directly with cudaMemcpyAsync. Otherwise
// the staged path goes through pinned staging buffers: the copy workers fill
// (or drain) one buffer while the DMA of the other runs.
//
// Lifetimes. A read on the direct path returns as soon as its copies are
// enqueued; the entries stay borrowed (as leases are) until the stream has
// passed them, which a host function launched behind the copies reports, so
// neither eviction nor removal frees bytes a DMA still reads. The host
// function holds no reference to the store: ~Store waits for every one of
// them before it unregisters and unmaps the arenas, so the store can never be
// destroyed on a CUDA thread (where no CUDA call is allowed). A write is
// reserved first, copied, and committed only after the copies completed.
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <shared_mutex>

#include "arena/checksum.hpp"
#include "cuda/registration.hpp"
#include "cuda/runtime.hpp"
#include "cuda/staging.hpp"
#include "internal/error.hpp"
#include "internal/util.hpp"
#include "store/store.hpp"

namespace daxkv {
namespace cuda {

struct StoreState {
    StoreState(const Runtime &r, size_t staging_bytes) : rt(r), pool(r, staging_bytes) {}
    ~StoreState() {
        wait_idle();
        reg.reset(); // unregister before the arenas are unmapped
    }

    void begin_pending() {
        std::lock_guard<std::mutex> g(m);
        ++pending;
    }
    void end_pending() noexcept {
        // Notify under the lock: a waiter may destroy this object as soon as
        // it sees pending reach 0.
        std::lock_guard<std::mutex> g(m);
        if (--pending == 0)
            cv.notify_all();
    }
    void wait_idle() {
        std::unique_lock<std::mutex> g(m);
        cv.wait(g, [this] { return pending == 0; });
    }

    const Runtime &rt;
    StagingPool pool;
    // Shared by a transfer while it picks its path and enqueues its copies;
    // exclusive for registering and unregistering.
    std::shared_mutex reg_m;
    std::unique_ptr<HostRegistration> reg;
    unsigned reg_flags = 0;
    // Direct reads whose DMA has not completed yet.
    std::mutex m;
    std::condition_variable cv;
    size_t pending = 0;
};

void StoreStateDeleter::operator()(StoreState *s) const noexcept { delete s; }

namespace {

// The entries a direct read borrowed, released by a host function once the
// stream has passed the copies.
struct ReadBatch {
    StoreState *state = nullptr;
    std::function<void()> release; // ends every borrow (no CUDA call)
};

void read_batch_done(void *p) noexcept {
    std::unique_ptr<ReadBatch> b(static_cast<ReadBatch *>(p));
    StoreState *s = b->state;
    b->release();
    b.reset();
    s->end_pending(); // last: ~Store may proceed from here
}

// A piece of a value that fits one staging buffer.
struct Piece {
    size_t value;  // index into the caller's list of values
    uint64_t off;  // offset in the value
    uint64_t len;
    size_t staged; // offset in the staging buffer
};
using Fill = std::vector<Piece>;

// Cut values into fills of one staging buffer each. Small values are packed
// together; a value is split only at multiples of the checksum block, so that
// each piece's block hashes land at their place in the value's hash array.
std::vector<Fill> plan_fills(const std::vector<uint64_t> &lens, size_t cap) {
    std::vector<Fill> fills;
    size_t used = cap;
    for (size_t v = 0; v < lens.size(); ++v) {
        uint64_t off = 0;
        while (off < lens[v]) {
            uint64_t rem = lens[v] - off, space = cap - used;
            uint64_t take = rem <= space ? rem : round_down(space, arena::kHashBlock);
            if (take == 0) {
                fills.emplace_back();
                used = 0;
                continue;
            }
            fills.back().push_back(Piece{v, off, take, used});
            off += take;
            // Keep the next piece cache-line aligned in the buffer.
            used = static_cast<size_t>(std::min<uint64_t>(cap, round_up(used + take, 64)));
        }
    }
    return fills;
}

const Runtime &require_runtime() {
    const Runtime *rt = runtime();
    if (!rt)
        fail(-ENOTSUP, "CUDA is not available: %s", unavailable_reason().c_str());
    if (rt->devices <= 0)
        fail(-ENODEV, "CUDA is not usable: %s", unavailable_reason().c_str());
    return *rt;
}

// The error of an item whose copy failed, with the stream's sticky error
// cleared so the next item (and the caller) start clean.
int copy_failed(const Runtime &rt, size_t i, const char *what, Error e) {
    std::string d = rt.describe(what, e);
    rt.GetLastError();
    return set_error(-EIO, "item %zu: %s", i, d.c_str());
}

// One copy between device memory and the registered arena, cut at the
// registration chunk boundaries: the driver looks a host pointer up in one
// registered allocation, and a copy straddling two may not be treated as
// page-locked. Returns the first error; the pieces before it stay enqueued.
Error copy_registered(const Runtime &rt, char *dev, char *host, uint64_t n, const char *base,
                      uint64_t chunk, int kind, Stream s) {
    uint64_t off = static_cast<uint64_t>(host - base);
    while (n) {
        uint64_t take = std::min<uint64_t>(n, chunk - off % chunk);
        Error e = kind == kMemcpyHostToDevice ? rt.MemcpyAsync(dev, host, take, kind, s)
                                              : rt.MemcpyAsync(host, dev, take, kind, s);
        if (e != kSuccess)
            return e;
        dev += take;
        host += take;
        off += take;
        n -= take;
    }
    return kSuccess;
}

// Returns a staging set to its pool whatever happens.
struct SetHold {
    StagingPool &pool;
    std::unique_ptr<StagingSet> set;
    ~SetHold() { pool.give(std::move(set)); }
};

} // namespace
} // namespace cuda

cuda::StoreState &Store::cuda_state() {
    std::lock_guard<std::mutex> g(cuda_m_);
    if (!cuda_)
        cuda_.reset(new cuda::StoreState(cuda::require_runtime(), cfg_.cuda_staging_bytes));
    return *cuda_;
}

int Store::cuda_register(unsigned flags) {
    if (flags & ~unsigned(DAXKV_CUDA_MAPPED))
        return set_error(-EINVAL, "cuda_register: unknown flags 0x%x", flags);
    OpGuard op(*this);
    cuda::StoreState &cs = cuda_state();
    // Default, or portable|mapped; never IoMemory (DESIGN.md §6).
    unsigned cflags = (flags & DAXKV_CUDA_MAPPED)
                          ? cuda::kHostRegisterPortable | cuda::kHostRegisterMapped
                          : cuda::kHostRegisterDefault;
    std::vector<cuda::HostRange> ranges = cuda_ranges();
    size_t chunks = 0;
    {
        std::unique_lock<std::shared_mutex> g(cs.reg_m);
        if (cs.reg) {
            if (cs.reg_flags == flags)
                return 0;
            return set_error(-EBUSY, "the arenas are already registered with flags 0x%x; "
                                     "daxkv_cuda_unregister first",
                             cs.reg_flags);
        }
        cs.reg.reset(
            new cuda::HostRegistration(cs.rt, ranges, cfg_.cuda_register_chunk, cflags));
        cs.reg_flags = flags;
        chunks = cs.reg->chunks();
    }
    // Logged with no lock held: the log callback is the caller's code.
    log(DAXKV_LOG_INFO, "registered %zu arena(s) with CUDA in %zu chunk(s)", ranges.size(),
        chunks);
    return 0;
}

std::vector<cuda::HostRange> Store::cuda_ranges() const {
    // Every mapped device of the pool (removed and missing ones have none);
    // a removal or an add changes a row's arena under pool_m_.
    std::vector<cuda::HostRange> ranges;
    std::shared_lock<std::shared_mutex> pool(pool_m_);
    for (const auto &a : arenas_) {
        if (!a.arena)
            continue;
        const platform::Mapping &m = a.arena->mapping();
        // Only what exists: a file arena's mapping may reach past its end.
        ranges.push_back(cuda::HostRange{m.base(), m.backed(), m.info().path});
    }
    return ranges;
}

void Store::change_pool_registered(const std::function<void()> &change) {
    cuda::StoreState *cs;
    {
        std::lock_guard<std::mutex> g(cuda_m_);
        cs = cuda_.get();
    }
    if (!cs) {
        change(); // no CUDA call was ever made: nothing is registered
        return;
    }
    std::string failure;
    size_t stuck = 0;
    {
        // Exclusive: no transfer chooses the direct path until the arenas
        // that remain are registered again.
        std::unique_lock<std::shared_mutex> g(cs->reg_m);
        const bool had = cs->reg != nullptr;
        if (had) {
            // The registration covers every arena; unregister it before a
            // mapping goes (cudaHostUnregister of an unmapped range is
            // undefined) and after direct reads still copying have ended.
            cs->wait_idle();
            stuck = cs->reg->release();
            cs->reg.reset();
        }
        change();
        if (had) {
            try {
                cs->reg.reset(new cuda::HostRegistration(cs->rt, cuda_ranges(),
                                                         cfg_.cuda_register_chunk,
                                                         (cs->reg_flags & DAXKV_CUDA_MAPPED)
                                                             ? cuda::kHostRegisterPortable |
                                                                   cuda::kHostRegisterMapped
                                                             : cuda::kHostRegisterDefault));
            } catch (const std::exception &e) {
                failure = e.what();
            }
        }
    }
    // Logged with no lock held: the log callback is the caller's code.
    if (stuck)
        log(DAXKV_LOG_WARNING, "%zu cudaHostUnregister call(s) failed", stuck);
    if (!failure.empty())
        log(DAXKV_LOG_WARNING,
            "after a device change the arenas could not be registered with CUDA again (%s); "
            "GPU transfers use the staged path until daxkv_cuda_register succeeds",
            failure.c_str());
}

int Store::cuda_unregister() {
    OpGuard op(*this);
    cuda::StoreState &cs = cuda_state();
    size_t stuck = 0;
    {
        std::unique_lock<std::shared_mutex> g(cs.reg_m);
        if (!cs.reg)
            return set_error(-ENOENT, "the arenas are not registered with CUDA");
        // Reads enqueued earlier may still be copying out of the registered
        // ranges; new ones wait for the lock held here.
        cs.wait_idle();
        stuck = cs.reg->release();
        cs.reg.reset();
    }
    if (stuck)
        log(DAXKV_LOG_WARNING, "%zu cudaHostUnregister call(s) failed", stuck);
    return 0;
}

int Store::get_batch_cuda(daxkv_item *items, size_t n, void *stream, unsigned flags) {
    if (flags & ~unsigned(DAXKV_PREFIX))
        return set_error(-EINVAL, "get_batch_cuda: unknown flags 0x%x", flags);
    OpGuard op(*this);
    cuda::StoreState &cs = cuda_state();
    const cuda::Runtime &rt = cs.rt;
    auto s = static_cast<cuda::Stream>(stream);
    const bool prefix = flags & DAXKV_PREFIX;
    const bool verify = cfg_.verify == arena::Verify::read;

    // Borrow every hit, as get_batch does (same statuses, same prefix rule).
    std::vector<Borrow> borrows;
    std::vector<size_t> item_of;
    const size_t stop = borrow_batch(items, n, prefix, borrows, item_of);

    // Host-side work first: checksums (verify=read checks the bytes in the
    // arena before any DMA), metadata, value lengths.
    size_t kept = 0;
    for (size_t k = 0; k < borrows.size(); ++k) {
        const Borrow &b = borrows[k];
        daxkv_item &it = items[item_of[k]];
        if (verify && !verify_borrow(b, nullptr)) {
            quarantine(b);
            it.status = set_error(-EIO, "item %zu: the entry failed its checksum and was dropped",
                                  item_of[k]);
            continue;
        }
        if (it.meta) {
            std::memcpy(it.meta, arenas_[b.ref.arena].arena->header_meta(b.ref.slot),
                        b.meta_len);
            it.meta_len = b.meta_len;
        }
        it.len = b.len;
        borrows[kept] = b;
        item_of[kept] = item_of[k];
        ++kept;
    }
    borrows.resize(kept);
    item_of.resize(kept);

    std::string warning; // logged once no lock is held
    std::shared_lock<std::shared_mutex> reg(cs.reg_m);
    if (cs.reg) {
        // Direct: the DMA reads the registered arena. Everything that can
        // throw is allocated before the first copy is enqueued.
        auto batch = std::make_unique<cuda::ReadBatch>();
        auto held = std::make_shared<std::vector<Borrow>>();
        held->reserve(kept);
        batch->state = &cs;
        batch->release = [this, held]() {
            for (const Borrow &b : *held)
                end_read(b);
        };
        for (size_t k = 0; k < kept; ++k) {
            const Borrow &b = borrows[k];
            daxkv_item &it = items[item_of[k]];
            if (!b.len) {
                end_read(b);
                continue;
            }
            cuda::Error e = cuda::copy_registered(
                rt, static_cast<char *>(it.data), const_cast<char *>(b.src), b.len,
                arenas_[b.ref.arena].arena->mapping().base(), cfg_.cuda_register_chunk,
                cuda::kMemcpyHostToDevice, s);
            if (e != cuda::kSuccess)
                it.status = cuda::copy_failed(rt, item_of[k], "cudaMemcpyAsync", e);
            // Even a failed item may have pieces enqueued: keep it borrowed
            // until the stream passed them.
            held->push_back(b);
        }
        if (!held->empty()) {
            cs.begin_pending();
            cuda::Error e = rt.LaunchHostFunc(s, cuda::read_batch_done, batch.get());
            if (e == cuda::kSuccess) {
                batch.release(); // read_batch_done owns it now
            } else {
                // No host function: wait for the copies here instead.
                std::string d = rt.describe("cudaLaunchHostFunc", e);
                rt.GetLastError();
                cuda::Error w = rt.StreamSynchronize(s);
                if (w != cuda::kSuccess) {
                    warning = d + format("; cudaStreamSynchronize: cuda error %d", w);
                    rt.GetLastError();
                }
                batch->release();
                cs.end_pending();
            }
        }
    } else {
        // Staged: workers fill one pinned buffer while the DMA of the other
        // runs; the arena is read only by the workers, so every borrow ends
        // before the call returns.
        std::vector<uint64_t> lens(kept);
        for (size_t k = 0; k < kept; ++k)
            lens[k] = borrows[k].len;
        // A copy out of the arena that fails, as in get_batch: a media fault
        // (SIGBUS, sigbus=handle) drops the entry and quarantines its slot.
        std::vector<int> fault(kept, 0);
        try {
            std::vector<cuda::Fill> fills = cuda::plan_fills(lens, cs.pool.buffer_bytes());
            cuda::SetHold hold{cs.pool, fills.empty() ? nullptr : cs.pool.take()};
            std::vector<engine::CopyOp> ops;
            std::vector<const cuda::Piece *> op_piece;
            std::vector<int> copy_rc;
            for (size_t f = 0; f < fills.size(); ++f) {
                cuda::StagingBuffer &buf = hold.set->buf[f % 2];
                cuda::Error e = cs.pool.wait(buf);
                ops.clear();
                for (const cuda::Piece &p : fills[f]) {
                    daxkv_item &it = items[item_of[p.value]];
                    if (e != cuda::kSuccess && it.status == 0)
                        it.status = cuda::copy_failed(rt, item_of[p.value],
                                                      "waiting for a staging buffer", e);
                    if (it.status != 0)
                        continue;
                    engine::CopyOp c;
                    c.dst = buf.p + p.staged;
                    c.src = borrows[p.value].src + p.off;
                    c.len = p.len;
                    c.guard_source = cfg_.sigbus_handle;
                    ops.push_back(c);
                    op_piece.push_back(&p);
                }
                copy_rc.assign(ops.size(), 0);
                engine_->run(ops.data(), ops.size(), copy_rc.data());
                for (size_t k = 0; k < ops.size(); ++k) {
                    if (!copy_rc[k])
                        continue;
                    daxkv_item &it = items[item_of[op_piece[k]->value]];
                    if (it.status == 0)
                        it.status = set_error(-EIO, "item %zu: copying the entry out failed (%d)",
                                              item_of[op_piece[k]->value], copy_rc[k]);
                    if (fault[op_piece[k]->value] != engine::kMediaFault)
                        fault[op_piece[k]->value] = copy_rc[k];
                }
                op_piece.clear();
                for (const cuda::Piece &p : fills[f]) {
                    daxkv_item &it = items[item_of[p.value]];
                    if (it.status != 0)
                        continue;
                    e = rt.MemcpyAsync(static_cast<char *>(it.data) + p.off, buf.p + p.staged,
                                       p.len, cuda::kMemcpyHostToDevice, s);
                    if (e != cuda::kSuccess)
                        it.status = cuda::copy_failed(rt, item_of[p.value], "cudaMemcpyAsync", e);
                }
                e = cs.pool.mark(buf, s);
                for (const cuda::Piece &p : fills[f]) {
                    daxkv_item &it = items[item_of[p.value]];
                    if (e != cuda::kSuccess && it.status == 0)
                        it.status = cuda::copy_failed(rt, item_of[p.value],
                                                      "cudaStreamSynchronize", e);
                }
            }
        } catch (...) {
            // Copies already enqueued read only the staging buffers, which
            // their events keep from reuse; the borrows can go.
            for (size_t k = 0; k < kept; ++k)
                fault[k] == engine::kMediaFault ? quarantine(borrows[k], true)
                                                : end_read(borrows[k]);
            throw;
        }
        for (size_t k = 0; k < kept; ++k)
            fault[k] == engine::kMediaFault ? quarantine(borrows[k], true) : end_read(borrows[k]);
    }
    reg.unlock();
    if (!warning.empty())
        log(DAXKV_LOG_ERR, "%s", warning.c_str());

    int hits = 0;
    for (size_t k = 0; k < kept; ++k) {
        if (items[item_of[k]].status != 0)
            continue;
        c_.hits++;
        c_.bytes_read += borrows[k].len;
        ++hits;
    }
    return read_batch_result(items, stop, prefix, hits);
}

int Store::put_batch_cuda(daxkv_item *items, size_t n, void *stream, unsigned flags) {
    if (flags & ~unsigned(DAXKV_REPLACE))
        return set_error(-EINVAL, "put_batch_cuda: unknown flags 0x%x", flags);
    OpGuard op(*this);
    cuda::StoreState &cs = cuda_state();
    const cuda::Runtime &rt = cs.rt;
    auto s = static_cast<cuda::Stream>(stream);
    const bool hashed = cfg_.verify != arena::Verify::off;
    std::vector<Pending> pend(n);
    std::vector<size_t> idx; // items with a reservation
    idx.reserve(n);
    std::vector<uint64_t> hash_off(n, 0), hashes;
    bool enqueued = false, direct = false;
    try {
        for (size_t i = 0; i < n; ++i) {
            daxkv_item &it = items[i];
            it.status = admit_write(it, i, flags, pend[i]);
            if (it.status == 0)
                idx.push_back(i);
        }

        std::shared_lock<std::shared_mutex> reg(cs.reg_m);
        direct = cs.reg != nullptr;
        if (direct) {
            // Direct: the DMA writes into the reservations in the registered
            // arena; one event after the last copy says when all are done.
            cuda::Event ev = nullptr;
            cuda::Error e = rt.EventCreateWithFlags(&ev, cuda::kEventDisableTiming);
            if (e != cuda::kSuccess) {
                rt.GetLastError();
                ev = nullptr; // fall back to waiting for the whole stream
            }
            for (size_t i : idx) {
                daxkv_item &it = items[i];
                enqueued = true;
                e = it.len ? cuda::copy_registered(
                                 rt, static_cast<char *>(it.data), pend[i].dst, it.len,
                                 arenas_[pend[i].inflight->ref.arena].arena->mapping().base(),
                                 cfg_.cuda_register_chunk, cuda::kMemcpyDeviceToHost, s)
                           : cuda::kSuccess;
                if (e != cuda::kSuccess)
                    it.status = cuda::copy_failed(rt, i, "cudaMemcpyAsync", e);
            }
            const char *what = "cudaEventSynchronize";
            e = ev ? rt.EventRecord(ev, s) : cuda::kErrorInvalidValue;
            if (e == cuda::kSuccess) {
                e = rt.EventSynchronize(ev);
            } else {
                rt.GetLastError();
                what = "cudaStreamSynchronize";
                e = rt.StreamSynchronize(s);
            }
            if (ev)
                rt.EventDestroy(ev);
            enqueued = false;
            for (size_t i : idx)
                if (e != cuda::kSuccess && items[i].status == 0)
                    items[i].status = cuda::copy_failed(rt, i, what, e);
            // The checksum is taken from the arena after the DMA (no CPU pass
            // saw the bytes before).
            if (hashed)
                for (size_t i : idx) {
                    hash_off[i] = hashes.size();
                    hashes.push_back(items[i].status == 0
                                         ? arena::value_checksum(pend[i].dst, items[i].len)
                                         : 0);
                }
        } else {
            // Staged: the DMA of one buffer runs while the workers copy the
            // previous one into the reservations, hashing as they go.
            std::vector<uint64_t> lens(idx.size());
            for (size_t k = 0; k < idx.size(); ++k) {
                lens[k] = items[idx[k]].len;
                if (hashed) {
                    hash_off[idx[k]] = hashes.size();
                    hashes.resize(hashes.size() + arena::hash_block_count(lens[k]));
                }
            }
            std::vector<cuda::Fill> fills = cuda::plan_fills(lens, cs.pool.buffer_bytes());
            cuda::SetHold hold{cs.pool, fills.empty() ? nullptr : cs.pool.take()};
            std::vector<engine::CopyOp> ops;
            auto fail_fill = [&](const cuda::Fill &fill, const char *what, cuda::Error e) {
                for (const cuda::Piece &p : fill)
                    if (items[idx[p.value]].status == 0)
                        items[idx[p.value]].status = cuda::copy_failed(rt, idx[p.value], what, e);
            };
            std::vector<size_t> op_item;
            std::vector<int> copy_rc;
            auto drain = [&](size_t f) {
                cuda::StagingBuffer &buf = hold.set->buf[f % 2];
                cuda::Error e = cs.pool.wait(buf);
                if (e != cuda::kSuccess) {
                    fail_fill(fills[f], "cudaEventSynchronize", e);
                    return;
                }
                ops.clear();
                op_item.clear();
                for (const cuda::Piece &p : fills[f]) {
                    size_t i = idx[p.value];
                    if (items[i].status != 0)
                        continue;
                    engine::CopyOp c;
                    c.dst = pend[i].dst + p.off;
                    c.arena_is_dst = true;
                    c.src = buf.p + p.staged;
                    c.len = p.len;
                    c.nontemporal = streams(items[i].len);
                    if (hashed) {
                        c.block_hashes = hashes.data() + hash_off[i] + p.off / arena::kHashBlock;
                    }
                    ops.push_back(c);
                    op_item.push_back(i);
                }
                // A copy into the reservation that failed leaves it with
                // bytes that are not the value: the item fails, the
                // reservation goes back (never committed).
                copy_rc.assign(ops.size(), 0);
                engine_->run(ops.data(), ops.size(), copy_rc.data());
                for (size_t k = 0; k < ops.size(); ++k)
                    if (copy_rc[k] && items[op_item[k]].status == 0)
                        items[op_item[k]].status = set_error(
                            -EIO, "item %zu: copying the value into the arena failed (%d)",
                            op_item[k], copy_rc[k]);
            };
            for (size_t f = 0; f < fills.size(); ++f) {
                cuda::StagingBuffer &buf = hold.set->buf[f % 2];
                cuda::Error e = cs.pool.wait(buf);
                if (e != cuda::kSuccess)
                    fail_fill(fills[f], "cudaEventSynchronize", e);
                enqueued = true;
                for (const cuda::Piece &p : fills[f]) {
                    size_t i = idx[p.value];
                    if (items[i].status != 0)
                        continue;
                    e = rt.MemcpyAsync(buf.p + p.staged,
                                       static_cast<const char *>(items[i].data) + p.off, p.len,
                                       cuda::kMemcpyDeviceToHost, s);
                    if (e != cuda::kSuccess)
                        items[i].status = cuda::copy_failed(rt, i, "cudaMemcpyAsync", e);
                }
                e = cs.pool.mark(buf, s);
                if (e != cuda::kSuccess)
                    fail_fill(fills[f], "cudaStreamSynchronize", e);
                if (f > 0)
                    drain(f - 1);
            }
            if (!fills.empty())
                drain(fills.size() - 1);
            enqueued = false;
        }
    } catch (...) {
        // Nothing may still write into a reservation that goes back.
        if (enqueued && rt.StreamSynchronize(s) != cuda::kSuccess)
            rt.GetLastError();
        for (auto &p : pend)
            abort_write(p);
        throw;
    }

    int stored = 0;
    for (size_t i : idx) {
        daxkv_item &it = items[i];
        if (it.status != 0) {
            abort_write(pend[i]);
            continue;
        }
        uint64_t vh = 0;
        if (hashed) {
            if (direct)
                vh = hashes[hash_off[i]];
            else if (it.len == 0)
                vh = arena::value_checksum(pend[i].dst, 0);
            else
                vh = arena::combine_block_hashes(hashes.data() + hash_off[i],
                                                 arena::hash_block_count(it.len));
        }
        it.status = finish_write(pend[i], it.meta, it.meta_len, vh, hashed);
        if (it.status == 0)
            ++stored;
    }
    return stored;
}

} // namespace daxkv
