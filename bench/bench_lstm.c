/* bench_lstm: forward + full BPTT of a stack of LSTM layers at the LEAF Shakespeare shape
 * (B=10, T=80, embedding 8, two layers of 256), beside PyTorch's nn.LSTM doing the same work on
 * the same thread count (bench/bench_lstm_torch.py, run through /usr/bin/python3).
 *
 * Usage: bench_lstm [reps] [--no-torch]   (from the source root or the build directory, or with
 *        FEDROP_SOURCE_ROOT set)
 * Threads: OPENBLAS_NUM_THREADS (default 1 here), passed on to torch.set_num_threads.
 * Each side: 3 untimed warm-up passes, then reps timed passes of forward + backward, wall time,
 * alternated: ours 1, PyTorch 1, ours 2, PyTorch 2, ... (while one runs, the other waits; the
 * peer is a child started once, bench_child.h, as bench_train's), so both meet the same
 * stretches of a shared machine's load. (Until 2026-12-02 all of ours ran first, then all of
 * PyTorch's.) The medians are the figures (min-max beside), the ratio is of the medians. LAST
 * line (without the peer, --no-torch or its failure, said on stderr: torch_ms=none ratio=none):
 *   fedrop_ms=<median> torch_ms=<median> ratio=<torch_ms / fedrop_ms: above 1, ours is faster>
 *   kernel=<openblas core[+AVX512]>
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_child.h"
#include "bench_stat.h"
#include "flm_blas.h"
#include "flm_lstm.h"

enum { B = 10, T = 80, C0 = 8, H = 256, L = 2 };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static float *alloc_fill(size_t n, unsigned *seed, float scale)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = scale * ((float)(*seed >> 8) / 16777216.0f - 0.5f);
    }
    return p;
}

/* The weights, gradients and buffers of the L layers. */
typedef struct stack {
    float *x, *dout, *scratch;
    float *w_ih[L], *w_hh[L], *b[L], *dw_ih[L], *dw_hh[L], *db[L], *out[L], *cache[L], *dinp[L];
} stack;

/* One forward + backward pass; *fwd_ms the forward's share. Wall ms. */
static double stack_pass(stack *k, double *fwd_ms)
{
    const double t0 = now_ms();
    const float *in = k->x;
    for (int l = 0; l < L; l++) {
        flm_lstm_forward(k->out[l], k->cache[l], in, k->w_ih[l], k->w_hh[l], k->b[l], B, T,
                         l ? H : C0, H);
        in = k->out[l];
    }
    const double t1 = now_ms();
    const float *d = k->dout;
    for (int l = L - 1; l >= 0; l--) {
        flm_lstm_backward(k->dinp[l], k->dw_ih[l], k->dw_hh[l], k->db[l], k->scratch, d,
                          k->cache[l], l ? k->out[l - 1] : k->x, k->w_ih[l], k->w_hh[l], B, T,
                          l ? H : C0, H);
        d = k->dinp[l];
    }
    *fwd_ms = t1 - t0;
    return now_ms() - t0;
}

