/* bench_train: trains a model on Fashion-MNIST and prints samples/s and test accuracy beside
 * PyTorch (bench_train_torch.py, /usr/bin/python3 with torch 1.13) doing the same in the same run:
 * identical model, data, batch size, learning rate and thread count.
 *
 *   build/bench/bench_train --model cnn --batch 10 --threads 1 --samples 6000 [--reps 3]
 *
 * Ours: one epoch of flm_train_local over the samples, R times (--reps), each from the same
 * initial weights in the same batch order (the same work each time), after an untimed warm-up
 * batch. Peer: PyTorch's training loop over the same samples, started once before the first
 * repetition (its data loaded, its warm-up step done) and run R times the same way, alternated
 * with ours: ours 1, PyTorch 1, ours 2, PyTorch 2, ... (while one trains, the other waits), so
 * both meet the same stretches of a shared machine's load. Figures: the medians of the R
 * repetitions, wall and CPU time (min and max beside); the ratio is of the medians. The test
 * accuracy is that of the trained weights (every repetition trains the same ones).
 *
 * Also prints: the sgemm peak of this machine (1024^3, same thread count), the throughput of every
 * GEMM the dense and conv layers issue in one training step (replayed in isolation with the same
 * shapes and transposes; a dense layer's backward is the fused flm_dense_bwd_update, two GEMMs'
 * worth of flops in one pass over W) as a fraction of that peak, and the memory of
 * training against parameters + gradients + activations. The peak is OpenBLAS's core: where
 * fedrop's own AVX-512 kernels run beside a core without them (kernel "Haswell+AVX512"), the
 * shapes they take can exceed it. Last line (medians; without the peer, --no-torch or its
 * failure, the last two fields before kernel= are "none"):
 *   samples_per_s=<float> test_acc=<float> torch_samples_per_s=<float> ratio=<ours / torch>
 *   ratio_cpu=<the same per CPU second> kernel=<openblas core[+AVX512]>
 * (On a shared machine ratio_cpu is the steadier: the wall ratio moved 1.30-2.36 between two runs
 * at load average 5-7 on 2 cores, ratio_cpu 1.74-1.84.)
 * Not a test: figures depend on the machine and its load (CPU seconds are printed beside wall
 * seconds because the machine is shared).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_child.h"
#include "bench_clock.h"
#include "bench_stat.h"
#include "fl_rng.h"
#include "flm_arch.h"
#include "flm_blas.h"
#include "flm_data.h"
#include "flm_model.h"
#include "flm_optim.h"

/* kB of a /proc/self/status field (VmRSS, VmHWM), or -1. */
static long proc_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    const size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Best-of-reps GFLOP/s of one GEMM shape on fresh operands. */
static double gemm_gflops(int ta, int tb, int M, int N, int K, float beta, double min_s, int single)
{
    const int lda = ta ? M : K, ldb = tb ? K : N;
    float *A = malloc((size_t)M * K * 4), *B = malloc((size_t)K * N * 4), *C = malloc((size_t)M * N * 4);
    if (!A || !B || !C) {
        free(A);
        free(B);
        free(C);
        return 0;
    }
    for (size_t i = 0; i < (size_t)M * K; i++)
        A[i] = (float)(i % 17) * 0.01f;
    for (size_t i = 0; i < (size_t)K * N; i++)
        B[i] = (float)(i % 13) * 0.01f;
    memset(C, 0, (size_t)M * N * 4);
    flm_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, N);
    double best = 1e30, spent = 0;
    int reps = 0;
    while (spent < min_s || reps < 3) {
        /* CPU time with one thread: the machine is shared, and a descheduled GEMM is not slow */
        const double t = single ? bench_cpu_s() : bench_wall_s();
        flm_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, N);
        const double dt = (single ? bench_cpu_s() : bench_wall_s()) - t;
        best = dt < best ? dt : best;
        spent += dt;
        reps++;
    }
    free(A);
    free(B);
    free(C);
    return 2.0 * M * N * K / best / 1e9;
}

