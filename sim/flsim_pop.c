/* flsim_pop.c: the virtual population (device profiles, availability) and the virtual clock. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_rng.h"
#include "flsim.h"
#include "flsim_internal.h"

/* A finite decimal number with an optional SI suffix (k, M, G, T); the whole string must be used
 * (no leading space, no hexadecimal float: what the trace parser takes too). */
int flsim_parse_number(const char *s, double *out)
{
    if (!s || !*s)
        return 0;
    const char *d = s + (*s == '+' || *s == '-');
    if (!((*d >= '0' && *d <= '9') || *d == '.') || strpbrk(s, "xX"))
        return 0;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || errno == ERANGE)
        return 0;
    if (*end) {
        static const char suf[] = "kMGT";
        const char *q = strchr(suf, *end);
        if (!q || end[1])
            return 0;
        v *= pow(1e3, (double)(q - suf + 1));
    }
    if (!isfinite(v))
        return 0;
    /* "-0" is 0: a negative zero kept would be a setting of its own where settings are
     * compared by their bits or their text (--momentum -0, then --resume 1 --momentum 0, was
     * refused by the server core's checkpoint: "train.momentum 0 -> 0"; diurnal:-0:1 by
     * resume.fls as another availability), and summary.json would say -0 */
    *out = v == 0.0 ? 0.0 : v;
    return 1;
}

/* Splits s at ':' into at most max fields (copied into buf). Returns the field count. */
static int split_colon(const char *s, char *buf, size_t cap, char **f, int max)
{
    if (strlen(s) >= cap)
        return max + 1; /* longer than any valid spec: refused, not cut */
    snprintf(buf, cap, "%s", s);
    int n = 0;
    char *p = buf;
    while (n < max) {
        f[n++] = p;
        char *c = strchr(p, ':');
        if (!c)
            return n;
        *c = '\0';
        p = c + 1;
    }
    return n + 1; /* too many */
}

/* The largest |z| fl_rng_normal returns: it floors its first uniform at 1e-300, so
 * sqrt(-2 ln 1e-300) = 37.17 (a uniform of exactly 0, one draw in 2^53). */
static double normal_zmax(void)
{
    return sqrt(-2.0 * log(1e-300));
}

double flsim_dist_max(const flsim_dist *d)
{
    return d->kind == FLSIM_DIST_LOGNORMAL ? d->median * exp(d->sigma * normal_zmax())
                                           : d->median;
}

fl_status flsim_dist_parse(const char *s, flsim_dist *out, char *err, size_t errlen)
{
    if (!s || !out)
        return FL_ERR_INVALID_ARG;
    char buf[128];
    char *f[4];
    const int n = split_colon(s, buf, sizeof buf, f, 3);
    flsim_dist d = {FLSIM_DIST_CONST, 0, 0};
    int ok = 0;
    if (n == 1)
        ok = flsim_parse_number(f[0], &d.median) && d.median > 0;
    else if (n == 2 && strcmp(f[0], "const") == 0)
        ok = flsim_parse_number(f[1], &d.median) && d.median > 0;
    else if (n == 3 && strcmp(f[0], "lognormal") == 0) {
        d.kind = FLSIM_DIST_LOGNORMAL;
        ok = flsim_parse_number(f[1], &d.median) && d.median > 0 &&
             flsim_parse_number(f[2], &d.sigma) && d.sigma >= 0 && d.sigma <= 10;
    }
    if (ok && d.median < FLSIM_RATE_MIN) {
        /* > 0, but the clock could overflow: said now, not at the round it happens in */
        if (err && errlen)
            snprintf(err, errlen, "'%s'%s is below 1 (FLOP/s or bit/s), the least rate fl_sim "
                     "takes (a smaller one can overflow the virtual clock)", s,
                     d.kind == FLSIM_DIST_LOGNORMAL ? ": the median" : "");
        return FL_ERR_INVALID_ARG;
    }
    if (ok && !isfinite(flsim_dist_max(&d))) {
        /* half its draws would be +inf (a client that computes and sends in no time) */
        if (err && errlen)
            snprintf(err, errlen, "'%s' can draw a rate that is not finite: its largest draw, "
                     "MEDIAN x exp(SIGMA x %.4g), overflows a double (want ln MEDIAN + %.4g x "
                     "SIGMA <= %.6g)", s, normal_zmax(), normal_zmax(), log(DBL_MAX));
        return FL_ERR_INVALID_ARG;
    }
    if (!ok) {
        if (err && errlen)
            snprintf(err, errlen, "'%s' is not a distribution: want V, const:V or "
                     "lognormal:MEDIAN:SIGMA with V, MEDIAN >= 1 and 0 <= SIGMA <= 10", s);
        return FL_ERR_INVALID_ARG;
    }
    *out = d;
    return FL_OK;
}

