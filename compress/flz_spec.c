/* flz_spec.c: the pipeline spec string <-> flz_spec (grammar in README.md). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flz.h"
#include "flz_internal.h"

#define spec_err(err, errlen, ...) fl_errf(err, errlen, FL_ERR_CODEC_SPEC, __VA_ARGS__)

fl_status flz_spec_check(const flz_spec *s, char *err, size_t errlen)
{
    if (!s)
        return spec_err(err, errlen, "spec is NULL");
    if (s->topk != 0.0f && !(s->topk >= FLZ_MIN_FRAC && s->topk <= 1.0f))
        return spec_err(err, errlen, "topk fraction %g outside [1e-7, 1]", (double)s->topk);
    if (s->rot_log2 > 16)
        return spec_err(err, errlen, "rot block 2^%u above 65536", s->rot_log2);
    if (s->sub != 0.0f && !(s->sub >= FLZ_MIN_FRAC && s->sub < 1.0f))
        return spec_err(err, errlen, "sub fraction %g outside [1e-7, 1)", (double)s->sub);
    switch (s->value) {
    case FLZ_VALUE_Q:
        if (s->q_bits != 1 && s->q_bits != 2 && s->q_bits != 4 && s->q_bits != 8)
            return spec_err(err, errlen, "q bits %u not one of 1, 2, 4, 8", s->q_bits);
        if (s->q_log2 < 4 || s->q_log2 > 16)
            return spec_err(err, errlen, "q block 2^%u outside 16..65536", s->q_log2);
        break;
    case FLZ_VALUE_F32:
    case FLZ_VALUE_F16:
    case FLZ_VALUE_BF16:
        if (s->q_bits != 0 || s->q_log2 != 0)
            return spec_err(err, errlen, "q parameters set without a q stage");
        break;
    default:
        return spec_err(err, errlen, "value kind %d unknown", (int)s->value);
    }
    if (s->zstd != 0 && s->zstd != 1)
        return spec_err(err, errlen, "zstd flag %d not 0 or 1", s->zstd);
    if (s->zstd) {
        if (s->zstd_level < FLZ_ZSTD_MIN_LEVEL || s->zstd_level > FLZ_ZSTD_MAX_LEVEL)
            return spec_err(err, errlen, "zstd level %d outside %d..%d", s->zstd_level,
                            FLZ_ZSTD_MIN_LEVEL, FLZ_ZSTD_MAX_LEVEL);
    } else if (s->zstd_level != 0) {
        return spec_err(err, errlen, "zstd level set without a zstd stage");
    }
    return FL_OK;
}

/* Stage ranks fix the order: topk < rot < sub < value < zstd. */
enum { R_TOPK = 1, R_ROT = 2, R_SUB = 3, R_VALUE = 4, R_ZSTD = 5 };
static const char *const rank_name[] = {"", "topk", "rot", "sub", "q/f16/bf16", "zstd"};

/* A decimal fraction: digits with at most one dot, nothing else (no sign, no exponent). */
static int parse_frac(const char *p, size_t len, double *out)
{
    int dots = 0, digits = 0;
    if (len == 0 || len >= 40)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '.')
            dots++;
        else if (p[i] >= '0' && p[i] <= '9')
            digits++;
        else
            return -1;
    }
    if (dots > 1 || digits == 0)
        return -1;
    /* strtod is locale-sensitive about the decimal point; parse by hand (exact enough: the
     * result is rounded to float afterwards and compared against float bounds). */
    double v = 0.0, scale = 1.0;
    int after = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '.') {
            after = 1;
            continue;
        }
        if (after) {
            scale /= 10.0;
            v += (p[i] - '0') * scale;
        } else {
            v = v * 10.0 + (p[i] - '0');
        }
    }
    *out = v;
    return 0;
}

