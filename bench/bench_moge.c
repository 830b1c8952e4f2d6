/* bench_moge: what routing costs. Trains the mixture-of-grouped-experts model and, in the same run,
 * its peer: a dense mlp of the same forward multiply-accumulates a sample (within 2%), on the same
 * Fashion-MNIST samples, batch, learning rate and thread count.
 *
 *   build/bench/bench_moge [--spec moge:784:128:4:4:1:10] [--samples 6000] [--reps 5]
 *                          [--batch 10] [--momentum 0] [--data-dir DIR]
 *
 * The peer of moge:IN:H:G:E:K:CLS is mlp:IN-H-W-CLS with W chosen so that H*W + W*CLS matches the
 * mixture's gate and G*K' experts (H*(G*E) + G*K'*H*H, K' = min(K, E)) plus its output layer;
 * the routing's comparisons (G*E*K' a sample) are printed beside, not matched. Each rep trains one
 * epoch of each model from the same initial weights, alternating which goes first; the figures
 * are the median over reps of samples per CPU second (the machine is shared: CPU seconds, with
 * wall seconds beside them). momentum 0 runs both on the fused backward-and-step path; momentum
 * > 0 on the plain backward and a separate step. Not a test. Last line:
 *   moge_sps=<float> mlp_sps=<float> ratio=<moge/mlp> kernel=<openblas core[+AVX512]>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "fl_rng.h"
#include "flm_arch.h"
#include "flm_blas.h"
#include "flm_data.h"
#include "flm_model.h"
#include "flm_moge.h"
#include "flm_optim.h"

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct runner {
    const char *name;
    flm_arch a;
    flm_model *m;
    float *init, *w;
    double cps[64], wps[64], loss;
} runner;

static int runner_new(runner *r, const char *name, const char *spec, int B, uint64_t seed)
{
    char err[256];
    memset(r, 0, sizeof *r);
    r->name = name;
    if (flm_arch_parse(spec, &r->a, err, sizeof err) != FL_OK) {
        fprintf(stderr, "bench_moge: %s: %s\n", spec, err);
        return -1;
    }
    r->init = malloc(r->a.n_params * sizeof(float));
    r->w = malloc(r->a.n_params * sizeof(float));
    if (!r->init || !r->w || flm_model_new(&r->a, B, &r->m) != FL_OK) {
        fprintf(stderr, "bench_moge: out of memory\n");
        return -1;
    }
    fl_rng ir = fl_rng_stream(seed, 0, 0, FL_RNG_INIT);
    flm_model_init_params(&r->a, r->init, &ir);
    return 0;
}

static int runner_rep(runner *r, int rep, const flm_samples *tr, const flm_sgd *o, uint64_t seed)
{
    memcpy(r->w, r->init, r->a.n_params * sizeof(float));
    fl_rng order = fl_rng_stream(seed, 0, 0, FL_RNG_BATCH);
    const double t0 = bench_wall_s(), c0 = bench_cpu_s();
    const fl_status st = flm_train_local(r->m, r->w, NULL, tr, 1, o, &order, &r->loss);
    const double dt = bench_wall_s() - t0, dc = bench_cpu_s() - c0;
    if (st != FL_OK) {
        fprintf(stderr, "bench_moge: %s: training failed: %s\n", r->name, fl_strerror(st));
        return -1;
    }
    r->cps[rep] = (double)tr->n / dc;
    r->wps[rep] = (double)tr->n / dt;
    return 0;
}

static double median(double *v, int n)
{
    double s[64];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

int main(int argc, char **argv)
{
    const char *spec = "moge:784:128:4:4:1:10", *data_dir = NULL;
    long samples = 6000;
    int reps = 5, B = 10;
    double momentum = 0.0, lr = 0.05;
    const uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: bench_moge [--spec moge:IN:H:G:E:K:CLS (moge:784:128:4:4:1:10)]\n"
                   "       [--samples N (6000)] [--reps N (5)] [--batch B (10)] [--momentum M (0)]\n"
                   "       [--data-dir DIR]\n"
                   "Ours: one epoch of the mixture-of-grouped-experts model on Fashion-MNIST,\n"
                   "samples per CPU second. Peer, in the same run: a dense mlp of the same forward\n"
                   "multiply-accumulates a sample, on the same samples and settings; each repetition\n"
                   "trains both from their initial weights, alternating which goes first; medians.\n"
                   "--momentum M > 0: both on the plain backward and a separate SGD step (0: the\n"
                   "fused backward-and-step); --data-dir DIR: Fashion-MNIST's files there (default\n"
                   "$FEDROP_DATA_DIR or /usr/share/datasets/fashion-mnist).\n"
                   "Last line: moge_sps, mlp_sps, ratio = moge / mlp, kernel. Details: the comment at\n"
                   "the top of bench/bench_moge.c.\n");
            return 0;
        }
        if (strcmp(argv[i], "--spec") == 0 && v)
            spec = argv[++i];
        else if (strcmp(argv[i], "--samples") == 0 && v)
            samples = atol(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && v)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && v)
            B = atoi(argv[++i]);
        else if (strcmp(argv[i], "--momentum") == 0 && v)
            momentum = atof(argv[++i]);
        else if (strcmp(argv[i], "--data-dir") == 0 && v)
            data_dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_moge [--spec moge:IN:H:G:E:K:CLS] [--samples N] "
                            "[--reps N] [--batch B] [--momentum M] [--data-dir DIR]\n");
            return 2;
        }
    }
    if (samples < B || reps < 1 || reps > 63 || B < 1 || momentum < 0.0 || momentum >= 1.0) {
        fprintf(stderr, "bench_moge: --samples >= --batch >= 1, 1 <= --reps <= 63, "
                        "0 <= --momentum < 1\n");
        return 2;
    }
    flm_arch ma;
    char err[256];
    if (flm_arch_parse(spec, &ma, err, sizeof err) != FL_OK || strcmp(ma.family, "moge") != 0) {
        fprintf(stderr, "bench_moge: --spec %s: %s\n", spec, err[0] ? err : "not a moge spec");
        return 2;
    }
    /* the peer's middle width W: H*W + W*CLS = the mixture's active multiply-accumulates (the
     * gate over all N experts, the G K' experts a sample runs) + its output layer's */
    const flm_layer *mx = &ma.layers[2];
    const int H = mx->C, CLS = ma.classes;
    const double mixture = (double)mx->experts * H +
                           (double)mx->groups * flm_moge_active(mx->experts, mx->groups, mx->topk) *
                               H * H;
    const int Wd = (int)((mixture + (double)H * CLS) / (double)(H + CLS) + 0.5);
    char peer[64];
    snprintf(peer, sizeof peer, "mlp:%d-%d-%d-%d", ma.in_C, H, Wd, CLS);

    if (flm_blas_init_threads(1) != FL_OK)
        fprintf(stderr, "bench_moge: OpenBLAS not loaded: the reference GEMM runs\n");
    flm_dataset *train = NULL;
    if (flm_dataset_load_named(&train, "fashion-mnist", "train", data_dir, err, sizeof err) !=
        FL_OK) {
        fprintf(stderr, "bench_moge: %s\n", err);
        return 1;
    }
    if ((size_t)ma.in_C != train->sample_len || ma.classes != train->classes) {
        fprintf(stderr, "bench_moge: --spec %s does not fit Fashion-MNIST (%zu inputs, %d classes)\n",
                spec, train->sample_len, train->classes);
        return 2;
    }
    if ((size_t)samples > train->N)
        samples = (long)train->N;
    flm_samples tr = {train->x, NULL, train->y, NULL, (size_t)samples};

    runner r[2];
    if (runner_new(&r[0], "moge", spec, B, seed) || runner_new(&r[1], "mlp", peer, B, seed))
        return 1;
    const flm_sgd o = {(float)lr, (float)momentum, 0, 0};
    char kernel[96];
    flm_blas_kernel_name(kernel, sizeof kernel); /* as fl_sim's summary.json "blas" */
    printf("kernel: %s, 1 thread, batch %d, lr %g, momentum %g (%s path), %ld samples, %d reps\n",
           kernel, B, lr, momentum, momentum == 0.0 ? "fused step" : "plain backward",
           samples, reps);
    const double macs[2] = {(double)ma.in_C * H + mixture + (double)H * CLS,
                            flm_arch_forward_flops(&r[1].a)};
    for (int k = 0; k < 2; k++)
        printf("%-5s %-24s %9zu parameters, %8.0f multiply-accumulates a sample forward\n",
               r[k].name, r[k].a.spec, r[k].a.n_params, macs[k]);
    printf("(moge's routing besides: %.0f comparisons a sample)\n",
           flm_arch_forward_flops(&r[0].a) - macs[0]);
    /* warm-up: kernel load and first touch, untimed */
    if (runner_rep(&r[0], 0, &tr, &o, seed) || runner_rep(&r[1], 0, &tr, &o, seed))
        return 1;
    for (int rep = 0; rep < reps; rep++)
        for (int k = 0; k < 2; k++) { /* alternate which model goes first */
            runner *x = &r[(rep + k) % 2];
            if (runner_rep(x, rep, &tr, &o, seed))
                return 1;
        }
    double sps[2];
    for (int k = 0; k < 2; k++) {
        sps[k] = median(r[k].cps, reps);
        printf("%-5s %8.0f samples per CPU s (%8.0f per wall s), one epoch's mean loss %.4f\n",
               r[k].name, sps[k], median(r[k].wps, reps), r[k].loss);
    }
    printf("moge_sps=%.0f mlp_sps=%.0f ratio=%.3f kernel=%s\n", sps[0], sps[1], sps[0] / sps[1],
           kernel);
    for (int k = 0; k < 2; k++) {
        flm_model_free(r[k].m);
        free(r[k].init);
        free(r[k].w);
    }
    flm_dataset_free(train);
    return 0;
}
