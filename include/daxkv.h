/*
 * libdaxkv - a KV-cache store for LLM inference on byte-addressable memory
 * tiers (Device-DAX persistent memory, CXL memory expanders, files, RAM).
 *
 * This is the only public header. It is C99 and C++ clean. Every
 * int-returning function returns 0 on success, a small positive value for a
 * documented success variant, or a negative error code (a negative errno, or
 * one of the DAXKV_E_* codes below). After a failure, daxkv_errmsg()
 * describes it for the calling thread.
 *
 * Threads. A store may be used from any number of threads at once, and so
 * may the functions that take no handle. A daxkv_config, daxkv_reservation
 * or daxkv_cursor is used by one thread at a time; a lease's accessors may
 * be called from any thread, but no call on the lease may overlap or follow
 * daxkv_lease_release. No call on a store may overlap or follow
 * daxkv_close (daxkv_shutdown waits for the calls already inside). A call
 * that would wait for a lease (or, waiting for a drain, a reservation)
 * that the calling thread holds fails with -EDEADLK instead (a forced
 * removal or shrink waits for leases: see daxkv_device_remove).
 * The library runs threads of its own: each store's copy workers
 * (workers - 1 of them: the calling thread is one), the daxkv_submit
 * dispatcher (from the first submission it does not run inline), the
 * publisher of the statistics page (stats_interval), an event thread for
 * the log events of no call (once there is one to log), and short-lived
 * threads that scan and index the devices at open; daxkv_memcpy_batch uses
 * one process-wide pool of copy threads. The log callback runs on the
 * caller's thread or the event thread (daxkv_set_log_fn).
 *
 * Fork. A store belongs to the process that opened it. In a child forked
 * after the open, every call on the store and on its leases, reservations
 * and cursors fails with -EPERM, and daxkv_close, daxkv_lease_release,
 * daxkv_abort and daxkv_cursor_close let go of them without touching the
 * parent's devices; the child opens stores of its own on other devices and
 * has its own daxkv_memcpy_batch threads.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef DAXKV_H
#define DAXKV_H

#include <stddef.h>
#include <stdint.h>

#include "daxkv_version.h"

#if defined(__GNUC__) && __GNUC__ >= 4
#define DAXKV_API __attribute__((visibility("default")))
#else
#define DAXKV_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Limits, result codes and flags                                            */
/* ------------------------------------------------------------------------ */

/** Largest key, in bytes. Keys are opaque byte strings of 1..DAXKV_KEY_MAX. */
#define DAXKV_KEY_MAX 512

/** Success variant of put: the key was already stored (or being stored). */
#define DAXKV_EXISTED 1

/** daxkv's own error codes (negative errno values are used otherwise). */
#define DAXKV_E_BASE (-10000)
/** On-device metadata is invalid (both superblock copies damaged). */
#define DAXKV_E_CORRUPT (-10001)
/** The device holds data that is not a daxkv arena of this layout. */
#define DAXKV_E_FOREIGN (-10002)

/** put: overwrite an existing entry (crash-safe: the newest commit wins). */
#define DAXKV_REPLACE (1u << 0)
/** remove: remove even if pinned; cancels an in-flight write (one that has
 *  begun to commit is waited for, then removed). */
#define DAXKV_FORCE (1u << 1)
/** get_batch / contains_batch: stop at the first miss, return the prefix. */
#define DAXKV_PREFIX (1u << 2)
/** contains_batch: pin every hit (LMCache's "lookup and lock"; as daxkv_pin). */
#define DAXKV_PIN (1u << 3)

/* ------------------------------------------------------------------------ */
/* Opaque handles                                                            */
/* ------------------------------------------------------------------------ */

typedef struct daxkv_config daxkv_config;
typedef struct daxkv_store daxkv_store;
typedef struct daxkv_lease daxkv_lease;
typedef struct daxkv_reservation daxkv_reservation;

/* ------------------------------------------------------------------------ */
/* Versions, errors, logging                                                 */
/* ------------------------------------------------------------------------ */

/** major*10000 + minor*100 + patch of the library actually loaded. */
DAXKV_API unsigned daxkv_version_number(void);
/** "major.minor.patch" of the library actually loaded. */
DAXKV_API const char *daxkv_version_string(void);

/** A static description of an error code (never NULL). */
DAXKV_API const char *daxkv_strerror(int err);
/**
 * This thread's description of its last failed daxkv call (never NULL; ""
 * when nothing failed yet). Valid until the next daxkv call on the thread.
 */
DAXKV_API const char *daxkv_errmsg(void);

/** Log levels, as syslog's. */
#define DAXKV_LOG_ERR 3
#define DAXKV_LOG_WARNING 4
#define DAXKV_LOG_INFO 6
#define DAXKV_LOG_DEBUG 7

typedef void (*daxkv_log_fn)(int level, const char *msg, void *arg);
/**
 * Install a process-wide log callback for messages up to max_level; NULL
 * removes it. The callback runs with no library lock held: the events of a
 * call are handed out on the caller's thread when the call is done
 * (daxkv_errmsg() stays that call's), the events of no call (a drain
 * completing, a batch run by the daxkv_submit dispatcher) on a thread of the
 * store. The callback may call any daxkv function, closing the store
 * included. Without a callback
 * the library writes nothing, unless DAXKV_LOG_LEVEL (err, warning, info,
 * debug) was set when it was loaded: lines then go to standard error or to
 * DAXKV_LOG_FILE (see daxkv_set_log_fn(3)).
 */
DAXKV_API void daxkv_set_log_fn(daxkv_log_fn fn, int max_level, void *arg);

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

