/* Unit tests for libflclient (include/flc.h) against a fake server in the test: a ZeroMQ ROUTER
 * that speaks the wire protocol by hand (tasks from a real server core), optionally behind CURVE
 * with a ZAP handler that refuses every key. The client runs on its own thread; the test thread
 * plays the server and checks what arrives and how soon flc_client_run returns. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <zmq.h>

#include "fl_sha256.h"
#include "fl_time.h"
#include "flc.h"
#include "flc_zmtp.h"
#include "flm_arch.h"
#include "flm_blas.h"
#include "flp_wire.h"
#include "fls_core.h"
#include "flz.h"
#include "test_net.h"
#include "test_pipe.h"
#include "test_slow.h"

/* ---- a log the client writes to (from its socket and trainer threads) -------------------------- */

typedef struct logbuf {
    pthread_mutex_t mu;
    char text[1 << 16];
    size_t len;
    atomic_int errors;         /* lines at FLC_LOG_ERROR */
} logbuf;

static logbuf *logbuf_new(void)
{
    logbuf *lb = calloc(1, sizeof *lb);
    assert_non_null(lb);
    pthread_mutex_init(&lb->mu, NULL);
    return lb;
}

static void logbuf_free(logbuf *lb)
{
    pthread_mutex_destroy(&lb->mu);
    free(lb);
}

static void log_cb(void *user, flc_log_level level, const char *msg)
{
    logbuf *b = user;
    if (level == FLC_LOG_ERROR)
        atomic_fetch_add(&b->errors, 1);
    pthread_mutex_lock(&b->mu);
    const int n = snprintf(b->text + b->len, sizeof b->text - b->len, "%s\n", msg);
    if (n > 0 && b->len + (size_t)n < sizeof b->text)
        b->len += (size_t)n;
    pthread_mutex_unlock(&b->mu);
}

static int log_count(logbuf *b, const char *needle)
{
    pthread_mutex_lock(&b->mu);
    int n = 0;
    for (const char *p = b->text; (p = strstr(p, needle)); p++)
        n++;
    pthread_mutex_unlock(&b->mu);
    return n;
}

static int log_wait(logbuf *lb, const char *needle, double timeout_s)
{
    const double end = fl_time_mono_s() + timeout_s;
    while (!log_count(lb, needle) && fl_time_mono_s() < end) {
        const struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return log_count(lb, needle) > 0;
}

/* ---- the client on its own thread ------------------------------------------------------------- */

typedef struct runner {
    flc_client *c;
    pthread_t thread;
    flc_status st;
    atomic_int done;
    int joined; /* run_wait saw it return and joined its thread */
} runner;

static void *run_thread(void *p)
{
    runner *r = p;
    r->st = flc_client_run(r->c);
    atomic_store(&r->done, 1);
    return NULL;
}

static void run_start(runner *r, flc_client *c)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    assert_int_equal(pthread_create(&r->thread, NULL, run_thread, r), 0);
}

/* Waits up to timeout_s for flc_client_run to return; 1 if it did. */
static int run_wait(runner *r, double timeout_s)
{
    const double end = fl_time_mono_s() + timeout_s;
    while (!atomic_load(&r->done) && fl_time_mono_s() < end) {
        const struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!atomic_load(&r->done))
        return 0;
    if (!r->joined)
        pthread_join(r->thread, NULL);
    r->joined = 1;
    return 1;
}

/* Stops r's client and waits for flc_client_run to return (within 5 s, else the test fails). */
static void run_stop(runner *r)
{
    flc_client_stop(r->c);
    assert_true(run_wait(r, 5.0));
}

/* ---- the library's allocations, counted ------------------------------------------------------
 * libflclient is a shared library here, so a --wrap of malloc (a static link's tool) cannot see
 * its calls: this program defines malloc, calloc, realloc, free, aligned_alloc and posix_memalign
 * in front of glibc's (its __libc_* entry points) and, between la_start and la_stop, records the
 * blocks whose caller lies in libflclient.so's mapping (what its own code allocates; libzmq's,
 * zstd's and libc's allocations on its behalf are not counted). A block is counted until freed,
 * whoever frees it. Not under ASan or TSan: their own malloc would meet glibc's blocks. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define LA_ON 1

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t k, size_t n);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

enum { LA_SLOTS = 1 << 16 };
#define LA_GONE ((void *)1)
static struct { void *p; size_t n; } g_la[LA_SLOTS];
static atomic_flag g_la_lock = ATOMIC_FLAG_INIT;
static _Atomic uintptr_t g_la_lo, g_la_hi; /* the library's mapping; lo 0: not counting */
static size_t g_la_bytes, g_la_peak, g_la_max; /* live bytes, their peak, the largest block */

static void la_lock(void)
{
    while (atomic_flag_test_and_set_explicit(&g_la_lock, memory_order_acquire)) {
    }
}

static void la_unlock(void)
{
    atomic_flag_clear_explicit(&g_la_lock, memory_order_release);
}

static size_t la_slot(const void *p)
{
    return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> 48) & (LA_SLOTS - 1);
}

static int la_ours(const void *ra)
{
    const uintptr_t lo = atomic_load(&g_la_lo);
    return lo && (uintptr_t)ra >= lo && (uintptr_t)ra < atomic_load(&g_la_hi);
}

static void la_add(void *p, size_t n)
{
    if (!p)
        return;
    la_lock();
    for (size_t i = la_slot(p), k = 0; k < LA_SLOTS; i = (i + 1) & (LA_SLOTS - 1), k++)
        if (!g_la[i].p || g_la[i].p == LA_GONE) {
            g_la[i].p = p;
            g_la[i].n = n;
            g_la_bytes += n;
            if (g_la_bytes > g_la_peak)
                g_la_peak = g_la_bytes;
            if (n > g_la_max)
                g_la_max = n;
            break;
        }
    la_unlock();
}

/* Forgets p if it is counted: its size, else 0 (and *had 0). */
static size_t la_del(void *p, int *had)
{
    *had = 0;
    if (!p || !atomic_load(&g_la_lo))
        return 0;
    size_t n = 0;
    la_lock();
    for (size_t i = la_slot(p), k = 0; g_la[i].p && k < LA_SLOTS; i = (i + 1) & (LA_SLOTS - 1), k++)
        if (g_la[i].p == p) {
            n = g_la[i].n;
            g_la[i].p = LA_GONE;
            g_la_bytes -= n;
            *had = 1;
            break;
        }
    la_unlock();
    return n;
}

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    if (la_ours(__builtin_return_address(0)))
        la_add(p, n);
    return p;
}

void *calloc(size_t k, size_t n)
{
    void *p = __libc_calloc(k, n);
    if (la_ours(__builtin_return_address(0)))
        la_add(p, k * n);
    return p;
}

void *realloc(void *old, size_t n)
{
    int had;
    const size_t was = la_del(old, &had);
    void *p = __libc_realloc(old, n);
    if (!p && n && had) /* failed: the old block stays, counted */
        la_add(old, was);
    else if (p && (had || la_ours(__builtin_return_address(0))))
        la_add(p, n);
    return p;
}

void free(void *p)
{
    int had;
    la_del(p, &had);
    __libc_free(p);
}

void *aligned_alloc(size_t align, size_t n)
{
    void *p = __libc_memalign(align, n);
    if (la_ours(__builtin_return_address(0)))
        la_add(p, n);
    return p;
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    if (la_ours(__builtin_return_address(0)))
        la_add(p, n);
    *out = p;
    return 0;
}

/* libflclient.so's mappings, from /proc/self/maps: [*lo, *hi). */
static void lib_mapping(uintptr_t *lo, uintptr_t *hi)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[4096];
    unsigned long l = ULONG_MAX, h = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (strstr(line, "libflclient") && sscanf(line, "%lx-%lx", &a, &b) == 2) {
            l = a < l ? a : l;
            h = b > h ? b : h;
        }
    }
    fclose(f);
    assert_true(h > 0); /* libflclient.so is loaded */
    *lo = l;
    *hi = h;
}

/* Counts the library's allocations from now on, from zero. */
static void la_start(void)
{
    la_lock();
    memset(g_la, 0, sizeof g_la);
    g_la_bytes = g_la_peak = g_la_max = 0;
    la_unlock();
    uintptr_t lo, hi;
    lib_mapping(&lo, &hi);
    atomic_store(&g_la_hi, hi);
    atomic_store(&g_la_lo, lo);
}

static void la_stop(void)
{
    atomic_store(&g_la_lo, 0);
}

static size_t la_bytes(void)
{
    la_lock();
    const size_t n = g_la_bytes;
    la_unlock();
    return n;
}

/* Waits up to timeout_s for the library's live bytes to come down to at most n; 1 if they did. */
static int la_wait_at_most(size_t n, double timeout_s)
{
    const double end = fl_time_mono_s() + timeout_s;
    while (la_bytes() > n && fl_time_mono_s() < end) {
        const struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return la_bytes() <= n;
}

/* pthread_create, in front of libc's: while g_no_lib_threads is set, a thread libflclient.so
 * asks for (from la_start's mapping) cannot be had (EAGAIN, as at the process's thread limit). */
typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static atomic_int g_no_lib_threads;

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static pthread_create_fn real;
    if (atomic_load(&g_no_lib_threads) && la_ours(__builtin_return_address(0)))
        return EAGAIN;
    if (!real) { /* libc's own, as the program would have had it */
        void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        void *sym = libc ? dlsym(libc, "pthread_create") : NULL;
        memcpy(&real, &sym, sizeof real);
    }
    return real ? real(t, attr, fn, arg) : EAGAIN;
}
#endif

/* ---- trainers --------------------------------------------------------------------------------- */

static flc_status train_plus_quarter(const flc_task *task, flc_update *out, void *user)
{
    (void)user;
    for (size_t i = 0; i < task->n_params; i++)
        out->weights[i] += 0.25f;
    out->n_samples = 3;
    out->loss = 1.5;
    return FLC_OK;
}

static flc_status train_fails(const flc_task *task, flc_update *out, void *user)
{
    (void)task;
    (void)out;
    (void)user;
    return FLC_ERR_INTERNAL;
}

/* A status flc.h does not list (a device's -1, an errno) */
static flc_status train_fails_unknown(const flc_task *task, flc_update *out, void *user)
{
    (void)task;
    (void)out;
    (void)user;
    return (flc_status)-1;
}

static flc_config base_config(const char *endpoint, flc_train_fn train, logbuf *lb)
{
    flc_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.server_endpoint = endpoint;
    cfg.client_id = "dev";
    cfg.train = train;
    cfg.log = log_cb;
    cfg.log_user = lb;
    cfg.log_level = FLC_LOG_DEBUG;
    return cfg;
}

/* Three CURVE key pairs: a for the server (and b for one that follows it at the same endpoint),
 * c for the client. */
typedef struct key_trio {
    char apub[41], asec[41], bpub[41], bsec[41], cpub[41], csec[41];
} key_trio;

static void key_trio_new(key_trio *k)
{
    assert_int_equal(zmq_curve_keypair(k->apub, k->asec), 0);
    assert_int_equal(zmq_curve_keypair(k->bpub, k->bsec), 0);
    assert_int_equal(zmq_curve_keypair(k->cpub, k->csec), 0);
}

/* ---- flc_client_new validation ---------------------------------------------------------------- */

static void test_new_validation(void **state)
{
    (void)state;
    key_trio k;
    key_trio_new(&k);
    char bad_char[41], overflow[41], short_key[41];
    snprintf(bad_char, sizeof bad_char, "%s", k.apub);
    bad_char[7] = '"';                      /* not a Z85 character */
    memset(overflow, '#', 40);              /* Z85, but "#####" is above 2^32 - 1 */
    overflow[40] = '\0';
    snprintf(short_key, sizeof short_key, "%.20s", k.cpub);

    logbuf *lb = logbuf_new();
    const flc_config good = {
        .server_endpoint = "tcp://127.0.0.1:1", .client_id = "dev", .server_public_key = k.apub,
        .public_key = k.cpub, .secret_key = k.csec, .train = train_plus_quarter, .log = log_cb,
        .log_user = lb};
    flc_client *c = (flc_client *)&c; /* not NULL: new must set it */
    assert_int_equal(flc_client_new(&good, &c), FLC_OK);
    assert_non_null(c);
    flc_client_free(c);

    /* Each row breaks one field; new must refuse it and name the field in the log. */
    static const int32_t one_label[1] = {0};
    static const flc_samples no_x = {NULL, NULL, one_label, 1, 4};
    static const float one_x[4] = {0};
    static const flc_samples no_row_len = {one_x, NULL, one_label, 1, 0};
    static const flc_samples both_inputs = {one_x, one_label, one_label, 1, 4};
    /* n * row_len past any array: SIZE_MAX squared, 2 HALF * HALF with HALF = 2^32 on 64 bits
     * (the product wraps to 0 in size_t), and a product that fits size_t but not as 4-byte
     * values; the tokens the same. flc_client_new took them all. */
#define HALF ((size_t)1 << (sizeof(size_t) * 4))
    static const flc_samples huge = {one_x, NULL, one_label, SIZE_MAX, SIZE_MAX};
    static const flc_samples wraps = {one_x, NULL, one_label, 2 * HALF, HALF};
    static const flc_samples bytes = {one_x, NULL, one_label, SIZE_MAX / 4 + 1, 1};
    static const flc_samples tok_wraps = {NULL, one_label, one_label, 2 * HALF, HALF};
#undef HALF
    const struct {
        const char *what;   /* what the log must say */
        flc_config cfg;
    } rows[] = {
        {"heartbeat_ms", {.heartbeat_ms = -1}},
        {"liveness_ms", {.liveness_ms = -5}},
        {"reconnect_min_ms", {.reconnect_min_ms = -1}},
        {"reconnect_max_ms", {.reconnect_max_ms = -1}},
        {"reconnect_min_ms 20000 is above reconnect_max_ms 10000 (the default)",
         {.reconnect_min_ms = 20000}},
        {"reconnect_min_ms 200 (the default) is above reconnect_max_ms 100",
         {.reconnect_max_ms = 100}},
        {"liveness_ms 10000 (the default) is not above heartbeat_ms 20000:",
         {.heartbeat_ms = 20000}},
        {"max_rounds", {.max_rounds = -1}},
        {"public_key is not a CURVE key", {.public_key = short_key}},
        {"public_key is not a CURVE key", {.public_key = overflow}},
        {"server_public_key is not a CURVE key", {.server_public_key = bad_char}},
        {"server_public_key is not a CURVE key", {.server_public_key = overflow}},
        {"secret_key is not a CURVE key", {.secret_key = short_key}},
        {"public_key is not the public key of secret_key", {.public_key = k.apub}},
        {"server_endpoint", {.server_endpoint = ""}},
        {"PORT in 1..65535", {.server_endpoint = "tcp://127.0.0.1:99999"}},
        {"PORT in 1..65535", {.server_endpoint = "tcp://127.0.0.1:0"}},
        {"PORT in 1..65535", {.server_endpoint = "tcp://127.0.0.1"}},
        {"PORT in 1..65535", {.server_endpoint = "tcp://:5555"}},
        {"PORT in 1..65535", {.server_endpoint = "tcp://host:55x"}},
        /* libzmq connects to these, and fails each attempt: "is a server running there?" */
        {"has one bracket without the other", {.server_endpoint = "tcp://[::1:5555"}},
        {"its HOST '' is empty", {.server_endpoint = "tcp://10.0.0.1;:5555"}},
        /* an IPv6 address without its brackets, a second port: libzmq connected to the first
         * (splitting at the last ':') and retried the second's host "h:1" for ever */
        {"its HOST '::1' has a ':'", {.server_endpoint = "tcp://::1:5555"}},
        {"its HOST 'h:1' has a ':'", {.server_endpoint = "tcp://h:1:2"}},
        /* a tab: libzmq's connect said "Invalid argument" (FLC_ERR_TRANSPORT from run) */
        {"its HOST has a control character at byte 2 (0x09)", {.server_endpoint = "tcp://ho\tst:5555"}},
        {"is inproc://", {.server_endpoint = "inproc://fedrop"}}, /* no zmq_context given */
        /* no scheme: libzmq said "Invalid argument" at the connect, exit 4 of a transport error */
        {"is not tcp://HOST:PORT, ipc://PATH or inproc://NAME", {.server_endpoint = "localhost:5555"}},
        {"is not tcp://HOST:PORT, ipc://PATH or inproc://NAME", {.server_endpoint = "http://a:80"}},
        {"is not tcp://HOST:PORT, ipc://PATH or inproc://NAME", {.server_endpoint = "ipc://"}},
        {"client_id", {.client_id = ""}},
        {"backend", {.backend = (flc_backend)9}},
        {"samples", {.train = NULL, .samples = &no_x}},
        {"samples->row_len", {.train = NULL, .samples = &no_row_len}},
        {"x (float inputs) and tokens are both set", {.train = NULL, .samples = &both_inputs}},
        {"values (4 bytes each) are more than any array holds", {.train = NULL, .samples = &huge}},
        {"values (4 bytes each) are more than any array holds", {.train = NULL, .samples = &wraps}},
        {"values (4 bytes each) are more than any array holds", {.train = NULL, .samples = &bytes}},
        {"n or row_len is wrong", {.train = NULL, .samples = &tok_wraps}},
        {"log_level 42 is not", {.log_level = (flc_log_level)42}},
        {"heartbeat_ms 5 is below 10", {.heartbeat_ms = 5}},
        {"liveness_ms 1000 is not above heartbeat_ms 5000", {.heartbeat_ms = 5000, .liveness_ms = 1000}},
        {"control character", {.client_id = "bad\nid"}},
        {"flops -1 is not", {.flops = -1.0}},
        {"flops nan is not", {.flops = NAN}},
        {"threads -1 is not", {.threads = -1}},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        flc_config cfg = good;
        const flc_config *d = &rows[i].cfg;
        if (d->heartbeat_ms) cfg.heartbeat_ms = d->heartbeat_ms;
        if (d->liveness_ms) cfg.liveness_ms = d->liveness_ms;
        if (d->reconnect_min_ms) cfg.reconnect_min_ms = d->reconnect_min_ms;
        if (d->reconnect_max_ms) cfg.reconnect_max_ms = d->reconnect_max_ms;
        if (d->max_rounds) cfg.max_rounds = d->max_rounds;
        if (d->public_key) cfg.public_key = d->public_key;
        if (d->server_public_key) cfg.server_public_key = d->server_public_key;
        if (d->secret_key) cfg.secret_key = d->secret_key;
        if (d->server_endpoint) cfg.server_endpoint = d->server_endpoint;
        if (d->client_id) cfg.client_id = d->client_id;
        if (d->backend) cfg.backend = d->backend;
        if (d->log_level) cfg.log_level = d->log_level;
        if (d->flops != 0.0) cfg.flops = d->flops; /* NaN too */
        if (d->threads) cfg.threads = d->threads;
        if (d->samples) {
            cfg.samples = d->samples;
            cfg.train = NULL;
        }
        lb->len = 0;
        lb->text[0] = '\0';
        c = (flc_client *)&c;
        const flc_status st = flc_client_new(&cfg, &c);
        if (st != FLC_ERR_INVALID_ARG || c != NULL || !strstr(lb->text, rows[i].what))
            fail_msg("row %zu (%s): status %d, log '%s'", i, rows[i].what, (int)st, lb->text);
    }
    /* inproc:// is taken with a context of the caller's, where a server of the process can be. */
    {
        void *ctx = zmq_ctx_new();
        flc_config cfg = good;
        cfg.server_endpoint = "inproc://fedrop";
        cfg.zmq_context = ctx;
        c = NULL;
        assert_int_equal(flc_client_new(&cfg, &c), FLC_OK);
        flc_client_free(c);
        zmq_ctx_term(ctx);
    }
    /* Keys without the server's: refused (the device meant CURVE); no key at all: plain text. */
    for (int k = 0; k < 3; k++) {
        flc_config cfg = good;
        cfg.server_public_key = NULL;
        if (k == 1)
            cfg.secret_key = NULL;
        if (k == 2)
            cfg.secret_key = cfg.public_key = NULL;
        lb->len = 0;
        lb->text[0] = '\0';
        const flc_status st = flc_client_new(&cfg, &c);
        if (k < 2) {
            assert_int_equal(st, FLC_ERR_INVALID_ARG);
            assert_null(c);
            assert_non_null(strstr(lb->text, k == 0 ? "secret_key is set but server_public_key "
                                                      "is not"
                                                    : "public_key is set but server_public_key "
                                                      "is not"));
        } else {
            assert_int_equal(st, FLC_OK);
            flc_client_free(c);
        }
    }
    /* The built-in trainer's thread count is applied by new, on this thread (OpenBLAS is
     * loaded here, not by the first training on a thread of the library's): its log says so
     * (the count is the library's own copy of fedrop's models, not this program's). */
    static const float x4[4] = {0};
    static const flc_samples four = {x4, NULL, one_label, 1, 4};
    flc_config bt = good;
    bt.train = NULL;
    bt.samples = &four;
    bt.threads = 2;
    bt.log_level = FLC_LOG_DEBUG;
    assert_int_equal(flc_client_new(&bt, &c), FLC_OK);
    if (flm_blas_init() == FL_OK && !log_count(lb, ", 2 threads"))
        fail_msg("threads 2 not applied; log:\n%s", lb->text);
    flc_client_free(c);
    bt.threads = 0; /* the default: 1 */
    assert_int_equal(flc_client_new(&bt, &c), FLC_OK);
    if (flm_blas_init() == FL_OK && !log_count(lb, ", 1 thread\n"))
        fail_msg("threads 0 not applied as 1; log:\n%s", lb->text);
    flc_client_free(c);
    /* An id longer than the wire takes. */
    char long_id[1100];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    flc_config cfg = good;
    cfg.client_id = long_id;
    lb->len = 0;
    lb->text[0] = '\0';
    assert_int_equal(flc_client_new(&cfg, &c), FLC_ERR_INVALID_ARG);
    assert_non_null(strstr(lb->text, "longer than 1024 bytes"));
    lb->len = 0;
    lb->text[0] = '\0';
    assert_int_equal(flc_client_new(&good, NULL), FLC_ERR_INVALID_ARG);
    assert_non_null(strstr(lb->text, "out is NULL"));
    assert_int_equal(flc_client_new(NULL, &c), FLC_ERR_INVALID_ARG);
    assert_null(c);
    logbuf_free(lb);
}

/* ---- stop is honoured promptly ---------------------------------------------------------------- */

/* A loopback port nothing listens on (bound, then released). */
static void dead_endpoint(char *ep, size_t cap)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
    size_t n = cap;
    assert_int_equal(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &n), 0);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

/* flc_client_stop wakes the session's poll itself. Every other thing that could end that poll
 * is put out of reach: heartbeat_ms of about 12 days (the idle poll sleeps half of it), liveness
 * above it, and libzmq's reconnects to the dead endpoint (each a monitor event that wakes the
 * poll, which would then see the stop flag) 12 days or more apart. So flc_client_run returns only
 * if the stop's byte on the wake pipe ends the poll; were it not written, run would sleep for
 * days and the suite's meson timeout would report the hang. No clock is read. */
static void test_stop_prompt(void **state)
{
    (void)state;
    char ep[128];
    dead_endpoint(ep, sizeof ep);
    logbuf *lb = logbuf_new();
    flc_config cfg = base_config(ep, train_plus_quarter, lb);
    cfg.heartbeat_ms = INT_MAX / 2;
    cfg.liveness_ms = INT_MAX;
    cfg.reconnect_min_ms = INT_MAX / 2; /* (libzmq adds up to as much again) */
    cfg.reconnect_max_ms = INT_MAX / 2;
    flc_client *c = NULL;
    assert_int_equal(flc_client_new(&cfg, &c), FLC_OK);
    runner r;
    run_start(&r, c);
    if (!log_wait(lb, "connecting to", 30.0))
        fail_msg("the client never began to connect; log:\n%s", lb->text);
    /* Past its Hello, into the poll (a stop before it would be seen by the flag alone): a
     * settling pause, not a bound on anything. */
    const struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_false(atomic_load(&r.done)); /* nothing of its own ends the run */
    flc_client_stop(c);
    assert_int_equal(pthread_join(r.thread, NULL), 0); /* a hang is the meson timeout's */
    assert_int_equal(r.st, FLC_ERR_CANCELLED);
    flc_client_free(c);
    logbuf_free(lb);
}

/* ---- a fake server ---------------------------------------------------------------------------- */

typedef struct fake {
    void *ctx, *router, *zap;
    void *mon;                 /* fake_bind's: the router's failed handshakes */
    char ep[128];
    uint8_t rid[256];
    size_t rid_len;
    pthread_t zap_thread;
    atomic_int zap_stop;
    atomic_int zap_refused;
    int heartbeats;            /* Heartbeats fake_recv skipped */
} fake;

/* ZAP (RFC 27): every request is answered 400, as fl_server does for a key not on its list. */
static void *zap_thread(void *p)
{
    fake *f = p;
    while (!atomic_load(&f->zap_stop)) {
        zmq_pollitem_t it = {f->zap, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        char frames[8][256];
        size_t lens[8];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, f->zap, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            if (n < 8) {
                lens[n] = zmq_msg_size(&m) < 256 ? zmq_msg_size(&m) : 256;
                memcpy(frames[n], zmq_msg_data(&m), lens[n]);
                n++;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (n < 2)
            continue;
        zmq_send(f->zap, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(f->zap, frames[1], lens[1], ZMQ_SNDMORE); /* request id */
        zmq_send(f->zap, "400", 3, ZMQ_SNDMORE);
        zmq_send(f->zap, "not on the allow-list", 21, ZMQ_SNDMORE);
        zmq_send(f->zap, "", 0, ZMQ_SNDMORE);
        zmq_send(f->zap, "", 0, 0);
        atomic_fetch_add(&f->zap_refused, 1);
    }
    return NULL;
}

/* f's router socket, no linger: plain text (secret NULL) or a CURVE server of that secret key. */
static void fake_router(fake *f, const char *secret)
{
    f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
    const int linger = 0, on = 1;
    zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof linger);
    if (secret) {
        assert_int_equal(zmq_setsockopt(f->router, ZMQ_CURVE_SERVER, &on, sizeof on), 0);
        assert_int_equal(zmq_setsockopt(f->router, ZMQ_CURVE_SECRETKEY, secret, 40), 0);
    }
}

/* secret: NULL for plain text; else the server's CURVE secret key, behind a refusing ZAP. */
static void fake_open(fake *f, const char *secret)
{
    memset(f, 0, sizeof *f);
    f->ctx = zmq_ctx_new();
    assert_non_null(f->ctx);
    if (secret) {
        f->zap = zmq_socket(f->ctx, ZMQ_REP);
        assert_int_equal(zmq_bind(f->zap, "inproc://zeromq.zap.01"), 0);
        assert_int_equal(pthread_create(&f->zap_thread, NULL, zap_thread, f), 0);
    }
    fake_router(f, secret);
    assert_int_equal(zmq_bind(f->router, "tcp://127.0.0.1:*"), 0);
    size_t n = sizeof f->ep;
    assert_int_equal(zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, f->ep, &n), 0);
}

/* A server at ep, a fixed endpoint, so that another can follow there as a restarted server
 * would: CURVE with `secret` and no ZAP handler (libzmq then admits every key), or plain text
 * (secret NULL). Its monitor (f->mon) reports the handshakes that fail at the server. */
static void fake_bind(fake *f, const char *ep, const char *secret)
{
    memset(f, 0, sizeof *f);
    f->ctx = zmq_ctx_new();
    assert_non_null(f->ctx);
    fake_router(f, secret);
    assert_int_equal(zmq_socket_monitor(f->router, "inproc://fake-monitor",
                                        ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                        ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL), 0);
    f->mon = zmq_socket(f->ctx, ZMQ_PAIR);
    assert_non_null(f->mon);
    const int linger = 0;
    zmq_setsockopt(f->mon, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(f->mon, "inproc://fake-monitor"), 0);
    if (zmq_bind(f->router, ep) != 0)
        fail_msg("bind %s: %s", ep, zmq_strerror(zmq_errno()));
    snprintf(f->ep, sizeof f->ep, "%s", ep);
}

/* Waits up to timeout_s until fake_bind's server has seen n handshakes fail; 1 if it has. */
static int fake_wait_failed_handshakes(fake *f, int n, double timeout_s)
{
    const double end = fl_time_mono_s() + timeout_s;
    int seen = 0;
    while (seen < n && fl_time_mono_s() < end) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_pollitem_t it = {f->mon, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) > 0 && zmq_msg_recv(&m, f->mon, 0) >= 0) {
            seen++;
            while (zmq_msg_more(&m)) /* the event's endpoint */
                zmq_msg_recv(&m, f->mon, 0);
        }
        zmq_msg_close(&m);
    }
    return seen >= n;
}

static void fake_close(fake *f)
{
    if (f->mon) {
        zmq_socket_monitor(f->router, NULL, 0);
        zmq_close(f->mon);
    }
    if (f->zap) {
        atomic_store(&f->zap_stop, 1);
        pthread_join(f->zap_thread, NULL);
        zmq_close(f->zap);
    }
    zmq_close(f->router);
    zmq_ctx_term(f->ctx);
    /* libzmq 4.3 leaves an ipc:// endpoint's socket file behind, even on unbind */
    if (strncmp(f->ep, "ipc://", 6) == 0 && f->ep[6] != '@')
        unlink(f->ep + 6);
}

