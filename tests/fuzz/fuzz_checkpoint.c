/* fuzz_checkpoint: the checkpoint parser (fls_ckpt_parse) and the policy-state importer
 * (fls_policy_import) on arbitrary bytes. Whatever parses must serialise back to the same bytes
 * and must never crash, leak or allocate beyond the input's size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

static void try_ckpt(const uint8_t *data, size_t size)
{
    fls_ckpt c;
    char err[160];
    if (fls_ckpt_parse(data, size, &c, err, sizeof err) == FL_OK) {
        uint8_t *out = NULL;
        size_t n = 0;
        if (fls_ckpt_serialize(&c, &out, &n) != FL_OK || n != size || memcmp(out, data, n))
            abort();
        free(out);
        try_policy(c.policy, c.policy_len);
        fls_ckpt_clear(&c);
    }
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
