/* Unit tests for common/: status names, the Philox streams, SHA-256, logging, key files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <stdio.h>
#include <cmocka.h>

#include <stdlib.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "fl_endpoint.h"
#include "fl_fs.h"
#include "fl_keyfile.h"
#include "fl_log.h"
#include "fl_mem.h"
#include "fl_mem_internal.h"
#include "fl_rng.h"
#include "fl_sha256.h"
#include "fl_siphash.h"
#include "fl_status.h"
#include "fl_text.h"
#include "fl_time.h"
#include "test_dirs.h"

static void test_status_strings(void **state)
{
    (void)state;
    assert_string_equal(fl_strerror(FL_OK), "success");
    assert_string_equal(fl_status_name(FL_ERR_WIRE_VERSION), "FL_ERR_WIRE_VERSION");
    assert_string_equal(fl_strerror((fl_status)9999), "unknown status");
    /* Every code in the documented ranges that has a name has a distinct message. */
    const char *seen[200] = {0};
    for (int c = 0; c < 200; c++) {
        if (strcmp(fl_status_name((fl_status)c), "FL_ERR_UNKNOWN") == 0)
            continue;
        seen[c] = fl_strerror((fl_status)c);
        for (int d = 0; d < c; d++)
            if (seen[d])
                assert_string_not_equal(seen[d], seen[c]);
    }
}

/* Known-answer vectors from Random123's kat_vectors (philox4x32, 10 rounds). */
/* SipHash-2-4 against the reference vectors (veorq/SipHash vectors.h: key 00..0f, message
 * 00..len-1, the 8 output bytes little-endian), then against OpenSSL's SIPHASH (EVP_MAC, 8-byte
 * output) for every length 0..64 under random keys and data. */
static void test_siphash24(void **state)
{
    (void)state;
    uint8_t key[16], msg[65];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 65; i++)
        msg[i] = (uint8_t)i;
    static const struct {
        size_t len;
        uint8_t out[8];
    } ref[] = {
        {0, {0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72}},
        {1, {0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74}},
        {5, {0x8d, 0xa6, 0x99, 0xcd, 0x64, 0x55, 0x76, 0x18}},
        {7, {0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab}},
        {8, {0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93}},
        {9, {0xb0, 0xe4, 0xa9, 0x0b, 0xdf, 0x82, 0x00, 0x9e}},
        {15, {0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1}},
    };
    for (size_t r = 0; r < sizeof ref / sizeof ref[0]; r++) {
        uint64_t want = 0;
        for (int i = 7; i >= 0; i--)
            want = want << 8 | ref[r].out[i];
        const uint64_t got = fl_siphash24(key, msg, ref[r].len);
        if (got != want)
            fail_msg("length %zu: %016llx, the reference says %016llx", ref[r].len,
                     (unsigned long long)got, (unsigned long long)want);
    }
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    assert_non_null(mac);
    fl_rng g = fl_rng_stream(7, 0, 0, FL_RNG_TEST);
    for (int trial = 0; trial < 4; trial++) {
        for (int i = 0; i < 16; i++)
            key[i] = (uint8_t)fl_rng_u32(&g);
        for (int i = 0; i < 65; i++)
            msg[i] = (uint8_t)fl_rng_u32(&g);
        for (size_t len = 0; len <= 64; len++) {
            EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
            assert_non_null(ctx);
            size_t size = 8, outl = 0;
            OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                                   OSSL_PARAM_construct_end()};
            uint8_t out[16];
            assert_int_equal(EVP_MAC_init(ctx, key, sizeof key, params), 1);
            assert_int_equal(EVP_MAC_update(ctx, msg, len), 1);
            assert_int_equal(EVP_MAC_final(ctx, out, &outl, sizeof out), 1);
            assert_int_equal(outl, 8);
            EVP_MAC_CTX_free(ctx);
            uint64_t want = 0;
            for (int i = 7; i >= 0; i--)
                want = want << 8 | out[i];
            assert_int_equal(fl_siphash24(key, msg, len), want);
        }
    }
    EVP_MAC_free(mac);
}

/* fl_entropy_u64: the kernel's randomness, never 0, and not one value over and over. */
static void test_entropy(void **state)
{
    (void)state;
    uint64_t v[4];
    for (int i = 0; i < 4; i++) {
        v[i] = fl_entropy_u64();
        assert_true(v[i] != 0);
    }
    assert_false(v[0] == v[1] && v[1] == v[2] && v[2] == v[3]);
}

static void test_philox_kat(void **state)
{
    (void)state;
    uint32_t out[4];
    const uint32_t k0[2] = {0, 0}, c0[4] = {0, 0, 0, 0};
    fl_philox4x32(k0, c0, out);
    assert_int_equal(out[0], 0x6627e8d5u);
    assert_int_equal(out[1], 0xe169c58du);
    assert_int_equal(out[2], 0xbc57ac4cu);
    assert_int_equal(out[3], 0x9b00dbd8u);
    const uint32_t k1[2] = {0xffffffffu, 0xffffffffu};
    const uint32_t c1[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    fl_philox4x32(k1, c1, out);
    assert_int_equal(out[0], 0x408f276du);
    assert_int_equal(out[1], 0x41c83b0eu);
    assert_int_equal(out[2], 0xa20bc7c6u);
    assert_int_equal(out[3], 0x6d5451fdu);
}

static void test_rng_streams(void **state)
{
    (void)state;
    fl_rng a = fl_rng_stream(42, 3, 7, FL_RNG_KEEPSET);
    fl_rng b = fl_rng_stream(42, 3, 7, FL_RNG_KEEPSET);
    uint32_t seq[103];
    for (int i = 0; i < 103; i++) {
        seq[i] = fl_rng_u32(&a);
        assert_int_equal(seq[i], fl_rng_u32(&b));
    }
    /* Random access gives the same words as sequential reads. */
    for (int i = 0; i < 103; i += 5) {
        fl_rng c = fl_rng_stream(42, 3, 7, FL_RNG_KEEPSET);
        fl_rng_seek(&c, (uint64_t)i);
        assert_int_equal(fl_rng_u32(&c), seq[i]);
    }
    /* Bulk fill, starting mid-block, matches too. */
    fl_rng d = fl_rng_stream(42, 3, 7, FL_RNG_KEEPSET);
    uint32_t bulk[103];
    bulk[0] = fl_rng_u32(&d);
    fl_rng_fill_u32(&d, bulk + 1, 102);
    assert_memory_equal(bulk, seq, sizeof seq);
    /* Each key component changes the stream. */
    const fl_rng others[4] = {
        fl_rng_stream(43, 3, 7, FL_RNG_KEEPSET), fl_rng_stream(42, 4, 7, FL_RNG_KEEPSET),
        fl_rng_stream(42, 3, 8, FL_RNG_KEEPSET), fl_rng_stream(42, 3, 7, FL_RNG_BATCH)};
    for (int k = 0; k < 4; k++) {
        fl_rng o = others[k];
        int same = 0;
        for (int i = 0; i < 16; i++)
            same += fl_rng_u32(&o) == seq[i];
        assert_true(same < 2);
    }
}

static void test_rng_distributions(void **state)
{
    (void)state;
    fl_rng r = fl_rng_stream(1, 0, 0, FL_RNG_TEST);
    enum { N = 200000, K = 10 };
    long hist[K] = {0};
    double sum = 0, sumsq = 0;
    for (int i = 0; i < N; i++) {
        const uint32_t v = fl_rng_below(&r, K);
        assert_true(v < K);
        hist[v]++;
        const float u = fl_rng_uniform(&r);
        assert_true(u >= 0.0f && u < 1.0f);
        const double z = fl_rng_normal(&r);
        sum += z;
        sumsq += z * z;
    }
    /* Chi-square with 9 degrees of freedom: 27.9 is the 0.999 quantile. */
    double chi2 = 0;
    for (int k = 0; k < K; k++) {
        const double e = (double)N / K;
        chi2 += (hist[k] - e) * (hist[k] - e) / e;
    }
    assert_true(chi2 < 27.9);
    /* Normal mean within 5 standard errors, variance within 2%. */
    assert_true(fabs(sum / N) < 5.0 / sqrt((double)N));
    assert_true(fabs(sumsq / N - 1.0) < 0.02);
    /* below(1) is always 0 and below(2^32-1) stays in range. */
    assert_int_equal(fl_rng_below(&r, 1), 0);
    assert_true(fl_rng_below(&r, 0xffffffffu) < 0xffffffffu);
}

/* A client id's keys: the first 4 bytes, little-endian, of SHA-256(id) and SHA-256(id NUL j)
 * (values from Python's hashlib); bad arguments refused with key 0, never taken for one. */
static void test_client_keys(void **state)
{
    (void)state;
    uint32_t k = 1;
    assert_int_equal(fl_client_key_of("abc", 0, &k), FL_OK);
    assert_int_equal(k, 0xbf1678baU);
    assert_int_equal(fl_client_key("abc"), 0xbf1678baU);
    assert_int_equal(fl_client_key_of("abc", 1, &k), FL_OK);
    assert_int_equal(k, 0x26dbfe24U);
    assert_int_equal(fl_client_key_alt("abc", 1), 0x26dbfe24U);
    assert_int_equal(fl_client_key_alt("abc", 0), 0xbf1678baU);
    assert_int_equal(fl_client_key_alt("abc", 3), 0xa8e0c926U);
    k = 1;
    assert_int_equal(fl_client_key_of(NULL, 0, &k), FL_ERR_INVALID_ARG);
    assert_int_equal(k, 0);
    k = 1;
    assert_int_equal(fl_client_key_of("abc", 256, &k), FL_ERR_INVALID_ARG);
    assert_int_equal(k, 0);
    assert_int_equal(fl_client_key(NULL), 0);
    assert_int_equal(fl_client_key_alt("abc", 256), 0);
}

static void test_sha256(void **state)
{
    (void)state;
    uint8_t d[FL_SHA256_LEN];
    char hex[65];
    assert_int_equal(fl_sha256_digest(d, "abc", 3), FL_OK);
    fl_sha256_hex(hex, d);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    fl_sha256 *h = NULL;
    assert_int_equal(fl_sha256_new(&h), FL_OK);
    assert_int_equal(fl_sha256_update(h, "a", 1), FL_OK);
    assert_int_equal(fl_sha256_update(h, "bc", 2), FL_OK);
    uint8_t d2[FL_SHA256_LEN];
    assert_int_equal(fl_sha256_final(h, d2), FL_OK);
    assert_memory_equal(d, d2, sizeof d);
    fl_sha256_free(h);
    fl_sha256_free(NULL);
}

struct captured {
    int calls;
    fl_log_level level;
    char msg[64];
};

static void capture(void *user, fl_log_level level, const char *msg)
{
    struct captured *c = user;
    c->calls++;
    c->level = level;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static void test_logging(void **state)
{
    (void)state;
    struct captured c = {0};
    const fl_logger lg = {capture, &c, FL_LOG_INFO};
    fl_log(&lg, FL_LOG_DEBUG, "hidden %d", 1);
    assert_int_equal(c.calls, 0);
    fl_log(&lg, FL_LOG_WARN, "round %d closed", 5);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.level, FL_LOG_WARN);
    assert_string_equal(c.msg, "round 5 closed");
    fl_log(NULL, FL_LOG_ERROR, "no logger: dropped");
    const fl_logger silent = {0};
    fl_log(&silent, FL_LOG_ERROR, "zeroed logger: dropped");
    assert_int_equal(c.calls, 1);
}

static void keep_whole(void *user, fl_log_level level, const char *msg)
{
    (void)level;
    snprintf(user, 8192, "%s", msg);
}

/* A line naming a client id of 1024 bytes (the wire's longest) comes whole; a line longer than
 * the buffer is cut before a character, never inside a UTF-8 sequence, and ends in "...". */
static void test_logging_long_lines(void **state)
{
    (void)state;
    static char got[8192], id[1025], big[6001];
    memset(id, 'a', 1024);
    const fl_logger lg = {keep_whole, got, FL_LOG_INFO};
    fl_log(&lg, FL_LOG_INFO, "registered as %s", id);
    assert_int_equal(strlen(got), strlen("registered as ") + 1024);
    for (int i = 0; i + 2 <= 6000; i += 2)
        memcpy(big + i, "\xc3\xa9", 2); /* e-acute, 2 bytes each */
    for (int shift = 0; shift < 2; shift++) {
        fl_log(&lg, FL_LOG_INFO, "%.*s%s", shift, "x", big);
        const size_t n = strlen(got);
        assert_true(n < 4096 && n > 4000);
        assert_string_equal(got + n - 3, "...");
        const size_t body = n - 3 - (size_t)shift; /* the e-acutes kept: whole ones */
        assert_int_equal(body % 2, 0);
        assert_int_equal((unsigned char)got[n - 4], 0xa9);
    }
}

static void test_time_monotonic(void **state)
{
    (void)state;
    const uint64_t a = fl_time_mono_ns();
    const uint64_t b = fl_time_mono_ns();
    assert_true(b >= a);
    assert_true(a > 0);
}

/* fl_grow: doubles from `first` until `need` fits, keeps the contents, and on overflow leaves
 * the array as it was. */
static void test_grow(void **state)
{
    (void)state;
    uint32_t *a = NULL;
    size_t cap = 0;
    assert_int_equal(fl_grow(&a, &cap, 0, sizeof *a, 8), FL_OK);
    assert_null(a);
    assert_int_equal(cap, 0);
    for (uint32_t i = 0; i < 100; i++) {
        assert_int_equal(fl_grow(&a, &cap, i + 1, sizeof *a, 8), FL_OK);
        a[i] = i * 7;
    }
    assert_int_equal(cap, 128); /* 8, 16, 32, 64, 128 */
    for (uint32_t i = 0; i < 100; i++)
        assert_int_equal(a[i], i * 7);
    assert_int_equal(fl_grow(&a, &cap, 1000, sizeof *a, 8), FL_OK); /* several doublings at once */
    assert_int_equal(cap, 1024);
    uint32_t *was = a;
    assert_int_equal(fl_grow(&a, &cap, SIZE_MAX / 2, sizeof *a, 8), FL_ERR_NOMEM);
    assert_ptr_equal(a, was);
    assert_int_equal(cap, 1024);
    assert_int_equal(a[99], 99 * 7);
    free(a);
}

/* Whether the mapping (VMA) holding p carries VM_HUGEPAGE (smaps' VmFlags "hg": madvise
 * MADV_HUGEPAGE), its bounds in *lo and *hi (either may be NULL); -1 when smaps cannot be read
 * or holds no such mapping. */
static int vma_of(const void *p, uintptr_t *lo, uintptr_t *hi)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[512];
    int in = 0, r = -1;
    const uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long l, h;
        if (sscanf(line, "%lx-%lx ", &l, &h) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = a >= l && a < h;
            if (in && lo)
                *lo = l;
            if (in && hi)
                *hi = h;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            r = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return r;
}

static int vma_hugepage(const void *p)
{
    return vma_of(p, NULL, NULL);
}

/* fl_big_alloc: zeroed and 64-byte aligned at every size, from FL_BIG_HUGE on on a 2 MiB
 * boundary (for transparent huge pages); a large buffer is a mapping of its own,
 * gone once freed (mincore: ENOMEM over unmapped pages), which is what gives a round's memory
 * back to the system whatever glibc's heap keeps (it kept freed blocks of a few MB once its mmap
 * threshold had risen past them). fl_big_room: a fresh buffer only when the need grows. */
static void test_big_alloc(void **state)
{
    (void)state;
    const size_t sizes[] = {100, FL_BIG_MAP - 1, FL_BIG_MAP, FL_BIG_HUGE - 1, FL_BIG_HUGE,
                            FL_BIG_HUGE + 4099, (size_t)9 << 20};
    const long page = sysconf(_SC_PAGESIZE);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        unsigned char *p = fl_big_alloc(sizes[k]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        if (sizes[k] >= FL_BIG_HUGE) { /* the block (its 64-byte head first) on a 2 MiB boundary */
            assert_int_equal(((uintptr_t)p - 64) % ((uintptr_t)2 << 20), 0);
            /* offered to transparent huge pages, where the kernel has them */
            if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0)
                assert_int_equal(vma_hugepage(p), 1);
        } else if (sizes[k] >= FL_BIG_MAP && access("/sys/kernel/mm/transparent_hugepage/enabled",
                                                    F_OK) == 0) {
            assert_int_equal(vma_hugepage(p), 0);
        }
        for (size_t i = 0; i < sizes[k]; i += 997)
            assert_int_equal(p[i], 0);
        assert_int_equal(p[sizes[k] - 1], 0);
        memset(p, 0xab, sizes[k]);
        fl_big_free(p);
        if (sizes[k] >= FL_BIG_MAP) {
            /* whole pages inside the buffer, now unmapped */
            const uintptr_t a = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
            unsigned char v[4];
            errno = 0;
            assert_int_equal(mincore((void *)a, (size_t)page * 4, v), -1);
            assert_int_equal(errno, ENOMEM);
            /* and its last whole page */
            const uintptr_t z = ((uintptr_t)p + sizes[k]) & ~((uintptr_t)page - 1);
            errno = 0;
            assert_int_equal(mincore((void *)(z - (uintptr_t)page), (size_t)page, v), -1);
            assert_int_equal(errno, ENOMEM);
        }
    }
    fl_big_free(NULL);
    assert_null(fl_big_alloc(0));
    float *w = NULL;
    size_t cap = 0;
    assert_int_equal(fl_big_room(&w, &cap, 1000, sizeof *w), FL_OK);
    assert_int_equal(cap, 1000);
    float *was = w;
    assert_int_equal(fl_big_room(&w, &cap, 900, sizeof *w), FL_OK);
    assert_ptr_equal(w, was);
    assert_int_equal(fl_big_room(&w, &cap, SIZE_MAX / 2, sizeof *w), FL_ERR_NOMEM);
    assert_ptr_equal(w, was);
    assert_int_equal(cap, 1000);
    assert_int_equal(fl_big_room(&w, &cap, (size_t)1 << 20, sizeof *w), FL_OK);
    assert_int_equal(cap, (size_t)1 << 20);
    w[cap - 1] = 1.0f;
    fl_big_free(w);
}