/* The next message from the client within timeout_ms, or NULL. Heartbeats are skipped. */
static flp_msg *fake_recv(fake *f, int timeout_ms)
{
    const double end = fl_time_mono_s() + timeout_ms / 1000.0;
    while (fl_time_mono_s() < end) {
        zmq_pollitem_t it = {f->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        zmq_msg_init(&body);
        assert_true(zmq_msg_recv(&rid, f->router, 0) >= 0);
        assert_true(zmq_msg_recv(&body, f->router, 0) >= 0);
        f->rid_len = zmq_msg_size(&rid);
        memcpy(f->rid, zmq_msg_data(&rid), f->rid_len);
        flp_msg *m = NULL;
        char err[FLP_ERRBUF];
        const fl_status st = flp_decode(&m, zmq_msg_data(&body), zmq_msg_size(&body), NULL, err,
                                        sizeof err);
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
        if (st != FL_OK)
            fail_msg("the client sent an invalid message: %s", err);
        if (m->type == FLP_HEARTBEAT) {
            f->heartbeats++;
            flp_msg_free(m);
            continue;
        }
        return m;
    }
    return NULL;
}

/* The next message of type t within timeout_ms (others are dropped), or NULL. */
static flp_msg *fake_expect(fake *f, flp_type t, int timeout_ms)
{
    const double end = fl_time_mono_s() + timeout_ms / 1000.0;
    for (;;) {
        const int left = (int)((end - fl_time_mono_s()) * 1000.0);
        flp_msg *m = left > 0 ? fake_recv(f, left) : NULL;
        if (!m || m->type == t)
            return m;
        flp_msg_free(m);
    }
}

static void fake_send(fake *f, const flp_msg *m)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[FLP_ERRBUF];
    if (flp_encode_alloc(&buf, &len, m, NULL, err, sizeof err) != FL_OK)
        fail_msg("encode %s: %s", flp_type_name(m->type), err);
    assert_true(zmq_send(f->router, f->rid, f->rid_len, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(f->router, buf, len, 0) >= 0);
    free(buf);
}

/* The fake server ends the client's session: how 0, Bye(restart); 1, Error(unknown client). */
static void end_session(fake *f, int how)
{
    flp_msg m = flp_msg_header(how == 0 ? FLP_BYE : FLP_ERROR, 0, NULL);
    if (how == 0) {
        m.bye.reason = "restart";
    } else {
        m.error.code = FL_ERR_UNKNOWN_CLIENT;
        m.error.message = "say Hello first";
    }
    fake_send(f, &m);
}

static void fake_ack_said(fake *f, flp_type of, uint64_t round, int32_t status,
                          const char *detail)
{
    flp_msg a = flp_msg_header(FLP_ACK, 0, NULL);
    a.ack.of_type = of;
    a.ack.of_round = round;
    a.ack.status = status;
    a.ack.detail = detail;
    fake_send(f, &a);
}

static void fake_ack(fake *f, flp_type of, uint64_t round, int32_t status)
{
    fake_ack_said(f, of, round, status, "");
}

/* The client's Hello within ms (what comes before it is dropped), answered with an Ack: the
 * client is registered. With no Hello the test fails, saying `when` ("" or words that follow
 * "no Hello within N s") and showing the client's log lb (NULL: none). */
static void fake_hello(fake *f, int ms, const char *when, const logbuf *lb)
{
    flp_msg *h = fake_expect(f, FLP_HELLO, ms);
    if (!h)
        fail_msg("no Hello within %g s%s%s%s%s", ms / 1000.0, *when ? " " : "", when,
                 lb ? "; log:\n" : "", lb ? lb->text : "");
    flp_msg_free(h);
    fake_ack(f, FLP_HELLO, 0, 0);
}

/* Sends client "dev" the weight chunks of its Task of core's open round from the first-th (in
 * tensor-major order) up to, not including, the end-th (UINT32_MAX: all); with task, the Task
 * first. Returns the task's round. */
static uint64_t fake_task_chunks(fake *f, fls_core *core, int task, uint32_t first, uint32_t end)
{
    const uint32_t key = fl_client_key("dev");
    flp_msg tm;
    assert_int_equal(fls_core_task(core, key, &tm), FL_OK);
    if (task)
        fake_send(f, &tm);
    const size_t cap = fls_core_task_chunk_bound(core);
    uint8_t *buf = malloc(cap);
    uint32_t k = 0;
    for (uint32_t t = 0; t < tm.task.n_tensors; t++)
        for (uint32_t i = 0; i < tm.task.tensors[t].n_chunks; i++, k++) {
            if (k < first || k >= end)
                continue;
            flp_msg cm = flp_msg_header(FLP_CHUNK, tm.round, NULL);
            size_t len;
            assert_int_equal(fls_core_task_chunk(core, key, t, i, buf, cap, &len, &cm.chunk),
                             FL_OK);
            fake_send(f, &cm);
        }
    free(buf);
    return tm.round;
}

/* Sends client "dev" its Task of core's open round with all of its weight chunks. Returns the
 * task's round. */
static uint64_t fake_task(fake *f, fls_core *core)
{
    return fake_task_chunks(f, core, 1, 0, UINT32_MAX);
}

enum { FAKE_RUN_ID = 0x5151 }; /* the fake server's run */

/* Waits for the client's Hello, registers it, and sends it one Task of a small mlp with all of
 * its weight chunks (made by a real server core), asking for `epochs` local epochs (0: the
 * server's default). Returns the task's round. */
static uint64_t fake_core_task(fake *f, fls_core **core, uint32_t epochs);

static uint64_t fake_hello_and_task(fake *f, fls_core **core, uint32_t epochs)
{
    fake_hello(f, 5000, "", NULL);
    return fake_core_task(f, core, epochs);
}

/* A new server core whose open round selected client "dev", with `epochs` local epochs (0: the
 * server's default), a round deadline of deadline_s (0: the default) and uplink codec up_codec
 * (NULL: the default). */
static void fake_core_new_codec(fls_core **core, uint32_t epochs, double deadline_s,
                                const char *up_codec)
{
    fls_config cfg = fls_config_default();
    snprintf(cfg.arch, sizeof cfg.arch, "mlp:6-5-3");
    cfg.policy.kind = FLS_POLICY_FD;
    cfg.clients_per_round = 1;
    cfg.overcommit = 1.0;
    cfg.chunk_elems = 7;
    if (up_codec)
        snprintf(cfg.up_codec, sizeof cfg.up_codec, "%s", up_codec);
    if (epochs)
        cfg.train.epochs = epochs;
    if (deadline_s > 0.0)
        cfg.round_timeout_s = deadline_s;
    assert_int_equal(fls_core_new(&cfg, core), FL_OK);
    fls_core_set_run_id(*core, FAKE_RUN_ID);
    const uint32_t key = fl_client_key("dev");
    assert_int_equal(fls_core_client_join(*core, key, 3, 0.0), FL_OK);
    assert_int_equal(fls_core_tick(*core, 0.0), FL_OK);
    fls_event ev;
    int got = 0;
    while (fls_core_poll(*core, &ev))
        got |= ev.kind == FLS_EV_TASK && ev.client == key;
    assert_true(got);
}

static void fake_core_new(fls_core **core, uint32_t epochs, double deadline_s)
{
    fake_core_new_codec(core, epochs, deadline_s, NULL);
}

/* fake_hello_and_task without the Hello: a new server core, and its Task sent to the client. */
static uint64_t fake_core_task(fake *f, fls_core **core, uint32_t epochs)
{
    fake_core_new(core, epochs, 0.0);
    return fake_task(f, *core);
}

/* ---- a client on its own thread against the fake server ---------------------------------------- */

typedef struct session {
    fake f;
    logbuf *lb;
    flc_client *c;
    runner r;
    fls_core *core;
    uint64_t round; /* of the task sent */
} session;

/* The fake server and the log: then base_config(s->f.ep, TRAINER, s->lb) and session_run. */
static void session_open(session *s)
{
    memset(s, 0, sizeof *s);
    fake_open(&s->f, NULL);
    s->lb = logbuf_new();
}

/* Makes the client of cfg (as it is), runs it on its own thread, and answers its Hello (within
 * 5 s, else the test fails): a registered client, with no task yet. */
static void session_hello(session *s, const flc_config *cfg)
{
    assert_int_equal(flc_client_new(cfg, &s->c), FLC_OK);
    run_start(&s->r, s->c);
    fake_hello(&s->f, 5000, "", s->lb);
}

/* session_hello of cfg with heartbeat_ms 100 unless set, and one task of `epochs` epochs (0: the
 * server's default) sent to the client. */
static void session_run(session *s, flc_config *cfg, uint32_t epochs)
{
    if (!cfg->heartbeat_ms)
        cfg->heartbeat_ms = 100;
    session_hello(s, cfg);
    s->round = fake_core_task(&s->f, &s->core, epochs);
}

/* What reaches the server until it has been quiet for 500 ms: its Errors and Byes. */
static void session_drain(session *s, int *errors, int *byes)
{
    flp_msg *m;
    *errors = *byes = 0;
    while ((m = fake_recv(&s->f, 500))) {
        *errors += m->type == FLP_ERROR;
        *byes += m->type == FLP_BYE;
        flp_msg_free(m);
    }
}

/* The next message of this type from the client within ms, else the test fails, naming what was
 * awaited (`when`: "" or words that follow "no TYPE") and showing the client's log. */
static flp_msg *session_expect(session *s, flp_type type, int ms, const char *when)
{
    flp_msg *m = fake_expect(&s->f, type, ms);
    if (!m)
        fail_msg("no %s%s%s; log:\n%s", flp_type_name(type), *when ? " " : "", when, s->lb->text);
    return m;
}

/* Stops the client, waits for flc_client_run to return, and gives its statistics. */
static const flc_stats *session_stopped(session *s)
{
    run_stop(&s->r);
    return flc_client_stats(s->c);
}

/* The client's Update of s->round: its chunks in all (it is read and freed). */
static uint32_t session_update_chunks(session *s)
{
    flp_msg *u = session_expect(s, FLP_UPDATE, 5000, "");
    assert_int_equal(u->round, s->round);
    uint32_t n = 0;
    for (uint32_t t = 0; t < u->update.n_tensors; t++)
        n += u->update.tensors[t].n_chunks;
    flp_msg_free(u);
    return n;
}

/* Frees the session: its client must have been stopped (run_stop, session_stopped) or never
 * run. A client freed while flc_client_run still runs on its thread is not stopped by the free
 * (flc.h: that is the caller's error) and goes on logging into the logbuf freed here: a later
 * test's memory (until 2026-12-08 two tests did so, and test_client failed now and then in a
 * later test, with a heap-buffer-overflow under ASan or a glibc mutex assertion). */
static void session_close(session *s)
{
    if (s->r.c && !s->r.joined)
        fail_msg("session_close: the client still runs (stop it first: run_stop)");
    flc_client_free(s->c);
    fls_core_free(s->core);
    fake_close(&s->f);
    logbuf_free(s->lb);
}

/* Runs a client of cfg until flc_client_run returns by itself (within 10 s, else the test fails:
 * `stuck` says what it was doing) and frees it: the status run returned. */
static flc_status run_to_end(const flc_config *cfg, const char *stuck)
{
    /* A handshake the server ends before its answer is read (a race of the close: a broken
     * pipe) is retried with the backoff, for as long as it lasts, since 0.3.8; at the default
     * cap (10 s) a client that met two or three of those first waited past the bound below
     * (test_curve_client_plain_server: 2 runs in 6 with the machine loaded). Capped at 100 ms
     * unless the test sets it. */
    flc_config capped = *cfg;
    if (!capped.reconnect_max_ms)
        capped.reconnect_max_ms = 100;
    cfg = &capped;
    flc_client *c = NULL;
    assert_int_equal(flc_client_new(cfg, &c), FLC_OK);
    runner r;
    run_start(&r, c);
    if (!run_wait(&r, 10.0)) {
        flc_client_stop(c);
        run_wait(&r, 60.0);
        fail_msg("flc_client_run still retrying 10 s on: %s; log:\n%s", stuck,
                 ((const logbuf *)cfg->log_user)->text);
    }
    flc_client_free(c);
    return r.st;
}

/* ---- a key the server refuses ----------------------------------------------------------------- */

static void test_refused_key(void **state)
{
    (void)state;
    key_trio k;
    key_trio_new(&k);
    fake f;
    fake_open(&f, k.asec);
    logbuf *lb = logbuf_new();
    flc_config cfg = base_config(f.ep, train_plus_quarter, lb);
    cfg.server_public_key = k.apub;
    cfg.secret_key = k.csec;
    cfg.reconnect_min_ms = 50;
    assert_int_equal(run_to_end(&cfg, "after the server refused its key"), FLC_ERR_AUTH);
    assert_true(atomic_load(&f.zap_refused) >= 1);
    assert_true(log_count(lb, "allow-list") >= 1);
    /* a refusal is the server's word: no hint that none answered */
    assert_int_equal(log_count(lb, "load balancer"), 0);
    fake_close(&f);
    logbuf_free(lb);
}

/* A plain-text client against a server that runs CURVE (server_public_key forgotten): the
 * handshake's mechanism mismatch is said, and run gives up as for a refused key, instead of
 * waiting silently and reconnecting for ever. libzmq reports the mismatch only when the client
 * read the server's greeting before the server hung up (1 run in several); otherwise the
 * client's probe of the endpoint (flc_zmtp.h) reads it at the first hang-up. So in every run
 * the first connection ends in the mismatch, said once, and no hang-up is said as anything
 * else (before the probe, a hang-up was said as "closed the connection before a handshake
 * completed" in about 3 runs of 5, and the run retried with backoff until libzmq happened to
 * report the mismatch: 3-70 s at the defaults). */
static void test_plain_client_curve_server(void **state)
{
    (void)state;
    key_trio k;
    key_trio_new(&k);
    fake f;
    fake_open(&f, k.asec);
    for (int t = 0; t < 3; t++) {
        logbuf *lb = logbuf_new();
        flc_config cfg = base_config(f.ep, train_plus_quarter, lb);
        cfg.reconnect_min_ms = 50;
        cfg.reconnect_max_ms = 200;
        assert_int_equal(run_to_end(&cfg, "a plain-text client against a CURVE server"),
                         FLC_ERR_AUTH);
        if (log_count(lb, "speaks another security mechanism than this plain-text client") != 1 ||
            log_count(lb, "closed the connection before a handshake completed") != 0)
            fail_msg("run %d: the mismatch not said once, or a hang-up said as something else; "
                     "log:\n%s", t, lb->text);
        logbuf_free(lb);
    }
    fake_close(&f);
}

/* The other way round: a CURVE client against a plain-text server (fl_server --insecure). It
 * gives up as for a refused key, and says the mechanisms differ; it used to ask "is
 * server_public_key the server's key?", which no key could fix. As above, libzmq reports the
 * mismatch only when the server's greeting was read before its hang-up; the probe makes it every
 * run's (before the probe, a run that never read the greeting retried for as long as the
 * backoff lasted, a key question, and this test needed up to 20 runs to see one). */
static void test_curve_client_plain_server(void **state)
{
    (void)state;
    key_trio k;
    key_trio_new(&k);
    fake f;
    fake_open(&f, NULL);
    for (int t = 0; t < 3; t++) {
        logbuf *lb = logbuf_new();
        flc_config cfg = base_config(f.ep, train_plus_quarter, lb);
        cfg.server_public_key = k.apub;
        cfg.secret_key = k.csec;
        cfg.reconnect_min_ms = 20;
        assert_int_equal(run_to_end(&cfg, "a CURVE client against a plain-text server"),
                         FLC_ERR_AUTH);
        /* said once, and nothing asks about the key or tells a CURVE client to set its keys */
        if (log_count(lb, "another security mechanism than this CURVE client") != 1 ||
            log_count(lb, "its greeting names NULL, so it runs plain text (fl_server --insecure): "
                      "connect without keys") != 1 ||
            log_count(lb, "server_public_key the server's key?") ||
            log_count(lb, "a server that runs CURVE: then") || log_count(lb, "protocol error"))
            fail_msg("run %d; log:\n%s", t, lb->text);
        logbuf_free(lb);
    }
    fake_close(&f);
}

/* A client started while the server is down sends it one Hello when it comes up: the retry of
 * an unanswered Hello waits for a link (Hellos queued while the server was down all reached it
 * when it came back, each starting the client afresh there). */
static void test_one_hello_after_server_down(void **state)
{
    (void)state;
    fake f;
    memset(&f, 0, sizeof f);
    dead_endpoint(f.ep, sizeof f.ep);
    logbuf *lb = logbuf_new();
    flc_config cfg = base_config(f.ep, train_plus_quarter, lb);
    cfg.heartbeat_ms = 100 * TS; /* the retry is due after 300 ms unanswered */
    flc_client *c = NULL;
    assert_int_equal(flc_client_new(&cfg, &c), FLC_OK);
    runner r;
    run_start(&r, c);
    const struct timespec down = {1, 0}; /* 10 heartbeats with the server down */
    nanosleep(&down, NULL);
    f.ctx = zmq_ctx_new();
    f.router = zmq_socket(f.ctx, ZMQ_ROUTER);
    const int linger = 0;
    zmq_setsockopt(f.router, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(f.router, f.ep), 0);
    int hellos = 0;
    flp_msg *m;
    while ((m = fake_recv(&f, 1500))) {
        if (m->type == FLP_HELLO && ++hellos == 1)
            fake_ack(&f, FLP_HELLO, 0, 0);
        flp_msg_free(m);
    }
    run_stop(&r);
    if (hellos != 1)
        fail_msg("%d Hellos reached the server that came up; log:\n%s", hellos, lb->text);
    flc_client_free(c);
    fake_close(&f);
    logbuf_free(lb);
}

/* A TCP listener at a loopback port (0: one of its own), taken over from a server just closed
 * there (SO_REUSEADDR); it accepts nothing itself: connections wait in its backlog. */
static int tcp_listener_at(uint16_t port)
{
    const int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    const int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(lfd, 16), 0);
    return lfd;
}

/* n bytes from fd into buf within the deadline (CLOCK_MONOTONIC seconds); 1 if all came. */
static int read_full(int fd, uint8_t *buf, size_t n, double deadline)
{
    size_t got = 0;
    while (got < n) {
        const double left = deadline - fl_time_mono_s();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            return 0;
        const ssize_t k = read(fd, buf + got, n - got);
        if (k <= 0)
            return 0;
        got += (size_t)k;
    }
    return 1;
}

/* tcp_listener_at a port of its own, its endpoint in ep. */
static int plain_listener(char *ep, size_t cap)
{
    const int lfd = tcp_listener_at(0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(ep, cap, "tcp://127.0.0.1:%d", ntohs(sin.sin_port));
    return lfd;
}

/* A client of ep (heartbeat_ms hb, 0: the tests' default; liveness_ms live; reconnects of
 * rmin..rmax ms) logging into lb, started on r. */
static flc_client *client_started(const char *ep, logbuf *lb, int hb, int live, int rmin, int rmax,
                                  runner *r)
{
    flc_config cfg = base_config(ep, train_plus_quarter, lb);
    if (hb)
        cfg.heartbeat_ms = hb;
    cfg.liveness_ms = live;
    cfg.reconnect_min_ms = rmin;
    cfg.reconnect_max_ms = rmax;
    flc_client *c = NULL;
    assert_int_equal(flc_client_new(&cfg, &c), FLC_OK);
    run_start(r, c);
    return c;
}

/* A client of ep with 20 ms heartbeats, liveness_ms and reconnects of rmin..rmax ms, run until
 * its log holds needle count times (secs at most) and stopped: it must still have been retrying,
 * not given up. Its log, for the caller to read and free. */
static logbuf *retrying(const char *ep, int liveness_ms, int rmin, int rmax, const char *needle,
                        int count, double secs)
{
    logbuf *lb = logbuf_new();
    runner r;
    flc_client *c = client_started(ep, lb, 20, liveness_ms, rmin, rmax, &r);
    const double end = fl_time_mono_s() + secs;
    while (log_count(lb, needle) < count && fl_time_mono_s() < end) {
        const struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    run_stop(&r);
    assert_int_equal(r.st, FLC_ERR_CANCELLED); /* retried until stopped, not given up */
    flc_client_free(c);
    return lb;
}

/* 150 ms liveness (x TS), 10-20 ms reconnects, until "retrying" was said twice (10 s at most). */
static logbuf *retrying_twice(const char *ep)
{
    return retrying(ep, 150 * TS, 10, 20, "retrying", 2, 10.0);
}

/* A client pointed at an address where no server runs said "no word from EP for N ms", as if a
 * server had been heard from and then fell silent: it now says that no connection was made, and
 * keeps retrying (a server may come up later). */
static void test_no_server_at_endpoint_said(void **state)
{
    (void)state;
    char ep[256], want[512];
    dead_endpoint(ep, sizeof ep);
    logbuf *lb = retrying_twice(ep);
    snprintf(want, sizeof want, "no connection to %s in %d ms: is a server running there? "
             "retrying", ep, 150 * TS);
    if (log_count(lb, want) < 2 || log_count(lb, "no word from"))
        fail_msg("log lacks '%s' twice (or says 'no word from'):\n%s", want, lb->text);
    /* the endpoint is named as the client starts (nothing else is said until liveness_ms
     * passes), once: the retries say "reconnecting in N ms" */
    snprintf(want, sizeof want, "connecting to %s (plain text)", ep);
    if (log_count(lb, want) != 1 || log_count(lb, "connecting to ") != 1)
        fail_msg("log lacks '%s' once:\n%s", want, lb->text);
    logbuf_free(lb);

    /* a host name: whether it resolves is the other question (a device maker's typo looked
     * just like a server not running) */
    lb = retrying_twice("tcp://no-such-host.invalid:5555");
    if (log_count(lb, "is a server running there, and does its host name resolve here? "
                      "retrying") < 2)
        fail_msg("log:\n%s", lb->text);
    logbuf_free(lb);

    /* Something takes the connection but completes no handshake (here a TCP socket that only
     * listens; in the field a server whose key changed since this client's first handshake):
     * "connected, but no handshake", not "no connection". */
    const int fd = plain_listener(ep, sizeof ep);
    lb = retrying_twice(ep);
    close(fd);
    snprintf(want, sizeof want, "connected to %s, but no handshake completed in %d ms: is it a "
             "fedrop server, without CURVE, and not stopped or overloaded? retrying", ep, 150 * TS);
    if (log_count(lb, want) < 2 || log_count(lb, "no connection to"))
        fail_msg("log lacks '%s' twice (or says 'no connection to'):\n%s", want, lb->text);
    logbuf_free(lb);
}

/* A plain-text client registered with its server, and then the server froze (SIGSTOP, a
 * debugger, swapping) or a proxy on the way hung: its port still takes connections (here a
 * listener at that port that accepts none: they wait in its backlog) and answers nothing. The
 * client said "is it a fedrop server, without CURVE?" at each try, of the server it had spoken
 * with in plain text; it now asks whether the server is stopped or overloaded. */
static void test_frozen_server_said(void **state)
{
    (void)state;
    char ep[256], want[512];
    dead_endpoint(ep, sizeof ep); /* a free port, for the server and then the frozen one */
    fake f;
    fake_bind(&f, ep, NULL);
    logbuf *lb = logbuf_new();
    runner r;
    flc_client *c = client_started(ep, lb, 20, 150 * TS, 10, 20, &r);
    fake_hello(&f, 5000, "", lb);
    if (!log_wait(lb, "registered", 5))
        fail_msg("not registered; log:\n%s", lb->text);
    fake_close(&f);
    const int lfd = tcp_listener_at((uint16_t)atoi(strrchr(ep, ':') + 1));
    const int said = log_wait(lb, "but no handshake completed", 10);
    run_stop(&r);
    assert_int_equal(r.st, FLC_ERR_CANCELLED); /* retrying until stopped */
    flc_client_free(c);
    close(lfd);
    snprintf(want, sizeof want, "connected to %s, but no handshake completed in %d ms: is the "
             "server (or a proxy on the way) stopped or overloaded? retrying", ep, 150 * TS);
    if (!said || log_count(lb, want) < 1 || log_count(lb, "without CURVE"))
        fail_msg("log lacks '%s' (or asks about CURVE):\n%s", want, lb->text);
    logbuf_free(lb);
}

static flc_status fd_noop_train(const flc_task *t, flc_update *o, void *u)
{
    (void)t;
    (void)u;
    o->n_samples = 1;
    o->loss = 1.0;
    return FLC_OK;
}

/* A host out of file descriptors (many clients in one process, or an app near its limit): the
 * first socket of the client's own ZeroMQ context starts libzmq's threads, whose epoll and
 * mailbox descriptors libzmq asserts on, so the whole process aborted ("Too many open files
 * (src/epoll.cpp:65)": 2000 clients on threads of one process, each with its own context).
 * Now the run ends with FLC_ERR_TRANSPORT and says why. In a child: its limit is lowered. */
static void test_out_of_descriptors_said(void **state)
{
    (void)state;
    char ep[256];
    dead_endpoint(ep, sizeof ep);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int fd = 3; fd < 4096; fd++)
            close(fd); /* no holes below the limit set next */
        logbuf *lb = logbuf_new();
        flc_samples smp = {NULL, NULL, NULL, 1, 6};
        flc_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.server_endpoint = ep;
        cfg.client_id = "fdless";
        cfg.train = fd_noop_train;
        cfg.samples = &smp;
        cfg.log = log_cb;
        cfg.log_user = lb;
        flc_client *c;
        if (flc_client_new(&cfg, &c) != FLC_OK)
            _exit(2);
        const int probe = dup(0); /* the lowest free descriptor */
        close(probe);
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = (rlim_t)probe + 2; /* two left: libzmq's start needs more */
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            _exit(3);
        const flc_status st = flc_client_run(c);
        const int said = log_count(lb, "file descriptors") > 0;
        if (st != FLC_ERR_TRANSPORT || !said) {
            fprintf(stderr, "status %d, log:\n%s", (int)st, lb->text);
            _exit(4);
        }
        _exit(0); /* no free: the context may be half started */
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    if (WIFSIGNALED(ws))
        fail_msg("the client's process was killed by signal %d (libzmq's assertion)",
                 WTERMSIG(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

/* fl_server binds IPv6 addresses (server.endpoints tcp://[::1]:PORT), and the client reaches
 * them: libzmq connects to one only with ZMQ_IPV6 set, and the client without it said "no
 * connection ... is a server running there?" for ever, a server listening there. Also through
 * libzmq's tcp://SOURCE;HOST:PORT, whose "[::1]:0;[::1]" the client took for a host name and so
 * set no ZMQ_IPV6. */
static void test_ipv6_endpoint_reached(void **state)
{
    (void)state;
    if (!have_ipv6_loopback())
        skip(); /* no ::1 on this machine */
    for (int src = 0; src < 2; src++) {
        fake f;
        memset(&f, 0, sizeof f);
        f.ctx = zmq_ctx_new();
        assert_non_null(f.ctx);
        fake_router(&f, NULL);
        const int on = 1;
        assert_int_equal(zmq_setsockopt(f.router, ZMQ_IPV6, &on, sizeof on), 0);
        assert_int_equal(zmq_bind(f.router, "tcp://[::1]:*"), 0);
        size_t n = sizeof f.ep;
        assert_int_equal(zmq_getsockopt(f.router, ZMQ_LAST_ENDPOINT, f.ep, &n), 0);
        char ep[sizeof f.ep + 16];
        memcpy(ep, "tcp://[::1]:0;", src ? 14 : 0); /* "tcp://" + f.ep's HOST:PORT */
        memcpy(ep + (src ? 14 : 0), f.ep + (src ? 6 : 0), sizeof f.ep - (src ? 6 : 0));
        logbuf *lb = logbuf_new();
        flc_config cfg = base_config(ep, train_plus_quarter, lb);
        flc_client *c = NULL;
        assert_int_equal(flc_client_new(&cfg, &c), FLC_OK);
        runner r;
        run_start(&r, c);
        flp_msg *h = fake_recv(&f, 5000);
        const int hello = h && h->type == FLP_HELLO;
        flp_msg_free(h);
        flc_client_stop(c);
        assert_true(run_wait(&r, 10.0));
        if (!hello)
            fail_msg("no Hello from a client of %s in 5 s; log:\n%s", ep, lb->text);
        flc_client_free(c);
        fake_close(&f);
        logbuf_free(lb);
    }
}

/* Reconnection waits are jittered: each between half the backoff and all of it, so that a fleet
 * that lost its server at one instant does not come back in one wave. With the backoff pinned
 * at 200 ms (min = max) and nothing at the endpoint, the waits said ("reconnecting in N ms")
 * must all lie in [100, 200] and not all be equal (without jitter: 200 each time). */
static void test_reconnect_jitter(void **state)
{
    (void)state;
    char ep[128];
    dead_endpoint(ep, sizeof ep);
    logbuf *lb = retrying(ep, 100, 200, 200, "reconnecting in", 6, 20.0);
    int waits[64], n = 0;
    pthread_mutex_lock(&lb->mu);
    for (const char *p = lb->text; n < 64 && (p = strstr(p, "reconnecting in ")); p++)
        waits[n++] = atoi(p + strlen("reconnecting in "));
    pthread_mutex_unlock(&lb->mu);
    if (n < 6)
        fail_msg("%d reconnections in 20 s; log:\n%s", n, lb->text);
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        if (waits[i] < 100 || waits[i] > 200)
            fail_msg("a wait of %d ms with the backoff at 200 ms; log:\n%s", waits[i], lb->text);
        distinct += i > 0 && waits[i] != waits[0];
    }
    if (!distinct)
        fail_msg("%d waits of %d ms each: no jitter; log:\n%s", n, waits[0], lb->text);
    logbuf_free(lb);
}

/* Accepts and closes at once every connection to the listener lfd for secs: how many, their
 * times since the first in t[] (up to cap). */
static int accept_and_close(int lfd, double secs, double *t, int cap)
{
    int accepted = 0;
    double first = 0;
    const double end = fl_time_mono_s() + secs;
    for (double left; (left = end - fl_time_mono_s()) > 0;) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) == 1) {
            const int fd = accept(lfd, NULL, NULL);
            if (fd >= 0) {
                const double now = fl_time_mono_s();
                if (!accepted)
                    first = now;
                if (accepted < cap)
                    t[accepted] = now - first;
                accepted++;
                close(fd);
            }
        }
    }
    return accepted;
}

/* Connections a client (reconnect_min_ms rmin, reconnect_max_ms rmax) makes in secs to a TCP
 * listener that closes each at once; their times since the first in t[] (up to cap). */
static int connections_dropped(int rmin, int rmax, double secs, double *t, int cap)
{
    char ep[128];
    const int lfd = plain_listener(ep, sizeof ep);
    logbuf *lb = logbuf_new();
    runner r;
    flc_client *c = client_started(ep, lb, 0, 60000, rmin, rmax, &r);
    const int accepted = accept_and_close(lfd, secs, t, cap);
    run_stop(&r);
    close(lfd);
    flc_client_free(c);
    logbuf_free(lb);
    return accepted;
}

/* connect(2) as libzmq calls it from this process: the calls to 127.0.0.1:g_count_port are
 * counted (the connection attempts of a client to a port where nothing listens, which no
 * listener can see). This definition takes the place of libc's for the shared libzmq. */
static atomic_int g_count_port, g_port_connects;

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "connect");
    const int port = atomic_load(&g_count_port);
    if (port && addr && addr->sa_family == AF_INET &&
        ntohs(((const struct sockaddr_in *)addr)->sin_port) == port)
        atomic_fetch_add(&g_port_connects, 1);
    return real(fd, addr, len);
}

/* libzmq's own reconnection inside a session follows reconnect_min_ms (ZMQ_RECONNECT_IVL, doubled
 * up to reconnect_max_ms): without it a client whose server is down tried every 100 ms, libzmq's
 * default, whatever it was set to. Here nothing listens at the port for 2.5 s, and the client
 * (reconnect_min_ms 1000, its own liveness far off) tries 1 + about 2 times, not the 20-25 of a
 * 100 ms interval (with the two setsockopts taken out, 17). */
