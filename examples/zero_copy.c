/* zero_copy: write a value in place with a reservation and read it in
 * place with a lease, without copying it through a buffer of your own.
 *
 *   ./zero_copy [ARENA]     (default: a temporary file, removed at the end)
 */
#include <daxkv.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char tmp[64];
    const char *arena = argc > 1 ? argv[1] : tmp;
    daxkv_config *cfg = NULL;
    daxkv_store *s = NULL;
    daxkv_reservation *r = NULL;
    daxkv_lease *l = NULL;
    const size_t n = 1u << 20;
    const unsigned char *in;
    unsigned char *p;
    size_t i;
    int rc, ok = 1;

    snprintf(tmp, sizeof tmp, "/tmp/daxkv-zero_copy-%ld.arena", (long)getpid());
    if ((rc = daxkv_config_new(&cfg)) != 0 ||
        (rc = daxkv_config_set(cfg, "slot_bytes", "1MiB")) != 0 ||
        (rc = daxkv_config_add_device(cfg, arena, 16u << 20)) != 0 ||
        (rc = daxkv_open(&s, cfg)) != 0) {
        fprintf(stderr, "zero_copy: %s: %s\n", daxkv_strerror(rc), daxkv_errmsg());
        daxkv_config_free(cfg);
        return 1;
    }
    daxkv_config_free(cfg);

    /* Reserve a slot, fill it where it lies, commit: only then can readers
     * see the key (abort instead would leave no trace). An earlier run on
     * the same arena stored it already: DAXKV_EXISTED, no reservation, and
     * replaced here so that this run writes it again. */
    rc = daxkv_reserve(s, "tensor-7", 8, n, &r);
    if (rc == DAXKV_EXISTED && (rc = daxkv_remove(s, "tensor-7", 8, 0)) == 0)
        rc = daxkv_reserve(s, "tensor-7", 8, n, &r);
    if (rc != 0) {
        fprintf(stderr, "zero_copy: reserve: %s\n", rc > 0 ? "the key is stored" : daxkv_errmsg());
        daxkv_close(s);
        return 1;
    }
    p = daxkv_reservation_data(r);
    for (i = 0; i < n; i++)
        p[i] = (unsigned char)(i % 251);
    if ((rc = daxkv_commit(r)) < 0) {
        fprintf(stderr, "zero_copy: commit: %s\n", daxkv_errmsg());
        daxkv_close(s);
        return 1;
    }

    /* A lease keeps the bytes valid (even across a remove) until released. */
    if ((rc = daxkv_lease_acquire(s, "tensor-7", 8, &l)) != 0) {
        fprintf(stderr, "zero_copy: lease: %s\n", daxkv_errmsg());
        daxkv_close(s);
        return 1;
    }
    in = daxkv_lease_data(l);
    if (daxkv_lease_size(l) != n)
        ok = 0;
    for (i = 0; ok && i < n; i++)
        ok = in[i] == (unsigned char)(i % 251);
    daxkv_lease_release(l);
    if (ok)
        printf("zero_copy: %zu bytes written and read in place\n", n);
    else
        fprintf(stderr, "zero_copy: the leased bytes differ\n");
    daxkv_close(s);
    if (argc <= 1)
        unlink(tmp);
    return ok ? 0 : 1;
}