DAXKV_API int daxkv_config_new(daxkv_config **out);
DAXKV_API void daxkv_config_free(daxkv_config *cfg);
/**
 * Set a key. Keys: slot_bytes (required), eviction (lru|none),
 * durability (none|process|power), on_mismatch (fail|reformat), workers,
 * meta_bytes, verify (off|recover|read), hotplug (0|1), create (0|1),
 * nt_stores (auto|on|off), cuda_register_chunk (4 KiB..64 GiB),
 * cuda_staging_bytes (1 MiB..1 GiB, whole MiB), placement
 * (least_used|numa), numa (auto|off: copy workers on the devices' NUMA
 * node), sigbus (default|handle: a SIGBUS reading or writing a value or a
 * slot header in the arena becomes -EIO for that item and quarantines the
 * slot; one in the superblocks fails an open with -EIO, and under a running
 * store leaves that device's pool history record out; installs a
 * process-wide handler that chains every other SIGBUS), grow_limit (bytes up to 64 TiB: each arena is
 * laid out so that daxkv_device_resize can grow it to this size; fixed when
 * it is formatted, 0 = no room to grow; auto = a new arena to the device's
 * size, an existing one keeps its room), capacity (arena|payload: whether a
 * device's size counts everything the arena uses or only the slots'
 * payloads, with the slot headers on top), stats_interval (milliseconds
 * between publications of the statistics other processes read with
 * daxkv_stats_peek, 0..3600000, 0 = none). Sizes take bytes or binary
 * suffixes ("4MiB").
 * An unknown key or a bad value is -EINVAL, naming it (bytes that are not
 * printable shown as \xNN).
 */
DAXKV_API int daxkv_config_set(daxkv_config *cfg, const char *key, const char *value);
/**
 * Add a device: a /dev/daxX.Y path, a regular file (created and sized when
 * absent), or "mem:" (anonymous memory, volatile). bytes = 0: whole device;
 * above INT64_MAX it is -EINVAL at open. A path is judged by where it leads
 * (symlinks and ".." resolved): a regular file under /dev, other than in
 * /dev/shm, is refused (-ENODEV); a symlink to a file that does not exist
 * is not followed to create it (-ENOENT).
 */
DAXKV_API int daxkv_config_add_device(daxkv_config *cfg, const char *path, uint64_t bytes);
/**
 * Build a configuration from LMCache's dax adapter JSON (single-device
 * "device_path"/"max_dax_size_gb" or the "devices" list form), plus any of
 * the keys of daxkv_config_set. A key given twice in one object, or a key,
 * value or path holding "\u0000", is -EINVAL.
 */
DAXKV_API int daxkv_config_from_json(daxkv_config **out, const char *json);

/* ------------------------------------------------------------------------ */
/* Store lifetime                                                            */
/* ------------------------------------------------------------------------ */

/**
 * Open (and recover) a store. On failure nothing stays open or mapped, and
 * what the open created is undone: a file it created is removed, an empty
 * file it sized is emptied again, superblocks it wrote on a zeroed device
 * are zeroed again. An existing file arena gets its blocks reserved
 * (-ENOSPC when its file system has no room for them, rather than a SIGBUS
 * at a later write).
 */
DAXKV_API int daxkv_open(daxkv_store **out, const daxkv_config *cfg);
/**
 * New calls get -ESHUTDOWN; waits for calls in flight. Calls that block
 * (daxkv_device_wait_drained, a forced removal or shrink waiting for leases,
 * a lease or pin waiting behind a removal or resize, a change of the pool
 * waiting for another one) are woken and return
 * -ESHUTDOWN, leaving their device in the pool with its state and size (a
 * forced removal or shrink keeps the entries it moved or deleted before
 * it waited, and says how many in its result: daxkv_device_add(3)). The
 * handle stays valid;
 * outstanding leases and reservations keep the mapping alive.
 */
DAXKV_API int daxkv_shutdown(daxkv_store *s);
/** Shutdown, then free the handle. NULL is fine. */
DAXKV_API void daxkv_close(daxkv_store *s);

/* ------------------------------------------------------------------------ */
/* Single-key operations                                                     */
/* ------------------------------------------------------------------------ */

/**
 * Store a copy of the value. 0 stored; DAXKV_EXISTED if the key is present
 * (unless DAXKV_REPLACE) or has a write in flight (a reservation or another
 * put: even with DAXKV_REPLACE, the first writer wins and nothing is
 * written); -E2BIG if the value is larger than slot_bytes; -ENOSPC if no
 * slot is free and none is evictable; -ECANCELED if a forced remove of the
 * key cancelled this put before it began to commit (nothing stored; a
 * forced remove after that waits for the put and removes what it stored).
 */
DAXKV_API int daxkv_put(daxkv_store *s, const void *key, size_t key_len,
                        const void *val, size_t len, unsigned flags);
/**
 * Copy a value into dst. -ENOENT on a miss; -ENOBUFS if cap is too small
 * (the needed size is still stored in *len_out).
 */
DAXKV_API int daxkv_get(daxkv_store *s, const void *key, size_t key_len,
                        void *dst, size_t cap, size_t *len_out);
/** 1 if committed, 0 if not (in-flight keys are 0), or a negative error. */
DAXKV_API int daxkv_contains(daxkv_store *s, const void *key, size_t key_len);
/** -EBUSY if pinned (or in flight) unless DAXKV_FORCE; -ENOENT on a miss. */
DAXKV_API int daxkv_remove(daxkv_store *s, const void *key, size_t key_len, unsigned flags);
/**
 * Pin (refcount) a committed entry: it is neither evicted nor removed. While
 * a daxkv_device_remove(DAXKV_EVICT) without DAXKV_FORCE of the entry's
 * device is under way, waits for it (then -ENOENT if it deleted the entry).
 */
DAXKV_API int daxkv_pin(daxkv_store *s, const void *key, size_t key_len);
/** Drop one pin; never goes below zero (-ENOENT if absent or not pinned). */
DAXKV_API int daxkv_unpin(daxkv_store *s, const void *key, size_t key_len);