static void test_reconnect_interval_followed(void **state)
{
    (void)state;
    char ep[128];
    dead_endpoint(ep, sizeof ep);
    atomic_store(&g_port_connects, 0);
    atomic_store(&g_count_port, atoi(strrchr(ep, ':') + 1));
    logbuf *lb = logbuf_new();
    runner r;
    flc_client *c = client_started(ep, lb, 0, 60000, 1000, 1000, &r);
    const struct timespec ts = {2, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
    run_stop(&r);
    flc_client_free(c);
    atomic_store(&g_count_port, 0);
    const int n = atomic_load(&g_port_connects);
    if (n < 1 || n > 6)
        fail_msg("%d connection attempts in 2.5 s to a port where nothing listens, with "
                 "reconnect_min_ms 1000 (want 1 to 6); log:\n%s", n, lb->text);
    logbuf_free(lb);
}

/* ... and doubled up to reconnect_max_ms. libzmq doubles its interval only over connections
 * refused outright; one that something at the endpoint takes and closes before a handshake made
 * it connect again after reconnect_min_ms (plus jitter) each time: 21 connections in 3 s here.
 * The client now ends such a session and waits out its own backoff: from 100 ms, waits of 50-100,
 * 100-200, 200-400, 400-800, 800-1600 ms, so 3 s hold at most 7 connections, and each wait
 * after the fourth connection is at least 400 ms (a count alone would pass a constant interval of
 * 500 ms). The listener also sees the client's one probe of the server's mechanism (flc_zmtp.h)
 * at the first hang-up: one connection more, and the waits from the fifth connection on. Times
 * x TS under the sanitizers (a late look at the monitor lets libzmq in once). */
static void test_reconnect_backoff_doubles(void **state)
{
    (void)state;
    double t[64];
    const int n = connections_dropped(100 * TS, 1600 * TS, 3.0 * TS, t, 64);
    /* one of them the client's probe of the server's mechanism, at the first hang-up */
    if (n < 3 || n > 9)
        fail_msg("%d connections in %.0f s with reconnect_min_ms %d, max %d (want 3 to 9)", n,
                 3.0 * TS, 100 * TS, 1600 * TS);
    /* one quick reconnection of libzmq's own (the monitor read late) is let pass */
    int quick = 0;
    for (int k = 5; k < n; k++)
        if (t[k] - t[k - 1] < 0.4 * TS && (t[k] - t[k - 1] >= 0.2 * TS || quick++))
            fail_msg("retry %d came %.3f s after the one before (want at least %.1f s: doubled "
                     "from %.1f s)", k, t[k] - t[k - 1], 0.4 * TS, 0.1 * TS);
}

/* The same after a session that reached the server: the server killed, and something at its
 * address that takes each connection and closes it (the server back over its connection limit).
 * libzmq's reconnection inside the session is kept for one such loss (a server still starting);
 * the second ends the session, and the backoff applies: from 100 ms (x TS) at most 10
 * connections in 3 s, where libzmq alone made one every 100-200 ms for the whole liveness_ms. */
static void test_reconnect_backoff_after_link(void **state)
{
    (void)state;
    char ep[128];
    dead_endpoint(ep, sizeof ep); /* a free port, for the server and then its successor */
    fake f;
    fake_bind(&f, ep, NULL);
    logbuf *lb = logbuf_new();
    runner r;
    flc_client *c = client_started(ep, lb, 0, 60000, 100 * TS, 1600 * TS, &r);
    fake_hello(&f, 5000, "", lb);
    if (!log_wait(lb, "registered", 5))
        fail_msg("not registered; log:\n%s", lb->text);
    fake_close(&f); /* the server gone; a listener at its port that drops every connection */
    const int lfd = tcp_listener_at((uint16_t)atoi(strrchr(ep, ':') + 1));
    double t[64];
    const int n = accept_and_close(lfd, 3.0 * TS, t, 64);
    run_stop(&r);
    close(lfd);
    flc_client_free(c);
    if (n < 2 || n > 10)
        fail_msg("%d connections in %.0f s after the server went (want 2 to 10); log:\n%s", n,
                 3.0 * TS, lb->text);
    logbuf_free(lb);
}

/* ---- the probe of a server's security mechanism (flc_zmtp.h) ------------------------------- */

/* A ZMTP 3 greeting's 64 bytes naming mech (at most 20 bytes, NUL-padded). */
static void greeting_of(uint8_t g[64], const char *mech, uint8_t major)
{
    memset(g, 0, 64);
    g[0] = 0xff;
    g[8] = 1;
    g[9] = 0x7f;
    g[10] = major;
    g[11] = 1;
    memcpy(g + 12, mech, strlen(mech));
    g[32] = 1;
}

/* The greeting reader on whole greetings, their prefixes, and what is no greeting. */
static void test_zmtp_greeting_read(void **state)
{
    (void)state;
    static const struct {
        const char *mech; /* written at bytes 12.. */
        uint8_t major;
        size_t len;       /* bytes given */
        int want;
        const char *name; /* read, for want 1 */
    } cases[] = {
        {"CURVE", 3, 64, 1, "CURVE"},
        {"NULL", 3, 32, 1, "NULL"},                  /* 32 bytes are enough */
        {"PLAIN", 3, 31, 0, ""},                     /* one short: more needed */
        {"NULL", 3, 11, 0, ""},                      /* what a peer sends first */
        {"NULL", 3, 0, 0, ""},
        {"NULL", 2, 64, -1, ""},                     /* ZMTP 2.0 has no mechanism */
        {"NULL", 2, 11, -1, ""},                     /* known from the version byte */
        {"X-MY_MECH.1+2", 3, 64, 1, "X-MY_MECH.1+2"}, /* every character the RFC allows */
        {"ABCDEFGHIJKLMNOPQRST", 3, 64, 1, "ABCDEFGHIJKLMNOPQRST"}, /* 20: no NUL after it */
        {"curve", 3, 64, -1, ""},                    /* lower case is not the RFC's */
        {"", 3, 64, -1, ""},                         /* no name */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t g[64];
        greeting_of(g, cases[i].mech, cases[i].major);
        char mech[FLC_ZMTP_MECH_MAX + 1];
        const int v = flc_zmtp_greeting_mechanism(mech, g, cases[i].len);
        if (v != cases[i].want || strcmp(mech, cases[i].name) != 0)
            fail_msg("case %zu (%s, version %u, %zu bytes): %d '%s', want %d '%s'", i,
                     cases[i].mech, cases[i].major, cases[i].len, v, mech, cases[i].want,
                     cases[i].name);
    }
    uint8_t g[64];
    char mech[FLC_ZMTP_MECH_MAX + 1];
    greeting_of(g, "NULL", 3);
    g[18] = 'X'; /* a character after the NUL that ends the name */
    assert_int_equal(flc_zmtp_greeting_mechanism(mech, g, 64), -1);
    greeting_of(g, "NULL", 3);
    g[9] = 0x7e; /* the signature's last byte */
    assert_int_equal(flc_zmtp_greeting_mechanism(mech, g, 10), -1);
    const uint8_t http[] = "HTTP/1.1 400 Bad Request\r\n";
    assert_int_equal(flc_zmtp_greeting_mechanism(mech, http, 1), -1);
}

/* The probe reads the mechanism of real libzmq servers (CURVE and plain text, over tcp://, with a
 * source address, and over ipc://), and reads nothing, within its time, where there is no
 * greeting: a listener that never accepts, a port where nothing listens, a transport it does
 * not probe; a stop cuts its wait short. */
static void test_zmtp_probe(void **state)
{
    (void)state;
    key_trio k;
    key_trio_new(&k);
    char mech[FLC_ZMTP_MECH_MAX + 1];
    fake f;
    fake_open(&f, k.asec);
    assert_int_equal(flc_zmtp_probe_mechanism(mech, f.ep, -1, 5000), 1);
    assert_string_equal(mech, "CURVE");
    /* tcp://SOURCE;HOST:PORT, as libzmq takes it */
    char src[512];
    snprintf(src, sizeof src, "tcp://127.0.0.1;%s", f.ep + 6);
    assert_int_equal(flc_zmtp_probe_mechanism(mech, src, -1, 5000), 1);
    assert_string_equal(mech, "CURVE");
    fake_close(&f);
    fake_open(&f, NULL);
    assert_int_equal(flc_zmtp_probe_mechanism(mech, f.ep, -1, 5000), 1);
    assert_string_equal(mech, "NULL");
    fake_close(&f);
    char ipc[128];
    snprintf(ipc, sizeof ipc, "ipc:///tmp/flc-probe-%d", (int)getpid());
    fake_bind(&f, ipc, NULL);
    assert_int_equal(flc_zmtp_probe_mechanism(mech, ipc, -1, 5000), 1);
    assert_string_equal(mech, "NULL");
    fake_close(&f);
    /* a listener that never accepts: the kernel completes the connection, no greeting comes */
    char lep[128];
    const int lfd = plain_listener(lep, sizeof lep);
    assert_int_equal(flc_zmtp_probe_mechanism(mech, lep, -1, 300), 0); /* never accepted */
    assert_string_equal(mech, "");
    int fd = accept(lfd, NULL, NULL);
    close(fd);
    /* a stop (the wake descriptor readable) ends the wait: with a timeout of 24 days nothing
     * else can (a probe that did not watch the descriptor would hang the suite into its meson
     * timeout), and -1 says it was the wake */
    int wake[2];
    assert_int_equal(pipe(wake), 0);
    assert_int_equal(write(wake[1], "", 1), 1);
    assert_int_equal(flc_zmtp_probe_mechanism(mech, lep, wake[0], INT_MAX), -1);
    close(wake[0]);
    close(wake[1]);
    struct pollfd p = {lfd, POLLIN, 0};
    while (poll(&p, 1, 0) == 1 && (fd = accept(lfd, NULL, NULL)) >= 0)
        close(fd);
    close(lfd);
    /* nothing at the port now; transports the probe does not take */
    assert_int_equal(flc_zmtp_probe_mechanism(mech, lep, -1, 2000), 0);
    assert_int_equal(flc_zmtp_probe_mechanism(mech, "inproc://x", -1, 2000), 0);
    assert_int_equal(flc_zmtp_probe_mechanism(mech, "tcp://127.0.0.1:notaport", -1, 2000), 0);
}

/* A plain-text client against a CURVE server sees the mismatch only when it reads the server's
 * greeting before the server hangs up; otherwise the connection just closes before a handshake.
 * Once the mismatch was seen, those hang-ups are the same refusal (flc.h, "Refusal": 3 in a row
 * give FLC_ERR_AUTH). Here the endpoint greets as a CURVE server once and then hangs up on every
 * connection at once, as a real one does when it wins the race: the client gives up after about
 * 3 connections. It used to retry for as long as the greeting lost the race (fl_client
 * --insecure against fl_server: 0.5 to 26 s in five trials), here until the 12 connections after
 * which the test stops it. */
static void test_plain_client_curve_hangups(void **state)
{
    (void)state;
    char ep[128];
    const int lfd = plain_listener(ep, sizeof ep);
    logbuf *lb = logbuf_new();
    runner r;
    flc_client *c = client_started(ep, lb, 0, 60000, 10, 20, &r);
    /* 1. a CURVE server's greeting (ZMTP 3.0: signature, version, mechanism, as-server, filler),
     * kept open until the client, which speaks NULL, closes on the mismatch */
    uint8_t greet[64];
    memset(greet, 0, sizeof greet);
    greet[0] = 0xff;
    greet[8] = 1;
    greet[9] = 0x7f;
    greet[10] = 3;
    memcpy(greet + 12, "CURVE", 5);
    greet[32] = 1;
    int conns = 0;
    struct pollfd p = {lfd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 10000 * TS), 1);
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    conns++;
    assert_int_equal(write(fd, greet, sizeof greet), (ssize_t)sizeof greet);
    uint8_t sink[256];
    for (;;) {
        struct pollfd q = {fd, POLLIN, 0};
        if (poll(&q, 1, 10000 * TS) != 1 || read(fd, sink, sizeof sink) <= 0)
            break;
    }
    close(fd);
    /* 2. then every connection closed at once, until the client gives up (or 12 of them) */
    while (!atomic_load(&r.done) && conns < 12) {
        p.revents = 0;
        if (poll(&p, 1, 50) == 1 && (fd = accept(lfd, NULL, NULL)) >= 0) {
            conns++;
            close(fd);
        }
    }
    flc_client_stop(c);
    assert_true(run_wait(&r, 5.0 * TS));
    close(lfd);
    flc_client_free(c);
    if (r.st != FLC_ERR_AUTH)
        fail_msg("status %d (%s) after %d connections to a CURVE server that hangs up (want "
                 "FLC_ERR_AUTH); log:\n%s", r.st, flc_strerror(r.st), conns, lb->text);
    assert_true(log_count(lb, "another security mechanism than this plain-text client") >= 1);
    logbuf_free(lb);
}

/* A plain-text client whose peer answers its NULL greeting with a command the NULL handshake
 * does not allow (here HELLO, CURVE's first command: not a fedrop server) fails each handshake on
 * a protocol error, which flc.h's Refusal counts as over CURVE: after 3 in a row,
 * flc_client_run returns FLC_ERR_AUTH, the failure said at warn. Until 2026-12-07 the plain-text
 * client took it for a hang-up and retried for ever ("closed the connection before a handshake
 * completed"). */
static void test_plain_client_protocol_error_gives_up(void **state)
{
    (void)state;
    char ep[128];
    const int lfd = plain_listener(ep, sizeof ep);
    logbuf *lb = logbuf_new();
    runner r;
    flc_client *c = client_started(ep, lb, 0, 60000, 10, 20, &r);
    uint8_t greet[64];
    greeting_of(greet, "NULL", 3);
    static const uint8_t hello_cmd[] = {0x04, 6, 5, 'H', 'E', 'L', 'L', 'O'};
    int conns = 0;
    const double end = fl_time_mono_s() + 10.0 * TS;
    while (!atomic_load(&r.done) && conns < 12 && fl_time_mono_s() < end) {
        struct pollfd p = {lfd, POLLIN, 0};
        int fd;
        if (poll(&p, 1, 50) != 1 || (fd = accept(lfd, NULL, NULL)) < 0)
            continue;
        conns++;
        if (write(fd, greet, sizeof greet) == (ssize_t)sizeof greet &&
            write(fd, hello_cmd, sizeof hello_cmd) == (ssize_t)sizeof hello_cmd) {
            uint8_t sink[256];
            for (;;) { /* until the client closes on the error */
                struct pollfd q = {fd, POLLIN, 0};
                if (poll(&q, 1, 2000 * TS) != 1 || read(fd, sink, sizeof sink) <= 0)
                    break;
            }
        }
        close(fd);
    }
    flc_client_stop(c);
    assert_true(run_wait(&r, 5.0 * TS));
    close(lfd);
    flc_client_free(c);
    if (r.st != FLC_ERR_AUTH || conns > 3)
        fail_msg("status %d (%s) after %d connections whose handshakes failed on a protocol "
                 "error (want FLC_ERR_AUTH after 3); log:\n%s", r.st, flc_strerror(r.st), conns,
                 lb->text);
    assert_true(log_count(lb, "ZMTP protocol error") >= 1);
    assert_int_equal(log_count(lb, "closed the connection before a handshake completed"), 0);
    logbuf_free(lb);
}

/* A CURVE client started while its server is down behind a load balancer (or proxy), which
 * takes each connection and closes it: before a first handshake that is what a wrong
 * server_public_key looks like too (libzmq reports both as a handshake failed without detail,
 * EPIPE or ECONNRESET by the race of the close). Three in a row gave FLC_ERR_AUTH, the verdict of
 * a server that refused the device, within half a second at the default backoff; the log asked
 * only whether the key was right. Now the client retries with its backoff for as long as it
 * lasts, says both causes once at warn, counts them (flc_stats.handshakes_unanswered), and comes
 * in when the server is back at the endpoint: it registers, and counts no more. */
static void test_curve_client_rides_out_dead_backend(void **state)
{
    (void)state;
    key_trio k;
    key_trio_new(&k);
    char ep[128];
    const int lfd = plain_listener(ep, sizeof ep);
    logbuf *lb = logbuf_new();
    flc_config cfg = base_config(ep, train_plus_quarter, lb);
    cfg.server_public_key = k.apub;
    cfg.secret_key = k.csec;
    cfg.reconnect_min_ms = 10;
    cfg.reconnect_max_ms = 40;
    cfg.liveness_ms = 60000;
    flc_client *c = NULL;
    assert_int_equal(flc_client_new(&cfg, &c), FLC_OK);
    runner r;
    run_start(&r, c);
    /* 8 connections taken and closed (3 gave up before), or until run returns (10 s at most) */
    int conns = 0;
    const double end = fl_time_mono_s() + 10.0;
    while (!atomic_load(&r.done) && conns < 8 && fl_time_mono_s() < end) {
        struct pollfd p = {lfd, POLLIN, 0};
        int fd;
        if (poll(&p, 1, 20) == 1 && (fd = accept(lfd, NULL, NULL)) >= 0) {
            conns++;
            close(fd);
        }
    }
    close(lfd);
    if (atomic_load(&r.done)) {
        run_wait(&r, 1.0);
        fail_msg("flc_client_run returned %d (%s) after %d connections taken and closed; "
                 "log:\n%s", r.st, flc_strerror(r.st), conns, lb->text);
    }
    /* the server back at the endpoint: the client registers there */
    fake f;
    fake_bind(&f, ep, k.asec);
    fake_hello(&f, 10000, "of the server's return", lb);
    if (!log_wait(lb, "registered", 5))
        fail_msg("not registered; log:\n%s", lb->text);
    run_stop(&r);
    assert_int_equal(r.st, FLC_ERR_CANCELLED);
    const flc_stats *st = flc_client_stats(c);
    if (st->handshakes_unanswered < 3 || st->handshakes_unanswered > (uint64_t)conns)
        fail_msg("handshakes_unanswered %llu after %d connections taken and closed; log:\n%s",
                 (unsigned long long)st->handshakes_unanswered, conns, lb->text);
    if (log_count(lb, "ended without an answer") < 1 ||
        log_count(lb, "load balancer or proxy whose server is down") != 1)
        fail_msg("not said once, naming both causes; log:\n%s", lb->text);
    flc_client_free(c);
    fake_close(&f);
    logbuf_free(lb);
}

/* A plain-text client started while its endpoint is a proxy with no server behind it (each
 * connection taken and closed: its probes read no greeting), and then a CURVE server comes up
 * there. The probe of the first hang-up read nothing, so it is run again at every PROBE_EVERY-th
 * hang-up while none read a greeting (told apart here by the bytes each connection sends): the
 * CURVE server is named within a few retries and the run gives up as at a first connection.
 * Until 2026-12-06 a streak was probed once, at its first hang-up, and the client then waited
 * for libzmq's own report (racy: retrying as long as the server won the race of its close, and
 * never naming the mechanism: this test then fails on the message). */
static void test_plain_client_proxy_then_curve(void **state)
{
    (void)state;
    key_trio k;
    key_trio_new(&k);
    char ep[128];
    const int lfd = plain_listener(ep, sizeof ep);
    logbuf *lb = logbuf_new();
    runner r;
    flc_client *c = client_started(ep, lb, 0, 60000, 10, 40, &r);
    /* Connections taken and closed until the second probe. Told apart by what they send before
     * any answer: libzmq its signature (10 bytes), the probe those and the major version (11). */
    int zmq_conns = 0, probes = 0, second_after = 0;
    const double end = fl_time_mono_s() + 10.0 * TS;
    while (!atomic_load(&r.done) && probes < 2 && zmq_conns < 40 && fl_time_mono_s() < end) {
        struct pollfd p = {lfd, POLLIN, 0};
        int fd;
        if (poll(&p, 1, 20) != 1 || (fd = accept(lfd, NULL, NULL)) < 0)
            continue;
        uint8_t head[11];
        const int probe = read_full(fd, head, 10, fl_time_mono_s() + 1.0 * TS) &&
                          read_full(fd, head + 10, 1, fl_time_mono_s() + 0.05 * TS);
        close(fd);
        if (!probe)
            zmq_conns++;
        else if (++probes == 2)
            second_after = zmq_conns;
    }
    close(lfd);
    if (atomic_load(&r.done) || probes < 2) {
        flc_client_stop(c);
        run_wait(&r, 5.0);
        fail_msg("status %d, %d probes in %d connections of libzmq taken and closed (want the "
                 "client still retrying, and probed again); log:\n%s", r.st, probes, zmq_conns,
                 lb->text);
    }
    /* probed at the first hang-up, and again PROBE_EVERY (8) later: at most one connection more
     * in 8 (a reading of the monitor late by a few connections is let pass) */
    if (second_after < 9 || second_after > 13)
        fail_msg("the second probe after %d connections of libzmq (want 9 to 13)", second_after);
    assert_int_equal(log_count(lb, "another security mechanism"), 0);
    fake f;
    fake_bind(&f, ep, k.asec);
    if (!run_wait(&r, 10.0 * TS)) {
        flc_client_stop(c);
        run_wait(&r, 60.0);
        fail_msg("still retrying 10 s after a CURVE server came up behind the endpoint; "
                 "log:\n%s", lb->text);
    }
    flc_client_free(c);
    fake_close(&f);
    if (r.st != FLC_ERR_AUTH ||
        log_count(lb, "another security mechanism than this plain-text client: its greeting "
                  "names CURVE, so it runs CURVE") != 1)
        fail_msg("status %d (%s), want FLC_ERR_AUTH and the mismatch said once, naming CURVE; "
                 "log:\n%s", r.st, flc_strerror(r.st), lb->text);
    logbuf_free(lb);
}

/* ---- no ZeroMQ heartbeats on the client's connection -------------------------------------- */

/* One ZMTP 3.1 frame from fd (RFC 37): its flags in *flags and its body in body (up to cap bytes,
 * the rest skipped), its full size in *size; 0 if none came by the deadline. */
static int zmtp_frame(int fd, uint8_t *flags, uint8_t *body, size_t cap, uint64_t *size,
                      double deadline)
{
    uint8_t h[8];
    if (!read_full(fd, flags, 1, deadline))
        return 0;
    const int lng = *flags & 0x02;
    if (!read_full(fd, h, lng ? 8 : 1, deadline))
        return 0;
    uint64_t n = 0;
    for (int i = 0; i < (lng ? 8 : 1); i++)
        n = n << 8 | h[i];
    *size = n;
    for (uint64_t done = 0; done < n;) {
        uint8_t skip[256];
        uint8_t *dst = done < cap ? body + done : skip;
        size_t want = done < cap ? cap - (size_t)done : sizeof skip;
        if (want > n - done)
            want = (size_t)(n - done);
        if (!read_full(fd, dst, want, deadline))
            return 0;
        done += want;
    }
    return 1;
}

/* The client's connection carries no ZeroMQ heartbeats: the protocol's Heartbeats and liveness_ms
 * find dead links on both sides, and ZeroMQ's PINGs cost the server a PING and a PONG a second
 * on each connection, their TTL a timer each message cancels by a linear walk
 * (bench/bench_idle: 50.3 us of server CPU an idle client-second with them, 26.8 without). A TCP
 * listener here speaks ZMTP 3.1 with the NULL mechanism by hand, so that it sees the frames
 * libzmq hides (commands): the client says Hello, and then, unanswered, must send no command at
 * all for 10 of its heartbeat_ms (with ZMQ_HEARTBEAT_IVL = heartbeat_ms it sent a PING each). */
static void test_no_zeromq_heartbeats(void **state)
{
    (void)state;
    char ep[128];
    const int lfd = plain_listener(ep, sizeof ep);
    logbuf *lb = logbuf_new();
    flc_config cfg = base_config(ep, train_plus_quarter, lb);
    cfg.heartbeat_ms = 50;
    cfg.liveness_ms = 60000; /* no reconnection while the test listens */
    flc_client *c = NULL;
    assert_int_equal(flc_client_new(&cfg, &c), FLC_OK);
    runner r;
    run_start(&r, c);
    const double t0 = fl_time_mono_s();
    struct pollfd pl = {lfd, POLLIN, 0};
    assert_int_equal(poll(&pl, 1, 10000), 1);
    const int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    /* Greeting: signature, version 3.1, mechanism NULL, as-server 1, filler. */
    uint8_t greet[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 1, 'N', 'U', 'L', 'L'};
    greet[32] = 1;
    assert_int_equal(write(fd, greet, sizeof greet), (ssize_t)sizeof greet);
    uint8_t theirs[64];
    assert_true(read_full(fd, theirs, sizeof theirs, t0 + 10));
    assert_int_equal(theirs[0], 0xff);
    assert_int_equal(theirs[10], 3);
    assert_memory_equal(theirs + 12, "NULL", 4);
    /* READY with Socket-Type ROUTER, as a fedrop server's. */
    static const uint8_t ready[] = {0x04, 28, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k',
                                    'e', 't', '-', 'T', 'y', 'p', 'e', 0, 0, 0, 6, 'R', 'O', 'U',
                                    'T', 'E', 'R'};
    assert_int_equal(sizeof ready, 2 + 28); /* flags, size, then the 28 bytes it says */
    assert_int_equal(write(fd, ready, sizeof ready), (ssize_t)sizeof ready);
    uint8_t flags, body[256];
    uint64_t size;
    assert_true(zmtp_frame(fd, &flags, body, sizeof body, &size, t0 + 10));
    assert_true((flags & 0x04) && size >= 6 && !memcmp(body, "\x05READY", 6));
    /* Then the Hello, and nothing but messages for 10 heartbeats. */
    int messages = 0, commands = 0;
    char first_command[16] = "";
    double until = 0;
    while (zmtp_frame(fd, &flags, body, sizeof body, &size, until ? until : t0 + 10)) {
        if (flags & 0x04) {
            if (commands++ == 0)
                snprintf(first_command, sizeof first_command, "%.*s",
                         size > 0 && body[0] < sizeof first_command && body[0] < size
                             ? (int)body[0] : 0, (const char *)body + 1);
        } else if (messages++ == 0) {
            until = fl_time_mono_s() + 10 * cfg.heartbeat_ms / 1000.0;
        }
    }
    close(fd);
    close(lfd);
    run_stop(&r);
    flc_client_free(c);
    if (messages < 1 || commands != 0)
        fail_msg("over 10 heartbeats after its Hello the client sent %d messages and %d ZeroMQ "
                 "commands (the first: '%s'); log:\n%s", messages, commands, first_command,
                 lb->text);
    logbuf_free(lb);
}

/* Waits up to timeout_s for the log to hold needle; 1 if it does. */

/* A liveness_ms under 3 s, against a server that falls silent: the "no word from" line says what
 * an idle client hears (the server's Heartbeats, one each server.heartbeat_ms) and that
 * liveness_ms must be several times that (a device maker reconnected again and again at 600 ms,
 * the log blaming only the silence). */
static void test_short_liveness_said(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    cfg.liveness_ms = 600 * TS; /* under 3 s still */
    session_run(&s, &cfg, 0);
    if (!log_wait(s.lb, "reconnecting (an idle client hears the server's Heartbeats, one each "
                        "server.heartbeat_ms, 1000 ms by default: keep liveness_ms several times "
                        "that)", 10))
        fail_msg("log:\n%s", s.lb->text);
    run_stop(&s.r);
    session_close(&s);
}

/* What a CURVE client says when the server's key changed after its handshake succeeded. */
#define KEY_CHANGED_HINT "CURVE handshakes in a row failed (Broken pipe) where one had " \
                         "succeeded: has the server's key changed?"

/* A CURVE client (key c) of the server of key a at ep, which retries its handshakes every 100 ms
 * and never times the server out, started on r: what it logs about the handshakes is what the
 * tests read. */
static flc_client *key_watch_start(const char *ep, key_trio *k, logbuf *lb, runner *r)
{
    flc_config cfg = base_config(ep, train_plus_quarter, lb);
    cfg.server_public_key = k->apub;
    cfg.secret_key = k->csec;
    cfg.heartbeat_ms = 100;
    cfg.liveness_ms = 600000; /* no "no word from EP" while the test runs: the handshakes tell */
    /* failed handshakes end the session after the second and are retried with backoff: kept
     * short (100-200 ms), so that many fail while the test watches */
    cfg.reconnect_max_ms = 200;
    flc_client *c = NULL;
    assert_int_equal(flc_client_new(&cfg, &c), FLC_OK);
    run_start(r, c);
    return c;
}

/* The client's Hello at f (the server of key a at ep) answered; then that server gone and one of
 * key b bound at ep (restarted under another key): the client must ask whether the key changed,
 * within 10 s. f is the new server. */
static void hello_then_key_b(fake *f, const char *ep, const key_trio *k, logbuf *lb)
{
    fake_hello(f, 10000, "from the CURVE client", lb);
    fake_close(f);
    fake_bind(f, ep, k->bsec);
    if (!log_wait(lb, KEY_CHANGED_HINT, 10.0))
        fail_msg("no '%s' within 10 s of the key change; log:\n%s", KEY_CHANGED_HINT, lb->text);
}

/* The server restarted at the same endpoint under another key, after this client registered.
 * With libzmq 4.3 each handshake then fails without detail (the server cannot open the client's
 * Hello and hangs up: EPIPE), which the client took for a network error: nothing was said until
 * liveness_ms, and then "no word from EP". It now asks whether the server's key changed, once,
 * and goes on retrying (it stays a network error as far as giving up goes). */
static void test_server_key_changed_said(void **state)
{
    (void)state;
    key_trio k;
    key_trio_new(&k);
    char ep[128];
    dead_endpoint(ep, sizeof ep);
    fake f;
    fake_bind(&f, ep, k.asec);
    logbuf *lb = logbuf_new();
    runner r;
    flc_client *c = key_watch_start(ep, &k, lb, &r);
    hello_then_key_b(&f, ep, &k, lb);
    /* said once, not at every failure: more fail meanwhile (retried every 100-200 ms) */
    assert_true(fake_wait_failed_handshakes(&f, 10, 10.0));
    if (log_count(lb, "has the server's key changed?") != 1)
        fail_msg("the key hint not said exactly once; log:\n%s", lb->text);
    assert_false(atomic_load(&r.done)); /* still retrying: the key may come back */
    run_stop(&r);
    assert_int_equal(r.st, FLC_ERR_CANCELLED);
    flc_client_free(c);
    fake_close(&f);
    logbuf_free(lb);
}

