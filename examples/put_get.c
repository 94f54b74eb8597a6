/* put_get: open a store on a file arena, store one value, read it back.
 *
 *   ./put_get [ARENA]     (default: a temporary file, removed at the end)
 *
 * ARENA may be a Device-DAX device (/dev/dax0.0), a file, or "mem:".
 */
#include <daxkv.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char tmp[64], value[4096] = "the KV bytes of layer 0, chunk 0", out[4096];
    const char *arena = argc > 1 ? argv[1] : tmp;
    daxkv_config *cfg = NULL;
    daxkv_store *s = NULL;
    size_t len = 0;
    int rc;

    snprintf(tmp, sizeof tmp, "/tmp/daxkv-put_get-%ld.arena", (long)getpid());
    if ((rc = daxkv_config_new(&cfg)) != 0 ||
        (rc = daxkv_config_set(cfg, "slot_bytes", "4KiB")) != 0 ||
        /* 0 bytes would mean "the whole device"; a new file needs a size */
        (rc = daxkv_config_add_device(cfg, arena, 16u << 20)) != 0 ||
        (rc = daxkv_open(&s, cfg)) != 0) {
        fprintf(stderr, "put_get: %s: %s\n", daxkv_strerror(rc), daxkv_errmsg());
        daxkv_config_free(cfg);
        return 1;
    }
    daxkv_config_free(cfg); /* the store keeps what it needs */

    rc = daxkv_put(s, "layer0/chunk0", 13, value, sizeof value, 0);
    if (rc < 0) /* 0: stored; DAXKV_EXISTED: the key was there already */
        fprintf(stderr, "put_get: put: %s\n", daxkv_errmsg());
    else if ((rc = daxkv_get(s, "layer0/chunk0", 13, out, sizeof out, &len)) != 0)
        fprintf(stderr, "put_get: get: %s\n", daxkv_errmsg());
    else if (len != sizeof value || memcmp(out, value, len) != 0)
        rc = -1, fprintf(stderr, "put_get: the bytes read back differ\n");
    else
        printf("put_get: %zu bytes stored and read back: \"%s\"\n", len, out);

    daxkv_close(s);
    if (argc <= 1)
        unlink(tmp);
    return rc < 0 ? 1 : 0;
}