/* ------------------------------------------------------------------------ */
/* Batches                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct daxkv_item {
    const void *key;
    size_t key_len;
    /* put: source, length; get: destination, capacity in, value length out */
    void *data;
    size_t len;
    /* put: metadata to store; get: buffer, capacity in, length out; may be NULL */
    void *meta;
    size_t meta_len;
    /* out: what the single-key call would have returned for this item */
    int status;
} daxkv_item;

/** Returns the number of items stored (status 0); EXISTED items say 1. */
DAXKV_API int daxkv_put_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags);
/**
 * Positional: returns the number of hits, misses have status -ENOENT.
 * DAXKV_PREFIX: stops at the first item that is not copied and returns the
 * prefix length; later items get status -ENOENT (also after an item whose
 * copy failed, whose later copies may have written their buffers).
 */
DAXKV_API int daxkv_get_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags);
/** status 1/0 per item; returns hits, or the prefix length with DAXKV_PREFIX. */
DAXKV_API int daxkv_contains_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags);
/** Returns the number removed. */
DAXKV_API int daxkv_remove_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags);
/** Returns the number unpinned. */
DAXKV_API int daxkv_unpin_batch(daxkv_store *s, daxkv_item *items, size_t n, unsigned flags);

/* ------------------------------------------------------------------------ */
/* Asynchronous batches                                                      */
/* ------------------------------------------------------------------------ */

/** Operations of daxkv_submit: the batch call each one runs. */
#define DAXKV_OP_PUT 1      /* daxkv_put_batch */
#define DAXKV_OP_GET 2      /* daxkv_get_batch */
#define DAXKV_OP_CONTAINS 3 /* daxkv_contains_batch */
#define DAXKV_OP_REMOVE 4   /* daxkv_remove_batch */

/** One finished batch, as daxkv_poll returns it. */
typedef struct daxkv_completion {
    uint64_t tag; /* as given to daxkv_submit */
    int op;       /* DAXKV_OP_* */
    int result;   /* what the batch call returned, or -ECANCELED (shutdown) */
} daxkv_completion;

/**
 * Queue a batch: op's batch call runs on the store's dispatcher thread with
 * these items and flags (batches run in submission order). Returns 0 once
 * queued, -EINVAL for a bad op, flags the op does not take, or NULL items
 * with n > 0, -ESHUTDOWN after shutdown, -ENOMEM, or -EAGAIN when the
 * dispatcher thread cannot be started (nothing is queued on failure). The
 * items (and the buffers they point at) stay the caller's and must stay
 * valid until the batch's completion has been returned by daxkv_poll; then
 * their statuses are final. Shutdown completes the batch running and cancels those still
 * queued (result and item statuses -ECANCELED) before it returns.
 */
DAXKV_API int daxkv_submit(daxkv_store *s, int op, daxkv_item *items, size_t n,
                           unsigned flags, uint64_t tag);
/**
 * The store's eventfd (O_CLOEXEC | O_NONBLOCK, owned by the store: do not
 * close it): readable while completions wait to be polled. Valid after
 * shutdown, until daxkv_close.
 */
DAXKV_API int daxkv_event_fd(daxkv_store *s);
/**
 * Take up to cap waiting completions (each is returned once), without
 * blocking. Returns the count (0: none waiting); -EINVAL for NULL out or cap
 * 0. Works after shutdown, so that every result can be collected.
 */
DAXKV_API int daxkv_poll(daxkv_store *s, daxkv_completion *out, size_t cap);

/* ------------------------------------------------------------------------ */
/* Zero copy                                                                 */
/* ------------------------------------------------------------------------ */

/**
 * Borrow an entry's bytes in place. Counts as an access (LRU). A lease of an
 * entry above the end of a shrink under way waits for it
 * (daxkv_device_resize); -EDEADLK instead when that shrink is a forced one
 * waiting for a lease the calling thread holds (the message names it).
 */
DAXKV_API int daxkv_lease_acquire(daxkv_store *s, const void *key, size_t key_len,
                                  daxkv_lease **out);
DAXKV_API const void *daxkv_lease_data(const daxkv_lease *l);
DAXKV_API size_t daxkv_lease_size(const daxkv_lease *l);
/** The entry's metadata blob; *len gets its length. */
DAXKV_API const void *daxkv_lease_meta(const daxkv_lease *l, size_t *len);
/** NULL is fine. */
DAXKV_API void daxkv_lease_release(daxkv_lease *l);

/** One key of daxkv_lease_batch, and what its lease gives. */
typedef struct daxkv_lease_item {
    const void *key;     /* in */
    size_t key_len;      /* in */
    daxkv_lease *lease;  /* out: release with daxkv_lease_release; NULL unless status is 0 */
    const void *data;    /* out: daxkv_lease_data */
    size_t size;         /* out: daxkv_lease_size */
    const void *meta;    /* out: daxkv_lease_meta */
    size_t meta_len;     /* out */
    uint64_t slot;       /* out: daxkv_lease_slot's slot, generation, offset and device_id */
    uint64_t generation; /* out */
    uint64_t offset;     /* out */
    uint32_t device_id;  /* out */
    int status;          /* out: 0, or the error daxkv_lease_acquire would return */
} daxkv_lease_item;

/**
 * daxkv_lease_acquire of every item's key in one call, with each lease's
 * accessors and slot filled in. Returns the number leased. An item whose
 * lease would wait behind a removal or shrink of its device
 * (daxkv_device_remove, daxkv_device_resize) is never waited for while the
 * call holds leases of earlier items, which that call may be waiting for:
 * the batch releases them, waits, and starts over from the first item.
 * DAXKV_PREFIX: stops at the first item not leased and returns the prefix
 * length; later items get status -ENOENT. -EINVAL for NULL items with
 * n > 0, n above INT32_MAX or unknown flags; -ESHUTDOWN after shutdown;
 * -EDEADLK when an item would wait behind a forced shrink that waits for a
 * lease the calling thread acquired earlier; -ENOMEM. After -ESHUTDOWN,
 * -EDEADLK or -ENOMEM nothing stays leased: every item has that status, no
 * lease and no data or meta. An item whose status is
 * not 0 has every output NULL or 0.
 */