/* Best-of-reps GFLOP/s of the fused dense backward + SGD step (2 GEMMs' worth of flops). */
static double fused_gflops(int B, int C, int OC, double min_s, int single)
{
    float *W = malloc((size_t)OC * C * 4), *x = malloc((size_t)B * C * 4);
    float *dout = malloc((size_t)B * OC * 4), *dinp = malloc((size_t)B * C * 4);
    if (!W || !x || !dout || !dinp) {
        free(W);
        free(x);
        free(dout);
        free(dinp);
        return 0;
    }
    for (size_t i = 0; i < (size_t)OC * C; i++)
        W[i] = (float)(i % 17) * 0.01f;
    for (size_t i = 0; i < (size_t)B * C; i++)
        x[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)B * OC; i++)
        dout[i] = (float)(i % 7) * 0.001f;
    double best = 1e30, spent = 0;
    int reps = 0;
    while (spent < min_s || reps < 3) {
        const double t = single ? bench_cpu_s() : bench_wall_s();
        flm_dense_bwd_update(dinp, W, dout, x, B, C, OC, -1e-6f, 1.0f);
        const double dt = (single ? bench_cpu_s() : bench_wall_s()) - t;
        best = dt < best ? dt : best;
        spent += dt;
        reps++;
    }
    free(W);
    free(x);
    free(dout);
    free(dinp);
    return 4.0 * B * C * OC / best / 1e9;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_train [--model cnn] [--batch 10] [--threads 1] [--samples 6000]\n"
               "                   [--lr 0.05] [--seed 1] [--reps 3] [--no-torch] [--data DIR]\n"
               "                   [--test-samples N]\n");
}

static void help(void)
{
    usage(stdout);
    printf("Trains the cnn on Fashion-MNIST with fedrop's engine (flm_train_local): samples a\n"
           "second, wall and CPU, medians of --reps one-epoch repetitions of the same work, and\n"
           "the test accuracy; the BLAS kernel's name; each layer GEMM against the sgemm peak.\n"
           "Peer: PyTorch 1.13 (bench/bench_train_torch.py under /usr/bin/python3) with the same\n"
           "model, samples, batch, lr and threads, each of its repetitions the same work, alternated\n"
           "with ours in the same run. Last line: samples_per_s=<median> test_acc=<f>\n"
           "torch_samples_per_s=<median> ratio=<ours / torch> ratio_cpu=<the same per CPU\n"
           "second> kernel=<name>.\n"
           "--model: cnn (cnn:10, the only one); --no-torch: ours alone (the peer's figures\n"
           "then 'none'); --data DIR: Fashion-MNIST's files there (default $FEDROP_DATA_DIR or\n"
           "/usr/share/datasets/fashion-mnist); --test-samples N: ours' test accuracy on the\n"
           "first N test images only (default all 10,000; for profiling the training alone).\n"
           "Details: the comment at the top of bench/bench_train.c.\n");
}


