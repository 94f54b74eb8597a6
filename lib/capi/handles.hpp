// The opaque C handles, and the helpers every extern "C" function uses:
// argument checks, the struct_size-prefixed copy of a public struct, the
// two-call text outputs. lib/capi is the only layer that speaks C: it
// checks every argument of a call, calls the store's part that does the
// work inside guarded() (the one place errors are caught), and converts
// what comes back into the public types (convert.hpp).
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "daxkv.h"
#include "internal/error.hpp"
#include "store/config.hpp"
#include "store/keys.hpp"
#include "store/store.hpp"

struct daxkv_config {
    daxkv::Config cfg;
};

struct daxkv_store {
    std::shared_ptr<daxkv::Store> store;
};

struct daxkv_lease {
    std::unique_ptr<daxkv::LeaseState> state;
};

struct daxkv_reservation {
    std::unique_ptr<daxkv::ReservationState> state;
};

struct daxkv_cursor {
    std::unique_ptr<daxkv::KeyCursor> cursor;
};

namespace daxkv {
namespace capi {

// Copy a filled public struct into the caller's, which may be an older,
// shorter version of it: the first struct_size bytes (at least the
// struct_size field itself, checked by the caller), struct_size kept.
// copy_prefix takes the size from elsewhere (an array's stride).
template <typename T>
void copy_prefix(T *out, T value, uint32_t size) {
    value.struct_size = size;
    std::memcpy(out, &value, size < sizeof value ? size : sizeof value);
}
template <typename T>
void copy_versioned(T *out, T value) {
    copy_prefix(out, value, out->struct_size);
}

// A text buffer of a two-call output: NULL only with cap 0.
inline int check_buffer(const char *buf, size_t cap) {
    if (!buf && cap)
        return set_error(-EINVAL, "buf is NULL but cap is %zu", cap);
    return 0;
}

// The two-call text outputs (status JSON, Prometheus text): the buffer may
// be NULL with cap 0 to ask for the size; *needed (if not NULL) gets the
// size with the NUL; -ENOBUFS when cap is smaller. what names the text in
// the message.
inline int copy_text(const std::string &text, char *buf, size_t cap, size_t *needed,
                     const char *what) {
    if (int rc = check_buffer(buf, cap))
        return rc;
    if (needed)
        *needed = text.size() + 1;
    if (cap < text.size() + 1)
        return set_error(-ENOBUFS, "%s needs %zu bytes, the buffer holds %zu", what,
                         text.size() + 1, cap);
    std::memcpy(buf, text.c_str(), text.size() + 1);
    return 0;
}

// A caller's versioned struct: not NULL and at least its struct_size field
// and the next one (an older layout never had fewer).
template <typename T>
int check_versioned(const T *out, const char *what) {
    if (!out)
        return set_error(-EINVAL, "%s is NULL", what);
    if (out->struct_size < 8)
        return set_error(-EINVAL, "%s struct_size %u is below 8", what, out->struct_size);
    return 0;
}

// A store this process inherited from the one it was forked from
// (Store::inherited): -EPERM. Its threads are not here, and its devices are
// the parent's.
inline void check_owned(const Store &st) {
    if (st.inherited())
        fail(-EPERM, "the store was opened before this process was forked from its parent; a "
                     "forked child may not use it (it may open stores of its own)");
}

// The store behind a handle: -EINVAL for NULL, -EPERM for one inherited
// through fork.
inline Store &store_of(daxkv_store *s) {
    if (!s || !s->store)
        fail(-EINVAL, "store handle is NULL");
    check_owned(*s->store);
    return *s->store;
}

// What a forked child inherited is never shut down, released or destroyed
// there: that would wait for threads it does not have, and unlock, unmap
// or write what the parent still uses. Its handles are let go of by
// keeping what they held here, untouched, until the child exits or execs.
void keep_inherited(std::shared_ptr<void> &&what) noexcept;

// The array of a batch call: NULL only when empty, and a count the int
// result can hold.
template <typename Item>
int check_items(const Item *items, size_t n) {
    if (!items && n)
        return set_error(-EINVAL, "items is NULL but n is %zu", n);
    if (n > static_cast<size_t>(INT32_MAX))
        return set_error(-EINVAL, "n %zu is too large for one batch", n);
    return 0;
}

// The key of a single-key call, checked by the store's key rule
// (store/item.hpp; throws -EINVAL).
inline std::string_view key_arg(const void *key, size_t key_len) {
    check_key(key, key_len);
    return std::string_view(static_cast<const char *>(key), key_len);
}

// Flags outside allowed are refused, naming the call.
inline int check_flags(unsigned flags, unsigned allowed, const char *call) {
    if (flags & ~allowed)
        return set_error(-EINVAL, "%s: unknown flags 0x%x", call, flags);
    return 0;
}

// A batch call of a store: its items and flags checked, then what
// check_more checks when given (a call refused there leaves the items as
// they were: they may not even be an array of n), then run(store). A call that fails as a whole after that (out of
// memory, shut down while it waited) gives every item's status its code
// too, as the asynchronous executor does (store/async.cpp): what a status
// said before the failure (a copy made, a claim, a pin) was undone with it,
// or cannot be counted on.
// No check beyond the items and flags (batch_call's default).
struct NoMoreChecks {
    int operator()(Store &) const noexcept { return 0; }
};

// A template, not a std::function: that would be built (and may fail to
// allocate) in the caller, outside guarded(), where no exception may go.
template <typename Run, typename CheckMore = NoMoreChecks>
int batch_call(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags, unsigned allowed,
               const char *call, Run &&run, CheckMore &&check_more = CheckMore()) noexcept {
    bool accepted = false;
    const int rc = guarded([&] {
        Store &st = store_of(s);
        if (int refused = check_items(items, n))
            return refused;
        if (int refused = check_flags(flags, allowed, call))
            return refused;
        if (int refused = check_more(st))
            return refused;
        accepted = true;
        return run(st);
    });
    if (rc < 0 && accepted)
        for (size_t i = 0; i < n; ++i)
            items[i].status = rc;
    return rc;
}

// A device path argument: not NULL, not empty, at most 4096 bytes (never
// echoed back in a message: it may come from an untrusted request).
inline int check_path(const char *path) {
    if (!path)
        return set_error(-EINVAL, "device path is NULL");
    if (!*path)
        return set_error(-EINVAL, "device path is empty");
    if (strnlen(path, 4097) > 4096)
        return set_error(-EINVAL, "device path is longer than 4096 bytes");
    return 0;
}

} // namespace capi
} // namespace daxkv