DAXKV_API int daxkv_lease_batch(daxkv_store *s, daxkv_lease_item *items, size_t n,
                                unsigned flags);

/**
 * Copy leased entries out as daxkv_get_batch copies entries: on the store's
 * workers, under the sigbus=handle guard and verify=read's checks, which a
 * caller's own reads of daxkv_lease_data and daxkv_lease_meta are not.
 * leases[i] is a lease of s, held through the call; items[i].key is not
 * read. items[i].data and len: the destination and its capacity (data
 * NULL with len 0: the value is not copied), len gets the value's length;
 * meta and meta_len likewise for the metadata (may be NULL). Each item's
 * status: 0; -ENOBUFS when a buffer is too small (nothing copied; len and,
 * with meta, meta_len give the sizes needed); -EIO when the entry's bytes
 * faulted or failed their checksum: the entry is dropped and its slot
 * quarantined, as by daxkv_get_batch, and the lease stays to be released.
 * Returns the number of items copied. flags must be 0. -EINVAL (no item
 * looked at) for NULL items or leases with n > 0, n above INT32_MAX, a
 * NULL lease, a lease of another store, or a NULL buffer with a non-zero
 * capacity. Counts the bytes copied, not hits (the lease counted its hit).
 */
DAXKV_API int daxkv_lease_read_batch(daxkv_store *s, daxkv_lease *const *leases,
                                     daxkv_item *items, size_t n, unsigned flags);

/**
 * Reserve a slot for key to be filled in place. The key is in flight until
 * commit or abort. DAXKV_EXISTED (with *out = NULL) if present or in flight.
 */
DAXKV_API int daxkv_reserve(daxkv_store *s, const void *key, size_t key_len, size_t len,
                            daxkv_reservation **out);
/**
 * daxkv_reserve with the entry's metadata attached (as
 * daxkv_reservation_set_meta) and the address of the bytes to fill in
 * *data (data may be NULL), in one call: for callers that store key by key
 * and pay for every call. On failure or DAXKV_EXISTED nothing is reserved,
 * *out and *data are NULL.
 */
DAXKV_API int daxkv_reserve_meta(daxkv_store *s, const void *key, size_t key_len, size_t len,
                                 const void *meta, size_t meta_len, void **data,
                                 daxkv_reservation **out);
DAXKV_API void *daxkv_reservation_data(daxkv_reservation *r);
DAXKV_API size_t daxkv_reservation_size(const daxkv_reservation *r);
/** Attach a metadata blob (copied) to be committed with the entry. */
DAXKV_API int daxkv_reservation_set_meta(daxkv_reservation *r, const void *meta, size_t len);
/**
 * Make the entry visible and free the reservation (always, even on error).
 * -ECANCELED if a forced remove of the key, or a forced removal or shrink
 * of its device, cancelled it; -ESHUTDOWN after shutdown.
 */
DAXKV_API int daxkv_commit(daxkv_reservation *r);
/** Drop the reservation; its slot is returned. NULL is fine. */
DAXKV_API void daxkv_abort(daxkv_reservation *r);

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */
/* ------------------------------------------------------------------------ */

/** Buckets of a daxkv_histogram; the last one has no upper bound. */
#define DAXKV_HIST_BUCKETS 24

/**
 * A histogram of latencies (nanoseconds) or sizes (bytes). bucket[i] counts
 * the values v with bound(i-1) < v <= bound(i) (not cumulative), where
 * bound(i) = DAXKV_HIST_NS_UNIT << i for latencies and
 * DAXKV_HIST_BYTES_UNIT << i for sizes, for i < DAXKV_HIST_BUCKETS - 1; the
 * last bucket counts everything above. count is the sum of the buckets.
 */
#define DAXKV_HIST_NS_UNIT 1000ull    /* 1 us, 2 us, ... 4.2 s */
#define DAXKV_HIST_BYTES_UNIT 4096ull /* 4 KiB, 8 KiB, ... 16 GiB */
struct daxkv_histogram {
    uint64_t count;
    uint64_t sum;
    uint64_t bucket[DAXKV_HIST_BUCKETS];
};

struct daxkv_stats {
    uint32_t struct_size; /* set by the caller: sizeof(struct daxkv_stats) */
    uint32_t devices;
    uint64_t slot_bytes;
    uint64_t meta_bytes;
    uint64_t capacity_bytes; /* slots_total * slot_bytes */
    uint64_t slots_total; /* usable, and past a shrink's or removal's end while taken */
    uint64_t slots_used;  /* committed + in flight + waiting for leases + quarantined (a
                             fault or failed checksum, until the next open); + free = total */
    uint64_t slots_free;
    uint64_t entries; /* committed keys */
    uint64_t entries_pinned;
    uint64_t slots_inflight;
    uint64_t slots_pending_free;
    uint64_t leases_active;
    uint64_t hits;
    uint64_t misses;
    uint64_t puts;
    uint64_t puts_existed;
    uint64_t puts_failed;
    uint64_t removes;
    uint64_t evictions;
    uint64_t bytes_written;
    uint64_t bytes_read;
    uint64_t verify_failures;
    uint64_t recovered_entries;
    uint64_t recovery_dropped_torn;
    uint64_t recovery_dropped_corrupt;
    uint64_t recovery_dropped_stale;
    uint64_t recovery_usec;
    /* Fields below were added after the first layout: filled only when
     * struct_size covers them. */
    uint64_t copy_faults; /* copies and slot header or superblock accesses that faulted
                             (sigbus=handle): slot quarantined, a read's entry dropped */
    uint64_t batches;         /* put and get batch calls, synchronous (GPU too) and submitted */
    uint64_t async_submitted; /* batches queued by daxkv_submit */
    uint64_t async_completed; /* ... that ran and posted their completion */
    uint64_t async_cancelled; /* ... cancelled by shutdown */
    struct daxkv_histogram put_latency;   /* daxkv_put, ns per call */
    struct daxkv_histogram get_latency;   /* daxkv_get, ns per call */
    struct daxkv_histogram batch_latency; /* put and get batches, ns per call */
    struct daxkv_histogram item_bytes;    /* bytes of each value stored or copied out */
    uint64_t slots_leased; /* slots with at least one lease (removed entries' too, until released) */
};

