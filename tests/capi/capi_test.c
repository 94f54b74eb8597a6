/*
 * The C API from a C99 program, through the installed-layout header. Run
 * with no argument it uses a file arena in a temporary directory; with a
 * path (e.g. /dev/dax0.0 in the guest rig) it runs against that device.
 *
 * Bad inputs tried here: NULL handles, NULL out pointers, key length 0 and
 * DAXKV_KEY_MAX + 1, a value larger than the slot, an unknown config key, a
 * malformed size, a too-small destination, operations after shutdown.
 */
#include <daxkv.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int passed, failed;

/* A per-run number for the temporary arena name (C99 has no getpid). */
static long rand_id(void) {
    long v = (long)(size_t)&passed ^ (long)time(NULL);
    return v < 0 ? -v : v;
}

#define CHECK(cond, what)                                                                      \
    do {                                                                                       \
        if (cond) {                                                                            \
            passed++;                                                                          \
        } else {                                                                               \
            failed++;                                                                          \
            printf("FAIL %s:%d: %s (errmsg: %s)\n", __FILE__, __LINE__, what, daxkv_errmsg()); \
        }                                                                                      \
    } while (0)

static void fill(unsigned char *p, size_t n, unsigned seed) {
    size_t i;
    for (i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 131u + i * 7u + (i >> 8));
}