fl_status flsim_avail_parse(const char *s, flsim_avail *out, char *err, size_t errlen)
{
    if (!s || !out)
        return FL_ERR_INVALID_ARG;
    char buf[128];
    char *f[5];
    const int n = split_colon(s, buf, sizeof buf, f, 4);
    flsim_avail a = {FLSIM_AVAIL_ALWAYS, 1.0, 0, 0, 86400.0};
    int ok = 0;
    if (n == 1 && strcmp(f[0], "always") == 0) {
        ok = 1;
    } else if (n == 1 || (n == 2 && strcmp(f[0], "p") == 0)) {
        a.kind = FLSIM_AVAIL_PROB;
        ok = flsim_parse_number(f[n - 1], &a.p) && a.p > 0 && a.p <= 1;
    } else if ((n == 3 || n == 4) && strcmp(f[0], "diurnal") == 0) {
        a.kind = FLSIM_AVAIL_DIURNAL;
        ok = flsim_parse_number(f[1], &a.p_min) && flsim_parse_number(f[2], &a.p_max) &&
             a.p_min >= 0 && a.p_min <= a.p_max && a.p_max <= 1 && a.p_max > 0;
        if (ok && n == 4)
            ok = flsim_parse_number(f[3], &a.period_s) && a.period_s > 0;
    }
    if (!ok) {
        if (err && errlen)
            snprintf(err, errlen, "'%s' is not an availability: want always, p:P (0 < P <= 1) or "
                     "diurnal:PMIN:PMAX[:PERIOD_S] (0 <= PMIN <= PMAX <= 1, PMAX > 0)", s);
        return FL_ERR_INVALID_ARG;
    }
    *out = a;
    return FL_OK;
}

/* A rate drawn: the lognormal's tail below FLSIM_RATE_MIN is taken at it (lognormal:1:10 draws
 * below 1 half the time; a trace row that low is refused), so every profile holds what
 * flsim_profile says; parameters whose draws could overflow are refused before (flsim_dist_max),
 * and DBL_MAX bounds them should a program pass such a struct. */
static double draw(const flsim_dist *d, double z)
{
    const double x = d->kind == FLSIM_DIST_LOGNORMAL ? d->median * exp(d->sigma * z) : d->median;
    return x < FLSIM_RATE_MIN ? FLSIM_RATE_MIN : x > DBL_MAX ? DBL_MAX : x;
}

void flsim_profile_of(const flsim_population *p, uint32_t k, flsim_profile *out)
{
    if (p->trace && p->trace->n) {
        const flsim_trace_row *r = &p->trace->rows[k % p->trace->n];
        out->flops = r->flops;
        out->down_bps = r->down_bps;
        out->up_bps = r->up_bps;
        return;
    }
    fl_rng r = fl_rng_stream(p->seed, 0, k, FL_RNG_PROFILE);
    const double z0 = fl_rng_normal(&r), z1 = fl_rng_normal(&r), z2 = fl_rng_normal(&r);
    out->flops = draw(&p->flops, z0);
    out->down_bps = draw(&p->down_bps, z1);
    out->up_bps = draw(&p->up_bps, z2);
}

int flsim_available(const flsim_population *p, uint32_t k, uint32_t round, uint32_t attempt,
                    double t)
{
    double prob;
    if (p->trace && p->trace->n) {
        prob = p->trace->rows[k % p->trace->n].availability;
    } else {
        switch (p->avail.kind) {
        case FLSIM_AVAIL_PROB:
            prob = p->avail.p;
            break;
        case FLSIM_AVAIL_DIURNAL: {
            fl_rng ph = fl_rng_stream(p->seed, 0, k, FL_RNG_AVAIL);
            const double phase = fl_rng_uniform_f64(&ph);
            const double c = cos(2.0 * M_PI * (t / p->avail.period_s + phase));
            prob = p->avail.p_min + (p->avail.p_max - p->avail.p_min) * 0.5 * (1.0 + c);
            break;
        }
        default:
            return 1;
        }
    }
    if (prob >= 1.0)
        return 1;
    if (prob <= 0.0)
        return 0;
    /* Round r's draws live at round r + 1 so that round 0's stream stays the phase stream; the
     * attempt-th draw is that stream's attempt-th uniform (two words each: O(1) to reach). */
    fl_rng r = fl_rng_stream(p->seed, round + 1, k, FL_RNG_AVAIL);
    if (attempt)
        fl_rng_seek(&r, 2 * (uint64_t)attempt);
    return fl_rng_uniform_f64(&r) < prob;
}

flsim_timing flsim_client_timing(const flsim_profile *p, uint64_t bytes_down, double flops,
                                 uint64_t bytes_up, double latency_s)
{
    flsim_timing t;
    t.t_down = latency_s + (double)bytes_down * 8.0 / p->down_bps;
    t.t_compute = flops / p->flops;
    t.t_up = latency_s + (double)bytes_up * 8.0 / p->up_bps;
    t.total = t.t_down + t.t_compute + t.t_up;
    return t;
}