/**
 * Fill min(out->struct_size, sizeof(struct daxkv_stats)) bytes of *out (a
 * struct tag, as stat(2) does, since the function has the same name).
 */
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow" /* the function shares the struct's name, as stat(2) */
#endif
DAXKV_API int daxkv_stats(daxkv_store *s, struct daxkv_stats *out);
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
/**
 * The store's state as JSON. *needed gets the size including the NUL;
 * -ENOBUFS if cap is too small (buf may be NULL with cap 0). A device path
 * that is not valid UTF-8 is given as an array of its byte values.
 */
DAXKV_API int daxkv_status_json(daxkv_store *s, char *buf, size_t cap, size_t *needed);
/**
 * The store's counters, gauges and histograms in the Prometheus text
 * exposition format (version 0.0.4), metric names prefixed "daxkv_",
 * latencies in seconds. *needed gets the size including the NUL; -ENOBUFS
 * if cap is too small (buf may be NULL with cap 0).
 */
DAXKV_API int daxkv_stats_prometheus(daxkv_store *s, char *buf, size_t cap, size_t *needed);

/*
 * A running store's statistics, read from another process (or this one)
 * without opening or disturbing the store: each open store publishes its
 * daxkv_stats and status JSON every stats_interval milliseconds (config key,
 * default 1000; 0: not published) into a page file in $DAXKV_STATS_DIR
 * (default /dev/shm), found by the path of any of its devices. The page
 * goes when the store is shut down; one left by a store that died is
 * reported as absent.
 */

/**
 * The statistics that the running store holding the device at path last
 * published (at most stats_interval old). Fills the first out->struct_size
 * bytes. 0; -ENOENT no running store publishes for path; -EACCES; -EPROTO a
 * page of another format; -EAGAIN the store was publishing throughout;
 * -EINVAL bad arguments; -ENOMEM.
 */
DAXKV_API int daxkv_stats_peek(const char *path, struct daxkv_stats *out);
/**
 * That store's status JSON (as daxkv_status_json) with a "publisher" object
 * (pid, store_id, published_unix_ns). Two-call sizing as daxkv_status_json.
 * Errors as daxkv_stats_peek, and -ENOBUFS.
 */
DAXKV_API int daxkv_status_peek(const char *path, char *buf, size_t cap, size_t *needed);
/**
 * That store's statistics in the Prometheus text format (as
 * daxkv_stats_prometheus). Errors as daxkv_status_peek.
 */
DAXKV_API int daxkv_stats_prometheus_peek(const char *path, char *buf, size_t cap,
                                          size_t *needed);

/* ------------------------------------------------------------------------ */
/* Devices                                                                   */
/* ------------------------------------------------------------------------ */

#define DAXKV_KIND_DEVDAX 0 /* a Device-DAX character device */
#define DAXKV_KIND_FILE 1   /* a regular file (file arena) */
#define DAXKV_KIND_MEMORY 2 /* "mem:" anonymous memory */

#define DAXKV_MODE_NONE 0       /* not a DAX device */
#define DAXKV_MODE_DEVDAX 1     /* usable through its /dev node */
#define DAXKV_MODE_SYSTEM_RAM 2 /* onlined as system RAM (kmem): no usable /dev node */

typedef struct daxkv_device_info {
    uint32_t struct_size; /* set by the caller: sizeof(daxkv_device_info) */
    uint32_t kind;        /* DAXKV_KIND_* */
    uint32_t mode;        /* DAXKV_MODE_* */
    int32_t numa_node;    /* -1 unknown */
    int32_t target_node;  /* -1 unknown */
    uint32_t reserved0;
    uint64_t size;  /* bytes */
    uint64_t align; /* mapping alignment in bytes */
    char path[256]; /* /dev/daxX.Y, the file path, or "mem:" */
    char name[32];  /* daxX.Y for DAX devices */
} daxkv_device_info;

/**
 * Every DAX device on the host (devdax and system-ram modes). Fills up to
 * cap entries of out (stride: out[0].struct_size); *count gets the total
 * even when cap is smaller (then -ENOBUFS). out may be NULL with cap 0.
 */
DAXKV_API int daxkv_list_devices(daxkv_device_info *out, size_t cap, size_t *count);
/**
 * What daxkv_open would see at path: -ENOENT missing, -ENODEV not usable
 * (a regular file under /dev, judged by where the path leads, as the open
 * does); -EINVAL for a path longer than daxkv_device_info.path holds.
 */
DAXKV_API int daxkv_probe(const char *path, daxkv_device_info *out);

/* ------------------------------------------------------------------------ */
/* GPU transfers (CUDA)                                                      */
/* ------------------------------------------------------------------------ */

/*
 * libdaxkv never links the CUDA runtime: the first of these calls loads
 * libcudart (libcudart.so.13, .so.12, then libcudart.so; one already loaded
 * in the process is used first). Without a runtime the calls below return
 * -ENOTSUP, without a usable GPU -ENODEV; everything else works unchanged.
 */

/**
 * 1 if a CUDA runtime is loaded and sees at least one GPU, else 0 (then
 * daxkv_errmsg() says why: no library, no driver, no device).
 */
