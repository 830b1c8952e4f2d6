/* fuzz_codec.c: decode arbitrary bytes as an flz payload.
 *
 * Input: byte 0 = mode, bytes 1-2 = an expected length (little-endian, at most 4096), the rest =
 * the payload. Mode bit 0 set: expect the length the header states when it is at most 4096
 * (reaches the body decoders); clear: expect bytes 1-2 (exercises the length check). Mode bit 3
 * set: the header checksum is recomputed first, so that mutated header fields get past it and
 * reach the field checks and the body decoders with odd parameters. Every
 * decode must return one of the documented codes; on success every output is finite and
 * flz_decode_axpy agrees with flz_decode, and flz_decode_par (split in 2-8 pieces by the mode's
 * high bits, run in reverse order) gives flz_decode's status and, on success, its bits. One
 * context is reused across inputs, as a server would.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flz.h"

#define CAP 4096
#define MAXLEN 65536

/* The header checksum (FNV-1a 32 of bytes 0..47), as compress/flz_codec.c computes it. */
static void fix_checksum(uint8_t *h)
{
    uint32_t x = 2166136261u;
    for (int i = 0; i < 48; i++)
        x = (x ^ h[i]) * 16777619u;
    h[48] = (uint8_t)x, h[49] = (uint8_t)(x >> 8), h[50] = (uint8_t)(x >> 16), h[51] = (uint8_t)(x >> 24);
}

/* A parallel-for that runs the pieces on this thread, last first. */
static void run_reversed(void *pool, void (*fn)(void *arg, unsigned i), void *arg, unsigned n)
{
    (void)pool;
    while (n-- > 0)
        fn(arg, n);
}

static void check(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static flz_ctx *ctx;
    static float out[CAP], acc[CAP], split[CAP];
    static uint8_t copy[MAXLEN];
    if (!ctx && flz_ctx_new(NULL, &ctx) != FL_OK)
        return 0;
    if (size < 3)
        return 0;
    const uint8_t mode = data[0];
    size_t n = (size_t)(data[1] | data[2] << 8) % (CAP + 1);
    const uint8_t *p = data + 3;
    const size_t len = size - 3;
    if ((mode & 8) && len >= FLZ_HEADER_SIZE && len <= MAXLEN) {
        memcpy(copy, p, len);
        fix_checksum(copy);
        p = copy;
    }
    flz_info info;
    const fl_status pst = flz_peek(p, len, &info);
    check(pst == FL_OK || pst == FL_ERR_CODEC_HEADER);
    if ((mode & 1) && pst == FL_OK && info.n <= CAP)
        n = info.n;
    if (mode & 2) /* alternate the kernel set, when there is a choice */
        flz_ctx_set_isa(ctx, !(mode & 4) ? FLZ_ISA_PORTABLE
                                 : (mode & 0x80) ? FLZ_ISA_AVX512 : FLZ_ISA_AVX2);
    const fl_status st = flz_decode(ctx, p, len, out, n);
    check(st == FL_OK || st == FL_ERR_CODEC_HEADER || st == FL_ERR_CODEC_CORRUPT ||
          st == FL_ERR_CODEC_LENGTH || st == FL_ERR_NOMEM);
    if (pst != FL_OK)
        check(st == FL_ERR_CODEC_HEADER);
    const fl_par par = {run_reversed, NULL, 2 + (unsigned)(mode >> 4) % 7, 1};
    const fl_status st3 = flz_decode_par(ctx, p, len, split, n, &par);
    check(st3 == st);
    if (st == FL_OK)
        check(memcmp(split, out, n * sizeof(float)) == 0);
    for (size_t i = 0; i < n; i++)
        acc[i] = (float)i;
    const fl_status st2 = flz_decode_axpy(ctx, p, len, 2.0f, acc, n);
    check(st2 == st);
    if (st == FL_OK) {
        for (size_t i = 0; i < n; i++) {
            check(isfinite(out[i]));
            check(acc[i] == (float)i + 2.0f * out[i]);
        }
    } else {
        for (size_t i = 0; i < n; i++)
            check(acc[i] == (float)i);
    }
    return 0;
}