/* An unsigned decimal integer without leading '+' or '-', at most 9 digits. */
static int parse_uint(const char *p, size_t len, long *out)
{
    if (len == 0 || len > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

static int log2_exact(long v)
{
    if (v <= 0 || (v & (v - 1)) != 0)
        return -1;
    int l = 0;
    while ((1L << l) < v)
        l++;
    return l;
}

static int has_prefix(const char *tok, size_t len, const char *pre)
{
    const size_t k = strlen(pre);
    return len >= k && memcmp(tok, pre, k) == 0;
}

fl_status flz_spec_parse(const char *s, flz_spec *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!s || !out)
        return FL_ERR_INVALID_ARG;
    flz_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.value = FLZ_VALUE_F32;
    if (s[0] == '\0')
        return spec_err(err, errlen, "empty spec (use \"none\" for raw float32)");
    if (strcmp(s, "none") == 0) {
        *out = sp;
        return FL_OK;
    }
    if (strlen(s) > 256)
        return spec_err(err, errlen, "spec longer than 256 characters");
    int last_rank = 0;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, '+');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        const size_t pos = (size_t)(p - s);
        if (len == 0)
            return spec_err(err, errlen, "empty stage at position %zu (stray '+')", pos);
        int rank = 0;
        if (len == 4 && memcmp(p, "none", 4) == 0)
            return spec_err(err, errlen, "\"none\" cannot be combined with other stages");
        if (has_prefix(p, len, "topk")) {
            double f;
            if (parse_frac(p + 4, len - 4, &f) != 0)
                return spec_err(err, errlen, "topk at position %zu needs a fraction like topk0.01",
                                pos);
            if (!(f >= FLZ_MIN_FRAC && f <= 1.0))
                return spec_err(err, errlen, "topk fraction %.*s outside [1e-7, 1]", (int)(len - 4),
                                p + 4);
            sp.topk = (float)f;
            rank = R_TOPK;
        } else if (has_prefix(p, len, "rot")) {
            sp.rot_log2 = FLZ_DEFAULT_ROT_LOG2;
            if (len > 3) {
                long b;
                int l;
                if (parse_uint(p + 3, len - 3, &b) != 0 || (l = log2_exact(b)) < 1 || l > 16)
                    return spec_err(err, errlen,
                                    "rot block \"%.*s\" must be a power of two in 2..65536",
                                    (int)(len - 3), p + 3);
                sp.rot_log2 = (unsigned)l;
            }
            rank = R_ROT;
        } else if (has_prefix(p, len, "sub")) {
            double f;
            if (parse_frac(p + 3, len - 3, &f) != 0)
                return spec_err(err, errlen, "sub at position %zu needs a fraction like sub0.25",
                                pos);
            if (!(f >= FLZ_MIN_FRAC && f < 1.0))
                return spec_err(err, errlen, "sub fraction %.*s outside [1e-7, 1)", (int)(len - 3),
                                p + 3);
            sp.sub = (float)f;
            if (!(sp.sub < 1.0f))
                return spec_err(err, errlen, "sub fraction %.*s rounds to 1", (int)(len - 3),
                                p + 3);
            rank = R_SUB;
        } else if (has_prefix(p, len, "bf16") && len == 4) {
            if (last_rank == R_VALUE)
                return spec_err(err, errlen, "two value stages (bf16 after another)");
            sp.value = FLZ_VALUE_BF16;
            rank = R_VALUE;
        } else if (has_prefix(p, len, "f16") && len == 3) {
            if (last_rank == R_VALUE)
                return spec_err(err, errlen, "two value stages (f16 after another)");
            sp.value = FLZ_VALUE_F16;
            rank = R_VALUE;
        } else if (has_prefix(p, len, "zstd")) {
            sp.zstd = 1;
            sp.zstd_level = FLZ_DEFAULT_ZSTD_LEVEL;
            if (len > 4) {
                const int neg = p[4] == '-';
                long lv;
                if (parse_uint(p + 4 + neg, len - 4 - (size_t)neg, &lv) != 0)
                    return spec_err(err, errlen, "zstd level \"%.*s\" is not an integer",
                                    (int)(len - 4), p + 4);
                lv = neg ? -lv : lv;
                if (lv < FLZ_ZSTD_MIN_LEVEL || lv > FLZ_ZSTD_MAX_LEVEL)
                    return spec_err(err, errlen, "zstd level %ld outside %d..%d", lv,
                                    FLZ_ZSTD_MIN_LEVEL, FLZ_ZSTD_MAX_LEVEL);
                sp.zstd_level = (int)lv;
            }
            rank = R_ZSTD;
        } else if (p[0] == 'q') {
            /* q<bits>[b<block>] */
            size_t i = 1;
            while (i < len && p[i] >= '0' && p[i] <= '9')
                i++;
            long bits, blk = 1L << FLZ_DEFAULT_Q_LOG2;
            if (parse_uint(p + 1, i - 1, &bits) != 0 ||
                (bits != 1 && bits != 2 && bits != 4 && bits != 8))
                return spec_err(err, errlen, "q stage \"%.*s\": bits must be 1, 2, 4 or 8",
                                (int)len, p);
            if (i < len) {
                int l;
                if (p[i] != 'b' || parse_uint(p + i + 1, len - i - 1, &blk) != 0 ||
                    (l = log2_exact(blk)) < 4 || l > 16)
                    return spec_err(err, errlen,
                                    "q stage \"%.*s\": block must be b<power of two in 16..65536>",
                                    (int)len, p);
            }
            if (last_rank == R_VALUE)
                return spec_err(err, errlen, "two value stages (q after another)");
            sp.value = FLZ_VALUE_Q;
            sp.q_bits = (unsigned)bits;
            sp.q_log2 = (unsigned)log2_exact(blk);
            rank = R_VALUE;
        } else {
            return spec_err(err, errlen,
                            "unknown stage \"%.*s\" at position %zu (expected topk<f>, rot[<n>], "
                            "sub<f>, q<1|2|4|8>[b<n>], f16, bf16, zstd[<level>] or none)",
                            (int)(len > 32 ? 32 : len), p, pos);
        }
        if (rank == last_rank)
            return spec_err(err, errlen, "stage %s appears twice", rank_name[rank]);
        if (rank < last_rank)
            return spec_err(err, errlen, "stage %s must come before %s (order: topk, rot, sub, "
                            "q/f16/bf16, zstd)", rank_name[rank], rank_name[last_rank]);
        last_rank = rank;
        if (!end)
            break;
        p = end + 1;
    }
    const fl_status st = flz_spec_check(&sp, err, errlen);
    if (st != FL_OK)
        return st;
    *out = sp;
    return FL_OK;
}