DAXKV_API int daxkv_cuda_available(void);

/** daxkv_cuda_register: cudaHostRegisterPortable|Mapped instead of Default. */
#define DAXKV_CUDA_MAPPED (1u << 4)

/**
 * Register the store's arena mappings with cudaHostRegister (Default flags,
 * or Portable|Mapped with DAXKV_CUDA_MAPPED; never IoMemory), in chunks of
 * at most the cuda_register_chunk key (default and maximum 64 GiB), so that
 * GPU transfers copy straight between GPU and arena. On failure every chunk
 * already registered is unregistered, CUDA's sticky error is cleared, and
 * the store keeps working with the staged path: -ENOTSUP (no runtime, or
 * the GPU cannot register host memory), -ENODEV (no GPU), -ENOMEM (the
 * driver ran out), -EBUSY (already registered, here with other flags, or
 * by someone else), -EIO (other CUDA errors). Registering again with the
 * same flags is 0. The arenas are unregistered at the latest when the
 * store is destroyed, always before they are unmapped.
 */
DAXKV_API int daxkv_cuda_register(daxkv_store *s, unsigned flags);
/**
 * Unregister the arenas, after waiting for GPU reads still copying out of
 * them. -ENOENT if they are not registered.
 */
DAXKV_API int daxkv_cuda_unregister(daxkv_store *s);

/**
 * daxkv_get_batch into GPU memory: items[i].data are device pointers (meta
 * buffers stay host memory); stream is a cudaStream_t (NULL: the default
 * stream). Statuses, value lengths, metadata, the return value and
 * DAXKV_PREFIX are those of daxkv_get_batch and are final when the call
 * returns; the bytes arrive in stream order (synchronize the stream before
 * reading them on the host). A copy that CUDA refuses gives its item -EIO.
 * The entries stay leased until the stream has completed the copies, so
 * remove and eviction never free bytes a DMA still reads.
 */
DAXKV_API int daxkv_get_batch_cuda(daxkv_store *s, daxkv_item *items, size_t n, void *stream,
                                   unsigned flags);
/**
 * daxkv_put_batch from GPU memory: items[i].data are device pointers. The
 * copies are ordered after the work already on stream; each value goes into
 * a reservation and is committed only after its copy completed, so the call
 * returns once the copies are done (statuses as daxkv_put_batch; a failed
 * copy gives -EIO and leaves the key as it was). Flags: DAXKV_REPLACE.
 */
DAXKV_API int daxkv_put_batch_cuda(daxkv_store *s, daxkv_item *items, size_t n, void *stream,
                                   unsigned flags);

/* ------------------------------------------------------------------------ */
/* Pool: several devices in one store, runtime add / remove / resize         */
/* ------------------------------------------------------------------------ */

/*
 * A store spreads entries over its devices: a new entry goes to the least
 * used writable device (placement=numa: one on the caller's NUMA node
 * first); lookups find entries on any readable device. The calls below
 * change the pool while it serves; they need hotplug=1 (else -EPERM).
 * Entries are copied without any pool-wide lock held, so reads and writes
 * of other devices go on during a migration. Error messages never repeat
 * the device path (the cause, with the path, goes to the log callback).
 */

/* Device states (daxkv_hotplug_result.state, "state" in the status JSON). */
#define DAXKV_DEV_ACTIVE 0    /* readable, writable */
#define DAXKV_DEV_DRAINING 1  /* readable; no new entries; empties as entries go */
#define DAXKV_DEV_MIGRATING 2 /* readable; its entries are being moved away */
#define DAXKV_DEV_RESIZING 3  /* readable; a resize is under way */
#define DAXKV_DEV_REMOVING 4  /* readable; waiting for leases before unmapping */
#define DAXKV_DEV_REMOVED 5   /* gone (kept in the status as a tombstone) */
#define DAXKV_DEV_MISSING 6   /* configured but not found at open */

/* Modes of daxkv_device_remove and daxkv_device_resize. */
#define DAXKV_MIGRATE 1 /* move entries to other devices (all or nothing) */
#define DAXKV_EVICT 2   /* delete entries (resize: only with DAXKV_FORCE) */
#define DAXKV_DRAIN 3   /* remove only: stop new entries, return at once */

typedef struct daxkv_hotplug_result {
    uint32_t struct_size;        /* set by the caller: sizeof(daxkv_hotplug_result) */
    uint32_t state;              /* DAXKV_DEV_* of the device after the call */
    int32_t device_index;        /* row in the status JSON's "devices" */
    uint32_t reserved0;
    uint64_t moved_keys;         /* entries copied to other devices (or lower slots) */
    uint64_t moved_bytes;        /* their value bytes */
    uint64_t deleted_keys;       /* entries deleted (DAXKV_EVICT) */
    uint64_t source_slots_freed; /* slots of the device given back */
    uint64_t old_size_bytes;     /* usable bytes before the call */
    uint64_t new_size_bytes;     /* usable bytes after the call */
    uint64_t evicted_keys;       /* cold entries of the destinations evicted to make
                                    room for moved ones (DAXKV_MIGRATE, eviction=lru) */
} daxkv_hotplug_result;

/**
 * Map and add a device to the pool (bytes 0: the whole device or existing
 * file). An arena already on it is recovered as at open: of two commits of
 * one key (on the device, or on the device and in the pool) the newer one
 * wins, and entries removed or replaced while the device was away from the
 * pool do not come back. A path that was removed (or missing at open)
 * comes back in its old row of the status. Adding a path that is already
 * in the pool, active or draining, with the same size does nothing and
 * returns 0 (a draining device stays draining); with another size,
 * -EBUSY (the size it was opened, added or last resized with, compared as
 * given: 0 matches only 0; the path as spelled). -EINVAL bad path, a size that does not fit one slot, or "mem:"
 * with bytes 0; -ENOSPC the pool already has its maximum of 64 rows (one
 * per path); mapping failures keep their code (-ENOENT, -ENODEV, -EBUSY,
 * DAXKV_E_FOREIGN, ...) with a message that does not name the path.
 */