/* fl_prefault_write: the whole pages inside the range become resident (where the kernel has
 * MADV_POPULATE_WRITE), the pages at its two ends and outside it do not, and no content changes:
 * fresh pages stay zero, written ones keep their bytes. NULL and empty ranges are no-ops. */
static void test_prefault_write(void **state)
{
    (void)state;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 64;
    unsigned char *m = mmap(NULL, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    assert_true(m != MAP_FAILED);
    unsigned char v[64];
    assert_int_equal(mincore(m, n * page, v), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(v[i] & 1, 0);
    fl_prefault_write(NULL, page);
    fl_prefault_write(m, 0);
    fl_prefault_write(m + 100, page - 200); /* inside one page: no whole page */
    fl_prefault_write(m + 100, 32 * page);  /* whole pages 1 .. 31 */
#ifdef MADV_POPULATE_WRITE
    const int has = madvise(m + 40 * page, page, MADV_POPULATE_WRITE) == 0; /* probe: page 40 */
#else
    const int has = 0;
#endif
    assert_int_equal(mincore(m, n * page, v), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(v[i] & 1, has && ((i >= 1 && i <= 31) || i == 40));
    for (size_t i = 0; i < n * page; i += 61)
        assert_int_equal(m[i], 0);
    for (size_t i = 0; i < n * page; i++)
        m[i] = (unsigned char)(i * 7 + 3);
    fl_prefault_write(m + 3, (n - 1) * page);
    for (size_t i = 0; i < n * page; i++)
        assert_int_equal(m[i], (unsigned char)(i * 7 + 3));
    munmap(m, n * page);
}

/* fl_advise_huge on a block from malloc: offered to transparent huge pages where the kernel has
 * them, contents unchanged, and the block stays within one mapping (its whole pages are
 * advised, so that glibc's realloc of a large block can still move it with mremap, which takes a
 * single mapping: an advice over the 2 MiB pages inside it alone split it in three and made every
 * realloc copy), through growth by realloc too. NULL and empty ranges are no-ops. */
static void test_advise_huge(void **state)
{
    (void)state;
    fl_advise_huge(NULL, 4096);
    size_t n = (size_t)8 << 20;
    unsigned char *p = malloc(n);
    assert_non_null(p);
    fl_advise_huge(p, 0);
    for (size_t i = 0; i < n; i += 4093)
        p[i] = (unsigned char)(i % 251);
    for (int k = 0; k < 3; k++) {
        fl_advise_huge(p, n);
        uintptr_t lo = 0, hi = 0;
        const int huge = vma_of(p, &lo, &hi);
        assert_int_not_equal(huge, -1);
        assert_true(lo <= (uintptr_t)p && (uintptr_t)p + n <= hi);
        if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0)
            assert_int_equal(huge, 1);
        for (size_t i = 0; i < n; i += 4093)
            assert_int_equal(p[i], (unsigned char)(i % 251));
        unsigned char *q = realloc(p, 2 * n);
        assert_non_null(q);
        p = q;
        for (size_t i = n - n % 4093 + 4093; i < 2 * n; i += 4093)
            p[i] = (unsigned char)(i % 251);
        n *= 2;
    }
    free(p);
    /* a block too small to hold a huge page is left alone: its mapping (malloc's heap here)
     * keeps its bounds and flags */
    unsigned char *small = malloc(64 << 10);
    assert_non_null(small);
    uintptr_t lo0 = 0, hi0 = 0, lo1 = 0, hi1 = 0;
    const int huge0 = vma_of(small, &lo0, &hi0);
    assert_int_not_equal(huge0, -1);
    fl_advise_huge(small, 64 << 10);
    assert_int_equal(vma_of(small, &lo1, &hi1), huge0);
    assert_true(lo1 == lo0 && hi1 == hi0);
    free(small);
}

/* fl_index_new: a zeroed power of two, at least 64 and at least the slots asked for, replacing
 * the old table; too large, the old one stays. */
static void test_index_new(void **state)
{
    (void)state;
    uint32_t *t = NULL;
    size_t mask = 0;
    assert_int_equal(fl_index_new(&t, &mask, 0), FL_OK);
    assert_int_equal(mask, 63);
    t[5] = 9;
    assert_int_equal(fl_index_new(&t, &mask, 65), FL_OK);
    assert_int_equal(mask, 127);
    for (size_t i = 0; i <= mask; i++)
        assert_int_equal(t[i], 0);
    assert_int_equal(fl_index_new(&t, &mask, 128), FL_OK);
    assert_int_equal(mask, 127);
    uint32_t *was = t;
    assert_int_equal(fl_index_new(&t, &mask, SIZE_MAX), FL_ERR_NOMEM);
    assert_ptr_equal(t, was);
    assert_int_equal(mask, 127);
    free(t);
}

/* fl_path_dir: the part before the last '/', "/" at the root, "." without one; too long refused. */
static void test_path_dir(void **state)
{
    (void)state;
    char d[16];
    assert_int_equal(fl_path_dir("/var/lib/x.ckpt", d, sizeof d), 0);
    assert_string_equal(d, "/var/lib");
    assert_int_equal(fl_path_dir("/x.ckpt", d, sizeof d), 0);
    assert_string_equal(d, "/");
    assert_int_equal(fl_path_dir("x.ckpt", d, sizeof d), 0);
    assert_string_equal(d, ".");
    assert_int_equal(fl_path_dir("rel/dir/x", d, sizeof d), 0);
    assert_string_equal(d, "rel/dir");
    assert_int_equal(fl_path_dir("/a/very/long/directory/x", d, sizeof d), ENAMETOOLONG);
}

/* fl_stat_same_file: a file, its hard and symbolic links and a descriptor open on it are one
 * file; a file of the same contents beside it, or one made again at its name, is another. */
static void test_stat_same_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/fl-test-same-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char a[64], hard[64], sym[64], other[64];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(hard, sizeof hard, "%s/hard", dir);
    snprintf(sym, sizeof sym, "%s/sym", dir);
    snprintf(other, sizeof other, "%s/other", dir);
    const int fd = open(a, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    const int od = open(other, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(od >= 0);
    close(od);
    assert_int_equal(link(a, hard), 0);
    assert_int_equal(symlink("a", sym), 0);
    struct stat sa, sf, sh, ss, so, sn;
    assert_int_equal(stat(a, &sa), 0);
    assert_int_equal(fstat(fd, &sf), 0);
    assert_int_equal(stat(hard, &sh), 0);
    assert_int_equal(stat(sym, &ss), 0);
    assert_int_equal(stat(other, &so), 0);
    assert_true(fl_stat_same_file(&sa, &sf));
    assert_true(fl_stat_same_file(&sa, &sh));
    assert_true(fl_stat_same_file(&sa, &ss));
    assert_false(fl_stat_same_file(&sa, &so));
    /* a made again while fd stays open on the old one: the old inode cannot be reused */
    assert_int_equal(unlink(a), 0);
    assert_int_equal(unlink(hard), 0);
    const int nd = open(a, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(nd >= 0);
    close(nd);
    assert_int_equal(stat(a, &sn), 0);
    assert_false(fl_stat_same_file(&sf, &sn));
    close(fd);
    unlink(a);
    unlink(sym);
    unlink(other);
    assert_int_equal(rmdir(dir), 0);
}

/* fl_atomic: the new contents replace the old whole, with the mode asked for and no temporary
 * left; a rename that fails (a directory in the file's place) says which step, leaves the
 * directory as it was, and removes the temporary. keep_open leaves a descriptor on the new file. */
static void test_atomic_write(void **state)
{
    (void)state;
    char dir[] = "/tmp/fl-test-atomic-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/f", dir);
    for (int round = 0; round < 2; round++) {
        fl_atomic a;
        const char *want = round ? "second, longer contents\n" : "first\n";
        assert_int_equal(fl_atomic_open(&a, path, 0600), 0);
        assert_int_equal(fl_atomic_write(&a, want, strlen(want)), 0);
        assert_int_equal(dir_entries(dir), round + 1); /* the temporary beside the old file */
        assert_int_equal(fl_atomic_commit(&a, path, 0), 0);
        assert_int_equal(a.renamed, 1);
        fl_atomic_end(&a);
        assert_int_equal(fl_file_read(path, 1024, &text, &len, NULL, 0), FL_OK);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(text, want, len);
        free(text);
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
        assert_int_equal(dir_entries(dir), 1);
    }
    /* the umask applies, as it does to open(2): 0666 under 027 is 0640 (fl_sim's files) */
    const mode_t um = umask(027);
    {
        fl_atomic u;
        assert_int_equal(fl_atomic_open(&u, path, 0666), 0);
        assert_int_equal(fl_atomic_commit(&u, path, 0), 0);
        fl_atomic_end(&u);
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0640);
    }
    umask(um);
    /* keep_open: the descriptor writes to the file that path now names */
    fl_atomic a;
    assert_int_equal(fl_atomic_open(&a, path, 0644), 0);
    assert_int_equal(fl_atomic_write(&a, "a", 1), 0);
    assert_int_equal(fl_atomic_commit(&a, path, 1), 0);
    assert_true(a.fd >= 0);
    assert_int_equal(fl_write_all(a.fd, "b", 1), 0);
    fl_atomic_end(&a); /* closes it */
    assert_int_equal(fl_file_read(path, 1024, &text, &len, NULL, 0), FL_OK);
    assert_int_equal(len, 2);
    assert_memory_equal(text, "ab", 2);
    free(text);
    /* a directory where the file should be: the rename fails, nothing else changes */
    char sub[300];
    snprintf(sub, sizeof sub, "%s/d", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(fl_atomic_open(&a, sub, 0644), 0);
    assert_int_equal(fl_atomic_write(&a, "x", 1), 0);
    assert_int_equal(fl_atomic_commit(&a, sub, 0), EISDIR);
    assert_string_equal(a.what, "cannot rename the temporary file onto it");
    assert_int_equal(a.renamed, 0);
    fl_atomic_end(&a);
    fl_atomic_end(&a); /* idempotent */
    assert_int_equal(dir_entries(dir), 2); /* f and d: the temporary is gone */
    /* a directory that is not there: refused at open, nothing made */
    char gone[300];
    snprintf(gone, sizeof gone, "%s/missing/f", dir);
    assert_int_equal(fl_atomic_open(&a, gone, 0644), ENOENT);
    assert_string_equal(a.what, "cannot open its directory");
    fl_atomic_end(&a);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* malloc, wrapped (meson.build: --wrap=malloc) to play an allocation that fails: g_malloc_fail
 * counts down the calls and fails the one that reaches 0; g_malloc_stale fills every block handed
 * out meanwhile with that string, as recycled memory holds an old one. */
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
static int g_malloc_fail;
static const char *g_malloc_stale;

void *__wrap_malloc(size_t n)
{
    if (g_malloc_fail > 0 && --g_malloc_fail == 0)
        return NULL;
    void *p = __real_malloc(n);
    if (p && g_malloc_stale && n > strlen(g_malloc_stale))
        memcpy(p, g_malloc_stale, strlen(g_malloc_stale) + 1);
    return p;
}

/* mkstemp and mkostemp, wrapped (meson.build: --wrap=mkstemp64, --wrap=mkostemp64, glibc's
 * names under _FILE_OFFSET_BITS=64): while g_mktemp_watch is set, each descriptor they hand out is
 * counted, and those that would outlive an exec at that instant (no FD_CLOEXEC yet: a fork and
 * exec in another thread then would leak it to the child) are counted apart. */
int __real_mkstemp64(char *tmpl);
int __wrap_mkstemp64(char *tmpl);
int __real_mkostemp64(char *tmpl, int flags);
int __wrap_mkostemp64(char *tmpl, int flags);
static int g_mktemp_watch, g_mktemp_made, g_mktemp_inheritable;
/* While set, mkostemp's file is removed as soon as it is made (another process's sweep) */
static int g_mktemp_unlink;

static int mktemp_seen(int fd)
{
    if (g_mktemp_watch && fd >= 0) {
        g_mktemp_made++;
        if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
            g_mktemp_inheritable++;
    }
    return fd;
}

int __wrap_mkstemp64(char *tmpl)
{
    return mktemp_seen(__real_mkstemp64(tmpl));
}

int __wrap_mkostemp64(char *tmpl, int flags)
{
    const int fd = __real_mkostemp64(tmpl, flags);
    if (g_mktemp_unlink && fd >= 0)
        assert_int_equal(unlink(tmpl), 0);
    return mktemp_seen(fd);
}

/* The temporary files of fl_atomic_open and fl_dir_writable's probe are close-on-exec from the
 * moment they exist: until 2026-12-07 they were made with mkstemp and marked after, so a child
 * that another thread forked and exec'd in between kept the descriptor (and the file, unlinked
 * or renamed, held open) for its whole life. */
static void test_temp_files_cloexec(void **state)
{
    (void)state;
    char dir[] = "/tmp/fl-test-cloexec-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/f", dir);
    g_mktemp_watch = 1;
    g_mktemp_made = g_mktemp_inheritable = 0;
    assert_int_equal(fl_dir_writable(dir), 0);
    fl_atomic a;
    assert_int_equal(fl_atomic_open(&a, path, 0644), 0);
    g_mktemp_watch = 0;
    assert_int_equal(g_mktemp_made, 2);
    assert_int_equal(g_mktemp_inheritable, 0);
    assert_int_not_equal(fcntl(a.fd, F_GETFD) & FD_CLOEXEC, 0);
    assert_int_equal(fl_atomic_commit(&a, path, 0), 0);
    fl_atomic_end(&a);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static int open_fds(void)
{
    return dir_entries("/proc/self/fd");
}

/* A failed fl_atomic_open leaves nothing behind (its header), with or without fl_atomic_end, and
 * fl_atomic_end then removes nothing that is not its own: out of memory for the directory's name
 * (the temporary's name then was never written: a stale name in that memory named another file),
 * and a temporary that cannot be made (its name too long) with the directory already open. */
static void test_atomic_open_fails(void **state)
{
    (void)state;
    char dir[] = "/tmp/fl-test-atomic-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char victim[300], path[600];
    snprintf(victim, sizeof victim, "%s/precious", dir);
    FILE *f = fopen(victim, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/run.ckpt", dir);
    fl_atomic a;
    g_malloc_stale = victim;
    g_malloc_fail = 1; /* the first of its two: the directory's name */
    const int e = fl_atomic_open(&a, path, 0644);
    g_malloc_fail = 0;
    g_malloc_stale = NULL;
    assert_int_equal(e, ENOMEM);
    assert_string_equal(a.what, "out of memory");
    fl_atomic_end(&a);
    if (access(victim, F_OK) != 0)
        fail_msg("fl_atomic_end after an fl_atomic_open out of memory removed %s", victim);
    /* the temporary's name too long for the file system: the directory was opened first */
    char name[300];
    memset(name, 'n', 250);
    name[250] = 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    const int before = open_fds();
    assert_int_equal(fl_atomic_open(&a, path, 0644), ENAMETOOLONG);
    assert_string_equal(a.what, "cannot create a temporary file");
    if (open_fds() != before)
        fail_msg("a failed fl_atomic_open left %d descriptor(s) open", open_fds() - before);
    fl_atomic_end(&a); /* still safe */
    assert_int_equal(open_fds(), before);
    assert_int_equal(dir_entries(dir), 1);
    assert_int_equal(unlink(victim), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* fl_atomic_sweep removes the temporaries of that one path (name.tmp. and six letters or digits,
 * regular files) and nothing else: not another path's, not a longer suffix, not a directory. */
static void test_atomic_sweep(void **state)
{
    (void)state;
    char dir[] = "/tmp/fl-test-sweep-XXXXXX";
    assert_non_null(mkdtemp(dir));
    static const char *const doomed[] = {"run.ckpt.tmp.Ab3xYz", "run.ckpt.tmp.000000"};
    static const char *const kept[] = {"run.ckpt", "run.ckpt.ids", "run.ckpt.ids.tmp.Ab3xYz",
                                       "run.ckpt.tmp.Ab3xY", "run.ckpt.tmp.Ab3xYz7",
                                       "run.ckpt.tmp.Ab-xYz", "other.tmp.Ab3xYz", "run.ckpt.lock"};
    char p[300];
    for (size_t i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, doomed[i]);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fclose(f);
    }
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, kept[i]);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fclose(f);
    }
    snprintf(p, sizeof p, "%s/run.ckpt.tmp.dirdir", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    char path[300];
    snprintf(path, sizeof path, "%s/run.ckpt", dir);
    assert_int_equal(fl_atomic_sweep(path), 2);
    assert_int_equal(fl_atomic_sweep(path), 0);
    assert_int_equal(dir_entries(dir), (int)(sizeof kept / sizeof *kept) + 1);
    assert_int_equal(rmdir(p), 0);
    snprintf(path, sizeof path, "%s/run.ckpt.ids", dir);
    assert_int_equal(fl_atomic_sweep(path), 1); /* run.ckpt.ids.tmp.Ab3xYz, kept[2] */
    assert_int_equal(dir_entries(dir), (int)(sizeof kept / sizeof *kept) - 1);
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, kept[i]);
            assert_int_equal(unlink(p), i == 2 ? -1 : 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

/* fl_lock_path: one holder at a time (flock conflicts between two opens, even in one process);
 * the other learns the holder's pid; closing releases it. */
static void test_lock_path(void **state)
{
    (void)state;
    char dir[] = "/tmp/fl-test-lock-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[300];
    snprintf(p, sizeof p, "%s/run.ckpt.lock", dir);
    int fd = -1, fd2 = -1;
    long holder = -1;
    assert_int_equal(fl_lock_path(p, &fd, &holder), 0);
    assert_true(fd >= 0);
    assert_int_equal(holder, 0);
    assert_int_equal(fl_lock_path(p, &fd2, &holder), EWOULDBLOCK);
    assert_int_equal(fd2, -1);
    assert_int_equal(holder, (long)getpid());
    assert_int_not_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    close(fd);
    assert_int_equal(fl_lock_path(p, &fd2, &holder), 0);
    close(fd2);
    snprintf(p, sizeof p, "%s/missing/run.ckpt.lock", dir);
    assert_int_equal(fl_lock_path(p, &fd, &holder), ENOENT);
    /* a symbolic link at the lock's path is not followed: the file it names stays as it was
     * (until 2026-12-07 it was truncated and got the pid) */
    char target[300], link[300];
    snprintf(target, sizeof target, "%s/precious", dir);
    snprintf(link, sizeof link, "%s/linked.lock", dir);
    FILE *t = fopen(target, "w");
    assert_non_null(t);
    assert_true(fputs("keep me\n", t) >= 0 && fclose(t) == 0);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(fl_lock_path(link, &fd, &holder), ELOOP);
    assert_int_equal(fd, -1);
    char back[32] = "";
    t = fopen(target, "r");
    assert_non_null(t);
    assert_non_null(fgets(back, sizeof back, t));
    fclose(t);
    assert_string_equal(back, "keep me\n");
    assert_int_equal(unlink(link), 0);
    assert_int_equal(unlink(target), 0);
    snprintf(p, sizeof p, "%s/run.ckpt.lock", dir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* fl_dir_writable: a real directory, a missing one, a file, and /proc, where access() lets root
 * pass but no file can be made; the probe leaves nothing behind. */
static void test_dir_writable(void **state)
{
    (void)state;
    char dir[] = "/tmp/fl-test-fs-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(fl_dir_writable(dir), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/run.ckpt", dir);
    assert_int_equal(fl_parent_writable(path), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(fl_dir_writable(path), ENOTDIR);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0); /* empty: the probes were removed */
    assert_int_equal(fl_dir_writable(dir), ENOENT);
    assert_int_equal(fl_parent_writable(path), ENOENT);
    struct stat sb;
    if (stat("/proc/self", &sb) == 0)
        assert_int_not_equal(fl_dir_writable("/proc"), 0);
}

static void put_text(const char *dir, const char *name, const char *text);

static const char *path_in(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
    return out;
}

/* The probes that a process killed mid-probe left (a Ctrl-C while close waited on a hung NFS
 * server) are removed by the next fl_dir_writable of their directory: until 2026-12-07 nothing
 * removed them, and they stayed for good. Only the probes' own names go, regular files, an hour
 * old (one made now may be another process's, mid-probe); and a probe removed under its maker by
 * another process's sweep is no failure of the directory. */
static void test_dir_writable_sweeps_probes(void **state)
{
    (void)state;
    char dir[] = "/tmp/fl-test-probe-XXXXXX";
    assert_non_null(mkdtemp(dir));
    static const struct {
        const char *name;
        int age;   /* seconds since it was last written */
        int stale; /* a killed process's probe: removed */
    } files[] = {
        {".fl-probe-a1B2c3", 7200, 1},  {".fl-probe-ZZZZZZ", 3700, 1},
        {".fl-probe-n0w123", 0, 0}, /* being probed now, by another process */
        {".fl-probe-mid123", 1800, 0},  {".fl-probe-a1B2c", 7200, 0},
        {".fl-probe-a1B2c34", 7200, 0}, {".fl-probe-a1_2c3", 7200, 0},
        {"fl-probe-a1B2c3", 7200, 0},   {"run.ckpt.tmp.a1B2c3", 7200, 0},
    };
    char path[400];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        put_text(dir, files[i].name, "fedrop write probe\n");
        struct timespec t[2];
        assert_int_equal(clock_gettime(CLOCK_REALTIME, &t[0]), 0);
        t[0].tv_sec -= files[i].age;
        t[1] = t[0];
        assert_int_equal(utimensat(AT_FDCWD, path_in(path, sizeof path, dir, files[i].name), t, 0),
                         0);
    }
    snprintf(path, sizeof path, "%s/.fl-probe-dir123", dir); /* not a regular file */
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/.fl-probe-lnk123", dir); /* a link: not followed, kept */
    assert_int_equal(symlink("fl-probe-a1B2c3", path), 0);
    assert_int_equal(fl_dir_writable(dir), 0);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        struct stat sb;
        if ((lstat(path, &sb) == 0) == files[i].stale)
            fail_msg("%s: %s", files[i].name, files[i].stale ? "left" : "removed");
        if (!files[i].stale)
            assert_int_equal(unlink(path), 0);
    }
    snprintf(path, sizeof path, "%s/.fl-probe-lnk123", dir);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof path, "%s/.fl-probe-dir123", dir);
    assert_int_equal(rmdir(path), 0);
    /* its own probe removed by another's sweep between its making and its unlink */
    g_mktemp_unlink = 1;
    const int e = fl_dir_writable(dir);
    g_mktemp_unlink = 0;
    assert_int_equal(e, 0);
    assert_int_equal(rmdir(dir), 0); /* nothing else was left */
}

/* ---- key files (fl_keyfile.h) --------------------------------------------------------------- */

/* "HelloWorld" is the Z85 spec's (ZeroMQ RFC 32) test vector: 86 4F D2 6F B5 59 F7 5B. */
#define KEY_A "HelloWorldHelloWorldHelloWorldHelloWorld"
#define KEY_B "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7" /* libzmq's zmq_curve example */
#define HDR_PUB "# fedrop CURVE public key (Z85). Written by fl_server keygen.\n"
#define HDR_SEC "# fedrop CURVE secret key (Z85). Written by fl_server keygen.\n"

static char g_keydir[64];

/* Writes text to g_keydir/name; the path into path[256]. */
static const char *key_file(char path[256], const char *name, const char *text)
{
    snprintf(path, 256, "%s/%s", g_keydir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

static int keydir_setup(void **state)
{
    (void)state;
    snprintf(g_keydir, sizeof g_keydir, "/tmp/fl_keyfile_XXXXXX");
    return mkdtemp(g_keydir) ? 0 : -1;
}

static int keydir_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_keydir);
    return system(cmd) == 0 ? 0 : -1;
}

/* free and realloc, wrapped (meson.build: --wrap=free, --wrap=realloc): while g_secret is set,
 * each block handed to free that still holds it, or to realloc (which may move the bytes and free
 * the old block as it was), is counted in g_secret_left. */
void __real_free(void *p);
void __wrap_free(void *p);
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
static const char *g_secret;
static int g_secret_left;

static void secret_check(const void *p)
{
    if (!g_secret || !p)
        return;
    const char *b = p;
    const size_t n = malloc_usable_size((void *)p), k = strlen(g_secret);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(b + i, g_secret, k) == 0) {
            g_secret_left++;
            return;
        }
}

void __wrap_free(void *p)
{
    secret_check(p);
    __real_free(p);
}

void *__wrap_realloc(void *p, size_t n)
{
    secret_check(p);
    return __real_realloc(p, n);
}

/* A secret key file longer than the reader's first buffer (4 KiB: comments after the key), and
 * one too large to be read: the key is in no block that goes back to the heap unwiped. Until
 * 2026-12-07 the buffer grew by realloc, which freed the first 4 KiB (the key in it) as it was,
 * and a file refused as too large was freed without a wipe. */
static void test_key_file_wiped(void **state)
{
    (void)state;
    const size_t sizes[] = {10000, FL_KEYFILE_MAX_BYTES + 100};
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        char *text = malloc(sizes[t] + 1);
        assert_non_null(text);
        const size_t h = strlen(HDR_SEC KEY_B "\n");
        memcpy(text, HDR_SEC KEY_B "\n", h);
        for (size_t i = h; i < sizes[t]; i++)
            text[i] = (i - h) % 64 == 0 ? '#' : (i - h) % 64 == 63 ? '\n' : 'x';
        text[sizes[t]] = 0;
        char path[256], z[41] = "", err[512];
        key_file(path, "long.secret", text);
        free(text);
        g_secret_left = 0;
        g_secret = KEY_B;
        const fl_status st = fl_key_file_read(path, FL_KEY_SECRET, z, NULL, err, sizeof err);
        g_secret = NULL;
        if (t == 0) {
            assert_int_equal(st, FL_OK);
            assert_string_equal(z, KEY_B);
        } else {
            assert_int_equal(st, FL_ERR_IO);
            assert_non_null(strstr(err, "file too large"));
        }
        assert_int_equal(g_secret_left, 0);
    }
}

static void test_z85_key_decode(void **state)
{
    (void)state;
    uint8_t k[32];
    static const uint8_t hello[8] = {0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B};
    assert_int_equal(fl_z85_key_decode(k, KEY_A, 40), 1);
    for (int i = 0; i < 4; i++)
        assert_memory_equal(k + 8 * i, hello, 8);
    /* each 5-character group is at most 2^32 - 1 ("%nSc0"); "%nSc1" would be 2^32 */
    char s[41];
    memcpy(s, KEY_A, 41);
    memcpy(s + 35, "%nSc0", 5);
    assert_int_equal(fl_z85_key_decode(k, s, 40), 1);
    assert_memory_equal(k + 28, "\xff\xff\xff\xff", 4);
    memcpy(s + 35, "%nSc1", 5);
    assert_int_equal(fl_z85_key_decode(k, s, 40), 0);
    memcpy(s, "#", 1); /* digit 84 never leads a group */
    assert_int_equal(fl_z85_key_decode(k, s, 40), 0);
    /* lengths other than 40, characters outside the alphabet (a blank, '"', ',', a NUL) */
    assert_int_equal(fl_z85_key_decode(k, KEY_A, 39), 0);
    assert_int_equal(fl_z85_key_decode(k, KEY_A "x", 41), 0);
    static const char bad[] = {' ', '"', ',', '\'', '\\', '~', '`', ';', '_', '|', 0};
    for (size_t i = 0; i < sizeof bad; i++) {
        memcpy(s, KEY_A, 41);
        s[17] = bad[i];
        assert_int_equal(fl_z85_key_decode(k, s, 40), 0);
    }
    assert_int_equal(fl_z85_key_decode(k, KEY_B, 40), 1);
}

static void test_key_file_good(void **state)
{
    (void)state;
    char path[256], z[41], err[512];
    fl_key_kind said = FL_KEY_SECRET;
    key_file(path, "good.pub", HDR_PUB KEY_A "\n");
    assert_int_equal(fl_key_file_read(path, FL_KEY_PUBLIC, z, &said, err, sizeof err), FL_OK);
    assert_string_equal(z, KEY_A);
    assert_int_equal(said, FL_KEY_PUBLIC);
    assert_int_equal(fl_key_file_read(path, FL_KEY_ANY, z, NULL, err, sizeof err), FL_OK);
    key_file(path, "good.secret", HDR_SEC KEY_B "\n");
    assert_int_equal(fl_key_file_read(path, FL_KEY_SECRET, z, &said, err, sizeof err), FL_OK);
    assert_string_equal(z, KEY_B);
    assert_int_equal(said, FL_KEY_SECRET);
    /* hand-written, no header: either kind; no final newline; blanks around the key */
    key_file(path, "plain.key", "# mine\n\n  \t" KEY_B " ");
    assert_int_equal(fl_key_file_read(path, FL_KEY_SECRET, z, &said, err, sizeof err), FL_OK);
    assert_string_equal(z, KEY_B);
    assert_int_equal(said, FL_KEY_ANY);
    assert_int_equal(fl_key_file_read(path, FL_KEY_PUBLIC, z, &said, err, sizeof err), FL_OK);
    /* CRLF line endings (a file edited on Windows) */
    key_file(path, "crlf.pub", "# fedrop CURVE public key (Z85). Written by fl_server keygen.\r\n"
                               KEY_A "\r\n");
    assert_int_equal(fl_key_file_read(path, FL_KEY_PUBLIC, z, &said, err, sizeof err), FL_OK);
    assert_string_equal(z, KEY_A);
    assert_int_equal(said, FL_KEY_PUBLIC);
    key_file(path, "crlf.secret", HDR_PUB KEY_A "\r\n");
    assert_int_equal(fl_key_file_read(path, FL_KEY_SECRET, z, NULL, err, sizeof err), FL_ERR_AUTH);
    /* a UTF-8 byte-order mark (Windows Notepad's) before the header, or before a bare key */
    key_file(path, "bom.pub", "\xEF\xBB\xBF" HDR_PUB KEY_A "\r\n");
    assert_int_equal(fl_key_file_read(path, FL_KEY_PUBLIC, z, &said, err, sizeof err), FL_OK);
    assert_string_equal(z, KEY_A);
    assert_int_equal(said, FL_KEY_PUBLIC);
    key_file(path, "bom.key", "\xEF\xBB\xBF" KEY_B "\n");
    assert_int_equal(fl_key_file_read(path, FL_KEY_SECRET, z, NULL, err, sizeof err), FL_OK);
    assert_string_equal(z, KEY_B);
    /* a comment after the key and a blank; comments and blank lines after the key */
    key_file(path, "comment.pub", HDR_PUB KEY_A "  # laptop\n\n# rotated 2026-12\n  \r\n");
    assert_int_equal(fl_key_file_read(path, FL_KEY_PUBLIC, z, NULL, err, sizeof err), FL_OK);
    assert_string_equal(z, KEY_A);
    key_file(path, "tab.pub", KEY_B "\t#\tserver\n");
    assert_int_equal(fl_key_file_read(path, FL_KEY_PUBLIC, z, NULL, err, sizeof err), FL_OK);
    assert_string_equal(z, KEY_B);
    /* A FIFO (no writer: a blocking open would wait for good) and a directory are refused at
     * once, naming what they are. */
    snprintf(path, 256, "%s/key.fifo", g_keydir);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(fl_key_file_read(path, FL_KEY_SECRET, z, NULL, err, sizeof err), FL_ERR_IO);
    assert_non_null(strstr(err, ": a FIFO, not a regular file"));
    unlink(path);
    assert_int_equal(fl_key_file_read(g_keydir, FL_KEY_SECRET, z, NULL, err, sizeof err), FL_ERR_IO);
    assert_non_null(strstr(err, ": a directory, not a regular file"));
    /* a comment of one's own that mentions the other kind is no keygen header */
    key_file(path, "own.secret", "# laptop-7 secret; its CURVE public key is in laptop-7.pub\n"
                                 KEY_B "  # fedrop CURVE public key: not a header here\n");
    assert_int_equal(fl_key_file_read(path, FL_KEY_SECRET, z, &said, err, sizeof err), FL_OK);
    assert_string_equal(z, KEY_B);
    assert_int_equal(said, FL_KEY_ANY);
    /* the same from memory, named by the caller */
    const char text[] = HDR_SEC KEY_B "\n";
    assert_int_equal(fl_key_text_parse(text, sizeof text - 1, "mem", FL_KEY_SECRET, z, &said,
                                       err, sizeof err), FL_OK);
    assert_string_equal(z, KEY_B);
}

static void test_key_file_refused(void **state)
{
    (void)state;
    char path[256], z[41], err[512], want[512];
    fl_key_kind said = FL_KEY_ANY;
    /* the other kind, by keygen's header: refused, z85 untouched, said tells which */
    key_file(path, "swap.pub", HDR_PUB KEY_A "\n");
    memset(z, 'z', sizeof z);
    assert_int_equal(fl_key_file_read(path, FL_KEY_SECRET, z, &said, err, sizeof err), FL_ERR_AUTH);
    snprintf(want, sizeof want, "%s: a public key file (its header says so), where a secret key "
             "is needed", path);
    assert_string_equal(err, want);
    assert_int_equal(said, FL_KEY_PUBLIC);
    assert_int_equal(z[0], 'z');
    key_file(path, "swap.secret", HDR_SEC KEY_B "\n");
    assert_int_equal(fl_key_file_read(path, FL_KEY_PUBLIC, z, &said, err, sizeof err), FL_ERR_AUTH);
    assert_non_null(strstr(err, "swap.secret: a secret key file (its header says so), where a "
                                "public key is needed"));
    assert_int_equal(said, FL_KEY_SECRET);
    /* no key at all */
    static const char *const none[] = {"", "\n\n", "# only comments\n  # and more\r\n", HDR_PUB};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        key_file(path, "none.pub", none[i]);
        assert_int_equal(fl_key_file_read(path, FL_KEY_ANY, z, &said, err, sizeof err),
                         FL_ERR_AUTH);
        snprintf(want, sizeof want, "%s: no key in the file", path);
        assert_string_equal(err, want);
    }
    /* a bad key line, named by its line number; a later good key does not rescue it */
    static const struct {
        const char *text;
        int line;
    } bad[] = {
        {"# comment\n\nnot-a-key\n" KEY_A "\n", 3},
        {HDR_PUB KEY_A "x\n", 2},                          /* 41 characters */
        {HDR_PUB "HelloWorldHelloWorldHelloWorldHelloWorl\n", 2}, /* 39 */
        {KEY_A " extra\n", 1},                             /* no '#' after the blank */
        {KEY_A "# no blank before the comment\n", 1},
        {"\n\n\nHelloWorldHelloWorldHelloWorldHello%nSc1\n", 4}, /* a group above 2^32 - 1 */
        {"Hello World HelloWorldHelloWorldHelloWorld\n", 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        key_file(path, "bad.pub", bad[i].text);
        assert_int_equal(fl_key_file_read(path, FL_KEY_PUBLIC, z, NULL, err, sizeof err),
                         FL_ERR_AUTH);
        snprintf(want, sizeof want, "%s:%d: not a 40-character Z85 key", path, bad[i].line);
        assert_string_equal(err, want);
    }
    /* a key file holds one key: a second key, or anything after the key but comments, is
     * refused at its line (the first key was taken, the rest ignored without a word), z85
     * untouched; the same from memory */
    static const struct {
        const char *text;
        int line;
    } more[] = {
        {HDR_PUB KEY_A "\n" KEY_B "\n", 3},                 /* an old key left, or an allow-list */
        {HDR_PUB KEY_A "\n" HDR_SEC KEY_B "\n", 4},         /* NAME.pub and NAME.secret joined */
        {KEY_A "  # laptop\n\n# next\n" KEY_B "\r\n", 4},
        {KEY_A "\nnot-a-key\n", 2},
        {"\xEF\xBB\xBF" KEY_A "\r\n\r\n" KEY_A, 3},          /* the same key twice too */
    };
    for (size_t i = 0; i < sizeof more / sizeof *more; i++) {
        key_file(path, "two.pub", more[i].text);
        memset(z, 'z', sizeof z);
        for (int w = FL_KEY_ANY; w <= FL_KEY_PUBLIC; w++) {
            if (fl_key_file_read(path, (fl_key_kind)w, z, NULL, err, sizeof err) != FL_ERR_AUTH)
                fail_msg("more[%zu] (want %d) taken as %.40s", i, w, z);
            snprintf(want, sizeof want, "%s:%d: a line after the key (a key file holds one key: "
                     "two files joined, or an allow-list?)", path, more[i].line);
            assert_string_equal(err, want);
            assert_int_equal(z[0], 'z');
        }
        assert_int_equal(fl_key_text_parse(more[i].text, strlen(more[i].text), "mem",
                                           FL_KEY_ANY, z, NULL, err, sizeof err), FL_ERR_AUTH);
        assert_int_equal(strncmp(err, "mem:", 4), 0);
    }
    /* a file that is missing, or not a key file's size */
    snprintf(path, sizeof path, "%s/missing.pub", g_keydir);
    assert_int_equal(fl_key_file_read(path, FL_KEY_PUBLIC, z, &said, err, sizeof err), FL_ERR_IO);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    assert_string_equal(err, want);
    assert_int_equal(said, FL_KEY_ANY);
    char *big = malloc(FL_KEYFILE_MAX_BYTES + 2);
    assert_non_null(big);
    memset(big, '\n', FL_KEYFILE_MAX_BYTES + 1);
    big[FL_KEYFILE_MAX_BYTES + 1] = 0;
    key_file(path, "big.pub", big);
    free(big);
    assert_int_equal(fl_key_file_read(path, FL_KEY_PUBLIC, z, NULL, err, sizeof err), FL_ERR_IO);
    assert_non_null(strstr(err, "big.pub: file too large"));
    assert_int_equal(fl_key_file_read(NULL, FL_KEY_PUBLIC, z, NULL, err, sizeof err),
                     FL_ERR_INVALID_ARG);
    assert_int_equal(fl_key_text_parse(NULL, 1, "x", FL_KEY_ANY, z, NULL, err, sizeof err),
                     FL_ERR_INVALID_ARG);
}

/* tcp://HOST:PORT as the server's configuration and the client library read it. */
static void test_endpoint_parts(void **state)
{
    (void)state;
    const char *h, *p;
    size_t hl;
    assert_true(fl_tcp_split("tcp://127.0.0.1:5555", &h, &hl, &p));
    assert_int_equal(hl, 9);
    assert_memory_equal(h, "127.0.0.1", 9);
    assert_string_equal(p, "5555");
    assert_true(fl_tcp_split("tcp://[::1]:80", &h, &hl, &p));
    assert_int_equal(hl, 5);
    assert_string_equal(p, "80");
    assert_true(fl_tcp_split("tcp://*:*", &h, &hl, &p));
    assert_string_equal(p, "*");
    assert_false(fl_tcp_split("tcp://:5555", &h, &hl, &p));
    assert_false(fl_tcp_split("tcp://host", &h, &hl, &p));
    assert_false(fl_tcp_split("ipc:///tmp/x:1", &h, &hl, &p));
    assert_int_equal(fl_port_number("0"), 0);
    assert_int_equal(fl_port_number("65535"), 65535);
    const char *bad[] = {"", "65536", "99999", "-1", "+5", " 5", "5x", "*", "000001"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (fl_port_number(bad[i]) != -1)
            fail_msg("'%s' taken as port %ld", bad[i], fl_port_number(bad[i]));
    char host[16];
    assert_true(fl_tcp_host("tcp://[fe80::1%lo]:80", host, sizeof host));
    assert_string_equal(host, "fe80::1%lo");
    assert_int_equal(fl_ip_literal(host), 6);
    assert_true(fl_tcp_host("tcp://127.0.0.1:5555", host, sizeof host));
    assert_int_equal(fl_ip_literal(host), 4);
    assert_true(fl_tcp_host("tcp://a-long-host-name.example:1", host, sizeof host));
    assert_string_equal(host, "a-long-host-nam"); /* cut to fit */
    assert_int_equal(fl_ip_literal(host), 0);
    assert_int_equal(fl_ip_literal("*"), 0);
    assert_false(fl_tcp_host("ipc:///tmp/x:1", host, sizeof host));
    assert_string_equal(host, "");
    /* libzmq's tcp://SOURCE;HOST:PORT: the host connected to, which the client looks at to set
     * ZMQ_IPV6 (without it libzmq fails each attempt at an IPv6 server silently) */
    assert_true(fl_tcp_host("tcp://[::1]:0;[::1]:5555", host, sizeof host));
    assert_string_equal(host, "::1");
    assert_int_equal(fl_ip_literal(host), 6);
    assert_true(fl_tcp_host("tcp://192.168.1.2;10.0.0.1:5555", host, sizeof host));
    assert_string_equal(host, "10.0.0.1");
    assert_true(fl_tcp_host("tcp://eth0;h.example:5555", host, sizeof host));
    assert_string_equal(host, "h.example");
    /* no host after the source, a bracket without its pair (a port left out): no host */
    const char *no_host[] = {"tcp://[::1]", "tcp://eth0;:5555", "tcp://[::1:80", "tcp://::1]:80",
                             "tcp://[]:80"};
    for (size_t i = 0; i < sizeof no_host / sizeof no_host[0]; i++)
        if (fl_tcp_host(no_host[i], host, sizeof host) || host[0])
            fail_msg("'%s': host '%s'", no_host[i], host);
    /* a client's endpoint (fl_connect_endpoint_ok) */
    char why[128];
    const char *ok[] = {"tcp://127.0.0.1:5555", "tcp://[::1]:1", "tcp://h.example:65535",
                        "tcp://[fe80::1%lo]:80", "tcp://[::1]:0;[::1]:5555",
                        "tcp://eth0;h.example:5555", "ipc:///tmp/fl.sock", "inproc://fl"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!fl_connect_endpoint_ok(ok[i], why, sizeof why))
            fail_msg("'%s' refused: %s", ok[i], why);
    const char *no[] = {"localhost:5555", "http://a:80", "tcp://a", "tcp://a:0", "tcp://a:99999",
                        "ipc://", "inproc://", "", "TCP://a:1", "tcp://[::1:5555",
                        "tcp://::1]:80", "tcp://eth0;:5555", "tcp://[]:80"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        why[0] = 0;
        if (fl_connect_endpoint_ok(no[i], why, sizeof why) || strncmp(why, "is not tcp://", 13))
            fail_msg("'%s' taken (or said '%s')", no[i], why);
    }
    /* a ':' in the HOST outside brackets: an IPv6 address written bare (libzmq split it at the
     * last ':' and connected, though flc.h asks for brackets) or a second port (retried as a
     * host "h:1" for ever); also after a SOURCE's ';' */
    const char *colon[] = {"tcp://::1:5555", "tcp://h:1:2", "tcp://fe80::1%lo:80",
                           "tcp://[::1]:0;::1:5555"};
    for (size_t i = 0; i < sizeof colon / sizeof colon[0]; i++) {
        why[0] = 0;
        if (fl_connect_endpoint_ok(colon[i], why, sizeof why) ||
            strncmp(why, "is not tcp://HOST:PORT: its HOST '", 34) ||
            !strstr(why, "' has a ':' (an IPv6 address is written [ADDR])"))
            fail_msg("'%s' taken (or said '%s')", colon[i], why);
    }
    /* a blank or a control character in the HOST (a tab, a pasted space): libzmq refused the
     * tab at the connect and retried the space as a name for ever; said by position and code */
    const struct {
        const char *ep, *said;
    } blank[] = {{"tcp://ho\tst:5555", "its HOST has a control character at byte 2 (0x09)"},
                 {"tcp://ho st:5555", "its HOST has a blank at byte 2 (0x20)"},
                 {"tcp:// 127.0.0.1:5555", "its HOST has a blank at byte 0 (0x20)"},
                 {"tcp://h\r:5555", "its HOST has a control character at byte 1 (0x0d)"},
                 {"tcp://eth0;h\x7f:5555", "its HOST has a control character at byte 1 (0x7f)"}};
    for (size_t i = 0; i < sizeof blank / sizeof blank[0]; i++) {
        why[0] = 0;
        if (fl_connect_endpoint_ok(blank[i].ep, why, sizeof why) || !strstr(why, blank[i].said))
            fail_msg("'%s' taken (or said '%s')", blank[i].ep, why);
    }
    /* a character libzmq's connect refuses ("Invalid argument": fl_client exited 4 once its
     * dataset had loaded), in the HOST or a SOURCE, or to begin them */
    const struct {
        const char *ep, *said;
    } refused[] = {{"tcp://h!x:5555", "its HOST has '!' at byte 1, which libzmq's connect refuses"},
                   {"tcp://h,x:5555", "its HOST has ',' at byte 1"},
                   {"tcp://h\xc3\xa9:5555", "its HOST has 0xc3 at byte 1"},
                   {"tcp://-h:5555", "its HOST begins with '-', which libzmq's connect refuses "
                                     "(a letter or a digit first)"},
                   {"tcp://_h:5555", "its HOST begins with '_'"},
                   {"tcp://;h:5555", "its SOURCE begins with ';'"},
                   {"tcp://et/0;h:5555", "its SOURCE has '/' at byte 2"},
                   {"tcp://eth0;h/x:5555", "its HOST has '/' at byte 1"}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        why[0] = 0;
        if (fl_connect_endpoint_ok(refused[i].ep, why, sizeof why) ||
            !strstr(why, refused[i].said))
            fail_msg("'%s' taken (or said '%s')", refused[i].ep, why);
    }
    const char *zmq_ok[] = {"tcp://h_x-1.y:5555", "tcp://e%0;h:5555", "tcp://H9.example:1"};
    for (size_t i = 0; i < sizeof zmq_ok / sizeof zmq_ok[0]; i++)
        if (!fl_connect_endpoint_ok(zmq_ok[i], why, sizeof why))
            fail_msg("'%s' refused: %s", zmq_ok[i], why);
    why[0] = 0;
    assert_false(fl_connect_endpoint_ok("tcp://::1:5555", why, sizeof why));
    assert_non_null(strstr(why, "its HOST '::1' has a ':'"));
    /* ipc://: libzmq's connect refuses a path longer than a Unix socket's 107 bytes and a bare
     * "@"; the client said so only after its dataset had loaded */
    char ipc[6 + 109];
    memcpy(ipc, "ipc:///", 7);
    memset(ipc + 7, 'p', 106);
    ipc[6 + 107] = '\0'; /* a path of 107 bytes: fits */
    assert_true(fl_connect_endpoint_ok(ipc, why, sizeof why));
    assert_true(fl_connect_endpoint_ok("ipc://@fl", why, sizeof why));
    strcat(ipc, "p"); /* 108 */
    why[0] = 0;
    assert_false(fl_connect_endpoint_ok(ipc, why, sizeof why));
    assert_string_equal(why, "is not ipc://PATH with a PATH of at most 107 bytes (a Unix socket's; "
                             "this one has 108)");
    why[0] = 0;
    assert_false(fl_connect_endpoint_ok("ipc://@", why, sizeof why));
    assert_int_equal(strncmp(why, "is not tcp://", 13), 0);
    /* a server's bind address: libzmq's connect says only "Invalid argument" */
    why[0] = 0;
    assert_false(fl_connect_endpoint_ok("tcp://*:5555", why, sizeof why));
    assert_non_null(strstr(why, "has host '*', which a server binds"));
    assert_non_null(strstr(why, "tcp://127.0.0.1:5555"));
    /* ... also after a SOURCE, or in brackets: libzmq's connect took those, and the client
     * retried a host '*' that never resolves, for ever (found by fuzz_endpoint) */
    const char *star[] = {"tcp://eth0;*:5555", "tcp://;*:5", "tcp://[::1]:0;*:5555",
                          "tcp://[*]:5555", "tcp://eth0;[*]:5555"};
    for (size_t i = 0; i < sizeof star / sizeof star[0]; i++) {
        why[0] = 0;
        if (fl_connect_endpoint_ok(star[i], why, sizeof why) ||
            !strstr(why, "has host '*', which a server binds"))
            fail_msg("'%s' taken (or said '%s')", star[i], why);
    }
}

/* A child that opens path for writing, then writes each of the n parts after `gap` seconds;
 * then, with sync >= 0, writes a byte to sync and holds the FIFO open without writing (until
 * killed). An alarm ends it after 20 s whatever happens (a reader that never came). */
static pid_t fifo_writer(const char *path, const char *const *parts, int n, double gap, int sync)
{
    const pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        const int fd = open(path, O_WRONLY);
        for (int i = 0; fd >= 0 && i < n; i++) {
            usleep((useconds_t)(gap * 1e6));
            if (write(fd, parts[i], strlen(parts[i])) < 0)
                _exit(1);
        }
        if (sync >= 0 && write(sync, "s", 1) == 1)
            for (;;)
                pause();
        _exit(fd >= 0 ? 0 : 1);
    }
    return pid;
}

/* fl_file_read_wait (fl_server's --config): a regular file as fl_file_read_regular reads it; a
 * FIFO or a pipe read to its end whatever its writer's pace, whether the writer comes after the
 * open or finished before it; a FIFO that no process writes to, or whose writer stops without
 * closing it, is refused after the wait, where a blocking read would wait for good and a read
 * without waiting would take it for an empty file. */
/* fl_read_int_file: the leading integer, or the fallback for a file missing, empty, not a number,
 * or a number outside int (until 2026-12-07 fscanf's %d, undefined there: glibc wrapped
 * 2147483648 to -2147483648 and 4294967297 to 1). */
static void test_read_int_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_common_intXXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const struct { const char *text; int want; } cases[] = {
        {"4096\n", 4096}, {"  -7 x\n", -7}, {"", 11}, {"x12\n", 11},
        {"\n\n 5\n", 5}, {"+8\n", 8}, {"-\n", 11}, {"12abc\n", 12},
        {"2147483647\n", 2147483647}, {"-2147483648\n", -2147483647 - 1},
        {"2147483648\n", 11}, {"-2147483649\n", 11}, {"4294967297\n", 11},
        {"99999999999999999999999999\n", 11},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(ftruncate(fd, 0), 0);
        const size_t n = strlen(cases[i].text);
        assert_int_equal(pwrite(fd, cases[i].text, n, 0), (ssize_t)n);
        assert_int_equal(fl_read_int_file(path, 11), cases[i].want);
    }
    close(fd);
    unlink(path);
    assert_int_equal(fl_read_int_file(path, 11), 11);
}

/* fopen, wrapped (meson.build: --wrap=fopen64, glibc's name under _FILE_OFFSET_BITS=64): while
 * g_fopen_watch is set, each stream it opens is counted, and those whose descriptor would outlive
 * an exec (no FD_CLOEXEC) apart. While g_cgroup_root names a directory, /proc/self/cgroup is read
 * from its file "self_cgroup" and /sys/fs/cgroup/X from its X: a cgroup of the test's making. */
FILE *__real_fopen64(const char *path, const char *mode);
FILE *__wrap_fopen64(const char *path, const char *mode);
static int g_fopen_watch, g_fopen_made, g_fopen_inheritable;
static const char *g_cgroup_root;

FILE *__wrap_fopen64(const char *path, const char *mode)
{
    char fake[512];
    static const char sys[] = "/sys/fs/cgroup";
    if (g_cgroup_root && strcmp(path, "/proc/self/cgroup") == 0) {
        snprintf(fake, sizeof fake, "%s/self_cgroup", g_cgroup_root);
        path = fake;
    } else if (g_cgroup_root && strncmp(path, sys, sizeof sys - 1) == 0) {
        snprintf(fake, sizeof fake, "%s%s", g_cgroup_root, path + sizeof sys - 1);
        path = fake;
    }
    FILE *f = __real_fopen64(path, mode);
    if (g_fopen_watch && f) {
        g_fopen_made++;
        if (!(fcntl(fileno(f), F_GETFD) & FD_CLOEXEC))
            g_fopen_inheritable++;
    }
    return f;
}

/* The files that common/ opens to read (fl_file_read, fl_read_int_file, fl_mem_available's
 * /proc/meminfo) are close-on-exec from the open, as every other descriptor of fedrop's: until
 * 2026-12-07 they were opened with fopen's "r", and a fork and exec in another thread while one
 * was open handed the child the descriptor. */
static void test_read_streams_cloexec(void **state)
{
    (void)state;
    char path[] = "/tmp/test_common_cloexecXXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "42\n", 3), 3);
    close(fd);
    g_fopen_watch = 1;
    g_fopen_made = g_fopen_inheritable = 0;
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(fl_file_read(path, 64, &text, &len, NULL, 0), FL_OK);
    free(text);
    assert_int_equal(fl_read_int_file(path, 0), 42);
    double total = 0.0;
    const double have = fl_mem_available(&total);
    g_fopen_watch = 0;
    assert_true(have > 0.0);
    assert_true(g_fopen_made >= 3); /* and /proc/self/cgroup, and cgroup files where there are */
    assert_int_equal(g_fopen_inheritable, 0);
    unlink(path);
}

/* The cgroup v2 line of /proc/self/cgroup, and the room memory.max and memory.current leave. */
static void test_cgroup_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int ok;
        const char *path;
    } paths[] = {
        {"0::/user.slice/user-1000.slice/session-2.scope\n", 1,
         "/user.slice/user-1000.slice/session-2.scope"},
        {"9:name=systemd:/\n4:memory:/job/7\n0::/\n", 1, "/"}, /* hybrid v1 and v2 */
        {"4:memory:/job/7\n1:cpu:/\n", 0, ""},                  /* v1 only */
        {"10::/not-v2\n4:memory:0::/x\n", 0, ""},               /* "0::" starts no line */
        {"0::/slurm/job_9", 1, "/slurm/job_9"},                 /* no newline at the end */
        {"0::relative\n", 0, ""},
        {"", 0, ""},
    };
    char out[64];
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        assert_int_equal(fl_cgroup_v2_path(paths[i].text, out, sizeof out), paths[i].ok);
        assert_string_equal(out, paths[i].path);
    }
    assert_int_equal(fl_cgroup_v2_path("0::/0123456789\n", out, 11), 0); /* does not fit */
    assert_int_equal(fl_cgroup_v2_path("0::/0123456789\n", out, 12), 1);
    static const struct {
        const char *max, *cur;
        int ret;
        double room;
    } rooms[] = {
        {"max\n", "123\n", 0, 0.0},
        {"max", "123", 0, 0.0},
        {"1073741824\n", "268435456\n", 1, 805306368.0},
        {"100\n", "200\n", 1, 0.0}, /* over its limit (reclaim pending) */
        {"100\n", "0\n", 1, 100.0},
        {"12x\n", "1\n", -1, 0.0},
        {"", "1\n", -1, 0.0},
        {"-5\n", "1\n", -1, 0.0},
        {" 5\n", "1\n", -1, 0.0},
        {"100\n", "abc\n", -1, 0.0},
        {"100\n", "", -1, 0.0},
        {"99999999999999999999999\n", "1\n", -1, 0.0}, /* past unsigned long long */
    };
    for (size_t i = 0; i < sizeof rooms / sizeof rooms[0]; i++) {
        double room = -1.0;
        assert_int_equal(fl_cgroup_room(rooms[i].max, rooms[i].cur, &room), rooms[i].ret);
        if (rooms[i].ret == 1)
            assert_true(room == rooms[i].room);
        else
            assert_true(room == -1.0);
    }
    static const struct {
        const char *text;
        int ok;
        const char *path;
    } v1[] = {
        {"4:memory:/process_api/59\n0::/\n", 1, "/process_api/59"},
        {"9:name=systemd:/\n5:cpu,memory,pids:/job/7\n0::/\n", 1, "/job/7"}, /* co-mounted */
        {"5:cpu,memory:/job/7", 1, "/job/7"},                                 /* no newline */
        {"0::/job/7\n", 0, ""},                                               /* v2 only */
        {"3:name=memory:/x\n2:memoryx:/y\n1:cpu:/memory\n", 0, ""},          /* no "memory" */
        {"4:memory:relative\n", 0, ""},
        {"4:memory\n0::/\n", 0, ""}, /* no second colon */
        {"", 0, ""},
    };
    for (size_t i = 0; i < sizeof v1 / sizeof v1[0]; i++) {
        assert_int_equal(fl_cgroup_v1_memory_path(v1[i].text, out, sizeof out), v1[i].ok);
        assert_string_equal(out, v1[i].path);
    }
    assert_int_equal(fl_cgroup_v1_memory_path("4:memory:/0123456789\n", out, 11), 0);
    assert_int_equal(fl_cgroup_v1_memory_path("4:memory:/0123456789\n", out, 12), 1);
    static const struct {
        const char *lim, *use;
        int ret;
        double room;
    } v1rooms[] = {
        {"9223372036854771712\n", "46338048\n", 0, 0.0}, /* none set, 4 KiB pages */
        {"9223372036854710272\n", "46338048\n", 0, 0.0}, /* none set, 64 KiB pages */
        {"1073741824\n", "268435456\n", 1, 805306368.0},
        {"100\n", "200\n", 1, 0.0},
        {"-1\n", "1\n", -1, 0.0},
        {"100\n", "x\n", -1, 0.0},
        {"99999999999999999999999\n", "1\n", -1, 0.0},
    };
    for (size_t i = 0; i < sizeof v1rooms / sizeof v1rooms[0]; i++) {
        double room = -1.0;
        assert_int_equal(fl_cgroup_v1_room(v1rooms[i].lim, v1rooms[i].use, &room), v1rooms[i].ret);
        if (v1rooms[i].ret == 1)
            assert_true(room == v1rooms[i].room);
        else
            assert_true(room == -1.0);
    }
}