/* Shortest fixed-point decimal that parses back to exactly f (f in [1e-7, 1]). */
static int format_frac(char *buf, size_t cap, float f)
{
    for (int prec = 1; prec <= 20; prec++) {
        char tmp[48];
        const int w = snprintf(tmp, sizeof tmp, "%.*f", prec, (double)f);
        double back;
        if (w > 0 && (size_t)w < sizeof tmp && parse_frac(tmp, (size_t)w, &back) == 0 &&
            (float)back == f) {
            return snprintf(buf, cap, "%s", tmp);
        }
    }
    return snprintf(buf, cap, "%.9f", (double)f);
}

size_t flz_spec_format(const flz_spec *spec, char *buf, size_t cap)
{
    char tmp[FLZ_SPEC_STRLEN * 2];
    size_t w = 0;
    if (flz_spec_check(spec, NULL, 0) != FL_OK) {
        if (buf && cap)
            buf[0] = '\0';
        return 0;
    }
#define APPEND(...) w += (size_t)snprintf(tmp + w, sizeof tmp - w, __VA_ARGS__)
    if (spec->topk != 0.0f) {
        APPEND("topk");
        w += (size_t)format_frac(tmp + w, sizeof tmp - w, spec->topk);
    }
    if (spec->rot_log2)
        APPEND("%srot%u", w ? "+" : "", 1u << spec->rot_log2);
    if (spec->sub != 0.0f) {
        APPEND("%ssub", w ? "+" : "");
        w += (size_t)format_frac(tmp + w, sizeof tmp - w, spec->sub);
    }
    switch (spec->value) {
    case FLZ_VALUE_Q:
        APPEND("%sq%ub%u", w ? "+" : "", spec->q_bits, 1u << spec->q_log2);
        break;
    case FLZ_VALUE_F16:
        APPEND("%sf16", w ? "+" : "");
        break;
    case FLZ_VALUE_BF16:
        APPEND("%sbf16", w ? "+" : "");
        break;
    default:
        break;
    }
    if (spec->zstd)
        APPEND("%szstd%d", w ? "+" : "", spec->zstd_level);
    if (w == 0)
        APPEND("none");
#undef APPEND
    if (buf && cap)
        snprintf(buf, cap, "%s", tmp);
    return w;
}