DAXKV_API int daxkv_device_add(daxkv_store *s, const char *path, uint64_t bytes);
/**
 * Take a device out of the pool. mode DAXKV_MIGRATE moves every entry to the
 * other writable devices (with eviction=lru they make room by evicting their
 * least recently used entries, as a put does), all or nothing: when they
 * cannot hold every entry, evictions counted in, the call fails with -ENOSPC
 * before it evicts anything, the copies are dropped and the device is left
 * as it was, so a retry behaves like the first try (new pins and leases of
 * the destinations' entries wait while it evicts; writes racing with it may
 * still take the room: a call that fails after evicting says how many in
 * out->evicted_keys). DAXKV_EVICT deletes the entries. Both fail
 * with -EBUSY, before changing anything, while entries of the device are
 * pinned or leased, unless flags has DAXKV_FORCE (pins move with migrated
 * entries; the call then waits for leases before unmapping, and the pool
 * calls, which run one at a time, wait for it). A call that would so wait
 * for a lease of its own thread fails at once with -EDEADLK, changing
 * nothing, its message naming the lease's slot and device id: a forced
 * removal of a device whose entries the thread leases, and
 * daxkv_device_add, _remove or _resize while a forced removal or shrink
 * waits for a lease of the thread. A lease is the (operating-system)
 * thread's that acquired it until it is released, on whatever thread: one
 * handed to another thread to release still gives its acquirer -EDEADLK,
 * and a thread that never acquired it waits. A pool call waiting for
 * another one gets -ESHUTDOWN when the store is shut down meanwhile.
 * Without DAXKV_FORCE the call never waits for a lease: from its check to its end,
 * new leases of the device's entries (and, with DAXKV_EVICT, new pins) wait
 * for it, and then find the entry where the call left it. An open
 * reservation of the device gives -EBUSY too; with DAXKV_FORCE it is
 * cancelled instead of waited for: its commit fails with -ECANCELED, and the
 * device stays mapped for the caller's writes until it is committed or
 * aborted (adding its path back meanwhile is -EBUSY). A migration whose copy fails is -EIO and moves nothing (with
 * sigbus=handle, an entry whose bytes fault is dropped). DAXKV_DRAIN
 * only stops new entries and returns at once; see daxkv_device_wait_drained.
 * -ENOENT no such device in the pool; -ENOSPC no other writable device.
 * out (may be NULL) gets the counts.
 */
DAXKV_API int daxkv_device_remove(daxkv_store *s, const char *path, int mode, unsigned flags,
                                  daxkv_hotplug_result *out);
/**
 * Change the usable size of a device to bytes. Growing keeps every entry in
 * place; it can grow up to the size the arena was laid out for (the bytes
 * it was opened or added with, or grow_limit when that is larger; a file
 * arena's file is extended) and -ENOSPC beyond, or when the file system
 * has no room (the old size stays). Shrinking moves the entries above the new end
 * (DAXKV_MIGRATE: to lower free slots of the same device or to other
 * devices, all or nothing, -ENOSPC when there is no room) or deletes them
 * (DAXKV_EVICT, only with DAXKV_FORCE; without it -EBUSY: a shrink never
 * drops a key silently). Pinned or leased entries above the new end give
 * -EBUSY unless DAXKV_FORCE; new leases of entries above the new end wait
 * while a forced resize waits for the old ones (-EDEADLK on a thread that
 * holds one of those), and for the whole of one
 * without DAXKV_FORCE, which never waits for a lease (as
 * daxkv_device_remove); leases of entries below it never wait. A forced
 * shrink by a thread that leases an entry above the new end is -EDEADLK,
 * as is a forced removal (daxkv_device_remove).
 * Entries written above the new end during a DAXKV_EVICT shrink without
 * DAXKV_FORCE give -EBUSY, nothing deleted. Open reservations above the new
 * end are treated as by daxkv_device_remove. The usable size is recorded
 * on the device, so a reopen keeps it. -EINVAL bad mode or a size below one
 * slot; -ENOENT unknown device.
 */
DAXKV_API int daxkv_device_resize(daxkv_store *s, const char *path, uint64_t bytes, int mode,
                                  unsigned flags, daxkv_hotplug_result *out);
/**
 * Wait until a draining device holds no entries (it drains as entries are
 * removed, replaced or evicted). 0 drained; -ETIMEDOUT after timeout_ms
 * (negative: no limit); -EDEADLK instead of a wait while the calling
 * thread holds a lease of a slot of the device, or a reservation there
 * (not cancelled by a forced removal or shrink): that slot stays taken
 * until the lease is released or the reservation ended (timeout_ms 0 stays
 * -ETIMEDOUT, as it does not wait);
 * -EINVAL the device is not draining (nor being
 * removed or resized from draining, which is waited for); -ENOENT unknown;
 * -ESHUTDOWN when the store is shut down meanwhile (shutdown waits for it).
 * Drain completion is also logged (DAXKV_LOG_INFO) and shown as "drained"
 * in daxkv_pool_status_json.
 */
DAXKV_API int daxkv_device_wait_drained(daxkv_store *s, const char *path, int timeout_ms);
/**
 * The pool as JSON in the shape of LMCache's hotplug_status:
 * hotplug_enabled, slot_bytes, total_capacity_bytes, total_used_bytes,
 * num_devices, is_healthy and, per device, index, device_id, device_path,
 * state, max_dax_size_bytes, max_slots, live_slot_count, locked_key_count,
 * borrowed_slot_count, drained, ... (a device_path that is not valid UTF-8
 * as an array of its byte values). *needed gets the size including the
 * NUL; -ENOBUFS if cap is too small (buf may be NULL with cap 0).
 */