/* Plays a plain-text server (fl_server --insecure) for one connection on listener lfd: answers
 * the client's ZMTP greeting with one of the NULL mechanism and waits until the client hangs up.
 * A real plain-text router often hangs up first, before the client reads its greeting (a broken
 * pipe then, which says nothing of the mechanism); this one lets the client see the mismatch
 * every time. Closes lfd, so that the next server can bind at its endpoint. */
static void plain_greeting_serve(int lfd)
{
    struct pollfd p = {lfd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1)
        fail_msg("no connection to the plain-text server within 10 s");
    const int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    /* ZMTP 3.0 greeting: signature (0xff, 8 bytes, 0x7f), version 3.0, mechanism "NULL" (20
     * bytes), as-server 0, filler (31 bytes). */
    uint8_t g[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0, 'N', 'U', 'L', 'L'};
    assert_int_equal(write(fd, g, sizeof g), (ssize_t)sizeof g);
    char buf[256];
    for (;;) { /* the client's greeting, until it hangs up */
        struct pollfd q = {fd, POLLIN, 0};
        if (poll(&q, 1, 10000) != 1)
            fail_msg("the CURVE client did not hang up on a plain-text greeting within 10 s");
        if (read(fd, buf, sizeof buf) <= 0)
            break;
    }
    close(fd);
    close(lfd);
}

/* One endpoint serves plain text, then CURVE, then CURVE under another key. The mismatch with the
 * plain-text server is said, and keeps later broken pipes from asking about the key; the handshake
 * with the CURVE server that follows clears it (hs_mismatch in flc_client.c), so that when the
 * key changes the failures are news about the key again and the client asks whether it changed.
 * Without the clearing a plain-text server met once kept that question unasked for good. */
static void test_key_change_said_after_plain_server(void **state)
{
    (void)state;
    key_trio k;
    key_trio_new(&k);
    char ep[128];
    const int lfd = plain_listener(ep, sizeof ep);
    logbuf *lb = logbuf_new();
    runner r;
    flc_client *c = key_watch_start(ep, &k, lb, &r);
    /* 1. plain text: the mismatch is said (one refusal; a second at most, should the client's
     * next try reach the listener before it closes: 3 would end the run) */
    plain_greeting_serve(lfd);
    const char *mismatch = "another security mechanism than this CURVE client";
    if (!log_wait(lb, mismatch, 10.0))
        fail_msg("the mismatch with the plain-text server not said; log:\n%s", lb->text);
    /* 2. CURVE with key A at the same endpoint: the handshake succeeds */
    fake f;
    fake_bind(&f, ep, k.asec);
    /* 3. CURVE with key B: the key is the question again */
    hello_then_key_b(&f, ep, &k, lb);
    assert_false(atomic_load(&r.done));
    run_stop(&r);
    assert_int_equal(r.st, FLC_ERR_CANCELLED);
    flc_client_free(c);
    fake_close(&f);
    logbuf_free(lb);
}

/* Runs cmd through sh, its output (stdout; cmd says 2>&1 for stderr) into out (cap bytes, what
 * does not fit dropped). Returns pclose's status. */
static int sh_collect(const char *cmd, char *out, size_t cap)
{
    char line[1024];
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(line, sizeof line, p))
        if (strlen(out) + strlen(line) < cap)
            strcat(out, line);
    return pclose(p);
}

/* root's fl_client, or the test fails at once saying it is not built: a shell line that runs a
 * missing one gets "not found" (exit 127), and one that then opens a FIFO for writing waits for a
 * reader that never comes (test_cli_stop_during_startup hung so). `meson test client` builds it
 * first (depends:); running build/tests/unit/test_client alone does not. */
static void client_exe_check(const char *root)
{
    char exe[1100];
    snprintf(exe, sizeof exe, "%s/fl_client/fl_client", root);
    if (access(exe, X_OK) != 0)
        fail_msg("%s: %s (not built? ninja -C %s fl_client/fl_client)", exe, strerror(errno),
                 root);
}

/* The build root (FEDROP_BUILD_ROOT), its fl_client checked by client_exe_check; without one
 * (the test program run by hand) the test is skipped. */
static const char *client_exe_root(void)
{
    const char *root = getenv("FEDROP_BUILD_ROOT");
    if (!root)
        skip();
    client_exe_check(root);
    return root;
}

/* fl_client stopped by SIGTERM while it loads its dataset (here: blocked reading a FIFO) exits 0,
 * the status --help gives a stop, and says so. The handler came only after the dataset, so such
 * a stop was the default action: exit 143, without a word. */
static void test_cli_stop_during_startup(void **state)
{
    (void)state;
    const char *root = client_exe_root();
    char dir[] = "/tmp/fedrop-client-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[2048], out[1024];
    /* the shell opens the FIFO for writing once fl_client opened it for reading (so its handlers
     * are in), and writes nothing: fl_client waits in its read when the SIGTERM comes */
    snprintf(cmd, sizeof cmd,
             "mkfifo '%s/img' && { '%s/fl_client/fl_client' --server tcp://127.0.0.1:1 --insecure "
             "--dataset 'idx:%s/img,%s/img' 2>&1 & p=$!; exec 3>'%s/img'; kill -TERM $p; wait $p; "
             "echo \"rc=$?\"; exec 3>&-; }; rm -rf '%s'",
             dir, root, dir, dir, dir, dir);
    sh_collect(cmd, out, sizeof out);
    if (!strstr(out, "fl_client: stopped during start-up\n") || !strstr(out, "rc=0\n"))
        fail_msg("fl_client stopped during start-up said '%s'", out);
}

/* fl_client started with standard output and error closed (`>&- 2>&-`, a supervisor that closes
 * them): they are opened on /dev/null before anything else. fl_client writes no file, but until
 * 2026-12-07 the first descriptors it made, its session's wake pipe, took numbers 1 and 2, and its
 * log went into that pipe (a wake-up per line; the pipe full, lines lost). Once its ZeroMQ context
 * is made (an eventfd open), its descriptors 1 and 2 are /dev/null; a SIGTERM still stops it with
 * exit status 0. */
static void test_cli_closed_std_fds(void **state)
{
    (void)state;
    const char *root = client_exe_root();
    char cmd[2048], out[1024];
    snprintf(cmd, sizeof cmd,
             "'%s/fl_client/fl_client' --server tcp://127.0.0.1:1 --insecure "
             "--dataset synth-images:200:1x8x8:4 --log-level debug >&- 2>&- & p=$!; i=0; "
             "while [ $i -lt 600 ] && ! ls -l /proc/$p/fd 2>/dev/null | grep -q eventfd; do "
             "sleep 0.05; i=$((i + 1)); done; "
             "echo \"fd1=$(readlink /proc/$p/fd/1) fd2=$(readlink /proc/$p/fd/2)\"; "
             "kill -TERM $p; wait $p; echo \"rc=$?\"", root);
    sh_collect(cmd, out, sizeof out);
    if (!strstr(out, "fd1=/dev/null fd2=/dev/null\n") || !strstr(out, "rc=0\n"))
        fail_msg("fl_client with stdout and stderr closed: '%s'", out);
}

/* Before the client runs, a closed stdout or stderr is no stop: fl_client --help and --version
 * into a closed pipe exit 0 without a word on stderr, and a refused command line written to a
 * closed stderr exits 1. SIGPIPE was taken as a stop from the first moment: the signal thread
 * said "fl_client: stopped during start-up" (on the terminal, in one run of six of `fl_client
 * --help | grep -q usage`) and exited 0, racing main's own status (a refused option exited 0 or
 * 1). 40 runs of each, as the race went either way. */
static void test_cli_closed_pipe_before_run(void **state)
{
    (void)state;
    const char *root = client_exe_root();
    char exe[1100];
    snprintf(exe, sizeof exe, "%s/fl_client/fl_client", root);
    static const char *const help[] = {"--help", NULL}, *const version[] = {"--version", NULL},
                             *const bogus[] = {"--bogus", NULL},
                             *const range[] = {"--server", "tcp://127.0.0.1:1", "--threads", "0",
                                               NULL};
    static const struct {
        const char *const *args;
        int closed, rc;
    } cases[] = {{help, 1, 0}, {version, 1, 0}, {bogus, 2, 1}, {range, 2, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int i = 0; i < 40; i++) {
            char said[8192];
            const int rc = closed_pipe_run(exe, cases[k].args, cases[k].closed, said, sizeof said);
            /* stdout closed: stderr must be empty; stderr closed: stdout has nothing either */
            if (rc != cases[k].rc || said[0])
                fail_msg("fl_client %s with fd %d a closed pipe: exit %d (want %d), run %d, said "
                         "'%s'", cases[k].args[0], cases[k].closed, rc, cases[k].rc, i, said);
        }
}

/* fl_client's refusals of its command line: one line each that names the option and the range
 * (not the 40-line usage after getopt's line, nor one message for three options), exit 1. */
static void test_cli_bad_options(void **state)
{
    (void)state;
    const char *root = client_exe_root();
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"--bogus", "fl_client: see fl_client --help for the options\n"},
        {"--server tcp://127.0.0.1:1 --num-clients 0", "--num-clients 0: expected 1 <= N"},
        {"--server tcp://127.0.0.1:1 --num-clients 4 --client-index 4",
         "--client-index 4: expected 0 <= I < --num-clients (4)"},
        {"--server tcp://127.0.0.1:1 --threads -1", "--threads -1: expected 1 <= N <= 1024"},
        {"--server tcp://127.0.0.1:1 --seed -1", "--seed: '-1' is not a number"},
        {"--server tcp://127.0.0.1:1 --partition-seed ' -5'", "--partition-seed: ' -5' is not a number"},
        /* an empty value (an unset variable) is no 0: client 0 of the fleet, partition seed 0 */
        {"--server tcp://127.0.0.1:1 --num-clients 4 --client-index ''",
         "--client-index: '' is not a number"},
        {"--server tcp://127.0.0.1:1 --partition-seed ''", "--partition-seed: '' is not a number"},
        {"--server tcp://127.0.0.1:1 --seed ''", "--seed: '' is not a number"},
        {"--server tcp://127.0.0.1:1 --max-rounds ''", "--max-rounds: '' is not a number"},
        {"--server tcp://127.0.0.1:1 --num-clients ''", "--num-clients: '' is not a number"},
        /* a sign after blanks: strtoull took " -5" for 2^64 - 5 bytes */
        {"--server tcp://127.0.0.1:1 --memory-bytes ' -5'", "--memory-bytes: ' -5' is not a number"},
        {"--server tcp://127.0.0.1:1 --memory-bytes -1K", "--memory-bytes: '-1K' is not a number"},
        /* a suffix it does not take: the message says which it does */
        {"--server tcp://127.0.0.1:1 --memory-bytes 64k", "--memory-bytes: '64k' is not a number "
         "of bytes (N, or N followed by K, M or G: 1K is 1024 bytes, 1M 1024K, 1G 1024M)\n"},
        {"--server tcp://127.0.0.1:1 --memory-bytes 1.5G", "--memory-bytes: '1.5G' is not a "
         "number of bytes (N, or N followed by K, M or G"},
        {"--server tcp://127.0.0.1:1 --memory-bytes 64MB", "--memory-bytes: '64MB' is not a "
         "number of bytes (N, or N followed by K, M or G"},
        /* past LONG_MAX: strtol's clamped count is not the one given (nor, where long is 32
         * bits, above INT_MAX: it would pass as 2147483647 clients) */
        {"--server tcp://127.0.0.1:1 --num-clients 99999999999999999999",
         "--num-clients: '99999999999999999999' is out of range"},
        {"--server tcp://127.0.0.1:1 --max-rounds 99999999999999999999",
         "--max-rounds: '99999999999999999999' is out of range"},
        /* a value left out: the next option is not taken for it */
        {"--server --insecure", "--server needs a value, and the next argument, --insecure, is an"},
        {"--server tcp://127.0.0.1:1 --heartbeat-ms 5", "--heartbeat-ms 5: expected 10 <= N"},
        {"--server tcp://127.0.0.1:1 --heartbeat-ms 0", "--heartbeat-ms '0': expected 10 <= N"},
        {"--server tcp://127.0.0.1:1 --liveness-ms -1", "--liveness-ms -1: expected 1 <= N"},
        {"--server tcp://127.0.0.1:1 --heartbeat-ms 20000",
         "--liveness-ms 10000 is not above --heartbeat-ms 20000"},
        {"--server tcp://127.0.0.1:1 --heartbeat-ms 500 --liveness-ms 500",
         "--liveness-ms 500 is not above --heartbeat-ms 500"},
        /* said before the dataset loads (it was libzmq's "Invalid argument" after it, exit 4) */
        /* ... naming the forms fl_client takes: not inproc://, which it refuses (below) */
        {"--server localhost:5555 --insecure",
         "--server localhost:5555 is not tcp://HOST:PORT or ipc://PATH (for example "
         "tcp://127.0.0.1:5555)\n"},
        {"--server tcp//127.0.0.1:5555 --insecure",
         "--server tcp//127.0.0.1:5555 is not tcp://HOST:PORT or ipc://PATH (for example "
         "tcp://127.0.0.1:5555)\n"},
        {"--server ipc:// --insecure", "--server ipc:// is not tcp://HOST:PORT or ipc://PATH ("},
        /* a blank or a control character: refused before the dataset loads (a tab was libzmq's
         * "Invalid argument", exit 4, after it; a space retried for ever), and a CR shown as
         * such, not sending the terminal back over the line */
        {"--server \"$(printf 'tcp://ho\\tst:5555')\" --insecure", "--server tcp://ho\\tst:5555 is "
         "not tcp://HOST:PORT: its HOST has a control character at byte 2 (0x09)\n"},
        {"--server 'tcp://ho st:5555' --insecure",
         "--server tcp://ho st:5555 is not tcp://HOST:PORT: its HOST has a blank at byte 2"},
        {"--server \"$(printf 'tcp://127.0.0.1:5555\\r')\" --insecure",
         "--server tcp://127.0.0.1:5555\\r is not tcp://HOST:PORT with a PORT in 1..65535\n"},
        {"--server tcp://127.0.0.1 --insecure",
         "--server tcp://127.0.0.1 is not tcp://HOST:PORT with a PORT in 1..65535"},
        {"--server inproc://fl --insecure", "inproc:// reaches only a server in the same process"},
        /* an --id that cannot go on the wire: said with the other options, not after the dataset
         * loaded (until 2026-12-07 a missing dataset's error, exit 2, came first) */
        {"--server tcp://127.0.0.1:1 --insecure --data-dir /nonexistent-fedrop --id \"$(printf "
         "'a\\tb')\"", "fl_client: --id: control character at byte 1 (an id is UTF-8 text "
         "without control characters, at most 1024 bytes)\n"},
        {"--server tcp://127.0.0.1:1 --insecure --data-dir /nonexistent-fedrop --id \"$(printf "
         "'id\\377')\"", "fl_client: --id: not UTF-8 at byte 2 (0xff)"},
        {"--server tcp://127.0.0.1:1 --insecure --data-dir /nonexistent-fedrop --id \"$(head -c "
         "1025 /dev/zero | tr '\\0' x)\"", "fl_client: --id: longer than 1024 bytes"},
        {"--server tcp://127.0.0.1:1 --insecure --data-dir /nonexistent-fedrop --id ''",
         "fl_client: --id is empty (leave it out for client-<index>)\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1024], out[4096] = "", line[512];
        snprintf(cmd, sizeof cmd, "'%s/fl_client/fl_client' %s 2>&1; echo \"rc=$?\"", root,
                 cases[i].args);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        int lines = 0;
        while (fgets(line, sizeof line, p)) {
            lines++;
            if (strlen(out) + strlen(line) < sizeof out)
                strcat(out, line);
        }
        pclose(p);
        if (!strstr(out, cases[i].want) || !strstr(out, "rc=1\n") || lines > 3)
            fail_msg("fl_client %s said '%s'", cases[i].args, out);
    }
}

/* An option given more than once: the last value counts, and that is said, once per option, as
 * fl_sim says it (a fleet script's common flags and then an override). Until 2026-12-08
 * `--server A ... --server B` joined B without a word. A switch given twice and options given
 * once say nothing. */
static void test_cli_option_given_again_said(void **state)
{
    (void)state;
    const char *root = client_exe_root();
    static const struct {
        const char *args, *want; /* want NULL: no warning */
    } cases[] = {
        /* the first is refused if it counted: the last does, said */
        {"--server localhost:5555 --server tcp://127.0.0.1:1 --insecure",
         "fl_client: warning: --server is given more than once: the last, 'tcp://127.0.0.1:1', "
         "is used\n"},
        {"--server tcp://127.0.0.1:1 --insecure --threads 2 --threads 3 --threads 1",
         "fl_client: warning: --threads is given more than once: the last, '1', is used\n"},
        {"--server tcp://127.0.0.1:1 --insecure --insecure --threads 2", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1024], out[4096];
        /* a data directory with nothing in it ends the run (exit 2) right after the checks */
        snprintf(cmd, sizeof cmd, "'%s/fl_client/fl_client' %s --data-dir /nonexistent-fedrop "
                 "2>&1; echo \"rc=$?\"", root, cases[i].args);
        sh_collect(cmd, out, sizeof out);
        const char *at = cases[i].want ? strstr(out, cases[i].want) : NULL;
        int n = 0;
        for (const char *q = out; (q = strstr(q, "is given more than once")); q++)
            n++;
        if (!strstr(out, "rc=2\n") || (cases[i].want ? !at || n != 1 : n != 0))
            fail_msg("fl_client %s said '%s'", cases[i].args, out);
    }
}

/* --num-clients N without --client-index: every process would be client-0 on partition 0 (two
 * clients with one id take turns at the server): said at start. With --client-index, nothing. */
static void test_cli_index_missing_said(void **state)
{
    (void)state;
    const char *root = client_exe_root();
    for (int given = 0; given < 2; given++) {
        char cmd[1024], out[4096];
        /* a data directory with nothing in it ends the run (exit 2) right after the check */
        snprintf(cmd, sizeof cmd, "'%s/fl_client/fl_client' --server tcp://127.0.0.1:1 --insecure "
                 "--num-clients 3 %s --data-dir /nonexistent-fedrop 2>&1; echo \"rc=$?\"", root,
                 given ? "--client-index 2" : "");
        sh_collect(cmd, out, sizeof out);
        const int said = strstr(out, "--num-clients 3 without --client-index: this is client 0 "
                                     "(partition 0, id client-0)") != NULL;
        if (said == given || !strstr(out, "rc=2\n"))
            fail_msg("fl_client --num-clients 3%s said '%s'", given ? " --client-index 2" : "", out);
    }
}

/* A partition fl_client cannot make says why, in fl_sim's words (flm_partition_make_err), not
 * "invalid argument": a dataset without users under --partition natural, a LEAF one with fewer
 * users than --num-clients. Exit status 2, before any connection. */
static void test_cli_partition_reasons(void **state)
{
    (void)state;
    const char *root = getenv("FEDROP_BUILD_ROOT"), *src = getenv("FEDROP_SOURCE_ROOT");
    if (!root || !src)
        skip();
    client_exe_check(root);
    char leaf[1024];
    snprintf(leaf, sizeof leaf, "shakespeare:%.900s/tests/fixtures/datasets/shakespeare_tiny.json",
             src);
    struct {
        char args[1200], want[1400];
    } cases[3];
    snprintf(cases[0].args, sizeof cases[0].args,
             "--dataset synth-tokens:100:80:80 --partition natural --num-clients 2");
    snprintf(cases[0].want, sizeof cases[0].want,
             "fl_client: --partition: natural: the dataset has no per-user split (LEAF datasets "
             "have one: femnist, shakespeare); --dataset synth-tokens:100:80:80 over "
             "--num-clients 2\n");
    /* the LEAF fixture has 2 users */
    snprintf(cases[1].args, sizeof cases[1].args,
             "--dataset '%s' --partition natural --num-clients 3", leaf);
    snprintf(cases[1].want, sizeof cases[1].want,
             "fl_client: --partition: natural: 2 users cannot fill 3 shards (a shard takes whole "
             "users, at least one); --dataset %s over --num-clients 3\n", leaf);
    snprintf(cases[2].args, sizeof cases[2].args,
             "--dataset synth-images:100:1x8x8:4 --partition shards:2 --num-clients 60");
    snprintf(cases[2].want, sizeof cases[2].want,
             "fl_client: --partition: shards:2: 100 samples cannot fill 2 shards for each of 60 "
             "clients (at least one sample a shard); --dataset synth-images:100:1x8x8:4 over "
             "--num-clients 60\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[4096], out[4096];
        snprintf(cmd, sizeof cmd, "'%.1024s/fl_client/fl_client' --server tcp://127.0.0.1:1 "
                 "--insecure %.1200s 2>&1; echo \"rc=$?\"", root, cases[i].args);
        sh_collect(cmd, out, sizeof out);
        if (!strstr(out, cases[i].want) || !strstr(out, "rc=2\n"))
            fail_msg("fl_client %s said '%s'", cases[i].args, out);
    }
}

/* fl_client --help says how --data-dir is read: as $FEDROP_DATA_DIR is, DIR/<name>
 * then DIR, so that the parent of the datasets' directories works as well as the dataset's own;
 * and that the variable is honoured without the flag. It said only "(default
 * /usr/share/datasets/<name>)". */
static void test_cli_help_data_dir(void **state)
{
    (void)state;
    const char *root = client_exe_root();
    char cmd[1024], out[16384];
    snprintf(cmd, sizeof cmd, "'%s/fl_client/fl_client' --help 2>&1", root);
    assert_int_equal(sh_collect(cmd, out, sizeof out), 0);
    if (!strstr(out, "  --data-dir DIR         where fashion-mnist / mnist live: DIR/<name> or DIR,\n"
                     "                         the first that holds it (default $FEDROP_DATA_DIR, read\n"
                     "                         the same way, else /usr/share/datasets/<name>)\n"))
        fail_msg("fl_client --help on --data-dir: '%s'", out);
}

/* Every option fl_client --help lists is in the device maker's guide (fl_client/README.md, whose
 * last section lists them with the flc_config field each sets): --max-rounds, --data-dir,
 * --partition-seed and --log-level were in no README, nor was the whole list, before
 * 2026-12-07. The options are the --words that start a line of the help's option lists. */
static void test_cli_help_options_in_readme(void **state)
{
    (void)state;
    const char *root = client_exe_root(), *src = getenv("FEDROP_SOURCE_ROOT");
    if (!src)
        skip();
    char cmd[1024], out[16384];
    snprintf(cmd, sizeof cmd, "'%s/fl_client/fl_client' --help 2>&1", root);
    assert_int_equal(sh_collect(cmd, out, sizeof out), 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/fl_client/README.md", src);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char readme[1 << 18];
    const size_t rn = fread(readme, 1, sizeof readme - 1, f);
    fclose(f);
    assert_true(rn > 0 && rn < sizeof readme - 1);
    readme[rn] = '\0';
    int options = 0;
    for (const char *line = out; *line;) {
        const char *eol = strchr(line, '\n'), *p = line + strspn(line, " ");
        /* an option's line (two blanks, then the option), and the usage's "fl_client --version" */
        if (strncmp(p, "fl_client --", 12) == 0)
            p += 10;
        else if (p != line + 2)
            p = "";
        for (; *p == '-';) {
            size_t n = strspn(p, "-abcdefghijklmnopqrstuvwxyz");
            char want[64];
            snprintf(want, sizeof want, "`%.*s", (int)n, p);
            if (!strstr(readme, want))
                fail_msg("fl_client --help lists %.*s, which fl_client/README.md does not name "
                         "(as %s...`)", (int)n, p, want);
            options++;
            p += n;
            if (strncmp(p, ", ", 2) != 0) /* "-h, --help" */
                break;
            p += 2;
        }
        line = eol ? eol + 1 : line + strlen(line);
    }
    assert_true(options >= 21); /* the help's option lines were read */
}

/* fl_client --data-dir DIR without the files: the error names DIR as the directory given, not
 * as "the directory of $FEDROP_DATA_DIR" (it set the variable from the flag, and the loader then
 * blamed a variable the user never set). Run with the variable unset. */
static void test_cli_data_dir_missing_named(void **state)
{
    (void)state;
    const char *root = client_exe_root();
    static const char *const datasets[] = {"fashion-mnist", "mnist:test"};
    for (size_t i = 0; i < sizeof datasets / sizeof datasets[0]; i++) {
        char cmd[1024], out[4096];
        snprintf(cmd, sizeof cmd, "env -u FEDROP_DATA_DIR '%s/fl_client/fl_client' --server "
                 "tcp://127.0.0.1:1 --insecure --dataset %s --data-dir /nonexistent-fedrop 2>&1; "
                 "echo \"rc=$?\"", root, datasets[i]);
        sh_collect(cmd, out, sizeof out);
        if (!strstr(out, "not found in /nonexistent-fedrop/") || strstr(out, "FEDROP_DATA_DIR") ||
            !strstr(out, "rc=2\n"))
            fail_msg("fl_client --dataset %s --data-dir /nonexistent-fedrop said '%s'", datasets[i],
                     out);
    }
}

/* fl_client's own two info lines (its local samples at start, its counts at exit) honour
 * --log-level as the library's lines do: at warn they are left out (they were printed at every
 * level); at info both are there, the exit line as "stopped" after a SIGTERM. */
static void test_cli_log_level_own_lines(void **state)
{
    (void)state;
    const char *root = client_exe_root();
    for (int warn = 0; warn < 2; warn++) {
        char cmd[1024], out[8192];
        snprintf(cmd, sizeof cmd, "'%s/fl_client/fl_client' --server tcp://127.0.0.1:1 --insecure "
                 "--dataset synth-images:100:1x8x8:4 --log-level %s 2>&1 & p=$!; sleep 1; "
                 "kill $p; wait $p; echo \"rc=$?\"", root, warn ? "warn" : "info");
        sh_collect(cmd, out, sizeof out);
        const int samples = strstr(out, "] info  100 local samples") != NULL;
        const int counts = strstr(out, "] info  0 rounds trained") != NULL &&
                           strstr(out, "MB up: stopped\n") != NULL;
        if (!strstr(out, "rc=0\n") || (warn ? samples || counts || strstr(out, "] info ")
                                            : !samples || !counts))
            fail_msg("fl_client --log-level %s said '%s'", warn ? "warn" : "info", out);
    }
}

/* fl_client names the BLAS kernel as fl_sim's summary.json "blas" does (flm_blas_kernel_name):
 * with OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU fedrop's own AVX-512 kernels still run, and
 * round otherwise than on a CPU with AVX2 alone, so fl_sim says "Haswell+AVX512"; until
 * 2026-12-07 fl_client said "Haswell" (OpenBLAS's core alone) for both. */
static void test_cli_blas_kernel_named_as_sim(void **state)
{
    (void)state;
    const char *root = client_exe_root();
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "OPENBLAS_CORETYPE=Haswell '%s/fl_client/fl_client' --server "
             "tcp://127.0.0.1:1 --insecure --dataset synth-images:100:1x8x8:4 --log-level info "
             "2>&1 & p=$!; sleep 1; kill $p; wait $p; echo \"rc=$?\"", root);
    sh_collect(cmd, out, sizeof out);
    const char *line = strstr(out, "; BLAS kernel ");
    if (!strstr(out, "rc=0\n") || !line) {
        fail_msg("fl_client said '%s'", out);
        return;
    }
    if (strstr(out, "is not what OpenBLAS runs") || strstr(line, "BLAS kernel reference")) {
        skip(); /* no Haswell kernel here (a CPU without AVX2), or no OpenBLAS */
        return;
    }
    /* the suffix flm_blas_kernel_name adds to a core that does not imply AVX-512, from this
     * process's environment and CPU, which the child shares (FLM_NO_SKINNY, AVX-512) */
    (void)flm_blas_init();
    char want[96];
    snprintf(want, sizeof want, "; BLAS kernel Haswell%s\n",
             flm_blas_skinny_off()  ? "+FLM_NO_SKINNY"
             : flm_blas_skinny_on() ? "+AVX512"
                                    : "");
    if (strncmp(line, want, strlen(want)) != 0)
        fail_msg("fl_client with OPENBLAS_CORETYPE=Haswell said '%.*s', not '%s'",
                 (int)strcspn(line, "\n"), line, want);
}

/* A name in OPENBLAS_CORETYPE that OpenBLAS passes over (a typo: it then runs its own
 * detection's kernel) is said by the library, at warn, to whoever embeds it: until 2026-12-07
 * only fl_client's main said it (at info), and a device program learnt nothing (flc_client_new
 * logged the kernel's name at debug). Seen here through fl_client, whose log callback prints the
 * library's lines: once, from flc_client_new, and not again by the program. The child is
 * stopped once it says it is connecting (past flc_client_new), not after a time. */
static void test_coretype_ignored_said_by_library(void **state)
{
    (void)state;
    const char *root = getenv("FEDROP_BUILD_ROOT");
    if (!root)
        skip();
    client_exe_check(root);
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "f=$(mktemp) || exit 1; OPENBLAS_CORETYPE=Foobar '%s/fl_client/fl_client' "
             "--server tcp://127.0.0.1:1 --insecure --dataset synth-images:100:1x8x8:4 "
             "--log-level info >\"$f\" 2>&1 & p=$!; until grep -q 'connecting to' \"$f\" || "
             "! kill -0 $p 2>/dev/null; do sleep 0.05; done; kill $p; wait $p; "
             "echo \"rc=$?\"; cat \"$f\"; rm -f \"$f\"", root);
    sh_collect(cmd, out, sizeof out);
    if (strstr(out, "BLAS kernel reference"))
        skip(); /* no OpenBLAS here: nothing passes the name over */
    const char *said = "[client-0] warn  flc_client_new: OPENBLAS_CORETYPE=Foobar in the "
                       "environment is not what OpenBLAS runs";
    const char *first = strstr(out, "is not what OpenBLAS runs");
    if (!strstr(out, "rc=0\n") || !strstr(out, said) ||
        strstr(first + 1, "is not what OpenBLAS runs"))
        fail_msg("fl_client with OPENBLAS_CORETYPE=Foobar said '%s'", out);
}

/* ---- flc_stats.reconnects counts every new start ---------------------------------------------- */

/* The server loses a registered client two ways: it forgets it (restarted behind a link ZeroMQ
 * restored by itself, or timed it out for silence) and answers Error(unknown client), and the
 * client says Hello again on the same connection; or it says Bye("restart"), and the client
 * connects anew. Either is one reconnect (flc.h): a device counting restarts of its server must
 * not see 0 because ZeroMQ kept the socket. */
