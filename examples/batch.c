/* batch: store and restore many chunks in one call each, as an inference
 * server saves and reloads the KV cache of a prompt prefix.
 *
 *   ./batch [ARENA]     (default: a temporary file, removed at the end)
 */
#include <daxkv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNKS 64
#define CHUNK_BYTES (256u << 10)

int main(int argc, char **argv) {
    char tmp[64], keys[CHUNKS][32];
    const char *arena = argc > 1 ? argv[1] : tmp;
    daxkv_item items[CHUNKS];
    daxkv_config *cfg = NULL;
    daxkv_store *s = NULL;
    unsigned char *src = malloc((size_t)CHUNKS * CHUNK_BYTES);
    unsigned char *dst = calloc(CHUNKS, CHUNK_BYTES);
    size_t i;
    int rc, ok = 0;

    snprintf(tmp, sizeof tmp, "/tmp/daxkv-batch-%ld.arena", (long)getpid());
    if (!src || !dst)
        return 1;
    for (i = 0; i < (size_t)CHUNKS * CHUNK_BYTES; i++)
        src[i] = (unsigned char)(i * 131 + i / CHUNK_BYTES);
    if ((rc = daxkv_config_new(&cfg)) != 0 ||
        (rc = daxkv_config_set(cfg, "slot_bytes", "256KiB")) != 0 ||
        (rc = daxkv_config_add_device(cfg, arena, 64u << 20)) != 0 ||
        (rc = daxkv_open(&s, cfg)) != 0) {
        fprintf(stderr, "batch: %s: %s\n", daxkv_strerror(rc), daxkv_errmsg());
        daxkv_config_free(cfg);
        return 1;
    }
    daxkv_config_free(cfg);

    memset(items, 0, sizeof items);
    for (i = 0; i < CHUNKS; i++) {
        snprintf(keys[i], sizeof keys[i], "prompt-42/chunk-%zu", i);
        items[i].key = keys[i];
        items[i].key_len = strlen(keys[i]);
        items[i].data = src + i * CHUNK_BYTES;
        items[i].len = CHUNK_BYTES;
    }
    /* The worker pool copies the chunks in parallel; the call returns the
     * number stored, and each item's status says how it went: 0 stored,
     * DAXKV_EXISTED already there (an earlier run on the same arena, which
     * stored the same bytes), or what failed. */
    rc = daxkv_put_batch(s, items, CHUNKS, 0);
    if (rc < 0) {
        fprintf(stderr, "batch: put_batch: %s\n", daxkv_errmsg());
        goto out;
    }
    for (i = 0; i < CHUNKS; i++) {
        if (items[i].status < 0) {
            fprintf(stderr, "batch: chunk %zu: %s\n", i, daxkv_strerror(items[i].status));
            goto out;
        }
    }
    for (i = 0; i < CHUNKS; i++) {
        items[i].data = dst + i * CHUNK_BYTES;
        items[i].len = CHUNK_BYTES; /* capacity in, bytes read out */
    }
    rc = daxkv_get_batch(s, items, CHUNKS, DAXKV_PREFIX); /* stop at the first miss */
    if (rc != CHUNKS || memcmp(src, dst, (size_t)CHUNKS * CHUNK_BYTES) != 0) {
        fprintf(stderr, "batch: get_batch restored %d of %d, or other bytes\n", rc, CHUNKS);
        goto out;
    }
    printf("batch: %d chunks of %u KiB stored and restored byte for byte\n", CHUNKS,
           CHUNK_BYTES >> 10);
    ok = 1;
out:
    daxkv_close(s);
    if (argc <= 1)
        unlink(tmp);
    free(src);
    free(dst);
    return ok ? 0 : 1;
}