DAXKV_API int daxkv_pool_status_json(daxkv_store *s, char *buf, size_t cap, size_t *needed);

/* ------------------------------------------------------------------------ */
/* Where entries live: slots, device layouts, and the committed keys         */
/* ------------------------------------------------------------------------ */

/*
 * For callers that copy into or out of the arena themselves (LMCache's
 * core exposes its arena's base address and slot offsets) and for
 * restarted servers that must learn what the store recovered.
 */

/** Where one entry's bytes are: payload_base + offset is its first byte. */
typedef struct daxkv_slot_info {
    uint32_t struct_size; /* set by the caller: sizeof(daxkv_slot_info) */
    uint32_t device_id;   /* "device_id" of the pool status */
    uint64_t slot;        /* the slot's index on its device */
    uint64_t generation;  /* changes each time the slot is handed out again */
    uint64_t offset;      /* slot * slot_bytes */
    void *payload_base;   /* address of the device's first payload in this process */
} daxkv_slot_info;

/**
 * The slot of a lease's entry. 0, or -EINVAL for a NULL or released lease,
 * a NULL out or a struct_size below 8. Fills the first struct_size bytes.
 */
DAXKV_API int daxkv_lease_slot(const daxkv_lease *l, daxkv_slot_info *out);
/** The slot a reservation fills (same results as daxkv_lease_slot). */
DAXKV_API int daxkv_reservation_slot(const daxkv_reservation *r, daxkv_slot_info *out);

/** A device of the pool as its arena is laid out. */
typedef struct daxkv_device_layout {
    uint32_t struct_size;   /* set by the caller: sizeof(daxkv_device_layout) */
    uint32_t device_id;     /* "device_id" of the pool status */
    uint32_t state;         /* DAXKV_DEV_* */
    int32_t device_index;   /* row in the pool status's "devices" */
    uint64_t slot_bytes;
    uint64_t layout_slots;  /* slots the arena is laid out for (room to grow included) */
    uint64_t usable_slots;  /* slots in use now */
    uint64_t used_end;      /* one past the highest slot that holds or awaits an entry
                               (0: none): a shrink to n slots moves nothing when
                               used_end <= n */
    uint64_t arena_bytes;   /* bytes of the device the layout covers */
    uint64_t data_offset;   /* where the first payload starts in the device */
    void *payload_base;     /* its address in this process; NULL for a missing device.
                               Valid until the device is removed or the store closed */
} daxkv_device_layout;

/**
 * The layout of the pool's device at path. 0; -ENOENT no such device (a
 * removed one included); -EBUSY "mem:" with more than one such device;
 * -EINVAL bad arguments or a struct_size below 8; -ESHUTDOWN; -ENOMEM.
 */
DAXKV_API int daxkv_device_describe(daxkv_store *s, const char *path, daxkv_device_layout *out);

/** One committed entry, as daxkv_cursor_next reports it. */
typedef struct daxkv_key_info {
    uint32_t struct_size; /* set by the caller: sizeof(daxkv_key_info) */
    uint32_t device_id;   /* "device_id" of the pool status */
    const void *key;      /* valid until the next call on the cursor */
    size_t key_len;
    const void *meta;     /* the metadata stored with it (same lifetime); may be NULL */
    size_t meta_len;
    uint64_t value_len;
    uint64_t slot;        /* its slot on the device */
    uint64_t seq;         /* its commit sequence: a larger one is a newer commit */
    uint32_t pins;        /* pin count */
    uint32_t leases;      /* leases held on it */
} daxkv_key_info;

typedef struct daxkv_cursor daxkv_cursor;

/**
 * Start a walk over the committed keys: of every device (device_path NULL)
 * or of one device of the pool. The walk copies one index shard at a time
 * under its lock and holds no lock between calls, so it runs beside puts,
 * gets and removals: a key that stays committed for the whole walk is
 * reported exactly once (a key replaced meanwhile once, old or new value);
 * a key added or removed during the walk may or may not be. Keys in flight
 * (reserved, not committed) are not reported. The cursor keeps the store
 * alive; close it with daxkv_cursor_close. 0; -EINVAL; -ENOENT unknown
 * device; -EBUSY "mem:" with more than one such device; -ESHUTDOWN;
 * -ENOMEM.
 */
DAXKV_API int daxkv_cursor_open(daxkv_store *s, const char *device_path, daxkv_cursor **out);
/**
 * The next key: 1 and *out filled (its first struct_size bytes), 0 at the
 * end, or a negative error (-EINVAL bad arguments, -ESHUTDOWN the store was
 * shut down meanwhile). The pointers in *out stay valid until the next call
 * or daxkv_cursor_close.
 */
DAXKV_API int daxkv_cursor_next(daxkv_cursor *c, daxkv_key_info *out);
/** End a walk. NULL is fine. */
DAXKV_API void daxkv_cursor_close(daxkv_cursor *c);

/* ------------------------------------------------------------------------ */
/* Utility                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * Copy n ranges (memmove semantics per range; zero lengths skipped) on the
 * library's worker pool. A batch of 256 KiB or more is written with
 * streaming (non-temporal) stores, fenced before the call returns: the
 * copied bytes are not left in the CPU caches. flags must be 0. Ranges may
 * read the same bytes, but a batch in which a range writes a byte that
 * another range writes or reads is -EINVAL, as are a range that wraps the
 * address space and an n no array of pointers could have (nothing copied);
 * -ENOMEM; -EAGAIN when the copy threads cannot be started (nothing
 * copied).
 */
DAXKV_API int daxkv_memcpy_batch(void *const *dst, const void *const *src, const size_t *len,
                                 size_t n, unsigned flags);

#ifdef __cplusplus
}
#endif

#endif /* DAXKV_H */
