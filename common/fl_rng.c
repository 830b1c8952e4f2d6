#include "fl_rng.h"

#include <math.h>
#include <time.h>
#include <unistd.h>

#include "fl_time.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void fl_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int i = 0; i < 10; i++) {
        const uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        const uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        const uint32_t n1 = (uint32_t)p1;
        const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        const uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

fl_rng fl_rng_stream(uint64_t seed, uint32_t round, uint32_t client, uint32_t purpose)
{
    fl_rng r;
    r.key[0] = (uint32_t)seed;
    r.key[1] = (uint32_t)(seed >> 32);
    r.ctr[0] = 0;
    r.ctr[1] = round;
    r.ctr[2] = client;
    r.ctr[3] = purpose;
    r.buf[0] = r.buf[1] = r.buf[2] = r.buf[3] = 0;
    r.pos = 4;
    return r;
}

void fl_rng_seek(fl_rng *r, uint64_t index)
{
    r->ctr[0] = (uint32_t)(index >> 2);
    fl_philox4x32(r->key, r->ctr, r->buf);
    r->ctr[0]++;
    r->pos = (unsigned)(index & 3);
}

uint32_t fl_rng_u32(fl_rng *r)
{
    if (r->pos >= 4) {
        fl_philox4x32(r->key, r->ctr, r->buf);
        r->ctr[0]++;
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

uint64_t fl_rng_u64(fl_rng *r)
{
    const uint64_t hi = fl_rng_u32(r);
    return (hi << 32) | fl_rng_u32(r);
}

float fl_rng_uniform(fl_rng *r)
{
    return (float)(fl_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

double fl_rng_uniform_f64(fl_rng *r)
{
    return (double)(fl_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint32_t fl_rng_below(fl_rng *r, uint32_t n)
{
    uint64_t m = (uint64_t)fl_rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        const uint32_t thresh = (uint32_t)(-n) % n;
        while (low < thresh) {
            m = (uint64_t)fl_rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double fl_rng_normal(fl_rng *r)
{
    double u1 = fl_rng_uniform_f64(r);
    const double u2 = fl_rng_uniform_f64(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void fl_rng_fill_u32(fl_rng *r, uint32_t *out, size_t n)
{
    size_t i = 0;
    while (i < n && r->pos < 4)
        out[i++] = r->buf[r->pos++];
    while (n - i >= 4) {
        fl_philox4x32(r->key, r->ctr, out + i);
        r->ctr[0]++;
        i += 4;
    }
    while (i < n)
        out[i++] = fl_rng_u32(r);
}

uint64_t fl_entropy_u64(void)
{
    uint64_t x = 0;
    if (getentropy(&x, sizeof x) != 0) { /* no kernel randomness: mixed, as SplitMix64 does */
        x = fl_time_mono_ns() ^ ((uint64_t)getpid() << 40) ^ ((uint64_t)time(NULL) << 20);
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        x ^= x >> 31;
    }
    return x ? x : 1;
}