static void test_reconnects_counts_each_new_start(void **state)
{
    (void)state;
    const struct {
        const char *how;
        int same_connection;
    } cases[] = {
        {"Error(unknown client)", 1},
        {"Bye(restart)", 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        session s;
        session_open(&s);
        flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
        cfg.reconnect_min_ms = 50;
        session_run(&s, &cfg, 0);
        uint8_t rid[sizeof s.f.rid];
        const size_t rid_len = s.f.rid_len; /* the connection the client registered on */
        memcpy(rid, s.f.rid, rid_len);
        flp_msg m = flp_msg_header(cases[k].same_connection ? FLP_ERROR : FLP_BYE, 0, NULL);
        if (cases[k].same_connection) {
            m.error.code = FL_ERR_UNKNOWN_CLIENT;
            m.error.message = "say Hello first";
        } else {
            m.bye.reason = "restart";
        }
        fake_send(&s.f, &m);
        char when[96];
        snprintf(when, sizeof when, "after %s", cases[k].how);
        flp_msg *h = session_expect(&s, FLP_HELLO, 5000, when);
        flp_msg_free(h);
        const int same = s.f.rid_len == rid_len && memcmp(s.f.rid, rid, rid_len) == 0;
        assert_int_equal(same, cases[k].same_connection);
        fake_ack(&s.f, FLP_HELLO, 0, 0);
        run_stop(&s.r);
        const unsigned long long n = flc_client_stats(s.c)->reconnects;
        if (n != 1)
            fail_msg("after %s: %llu reconnects, not 1; log:\n%s", cases[k].how, n, s.lb->text);
        /* Error(unknown client) is said as the new start it is, not as a server error (a
         * restarted server answers every message queued towards the old one so) */
        if (cases[k].same_connection &&
            (log_count(s.lb, "registering again") != 1 || log_count(s.lb, "server error")))
            fail_msg("after %s: want one 'registering again', no 'server error'; log:\n%s",
                     cases[k].how, s.lb->text);
        session_close(&s);
    }
}

/* ---- a failed training is reported; stop says Bye --------------------------------------------- */

static void test_train_failure_reported_and_bye(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_fails, s.lb);
    session_run(&s, &cfg, 0);

    /* The server hears of the failure at once: an Error of the task's round, with the trainer's
     * status as its code. */
    flp_msg *e = session_expect(&s, FLP_ERROR, 5000, "after a failed training");
    assert_int_equal(e->round, s.round);
    assert_int_equal(e->error.run_id, FAKE_RUN_ID); /* a restarted server can tell it is stale */
    assert_int_equal(e->error.code, FLC_ERR_INTERNAL);
    assert_non_null(strstr(e->error.message, "plug-in trainer failed with status 4"));
    flp_msg_free(e);
    /* Logged once, as the device's failure, not as a bug in fedrop. */
    assert_int_equal(log_count(s.lb, "plug-in trainer failed with status 4"), 1);
    assert_int_equal(log_count(s.lb, "bug in fedrop"), 0);

    /* flc_client_stop: the server is told Bye instead of waiting for its liveness timeout. */
    flc_client_stop(s.c);
    flp_msg *b = session_expect(&s, FLP_BYE, 2000, "after flc_client_stop");
    assert_string_equal(b->bye.reason, "client stopping");
    flp_msg_free(b);
    assert_true(run_wait(&s.r, 2.0));
    assert_int_equal(s.r.st, FLC_ERR_CANCELLED);
    /* counted, for a device that reads its stats rather than its log */
    assert_int_equal(flc_client_stats(s.c)->rounds_failed, 1);
    assert_int_equal(flc_client_stats(s.c)->rounds_trained, 0);
    session_close(&s);
}

/* A plug-in that returns a status flc.h does not list (-1): its Error went up with code -1, which
 * the server printed as "Error code 4294967295". It goes up as FLC_ERR_INTERNAL, the trainer's
 * value in the message and the log. */
static void test_train_failure_unknown_status(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_fails_unknown, s.lb);
    session_run(&s, &cfg, 0);
    flp_msg *e = session_expect(&s, FLP_ERROR, 5000, "after a training failed with -1");
    assert_int_equal(e->round, s.round);
    assert_int_equal(e->error.code, FLC_ERR_INTERNAL);
    if (!strstr(e->error.message, "the plug-in trainer failed with status -1, which is no "
                                  "flc_status (flc.h): reported as FLC_ERR_INTERNAL (4)"))
        fail_msg("Error message '%s'", e->error.message);
    flp_msg_free(e);
    assert_int_equal(log_count(s.lb, "failed with status -1, which is no flc_status"), 1);
    run_stop(&s.r);
    assert_int_equal(flc_client_stats(s.c)->rounds_failed, 1);
    session_close(&s);
}

/* A plug-in writes its trained weights into out->weights: one that points it at a buffer of its
 * own, or changes n_params, had its training dropped without a word (the unchanged weights went
 * up as its update). The round fails instead, with the field named, and the server hears it. */
static float g_own_weights[4096];

static flc_status train_moves_weights(const flc_task *task, flc_update *out, void *user)
{
    const int *how = user;
    if (*how == 0 && task->n_params <= sizeof g_own_weights / sizeof g_own_weights[0]) {
        memcpy(g_own_weights, task->weights, task->n_params * sizeof(float));
        out->weights = g_own_weights;
    } else {
        out->n_params = task->n_params - 1;
    }
    out->n_samples = 3;
    out->loss = 1.5;
    return FLC_OK;
}

static void test_plugin_moved_weights_refused(void **state)
{
    (void)state;
    for (int how = 0; how < 2; how++) {
        session s;
        session_open(&s);
        flc_config cfg = base_config(s.f.ep, train_moves_weights, s.lb);
        cfg.train_user = &how;
        session_run(&s, &cfg, 0);
        flp_msg *e = session_expect(&s, FLP_ERROR, 5000, "after a trainer moved its weights");
        assert_int_equal(e->round, s.round);
        assert_int_equal(e->error.code, FLC_ERR_INVALID_ARG);
        flp_msg_free(e);
        const char *says = how == 0 ? "changed out->weights" : "changed out->n_params";
        if (log_count(s.lb, says) != 1 || log_count(s.lb, "failed with status") != 0)
            fail_msg("want one '%s' and no 'failed with status' (the plug-in returned FLC_OK); "
                     "log:\n%s", says, s.lb->text);
        run_stop(&s.r);
        assert_int_equal(flc_client_stats(s.c)->rounds_failed, 1);
        session_close(&s);
    }
}

/* A plug-in device declares its sample count the way flc.h says ({NULL, NULL, NULL, n, 0}: the
 * Hello's dataset_size, which the server holds its updates to). A training that reports more
 * fails the round on the device (FLC_ERR_NUMERIC, flc.h), and the server hears an Error at once;
 * before, the library never held a plug-in to it, uploaded the update, and the server refused it
 * ("count above its limit") after the device had sent every chunk. */
static void test_plugin_above_declared_samples_fails_round(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    const flc_samples declared = {NULL, NULL, NULL, 2, 0};
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb); /* reports 3 samples */
    cfg.samples = &declared;
    session_run(&s, &cfg, 0);
    flp_msg *m = session_expect(&s, FLP_ERROR, 5000, "for an update above the declared samples");
    assert_int_equal(m->round, s.round);
    assert_int_equal(m->error.code, FLC_ERR_NUMERIC);
    if (!strstr(m->error.message, "above the 2 this client told the server it holds"))
        fail_msg("the Error says '%s'", m->error.message);
    flp_msg_free(m);
    run_stop(&s.r);
    assert_int_equal(flc_client_stats(s.c)->rounds_failed, 1);
    assert_int_equal(flc_client_stats(s.c)->updates_sent, 0);
    session_close(&s);
}

static flc_status train_moves_first_far(const flc_task *task, flc_update *out, void *user)
{
    (void)task;
    (void)user;
    out->weights[0] += 1e6f; /* past f16's largest finite value, 65504 */
    out->n_samples = 3;
    out->loss = 1.5;
    return FLC_OK;
}

/* A change of the weights too large for the server's up codec (f16 ends at 65504) fails the
 * round (FLC_ERR_NUMERIC), and the log and the server's Error say it in the codec's words: the
 * value and the limit (flz_ctx_error). Before, they said only that the update was too large,
 * the Error's message cut at 255 bytes. */
static void test_plugin_update_past_up_codec_said(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_moves_first_far, s.lb);
    cfg.heartbeat_ms = 100;
    session_hello(&s, &cfg);
    fake_core_new_codec(&s.core, 0, 0.0, "f16");
    s.round = fake_task(&s.f, s.core);
    flp_msg *m = session_expect(&s, FLP_ERROR, 5000, "for an update f16 cannot carry");
    assert_int_equal(m->round, s.round);
    assert_int_equal(m->error.code, FLC_ERR_NUMERIC);
    const char *says = "element 0 is 1e+06, outside float16's range (its largest finite value is "
                       "65504): f16 cannot carry it";
    if (!strstr(m->error.message, "too large for the server's up codec f16") ||
        !strstr(m->error.message, says))
        fail_msg("the Error says '%s'", m->error.message);
    flp_msg_free(m);
    if (log_count(s.lb, says) != 1)
        fail_msg("want the codec's words once in the log; log:\n%s", s.lb->text);
    assert_int_equal(session_stopped(&s)->rounds_failed, 1);
    session_close(&s);
}

typedef struct inner_run {
    flc_client *const *c; /* the session's client, set by flc_client_new before any training */
    flc_status st;
    atomic_int done;
} inner_run;

/* A plug-in that calls flc_client_run on its own client, keeping the status. */
static flc_status train_runs_client(const flc_task *task, flc_update *out, void *user)
{
    inner_run *inner = user;
    inner->st = flc_client_run(*inner->c);
    atomic_store(&inner->done, 1);
    return train_plus_quarter(task, out, NULL);
}

/* One flc_client_run at a time: a second call while one runs, from another thread or from the
 * first one's trainer, is refused with FLC_ERR_STATE and said. Before, it shared the socket and
 * the core with the first: both hung for ever, flc_client_stop included. */
static void test_second_run_refused(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    inner_run inner = {&s.c, FLC_OK, 0};
    flc_config cfg = base_config(s.f.ep, train_runs_client, s.lb);
    cfg.train_user = &inner;
    session_run(&s, &cfg, 0);
    /* from another thread */
    runner second;
    run_start(&second, s.c);
    if (!run_wait(&second, 5.0))
        fail_msg("a second flc_client_run did not return; log:\n%s", s.lb->text);
    assert_int_equal(second.st, FLC_ERR_STATE);
    /* from the trainer: its round is trained, and its update goes up */
    flp_msg *u = session_expect(&s, FLP_UPDATE, 5000, "after the trainer's flc_client_run");
    flp_msg_free(u);
    assert_int_equal(atomic_load(&inner.done), 1);
    assert_int_equal(inner.st, FLC_ERR_STATE);
    if (log_count(s.lb, "this client is running already") != 2)
        fail_msg("want the refusal said twice; log:\n%s", s.lb->text);
    session_stopped(&s);
    assert_int_equal(s.r.st, FLC_ERR_CANCELLED);
    session_close(&s);
}

/* flc_client_free while flc_client_run is in progress does not free the client under it: it is
 * said, and the run goes on until stopped (before, the run went on in freed memory). */
static void test_free_while_running_refused(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    session_run(&s, &cfg, 0);
    flc_client_free(s.c); /* refused: the run is in progress */
    if (log_count(s.lb, "flc_client_free: flc_client_run of this client is in progress") != 1)
        fail_msg("want the refusal said; log:\n%s", s.lb->text);
    /* the client still serves its task, and stops */
    flp_msg *u = session_expect(&s, FLP_UPDATE, 5000, "after a refused flc_client_free");
    flp_msg_free(u);
    assert_int_equal(session_stopped(&s)->rounds_trained, 1);
    assert_int_equal(s.r.st, FLC_ERR_CANCELLED);
    session_close(&s); /* frees it now */
}

/* ---- samples that do not fit the server's model ------------------------------------------------ */

/* The server picks the model (mlp:6-5-3 here): samples whose rows are narrower than its input,
 * or whose labels reach past its classes, are refused before a byte past them is read (the x
 * below is exactly n * row_len floats: ASan would see such a read). The server hears that the
 * round failed, then Bye, and flc_client_run returns FLC_ERR_DATASET instead of failing every
 * round for ever. */
static void test_unfit_samples_end_run(void **state)
{
    (void)state;
    enum { N = 8 };
    const struct {
        size_t row_len;
        int32_t bad_label;
        const char *why;
    } cases[] = {
        {4, 0, "the server's model mlp:6-5-3 takes 6 floats per sample, the samples have 4"},
        {6, 3, "sample 5 has label 3; the server's model mlp:6-5-3 has 3 classes"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        float *x = calloc(N * cases[k].row_len, sizeof *x);
        int32_t y[N] = {0};
        y[5] = cases[k].bad_label;
        const flc_samples samples = {x, NULL, y, N, cases[k].row_len};
        session s;
        session_open(&s);
        flc_config cfg = base_config(s.f.ep, NULL, s.lb);
        cfg.samples = &samples;
        session_run(&s, &cfg, 0);
        char when[32];
        snprintf(when, sizeof when, "in case %zu", k);
        flp_msg *e = session_expect(&s, FLP_ERROR, 5000, when);
        assert_int_equal(e->error.code, FLC_ERR_DATASET);
        if (!strstr(e->error.message, cases[k].why))
            fail_msg("case %zu: Error '%s'", k, e->error.message);
        flp_msg_free(e);
        flp_msg *b = session_expect(&s, FLP_BYE, 5000, when);
        assert_string_equal(b->bye.reason, "the local samples do not fit the model");
        flp_msg_free(b);
        assert_true(run_wait(&s.r, 5.0));
        assert_int_equal(s.r.st, FLC_ERR_DATASET);
        assert_int_equal(flc_client_stats(s.c)->rounds_trained, 0);
        session_close(&s);
        free(x);
    }
}

static flc_status train_no_data(const flc_task *task, flc_update *out, void *user)
{
    (void)task;
    (void)out;
    (void)user;
    return FLC_ERR_DATASET;
}

/* A plug-in's FLC_ERR_DATASET fails its round, as any plug-in status does, and the client stays
 * for the next task (the device may skip a round for reasons of its own): only the built-in
 * trainer's unfit samples end the run. */
static void test_plugin_dataset_status_fails_round_only(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_no_data, s.lb);
    session_run(&s, &cfg, 0);
    flp_msg *e = session_expect(&s, FLP_ERROR, 5000, "");
    assert_int_equal(e->error.code, FLC_ERR_DATASET);
    flp_msg_free(e);
    int errors, byes;
    session_drain(&s, &errors, &byes);
    assert_int_equal(byes, 0);
    assert_false(atomic_load(&s.r.done));
    run_stop(&s.r);
    assert_int_equal(s.r.st, FLC_ERR_CANCELLED);
    session_close(&s);
}

/* ---- memory_bytes: a Task too large for the device is refused, and the server told ------------ */

/* The fake server's task is a 43-parameter submodel of mlp:6-5-3 (fd, 4 of 5 hidden units):
 * about 16 x 43 = 688 bytes by flc_core_memory_need. memory_bytes 600 refuses it before the
 * trainer runs (an Error of its round, naming the need and the limit; the client stays), 700
 * takes it. */
static void test_task_above_memory_refused(void **state)
{
    (void)state;
    const uint64_t limits[2] = {600, 700};
    for (int k = 0; k < 2; k++) {
        session s;
        session_open(&s);
        flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
        cfg.memory_bytes = limits[k];
        session_run(&s, &cfg, 0);
        char when[48];
        snprintf(when, sizeof when, "with memory_bytes %llu", (unsigned long long)limits[k]);
        flp_msg *m = session_expect(&s, k == 0 ? FLP_ERROR : FLP_UPDATE, 5000, when);
        assert_int_equal(m->round, s.round);
        if (k == 0) {
            assert_int_equal(m->error.code, FL_ERR_MODEL_SPEC);
            assert_int_equal(m->error.run_id, FAKE_RUN_ID);
            if (!strstr(m->error.message, "task refused: a 43-parameter submodel of mlp:6-5-3 "
                                          "needs about 688 bytes here, above this client's "
                                          "memory_bytes (600)"))
                fail_msg("Error '%s'", m->error.message);
            assert_false(atomic_load(&s.r.done)); /* refused the task, not the server */
        }
        flp_msg_free(m);
        run_stop(&s.r);
        assert_int_equal(flc_client_stats(s.c)->rounds_failed, k == 0 ? 1 : 0);
        session_close(&s);
    }
}

/* A Task refused twice is one round failed when it is the same task sent again (its round and
 * run), but a Task of another run is another task, though its round has the same number (a server
 * started afresh numbers its rounds from 0 again): it was taken for the same one and counted
 * nowhere, rounds_failed 1 for two tasks refused, each told to the server. */
static void test_refused_task_of_another_run_counted(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    cfg.memory_bytes = 600; /* the fake server's 43-parameter submodel needs about 688 */
    session_run(&s, &cfg, 0);
    flp_msg_free(session_expect(&s, FLP_ERROR, 5000, "for the Task refused"));
    flp_msg tm;
    assert_int_equal(fls_core_task(s.core, fl_client_key("dev"), &tm), FL_OK);
    fake_send(&s.f, &tm); /* the same Task again */
    flp_msg *e = session_expect(&s, FLP_ERROR, 5000, "for the Task sent again");
    assert_int_equal(e->error.run_id, FAKE_RUN_ID);
    flp_msg_free(e);
    tm.task.run_id = FAKE_RUN_ID + 1; /* a Task of another run, of the same round */
    fake_send(&s.f, &tm);
    e = session_expect(&s, FLP_ERROR, 5000, "for the Task of another run");
    assert_int_equal(e->error.run_id, FAKE_RUN_ID + 1);
    flp_msg_free(e);
    const flc_stats *st = session_stopped(&s);
    if (st->rounds_failed != 2 || st->tasks_dropped != 0)
        fail_msg("rounds_failed %llu, tasks_dropped %llu (want 2, 0); log:\n%s",
                 (unsigned long long)st->rounds_failed, (unsigned long long)st->tasks_dropped,
                 s.lb->text);
    session_close(&s);
}

/* A device the server admits but will not select (its memory_bytes is below what a submodel
 * needs): the Hello's Ack says how much it needs, in flc_stats.memory_needed, set before the
 * warning, so a log callback can read it there and give up (flc_client_stop), as flc.h says. */
typedef struct gives_up {
    logbuf *lb;
    flc_client *c;
    uint64_t seen; /* memory_needed as the warning's callback saw it */
} gives_up;

static void log_gives_up(void *user, flc_log_level level, const char *msg)
{
    gives_up *g = user;
    log_cb(g->lb, level, msg);
    if (level == FLC_LOG_WARN && strstr(msg, "this client will not be selected")) {
        g->seen = flc_client_stats(g->c)->memory_needed;
        flc_client_stop(g->c);
    }
}

static void test_unselectable_told(void **state)
{
    (void)state;
    fake f;
    fake_open(&f, NULL);
    gives_up g = {logbuf_new(), NULL, 0};
    flc_config cfg = base_config(f.ep, train_plus_quarter, g.lb);
    cfg.log = log_gives_up;
    cfg.log_user = &g;
    cfg.memory_bytes = 1000;
    assert_int_equal(flc_client_new(&cfg, &g.c), FLC_OK);
    runner r;
    run_start(&r, g.c);
    flp_msg *h = fake_expect(&f, FLP_HELLO, 5000);
    if (!h)
        fail_msg("no Hello within 5 s");
    assert_int_equal(h->hello.memory_bytes, 1000);
    flp_msg_free(h);
    flp_msg a = flp_msg_header(FLP_ACK, 0, NULL);
    a.ack.of_type = FLP_HELLO;
    a.ack.detail = "memory_bytes 1000 is below the about 4096 bytes that a submodel of mlp:6-5-3 "
                   "needs: this client will not be selected";
    a.ack.memory_needed = 4096;
    fake_send(&f, &a);
    assert_true(run_wait(&r, 5.0));
    assert_int_equal(r.st, FLC_ERR_CANCELLED);
    assert_int_equal(g.seen, 4096);
    assert_int_equal(flc_client_stats(g.c)->memory_needed, 4096);
    flc_client_free(g.c);
    /* a device that fits reads 0 (an Ack without the field, as from a server before 0.3.2); a
     * log of its own, so that "registered with" below is this client's */
    logbuf_free(g.lb);
    g.lb = logbuf_new();
    g.c = NULL;
    assert_int_equal(flc_client_new(&cfg, &g.c), FLC_OK);
    run_start(&r, g.c);
    fake_hello(&f, 5000, "", g.lb);
    assert_true(log_wait(g.lb, "registered with", 5.0));
    assert_int_equal(flc_client_stats(g.c)->memory_needed, 0);
    run_stop(&r);
    flc_client_free(g.c);
    fake_close(&f);
    logbuf_free(g.lb);
}

/* ---- what a plug-in trainer is told ----------------------------------------------------------- */

typedef struct seen_task {
    char arch[64], sub[160];
    size_t n_params;
    int n_layers, kept0, full0, calls;
} seen_task;

static flc_status train_records(const flc_task *task, flc_update *out, void *user)
{
    seen_task *t = user;
    snprintf(t->arch, sizeof t->arch, "%s", task->arch);
    snprintf(t->sub, sizeof t->sub, "%s", task->sub_arch);
    t->n_params = task->n_params;
    t->n_layers = task->n_layers;
    t->kept0 = task->n_layers ? task->kept_units[0] : -1;
    t->full0 = task->n_layers ? task->full_units[0] : -1;
    t->calls++;
    return train_plus_quarter(task, out, NULL);
}

/* A submodel task (FD on mlp:6-5-3): sub_arch is the submodel's own spec, which parses to the
 * weights the trainer is handed (it was the full model's spec). */
static void test_plugin_task_sub_arch(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    seen_task seen = {0};
    flc_config cfg = base_config(s.f.ep, train_records, s.lb);
    cfg.train_user = &seen;
    session_run(&s, &cfg, 0);
    flp_msg *m = session_expect(&s, FLP_UPDATE, 5000, "after the task");
    flp_msg_free(m);
    run_stop(&s.r);
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.arch, "mlp:6-5-3");
    assert_int_equal(seen.n_layers, 1);
    assert_int_equal(seen.full0, 5);
    assert_true(seen.kept0 >= 1 && seen.kept0 < 5);
    char want[32];
    snprintf(want, sizeof want, "mlp:6-%d-3", seen.kept0);
    assert_string_equal(seen.sub, want);
    flm_arch a;
    char err[128];
    assert_int_equal(flm_arch_parse(seen.sub, &a, err, sizeof err), FL_OK);
    assert_int_equal(a.n_params, seen.n_params);
    session_close(&s);
}

/* ---- max_rounds waits for the last update's Ack ----------------------------------------------- */

/* ... whatever the Ack says: accepted, late (the round had closed) or refused (a count above the
 * server's bound, say), each counted as such, so a device that reads its stats can tell. */
static void test_max_rounds_counts_last_ack(void **state)
{
    (void)state;
    const int32_t acks[] = {0, FL_ERR_WIRE_LIMIT, FL_ERR_ROUND_CLOSED};
    for (size_t k = 0; k < sizeof acks / sizeof acks[0]; k++) {
        session s;
        session_open(&s);
        flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
        cfg.max_rounds = 1;
        session_run(&s, &cfg, 0);

        const uint32_t n = session_update_chunks(&s);
        for (uint32_t i = 0; i < n; i++) /* credits for every chunk */
            fake_ack(&s.f, FLP_CHUNK, s.round, 0);
        for (uint32_t i = 0; i < n; i++) {
            char when[48];
            snprintf(when, sizeof when, "%u of %u", i, n);
            flp_msg *cm = session_expect(&s, FLP_CHUNK, 5000, when);
            flp_msg_free(cm);
        }
        /* The server takes its time to commit: the client must still be there to hear the Ack. */
        const struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
        assert_false(atomic_load(&s.r.done));
        fake_ack(&s.f, FLP_UPDATE, s.round, acks[k]);
        flp_msg *b = session_expect(&s, FLP_BYE, 3000, "after max_rounds");
        flp_msg_free(b);
        assert_true(run_wait(&s.r, 3.0));
        assert_int_equal(s.r.st, FLC_OK);
        const flc_stats *st = flc_client_stats(s.c);
        assert_int_equal(st->rounds_trained, 1);
        assert_int_equal(st->updates_sent, 1);
        assert_int_equal(st->updates_accepted, acks[k] == 0);
        assert_int_equal(st->updates_refused, acks[k] == FL_ERR_WIRE_LIMIT);
        assert_int_equal(st->updates_late, acks[k] == FL_ERR_ROUND_CLOSED);
        session_close(&s);
    }
}

/* ---- an update out of the server's aggregation range ------------------------------------------ */

/* Ack(of UPDATE, FL_ERR_AGG_RANGE): a plug-in trainer moved a weight further than the server
 * aggregates (fedrop's: |w - w0| <= 1024). The log said only "update refused: update value
 * outside the aggregation range": not which change is too large nor the bound, so a device
 * maker with a wrong learning rate had nothing to go on. Without a detail it now says the default
 * bound; from a server that says where (fedrop's since 2026-12-08: the Ack's detail names the
 * tensor, the element, its value and the bound) it passes that on instead, and the default bound,
 * which the server's words replace, is not said. Counted refused; the session goes on. */
static void test_agg_range_refusal_explained(void **state)
{
    (void)state;
    const char *const why =
        "tensor dense0.w element 28 is 2000, beyond the bound 1024 (|w - w0| at most)";
    for (int k = 0; k < 2; k++) {
        session s;
        session_open(&s);
        flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
        session_run(&s, &cfg, 0);
        const uint32_t n = session_update_chunks(&s);
        for (uint32_t i = 0; i < n; i++)
            fake_ack(&s.f, FLP_CHUNK, s.round, 0);
        for (uint32_t i = 0; i < n; i++) {
            flp_msg *cm = session_expect(&s, FLP_CHUNK, 5000, "a chunk of the update");
            flp_msg_free(cm);
        }
        fake_ack_said(&s.f, FLP_UPDATE, s.round, FL_ERR_AGG_RANGE, k ? why : "");
        char said[512];
        if (k)
            snprintf(said, sizeof said, "round %llu: update refused: %s (a weight moved further "
                     "from the task's than the server aggregates): the server says: %s\n",
                     (unsigned long long)s.round, fl_strerror(FL_ERR_AGG_RANGE), why);
        else
            snprintf(said, sizeof said, "round %llu: update refused: %s (a weight moved further "
                     "from the task's than the server aggregates: fedrop's server takes |w - w0| "
                     "up to 1024 a coordinate by default)", (unsigned long long)s.round,
                     fl_strerror(FL_ERR_AGG_RANGE));
        if (!log_wait(s.lb, said, 5.0))
            fail_msg("not said: %s\nlog:\n%s", said, s.lb->text);
        if (k)
            assert_null(strstr(s.lb->text, "by default"));
        assert_false(atomic_load(&s.r.done));
        const flc_stats *st = flc_client_stats(s.c);
        assert_int_equal(st->updates_sent, 1);
        assert_int_equal(st->updates_refused, 1);
        run_stop(&s.r);
        session_close(&s);
    }
}

/* ---- an upload the server took its slot back from -------------------------------------------- */

/* The server ends an upload part-way (Ack(of UPDATE, FL_ERR_TIMEOUT): too slow to finish before
 * the round's deadline while others waited for its slot). The client logs why, in the server's
 * words, counts it refused, sends none of that update again (not even on a stray credit) and
 * keeps its session, waiting for its next Task as after any refusal. bytes_up holds the chunks
 * that went. */
static void test_update_slot_taken_back(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    session_run(&s, &cfg, 0);
    const uint32_t n = session_update_chunks(&s);
    assert_true(n > 2);
    uint64_t bytes = 0;
    for (int i = 0; i < 2; i++) { /* two chunks of it, then no more credit */
        fake_ack(&s.f, FLP_CHUNK, s.round, 0);
        flp_msg *cm = session_expect(&s, FLP_CHUNK, 5000, "for a credit");
        bytes += cm->chunk.payload_len;
        flp_msg_free(cm);
    }
    const char *why = "upload too slow to finish before the round's deadline while other "
                      "updates wait for a slot (2 of 9 chunks in 12 s; 3 s left): update dropped";
    fake_ack_said(&s.f, FLP_UPDATE, s.round, FL_ERR_TIMEOUT, why);
    char said[512];
    snprintf(said, sizeof said, "round %llu: update refused: %s: the server says: %s",
             (unsigned long long)s.round, fl_strerror(FL_ERR_TIMEOUT), why);
    if (!log_wait(s.lb, said, 5.0))
        fail_msg("not said: %s\nlog:\n%s", said, s.lb->text);
    fake_ack(&s.f, FLP_CHUNK, s.round, 0); /* a credit that crossed the Ack: unused */
    flp_msg *m;
    while ((m = fake_recv(&s.f, 500))) { /* heartbeats only (skipped by fake_recv) */
        fail_msg("the client sent %s after its update was ended; log:\n%s",
                 flp_type_name(m->type), s.lb->text);
    }
    assert_false(atomic_load(&s.r.done)); /* not fatal: the session goes on */
    const flc_stats *st = flc_client_stats(s.c);
    assert_int_equal(st->updates_sent, 1);
    assert_int_equal(st->updates_refused, 1);
    assert_int_equal(st->updates_accepted, 0);
    /* the two chunks that went (bytes_up counted an update's chunks only once the last went:
     * here 0, for an update counted in updates_sent) */
    assert_int_equal(st->bytes_up, bytes);
    run_stop(&s.r);
    session_close(&s);
}

/* ---- a trained round whose update never went out counts as trained, not sent ------------------ */

static void test_trained_not_sent(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    session_run(&s, &cfg, 0);
    /* The Update goes out, but the server gives no credit for its chunks. */
    flp_msg *u = session_expect(&s, FLP_UPDATE, 5000, "");
    flp_msg_free(u);
    const flc_stats *st = session_stopped(&s);
    assert_int_equal(st->rounds_trained, 1);
    assert_int_equal(st->updates_sent, 0);
    assert_int_equal(st->updates_accepted, 0);
    session_close(&s);
}

/* ---- stop interrupts the built-in trainer ------------------------------------------------------ */