int main(int argc, char **argv) {
    char path[256];
    const char *device = argc > 1 ? argv[1] : NULL;
    const size_t slot = 2u << 20;
    daxkv_config *cfg = NULL;
    daxkv_store *s = NULL;
    unsigned char *val, *out;
    size_t len = 0;
    int rc, i;
    char key513[DAXKV_KEY_MAX + 1];
    daxkv_item items[4];
    const char *keys[4] = {"chunk-0", "chunk-1", "missing", "chunk-3"};
    struct daxkv_stats st;
    daxkv_lease *lease = NULL;
    daxkv_reservation *res = NULL;

    CHECK(daxkv_version_number() == DAXKV_VERSION_NUMBER, "version number matches the header");
    CHECK(strcmp(daxkv_version_string(), DAXKV_VERSION_STRING) == 0, "version string");
    CHECK(daxkv_strerror(DAXKV_E_FOREIGN) != NULL, "strerror of a daxkv code");

    CHECK(daxkv_config_new(NULL) == -EINVAL, "config_new(NULL)");
    CHECK(daxkv_config_new(&cfg) == 0 && cfg, "config_new");
    CHECK(daxkv_config_set(cfg, "no_such_key", "1") == -EINVAL, "unknown key");
    CHECK(strstr(daxkv_errmsg(), "no_such_key") != NULL, "errmsg names the key");
    CHECK(daxkv_config_set(cfg, "slot_bytes", "12XB") == -EINVAL, "malformed size");
    CHECK(daxkv_config_set(cfg, "slot_bytes", "2MiB") == 0, "slot_bytes");
    CHECK(daxkv_open(NULL, cfg) == -EINVAL, "open(NULL out)");
    CHECK(daxkv_open(&s, NULL) == -EINVAL && s == NULL, "open(NULL config)");
    CHECK(daxkv_open(&s, cfg) == -EINVAL && s == NULL, "open without a device");
    if (device) {
        rc = daxkv_config_add_device(cfg, device, 0);
    } else {
        snprintf(path, sizeof path, "/tmp/daxkv-capi-%ld.arena", (long)rand_id());
        remove(path);
        rc = daxkv_config_add_device(cfg, path, 64u << 20);
    }
    CHECK(rc == 0, "add_device");
    CHECK(daxkv_config_set(cfg, "on_mismatch", "reformat") == 0, "on_mismatch");
    rc = daxkv_open(&s, cfg);
    CHECK(rc == 0 && s, "open");
    if (rc != 0) {
        daxkv_config_free(cfg);
        printf("%d passed, %d failed\n", passed, failed + 1);
        return 1;
    }

    val = malloc(slot + 1);
    out = malloc(slot + 1);
    fill(val, slot + 1, 1);
    CHECK(daxkv_put(s, "k", 0, val, 16, 0) == -EINVAL, "key length 0");
    memset(key513, 'k', sizeof key513);
    CHECK(daxkv_put(s, key513, sizeof key513, val, 16, 0) == -EINVAL, "key length 513");
    CHECK(daxkv_put(s, NULL, 1, val, 16, 0) == -EINVAL, "NULL key");
    CHECK(daxkv_put(NULL, "k", 1, val, 16, 0) == -EINVAL, "NULL store");
    CHECK(daxkv_put(s, "big", 3, val, slot + 1, 0) == -E2BIG, "value larger than the slot");

    CHECK(daxkv_put(s, "chunk-0", 7, val, slot, 0) == 0, "put full slot");
    CHECK(daxkv_put(s, "chunk-0", 7, val, slot, 0) == DAXKV_EXISTED, "put existing key");
    CHECK(daxkv_get(s, "chunk-0", 7, out, slot, &len) == 0 && len == slot &&
              memcmp(out, val, slot) == 0,
          "get returns the exact bytes");
    CHECK(daxkv_get(s, "chunk-0", 7, out, 10, &len) == -ENOBUFS && len == slot,
          "small destination reports the size");
    CHECK(daxkv_get(s, "nope", 4, out, slot, &len) == -ENOENT, "miss");
    CHECK(daxkv_contains(s, "chunk-0", 7) == 1 && daxkv_contains(s, "nope", 4) == 0, "contains");

    /* Batches with a positional hole and prefix mode. */
    fill(val, slot, 2);
    CHECK(daxkv_put(s, "chunk-1", 7, val, 1000, 0) == 0, "put small value");
    CHECK(daxkv_put(s, "chunk-3", 7, val, 3000, 0) == 0, "put another");
    for (i = 0; i < 4; i++) {
        memset(&items[i], 0, sizeof items[i]);
        items[i].key = keys[i];
        items[i].key_len = strlen(keys[i]);
        items[i].data = out + (size_t)i * 4096;
        items[i].len = i == 0 ? slot : 4096;
    }
    items[0].data = malloc(slot);
    rc = daxkv_get_batch(s, items, 4, 0);
    CHECK(rc == 3 && items[2].status == -ENOENT && items[1].len == 1000 && items[3].len == 3000,
          "get_batch keeps positional holes");
    CHECK(memcmp(out + 4096, val, 1000) == 0 && memcmp(out + 3 * 4096, val, 3000) == 0,
          "get_batch bytes");
    CHECK(daxkv_get_batch(s, items, 4, DAXKV_PREFIX) == 2, "get_batch prefix stops at the miss");
    CHECK(daxkv_contains_batch(s, items, 4, DAXKV_PREFIX | DAXKV_PIN) == 2, "contains prefix+pin");
    CHECK(daxkv_remove(s, "chunk-0", 7, 0) == -EBUSY, "pinned key resists remove");
    CHECK(daxkv_unpin_batch(s, items, 2, 0) == 2, "unpin_batch");
    free(items[0].data);

    /* Zero copy. */
    CHECK(daxkv_lease_acquire(s, "chunk-1", 7, &lease) == 0 && daxkv_lease_size(lease) == 1000 &&
              memcmp(daxkv_lease_data(lease), val, 1000) == 0,
          "lease reads in place");
    CHECK(daxkv_remove(s, "chunk-1", 7, 0) == 0, "remove a leased key");
    CHECK(memcmp(daxkv_lease_data(lease), val, 1000) == 0, "leased bytes survive the remove");
    daxkv_lease_release(lease);
    daxkv_lease_release(NULL);
    CHECK(daxkv_reserve(s, "res", 3, 512, &res) == 0 && res, "reserve");
    CHECK(daxkv_contains(s, "res", 3) == 0, "reserved key is not visible");
    memcpy(daxkv_reservation_data(res), val, 512);
    CHECK(daxkv_reservation_set_meta(res, "meta", 4) == 0, "set meta");
    CHECK(daxkv_commit(res) == 0 && daxkv_contains(s, "res", 3) == 1, "commit");
    daxkv_abort(NULL);

    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    CHECK(daxkv_stats(s, &st) == 0 && st.entries == 3 && st.devices == 1, "stats");
    {
        size_t need = 0;
        char small[4];
        CHECK(daxkv_status_json(s, small, sizeof small, &need) == -ENOBUFS && need > 4,
              "status_json reports the size needed");
    }
    {
        char a[64], b[64];
        void *dst[1];
        const void *src[1];
        size_t n[1] = {64};
        memset(a, 'a', 64);
        dst[0] = b;
        src[0] = a;
        CHECK(daxkv_memcpy_batch(dst, src, n, 1, 0) == 0 && memcmp(a, b, 64) == 0, "memcpy_batch");
    }
    {
        /* GPU transfers: whatever CUDA this host has (none, no GPU, a GPU),
         * the calls answer; argument errors come first. */
        int avail = daxkv_cuda_available();
        daxkv_item it;
        memset(&it, 0, sizeof it);
        CHECK(avail == 0 || avail == 1, "cuda_available is 0 or 1");
        CHECK(avail == 1 || strlen(daxkv_errmsg()) > 0, "cuda_available 0 says why");
        CHECK(daxkv_cuda_register(NULL, 0) == -EINVAL, "cuda_register(NULL)");
        CHECK(daxkv_get_batch_cuda(s, NULL, 1, NULL, 0) == -EINVAL, "get_batch_cuda(NULL items)");
        CHECK(daxkv_put_batch_cuda(NULL, &it, 1, NULL, 0) == -EINVAL, "put_batch_cuda(NULL store)");
        rc = daxkv_get_batch_cuda(s, &it, 0, NULL, 0);
        CHECK(avail ? rc == 0 : (rc == -ENOTSUP || rc == -ENODEV),
              "get_batch_cuda of nothing: 0 with a GPU, -ENOTSUP/-ENODEV without");
    }

    CHECK(daxkv_shutdown(s) == 0, "shutdown");
    CHECK(daxkv_put(s, "late", 4, val, 1, 0) == -ESHUTDOWN, "put after shutdown");
    CHECK(daxkv_get(s, "res", 3, out, slot, &len) == -ESHUTDOWN, "get after shutdown");
    daxkv_close(s);
    daxkv_close(NULL);
    daxkv_config_free(cfg);
    daxkv_config_free(NULL);
    if (!device)
        remove(path);
    free(val);
    free(out);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
