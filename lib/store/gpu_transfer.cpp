// The GPU batches: get_batch borrows every hit as the host get_batch does,
// put_batch claims and commits as put_batch does; in between, the bytes
// travel by DMA straight to or from the registered arena, or through the
// staging buffers (gpu_state.hpp).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <shared_mutex>

#include "store/gpu.hpp"
#include "store/gpu_state.hpp"

namespace daxkv {

int Gpu::get_batch(daxkv_item *items, size_t n, void *stream, unsigned flags) {
    CallGate::Call call(c_.gate);
    cuda::StoreState &cs = state();
    // A batch call as the host ones are (statistics): counted once CUDA is
    // there to run it, timed to its return (the bytes may arrive later).
    LatencyTimer timer(c_.metrics.batch_latency);
    c_.metrics.batches.fetch_add(1, std::memory_order_relaxed);
    const cuda::Runtime &rt = cs.rt;
    auto s = static_cast<cuda::Stream>(stream);
    const bool prefix = flags & kPrefix;

    // Borrow every hit, as get_batch does (same statuses, same prefix rule).
    // Until a borrow is ended or handed to the completion of the copies
    // reading it (open[k] false), this call ends it if it throws (out of
    // memory): after the copies already enqueued on the stream have passed.
    std::vector<Borrow> borrows;
    std::vector<size_t> item_of;
    std::vector<bool> open;
    std::unique_ptr<cuda::ReadBatch> batch; // the direct copies' completion, until handed over
    bool enqueued = false;
    size_t stop = n;
    // With prefix, the first item that failed after it was borrowed (see
    // below); SIZE_MAX while none has.
    size_t prefix_end = SIZE_MAX;
    std::string warning; // logged once no lock is held
    std::shared_lock<std::shared_mutex> reg(cs.reg_m, std::defer_lock);
    try {
        open.reserve(n); // no allocation below, the handler's included
        stop = reads_.borrow_batch(items, n, prefix, borrows, item_of);
        open.assign(borrows.size(), true);

        // With prefix, an item that fails from here on ends the prefix as a
        // miss at borrowing does: the later items are -ENOENT, and no DMA
        // of theirs is enqueued after that (borrowed items are the first
        // ones, in order).
        auto after_prefix = [&](size_t k) {
            if (item_of[k] <= prefix_end)
                return false;
            items[item_of[k]].status = -ENOENT;
            return true;
        };
        auto end_prefix_at = [&](size_t k) {
            if (prefix && items[item_of[k]].status != 0)
                prefix_end = std::min(prefix_end, item_of[k]);
        };

        // Host-side work first: checksums (verify=read checks the bytes in
        // the arena before any DMA), metadata.
        for (size_t k = 0; k < borrows.size(); ++k) {
            const Borrow &b = borrows[k];
            daxkv_item &it = items[item_of[k]];
            if (after_prefix(k)) {
                open[k] = false;
                reads_.end(b);
                continue;
            }
            it.status = item_status([&] {
                // The metadata first: verify=read checks the copy handed on.
                int rc = it.meta && !reads_.copy_meta(b, it.meta) ? engine::kMediaFault : 0;
                if (rc == 0 && c_.copier.verifies_reads())
                    rc = reads_.verify_in_place(b, it.meta);
                if (rc) {
                    const std::string what = format("item %zu: ", item_of[k]);
                    open[k] = false; // failed_verify ends it, whatever it throws
                    reads_.failed_verify(b, rc, what.c_str());
                }
                return 0;
            });
            end_prefix_at(k);
        }
        size_t kept = 0; // the items that passed, moved to the front
        for (size_t k = 0; k < borrows.size(); ++k) {
            if (items[item_of[k]].status != 0)
                continue;
            borrows[kept] = borrows[k];
            item_of[kept] = item_of[k];
            open[kept] = true;
            ++kept;
        }
        borrows.resize(kept);
        item_of.resize(kept);
        open.resize(kept);

        reg.lock();
        if (cs.reg) {
            // Direct: the DMA reads the registered arena. Everything that
            // can throw is allocated before the first copy is enqueued.
            batch = std::make_unique<cuda::ReadBatch>();
            auto held = std::make_shared<std::vector<Borrow>>();
            held->reserve(kept);
            std::vector<size_t> sent; // the items whose copies were enqueued
            sent.reserve(kept);
            batch->state = &cs;
            Reads &reads = reads_;
            batch->release = [&reads, held]() {
                for (const Borrow &b : *held)
                    reads.end(b);
            };
            for (size_t k = 0; k < kept; ++k) {
                const Borrow &b = borrows[k];
                daxkv_item &it = items[item_of[k]];
                open[k] = false;
                if (!b.len || after_prefix(k)) {
                    reads_.end(b);
                    continue;
                }
                // Even a failed item may have pieces enqueued: keep it
                // borrowed until the stream passed them.
                held->push_back(b);
                sent.push_back(item_of[k]);
                enqueued = true;
                cuda::Error e = cuda::copy_registered(
                    rt, static_cast<char *>(it.data), const_cast<char *>(b.src), b.len,
                    c_.pool.arena(b.ref.arena).mapping().base(), c_.cfg.cuda_register_chunk,
                    cuda::kMemcpyHostToDevice, s);
                if (e != cuda::kSuccess)
                    fail_item(it, cuda::copy_error(rt, item_of[k], "cudaMemcpyAsync", e));
                end_prefix_at(k);
            }
            if (held->empty()) {
                batch.reset();
            } else {
                cs.begin_pending();
                cuda::Error e = rt.LaunchHostFunc(s, cuda::read_batch_done, batch.get());
                if (e == cuda::kSuccess) {
                    batch.release(); // read_batch_done owns it now
                } else {
                    // No host function: wait for the copies here instead.
                    rt.GetLastError();
                    cuda::Error w = rt.StreamSynchronize(s);
                    if (w != cuda::kSuccess)
                        rt.GetLastError();
                    batch->release();
                    batch.reset();
                    cs.end_pending();
                    std::string d = rt.describe("cudaLaunchHostFunc", e);
                    if (w != cuda::kSuccess)
                        warning = d + format("; cudaStreamSynchronize: cuda error %d", w);
                    // The wait failed: whether the copies completed is
                    // unknown, so no item of them may say its bytes were
                    // read.
                    // With DAXKV_PREFIX only the first of them fails (-EIO):
                    // the prefix ends there, and those after it are -ENOENT
                    // (below), as after any item whose copy failed.
                    if (w != cuda::kSuccess && prefix) {
                        size_t first = SIZE_MAX;
                        for (size_t i : sent)
                            if (items[i].status == 0)
                                first = std::min(first, i);
                        if (first < prefix_end) {
                            fail_item(items[first],
                                      cuda::copy_error(rt, first, "cudaStreamSynchronize", w));
                            prefix_end = first;
                        }
                    } else if (w != cuda::kSuccess) {
                        for (size_t i : sent)
                            if (items[i].status == 0)
                                fail_item(items[i],
                                          cuda::copy_error(rt, i, "cudaStreamSynchronize", w));
                    }
                }
            }
            enqueued = false;
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
                        if (it.status != 0 || after_prefix(p.value))
                            continue;
                        if (e != cuda::kSuccess) {
                            fail_item(it, cuda::copy_error(rt, item_of[p.value],
                                                           "waiting for a staging buffer", e));
                            end_prefix_at(p.value);
                            continue;
                        }
                        ops.push_back(c_.copier.stage_out(buf.p + p.staged, borrows[p.value].src + p.off,
                                                          p.len));
                        op_piece.push_back(&p);
                    }
                    // A wait that failed for pieces of items that had failed
                    // already (or past the prefix) reported nothing: the
                    // error CUDA keeps for this thread is cleared all the
                    // same, not left to the caller's next CUDA call.
                    if (e != cuda::kSuccess)
                        rt.GetLastError();
                    c_.copier.run(ops, copy_rc);
                    for (size_t k = 0; k < ops.size(); ++k) {
                        if (!copy_rc[k])
                            continue;
                        const size_t v = op_piece[k]->value;
                        fail_item(items[item_of[v]],
                                  Error(-EIO, format("item %zu: copying the entry out failed (%d)",
                                                     item_of[v], copy_rc[k])));
                        end_prefix_at(v);
                        if (fault[v] != engine::kMediaFault)
                            fault[v] = copy_rc[k];
                    }
                    op_piece.clear();
                    for (const cuda::Piece &p : fills[f]) {
                        daxkv_item &it = items[item_of[p.value]];
                        if (it.status != 0 || after_prefix(p.value))
                            continue;
                        e = rt.MemcpyAsync(static_cast<char *>(it.data) + p.off, buf.p + p.staged,
                                           p.len, cuda::kMemcpyHostToDevice, s);
                        if (e != cuda::kSuccess)
                            fail_item(it, cuda::copy_error(rt, item_of[p.value], "cudaMemcpyAsync", e));
                        end_prefix_at(p.value);
                    }
                    e = cs.pool.mark(buf, s);
                    for (const cuda::Piece &p : fills[f]) {
                        if (e != cuda::kSuccess)
                            fail_item(items[item_of[p.value]],
                                      cuda::copy_error(rt, item_of[p.value], "cudaStreamSynchronize",
                                                       e));
                        end_prefix_at(p.value);
                    }
                }
            } catch (...) {
                // Copies already enqueued read only the staging buffers, which
                // their events keep from reuse; the borrows can go.
                for (size_t k = 0; k < kept; ++k)
                    reads_.end_copy(borrows[k], fault[k]);
                open.assign(kept, false);
                throw;
            }
            for (size_t k = 0; k < kept; ++k)
                reads_.end_copy(borrows[k], fault[k]);
        }
    } catch (...) {
        // Nothing may end a borrow a copy still reads: wait for the copies
        // enqueued (the registration lock is still held, so the arenas stay
        // registered meanwhile).
        if (enqueued && rt.StreamSynchronize(s) != cuda::kSuccess)
            rt.GetLastError();
        if (batch && batch->release) // set before the first borrow goes to it
            batch->release();
        open.resize(borrows.size(), true); // borrow_batch threw: all of them
        for (size_t k = 0; k < open.size(); ++k)
            if (open[k])
                reads_.end(borrows[k]);
        throw;
    }
    reg.unlock();
    if (!warning.empty())
        log(kLogErr, "%s", warning.c_str());

    int hits = 0;
    ItemTally copied(c_.metrics.item_bytes);
    for (size_t k = 0; k < borrows.size(); ++k) {
        daxkv_item &it = items[item_of[k]];
        if (it.status == 0 && item_of[k] > prefix_end)
            it.status = -ENOENT; // sent before an item ahead of it failed
        if (it.status != 0)
            continue;
        if (it.meta)
            it.meta_len = borrows[k].meta_len;
        it.len = borrows[k].len;
        copied.count(borrows[k].len);
        ++hits;
    }
    reads_.count_hits(copied);
    return Reads::batch_result(items, stop, prefix, hits);
}

