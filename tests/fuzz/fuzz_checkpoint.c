/* fuzz_checkpoint: the checkpoint parser (fls_ckpt_parse) and the policy-state importer
 * (fls_policy_import) on arbitrary bytes. Whatever parses must serialise back to the same bytes
 * and must never crash, leak or allocate beyond the input's size. The readers of files
 * (fls_ckpt_read_fd, at an offset in a file framed by another format as fl_sim's resume.fls is,
 * and fls_ckpt_read of a path), which parse as they read through a 16 KiB buffer, must give the
 * same status and message as fls_ckpt_parse of the same bytes, and the same checkpoint; a
 * length said past the file's end never gives a checkpoint. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fl_sha256.h"
#include "fl_status.h"
#include "flm_arch.h"
#include "fls_ckpt.h"
#include "fls_policy.h"

static void try_policy(const uint8_t *buf, size_t len)
{
    /* The corpus' policy sections come from these architectures and kinds (keep_p 0.75); the
     * moge one has grouped units (12 experts in 3 groups), whose keep-sets must keep as many of
     * each group. */
    static const char *const archs[] = {"mlp:6-5-4-3", "mlp:5-4-2", "moge:6:4:3:4:1:2"};
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
        flm_arch arch;
        if (flm_arch_parse(archs[a], &arch, NULL, 0) != FL_OK)
            abort();
        for (int k = FLS_POLICY_FULL; k <= FLS_POLICY_AFD_MULTI; k++) {
            fls_policy_config cfg = fls_policy_config_default();
            cfg.kind = (fls_policy_kind)k;
            fls_policy *p = NULL;
            if (fls_policy_new(&cfg, &arch, 1, &p) != FL_OK)
                abort();
            if (fls_policy_import(p, buf, len) == FL_OK) {
                uint8_t *out = NULL;
                size_t n = 0;
                if (fls_policy_export(p, &out, &n) != FL_OK || n < 8)
                    abort();
                if (buf[4] != 1) { /* the current version: what imports exports identically */
                    if (n != len || memcmp(out, buf, n))
                        abort();
                } else { /* version 1 comes back as the current one, which round-trips */
                    fls_policy *q = NULL;
                    uint8_t *out2 = NULL;
                    size_t n2 = 0;
                    if (fls_policy_new(&cfg, &arch, 1, &q) != FL_OK ||
                        fls_policy_import(q, out, n) != FL_OK ||
                        fls_policy_export(q, &out2, &n2) != FL_OK || n2 != n ||
                        memcmp(out, out2, n))
                        abort();
                    free(out2);
                    fls_policy_free(q);
                }
                free(out);
                /* The imported state must be usable: one full round. */
                if (fls_policy_begin_round(p, 3) != FL_OK)
                    abort();
                const flm_keepset *ks;
                if (fls_policy_keepset(p, 0, &ks) != FL_OK || flm_keepset_validate(ks, &arch))
                    abort();
                fls_policy_report(p, 0, 0.5, 2);
                if (fls_policy_end_round(p, NULL) != FL_OK)
                    abort();
            }
            fls_policy_free(p);
        }
    }
}

/* What a reader of files made of data's bytes: the same status and message as parse's (st, err),
 * and when it parsed, the same bytes back. */
static void check_read(fl_status got, fls_ckpt *c, const char *got_err, fl_status st,
                       const char *err, const uint8_t *data, size_t size)
{
    if (got != st || strcmp(got_err, err) != 0)
        abort();
    if (got == FL_OK) {
        uint8_t *out = NULL;
        size_t n = 0;
        if (fls_ckpt_serialize(c, &out, &n) != FL_OK || n != size || memcmp(out, data, n))
            abort();
        free(out);
        fls_ckpt_clear(c);
    }
}

/* The file readers on data's bytes, after a 3-byte frame of another format's. */
static void try_files(const uint8_t *data, size_t size, fl_status st, const char *err)
{
    static const uint8_t head[3] = {'F', 'L', 'S'};
    const int fd = memfd_create("fuzz_checkpoint", 0);
    if (fd < 0)
        return; /* no memfd here: nothing to compare */
    if (write(fd, head, sizeof head) != (ssize_t)sizeof head ||
        (size && write(fd, data, size) != (ssize_t)size))
        abort();
    fls_ckpt c;
    char got_err[160] = "";
    fl_status got = fls_ckpt_read_fd(fd, sizeof head, size, &c, got_err, sizeof got_err);
    check_read(got, &c, got_err, st, err, data, size);
    /* a length past the file's end: never a checkpoint (the bytes end early, or what was read
     * first is refused, as the header's body length against the length said) */
    got = fls_ckpt_read_fd(fd, sizeof head, (uint64_t)size + 1, &c, got_err, sizeof got_err);
    if (got == FL_OK || (st == FL_OK && got != FL_ERR_IO && got != FL_ERR_CHECKPOINT_FORMAT))
        abort();
    /* by path: the whole file, less the frame */
    if (ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET) != 0 ||
        (size && write(fd, data, size) != (ssize_t)size))
        abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    got_err[0] = 0;
    got = fls_ckpt_read(path, 0, &c, got_err, sizeof got_err);
    check_read(got, &c, got_err, st, err, data, size);
    close(fd);
}

static void try_ckpt(const uint8_t *data, size_t size)
{
    fls_ckpt c;
    char err[160] = "";
    const fl_status st = fls_ckpt_parse(data, size, &c, err, sizeof err);
    if (st == FL_OK) {
        uint8_t *out = NULL;
        size_t n = 0;
        if (fls_ckpt_serialize(&c, &out, &n) != FL_OK || n != size || memcmp(out, data, n))
            abort();
        free(out);
        try_policy(c.policy, c.policy_len);
        fls_ckpt_clear(&c);
    }
    try_files(data, size, st, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_ckpt(data, size);
    /* Mutations rarely keep the SHA-256 valid: parse again with the checksum recomputed, so the
     * section parsers behind it see the damage too. */
    if (size >= 56 && size <= (1u << 20)) {
        uint8_t *fixed = malloc(size);
        if (!fixed)
            return 0;
        memcpy(fixed, data, size);
        if (fl_sha256_digest(fixed + size - FL_SHA256_LEN, fixed, size - FL_SHA256_LEN) == FL_OK)
            try_ckpt(fixed, size);
        free(fixed);
    }
    /* The raw bytes as a policy section too. */
    try_policy(data, size);
    return 0;
}