static void test_stop_interrupts_training(void **state)
{
    (void)state;
    /* 20,000 samples and 100,000 epochs: untouched, the built-in trainer would run for hours. */
    enum { N = 20000, F = 6 };
    float *x = malloc((size_t)N * F * sizeof *x);
    int32_t *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (int i = 0; i < N; i++) {
        y[i] = i % 3;
        for (int j = 0; j < F; j++)
            x[i * F + j] = (float)((i * 7 + j * 3) % 11) / 11.0f;
    }
    const flc_samples samples = {x, NULL, y, N, F};
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, NULL, s.lb);
    cfg.samples = &samples;
    session_run(&s, &cfg, 100000);
    /* The task is in: stop once the client has started training (its debug line), and a little
     * more, so that the trainer is well inside its epochs. */
    const double until = fl_time_mono_s() + 30.0;
    while (log_count(s.lb, "training a ") == 0 && fl_time_mono_s() < until) {
        const struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(log_count(s.lb, "training a "), 1);
    const struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_false(atomic_load(&s.r.done));
    flc_client_stop(s.c);
    if (!run_wait(&s.r, 20.0))
        fail_msg("flc_client_run still training 20 s after flc_client_stop; log:\n%s", s.lb->text);
    assert_int_equal(s.r.st, FLC_ERR_CANCELLED);
    assert_int_equal(log_count(s.lb, "local training stopped"), 1);
    /* A training cut short by stop is no failure to report: the server hears Bye, no Error. */
    int errors, byes;
    session_drain(&s, &errors, &byes);
    assert_int_equal(errors, 0);
    assert_int_equal(byes, 1);
    assert_int_equal(flc_client_stats(s.c)->rounds_trained, 0);
    session_close(&s);
    free(x);
    free(y);
}

/* ---- a plug-in training that ends after stop: counted, not reported -------------------------- */

/* What the two plug-ins below share with the test: started is set once the training runs; quit is
 * the device's own reason to stop, which train_until_quit watches. */
typedef struct plugin_flags {
    atomic_int started, quit;
} plugin_flags;

/* Waits up to 5 s for the plug-in to start training. */
static void wait_started(plugin_flags *pf, logbuf *lb)
{
    const double end = fl_time_mono_s() + 5.0;
    while (!atomic_load(&pf->started) && fl_time_mono_s() < end) {
        const struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!atomic_load(&pf->started))
        fail_msg("the plug-in trainer never started; log:\n%s", lb->text);
}

/* A session whose client trains with plug-in fn (user pf), once fn has started its first task. */
static void session_with_plugin(session *s, plugin_flags *pf, flc_train_fn fn)
{
    session_open(s);
    flc_config cfg = base_config(s->f.ep, fn, s->lb);
    cfg.train_user = pf;
    session_run(s, &cfg, 0);
    wait_started(pf, s->lb);
}