int Gpu::put_batch(daxkv_item *items, size_t n, void *stream, unsigned flags) {
    CallGate::Call call(c_.gate);
    cuda::StoreState &cs = state();
    LatencyTimer timer(c_.metrics.batch_latency);
    c_.metrics.batches.fetch_add(1, std::memory_order_relaxed);
    const cuda::Runtime &rt = cs.rt;
    auto s = static_cast<cuda::Stream>(stream);
    const bool hashed = c_.copier.hashes_writes();
    PendingBatch pend(n);
    std::vector<size_t> idx; // items with a claim
    idx.reserve(n);
    std::vector<size_t> hash_off(n, 0);
    std::vector<uint64_t> direct_hash(n, 0);
    std::vector<Finished> done; // before any claim: nothing after them may fail
    done.reserve(n);
    BlockHashes hashes;
    bool enqueued = false, direct = false;
    const Index::KeyHashes key_hashes = c_.index.hash_items(items, n);
    try {
        for (size_t i = 0; i < n; ++i) {
            daxkv_item &it = items[i];
            it.status = writes_.claim_item(items, n, i, key_hashes[i], flags, pend[i]);
            if (it.status == 0)
                idx.push_back(i);
        }

        std::shared_lock<std::shared_mutex> reg(cs.reg_m);
        direct = cs.reg != nullptr;
        if (idx.empty()) {
            // No item was claimed: nothing to copy or to wait for. An event
            // recorded anyway would make the call wait for unrelated work on
            // the caller's stream, and a failed wait would leave its sticky
            // error behind with no item to report it.
        } else if (direct) {
            // Direct: the DMA writes into the claimed slots in the registered
            // arena; one event after the last copy says when all are done.
            // Empty values need no copy, and a batch of only those no wait.
            bool copies = false;
            for (size_t i : idx)
                copies = copies || items[i].len != 0;
            cuda::Error e = cuda::kSuccess;
            const char *what = "cudaEventSynchronize";
            if (copies) {
                cuda::Event ev = nullptr;
                e = rt.EventCreateWithFlags(&ev, cuda::kEventDisableTiming);
                if (e != cuda::kSuccess) {
                    rt.GetLastError();
                    ev = nullptr; // fall back to waiting for the whole stream
                }
                for (size_t i : idx) {
                    daxkv_item &it = items[i];
                    if (!it.len)
                        continue;
                    enqueued = true;
                    e = cuda::copy_registered(
                        rt, static_cast<char *>(it.data), pend[i].dst, it.len,
                        c_.pool.arena(pend[i].inflight->ref.arena).mapping().base(),
                        c_.cfg.cuda_register_chunk, cuda::kMemcpyDeviceToHost, s);
                    if (e != cuda::kSuccess)
                        fail_item(it, cuda::copy_error(rt, i, "cudaMemcpyAsync", e));
                }
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
            }
            // A failed wait fails the items whose copies it was for.
            for (size_t i : idx)
                if (e != cuda::kSuccess && items[i].len)
                    fail_item(items[i], cuda::copy_error(rt, i, what, e));
            // The checksum is taken from the arena after the DMA (no CPU pass
            // saw the bytes before), under the SIGBUS guard as a read is.
            if (hashed)
                for (size_t i : idx)
                    if (items[i].status == 0)
                        if (const int rc =
                                c_.copier.checksum(pend[i].dst, items[i].len, &direct_hash[i]))
                            fail_item(items[i],
                                      writes_.copy_error(
                                          pend[i], rc,
                                          format("item %zu: hashing the value in the arena", i)));
        } else {
            // Staged: the DMA of one buffer runs while the workers copy the
            // previous one into the claimed slots, hashing as they go.
            std::vector<uint64_t> lens(idx.size());
            for (size_t k = 0; k < idx.size(); ++k) {
                lens[k] = items[idx[k]].len;
                if (hashed)
                    hash_off[idx[k]] = hashes.add(lens[k]);
            }
            std::vector<cuda::Fill> fills = cuda::plan_fills(lens, cs.pool.buffer_bytes());
            cuda::SetHold hold{cs.pool, fills.empty() ? nullptr : cs.pool.take()};
            std::vector<engine::CopyOp> ops;
            auto fail_fill = [&](const cuda::Fill &fill, const char *what, cuda::Error e) {
                for (const cuda::Piece &p : fill)
                    fail_item(items[idx[p.value]], cuda::copy_error(rt, idx[p.value], what, e));
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
                    ops.push_back(c_.copier.write(
                        pend[i].dst + p.off, buf.p + p.staged, p.len, items[i].len,
                        hashed ? hashes.at(hash_off[i]) + p.off / arena::kHashBlock : nullptr));
                    op_item.push_back(i);
                }
                // A copy into the slot that failed leaves it with bytes that
                // are not the value: the item fails, its slot goes back
                // (never committed), or is quarantined where writing it
                // faulted.
                c_.copier.run(ops, copy_rc);
                for (size_t k = 0; k < ops.size(); ++k)
                    if (copy_rc[k])
                        fail_item(items[op_item[k]],
                                  writes_.copy_error(pend[op_item[k]], copy_rc[k],
                                                     format("item %zu: copying the value into "
                                                            "the arena failed",
                                                            op_item[k])));
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
                        fail_item(items[i], cuda::copy_error(rt, i, "cudaMemcpyAsync", e));
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
        // Nothing may still write into a slot that goes back.
        if (enqueued && rt.StreamSynchronize(s) != cuda::kSuccess)
            rt.GetLastError();
        for (auto &p : pend)
            writes_.abandon(p);
        throw;
    }

    for (size_t i : idx) {
        daxkv_item &it = items[i];
        if (it.status != 0) {
            writes_.abandon(pend[i]);
            continue;
        }
        const uint64_t vh = !hashed ? 0
                            : direct ? direct_hash[i]
                                     : hashes.combined(hash_off[i], it.len);
        done.push_back(Finished{&pend[i], it.meta, static_cast<uint32_t>(it.meta_len), vh,
                                &it.status});
    }
    writes_.commit_batch(done.data(), done.size(), hashed);
    int stored = 0;
    for (const Finished &w : done)
        stored += *w.status == 0;
    return stored;
}

} // namespace daxkv