static void put_text(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = __real_fopen64(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* fl_mem_available inside a cgroup v2 with a memory limit (a container, a systemd slice, a Slurm
 * job): the room the limit leaves, not the machine's MemAvailable, which may be many times more
 * (fl_sim would start a run whose residuals the cgroup's OOM killer ends). Until 2026-12-07 it
 * read MemAvailable alone; until later that day it saw no cgroup v1 memory controller (a hybrid
 * host's, as on the machine these tests were written on). The limit may be the job's, an ancestor
 * of the process's own cgroup; a cgroup file it cannot read or parse leaves MemAvailable. */
static void test_mem_available_cgroup(void **state)
{
    (void)state;
    char root[] = "/tmp/test_common_cgroupXXXXXX";
    assert_non_null(mkdtemp(root));
    char dir[512];
    snprintf(dir, sizeof dir, "%s/job", root);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(dir, sizeof dir, "%s/job/step", root);
    assert_int_equal(mkdir(dir, 0700), 0);
    put_text(root, "self_cgroup", "1:cpu:/\n0::/job/step\n");
    put_text(root, "cgroup.controllers", "cpu memory\n"); /* /sys/fs/cgroup is the v2 root */
    const double mib = 1048576.0;
    g_cgroup_root = root;
    /* its own cgroup: 48 MiB of room (64 MiB, 16 MiB used) */
    put_text(root, "job/step/memory.max", "67108864\n");
    put_text(root, "job/step/memory.current", "16777216\n");
    double total = 0.0;
    assert_true(fl_mem_available(&total) == 48.0 * mib);
    assert_true(total > 64.0 * mib); /* still the machine's */
    /* the job's limit, on the parent, is tighter: 8 MiB */
    put_text(root, "job/memory.max", "33554432\n");
    put_text(root, "job/memory.current", "25165824\n");
    assert_true(fl_mem_available(NULL) == 8.0 * mib);
    /* no limit on the step, only on the job */
    put_text(root, "job/step/memory.max", "max\n");
    assert_true(fl_mem_available(NULL) == 8.0 * mib);
    /* the job's current unreadable as a number: no limit known (MemAvailable, far more) */
    put_text(root, "job/memory.current", "lots\n");
    assert_true(fl_mem_available(NULL) > 64.0 * mib);
    /* cgroup v1 alone, no v1 memory files: MemAvailable */
    put_text(root, "job/memory.current", "25165824\n");
    put_text(root, "self_cgroup", "4:memory:/job\n");
    assert_true(fl_mem_available(NULL) > 64.0 * mib);
    /* the v1 memory controller (a hybrid or older host: what fl_mem_available saw nothing of
     * until 2026-12-07): the job's 32 MiB limit, 20 MiB used; the step's own "no limit" */
    snprintf(dir, sizeof dir, "%s/memory", root);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(dir, sizeof dir, "%s/memory/job", root);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(dir, sizeof dir, "%s/memory/job/step", root);
    assert_int_equal(mkdir(dir, 0700), 0);
    put_text(root, "self_cgroup", "9:name=systemd:/\n4:cpu,memory:/job/step\n0::/\n");
    put_text(root, "memory/job/step/memory.limit_in_bytes", "9223372036854771712\n");
    put_text(root, "memory/job/step/memory.usage_in_bytes", "20971520\n");
    put_text(root, "memory/job/memory.limit_in_bytes", "33554432\n");
    put_text(root, "memory/job/memory.usage_in_bytes", "20971520\n");
    assert_true(fl_mem_available(NULL) == 12.0 * mib);
    /* a tighter one on the step itself */
    put_text(root, "memory/job/step/memory.limit_in_bytes", "25165824\n");
    assert_true(fl_mem_available(NULL) == 4.0 * mib);
    /* the job not hierarchical (memory.use_hierarchy 0): its limit does not hold the step */
    put_text(root, "memory/job/step/memory.limit_in_bytes", "9223372036854771712\n");
    put_text(root, "memory/job/memory.use_hierarchy", "0\n");
    assert_true(fl_mem_available(NULL) > 64.0 * mib);
    put_text(root, "memory/job/memory.use_hierarchy", "1\n");
    assert_true(fl_mem_available(NULL) == 12.0 * mib);
    /* swap accounted (memsw: memory and swap together, at least the memory limit): the job's
     * 32 MiB memsw limit, 8 MiB of its 28 MiB in swap, leaves 4 MiB, less than the 12 MiB the
     * memory limit leaves; an allocation past it cannot be swapped out of the way (OOM). Not
     * read until 2026-12-07 (12 MiB). The step's memsw: none set. */
    put_text(root, "memory/job/step/memory.memsw.limit_in_bytes", "9223372036854771712\n");
    put_text(root, "memory/job/step/memory.memsw.usage_in_bytes", "29360128\n");
    put_text(root, "memory/job/memory.memsw.limit_in_bytes", "33554432\n");
    put_text(root, "memory/job/memory.memsw.usage_in_bytes", "29360128\n");
    assert_true(fl_mem_available(NULL) == 4.0 * mib);
    /* nothing in swap: the memory limit's room, the smaller again */
    put_text(root, "memory/job/memory.memsw.usage_in_bytes", "20971520\n");
    assert_true(fl_mem_available(NULL) == 12.0 * mib);
    /* v1 and v2 both limit (the v2 line names /job, 8 MiB of room): the least */
    put_text(root, "self_cgroup", "4:memory:/job/step\n0::/job\n");
    assert_true(fl_mem_available(NULL) == 8.0 * mib);
    /* the v1 usage unreadable as a number: that level counts as no limit */
    put_text(root, "self_cgroup", "4:memory:/job/step\n");
    put_text(root, "memory/job/memory.usage_in_bytes", "lots\n");
    assert_true(fl_mem_available(NULL) == 12.0 * mib); /* the memsw limit's, read apart */
    put_text(root, "memory/job/memory.memsw.usage_in_bytes", "lots\n");
    assert_true(fl_mem_available(NULL) > 64.0 * mib);
    /* a hybrid host: /sys/fs/cgroup is not the v2 root (no cgroup.controllers there), v2 is
     * mounted at /sys/fs/cgroup/unified, the memory controller in it (what fl_mem_available
     * did not look at until 2026-12-07): the job's 12 MiB of room there, not the 8 MiB that
     * /sys/fs/cgroup/job (no cgroup of this process on a hybrid host) would say */
    snprintf(dir, sizeof dir, "%s/cgroup.controllers", root);
    assert_int_equal(remove(dir), 0);
    snprintf(dir, sizeof dir, "%s/unified", root);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(dir, sizeof dir, "%s/unified/job", root);
    assert_int_equal(mkdir(dir, 0700), 0);
    put_text(root, "unified/cgroup.controllers", "memory\n");
    put_text(root, "unified/job/memory.max", "16777216\n");
    put_text(root, "unified/job/memory.current", "4194304\n");
    put_text(root, "self_cgroup", "4:memory:/\n0::/job\n");
    assert_true(fl_mem_available(NULL) == 12.0 * mib);
    g_cgroup_root = NULL;
    const char *files[] = {"job/step/memory.max",
                           "job/step/memory.current",
                           "job/memory.max",
                           "job/memory.current",
                           "self_cgroup",
                           "job/step",
                           "job",
                           "memory/job/step/memory.limit_in_bytes",
                           "memory/job/step/memory.usage_in_bytes",
                           "memory/job/memory.limit_in_bytes",
                           "memory/job/memory.usage_in_bytes",
                           "memory/job/memory.use_hierarchy",
                           "memory/job/step/memory.memsw.limit_in_bytes",
                           "memory/job/step/memory.memsw.usage_in_bytes",
                           "memory/job/memory.memsw.limit_in_bytes",
                           "memory/job/memory.memsw.usage_in_bytes",
                           "unified/job/memory.max",
                           "unified/job/memory.current",
                           "unified/cgroup.controllers",
                           "unified/job",
                           "unified",
                           "memory/job/step",
                           "memory/job",
                           "memory"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(dir, sizeof dir, "%s/%s", root, files[i]);
        assert_int_equal(remove(dir), 0);
    }
    assert_int_equal(rmdir(root), 0);
}

/* fl_write_nosigpipe (fl_server's metrics FIFO): a write to a pipe whose reader has gone fails
 * with EPIPE and leaves this process alive (SIGPIPE at its default would end it) with no SIGPIPE
 * pending; one the caller had pending already is left to it. */
static void test_write_nosigpipe(void **state)
{
    (void)state;
    struct sigaction dfl, old;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    errno = 0;
    assert_int_equal(fl_write_nosigpipe(p[1], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    sigset_t pending, pipe_set, mask;
    assert_int_equal(sigpending(&pending), 0);
    assert_false(sigismember(&pending, SIGPIPE));
    /* the caller's own SIGPIPE, blocked and pending: still pending after the call */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    assert_int_equal(sigprocmask(SIG_BLOCK, &pipe_set, &mask), 0);
    assert_int_equal(raise(SIGPIPE), 0);
    assert_int_equal(fl_write_nosigpipe(p[1], "x", 1), -1);
    assert_int_equal(sigpending(&pending), 0);
    const int kept = sigismember(&pending, SIGPIPE);
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE) {
    }
    assert_int_equal(sigprocmask(SIG_SETMASK, &mask, NULL), 0);
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
    close(p[1]);
    assert_true(kept);
}

static void test_file_read_wait(void **state)
{
    (void)state;
    char dir[] = "/tmp/fl-test-readwait-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], fifo[256], err[512], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/regular", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("run:\n  seed: 3\n", f);
    fclose(f);
    mode_t mode = 0;
    assert_int_equal(fl_file_read_wait(path, 1024, 0.2, &text, &len, &mode, err, sizeof err), FL_OK);
    assert_true(S_ISREG(mode));
    assert_int_equal(len, 15);
    assert_memory_equal(text, "run:\n  seed: 3\n", len);
    free(text);
    assert_int_equal(fl_file_read_wait(dir, 1024, 0.2, &text, &len, NULL, err, sizeof err), FL_ERR_IO);
    assert_non_null(strstr(err, ": a directory, not a regular file"));
    assert_int_equal(fl_file_read_wait("/dev/null", 1024, 0.2, &text, &len, NULL, err, sizeof err),
                     FL_ERR_IO);
    assert_string_equal(err, "/dev/null: a device, not a regular file");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    /* no writer: refused after the wait (not read as an empty file) */
    const double t0 = fl_time_mono_s();
    assert_int_equal(fl_file_read_wait(fifo, 1024, 0.3, &text, &len, NULL, err, sizeof err), FL_ERR_IO);
    char want[400];
    snprintf(want, sizeof want, "%s: a FIFO that no process wrote to within 0.3 s", fifo);
    assert_string_equal(err, want);
    assert_true(fl_time_mono_s() - t0 >= 0.25);
    /* a writer that comes after the open and writes in three parts, a pause before each */
    static const char *const parts[] = {"model:\n", "  arch: mlp:4-3-2\n", "run:\n  seed: 9\n"};
    pid_t w = fifo_writer(fifo, parts, 3, 0.1, -1);
    assert_int_equal(fl_file_read_wait(fifo, 1024, 5.0, &text, &len, &mode, err, sizeof err), FL_OK);
    assert_true(S_ISFIFO(mode));
    assert_int_equal(len, 40);
    assert_memory_equal(text, "model:\n  arch: mlp:4-3-2\nrun:\n  seed: 9\n", len);
    free(text);
    int ws;
    assert_int_equal(waitpid(w, &ws, 0), w);
    /* a writer that stops without closing: refused after the wait, as such (a reader of our own
     * lets the writer's open through, and its part is in the FIFO before the read begins) */
    int sync[2];
    assert_int_equal(pipe(sync), 0);
    const int held = open(fifo, O_RDONLY | O_NONBLOCK);
    assert_true(held >= 0);
    w = fifo_writer(fifo, parts, 1, 0.0, sync[1]);
    char c;
    assert_int_equal(read(sync[0], &c, 1), 1);
    const fl_status stalled = fl_file_read_wait(fifo, 1024, 0.3, &text, &len, NULL, err, sizeof err);
    kill(w, SIGKILL);
    waitpid(w, &ws, 0);
    close(held);
    close(sync[0]);
    close(sync[1]);
    assert_int_equal(stalled, FL_ERR_IO);
    snprintf(want, sizeof want, "%s: a FIFO that no process finished writing within 0.3 s", fifo);
    assert_string_equal(err, want);
    /* more than max bytes: refused */
    static const char *const big[] = {"0123456789abcdef0123456789abcdef"};
    w = fifo_writer(fifo, big, 1, 0.0, -1);
    assert_int_equal(fl_file_read_wait(fifo, 16, 5.0, &text, &len, NULL, err, sizeof err), FL_ERR_IO);
    assert_non_null(strstr(err, ": file too large"));
    waitpid(w, &ws, 0);
    /* more than max bytes from a writer that holds the FIFO open: refused as too large at once,
     * not read on and then taken for a writer that did not finish (the same held reader lets
     * the writer's open through) */
    assert_int_equal(pipe(sync), 0);
    const int held2 = open(fifo, O_RDONLY | O_NONBLOCK);
    assert_true(held2 >= 0);
    w = fifo_writer(fifo, big, 1, 0.0, sync[1]);
    assert_int_equal(read(sync[0], &c, 1), 1);
    const fl_status over = fl_file_read_wait(fifo, 16, 0.3, &text, &len, NULL, err, sizeof err);
    kill(w, SIGKILL);
    waitpid(w, &ws, 0);
    close(held2);
    close(sync[0]);
    close(sync[1]);
    assert_int_equal(over, FL_ERR_IO);
    snprintf(want, sizeof want, "%s: file too large", fifo);
    assert_string_equal(err, want);
    /* exactly max bytes: read */
    w = fifo_writer(fifo, big, 1, 0.0, -1);
    assert_int_equal(fl_file_read_wait(fifo, 32, 5.0, &text, &len, NULL, err, sizeof err), FL_OK);
    assert_int_equal(len, 32);
    free(text);
    waitpid(w, &ws, 0);
    /* a pipe (a shell's <(command): /dev/fd/N) whose writer finished and closed before the read:
     * its bytes, then the end at once. The wait allowed is the longest (an hour): a read that
     * waited for anything but the pipe's end would hang into the suite's meson timeout. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "a: 1\n", 5), 5);
    close(p[1]);
    char devfd[64];
    snprintf(devfd, sizeof devfd, "/dev/fd/%d", p[0]);
    assert_int_equal(fl_file_read_wait(devfd, 1024, 3600.0, &text, &len, NULL, err, sizeof err),
                     FL_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(text, "a: 1\n", 5);
    free(text);
    close(p[0]);
    unlink(fifo);
    unlink(path);
    rmdir(dir);
}

/* fl_text_shortest: the fewest digits that read back, whole numbers written whole. */
static void test_text_shortest(void **state)
{
    (void)state;
    static const struct { double v; int f32; const char *want; } rows[] = {
        {60, 0, "60"},          {100000, 0, "100000"}, {-3, 0, "-3"},     {0, 0, "0"},
        {0.05, 0, "0.05"},      {0.05f, 1, "0.05"},    {0.7500001, 0, "0.7500001"},
        {1.5, 0, "1.5"},        {1e15, 0, "1e+15"},    {1e20, 0, "1e+20"}, {1e-7, 0, "1e-07"},
        {999999999999999.0, 0, "999999999999999"},     {16777216.0f, 1, "16777216"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char b[32];
        assert_string_equal(fl_text_shortest(b, sizeof b, rows[i].v, rows[i].f32), rows[i].want);
        assert_true(rows[i].f32 ? (float)strtod(b, NULL) == (float)rows[i].v
                                : strtod(b, NULL) == rows[i].v);
    }
    char b[32];
    assert_string_equal(fl_text_shortest(b, sizeof b, NAN, 0), "nan");
}

/* fl_text_yaml_overindent: the line indented under one that already has a value, the first of
 * them (over blank lines, comments and the value's other deeper lines), the owner's key or list
 * item and value; nothing where the deeper line is legitimate YAML structure. */
static void test_text_yaml_overindent(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t l;    /* the line asked about (0-based) */
        int found;
        size_t line, col, owner;
        int item;
        const char *key, *value;
    } rows[] = {
        {"rounds: 2\n    seed: 3\n", 1, 1, 1, 4, 0, 0, "rounds", "2"},
        {"run:\n  rounds: 2 # two\n  # c\n\n    seed: 3\n", 4, 1, 4, 4, 1, 0, "rounds", "2"},
        {"rounds: 2\n    a\n   seed: 3", 2, 1, 1, 4, 0, 0, "rounds", "2"}, /* no final '\n' */
        {"trace: \"x.csv\"  # c\n  seed\n", 1, 1, 1, 2, 0, 0, "trace", "\"x.csv\""},
        {"keep:\n  - 0.5\n    seed: 3\n", 2, 1, 2, 4, 1, 1, "", "0.5"},
        {"rounds: 2\r\n    seed: 3\r\n", 1, 1, 1, 4, 0, 0, "rounds", "2"},
        /* not so: a key without a value, a block scalar, a flow list, an anchor, a quoted key,
         * the first line, a line at the indent above, a comment line, past the end */
        {"run:\n  rounds: 2\n", 1, 0, 0, 0, 0, 0, NULL, NULL},
        {"msg: |\n  two\n", 1, 0, 0, 0, 0, 0, NULL, NULL},
        {"keep: [0.5,\n  0.75]\n", 1, 0, 0, 0, 0, 0, NULL, NULL},
        {"a: &x\n  b: 1\n", 1, 0, 0, 0, 0, 0, NULL, NULL},
        {"\"a\": 1\n  b: 1\n", 1, 0, 0, 0, 0, 0, NULL, NULL},
        {"  rounds: 2\n", 0, 0, 0, 0, 0, 0, NULL, NULL},
        {"rounds: 2\nseed: 3\n", 1, 0, 0, 0, 0, 0, NULL, NULL},
        {"rounds: 2\n  # seed: 3\n", 1, 0, 0, 0, 0, 0, NULL, NULL},
        {"rounds: 2\n", 1, 0, 0, 0, 0, 0, NULL, NULL},
        {"rounds: 2\n", 7, 0, 0, 0, 0, 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        fl_text_overindent oi;
        memset(&oi, 0x5a, sizeof oi);
        const int got = fl_text_yaml_overindent(&oi, rows[i].text, strlen(rows[i].text), rows[i].l);
        if (got != rows[i].found)
            fail_msg("row %zu: %d, not %d", i, got, rows[i].found);
        if (!got)
            continue;
        if (oi.line != rows[i].line || oi.col != rows[i].col || oi.owner != rows[i].owner ||
            oi.item != rows[i].item || strcmp(oi.key, rows[i].key) ||
            strcmp(oi.value, rows[i].value))
            fail_msg("row %zu: line %zu col %zu owner %zu item %d key '%s' value '%s'", i, oi.line,
                     oi.col, oi.owner, oi.item, oi.key, oi.value);
    }
    /* a long key and value: their first 60 bytes */
    char long_text[300];
    snprintf(long_text, sizeof long_text, "%0100d: %0100d\n  x\n", 1, 2);
    fl_text_overindent oi;
    assert_int_equal(fl_text_yaml_overindent(&oi, long_text, strlen(long_text), 1), 1);
    assert_int_equal(strlen(oi.key), 60);
    assert_int_equal(strlen(oi.value), 60);
    assert_int_equal(fl_text_yaml_overindent(&oi, NULL, 0, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_parts), cmocka_unit_test(test_text_shortest),
        cmocka_unit_test(test_text_yaml_overindent),
        cmocka_unit_test(test_status_strings), cmocka_unit_test(test_philox_kat),
        cmocka_unit_test(test_siphash24),
        cmocka_unit_test(test_entropy),
        cmocka_unit_test(test_rng_streams),    cmocka_unit_test(test_rng_distributions),
        cmocka_unit_test(test_sha256),         cmocka_unit_test(test_client_keys),
        cmocka_unit_test(test_logging),
        cmocka_unit_test(test_logging_long_lines),
        cmocka_unit_test(test_time_monotonic), cmocka_unit_test(test_grow), cmocka_unit_test(test_index_new),
        cmocka_unit_test(test_path_dir),
        cmocka_unit_test(test_stat_same_file),
        cmocka_unit_test(test_dir_writable),
        cmocka_unit_test(test_dir_writable_sweeps_probes),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_file_read_wait),
        cmocka_unit_test(test_read_int_file),
        cmocka_unit_test(test_read_streams_cloexec),
        cmocka_unit_test(test_cgroup_parse),
        cmocka_unit_test(test_mem_available_cgroup),
        cmocka_unit_test(test_write_nosigpipe),
        cmocka_unit_test(test_atomic_open_fails),
        cmocka_unit_test(test_temp_files_cloexec),
        cmocka_unit_test(test_atomic_sweep),
        cmocka_unit_test(test_lock_path),
        cmocka_unit_test(test_z85_key_decode),
        cmocka_unit_test(test_big_alloc),
        cmocka_unit_test(test_prefault_write),
        cmocka_unit_test(test_advise_huge),
        cmocka_unit_test_setup_teardown(test_key_file_good, keydir_setup, keydir_teardown),
        cmocka_unit_test_setup_teardown(test_key_file_refused, keydir_setup, keydir_teardown),
        cmocka_unit_test_setup_teardown(test_key_file_wiped, keydir_setup, keydir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