/* One repetition of the PyTorch peer: its samples a second (wall and CPU), or -1. */
static int torch_rep(bench_child *t, double *sps, double *cps)
{
    char line[512];
    if (bench_child_rep(t, line, sizeof line) != 0 ||
        sscanf(line, "rep samples_per_s=%lf samples_per_cpu_s=%lf", sps, cps) != 2)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *model = "cnn", *data_dir = NULL;
    int B = 10, threads = 1, run_torch = 1, reps = 3;
    long samples = 6000, test_samples = -1;
    double lr = 0.05;
    unsigned long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        }
        if (!strcmp(a, "--no-torch")) {
            run_torch = 0;
            continue;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--batch")) B = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--samples")) samples = atol(v);
        else if (!strcmp(a, "--lr")) lr = atof(v);
        else if (!strcmp(a, "--seed")) seed = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--test-samples")) test_samples = atol(v);
        else if (!strcmp(a, "--data")) data_dir = v;
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else {
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (strcmp(model, "cnn") && strcmp(model, "cnn:10")) { /* a prefix let cnn:100 through */
        fprintf(stderr, "bench_train: only the cnn on Fashion-MNIST (cnn, cnn:10) is benchmarked\n");
        return 2;
    }
    if (B < 1 || threads < 1 || samples < 1 || reps < 1 || reps > 63) {
        usage(stderr);
        fprintf(stderr, "(--batch, --threads, --samples >= 1; --reps 1..63)\n");
        return 2;
    }
    /* the kernel first: this sets OPENBLAS_CORETYPE, which the PyTorch child inherits too */
    if (flm_blas_init() != FL_OK)
        fprintf(stderr, "bench_train: OpenBLAS not loadable, running the reference GEMM\n");
    flm_blas_set_threads(threads);
    char core[96];
    flm_blas_kernel_name(core, sizeof core); /* as fl_sim's summary.json "blas" */
    const char *set = flm_blas_coretype_set();
    /* A name OpenBLAS does not know (a typo) or will not run here is passed over by it, which
     * then runs its own detection's pick: said so, with what runs, not as the user's kernel.
     * Compared with openblas_get_corename() (flm_blas_env_coretype_ignored). */
    const char *ignored = flm_blas_env_coretype_ignored();
    printf("kernel: %s (%s)\n", core,
           set       ? "OPENBLAS_CORETYPE chosen by fedrop from cpuid"
           : ignored ? "OpenBLAS's own detection"
                     : "OPENBLAS_CORETYPE from the environment / OpenBLAS");
    if (ignored)
        printf("kernel: OPENBLAS_CORETYPE=%s in the environment is not what OpenBLAS runs (a name "
               "it does not know, or a kernel it will not run on this CPU): it runs %s%s%s%s%s%s"
               "\n", ignored, core, flm_blas_cpu_coretype() ? "; fedrop picks " : "",
               flm_blas_cpu_coretype() ? flm_blas_cpu_coretype() : "",
               flm_blas_cpu_coretype() ? " for this CPU: run `env -u OPENBLAS_CORETYPE " : "",
               flm_blas_cpu_coretype() ? argv[0] : "",
               flm_blas_cpu_coretype() ? " ...` for its figures" : "");
    else if (flm_blas_env_coretype_other(NULL)) /* the figures below are of the user's kernel */
        printf("kernel: fedrop picks %s for this CPU when OPENBLAS_CORETYPE is unset; run "
               "`env -u OPENBLAS_CORETYPE %s ...` for its figures\n", flm_blas_cpu_coretype(),
               argv[0]);

    char err[256];
    flm_dataset *train = NULL, *test = NULL;
    if (flm_dataset_load_named(&train, "fashion-mnist", "train", data_dir, err, sizeof err) != FL_OK ||
        flm_dataset_load_named(&test, "fashion-mnist", "test", data_dir, err, sizeof err) != FL_OK) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    if ((size_t)samples > train->N)
        samples = (long)train->N;

    flm_arch a;
    if (flm_arch_parse("cnn:10", &a, err, sizeof err) != FL_OK) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    /* The initial weights every repetition starts from: this program's copy, made before rss0
     * so that the RSS growth printed below counts the engine and its parameters alone. */
    float *w0 = malloc(a.n_params * sizeof(float));
    if (!w0) {
        fprintf(stderr, "bench_train: out of memory\n");
        return 1;
    }
    fl_rng ir = fl_rng_stream(seed, 0, 0, FL_RNG_INIT);
    flm_model_init_params(&a, w0, &ir);
    const long rss0 = proc_kb("VmRSS");
    flm_model *m = NULL;
    float *w = malloc(a.n_params * sizeof(float));
    if (!w || flm_model_new(&a, B, &m) != FL_OK) {
        fprintf(stderr, "bench_train: out of memory\n");
        return 1;
    }
    memcpy(w, w0, a.n_params * sizeof(float));
    /* a random subset of `samples` training images, in a random order per epoch */
    uint32_t *idx = malloc(train->N * sizeof *idx);
    for (size_t i = 0; i < train->N; i++)
        idx[i] = (uint32_t)i;
    fl_rng pr = fl_rng_stream(seed, 0, 0, FL_RNG_PARTITION);
    for (size_t i = train->N - 1; i > 0; i--) {
        const size_t j = fl_rng_below(&pr, (uint32_t)(i + 1));
        const uint32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    flm_samples tr = {train->x, NULL, train->y, idx, (size_t)samples};
    flm_samples te = {test->x, NULL, test->y, NULL, test->N};
    if (test_samples >= 1 && (size_t)test_samples < test->N)
        te.n = (size_t)test_samples; /* for profiling the training alone */
    const flm_sgd o = {(float)lr, 0, 0, 0};
    /* warm-up (kernel load, first touch of the buffers), outside the timed region: a forward
     * and backward of one batch into the model's gradient buffer, leaving the weights as they are */
    {
        float l;
        if (flm_model_forward_samples(m, w, &tr, 0, B, &l) == FL_OK)
            flm_model_backward(m, w, flm_model_grads(m));
    }

    /* The peer, started now (loading torch and the data takes seconds) and waiting for its
     * first repetition. */
    signal(SIGPIPE, SIG_IGN); /* a peer that died is seen as a failed write */
    bench_child tp = {0};
    int have_torch = 0;
    char idx_path[1024] = "";
    if (run_torch) {
        char script[4096];
        if (bench_script_find("bench_train_torch.py", script, sizeof script) != 0) {
            fprintf(stderr, "bench_train: bench_train_torch.py not found (set FEDROP_SOURCE_ROOT)\n");
        } else {
            /* the same training subset: hand our indexes over in a temporary file, which the
             * peer reads before it says "ready" (removed then, or however the run ends) */
            const char *td = getenv("TMPDIR");
            snprintf(idx_path, sizeof idx_path, "%s/bench_train_idx_%ld.bin",
                     td && *td ? td : "/tmp", (long)getpid());
            bench_tmp_add(idx_path);
            FILE *fi = fopen(idx_path, "wb");
            if (!fi || fwrite(idx, sizeof *idx, (size_t)samples, fi) != (size_t)samples)
                idx_path[0] = '\0';
            if (fi)
                fclose(fi);
            char cmd[8192];
            /* torch.set_num_threads does not reach the OpenBLAS inside Debian's torch: pin every
             * thread pool of the child to the same count */
            snprintf(cmd, sizeof cmd,
                     "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d MKL_NUM_THREADS=%d "
                     "exec /usr/bin/python3 %s --batch %d --threads %d --samples %ld --lr %g "
                     "--seed %lu --reps %d --interleave%s%s%s%s",
                     threads, threads, threads, script, B, threads, samples, lr, seed, reps,
                     data_dir ? " --data " : "", data_dir ? data_dir : "",
                     idx_path[0] ? " --index-file " : "", idx_path);
            have_torch = bench_child_start(&tp, cmd) == 0;
            bench_tmp_remove(); /* read by now (or never, the peer gone) */
            if (!have_torch)
                fprintf(stderr, "bench_train: the PyTorch peer ended before it was ready (its "
                                "errors above; scripts/install-deps --bench installs python3-torch, "
                                "or run with --no-torch)\n");
        }
    }

    /* R repetitions of the same epoch, each side's alternated with the other's */
    double f_sps[64], f_cps[64], t_sps[64], t_cps[64], f_wall[64], f_cpu[64];
    double mean = 0;
    for (int r = 0; r < reps; r++) {
        memcpy(w, w0, a.n_params * sizeof(float));
        fl_rng order = fl_rng_stream(seed, 0, 0, FL_RNG_BATCH);
        const double t0 = bench_wall_s(), c0 = bench_cpu_s();
        const fl_status st = flm_train_local(m, w, NULL, &tr, 1, &o, &order, &mean);
        f_wall[r] = bench_wall_s() - t0;
        f_cpu[r] = bench_cpu_s() - c0;
        if (st != FL_OK) {
            fprintf(stderr, "bench_train: training failed: %s\n", fl_strerror(st));
            return 1;
        }
        f_sps[r] = (double)samples / f_wall[r];
        f_cps[r] = (double)samples / f_cpu[r];
        printf("rep %d: fedrop %.1f samples/s (%.1f per cpu s)", r + 1, f_sps[r], f_cps[r]);
        if (have_torch && torch_rep(&tp, &t_sps[r], &t_cps[r]) != 0) {
            fprintf(stderr, "bench_train: the PyTorch peer failed in repetition %d\n", r + 1);
            have_torch = 0;
        }
        if (have_torch)
            printf(", pytorch %.1f samples/s (%.1f per cpu s)", t_sps[r], t_cps[r]);
        printf("\n");
        fflush(stdout);
    }
    /* the peer's last line (its medians, its test accuracy) before anything else is measured */
    double tacc = 0, trss = 0;
    if (tp.pid > 0) {
        char last[512];
        bench_child_end(&tp, last, sizeof last);
        double lsps, lcps;
        if (have_torch &&
            sscanf(last, "samples_per_s=%lf test_acc=%lf samples_per_cpu_s=%lf peak_rss_mb=%lf",
                   &lsps, &tacc, &lcps, &trss) != 4) {
            fprintf(stderr, "bench_train: the PyTorch peer gave no last line (%s)\n", last);
            have_torch = 0;
        }
    }
    const long hwm = proc_kb("VmHWM");
    double tl = 0, acc = 0;
    flm_model_evaluate(m, w, &te, &tl, &acc);
    const bench_stat fs = bench_stat_of(f_sps, reps), fc = bench_stat_of(f_cps, reps);
    const bench_stat fw = bench_stat_of(f_wall, reps), fu = bench_stat_of(f_cpu, reps);
    const double sps = fs.med, spc = fc.med, dt = fw.med, dc = fu.med;
    printf("fedrop: %ld samples, batch %d, lr %g, %d thread(s), %d reps: median %.2f s wall, %.2f s "
           "cpu, %.1f samples/s (%.1f-%.1f), %.1f per cpu s (%.1f-%.1f), train loss %.4f, test loss "
           "%.4f acc %.4f\n",
           samples, B, lr, threads, reps, dt, dc, sps, fs.lo, fs.hi, spc, fc.lo, fc.hi, mean, tl,
           acc);

    /* memory, in MB of 10^6 bytes (hwm and rss0 are /proc's kB, which are KiB) */
    const double params_mb = (double)a.n_params * 4 / 1e6;
    const double acts_mb = (double)flm_arch_activation_floats(&a) * B * 4 / 1e6;
    const double base_mb = 2 * params_mb + acts_mb;
    const double engine_mb = (double)flm_model_bytes(m) / 1e6 + params_mb;
    printf("memory: params %.1f MB + grads %.1f MB + activations %.1f MB = %.1f MB; engine "
           "allocates %.1f MB incl. params (%.2fx); process RSS grew %.1f MB during setup+training "
           "(%.2fx, includes OpenBLAS buffers)\n",
           params_mb, params_mb, acts_mb, base_mb, engine_mb, engine_mb / base_mb,
           (double)(hwm - rss0) * 1024 / 1e6, (double)(hwm - rss0) * 1024 / 1e6 / base_mb);

    /* GEMM efficiency: the GEMMs of one training step at this batch size */
    const double peak = gemm_gflops(0, 0, 1024, 1024, 1024, 0.0f, 0.5, threads == 1);
    printf("sgemm peak (1024^3, %d thread(s)): %.1f GFLOP/s\n", threads, peak);
    struct {
        const char *what;
        int fused, ta, tb, M, N, K, count;
        float beta;
    } g[] = {
        {"conv0 fwd      W(32x25) col(25x784)", 0, 0, 0, 32, 784, 25, B, 1.0f},
        {"conv0 dW       dout col^T", 0, 0, 1, 32, 25, 784, B, 1.0f},
        {"conv1 fwd      W(64x800) col(800x196)", 0, 0, 0, 64, 196, 800, B, 1.0f},
        {"conv1 dW       dout col^T", 0, 0, 1, 64, 800, 196, B, 1.0f},
        {"conv1 dcol     W^T dout", 0, 1, 0, 800, 196, 64, B, 0.0f},
        {"dense0 fwd     x W^T", 0, 0, 1, B, 2048, 3136, 1, 1.0f},
        {"dense0 bwd+SGD dinp=dout W; W+=-lr dout^T x (fused)", 1, 0, 0, B, 3136, 2048, 1, 0.0f},
        {"dense1 fwd     x W^T", 0, 0, 1, B, 10, 2048, 1, 1.0f},
        {"dense1 bwd+SGD (fused)", 1, 0, 0, B, 2048, 10, 1, 0.0f},
    };
    double flops = 0, secs = 0;
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        const double gf = g[i].fused ? fused_gflops(g[i].M, g[i].N, g[i].K, 0.2, threads == 1)
                                     : gemm_gflops(g[i].ta, g[i].tb, g[i].M, g[i].N, g[i].K,
                                                   g[i].beta, 0.2, threads == 1);
        const double f = (g[i].fused ? 4.0 : 2.0) * g[i].M * g[i].N * g[i].K * g[i].count;
        flops += f;
        secs += f / (gf * 1e9);
        printf("  %-52s M=%-4d N=%-4d K=%-4d x%-3d %6.1f GFLOP/s %5.1f%% of peak\n", g[i].what,
               g[i].M, g[i].N, g[i].K, g[i].count, gf, 100 * gf / peak);
    }
    const double step_s = dt / ((double)samples / B);
    printf("  all layer GEMMs of a step: %.1f MFLOP in %.2f ms = %.1f GFLOP/s (%.1f%% of peak); "
           "measured step %.2f ms wall, %.2f ms cpu (GEMMs %.0f%% of the cpu time)\n",
           flops / 1e6, secs * 1e3, flops / secs / 1e9, 100 * flops / secs / 1e9 / peak,
           step_s * 1e3, dc / ((double)samples / B) * 1e3, 100 * secs / (dc / ((double)samples / B)));

    char torch_f[32] = "none", ratio_f[32] = "none", ratio_c[32] = "none";
    if (have_torch) {
        const bench_stat ts = bench_stat_of(t_sps, reps), tc = bench_stat_of(t_cps, reps);
        printf("pytorch: %d reps: median %.1f samples/s (%.1f-%.1f), %.1f per cpu s (%.1f-%.1f), "
               "test acc %.4f, peak RSS %.0f MB (same OPENBLAS_CORETYPE; conv through oneDNN)\n",
               reps, ts.med, ts.lo, ts.hi, tc.med, tc.lo, tc.hi, tacc, trss);
        printf("ratio fedrop/pytorch (of the medians): %.2fx samples/s wall, %.2fx per cpu s\n",
               sps / ts.med, spc / tc.med);
        snprintf(torch_f, sizeof torch_f, "%.1f", ts.med);
        snprintf(ratio_f, sizeof ratio_f, "%.3f", sps / ts.med);
        snprintf(ratio_c, sizeof ratio_c, "%.3f", spc / tc.med);
    } else if (run_torch) {
        fprintf(stderr, "bench_train: no PyTorch figures (see above)\n");
    }
    printf("samples_per_s=%.1f test_acc=%.4f torch_samples_per_s=%s ratio=%s ratio_cpu=%s "
           "kernel=%s\n", sps, acc, torch_f, ratio_f, ratio_c, core);
    flm_model_free(m);
    free(w);
    free(w0);
    free(idx);
    flm_dataset_free(train);
    flm_dataset_free(test);
    return 0;
}
