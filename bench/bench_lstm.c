/* bench_lstm: forward + full BPTT of a stack of LSTM layers at the LEAF Shakespeare shape
 * (B=10, T=80, embedding 8, two layers of 256), beside PyTorch's nn.LSTM doing the same work on
 * the same thread count (tests/fixtures/lstm/bench_torch.py, run through /usr/bin/python3).
 *
 * Usage: bench_lstm [reps]   (from the source root, or with FEDROP_SOURCE_ROOT set)
 * Threads: OPENBLAS_NUM_THREADS (default 1 here), passed on to torch.set_num_threads.
 * Each side: 3 untimed warm-up passes, then reps timed passes of forward + backward, wall time;
 * the median is the figure (min beside). LAST line:
 *   fedrop_ms=<median> torch_ms=<median> ratio=<torch_ms / fedrop_ms: above 1, ours is faster>
 *   kernel=<openblas core[+AVX512]>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flm_blas.h"
#include "flm_lstm.h"

enum { B = 10, T = 80, C0 = 8, H = 256, L = 2 };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
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

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: bench_lstm [reps (1..100000, default 20)]\n"
               "Ours: forward + full BPTT of a 2-layer LSTM (flm_lstm) at the LEAF Shakespeare\n"
               "shape (B=10, T=80, embedding 8, hidden 256), wall ms, median of reps after 3\n"
               "warm-up passes. Peer, in the same run: PyTorch's nn.LSTM doing the same work on\n"
               "the same thread count (tests/fixtures/lstm/bench_torch.py under /usr/bin/python3;\n"
               "run from the source root or set FEDROP_SOURCE_ROOT). Threads: OPENBLAS_NUM_THREADS\n"
               "(default 1). Last line: fedrop_ms, torch_ms, ratio = torch_ms / fedrop_ms, kernel.\n");
        return 0;
    }
    /* a median needs at least one pass: 0 read uninitialised times before */
    const int reps = argc > 1 ? atoi(argv[1]) : 20;
    if (argc > 2 || reps < 1 || reps > 100000) {
        fprintf(stderr, "usage: bench_lstm [reps (1..100000, default 20)]\n");
        return 2;
    }
    const char *thr = getenv("OPENBLAS_NUM_THREADS");
    if (!thr) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1); /* read by OpenBLAS at its first call */
        thr = "1";
    }
    unsigned seed = 12345;
    const size_t BT = (size_t)B * T;
    float *x = alloc_fill(BT * C0, &seed, 2.0f), *dout = alloc_fill(BT * H, &seed, 2.0f);
    float *w_ih[L], *w_hh[L], *b[L], *dw_ih[L], *dw_hh[L], *db[L], *out[L], *cache[L], *dinp[L];
    for (int l = 0; l < L; l++) {
        const int C = l ? H : C0;
        w_ih[l] = alloc_fill((size_t)4 * H * C, &seed, 0.1f);
        w_hh[l] = alloc_fill((size_t)4 * H * H, &seed, 0.1f);
        b[l] = alloc_fill((size_t)4 * H, &seed, 0.1f);
        dw_ih[l] = alloc_fill((size_t)4 * H * C, &seed, 0.0f);
        dw_hh[l] = alloc_fill((size_t)4 * H * H, &seed, 0.0f);
        db[l] = alloc_fill((size_t)4 * H, &seed, 0.0f);
        out[l] = alloc_fill(BT * H, &seed, 0.0f);
        cache[l] = alloc_fill(flm_lstm_cache_floats(B, T, H), &seed, 0.0f);
        dinp[l] = alloc_fill(BT * C, &seed, 0.0f);
    }
    float *scratch = alloc_fill(flm_lstm_scratch_floats(B, T, H, H), &seed, 0.0f);

    double *ms = malloc((size_t)reps * sizeof *ms), fwd_total = 0;
    for (int r = -3; r < reps; r++) {
        const double t0 = now_ms();
        const float *in = x;
        for (int l = 0; l < L; l++) {
            flm_lstm_forward(out[l], cache[l], in, w_ih[l], w_hh[l], b[l], B, T, l ? H : C0, H);
            in = out[l];
        }
        const double t1 = now_ms();
        const float *d = dout;
        for (int l = L - 1; l >= 0; l--) {
            flm_lstm_backward(dinp[l], dw_ih[l], dw_hh[l], db[l], scratch, d, cache[l],
                              l ? out[l - 1] : x, w_ih[l], w_hh[l], B, T, l ? H : C0, H);
            d = dinp[l];
        }
        const double t2 = now_ms();
        if (r >= 0) {
            ms[r] = t2 - t0;
            fwd_total += t1 - t0;
        }
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    char kernel[96];
    flm_blas_kernel_name(kernel, sizeof kernel); /* as fl_sim's summary.json "blas" */
    printf("LSTM %d layers, B=%d T=%d C=%d H=%d, %d reps (median), kernel %s\n", L, B, T, C0, H,
           reps, kernel);
    printf("fedrop flm_lstm threads %s: fwd+bwd median %.2f ms (min %.2f ms; fwd mean %.2f ms)\n",
           thr, ms[reps / 2], ms[0], fwd_total / reps);
    fflush(stdout);

    const char *root = getenv("FEDROP_SOURCE_ROOT");
    char cmd[4200];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 '%s/tests/fixtures/lstm/bench_torch.py' %d %d %d %d %d %s %d",
             root ? root : ".", B, T, C0, H, L, thr, reps);
    /* the peer's line is read back, so that the ratio of the two medians is printed, not left
     * to the reader */
    FILE *p = popen(cmd, "r");
    char line[512], last[512] = "";
    while (p && fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        snprintf(last, sizeof last, "%s", line);
    }
    const int prc = p ? pclose(p) : -1;
    const char *med = strstr(last, "median ");
    const double torch_ms = med ? atof(med + 7) : 0.0;
    if (prc != 0 || torch_ms <= 0.0)
        printf("peer: PyTorch run failed (command: %s)\n", cmd);
    else
        printf("fedrop_ms=%.2f torch_ms=%.2f ratio=%.3f kernel=%s\n", ms[reps / 2], torch_ms,
               torch_ms / ms[reps / 2], kernel);

    for (int l = 0; l < L; l++) {
        free(w_ih[l]), free(w_hh[l]), free(b[l]), free(dw_ih[l]), free(dw_hh[l]), free(db[l]);
        free(out[l]), free(cache[l]), free(dinp[l]);
    }
    free(x), free(dout), free(scratch), free(ms);
    return 0;
}