/* A plug-in that ignores stop: trains for 0.6 s whatever happens, then succeeds. */
static flc_status train_slowly(const flc_task *task, flc_update *out, void *user)
{
    plugin_flags *pf = user;
    atomic_store(&pf->started, 1);
    const struct timespec ts = {0, 600 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return train_plus_quarter(task, out, NULL);
}

/* flc_stats.rounds_trained counts local trainings that finished, "whatever became of the update":
 * one that finishes after flc_client_stop (its update never goes out) counts too. */
static void test_stop_counts_finished_training(void **state)
{
    (void)state;
    session s;
    plugin_flags pf = {0, 0};
    session_with_plugin(&s, &pf, train_slowly);
    flc_client_stop(s.c); /* the plug-in is mid-training: run returns once it does */
    if (!run_wait(&s.r, 5.0))
        fail_msg("flc_client_run did not return; log:\n%s", s.lb->text);
    assert_int_equal(s.r.st, FLC_ERR_CANCELLED);
    const flc_stats *st = flc_client_stats(s.c);
    assert_int_equal(st->rounds_trained, 1);
    assert_int_equal(st->updates_sent, 0);
    session_close(&s);
}

/* ---- a plug-in that returns FLC_ERR_CANCELLED for the device's reason to stop ------------------ */

/* flc.h: a plug-in watches the device's own reason for calling stop and returns
 * FLC_ERR_CANCELLED. */
static flc_status train_until_quit(const flc_task *task, flc_update *out, void *user)
{
    (void)task;
    (void)out;
    plugin_flags *pf = user;
    atomic_store(&pf->started, 1);
    while (!atomic_load(&pf->quit)) {
        const struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return FLC_ERR_CANCELLED;
}

/* The device decides to quit: its plug-in sees it and returns FLC_ERR_CANCELLED, and the device
 * calls flc_client_stop a moment later. A training cut short is not reported to the server as a
 * failure (flc.h): the server hears Bye, no Error. */
static void test_plugin_cancel_not_reported(void **state)
{
    (void)state;
    session s;
    plugin_flags pf = {0, 0};
    session_with_plugin(&s, &pf, train_until_quit);
    atomic_store(&pf.quit, 1); /* the device's reason to stop ... */
    const struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    flc_client_stop(s.c);      /* ... and its call to stop, a moment later */
    if (!run_wait(&s.r, 5.0))
        fail_msg("flc_client_run did not return; log:\n%s", s.lb->text);
    assert_int_equal(s.r.st, FLC_ERR_CANCELLED);
    int errors, byes;
    session_drain(&s, &errors, &byes);
    if (errors)
        fail_msg("the server was told the round failed; log:\n%s", s.lb->text);
    assert_int_equal(byes, 1);
    assert_int_equal(flc_client_stats(s.c)->rounds_trained, 0);
    session_close(&s);
}

/* A plug-in that polls flc_task_cancelled (flc.h) between its steps; quit says it saw it. It
 * would run forever otherwise. */
static flc_status train_until_task_cancelled(const flc_task *task, flc_update *out, void *user)
{
    (void)out;
    plugin_flags *pf = user;
    if (flc_task_cancelled(task)) /* not at the start */
        return FLC_ERR_INTERNAL;
    atomic_store(&pf->started, 1);
    while (!flc_task_cancelled(task)) {
        const struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&pf->quit, 1);
    return FLC_ERR_CANCELLED;
}

/* flc_client_stop while a plug-in trains: flc_task_cancelled turns 1, the plug-in returns, and
 * flc_client_run with it; the server hears Bye, no Error. The version the library says is the
 * header's. */
static void test_plugin_polls_task_cancelled(void **state)
{
    (void)state;
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", FLC_VERSION_MAJOR, FLC_VERSION_MINOR, FLC_VERSION_PATCH);
    assert_string_equal(flc_version(), v);
    assert_int_equal(flc_version_number(), FLC_VERSION_NUMBER);
    assert_int_equal(flc_task_cancelled(NULL), 0);
    session s;
    plugin_flags pf = {0, 0};
    session_with_plugin(&s, &pf, train_until_task_cancelled);
    flc_client_stop(s.c);
    if (!run_wait(&s.r, 5.0))
        fail_msg("flc_client_run did not return; log:\n%s", s.lb->text);
    assert_int_equal(s.r.st, FLC_ERR_CANCELLED);
    assert_int_equal(atomic_load(&pf.quit), 1);
    int errors, byes;
    session_drain(&s, &errors, &byes);
    if (errors)
        fail_msg("the server was told the round failed; log:\n%s", s.lb->text);
    assert_int_equal(byes, 1);
    assert_int_equal(flc_client_stats(s.c)->tasks_dropped, 1);
    session_close(&s);
}

/* flc_key_file_read: keygen's files read back, the other kind refused, and what is wrong said
 * with the file's name. */
static void test_key_file_read(void **state)
{
    (void)state;
    key_trio k;
    key_trio_new(&k);
    char dir[] = "/tmp/test_client_keysXXXXXX";
    assert_non_null(mkdtemp(dir));
    char pub[600], sec[600], bad[600], z[41], why[600];
    snprintf(pub, sizeof pub, "%s/dev.pub", dir);
    snprintf(sec, sizeof sec, "%s/dev.secret", dir);
    snprintf(bad, sizeof bad, "%s/bad.pub", dir);
    FILE *f = fopen(pub, "w");
    assert_non_null(f);
    fprintf(f, "# fedrop CURVE public key (Z85). Written by fl_server keygen.\n%s\n", k.cpub);
    fclose(f);
    f = fopen(sec, "w");
    assert_non_null(f);
    fprintf(f, "# fedrop CURVE secret key (Z85). Written by fl_server keygen.\r\n\n%s\r\n", k.csec);
    fclose(f);
    f = fopen(bad, "w");
    assert_non_null(f);
    fprintf(f, "# a note\nnot a key\n");
    fclose(f);
    assert_int_equal(flc_key_file_read(pub, 0, z, why, sizeof why), FLC_OK);
    assert_string_equal(z, k.cpub);
    assert_int_equal(flc_key_file_read(sec, 1, z, why, sizeof why), FLC_OK);
    assert_string_equal(z, k.csec);
    assert_int_equal(flc_key_file_read(sec, 0, z, why, sizeof why), FLC_ERR_AUTH);
    assert_non_null(strstr(why, sec));
    assert_int_equal(flc_key_file_read(bad, 0, z, why, sizeof why), FLC_ERR_AUTH);
    assert_non_null(strstr(why, "not a 40-character Z85 key"));
    assert_int_equal(flc_key_file_read("/nonexistent/x.pub", 0, z, why, sizeof why), FLC_ERR_IO);
    assert_non_null(strstr(why, "/nonexistent/x.pub"));
    assert_int_equal(flc_key_file_read(NULL, 0, z, NULL, 0), FLC_ERR_INVALID_ARG);
    unlink(pub);
    unlink(sec);
    unlink(bad);
    rmdir(dir);
}

/* ---- a Task that came in while training replaces the task being trained ---------------------- */

/* Its first training waits for the test's go (quit), then reports 11 samples; later ones train at
 * once and report 22. */
static flc_status train_first_held(const flc_task *task, flc_update *out, void *user)
{
    plugin_flags *pf = user;
    const int first = !atomic_exchange(&pf->started, 1);
    while (first && !atomic_load(&pf->quit)) {
        const struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    const flc_status st = train_plus_quarter(task, out, NULL);
    out->n_samples = first ? 11 : 22;
    return st;
}

/* Lets train_first_held's held first training end, then: the first Update the server hears is
 * the second training's (22 samples), not the first's (11: `held`, e.g. "the held training's"),
 * and the client, stopped, counts two trainings. */
static void release_held_expect_second(session *s, plugin_flags *pf, const char *held)
{
    atomic_store(&pf->quit, 1);
    flp_msg *u = session_expect(s, FLP_UPDATE, 5000, "for the second task");
    if (u->update.n_samples != 22)
        fail_msg("the first Update is %s (%llu samples); log:\n%s", held,
                 (unsigned long long)u->update.n_samples, s->lb->text);
    flp_msg_free(u);
    run_stop(&s->r);
    assert_int_equal(flc_client_stats(s->c)->rounds_trained, 2);
}

/* The server tasks the client again while it trains (it was restarted, for a new run or resumed
 * to replay the round, and the client re-registered in the same session): that Task replaces the
 * one being trained (PROTOCOL.md), so the training's Update never goes out. Sent, it would answer
 * the new task's round with another task's training: the server could take it in the new task's
 * place (and refuse the client's real update as a duplicate), or refuse it with an Ack that, matched
 * by round only, ends the real update's upload. The first Update the server hears is the new
 * task's (22 samples). */
static void test_replaced_task_not_uploaded(void **state)
{
    (void)state;
    session s;
    plugin_flags pf = {0, 0};
    session_with_plugin(&s, &pf, train_first_held);
    fake_task(&s.f, s.core); /* queued by the client while it trains */
    if (!log_wait(s.lb, "a Task came in while the trainer runs: kept for when it returns", 10))
        fail_msg("the client did not say it kept the Task; log:\n%s", s.lb->text);
    release_held_expect_second(&s, &pf, "the replaced task's");
    assert_int_equal(flc_client_stats(s.c)->tasks_dropped, 2); /* the replaced training, and the
                                                                  * second's upload, cut by the stop
                                                                  * (no credits came) */
    assert_int_equal(log_count(s.lb, "replaced by a Task that came in meanwhile"), 1);
    session_close(&s);
}

/* A server that ignores its downlink flow control while the client trains (an honest one sends a
 * Task that comes in meanwhile one chunk before its first Ack): what it sends is held for after
 * the training, and was held whatever its size, up to 4096 messages of up to 16 MiB each (64
 * GiB). Now at most 64 MiB of chunk payloads are held; what does not fit is dropped and said
 * once (warn), and the client trains and serves on. Here 12 chunks of 8 MiB (96 MiB) for a round
 * of the server's, sent while the first training is held. */
static void test_flood_while_training_bounded(void **state)
{
    (void)state;
    session s;
    plugin_flags pf = {0, 0};
    session_with_plugin(&s, &pf, train_first_held);
    enum { BIG = 8 << 20 };
    uint8_t *junk = calloc(1, BIG);
    assert_non_null(junk);
    for (int i = 0; i < 12; i++) {
        flp_msg cm = flp_msg_header(FLP_CHUNK, s.round + 100, NULL);
        cm.chunk = (flp_chunk){FLP_DIR_DOWN, 0, (uint32_t)i, (uint64_t)i * 7, 7, BIG, junk};
        fake_send(&s.f, &cm);
    }
    free(junk);
    const int said = log_wait(s.lb, "than its flow control allows", 10);
    assert_false(atomic_load(&s.r.done));
    atomic_store(&pf.quit, 1); /* the held training ends: its update goes out */
    flp_msg *u = session_expect(&s, FLP_UPDATE, 5000, "after the held training");
    flp_msg_free(u);
    run_stop(&s.r);
    if (!said || log_count(s.lb, "than its flow control allows") != 1)
        fail_msg("not said once; log:\n%s", s.lb->text);
    session_close(&s);
}

/* Sends client "dev" the Task of core's open round, and all of its weight chunks, as a Task of
 * round `round` of the same run (the server's next round, as the client sees it). */
static void fake_task_as_round(fake *f, fls_core *core, uint64_t round)
{
    const uint32_t key = fl_client_key("dev");
    flp_msg tm;
    assert_int_equal(fls_core_task(core, key, &tm), FL_OK);
    tm.round = round;
    fake_send(f, &tm);
    const size_t cap = fls_core_task_chunk_bound(core);
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    for (uint32_t t = 0; t < tm.task.n_tensors; t++)
        for (uint32_t i = 0; i < tm.task.tensors[t].n_chunks; i++) {
            flp_msg cm = flp_msg_header(FLP_CHUNK, round, NULL);
            size_t len;
            assert_int_equal(fls_core_task_chunk(core, key, t, i, buf, cap, &len, &cm.chunk),
                             FL_OK);
            fake_send(f, &cm);
        }
    free(buf);
}

/* Its first training moves every weight by 0.25, then holds until flc_task_cancelled turns 1 (quit
 * says it saw it) and returns FLC_OK all the same: the cancel came after its last step. Later
 * trainings return the weights as received (a zero delta). */
static flc_status train_first_cancelled_after_last_step(const flc_task *task, flc_update *out,
                                                        void *user)
{
    plugin_flags *pf = user;
    out->n_samples = 3;
    out->loss = 1.5;
    if (atomic_exchange(&pf->started, 1))
        return FLC_OK;
    for (size_t i = 0; i < task->n_params; i++)
        out->weights[i] += 0.25f;
    const double end = fl_time_mono_s() + 20.0;
    while (!flc_task_cancelled(task) && fl_time_mono_s() < end) {
        const struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&pf->quit, flc_task_cancelled(task));
    return FLC_OK;
}

/* A training cancelled after its trainer's last step (here a Task of the server's next round
 * that replaces it) is not sent, and leaves the error-feedback residual as it was before it
 * (flc.h). It changed it: the update was encoded, its top-k residual stored, and then not sent,
 * so the next round's update carried the mass of an update the server never saw. The next task
 * trains a zero delta: from a residual left as it was (zero), its update decodes to zeros. */
static void test_cancel_after_last_step_keeps_residual(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    plugin_flags pf = {0, 0};
    flc_config cfg = base_config(s.f.ep, train_first_cancelled_after_last_step, s.lb);
    cfg.train_user = &pf;
    cfg.heartbeat_ms = 100;
    session_hello(&s, &cfg);
    fake_core_new_codec(&s.core, 0, 0.0, "topk0.3+q8+zstd");
    s.round = fake_task(&s.f, s.core);
    wait_started(&pf, s.lb);
    const uint64_t next = s.round + 1;
    fake_task_as_round(&s.f, s.core, next); /* replaces the task being trained */
    flp_msg *u = session_expect(&s, FLP_UPDATE, 10000, "for the replacing task");
    if (u->round != next)
        fail_msg("the first Update is of round %llu, not of the replacing task's %llu; log:\n%s",
                 (unsigned long long)u->round, (unsigned long long)next, s.lb->text);
    assert_int_equal(atomic_load(&pf.quit), 1);
    uint32_t n = 0;
    for (uint32_t t = 0; t < u->update.n_tensors; t++)
        n += u->update.tensors[t].n_chunks;
    flp_msg_free(u);
    for (uint32_t i = 0; i < n; i++)
        fake_ack(&s.f, FLP_CHUNK, next, 0); /* credits */
    flz_ctx *z = NULL;
    assert_int_equal(flz_ctx_new(NULL, &z), FL_OK);
    for (uint32_t i = 0; i < n; i++) {
        flp_msg *cm = session_expect(&s, FLP_CHUNK, 5000, "of the update");
        float v[64];
        assert_true(cm->chunk.count <= 64);
        assert_int_equal(flz_decode(z, cm->chunk.payload, cm->chunk.payload_len, v,
                                    cm->chunk.count), FL_OK);
        for (uint32_t j = 0; j < cm->chunk.count; j++)
            if (v[j] != 0.0f)
                fail_msg("the update of a zero delta holds %g (tensor %u, element %llu): the "
                         "cancelled training's residual; log:\n%s", v[j], cm->chunk.tensor,
                         (unsigned long long)(cm->chunk.offset + j), s.lb->text);
        flp_msg_free(cm);
    }
    flz_ctx_free(z);
    const flc_stats *st = session_stopped(&s);
    assert_int_equal(st->rounds_trained, 2); /* a plug-in's success counts (flc.h) */
    assert_int_equal(st->updates_sent, 1);
    assert_int_equal(log_count(s.lb, "the error-feedback residual is as before it"), 1);
    session_close(&s);
}

/* Its first training waits for the test's go (quit), noting in started 2 whether
 * flc_task_cancelled turned 1 meanwhile; it then trains as train_plus_quarter. */
static flc_status train_first_held_watching(const flc_task *task, flc_update *out, void *user)
{
    plugin_flags *pf = user;
    const int first = !atomic_exchange(&pf->started, 1);
    while (first && !atomic_load(&pf->quit)) {
        if (flc_task_cancelled(task))
            atomic_store(&pf->started, 2);
        const struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return train_plus_quarter(task, out, NULL);
}

/* A server that ignores its flow control fills the queue of messages held while the client
 * trains (4,096), then sends a Task: that Task cannot be held, and is dropped as the rest that
 * does not fit is (said once, at warn). It cancelled the training all the same: the training it
 * was to replace was cut short (flc_task_cancelled 1; the built-in trainer stopped) for a Task
 * that is never trained. Now a Task dropped cancels nothing: the held training goes on, and its
 * update goes out. */
static void test_dropped_task_cancels_nothing(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    /* The fake's ROUTER would drop what is above its 1,000 (a listener takes its options when it
     * binds): one without that bound in its place. */
    zmq_close(s.f.router);
    fake_router(&s.f, NULL);
    const int unlimited = 0;
    assert_int_equal(zmq_setsockopt(s.f.router, ZMQ_SNDHWM, &unlimited, sizeof unlimited), 0);
    assert_int_equal(zmq_bind(s.f.router, "tcp://127.0.0.1:*"), 0);
    size_t epn = sizeof s.f.ep;
    assert_int_equal(zmq_getsockopt(s.f.router, ZMQ_LAST_ENDPOINT, s.f.ep, &epn), 0);
    plugin_flags pf = {0, 0};
    flc_config cfg = base_config(s.f.ep, train_first_held_watching, s.lb);
    cfg.train_user = &pf;
    cfg.liveness_ms = 60000;
    session_run(&s, &cfg, 0);
    wait_started(&pf, s.lb);
    uint8_t junk[16] = {0};
    for (int i = 0; i < 4096; i++) { /* the queue's room, in chunks of a round never tasked */
        flp_msg cm = flp_msg_header(FLP_CHUNK, s.round + 100, NULL);
        cm.chunk = (flp_chunk){FLP_DIR_DOWN, 0, (uint32_t)i, (uint64_t)i * 7, 7, sizeof junk,
                               junk};
        fake_send(&s.f, &cm);
    }
    fake_task_as_round(&s.f, s.core, s.round + 1); /* does not fit: dropped */
    if (!log_wait(s.lb, "than its flow control allows", 20))
        fail_msg("the dropped Task was not said; log:\n%s", s.lb->text);
    const struct timespec ts = {0, 200 * 1000 * 1000}; /* its chunks, dropped too */
    nanosleep(&ts, NULL);
    const int cancelled = atomic_load(&pf.started) == 2;
    atomic_store(&pf.quit, 1);
    if (cancelled)
        fail_msg("a Task that was dropped cancelled the training; log:\n%s", s.lb->text);
    flp_msg *u = session_expect(&s, FLP_UPDATE, 10000, "of the held training");
    assert_int_equal(u->round, s.round);
    flp_msg_free(u);
    const flc_stats *st = session_stopped(&s);
    assert_int_equal(st->rounds_trained, 1);
    assert_int_equal(log_count(s.lb, "than its flow control allows"), 1);
    assert_int_equal(log_count(s.lb, "replaced by a Task"), 0);
    session_close(&s);
}

/* Its first training polls flc_task_cancelled until it turns 1 (quit says it saw it), then
 * returns FLC_ERR_CANCELLED; later ones train at once. */
static flc_status train_first_until_cancelled(const flc_task *task, flc_update *out, void *user)
{
    plugin_flags *pf = user;
    if (atomic_exchange(&pf->started, 1))
        return train_plus_quarter(task, out, NULL);
    const double end = fl_time_mono_s() + 20.0; /* not for ever, should the flag never turn */
    while (!flc_task_cancelled(task) && fl_time_mono_s() < end) {
        const struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&pf->quit, flc_task_cancelled(task));
    return FLC_ERR_CANCELLED;
}

/* flc_task_cancelled turns 1, without flc_client_stop, once the training's result will not be
 * used (flc.h): its session is over (Bye("restart"), Error(unknown client)) or a Task came in
 * that replaces it. A plug-in that polls it then stops within moments; before, the flag was set
 * for a plug-in only by flc_client_stop, and it trained on to the end for nothing. That
 * cancelled training is no failed round: the server hears no Error. */
static void test_plugin_task_cancelled_when_dropped(void **state)
{
    (void)state;
    const char *hows[] = {"Bye(restart)", "Error(unknown client)", "a new Task"};
    for (int k = 0; k < 3; k++) {
        session s;
        plugin_flags pf = {0, 0};
        session_with_plugin(&s, &pf, train_first_until_cancelled);
        if (k < 2) {
            end_session(&s.f, k);
        } else {
            fake_task(&s.f, s.core);
        }
        const double end = fl_time_mono_s() + 5.0;
        while (!atomic_load(&pf.quit) && fl_time_mono_s() < end) {
            const struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (!atomic_load(&pf.quit))
            fail_msg("after %s, flc_task_cancelled stayed 0 for 5 s; log:\n%s", hows[k],
                     s.lb->text);
        flc_client_stop(s.c);
        if (!run_wait(&s.r, 5.0))
            fail_msg("flc_client_run did not return; log:\n%s", s.lb->text);
        int errors, byes;
        session_drain(&s, &errors, &byes);
        if (errors)
            fail_msg("after %s, the server was told a round failed; log:\n%s", hows[k],
                     s.lb->text);
        assert_int_equal(flc_client_stats(s.c)->rounds_failed, 0);
        session_close(&s);
    }
}

/* Its first training polls flc_task_cancelled until it turns 1 (quit says it saw it), then fails
 * as a device's NPU job torn down under it might: with an error of its own, not
 * FLC_ERR_CANCELLED. */
static flc_status train_first_aborted_when_cancelled(const flc_task *task, flc_update *out,
                                                     void *user)
{
    const flc_status st = train_first_until_cancelled(task, out, user);
    return st == FLC_ERR_CANCELLED ? FLC_ERR_INTERNAL : st;
}

/* A training that fails after the library cancelled it (flc_client_stop, or a Bye("restart") that
 * ends its session) failed with nothing left to use it: the trainer's error is no failure of the
 * device's. Logged at info, not error; the server is not told (rounds_failed 0); and counted as
 * the task dropped it is (tasks_dropped 1). Before, it was logged as an error ("the plug-in
 * trainer failed with status 4") and counted nowhere. */
static void test_failure_after_cancel_dropped(void **state)
{
    (void)state;
    const char *hows[] = {"flc_client_stop", "Bye(restart)"};
    for (int k = 0; k < 2; k++) {
        session s;
        plugin_flags pf = {0, 0};
        session_with_plugin(&s, &pf, train_first_aborted_when_cancelled);
        if (k == 0)
            flc_client_stop(s.c);
        else
            end_session(&s.f, 0);
        const double end = fl_time_mono_s() + 5.0;
        while (!atomic_load(&pf.quit) && fl_time_mono_s() < end) {
            const struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (!atomic_load(&pf.quit))
            fail_msg("after %s, flc_task_cancelled stayed 0 for 5 s; log:\n%s", hows[k],
                     s.lb->text);
        /* the failed training met by the next session, which drops it */
        if (k == 1 && !log_wait(s.lb, "its result is not sent", 5.0))
            fail_msg("the orphaned training was not dropped; log:\n%s", s.lb->text);
        flc_client_stop(s.c);
        if (!run_wait(&s.r, 5.0))
            fail_msg("flc_client_run did not return; log:\n%s", s.lb->text);
        int errors, byes;
        session_drain(&s, &errors, &byes);
        if (errors)
            fail_msg("after %s, the server was told a round failed; log:\n%s", hows[k],
                     s.lb->text);
        if (atomic_load(&s.lb->errors))
            fail_msg("after %s, %d line(s) at error level; log:\n%s", hows[k],
                     atomic_load(&s.lb->errors), s.lb->text);
        const flc_stats *st = flc_client_stats(s.c);
        assert_int_equal(st->rounds_failed, 0);
        assert_int_equal(st->rounds_trained, 0);
        if (st->tasks_dropped != 1)
            fail_msg("after %s, tasks_dropped %llu, not 1; log:\n%s", hows[k],
                     (unsigned long long)st->tasks_dropped, s.lb->text);
        session_close(&s);
    }
}

/* ---- a server that sends garbage ---------------------------------------------------------------- */

/* A weight chunk that does not decode (a server that sends garbage, a payload its codec cannot
 * read): the task can never complete. The server is told at once (an Error of that round, with
 * the codec's status and the Task's run id), the round counts failed here (rounds_failed 1, not
 * tasks_dropped), and the task's other chunks are Acked and dropped without a word. Before, the
 * server was not told (it waited for the round's deadline) and each later chunk logged "round R:
 * Chunk refused: ...". */
static void test_undecodable_chunk_told(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    cfg.heartbeat_ms = 100;
    session_hello(&s, &cfg);
    fake_core_new(&s.core, 0, 0.0);
    const uint32_t key = fl_client_key("dev");
    flp_msg tm;
    assert_int_equal(fls_core_task(s.core, key, &tm), FL_OK);
    fake_send(&s.f, &tm);
    s.round = tm.round;
    const size_t cap = fls_core_task_chunk_bound(s.core);
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    uint32_t sent = 0;
    for (uint32_t t = 0; t < tm.task.n_tensors; t++)
        for (uint32_t i = 0; i < tm.task.tensors[t].n_chunks; i++, sent++) {
            flp_msg cm = flp_msg_header(FLP_CHUNK, tm.round, NULL);
            size_t len;
            assert_int_equal(fls_core_task_chunk(s.core, key, t, i, buf, cap, &len, &cm.chunk),
                             FL_OK);
            if (sent == 0)
                cm.chunk.payload_len--; /* one byte short: not what the codec wrote */
            fake_send(&s.f, &cm);
        }
    free(buf);
    assert_true(sent >= 3);
    flp_msg *e = session_expect(&s, FLP_ERROR, 5000, "about the chunk that does not decode");
    assert_int_equal(e->round, s.round);
    assert_int_equal(e->error.run_id, FAKE_RUN_ID);
    assert_true(e->error.code != 0);
    flp_msg_free(e);
    int errors, byes;
    session_drain(&s, &errors, &byes);
    assert_int_equal(errors, 0);
    if (log_count(s.lb, "refused"))
        fail_msg("the task's other chunks were said refused; log:\n%s", s.lb->text);
    const flc_stats *st = session_stopped(&s);
    assert_int_equal(st->rounds_failed, 1);
    assert_int_equal(st->tasks_dropped, 0);
    assert_int_equal(st->rounds_trained, 0);
    session_close(&s);
}

/* A peer at the endpoint that answers with nothing but what is not a message of this protocol
 * (here frames of random-looking bytes, 50 a second; in the field another ZeroMQ service on the
 * port, a fedrop server of another protocol version, or a TCP service whose bytes libzmq took for
 * its oldest framing): each malformed message kept the session alive and logged a warning (470 in
 * 12 s against a port that sent random bytes), and the client never gave up on the connection.
 * Now one warning a session, the rest at debug level, and the session ends at liveness_ms without
 * a valid message, said as such; the next waits out the backoff. */
static void test_garbage_server_said(void **state)
{
    (void)state;
    fake f;
    fake_open(&f, NULL);
    logbuf *lb = logbuf_new();
    flc_config cfg = base_config(f.ep, train_plus_quarter, lb);
    cfg.heartbeat_ms = 20;
    cfg.liveness_ms = 300;
    cfg.reconnect_min_ms = 50;
    cfg.reconnect_max_ms = 100;
    cfg.log_level = FLC_LOG_INFO; /* what a device's log keeps */
    flc_client *c = NULL;
    assert_int_equal(flc_client_new(&cfg, &c), FLC_OK);
    runner r;
    run_start(&r, c);
    flp_msg_free(fake_expect(&f, FLP_HELLO, 5000)); /* its routing id */
    const char *want = "no valid message from";
    const double end = fl_time_mono_s() + 10.0;
    const uint8_t junk[] = {0x0a, 0xff, 0xff, 0x13, 0x37, 0x00, 0x42};
    int sent = 0;
    while (log_count(lb, want) < 2 && fl_time_mono_s() < end) {
        assert_true(zmq_send(f.router, f.rid, f.rid_len, ZMQ_SNDMORE) >= 0);
        assert_true(zmq_send(f.router, junk, sizeof junk, 0) >= 0);
        sent++;
        flp_msg *m = fake_recv(&f, 20); /* a Hello of the next session: its routing id */
        if (m)
            flp_msg_free(m);
    }
    run_stop(&r);
    const int sessions = log_count(lb, want), warned = log_count(lb, "malformed message from");
    if (sessions < 2 || warned > sessions + 1)
        fail_msg("%d junk messages: '%s' said %d times, 'malformed message' %d times; log:\n%.3000s",
                 sent, want, sessions, warned, lb->text);
    flc_client_free(c);
    logbuf_free(lb);
    fake_close(&f);
}

/* log_cb behind a log that takes 200 us a line at debug level (a device's log written to flash),
 * where those lines are not kept (a flood of them would fill the buffer, and the line awaited
 * would find no room) */
static void slow_log_cb(void *user, flc_log_level level, const char *msg)
{
    if (level == FLC_LOG_DEBUG) {
        const struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
        return;
    }
    log_cb(user, level, msg);
}

/* The same peer, faster than the client reads (its log at debug level takes 200 us a line): its
 * malformed messages never let the client's queue run dry. Each was passed over with a
 * `continue` that skipped the rest of the session loop, the liveness check included, so that
 * such a peer kept the session for ever though it sent no valid message. It is left at
 * liveness_ms too. */
static void test_garbage_flood_left(void **state)
{
    (void)state;
    fake f;
    fake_open(&f, NULL);
    logbuf *lb = logbuf_new();
    flc_config cfg = base_config(f.ep, train_plus_quarter, lb);
    cfg.heartbeat_ms = 20;
    cfg.liveness_ms = 300;
    cfg.log = slow_log_cb;
    flc_client *c = NULL;
    assert_int_equal(flc_client_new(&cfg, &c), FLC_OK);
    runner r;
    run_start(&r, c);
    flp_msg_free(fake_expect(&f, FLP_HELLO, 5000)); /* its routing id */
    const char *want = "no valid message from";
    const double end = fl_time_mono_s() + 10.0;
    const uint8_t junk[] = {0x0a, 0xff, 0xff, 0x13, 0x37, 0x00, 0x42};
    while (log_count(lb, want) < 1 && fl_time_mono_s() < end)
        for (int i = 0; i < 256; i++) { /* a full pipe drops the rest: never blocks */
            assert_true(zmq_send(f.router, f.rid, f.rid_len, ZMQ_SNDMORE) >= 0);
            assert_true(zmq_send(f.router, junk, sizeof junk, 0) >= 0);
        }
    run_stop(&r);
    if (log_count(lb, want) < 1)
        fail_msg("a peer that floods junk kept the session 10 s; log:\n%.3000s", lb->text);
    flc_client_free(c);
    logbuf_free(lb);
    fake_close(&f);
}

/* ---- the Bye of a client whose server is gone does not hold free ------------------------------- */

/* zmq_setsockopt as libflclient.so calls it (this definition takes the place of libzmq's for the
 * shared library, as malloc's above): while g_linger_forever is set, a positive ZMQ_LINGER (the
 * one the client gives a socket whose Bye it sent, flc_client.c's BYE_LINGER_MS) becomes -1, for
 * ever. A linger of 0 (every other close) is left alone. */
typedef int (*zmq_setsockopt_fn)(void *, int, const void *, size_t);
static atomic_int g_linger_forever;

int zmq_setsockopt(void *s, int option, const void *optval, size_t optvallen)
{
    static _Atomic(zmq_setsockopt_fn) real;
    zmq_setsockopt_fn f = atomic_load(&real);
    if (!f) {
        *(void **)&f = dlsym(RTLD_NEXT, "zmq_setsockopt");
        if (!f) {
            errno = ENOSYS;
            return -1;
        }
        atomic_store(&real, f);
    }
    const int forever = -1;
    if (option == ZMQ_LINGER && optvallen == sizeof(int) && atomic_load(&g_linger_forever) &&
        *(const int *)optval > 0)
        optval = &forever;
    return f(s, option, optval, optvallen);
}

/* The server goes away (closed, as a killed one is) while the client is registered; then the
 * device stops and frees the client. The Bye has nowhere to go, so the client does not send it
 * (nor linger on it): flc_client_free (its own context) or the caller's zmq_ctx_term (a shared
 * one) returns. Until the fix they waited out the Bye's linger (1 s then). Here that linger is
 * made endless (zmq_setsockopt above), so a Bye sent to the vanished server would hold free for
 * good (the suite's meson timeout reports the hang); no clock is read. The client must have
 * seen the link drop before the stop: a listener of the test's own takes the server's port, and
 * libzmq's reconnection to it shows that its disconnect event (the monitor's, which the client
 * reads before the Bye) was sent; the listener never answers, so no handshake brings the link
 * back. The Bye to a server that is there still arrives (test_train_failure_reported_and_bye). */
static void test_free_prompt_after_server_gone(void **state)
{
    (void)state;
    for (int shared = 0; shared < 2; shared++) {
        session s;
        session_open(&s);
        void *ctx = shared ? zmq_ctx_new() : NULL;
        flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
        cfg.zmq_context = ctx;
        cfg.reconnect_max_ms = 1000;
        session_run(&s, &cfg, 0);
        flp_msg *u = session_expect(&s, FLP_UPDATE, 5000, ""); /* registered, and trained */
        flp_msg_free(u);
        const char *colon = strrchr(s.f.ep, ':');
        assert_non_null(colon);
        const long port = strtol(colon + 1, NULL, 10);
        assert_true(port > 0 && port < 65536);
        fake_close(&s.f);
        const int lfd = tcp_listener_at((uint16_t)port);
        struct pollfd pl = {lfd, POLLIN, 0};
        if (poll(&pl, 1, 30000) != 1) /* a hang guard: libzmq retries every second at most */
            fail_msg("the client did not connect again after its server went away; log:\n%s",
                     s.lb->text);
        const int fd = accept(lfd, NULL, NULL);
        assert_true(fd >= 0);
        atomic_store(&g_linger_forever, 1);
        flc_client_stop(s.c);
        assert_int_equal(pthread_join(s.r.thread, NULL), 0);
        assert_int_equal(s.r.st, FLC_ERR_CANCELLED);
        flc_client_free(s.c);
        if (ctx)
            zmq_ctx_term(ctx);
        atomic_store(&g_linger_forever, 0);
        close(fd);
        close(lfd);
        fls_core_free(s.core);
        logbuf_free(s.lb);
    }
}

/* ---- a session that ends mid-training: the built-in trainer is cancelled, the client goes on --- */

/* Samples for a built-in training of hours: 20,000 rows of mlp:6-5-3's input. */
static void long_samples(float **x, int32_t **y, flc_samples *out)
{
    enum { N = 20000, F = 6 };
    *x = malloc((size_t)N * F * sizeof **x);
    *y = malloc(N * sizeof **y);
    assert_non_null(*x);
    assert_non_null(*y);
    for (int i = 0; i < N; i++) {
        (*y)[i] = i % 3;
        for (int j = 0; j < F; j++)
            (*x)[i * F + j] = (float)((i * 7 + j * 3) % 11) / 11.0f;
    }
    *out = (flc_samples){*x, NULL, *y, N, F};
}

/* Waits up to 30 s for the client's "training a " debug line (n of them), then 100 ms more. */
static void wait_training_line(session *s, int n)
{
    const double until = fl_time_mono_s() + 30.0;
    while (log_count(s->lb, "training a ") < n && fl_time_mono_s() < until) {
        const struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (log_count(s->lb, "training a ") < n)
        fail_msg("no training started; log:\n%s", s->lb->text);
    const struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* The server restarts while the built-in trainer is inside a training of hours (100,000 epochs):
 * said by Bye("restart"), as fl_server says it, or found by Error(unknown client) on a link
 * ZeroMQ restored. The training's session is over, and its update would go to no one: the client
 * cancels it and registers with the restarted server at once, trains that server's task and
 * uploads it, all within seconds. Before, it trained on until every epoch was done (here hours)
 * before it said Hello again or looked at the new Task, then threw the result away. The cancelled
 * training is no failed round: the server hears no Error, rounds_failed stays 0. Likewise a new
 * Task on the same session (it replaces the task being trained, whose result is dropped): the
 * training is cancelled and the new task trained. */
static void test_session_end_cancels_builtin_training(void **state)
{
    (void)state;
    const char *hows[] = {"Bye(restart)", "Error(unknown client)", "a new Task"};
    for (int k = 0; k < 3; k++) {
        float *x;
        int32_t *y;
        flc_samples samples;
        long_samples(&x, &y, &samples);
        session s;
        session_open(&s);
        flc_config cfg = base_config(s.f.ep, NULL, s.lb);
        cfg.samples = &samples;
        cfg.reconnect_min_ms = 50;
        session_run(&s, &cfg, 100000);
        wait_training_line(&s, 1);
        assert_false(atomic_load(&s.r.done));
        if (k < 2)
            end_session(&s.f, k);
        /* The restarted server: Hello answered, a task of one epoch (milliseconds). Its Update
         * comes within 20 s; the old training had hours to go. No Error before it. */
        fls_core_free(s.core);
        s.core = NULL;
        s.round = k < 2 ? fake_hello_and_task(&s.f, &s.core, 1) : fake_core_task(&s.f, &s.core, 1);
        const double end = fl_time_mono_s() + 20.0;
        flp_msg *u = NULL;
        int errors = 0;
        while (!u && fl_time_mono_s() < end) {
            flp_msg *r = fake_recv(&s.f, 100);
            if (r && r->type == FLP_UPDATE)
                u = r;
            else if (r) {
                errors += r->type == FLP_ERROR;
                flp_msg_free(r);
            }
        }
        if (!u)
            fail_msg("after %s: no Update for the restarted server's task within 20 s; log:\n%s",
                     hows[k], s.lb->text);
        assert_int_equal(u->round, s.round);
        flp_msg_free(u);
        assert_int_equal(errors, 0);
        const flc_stats *st = session_stopped(&s);
        assert_int_equal(st->rounds_trained, 1); /* the new task's; the cancelled one is not */
        assert_int_equal(st->rounds_failed, 0);
        /* the cancelled training, and the new task's upload, cut by the stop (no credits) */
        assert_int_equal(st->tasks_dropped, 2);
        assert_int_equal(log_count(s.lb, "local training stopped"), 1);
        assert_int_equal(log_count(s.lb, k < 2 ? "belongs to is over: it is cancelled"
                                               : "the task it replaces is cancelled"), 1);
        session_close(&s);
        free(x);
        free(y);
    }
}

/* A plug-in trainer cannot be cancelled: when the server restarts (Bye("restart")) during its
 * training, the client reconnects and registers with the restarted server while the plug-in
 * still runs (heartbeats and all), instead of sitting offline until it returns. What it returns
 * then is not sent (its session is over); the restarted server's task, which came in meanwhile,
 * is trained next and is the first Update the server sees (22 samples, not the held training's
 * 11). */
static void test_session_end_plugin_runs_on(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    plugin_flags pf = {0, 0};
    flc_config cfg = base_config(s.f.ep, train_first_held, s.lb);
    cfg.train_user = &pf;
    cfg.reconnect_min_ms = 50;
    session_run(&s, &cfg, 0);
    wait_started(&pf, s.lb);
    flp_msg m = flp_msg_header(FLP_BYE, 0, NULL);
    m.bye.reason = "restart";
    fake_send(&s.f, &m);
    /* Registered again, and tasked, while the first training is still held. */
    fls_core_free(s.core);
    s.core = NULL;
    s.round = fake_hello_and_task(&s.f, &s.core, 0);
    assert_false(atomic_load(&pf.quit));
    release_held_expect_second(&s, &pf, "the held training's");
    assert_int_equal(flc_client_stats(s.c)->rounds_failed, 0);
    assert_int_equal(log_count(s.lb, "the device's trainer runs on"), 1);
    assert_int_equal(log_count(s.lb, "its result is not sent"), 1);
    assert_int_equal(flc_client_stats(s.c)->tasks_dropped, 2); /* the orphaned training, and the
                                                                  * second's upload, cut by the stop
                                                                  * (no credits came) */
    session_close(&s);
}

#ifndef LA_ON /* the library's memory is not counted (ASan, TSan): the tests below check the rest */
#define la_start() ((void)0)
#define la_stop() ((void)0)
#define la_bytes() ((size_t)0)
#endif

/* Sends a Heartbeat to the client every 50 ms, and reads what it sends, until the library's
 * live bytes are at most n (where they are counted, LA_ON; else until its log holds needle) or
 * timeout_s passed: 1 if they came down (the log held it). */
static int heartbeat_until(session *s, size_t n, const char *needle, double timeout_s)
{
#ifdef LA_ON
    (void)needle;
#define HB_DONE() (la_bytes() <= n)
#else
    (void)n;
#define HB_DONE() (!needle || log_count(s->lb, needle) > 0)
#endif
    const double end = fl_time_mono_s() + timeout_s;
    flp_msg hb = flp_msg_header(FLP_HEARTBEAT, 0, NULL);
    while (!HB_DONE() && fl_time_mono_s() < end) {
        fake_send(&s->f, &hb);
        flp_msg *m = fake_recv(&s->f, 50);
        if (m)
            flp_msg_free(m);
    }
    return HB_DONE();
#undef HB_DONE
}

/* A download that will not complete: its round's deadline passed, or its session ended on the
 * same connection (Error(unknown client): a server restarted behind a link ZeroMQ restored), or
 * the client was stopped. The client held the partial task's buffers until its next Task, which
 * may be hours away, and counted it nowhere; now it drops the task, gives the buffers back, and
 * counts it in tasks_dropped. A download that only slowed down (the server's downlink budget is
 * shared round-robin among every client downloading) is kept, however many liveness periods pass
 * without a chunk while the server is heard from: the rest comes, and the client answers. */
static void test_dropped_download_released(void **state)
{
    (void)state;
    const char *hows[] = {"a slow download", "the round's deadline", "Error(unknown client)",
                          "flc_client_stop"};
    for (int k = 0; k < 4; k++) {
        la_start();
        session s;
        session_open(&s);
        flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
        cfg.heartbeat_ms = 50;
        cfg.liveness_ms = k == 1 ? 60000 : 300; /* the deadline (1 s) comes first */
        assert_int_equal(flc_client_new(&cfg, &s.c), FLC_OK);
        const size_t idle = la_bytes();
        run_start(&s.r, s.c);
        fake_hello(&s.f, 5000, "", s.lb);
        fake_core_new(&s.core, 0, k == 1 ? 1.0 : 0.0);
        s.round = fake_task_chunks(&s.f, s.core, 1, 0, 1); /* the Task and its first chunk */
        flp_msg *a = session_expect(&s, FLP_ACK, 5000, "of the first chunk");
        assert_int_equal(a->ack.of_type, FLP_CHUNK);
        flp_msg_free(a);
        const size_t held = la_bytes();
#ifdef LA_ON
        assert_true(held >= idle + 1024); /* the partial task */
#endif
        if (k == 0) {
            /* Heartbeats only for 2 s, about 7 x liveness_ms, no chunk: nothing is dropped */
            (void)heartbeat_until(&s, 0, "the task is dropped", 2.0);
            if (log_count(s.lb, "dropped") != 0)
                fail_msg("a slow download was dropped; log:\n%s", s.lb->text);
#ifdef LA_ON
            assert_true(la_bytes() >= idle + 1024); /* the partial task, kept */
#endif
            fake_task_chunks(&s.f, s.core, 0, 1, UINT32_MAX); /* the rest */
            flp_msg *u = session_expect(&s, FLP_UPDATE, 10000, "once the slow download ends");
            assert_int_equal(u->round, s.round);
            flp_msg_free(u);
            const flc_stats *st = session_stopped(&s);
            /* trained (its update, sent without the credits for its chunks, is cut by the stop) */
            assert_int_equal(st->rounds_trained, 1);
            session_close(&s);
            la_stop();
            continue;
        }
        if (k == 2)
            end_session(&s.f, 1);
        if (k == 3) {
            run_stop(&s.r);
        }
        const char *said[] = {NULL, "the task is dropped", "registering again", NULL};
        if (!heartbeat_until(&s, idle + 1024, said[k], 10.0))
            fail_msg("%s: the library holds %zu bytes 10 s on, %zu before the task, %zu with "
                     "its first chunk; log:\n%s", hows[k], la_bytes(), idle, held, s.lb->text);
        if (k != 3) {
            run_stop(&s.r);
        }
        const flc_stats *st = flc_client_stats(s.c);
        if (st->tasks_dropped != 1)
            fail_msg("%s: tasks_dropped %llu, not 1; log:\n%s", hows[k],
                     (unsigned long long)st->tasks_dropped, s.lb->text);
        assert_int_equal(st->rounds_failed, 0);
        assert_int_equal(st->rounds_trained, 0);
        if (k == 1 && log_count(s.lb, "the task is dropped") != 1)
            fail_msg("%s: not said once; log:\n%s", hows[k], s.lb->text);
        session_close(&s);
        la_stop();
    }
}

/* The server answers an Update with no credit for its chunks and, once its round closed, with no
 * Ack (a send it could not make): the client held the round's buffers (the task's weights, the
 * encoded update) until its next Task. Once the Task's deadline passed, and liveness_ms more, the
 * update is dropped (tasks_dropped, said at warn) and the buffers go back. */
static void test_stuck_upload_dropped(void **state)
{
    (void)state;
    la_start();
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    cfg.heartbeat_ms = 50;
    cfg.liveness_ms = 300;
    assert_int_equal(flc_client_new(&cfg, &s.c), FLC_OK);
    const size_t idle = la_bytes();
    run_start(&s.r, s.c);
    fake_hello(&s.f, 5000, "", s.lb);
    fake_core_new(&s.core, 0, 1.0); /* a round deadline of 1 s */
    s.round = fake_task(&s.f, s.core);
    flp_msg_free(session_expect(&s, FLP_UPDATE, 5000, ""));
    const char *said = "the update is dropped";
    if (!heartbeat_until(&s, idle + 1024, said, 10.0))
        fail_msg("the library holds %zu bytes 10 s on, %zu before the task; log:\n%s", la_bytes(),
                 idle, s.lb->text);
    const flc_stats *st = session_stopped(&s);
    assert_int_equal(st->tasks_dropped, 1);
    assert_int_equal(st->updates_sent, 0);
    assert_int_equal(st->rounds_trained, 1);
    if (log_count(s.lb, said) != 1)
        fail_msg("not said once; log:\n%s", s.lb->text);
    session_close(&s);
    la_stop();
}

/* Sends client "dev" an Error the client only logs ("server error 4 ...: WHAT"), and waits up to
 * 5 s for that line: the client has then handled every message the fake server sent before it. */
static void session_sync(session *s, const char *what)
{
    flp_msg e = flp_msg_header(FLP_ERROR, 99, NULL);
    e.error.code = FL_ERR_INTERNAL;
    e.error.message = what;
    fake_send(&s->f, &e);
    if (!log_wait(s->lb, what, 5.0))
        fail_msg("the client did not take '%s' within 5 s; log:\n%s", what, s->lb->text);
}

/* What deadline_trainer shares with the test: started once it trains, go the test's word to
 * finish, cancelled once it saw flc_task_cancelled turn 1. */
typedef struct deadline_flags {
    atomic_int started, go, cancelled;
    int polls;                 /* 0: it ignores flc_task_cancelled and trains 600 ms */
} deadline_flags;

/* A plug-in that polls flc_task_cancelled (polls 1) until it turns 1, or the test's go, and
 * then returns FLC_ERR_CANCELLED or succeeds; not for ever (20 s). With polls 0, a plug-in that
 * never looks: it trains 600 ms whatever happens, and succeeds. */
static flc_status deadline_trainer(const flc_task *task, flc_update *out, void *user)
{
    deadline_flags *d = user;
    atomic_store(&d->started, 1);
    if (!d->polls) {
        const struct timespec ts = {0, 600 * 1000 * 1000};
        nanosleep(&ts, NULL);
        return train_plus_quarter(task, out, NULL);
    }
    const double end = fl_time_mono_s() + 20.0;
    while (!flc_task_cancelled(task) && !atomic_load(&d->go) && fl_time_mono_s() < end) {
        const struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (flc_task_cancelled(task)) {
        atomic_store(&d->cancelled, 1);
        return FLC_ERR_CANCELLED;
    }
    return train_plus_quarter(task, out, NULL);
}

/* A local training still running once its Task's deadline passed (counted from the Task's
 * arrival): its round is over, and fedrop's server takes no update of a closed round (its core
 * closes the round at the deadline and answers an Update of it with Ack(of UPDATE,
 * FL_ERR_ROUND_CLOSED)). It ran on to its end, and its update went out to be refused as late: the
 * device paid battery and CPU for nothing. Now it is cancelled as a stop cancels it: a plug-in
 * sees flc_task_cancelled turn 1 (k 0); one that does not look trains on, and what it returns is
 * not sent (k 1); the built-in trainer stops before its next batch (k 2, a training of hours).
 * The server hears neither an Update nor an Error (no failure of the device's), the task counts
 * in tasks_dropped (not in updates_sent, so sent = accepted + late + refused holds), and the
 * deadline is said once, at warn. */
static void test_training_past_deadline_cancelled(void **state)
{
    (void)state;
    const char *hows[] = {"a plug-in that polls flc_task_cancelled", "a plug-in that does not",
                          "the built-in trainer"};
    for (int k = 0; k < 3; k++) {
        float *x = NULL;
        int32_t *y = NULL;
        flc_samples samples;
        deadline_flags d = {0, 0, 0, k == 0};
        session s;
        session_open(&s);
        flc_config cfg = base_config(s.f.ep, k < 2 ? deadline_trainer : NULL, s.lb);
        cfg.train_user = &d;
        if (k == 2) {
            long_samples(&x, &y, &samples);
            cfg.samples = &samples;
        }
        cfg.heartbeat_ms = 100;
        cfg.liveness_ms = 60000;
        session_hello(&s, &cfg);
        fake_core_new(&s.core, k == 2 ? 100000 : 0, k == 1 ? 0.05 : 0.3);
        s.round = fake_task(&s.f, s.core);
        /* what shows the training over: the plug-in saw the flag; the one that does not look
         * returned and was dropped; the built-in trainer stopped */
        const char *over = k == 1 ? "the training cancelled at its task's deadline returned"
                                  : "local training stopped";
        const double end = fl_time_mono_s() + 20.0;
        while (!(k == 0 ? atomic_load(&d.cancelled) : log_count(s.lb, over)) &&
               fl_time_mono_s() < end) {
            const struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (!(k == 0 ? atomic_load(&d.cancelled) : log_count(s.lb, over)))
            fail_msg("%s: the training was not cancelled 20 s after its task's deadline; "
                     "log:\n%s", hows[k], s.lb->text);
        /* what the server hears until the client has been quiet for 500 ms */
        int updates = 0, errors = 0;
        flp_msg *m;
        while ((m = fake_recv(&s.f, 500))) {
            updates += m->type == FLP_UPDATE;
            errors += m->type == FLP_ERROR;
            flp_msg_free(m);
        }
        if (updates || errors)
            fail_msg("%s: %d Update(s), %d Error(s) sent for a round past its deadline; "
                     "log:\n%s", hows[k], updates, errors, s.lb->text);
        const flc_stats *st = session_stopped(&s);
        if (st->tasks_dropped != 1 || st->updates_sent != 0 || st->rounds_failed != 0 ||
            st->rounds_trained != (k == 1))
            fail_msg("%s: tasks_dropped %llu, updates_sent %llu, rounds_failed %llu, "
                     "rounds_trained %llu (want 1, 0, 0, %d); log:\n%s", hows[k],
                     (unsigned long long)st->tasks_dropped, (unsigned long long)st->updates_sent,
                     (unsigned long long)st->rounds_failed,
                     (unsigned long long)st->rounds_trained, k == 1, s.lb->text);
        if (log_count(s.lb, "the task's deadline passed (") != 1 ||
            atomic_load(&s.lb->errors))
            fail_msg("%s: the deadline not said once, or said at error level; log:\n%s", hows[k],
                     s.lb->text);
        session_close(&s);
        free(x);
        free(y);
    }
}

/* The session wakes at a deadline of its own, not only at its next heartbeat look: a download
 * whose Task's deadline passed is dropped then (the round is over, and its buffers go back), and
 * a training running past it is cancelled. Here the client's heartbeat look comes 6 days apart
 * (heartbeat_ms INT_MAX / 2) and the server says nothing, so only that wake can act on the 0.5 s
 * deadline; without it the wait below would last into the suite's meson timeout (no clock is
 * read but for the figure printed). Until 2026-12-07 a download's deadline was seen at the next
 * heartbeat look (heartbeat_ms / 2 late at most: 6 days here; 0.5 s at the default
 * heartbeat_ms), and a training's at the session's 50 ms watch, which woke it 20 times a second
 * for as long as any training ran (k 1: a plug-in that polls flc_task_cancelled, and would return
 * only when the test says). */
static void test_own_deadline_wakes(void **state)
{
    (void)state;
    const char *hows[] = {"a download", "a training"};
    for (int k = 0; k < 2; k++) {
        deadline_flags d = {0, 0, 0, 1};
        session s;
        session_open(&s);
        flc_config cfg = base_config(s.f.ep, k ? deadline_trainer : train_plus_quarter, s.lb);
        cfg.train_user = &d;
        cfg.heartbeat_ms = INT_MAX / 2;
        cfg.liveness_ms = INT_MAX;
        session_hello(&s, &cfg);
        fake_core_new(&s.core, 0, 0.5);
        const double t0 = fl_time_mono_s();
        if (k == 0) {
            s.round = fake_task_chunks(&s.f, s.core, 1, 0, 1); /* the Task and its first chunk */
            flp_msg *a = session_expect(&s, FLP_ACK, 5000, "of the first chunk");
            assert_int_equal(a->ack.of_type, FLP_CHUNK);
            flp_msg_free(a);
        } else {
            s.round = fake_task(&s.f, s.core);
        }
        const char *said = k == 0 ? "the task's deadline passed before all its weight chunks"
                                  : "before its training ended";
        while (!log_count(s.lb, said)) { /* a hang is the meson timeout's */
            const struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        print_message("%s: deadline 0.5 s, acted on after %.3f s\n", hows[k],
                      fl_time_mono_s() - t0);
        const flc_stats *st = session_stopped(&s);
        assert_int_equal(st->tasks_dropped, 1);
        assert_int_equal(st->updates_sent, 0);
        session_close(&s);
    }
}

/* A Task that comes in while a training runs is held until the trainer returns; its deadline_ms
 * still counts from its arrival (flc.h). A plug-in that does not poll flc_task_cancelled holds
 * the first training for 1 s; a second Task, deadline 200 ms, and its chunks come in meanwhile.
 * Once the trainer returns, that task's round is over: it is dropped untrained, said once at
 * warn, and the server hears no Update. Until 2026-12-07 the deadline counted from when the held
 * Task was handled, after the training: the task was trained and its Update sent 1.1 s after
 * its Task, to be refused as late. */
static void test_held_task_deadline_from_arrival(void **state)
{
    (void)state;
    session s;
    plugin_flags pf = {0, 0};
    session_with_plugin(&s, &pf, train_first_held);
    flp_msg tm;
    assert_int_equal(fls_core_task(s.core, fl_client_key("dev"), &tm), FL_OK);
    tm.task.deadline_ms = 200;
    fake_send(&s.f, &tm);
    fake_task_chunks(&s.f, s.core, 0, 0, UINT32_MAX);
    if (!log_wait(s.lb, "kept for when it returns", 5))
        fail_msg("the second Task was not held; log:\n%s", s.lb->text);
    const struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    atomic_store(&pf.quit, 1);
    if (!log_wait(s.lb, "before its training could start", 5))
        fail_msg("the held task past its deadline was not dropped; log:\n%s", s.lb->text);
    int updates = 0;
    flp_msg *m;
    while ((m = fake_recv(&s.f, 500))) {
        updates += m->type == FLP_UPDATE;
        flp_msg_free(m);
    }
    const flc_stats *st = session_stopped(&s);
    if (updates || st->rounds_trained != 1 || st->tasks_dropped < 1 || st->updates_sent != 0)
        fail_msg("%d Update(s) sent; rounds_trained %llu (want 1: the held first training), "
                 "tasks_dropped %llu, updates_sent %llu; log:\n%s", updates,
                 (unsigned long long)st->rounds_trained, (unsigned long long)st->tasks_dropped,
                 (unsigned long long)st->updates_sent, s.lb->text);
    if (log_count(s.lb, "before its training could start") != 1 || atomic_load(&s.lb->errors))
        fail_msg("the drop not said once, or something said at error level; log:\n%s",
                 s.lb->text);
    session_close(&s);
}

/* A Task without a deadline (deadline_ms 0: none) is never cancelled so: its training runs until
 * the plug-in ends it, and its update goes out. Two messages the client only logs, each waited
 * for, show that its loop (which looks at the deadline once a turn) ran on meanwhile. */
static void test_training_without_deadline_runs_on(void **state)
{
    (void)state;
    deadline_flags d = {0, 0, 0, 1};
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, deadline_trainer, s.lb);
    cfg.train_user = &d;
    cfg.heartbeat_ms = 100;
    session_hello(&s, &cfg);
    fake_core_new(&s.core, 0, 0.0);
    flp_msg tm;
    assert_int_equal(fls_core_task(s.core, fl_client_key("dev"), &tm), FL_OK);
    tm.task.deadline_ms = 0;
    fake_send(&s.f, &tm);
    s.round = fake_task_chunks(&s.f, s.core, 0, 0, UINT32_MAX);
    const double end = fl_time_mono_s() + 5.0;
    while (!atomic_load(&d.started) && fl_time_mono_s() < end) {
        const struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(atomic_load(&d.started));
    session_sync(&s, "sync one");
    session_sync(&s, "sync two");
    if (atomic_load(&d.cancelled))
        fail_msg("a training without a deadline was cancelled; log:\n%s", s.lb->text);
    atomic_store(&d.go, 1);
    flp_msg *u = session_expect(&s, FLP_UPDATE, 5000, "after the go");
    assert_int_equal(u->round, s.round);
    flp_msg_free(u);
    const flc_stats *st = session_stopped(&s);
    assert_int_equal(st->rounds_trained, 1);
    assert_int_equal(log_count(s.lb, "deadline passed"), 0);
    session_close(&s);
}

/* Fails unless s's client counted sent, accepted, late, refused and dropped (read once its run
 * returned: flc.h). */
static void stats_are(const session *s, uint64_t sent, uint64_t acc, uint64_t late, uint64_t ref,
                      uint64_t dropped)
{
    const flc_stats *st = flc_client_stats(s->c);
    if (st->updates_sent != sent || st->updates_accepted != acc || st->updates_late != late ||
        st->updates_refused != ref || st->tasks_dropped != dropped)
        fail_msg("updates_sent %llu, accepted %llu, late %llu, refused %llu, tasks_dropped %llu "
                 "(want %llu, %llu, %llu, %llu, %llu); log:\n%s",
                 (unsigned long long)st->updates_sent, (unsigned long long)st->updates_accepted,
                 (unsigned long long)st->updates_late, (unsigned long long)st->updates_refused,
                 (unsigned long long)st->tasks_dropped, (unsigned long long)sent,
                 (unsigned long long)acc, (unsigned long long)late, (unsigned long long)ref,
                 (unsigned long long)dropped, s->lb->text);
}

/* An update the client gave up (the upload watch: no credit, and no answer liveness_ms past its
 * Task's deadline) counts in tasks_dropped. The server's answer to it that comes after all (late,
 * refused, or accepted by a server that does not keep to the protocol: the client stopped before
 * its last chunk, so no server has it in full) counted too, in updates_late, updates_refused or
 * updates_accepted, for an update counted in neither updates_sent nor anything but
 * tasks_dropped: one task counted twice, and updates_sent = accepted + late + refused (flc.h)
 * broken. It is now said at info and counted nowhere else. */
static void test_dropped_update_answer_not_counted(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    cfg.heartbeat_ms = 50;
    cfg.liveness_ms = 300;
    session_hello(&s, &cfg);
    fake_core_new(&s.core, 0, 0.2); /* a round deadline of 200 ms: dropped 300 ms after it */
    s.round = fake_task(&s.f, s.core);
    flp_msg_free(session_expect(&s, FLP_UPDATE, 5000, ""));
    const char *said = "the update is dropped";
    const double end = fl_time_mono_s() + 10.0;
    flp_msg hb = flp_msg_header(FLP_HEARTBEAT, 0, NULL);
    while (!log_count(s.lb, said) && fl_time_mono_s() < end) {
        fake_send(&s.f, &hb);
        flp_msg_free(fake_recv(&s.f, 50));
    }
    if (!log_count(s.lb, said))
        fail_msg("the update was not dropped within 10 s; log:\n%s", s.lb->text);
    fake_ack(&s.f, FLP_UPDATE, s.round, FL_ERR_ROUND_CLOSED);
    fake_ack(&s.f, FLP_UPDATE, s.round, FL_ERR_TIMEOUT);
    fake_ack(&s.f, FLP_UPDATE, s.round, 0);
    session_sync(&s, "sync after the answers");
    run_stop(&s.r);
    stats_are(&s, 0, 0, 0, 0, 1);
    if (log_count(s.lb, "this client had given up") != 3)
        fail_msg("the three answers not said so; log:\n%s", s.lb->text);
    session_close(&s);
}

/* One update, one answer counted: the server's answer ends the upload (the rest of its chunks
 * would be dropped, PROTOCOL.md 3), and a second answer for the same update (a server that
 * repeats itself) counted again: Ack(of UPDATE, FL_ERR_ROUND_CLOSED) twice and then an
 * Ack(status 0) made updates_late 2 and updates_accepted 1 of updates_sent 1. An Ack(status 0)
 * that came before the last chunk went out counted in updates_accepted and left the upload
 * running: updates_sent 0 until its last chunk. Each update's first answer now counts, and ends
 * its upload. */
static void test_update_answer_counted_once(void **state)
{
    (void)state;
    for (int status_first = 0; status_first < 2; status_first++) {
        session s;
        session_open(&s);
        flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
        session_run(&s, &cfg, 0);
        flp_msg *u = session_expect(&s, FLP_UPDATE, 5000, "");
        assert_int_equal(u->round, s.round);
        flp_msg_free(u);
        /* no credit given: the upload waits; its answer comes before any chunk */
        const int32_t first = status_first ? FL_ERR_ROUND_CLOSED : 0;
        fake_ack(&s.f, FLP_UPDATE, s.round, first);
        fake_ack(&s.f, FLP_UPDATE, s.round, FL_ERR_ROUND_CLOSED);
        fake_ack(&s.f, FLP_UPDATE, s.round, 0);
        session_sync(&s, "sync after the answers");
        /* the upload is over: a credit now sends no chunk (one would be on its way once the
         * client took the message after the credit) */
        fake_ack(&s.f, FLP_CHUNK, s.round, 0);
        session_sync(&s, "sync after the credit");
        flp_msg *m;
        while ((m = fake_recv(&s.f, 300))) {
            if (m->type == FLP_CHUNK)
                fail_msg("a chunk sent after the update was answered; log:\n%s", s.lb->text);
            flp_msg_free(m);
        }
        run_stop(&s.r);
        stats_are(&s, 1, !status_first, status_first, 0, 0);
        session_close(&s);
    }
}

/* An update being sent when the server says it no longer knows this client (Error(unknown
 * client): it restarted behind a link ZeroMQ restored) belongs to the session that is over, as a
 * download or a training then does: no answer to it can come. It was kept: sent on, chunk by
 * chunk, against credits of its round from the server it registers with next (which has no
 * Update of it open), and its buffers held until its Task's deadline and liveness_ms more, or the
 * next Task. It is now dropped with its session (tasks_dropped). */
static void test_upload_dropped_with_forgotten_session(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    session_run(&s, &cfg, 0);
    const uint32_t n = session_update_chunks(&s);
    end_session(&s.f, 1); /* Error(unknown client) */
    fake_hello(&s.f, 5000, "after Error(unknown client)", s.lb);
    for (uint32_t i = 0; i < n; i++)
        fake_ack(&s.f, FLP_CHUNK, s.round, 0);
    session_sync(&s, "sync after the credits"); /* chunks for them would be on their way */
    flp_msg *m;
    int chunks = 0;
    while ((m = fake_recv(&s.f, 300))) {
        chunks += m->type == FLP_CHUNK;
        flp_msg_free(m);
    }
    const flc_stats *st = session_stopped(&s);
    if (chunks || st->tasks_dropped != 1 || st->updates_sent != 0)
        fail_msg("%d chunks sent to the new session, tasks_dropped %llu, updates_sent %llu (want "
                 "0, 1, 0); log:\n%s", chunks, (unsigned long long)st->tasks_dropped,
                 (unsigned long long)st->updates_sent, s.lb->text);
    session_close(&s);
}

/* ---- the library's memory: a client's, a round's ------------------------------------------- */

#ifdef LA_ON
/* Gives credits for every chunk of the client's Update of s->round, reads them, and acks it. */
static void session_take_update(session *s)
{
    const uint32_t n = session_update_chunks(s);
    for (uint32_t i = 0; i < n; i++)
        fake_ack(&s->f, FLP_CHUNK, s->round, 0);
    for (uint32_t i = 0; i < n; i++)
        flp_msg_free(session_expect(s, FLP_CHUNK, 5000, "for a credit"));
    fake_ack(&s->f, FLP_UPDATE, s->round, 0);
}

/* A client's own allocations are small: a process may run 2000 of them (fl_client/README.md).
 * Its queue of the messages that come in while it trains was a fixed array of 4096 slots, 33 KB
 * a client (66 MB for 2000), though it rarely holds more than a few. */
static void test_new_client_small(void **state)
{
    (void)state;
    la_start();
    logbuf *lb = logbuf_new();
    flc_config cfg = base_config("tcp://127.0.0.1:9", train_plus_quarter, lb);
    flc_client *c = NULL;
    assert_int_equal(flc_client_new(&cfg, &c), FLC_OK);
    const size_t all = la_bytes(), biggest = g_la_max;
    flc_client_free(c);
    logbuf_free(lb);
    la_stop();
    if (biggest >= 16384)
        fail_msg("flc_client_new's largest allocation is %zu bytes (%zu in all)", biggest, all);
}

/* A device idles for hours between rounds: the library gives back what a round allocated (the
 * task's weights, the trainer's buffer, the encoded update, the codec's scratch) once the update
 * is sent, or the training failed, instead of holding its largest round's memory until
 * flc_client_free (145 MB idle after one task of an 11.4M-parameter submodel, from 10 MB). Counted
 * as the library's live allocations, against those of the client just made; a second round after
 * the first one's buffers went back trains and uploads as the first. */
static void test_round_memory_released(void **state)
{
    (void)state;
    la_start();
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    cfg.heartbeat_ms = 100;
    assert_int_equal(flc_client_new(&cfg, &s.c), FLC_OK);
    const size_t idle = la_bytes();
    run_start(&s.r, s.c);
    fls_core *again = NULL;
    for (int r = 0; r < 2; r++) {
        s.round = r == 0 ? fake_hello_and_task(&s.f, &s.core, 0) : fake_core_task(&s.f, &again, 0);
        session_take_update(&s);
        /* what the round held was there to be given back */
        assert_true(g_la_peak >= idle + 16384);
        if (!la_wait_at_most(idle + 1024, 5.0))
            fail_msg("round %d over: the library holds %zu bytes, %zu before its first task (%zu "
                     "at the round's peak)", r + 1, la_bytes(), idle, g_la_peak);
    }
    assert_int_equal(flc_client_stats(s.c)->updates_sent, 2);
    run_stop(&s.r);
    session_close(&s);
    fls_core_free(again);
    la_stop();
}

/* The same after a training that failed (the server was told): nothing of that round is held. */
static void test_failed_round_memory_released(void **state)
{
    (void)state;
    la_start();
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_fails, s.lb);
    cfg.heartbeat_ms = 100;
    assert_int_equal(flc_client_new(&cfg, &s.c), FLC_OK);
    const size_t idle = la_bytes();
    run_start(&s.r, s.c);
    s.round = fake_hello_and_task(&s.f, &s.core, 0);
    flp_msg_free(session_expect(&s, FLP_ERROR, 5000, "after a failed training"));
    assert_true(g_la_peak >= idle + 16384);
    if (!la_wait_at_most(idle + 1024, 5.0))
        fail_msg("failed round over: the library holds %zu bytes, %zu before the task", la_bytes(),
                 idle);
    run_stop(&s.r);
    session_close(&s);
    la_stop();
}
/* No training thread to be had (pthread_create fails for the library: a process at its thread
 * limit): the round is still trained and uploaded, the trainer called on the thread of
 * flc_client_run, and the log says so (flc.h: no heartbeats go out meanwhile). */
static pthread_t g_trained_on;

static flc_status train_noting_thread(const flc_task *task, flc_update *out, void *user)
{
    g_trained_on = pthread_self();
    return train_plus_quarter(task, out, user);
}

static void test_no_training_thread_said(void **state)
{
    (void)state;
    la_start();
    atomic_store(&g_no_lib_threads, 1);
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_noting_thread, s.lb);
    session_run(&s, &cfg, 0);
    session_take_update(&s);
    atomic_store(&g_no_lib_threads, 0);
    la_stop();
    assert_true(pthread_equal(g_trained_on, s.r.thread));
    if (log_count(s.lb, "cannot start a training thread") != 1)
        fail_msg("not said once; log:\n%s", s.lb->text);
    run_stop(&s.r);
    session_close(&s);
}
#else
static void test_new_client_small(void **state) { (void)state; skip(); }
static void test_round_memory_released(void **state) { (void)state; skip(); }
static void test_failed_round_memory_released(void **state) { (void)state; skip(); }
static void test_no_training_thread_said(void **state) { (void)state; skip(); }
#endif

/* Sends client "dev" its Task of core's open round and all of its weight chunks, with `extra`
 * right after the first chunk: 1, that chunk again (a duplicate); 2, that chunk as a chunk of an
 * update (dir UP) and an Update, which no server sends. *bytes: the payload bytes of the weight
 * chunks, each once. Returns the task's round. */
static uint64_t fake_task_with_extra(fake *f, fls_core *core, int extra, uint64_t *bytes)
{
    const uint32_t key = fl_client_key("dev");
    flp_msg tm;
    assert_int_equal(fls_core_task(core, key, &tm), FL_OK);
    fake_send(f, &tm);
    const size_t cap = fls_core_task_chunk_bound(core);
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    *bytes = 0;
    for (uint32_t t = 0; t < tm.task.n_tensors; t++)
        for (uint32_t i = 0; i < tm.task.tensors[t].n_chunks; i++) {
            flp_msg cm = flp_msg_header(FLP_CHUNK, tm.round, NULL);
            size_t len;
            assert_int_equal(fls_core_task_chunk(core, key, t, i, buf, cap, &len, &cm.chunk),
                             FL_OK);
            fake_send(f, &cm);
            *bytes += cm.chunk.payload_len;
            if (t || i || !extra)
                continue;
            if (extra == 1) {
                fake_send(f, &cm);
            } else {
                flp_msg up = cm;
                up.chunk.dir = FLP_DIR_UP;
                fake_send(f, &up);
                flp_msg u = flp_msg_header(FLP_UPDATE, tm.round, NULL);
                u.update.tensors = tm.task.tensors;
                u.update.n_tensors = tm.task.n_tensors;
                u.update.n_samples = 1;
                fake_send(f, &u);
            }
        }
    free(buf);
    return tm.round;
}

/* The client's Acks of chunks until its Update of round (freed), which must come within 5 s. */
static uint32_t acks_until_update(session *s, uint64_t round)
{
    uint32_t acks = 0;
    for (;;) {
        flp_msg *m = fake_recv(&s->f, 5000);
        if (!m)
            fail_msg("no Update; log:\n%s", s->lb->text);
        const int update = m->type == FLP_UPDATE;
        if (update)
            assert_int_equal(m->round, round);
        acks += m->type == FLP_ACK && m->ack.of_type == FLP_CHUNK;
        flp_msg_free(m);
        if (update)
            return acks;
    }
}

/* A chunk of an update (dir UP) from the server, which servers never send (PROTOCOL.md, 2), in
 * the middle of a Task's download: refused as a message no server sends is, and an Update from
 * the server with it; the download goes on. The client Acked that chunk (which returned the server
 * a downlink credit it never spent) and counted its bytes in bytes_down, and took the Update
 * without a word. Now: as many Acks as weight chunks, bytes_down their bytes, each refusal said
 * once, and the task trained as usual. */
static void test_misdirected_chunk_refused(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    cfg.heartbeat_ms = 100;
    session_hello(&s, &cfg);
    fake_core_new(&s.core, 0, 0.0);
    uint64_t bytes = 0;
    s.round = fake_task_with_extra(&s.f, s.core, 2, &bytes);
    flp_msg tm;
    assert_int_equal(fls_core_task(s.core, fl_client_key("dev"), &tm), FL_OK);
    uint32_t n = 0;
    for (uint32_t t = 0; t < tm.task.n_tensors; t++)
        n += tm.task.tensors[t].n_chunks;
    const uint32_t acks = acks_until_update(&s, s.round);
    const flc_stats *st = session_stopped(&s);
    if (acks != n || st->bytes_down != bytes || st->rounds_trained != 1 ||
        log_count(s.lb, "chunk of an update") != 1 || log_count(s.lb, "an Update: servers") != 1)
        fail_msg("%u Acks for %u weight chunks, bytes_down %llu (want %llu), rounds_trained "
                 "%llu; log:\n%s", acks, n, (unsigned long long)st->bytes_down,
                 (unsigned long long)bytes, (unsigned long long)st->rounds_trained, s.lb->text);
    session_close(&s);
}

/* A weight chunk sent twice in one Task's download: refused (the core's tracker), Acked as every
 * chunk is, counted once in bytes_down, and said once. It was said twice, at warn: by the core
 * ("chunk refused: tensor 0 chunk 0: duplicate") and again by the client around it. */
static void test_duplicate_chunk_said_once(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    cfg.heartbeat_ms = 100;
    session_hello(&s, &cfg);
    fake_core_new(&s.core, 0, 0.0);
    uint64_t bytes = 0;
    s.round = fake_task_with_extra(&s.f, s.core, 1, &bytes);
    flp_msg tm;
    assert_int_equal(fls_core_task(s.core, fl_client_key("dev"), &tm), FL_OK);
    uint32_t n = 0;
    for (uint32_t t = 0; t < tm.task.n_tensors; t++)
        n += tm.task.tensors[t].n_chunks;
    const uint32_t acks = acks_until_update(&s, s.round);
    const flc_stats *st = session_stopped(&s);
    if (acks != n + 1 || st->bytes_down != bytes || log_count(s.lb, "chunk refused") != 1 ||
        log_count(s.lb, "duplicate") != 1)
        fail_msg("%u Acks for %u weight chunks and a duplicate, bytes_down %llu (want %llu), "
                 "%d line(s) of a chunk refused; log:\n%s", acks, n,
                 (unsigned long long)st->bytes_down, (unsigned long long)bytes,
                 log_count(s.lb, "chunk refused"), s.lb->text);
    session_close(&s);
}

/* An Ack(of CHUNK) of the update's round with a status other than 0 is no credit (PROTOCOL.md 3:
 * a credit is an Ack(of CHUNK, of_round r, status 0)): no chunk goes for it; one with status 0
 * then sends one. It was taken as a credit whatever its status. */
static void test_chunk_ack_with_status_no_credit(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    session_run(&s, &cfg, 0);
    assert_true(session_update_chunks(&s) > 1);
    fake_ack(&s.f, FLP_CHUNK, s.round, FL_ERR_STATE);
    session_sync(&s, "sync after an Ack of a chunk with a status");
    flp_msg *m = fake_recv(&s.f, 300);
    if (m)
        fail_msg("the client sent %s for an Ack(of CHUNK) with status %d; log:\n%s",
                 flp_type_name(m->type), (int)FL_ERR_STATE, s.lb->text);
    fake_ack(&s.f, FLP_CHUNK, s.round, 0);
    flp_msg_free(session_expect(&s, FLP_CHUNK, 5000, "for a credit"));
    run_stop(&s.r);
    session_close(&s);
}

/* A client that sends something in a look (a chunk's Ack) sends no Heartbeat after it: one is
 * due only heartbeat_ms after its last message. The look's clock was read before the Ack, whose
 * send stamps the time after it, and the difference wrapped round (unsigned): a Heartbeat
 * followed every Ack, one message in two of a download (8 here at heartbeat_ms 60000, where
 * none is due). */
static void test_no_heartbeat_after_each_ack(void **state)
{
    (void)state;
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, train_plus_quarter, s.lb);
    cfg.heartbeat_ms = 60000;
    cfg.liveness_ms = 600000;
    session_hello(&s, &cfg);
    fake_core_new(&s.core, 0, 0.0);
    uint64_t bytes = 0;
    s.round = fake_task_with_extra(&s.f, s.core, 0, &bytes);
    s.f.heartbeats = 0;
    const uint32_t acks = acks_until_update(&s, s.round);
    if (s.f.heartbeats != 0)
        fail_msg("%d Heartbeats with the %u Acks of a download (heartbeat_ms 60000); log:\n%s",
                 s.f.heartbeats, acks, s.lb->text);
    run_stop(&s.r);
    session_close(&s);
}

#ifdef LA_ON
/* The library's monotonic clock, moved on at the test's word: clock_gettime(CLOCK_MONOTONIC) as
 * libflclient.so calls it (fl_time_mono_ns) reads g_lib_ahead_ns more than the real one; every
 * other caller (libzmq's timers and polls, the test) reads the real clock. And zmq_msg_send as
 * the library calls it: once g_jump_at_heartbeat is armed, the next Heartbeat the library sends
 * moves the library's clock that many ns on first. The session sends its Heartbeats after its
 * watches and before its poll, so time then passes between the two from the library's view, as
 * for a thread preempted there or a send that waits for room in its socket (send_msg). These
 * definitions take the place of libc's and libzmq's for the shared libflclient; not under ASan
 * or TSan (LA_ON), whose runtimes intercept clock_gettime themselves. */
typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*zmq_msg_send_fn)(zmq_msg_t *, void *, int);
static clock_gettime_fn g_real_clock_gettime;
static zmq_msg_send_fn g_real_msg_send;
static pthread_once_t g_real_once = PTHREAD_ONCE_INIT;
static _Atomic uintptr_t g_clk_lo, g_clk_hi; /* the library's mapping; lo 0: off */
static _Atomic uint64_t g_lib_ahead_ns, g_jump_at_heartbeat;

static void real_resolve(void)
{
    *(void **)&g_real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    *(void **)&g_real_msg_send = dlsym(RTLD_NEXT, "zmq_msg_send");
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    pthread_once(&g_real_once, real_resolve);
    if (!g_real_clock_gettime) {
        errno = ENOSYS;
        return -1;
    }
    const int rc = g_real_clock_gettime(id, ts);
    const uintptr_t ra = (uintptr_t)__builtin_return_address(0);
    const uintptr_t lo = atomic_load(&g_clk_lo);
    if (rc == 0 && id == CLOCK_MONOTONIC && lo && ra >= lo && ra < atomic_load(&g_clk_hi)) {
        const uint64_t ns = (uint64_t)ts->tv_nsec + atomic_load(&g_lib_ahead_ns);
        ts->tv_sec += (time_t)(ns / 1000000000u);
        ts->tv_nsec = (long)(ns % 1000000000u);
    }
    return rc;
}

int zmq_msg_send(zmq_msg_t *msg, void *s, int flags)
{
    pthread_once(&g_real_once, real_resolve);
    if (atomic_load(&g_jump_at_heartbeat)) {
        flp_msg *m = NULL;
        char err[FLP_ERRBUF];
        if (flp_decode(&m, zmq_msg_data(msg), zmq_msg_size(msg), NULL, err, sizeof err) ==
                FL_OK && m->type == FLP_HEARTBEAT)
            atomic_fetch_add(&g_lib_ahead_ns, atomic_exchange(&g_jump_at_heartbeat, 0));
        flp_msg_free(m);
    }
    if (!g_real_msg_send) {
        errno = ENOTSUP;
        return -1;
    }
    return g_real_msg_send(msg, s, flags);
}

/* A Task's deadline that passes while the session is between its watches and its poll is acted
 * on at the next look, at once (be9478e3). heartbeat_ms 60000 (a look every 30 s), a Task deadline
 * of 100 s, a plug-in training that waits for flc_task_cancelled. The library's clock is moved 70
 * s on, and a Heartbeat from the server wakes the session for a look: training_watch finds the
 * deadline 30 s off, and the session's own Heartbeat is due (none sent for 60 s); as it goes out,
 * the clock moves 40 s more, past the deadline, where no watch looks before the poll. The poll read
 * that deadline as passed, hence handled, and slept heartbeat_ms / 2: the training of a round
 * that was over went on 30 s more (a liveness bound of 10 s below; with the fix it is cancelled
 * after a few ms). */
static void test_deadline_between_watches_and_poll(void **state)
{
    (void)state;
    uintptr_t lo, hi;
    lib_mapping(&lo, &hi);
    atomic_store(&g_lib_ahead_ns, 0);
    atomic_store(&g_jump_at_heartbeat, 0);
    atomic_store(&g_clk_hi, hi);
    atomic_store(&g_clk_lo, lo);
    deadline_flags d = {0, 0, 0, 1};
    session s;
    session_open(&s);
    flc_config cfg = base_config(s.f.ep, deadline_trainer, s.lb);
    cfg.train_user = &d;
    cfg.heartbeat_ms = 60000;
    cfg.liveness_ms = 600000;
    session_hello(&s, &cfg);
    fake_core_new(&s.core, 0, 100.0);
    s.round = fake_task(&s.f, s.core);
    const double until = fl_time_mono_s() + 5.0;
    while (!atomic_load(&d.started) && fl_time_mono_s() < until) {
        const struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!atomic_load(&d.started))
        fail_msg("the trainer did not start; log:\n%s", s.lb->text);
    atomic_store(&g_lib_ahead_ns, 70000000000u);
    atomic_store(&g_jump_at_heartbeat, 40000000000u);
    flp_msg hb = flp_msg_header(FLP_HEARTBEAT, 0, NULL);
    fake_send(&s.f, &hb);
    /* a liveness bound, not a speed one: at once against 30 s */
    const double end = fl_time_mono_s() + 10.0;
    while (!atomic_load(&d.cancelled) && fl_time_mono_s() < end) {
        const struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    const int jumped = atomic_load(&g_jump_at_heartbeat) == 0;
    const int cancelled = atomic_load(&d.cancelled);
    const flc_stats *st = session_stopped(&s);
    atomic_store(&g_clk_lo, 0);
    atomic_store(&g_lib_ahead_ns, 0);
    atomic_store(&g_jump_at_heartbeat, 0);
    if (!jumped || !cancelled || log_count(s.lb, "before its training ended") != 1)
        fail_msg("%s; log:\n%s", !jumped ? "the session sent no Heartbeat at its look"
                                         : "the deadline passed between the session's watches "
                                           "and its poll: the training not cancelled 10 s on",
                 s.lb->text);
    assert_int_equal(st->tasks_dropped, 1);
    assert_int_equal(st->updates_sent, 0);
    session_close(&s);
}
#else
static void test_deadline_between_watches_and_poll(void **state) { (void)state; skip(); }
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_validation),
        cmocka_unit_test(test_stop_prompt),
        cmocka_unit_test(test_refused_key),
        cmocka_unit_test(test_curve_client_rides_out_dead_backend),
        cmocka_unit_test(test_plugin_task_sub_arch),
        cmocka_unit_test(test_zmtp_greeting_read),
        cmocka_unit_test(test_zmtp_probe),
        cmocka_unit_test(test_plain_client_curve_server),
        cmocka_unit_test(test_curve_client_plain_server),
        cmocka_unit_test(test_plain_client_proxy_then_curve),
        cmocka_unit_test(test_plain_client_curve_hangups),
        cmocka_unit_test(test_plain_client_protocol_error_gives_up),
        cmocka_unit_test(test_one_hello_after_server_down),
        cmocka_unit_test(test_no_server_at_endpoint_said),
        cmocka_unit_test(test_frozen_server_said),
        cmocka_unit_test(test_ipv6_endpoint_reached),
        cmocka_unit_test(test_no_zeromq_heartbeats),
        cmocka_unit_test(test_reconnect_jitter),
        cmocka_unit_test(test_short_liveness_said),
        cmocka_unit_test(test_reconnect_interval_followed),
        cmocka_unit_test(test_reconnect_backoff_doubles),
        cmocka_unit_test(test_reconnect_backoff_after_link),
        cmocka_unit_test(test_server_key_changed_said),
        cmocka_unit_test(test_key_change_said_after_plain_server),
        cmocka_unit_test(test_cli_stop_during_startup),
        cmocka_unit_test(test_cli_closed_std_fds),
        cmocka_unit_test(test_cli_closed_pipe_before_run),
        cmocka_unit_test(test_cli_bad_options),
        cmocka_unit_test(test_cli_option_given_again_said),
        cmocka_unit_test(test_cli_index_missing_said),
        cmocka_unit_test(test_cli_partition_reasons),
        cmocka_unit_test(test_cli_help_data_dir),
        cmocka_unit_test(test_cli_help_options_in_readme),
        cmocka_unit_test(test_cli_data_dir_missing_named),
        cmocka_unit_test(test_cli_log_level_own_lines),
        cmocka_unit_test(test_cli_blas_kernel_named_as_sim),
        cmocka_unit_test(test_coretype_ignored_said_by_library),
        cmocka_unit_test(test_reconnects_counts_each_new_start),
        cmocka_unit_test(test_train_failure_reported_and_bye),
        cmocka_unit_test(test_train_failure_unknown_status),
        cmocka_unit_test(test_plugin_moved_weights_refused),
        cmocka_unit_test(test_plugin_above_declared_samples_fails_round),
        cmocka_unit_test(test_plugin_update_past_up_codec_said),
        cmocka_unit_test(test_second_run_refused),
        cmocka_unit_test(test_free_while_running_refused),
        cmocka_unit_test(test_unfit_samples_end_run),
        cmocka_unit_test(test_task_above_memory_refused),
        cmocka_unit_test(test_refused_task_of_another_run_counted),
        cmocka_unit_test(test_unselectable_told),
        cmocka_unit_test(test_plugin_dataset_status_fails_round_only),
        cmocka_unit_test(test_max_rounds_counts_last_ack),
        cmocka_unit_test(test_update_slot_taken_back),
        cmocka_unit_test(test_agg_range_refusal_explained),
        cmocka_unit_test(test_trained_not_sent),
        cmocka_unit_test(test_replaced_task_not_uploaded),
        cmocka_unit_test(test_stop_interrupts_training),
        cmocka_unit_test(test_stop_counts_finished_training),
        cmocka_unit_test(test_plugin_cancel_not_reported),
        cmocka_unit_test(test_plugin_polls_task_cancelled),
        cmocka_unit_test(test_key_file_read),
        cmocka_unit_test(test_session_end_cancels_builtin_training),
        cmocka_unit_test(test_session_end_plugin_runs_on),
        cmocka_unit_test(test_plugin_task_cancelled_when_dropped),
        cmocka_unit_test(test_cancel_after_last_step_keeps_residual),
        cmocka_unit_test(test_dropped_task_cancels_nothing),
        cmocka_unit_test(test_failure_after_cancel_dropped),
        cmocka_unit_test(test_undecodable_chunk_told),
        cmocka_unit_test(test_garbage_server_said),
        cmocka_unit_test(test_garbage_flood_left),
        cmocka_unit_test(test_flood_while_training_bounded),
        cmocka_unit_test(test_free_prompt_after_server_gone),
        cmocka_unit_test(test_out_of_descriptors_said),
        cmocka_unit_test(test_new_client_small),
        cmocka_unit_test(test_round_memory_released),
        cmocka_unit_test(test_failed_round_memory_released),
        cmocka_unit_test(test_dropped_download_released),
        cmocka_unit_test(test_stuck_upload_dropped),
        cmocka_unit_test(test_training_past_deadline_cancelled),
        cmocka_unit_test(test_own_deadline_wakes),
        cmocka_unit_test(test_held_task_deadline_from_arrival),
        cmocka_unit_test(test_training_without_deadline_runs_on),
        cmocka_unit_test(test_dropped_update_answer_not_counted),
        cmocka_unit_test(test_update_answer_counted_once),
        cmocka_unit_test(test_upload_dropped_with_forgotten_session),
        cmocka_unit_test(test_no_training_thread_said),
        cmocka_unit_test(test_misdirected_chunk_refused),
        cmocka_unit_test(test_duplicate_chunk_said_once),
        cmocka_unit_test(test_deadline_between_watches_and_poll),
        cmocka_unit_test(test_chunk_ack_with_status_no_credit),
        cmocka_unit_test(test_no_heartbeat_after_each_ack),
    };
    if (getenv("FLC_TEST_FILTER")) /* e.g. "test_reconnect_*": a few tests while working on them */
        cmocka_set_test_filter(getenv("FLC_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
