// GPU state of a store and the registration of its arenas with CUDA; the
// helpers the transfers share (gpu_transfer.cpp).
#include <algorithm>
#include <cerrno>
#include <shared_mutex>

#include "arena/format.hpp"
#include "internal/util.hpp"
#include "store/gpu.hpp"
#include "store/gpu_state.hpp"

namespace daxkv {
namespace cuda {

void StoreStateDeleter::operator()(StoreState *s) const noexcept { delete s; }

void read_batch_done(void *p) noexcept {
    std::unique_ptr<ReadBatch> b(static_cast<ReadBatch *>(p));
    StoreState *s = b->state;
    b->release();
    b.reset();
    s->end_pending(); // last: ~Gpu may proceed from here
}

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
    const Runtime *rt = load_runtime();
    if (!rt)
        fail(-ENOTSUP, "CUDA is not available: %s", unavailable_reason().c_str());
    if (rt->devices <= 0)
        fail(-ENODEV, "CUDA is not usable: %s", unavailable_reason().c_str());
    return *rt;
}

daxkv::Error copy_error(const Runtime &rt, size_t i, const char *what, Error e) {
    std::string d = rt.describe(what, e);
    rt.GetLastError();
    return daxkv::Error(-EIO, format("item %zu: %s", i, d.c_str()));
}

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

namespace {

// Default, or portable|mapped; never IoMemory (a DAX mapping is memory).
unsigned register_flags(unsigned flags) noexcept {
    return (flags & kCudaMapped) ? kHostRegisterPortable | kHostRegisterMapped
                                 : kHostRegisterDefault;
}

} // namespace
} // namespace cuda

Gpu::~Gpu() { state_.reset(); }

cuda::StoreState &Gpu::state() {
    std::lock_guard<std::mutex> g(m_);
    if (!state_)
        state_.reset(new cuda::StoreState(cuda::require_runtime(), c_.cfg.cuda_staging_bytes));
    return *state_;
}

std::unique_ptr<cuda::HostRegistration> Gpu::register_mapped(const cuda::StoreState &cs,
                                                             unsigned flags, size_t *arenas) const {
    // Every mapped device of the pool (removed and missing ones have none).
    // A removal unmaps under the exclusive mapping lock: the shared one is
    // held until every range is registered, so none is unmapped meanwhile.
    // (The caller's exclusive registration lock orders this before any
    // mapping change that finds the arenas registered; one that found no
    // CUDA state at all ran before the state was created.)
    std::vector<cuda::HostRange> rs;
    std::shared_lock<std::shared_mutex> pool(c_.pool.mapping_lock());
    for (const auto &a : c_.pool.rows()) {
        if (!a.arena)
            continue;
        const platform::Mapping &m = a.arena->mapping();
        // Only what exists: a file arena's mapping may reach past its end.
        rs.push_back(cuda::HostRange{m.base(), m.backed(), m.info().path});
    }
    if (register_hook_)
        register_hook_();
    if (arenas)
        *arenas = rs.size();
    return std::unique_ptr<cuda::HostRegistration>(new cuda::HostRegistration(
        cs.rt, rs, c_.cfg.cuda_register_chunk, cuda::register_flags(flags)));
}

int Gpu::register_arenas(unsigned flags) {
    CallGate::Call call(c_.gate);
    cuda::StoreState &cs = state();
    size_t arenas = 0, chunks = 0;
    {
        std::unique_lock<std::shared_mutex> g(cs.reg_m);
        if (cs.reg) {
            if (cs.reg_flags == flags)
                return 0;
            return set_error(-EBUSY, "the arenas are already registered with flags 0x%x; "
                                     "daxkv_cuda_unregister first",
                             cs.reg_flags);
        }
        cs.reg = register_mapped(cs, flags, &arenas);
        cs.reg_flags = flags;
        cs.reg_lost.clear();
        chunks = cs.reg->chunks();
    }
    // Logged with no lock held: the log callback is the caller's code.
    log(kLogInfo, "registered %zu arena(s) with CUDA in %zu chunk(s)", arenas, chunks);
    return 0;
}

int Gpu::unregister_arenas() {
    CallGate::Call call(c_.gate);
    cuda::StoreState &cs = state();
    size_t stuck = 0;
    {
        std::unique_lock<std::shared_mutex> g(cs.reg_m);
        if (!cs.reg && !cs.reg_lost.empty())
            return set_error(-ENOENT,
                             "the arenas are not registered with CUDA: a device change dropped "
                             "their registration and registering them again failed (%s)",
                             cs.reg_lost.c_str());
        if (!cs.reg)
            return set_error(-ENOENT, "the arenas are not registered with CUDA");
        // Reads enqueued earlier may still be copying out of the registered
        // ranges; new ones wait for the lock held here.
        cs.wait_idle();
        stuck = cs.reg->release();
        cs.reg.reset();
    }
    if (stuck)
        log(kLogWarning, "%zu cudaHostUnregister call(s) failed", stuck);
    return 0;
}

void Gpu::around_mapping_change(const std::function<void()> &change) {
    cuda::StoreState *cs;
    {
        std::unique_lock<std::mutex> g(m_);
        cs = state_.get();
        if (!cs) {
            // No CUDA call was ever made: nothing is registered. The change
            // runs with the state's creation held off: a first register
            // that went ahead registered a device this change then unmaps.
            change();
            return;
        }
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
                cs->reg = register_mapped(*cs, cs->reg_flags, nullptr);
            } catch (const std::exception &e) {
                failure = e.what();
                cs->reg_lost = failure;
            }
        }
    }
    // Logged with no lock held: the log callback is the caller's code.
    if (stuck)
        log(kLogWarning, "%zu cudaHostUnregister call(s) failed", stuck);
    if (!failure.empty())
        log(kLogWarning,
            "after a device change the arenas could not be registered with CUDA again (%s); "
            "GPU transfers use the staged path until daxkv_cuda_register succeeds",
            failure.c_str());
}

} // namespace daxkv
