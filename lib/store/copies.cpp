#include "store/copies.hpp"

#include <algorithm>

#include "arena/checksum.hpp"
#include "engine/fault.hpp"

namespace daxkv {

void Copier::start(unsigned workers, std::vector<int> cpus) {
    engine_.reset(new engine::CopyEngine(workers, std::move(cpus)));
}

namespace {

engine::CopyOp op_of(void *dst, const void *src, uint64_t len) noexcept {
    engine::CopyOp op;
    op.dst = dst;
    op.src = src;
    op.len = len;
    return op;
}

} // namespace

engine::CopyOp Copier::read(void *dst, const char *slot, uint64_t len,
                            uint64_t *hashes) const noexcept {
    engine::CopyOp op = op_of(dst, slot, len);
    op.nontemporal = streams(len);
    op.block_hashes = hashes;
    op.guard_source = cfg_.sigbus_handle;
    return op;
}

engine::CopyOp Copier::write(char *slot, const void *src, uint64_t len, uint64_t value_len,
                             uint64_t *hashes) const noexcept {
    engine::CopyOp op = op_of(slot, src, len);
    op.arena_is_dst = true;
    op.nontemporal = streams(value_len);
    op.block_hashes = hashes;
    op.guard_dest = cfg_.sigbus_handle;
    return op;
}

engine::CopyOp Copier::move(char *to, const char *from, uint64_t len) const noexcept {
    engine::CopyOp op = op_of(to, from, len);
    op.nontemporal = streams(len);
    op.guard_source = cfg_.sigbus_handle;
    op.guard_dest = cfg_.sigbus_handle;
    return op;
}

engine::CopyOp Copier::stage_out(char *staging, const char *slot, uint64_t len) const noexcept {
    engine::CopyOp op = op_of(staging, slot, len);
    op.guard_source = cfg_.sigbus_handle;
    return op;
}

void Copier::run(const engine::CopyOp *ops, size_t n, int *errors) const {
    for (size_t k = 0; k < n; ++k)
        errors[k] = 0;
    engine_->run(ops, n, errors);
}

engine::CopyEngine::Ticket Copier::start(const engine::CopyOp *ops, size_t n, int *errors,
                                         bool hand_off) const {
    for (size_t k = 0; k < n; ++k)
        errors[k] = 0;
    return engine_->start(ops, n, errors, hand_off);
}

SegmentedCopies::SegmentedCopies(const Copier &copier, size_t n, uint64_t bytes)
    : copier_(copier), max_count_(max_segments(n, bytes)) {
    tickets_.reserve(max_count_);
    ends_.reserve(max_count_);
}

void SegmentedCopies::start(const engine::CopyOp *ops, size_t end, int *errors, bool more) {
    tickets_.push_back(copier_.start(ops + first_, end - first_, errors + first_, more));
    ends_.push_back(end);
    first_ = end;
    items_ = 0;
    bytes_ = 0;
}

size_t BlockHashes::add(uint64_t len) {
    const size_t off = n_, n = n_ + arena::hash_block_count(len);
    if (n > kLocal) {
        if (n_ <= kLocal)
            heap_.assign(local_, local_ + n_);
        heap_.resize(n);
    }
    n_ = n;
    return off;
}

int Copier::checksum(const char *slot, uint64_t len, uint64_t *out) const noexcept {
    if (!cfg_.sigbus_handle) {
        *out = arena::value_checksum(slot, len);
        return 0;
    }
    struct Args {
        const char *slot;
        uint64_t len;
        uint64_t *out;
    } args{slot, len, out};
    return engine::guarded_call(
        slot, len,
        [](void *p) {
            auto *a = static_cast<Args *>(p);
            *a->out = arena::value_checksum(a->slot, a->len);
        },
        &args);
}

uint64_t BlockHashes::combined(size_t off, uint64_t len) const noexcept {
    // An empty value has no bytes to copy (a staged GPU put copies none of
    // it): its checksum is that of no bytes.
    if (len == 0)
        return arena::value_checksum("", 0);
    return arena::combine_block_hashes(data() + off, arena::hash_block_count(len));
}

} // namespace daxkv