int main(int argc, char **argv)
{
    int reps = 20, run_torch = 1, bad = 0, positional = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: bench_lstm [reps (1..100000, default 20)] [--no-torch]\n"
                   "Ours: forward + full BPTT of a 2-layer LSTM (flm_lstm) at the LEAF Shakespeare\n"
                   "shape (B=10, T=80, embedding 8, hidden 256), wall ms, median of reps after 3\n"
                   "warm-up passes. Peer, in the same run: PyTorch's nn.LSTM doing the same work on\n"
                   "the same thread count (bench/bench_lstm_torch.py under /usr/bin/python3; run\n"
                   "from the source root or the build directory, or set FEDROP_SOURCE_ROOT), its\n"
                   "passes alternated with ours. Threads: OPENBLAS_NUM_THREADS (default 1). Last\n"
                   "line: fedrop_ms, torch_ms, ratio = torch_ms / fedrop_ms (of the medians; none\n"
                   "without the peer), kernel.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--no-torch")) {
            run_torch = 0;
            continue;
        }
        char *end;
        const long v = strtol(argv[i], &end, 10);
        if (*end || end == argv[i] || v < 1 || v > 100000 || positional++)
            bad = 1; /* a median needs at least one pass: 0 read uninitialised times once */
        reps = (int)v;
    }
    if (bad) {
        fprintf(stderr, "usage: bench_lstm [reps (1..100000, default 20)] [--no-torch]\n");
        return 2;
    }
    const char *thr = getenv("OPENBLAS_NUM_THREADS");
    if (!thr) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1); /* read by OpenBLAS at its first call */
        thr = "1";
    }
    const int threads = atoi(thr) >= 1 ? atoi(thr) : 1;
    unsigned seed = 12345;
    const size_t BT = (size_t)B * T;
    stack k;
    k.x = alloc_fill(BT * C0, &seed, 2.0f);
    k.dout = alloc_fill(BT * H, &seed, 2.0f);
    for (int l = 0; l < L; l++) {
        const int C = l ? H : C0;
        k.w_ih[l] = alloc_fill((size_t)4 * H * C, &seed, 0.1f);
        k.w_hh[l] = alloc_fill((size_t)4 * H * H, &seed, 0.1f);
        k.b[l] = alloc_fill((size_t)4 * H, &seed, 0.1f);
        k.dw_ih[l] = alloc_fill((size_t)4 * H * C, &seed, 0.0f);
        k.dw_hh[l] = alloc_fill((size_t)4 * H * H, &seed, 0.0f);
        k.db[l] = alloc_fill((size_t)4 * H, &seed, 0.0f);
        k.out[l] = alloc_fill(BT * H, &seed, 0.0f);
        k.cache[l] = alloc_fill(flm_lstm_cache_floats(B, T, H), &seed, 0.0f);
        k.dinp[l] = alloc_fill(BT * C, &seed, 0.0f);
    }
    k.scratch = alloc_fill(flm_lstm_scratch_floats(B, T, H, H), &seed, 0.0f);
    double *ms = malloc((size_t)reps * sizeof *ms), *tms = malloc((size_t)reps * sizeof *tms);
    if (!ms || !tms) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    char kernel[96];
    flm_blas_kernel_name(kernel, sizeof kernel); /* as fl_sim's summary.json "blas" */
    printf("LSTM %d layers, B=%d T=%d C=%d H=%d, %d reps (medians), kernel %s\n", L, B, T, C0, H,
           reps, kernel);

    /* our warm-up, then the peer, started once: it loads torch, runs its warm-up and waits */
    double fwd, fwd_total = 0;
    for (int r = 0; r < 3; r++)
        stack_pass(&k, &fwd);
    signal(SIGPIPE, SIG_IGN); /* a peer that died is seen as a failed write */
    bench_child tp = {0};
    int have_torch = 0;
    if (run_torch) {
        char script[4096], cmd[8400];
        if (bench_script_find("bench_lstm_torch.py", script, sizeof script) != 0) {
            fprintf(stderr, "bench_lstm: bench_lstm_torch.py not found (run from the source root "
                            "or the build directory, or set FEDROP_SOURCE_ROOT)\n");
        } else {
            /* every thread pool of the child at the same count (bench_train.c says why) */
            snprintf(cmd, sizeof cmd,
                     "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d MKL_NUM_THREADS=%d "
                     "exec /usr/bin/python3 '%s' %d %d %d %d %d %d %d --interleave",
                     threads, threads, threads, script, B, T, C0, H, L, threads, reps);
            have_torch = bench_child_start(&tp, cmd) == 0;
            if (!have_torch)
                fprintf(stderr, "bench_lstm: the PyTorch peer ended before it was ready (its "
                                "errors above; scripts/install-deps --bench installs "
                                "python3-torch, or run with --no-torch)\n");
        }
    }
    /* reps passes each, alternated */
    for (int r = 0; r < reps; r++) {
        ms[r] = stack_pass(&k, &fwd);
        fwd_total += fwd;
        char line[512];
        if (have_torch && (bench_child_rep(&tp, line, sizeof line) != 0 ||
                           sscanf(line, "rep ms=%lf", &tms[r]) != 1 || !(tms[r] > 0))) {
            fprintf(stderr, "bench_lstm: the PyTorch peer failed in repetition %d\n", r + 1);
            have_torch = 0;
        }
    }
    char last[512] = "";
    if (tp.pid > 0 && bench_child_end(&tp, last, sizeof last) != 0 && have_torch) {
        fprintf(stderr, "bench_lstm: the PyTorch peer did not end cleanly (%s)\n", last);
        have_torch = 0;
    }
    const bench_stat f = bench_stat_of(ms, reps);
    printf("fedrop flm_lstm threads %d: fwd+bwd median %.2f ms (%.2f-%.2f; fwd mean %.2f ms)\n",
           threads, f.med, f.lo, f.hi, fwd_total / reps);
    char torch_f[32] = "none", ratio_f[32] = "none";
    if (have_torch) {
        const bench_stat t = bench_stat_of(tms, reps);
        /* its own line names the version and the threads it ran on */
        const char *colon = strchr(last, ':');
        printf("%.*s: fwd+bwd median %.2f ms (%.2f-%.2f), alternated with ours\n",
               colon ? (int)(colon - last) : 5, colon ? last : "torch", t.med, t.lo, t.hi);
        snprintf(torch_f, sizeof torch_f, "%.2f", t.med);
        snprintf(ratio_f, sizeof ratio_f, "%.3f", t.med / f.med);
    } else if (run_torch) {
        fprintf(stderr, "bench_lstm: no PyTorch figures (see above)\n");
    }
    printf("fedrop_ms=%.2f torch_ms=%s ratio=%s kernel=%s\n", f.med, torch_f, ratio_f, kernel);

    for (int l = 0; l < L; l++) {
        free(k.w_ih[l]), free(k.w_hh[l]), free(k.b[l]), free(k.dw_ih[l]), free(k.dw_hh[l]);
        free(k.db[l]), free(k.out[l]), free(k.cache[l]), free(k.dinp[l]);
    }
    free(k.x), free(k.dout), free(k.scratch), free(ms), free(tms);
    return 0;
}
