/* flsim_experiment.c: `fl_sim experiment afd`, the comparison of docs/AFD.md ("Measuring it"):
 * full, fd, afd-single, afd-multi, each without and with compression, over several seeds, with a
 * table of ratios to uncompressed FedAvg and plots of accuracy against virtual time and bytes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fl_fs.h"
#include "flm_arch.h"
#include "flsim.h"
#include "flsim_internal.h"

#ifdef FLSIM_HAVE_MPI
#include <mpi.h>
#endif

enum { N_CONFIGS = 8 };

static const struct {
    const char *name, *policy;
    int compress;
} g_cfgs[N_CONFIGS] = {
    {"full", "full", 0},             {"full+c", "full", 1},
    {"fd", "fd", 0},                 {"fd+c", "fd", 1},
    {"afd-single", "afd-single", 0}, {"afd-single+c", "afd-single", 1},
    {"afd-multi", "afd-multi", 0},   {"afd-multi+c", "afd-multi", 1},
};

/* Preset option lists ("name=value"), applied in order to the defaults. */
static const char *g_small[] = {
    "dataset=fashion-mnist", "train-samples=12000", "model=mlp", "clients=200", "per-round=20",
    "rounds=100", "partition=dirichlet:0.3", "epochs=1", "batch=10", "lr=0.05", "keep=0.75",
    "eval-every=1", "eval-samples=0", "target-acc=0.70", "keep-going=1",
    NULL};
static const char *g_full[] = {
    "dataset=fashion-mnist", "train-samples=0", "model=cnn", "clients=1000", "per-round=50",
    "rounds=200", "partition=dirichlet:0.3", "epochs=1", "batch=10", "lr=0.05", "keep=0.75",
    "eval-every=5", "eval-samples=0", "target-acc=0.80", "keep-going=1",
    NULL};
static const char *const g_down_c = "rot+q4+zstd", *const g_up_c = "rot+q2+zstd";

static int rank0(void)
{
#ifdef FLSIM_HAVE_MPI
    int inited = 0, r = 0;
    MPI_Initialized(&inited);
    if (inited)
        MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r == 0;
#else
    return 1;
#endif
}

static fl_status apply(flsim_config *c, const char *kv, char *err, size_t errlen)
{
    char key[128];
    const char *eq = strchr(kv, '=');
    if (!eq || (size_t)(eq - kv) >= sizeof key)
        return FL_ERR_INVALID_ARG;
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    return flsim_config_set(c, key, eq + 1, err, errlen);
}

/* Rank 0's codes to every rank. */
static void share_codes(int *codes, int n)
{
#ifdef FLSIM_HAVE_MPI
    int inited = 0, size = 1;
    MPI_Initialized(&inited);
    if (inited)
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1)
        MPI_Bcast(codes, n, MPI_INT, 0, MPI_COMM_WORLD);
#else
    (void)codes;
    (void)n;
#endif
}

/* flsim_run's per-round callback, passed on as FLSIM_EXP_ROUND events. */
typedef struct exp_cb {
    const flsim_experiment *e;
    flsim_exp_event *ev;
} exp_cb;

static int on_round(void *user, const flsim_round_record *r, const flsim_result *sofar)
{
    const exp_cb *cb = user;
    cb->ev->kind = FLSIM_EXP_ROUND;
    cb->ev->round = r;
    cb->ev->res = sofar;
    const int stop = cb->e->progress(cb->e->progress_user, cb->ev);
    cb->ev->round = NULL;
    cb->ev->res = NULL;
    return stop;
}

/* The settings of configuration c, seed index s. */
static void config_of(const flsim_config *base, int c, uint32_t s, const char *down_c,
                      const char *up_c, flsim_config *cfg)
{
    *cfg = *base;
    flsim_config_set(cfg, "policy", g_cfgs[c].policy, NULL, 0);
    cfg->seed = s + 1;
    snprintf(cfg->down_codec, sizeof cfg->down_codec, "%s", g_cfgs[c].compress ? down_c : "none");
    snprintf(cfg->up_codec, sizeof cfg->up_codec, "%s", g_cfgs[c].compress ? up_c : "none");
    /* a run is kept whole or trained again (runs/), never resumed in the middle */
    cfg->out[0] = '\0';
    cfg->checkpoint_every = 0;
    cfg->resume = 0;
}

typedef struct run_out {
    flsim_result res;
    flsim_round_record *rec;
    size_t n;
} run_out;

/* Mean and sample standard deviation (n - 1) of x's finite values: NaN for the mean of none
 * and for the spread of fewer than two (table.csv's "nan": one seed has no spread, which a 0
 * would claim). */
static void mean_sd(const double *x, int n, double *m, double *sd)
{
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) {
            s += x[i];
            k++;
        }
    *m = k ? s / k : NAN;
    double v = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]))
            v += (x[i] - *m) * (x[i] - *m);
    *sd = k > 1 ? sqrt(v / (k - 1)) : NAN;
}

/* The experiment's outputs (tables, curves, plot data and script) are written with stdio into
 * memory, then each to its file atomically (flsim_write_atomic: a temporary, fsync, rename): a
 * crash or a full disk leaves the file as it was or whole, never cut (they were written in
 * place, and a kill mid-table left half a table that read as a result). */
typedef struct out_file {
    FILE *f;
    char *buf;
    size_t len;
} out_file;

/* o->f, the stream to fprintf to; NULL (errno set) when no memory. */
static FILE *out_open(out_file *o)
{
    o->buf = NULL;
    o->len = 0;
    o->f = open_memstream(&o->buf, &o->len);
    return o->f;
}

/* Ends o's stream and, when every byte was formatted and write is set, writes the text to path
 * atomically (removing what a crash mid-write left beside it first): FL_OK, or FL_ERR_NOMEM /
 * FL_ERR_IO with "cannot write PATH: reason" in err (which may be NULL). */
static fl_status out_commit(out_file *o, int write, const char *path, char *err, size_t errlen)
{
    int e = ferror(o->f) ? ENOMEM : 0;
    if (fclose(o->f) != 0 && !e)
        e = errno ? errno : ENOMEM;
    o->f = NULL;
    fl_status st = FL_OK;
    if (e) {
        if (err && errlen)
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        st = e == ENOMEM ? FL_ERR_NOMEM : FL_ERR_IO;
    } else if (write) {
        (void)fl_atomic_sweep(path);
        st = flsim_write_atomic(path, o->buf, o->len, err, errlen);
    }
    free(o->buf);
    o->buf = NULL;
    return st;
}

/* Runs `gnuplot plots.gp` in dir, without a shell (dir is the user's --out, any bytes), its
 * output discarded. The plots of an earlier run in dir are removed first, so that none is left
 * looking current when gnuplot fails. 0 when gnuplot ran and wrote every plot. */
static int run_gnuplot(const char *dir)
{
    static const char *const plots[4] = {"acc_vs_time.png", "acc_vs_bytes.png", "acc_vs_time.svg",
                                         "acc_vs_bytes.svg"};
    char path[FLSIM_STR + 32];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, plots[i]);
        unlink(path);
    }
    const pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* fl_sim's main blocked its stop signals for its signal thread (fl_sig.h); a mask
         * outlives exec, and gnuplot must stop on a Ctrl-C of its own. */
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        const int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, STDIN_FILENO);
            dup2(nul, STDOUT_FILENO);
            dup2(nul, STDERR_FILENO);
        }
        if (chdir(dir) == 0)
            execlp("gnuplot", "gnuplot", "plots.gp", (char *)NULL);
        _exit(127);
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        return -1;
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, plots[i]);
        if (access(path, F_OK) != 0)
            return -1;
    }
    return 0;
}

/* The experiment's base settings (the preset, then the overrides) and its codecs in base, down_c
 * and up_c (FLSIM_CODEC_STR bytes each), every run's checked before anything loads: a value out of range is
 * the caller's (FL_ERR_CONFIG), found at once, not when that run's turn comes. */
static fl_status exp_settings(const flsim_experiment *e, flsim_config *base, char *down_c,
                              char *up_c, char *err, size_t errlen)
{
    const char **preset = strcmp(e->preset, "full") == 0 ? g_full : g_small;
    *base = flsim_config_default();
    char e2[2048];
    for (int i = 0; preset[i]; i++)
        if (apply(base, preset[i], e2, sizeof e2) != FL_OK) {
            snprintf(err, errlen, "preset: %s", e2);
            return FL_ERR_INTERNAL;
        }
    /* The compressed variants use these codecs unless overridden. */
    snprintf(down_c, FLSIM_CODEC_STR, "%s", g_down_c);
    snprintf(up_c, FLSIM_CODEC_STR, "%s", g_up_c);
    for (int i = 0; e->overrides[i]; i++) {
        const int down = !strncmp(e->overrides[i], "down-codec=", 11);
        if (down || !strncmp(e->overrides[i], "up-codec=", 9)) {
            /* checked as a run's would be (a spec, and one that fits), on a scratch copy */
            flsim_config c = *base;
            if (apply(&c, e->overrides[i], e2, sizeof e2) != FL_OK) {
                snprintf(err, errlen, "%s", e2);
                return FL_ERR_CONFIG;
            }
            snprintf(down ? down_c : up_c, FLSIM_CODEC_STR, "%s", down ? c.down_codec : c.up_codec);
            continue;
        }
        if (apply(base, e->overrides[i], e2, sizeof e2) != FL_OK) {
            snprintf(err, errlen, "%s", e2);
            return FL_ERR_CONFIG;
        }
    }
    /* The runs saved under DIR/runs then name their files alike from any directory. */
    if (flsim_config_paths_absolute(base, e2, sizeof e2) != FL_OK) {
        snprintf(err, errlen, "%s", e2);
        return FL_ERR_CONFIG;
    }
    /* The presets' keep-going goes with their target: --target-acc 0 (none) drops both. */
    if (base->target_acc == 0)
        base->keep_going = 0;
    base->quiet = 1;
    for (int c = 0; c < N_CONFIGS; c++) {
        flsim_config cfg;
        config_of(base, c, 0, down_c, up_c, &cfg);
        if (flsim_config_validate(&cfg, e2, sizeof e2) != FL_OK) {
            snprintf(err, errlen, "%s: %s", g_cfgs[c].name, e2);
            return FL_ERR_CONFIG;
        }
    }
    return FL_OK;
}

/* flsim_experiment_afd, holding DIR's lock in *lock (rank 0) once it has it */
static fl_status experiment_afd(const flsim_experiment *e, const fl_logger *log, char *err,
                                size_t errlen, int *lock, int *said)
{
    flsim_config base;
    char down_c[FLSIM_CODEC_STR], up_c[FLSIM_CODEC_STR];
    char e2[2048]; /* room for two "cannot write PATH: reason" */
    fl_status st0 = exp_settings(e, &base, down_c, up_c, err, errlen);
    /* agreed (every rank checks them here), so that settings every rank refuses are said once */
    if (!flsim_ranks_all_ok(st0 == FL_OK)) {
        *said = st0 == FL_OK ? 2 : 1;
        if (st0 == FL_OK) {
            snprintf(err, errlen, "another MPI rank refused the settings (its message says why)");
            st0 = FL_ERR_CONFIG;
        }
        return st0;
    }
    const uint32_t seeds = e->seeds ? e->seeds : 3;
    const int r0 = rank0();
    char path[FLSIM_STR + 128], runs_dir[FLSIM_STR + 16];
    /* DIR/runs before the dataset loads (which may take a while): a --out that cannot hold the
     * runs stops the experiment at once, on every rank. What rank 0 creates (made stays 0 on the
     * others) is removed again if the experiment fails while it is still empty: runs finished
     * earlier are never touched. */
    int mk = FL_OK;
    size_t made = 0;
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", e->out);
    if (r0 && flsim_mkdirs(runs_dir, &made, e2, sizeof e2) != 0) {
        snprintf(err, errlen, "--out: %s", e2);
        mk = FL_ERR_IO;
    } else if (r0 && (mk = flsim_out_lock(e->out, lock, e2, sizeof e2)) != FL_OK) {
        snprintf(err, errlen, "%s", e2); /* another run's DIR: left as it was */
        flsim_rmdirs_made(runs_dir, made);
    } else if (r0) {
        /* A directory where the experiment writes a file would fail it at its end, after every
         * run trained: refused now, as a single run refuses one in place of its rounds.csv. */
        char name[64];
        for (int c = -4; c < N_CONFIGS && mk == FL_OK; c++) {
            static const char *const fixed[4] = {"table.csv", "table.md", "curves.csv", "plots.gp"};
            if (c < 0)
                snprintf(name, sizeof name, "%s", fixed[c + 4]);
            else
                snprintf(name, sizeof name, "mean-%s.dat", g_cfgs[c].name);
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s", e->out, name);
            if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
                snprintf(err, errlen, "--out: %s is a directory, where the experiment writes a "
                         "file", path);
                flsim_rmdirs_made(runs_dir, made);
                mk = FL_ERR_IO;
            }
        }
    }
    share_codes(&mk, 1);
    if (mk != FL_OK) {
        if (!r0)
            snprintf(err, errlen, "rank 0: cannot %s %s", mk == FL_ERR_STATE ? "take" : "create",
                     mk == FL_ERR_STATE ? e->out : runs_dir);
        *said = r0 ? 1 : 2;
        return (fl_status)mk;
    }
    flsim_data data;
    fl_status st = flsim_data_load_said(&data, &base, e2, sizeof e2, said);
    if (st != FL_OK) {
        snprintf(err, errlen, "dataset: %s", e2);
        flsim_rmdirs_made(runs_dir, made);
        return st;
    }
    /* The model's canonical spec: a saved run of `--model mlp` is the same as one of its full
     * spec (or the reverse). A spec that does not parse fails in its first run, as without runs
     * saved. */
    flm_arch arch;
    char spec[FLSIM_STR];
    flsim_model_spec(&base, data.train, spec, sizeof spec);
    const char *want_arch = flm_arch_parse(spec, &arch, NULL, 0) == FL_OK ? arch.spec : NULL;
    /* --keep-layers against the model's droppable layers, before any run: fd and afd refuse a
     * longer list (flsim_run), but full, which takes it whatever its length, runs first, and
     * would have trained its runs for nothing. Agreed, as the settings are. */
    const int kl_ok = !want_arch || flsim_keep_layers_fit(&base, arch.spec, arch.n_drop, err, errlen);
    /* ... and a list that keeps every unit of each droppable layer: said once here, not by
     * each fd and afd run (flsim_run is given the data, and leaves it to the experiment) */
    char whole[FLM_MAX_LAYERS * 24 + FLSIM_STR + 160];
    if (kl_ok && want_arch && r0 && log &&
        flsim_keep_layers_whole(&base, arch.spec, arch.n_drop, whole, sizeof whole))
        fl_log(log, FL_LOG_WARN, "%s: fd and afd then train the whole model, as full does", whole);
    if (!flsim_ranks_all_ok(kl_ok)) {
        if (kl_ok)
            snprintf(err, errlen, "another MPI rank refused the settings (its message says why)");
        *said = kl_ok ? 2 : 1;
        flsim_data_free(&data);
        flsim_rmdirs_made(runs_dir, made);
        return FL_ERR_CONFIG;
    }
    run_out *runs = calloc((size_t)N_CONFIGS * seeds, sizeof *runs);
    if (!runs) {
        flsim_data_free(&data);
        flsim_rmdirs_made(runs_dir, made);
        return FL_ERR_NOMEM;
    }
    /* Pass 1 (rank 0): read back the runs finished earlier under this --out with the same
     * settings (an interrupted experiment, or one with fewer seeds), so that a saved run with
     * other settings or a damaged one stops the experiment before any training. Every rank
     * learns which runs remain. */
    const size_t n_runs = (size_t)N_CONFIGS * seeds;
    size_t n_done = 0;
    int *done = calloc(n_runs + 1, sizeof *done); /* [n_runs]: rank 0's status */
    if (!done)
        st = FL_ERR_NOMEM;
    if (err && errlen)
        err[0] = '\0';
    char blas_here[64], other_blas[sizeof path + 80] = "";
    size_t n_other_blas = 0;
    flsim_blas_name(blas_here, sizeof blas_here);
    /* The trace's path is a setting, its rows are not: a saved run is read back only when its
     * summary.json's trace_sha256 is the digest of the rows --trace holds now. One without it
     * (null or absent: an fl_sim from before it was recorded) is trained again too, as nothing
     * says its rows were these. */
    uint8_t trace_sha[FL_SHA256_LEN];
    char trace_moved[sizeof path + 32] = "", trace_unknown[sizeof path + 32] = "";
    size_t n_trace_moved = 0, n_trace_unknown = 0;
    const int check_trace = st == FL_OK && r0 && !e->fresh && base.trace[0];
    if (check_trace) {
        flsim_trace *t = NULL;
        st = flsim_trace_load(&t, base.trace, e2, sizeof e2);
        if (st == FL_OK && (st = flsim_trace_sha256(trace_sha, t)) != FL_OK)
            snprintf(e2, sizeof e2, "cannot digest its rows: %s", fl_strerror(st));
        if (st != FL_OK)
            snprintf(err, errlen, "--trace: %s", e2);
        flsim_trace_free(t);
    }
    for (size_t i = 0; st == FL_OK && r0 && !e->fresh && i < n_runs; i++) {
        const int c = (int)(i / seeds);
        const uint32_t s = (uint32_t)(i % seeds);
        flsim_config cfg;
        config_of(&base, c, s, down_c, up_c, &cfg);
        run_out *ro = &runs[i];
        snprintf(path, sizeof path, "%s/runs/%s-s%u", e->out, g_cfgs[c].name, s + 1);
        const fl_status ls = flsim_load_outputs(path, &cfg, want_arch, &ro->res, &ro->rec, &ro->n, e2,
                                                sizeof e2);
        if (ls == FL_OK && check_trace &&
            (!ro->res.has_trace_sha || memcmp(ro->res.trace_sha256, trace_sha, sizeof trace_sha))) {
            const int moved = ro->res.has_trace_sha;
            if ((moved ? n_trace_moved++ : n_trace_unknown++) == 0)
                snprintf(moved ? trace_moved : trace_unknown, sizeof trace_moved, "%s", path);
            free(ro->rec); /* trained again below */
            memset(ro, 0, sizeof *ro);
        } else if (ls == FL_OK) {
            done[i] = 1;
            n_done++;
            /* A run trained with another BLAS kernel (another host, OPENBLAS_CORETYPE,
             * FLM_NO_SKINNY) may differ in its last bits from one trained here: the table is
             * then not quite an uninterrupted experiment's. Said once, not refused. */
            if (strcmp(ro->res.blas, blas_here) != 0 && n_other_blas++ == 0)
                snprintf(other_blas, sizeof other_blas, "%s (BLAS %s)", path, ro->res.blas);
        } else if (ls == FL_ERR_UNSUPPORTED) {
            if (log)
                fl_log(log, FL_LOG_WARN, "%s: running every run again", e2);
            break;
        } else if (ls == FL_ERR_RESULTS_MISMATCH || ls == FL_ERR_RESULTS_FORMAT) {
            snprintf(err, errlen, "%s (remove that run's directory, use another --out, or "
                                  "--fresh 1 to run everything again)", e2);
            st = ls;
        } else if (ls != FL_ERR_NOT_FOUND) {
            snprintf(err, errlen, "%s", e2);
            st = ls;
        }
    }
    if (done) {
        done[n_runs] = (int)st;
        share_codes(done, (int)n_runs + 1);
        st = (fl_status)done[n_runs];
        if (st != FL_OK && err && errlen && !err[0])
            snprintf(err, errlen, "rank 0: %s", fl_strerror(st));
        if (st != FL_OK)
            *said = r0 ? 1 : 2;
    }
    if (n_other_blas && log)
        fl_log(log, FL_LOG_WARN, "%zu saved run%s trained with another BLAS than this host's %s "
               "(%s%s): %s results may differ in their last bits from runs trained here, so the "
               "table may not be quite an uninterrupted experiment's (--fresh 1 trains every run "
               "again)", n_other_blas, n_other_blas == 1 ? " was" : "s were", blas_here,
               other_blas, n_other_blas > 1 ? ", ..." : "", n_other_blas == 1 ? "its" : "their");
    /* said once each, naming the first such run and counting the others */
    char others[64] = "";
    if (n_trace_moved > 1)
        snprintf(others, sizeof others, " and %zu other saved run%s", n_trace_moved - 1,
                 n_trace_moved > 2 ? "s" : "");
    if (n_trace_moved && log)
        fl_log(log, FL_LOG_WARN, "%s%s: %s trace rows differ from --trace %s's now: run again",
               trace_moved, others, n_trace_moved > 1 ? "their" : "its", base.trace);
    others[0] = '\0';
    if (n_trace_unknown > 1)
        snprintf(others, sizeof others, " and %zu other saved run%s", n_trace_unknown - 1,
                 n_trace_unknown > 2 ? "s" : "");
    if (n_trace_unknown && log)
        fl_log(log, FL_LOG_WARN, "%s%s: no trace_sha256 in %s summary.json (an older fl_sim), so "
               "%s trace rows may differ from --trace %s's now: run again", trace_unknown, others,
               n_trace_unknown > 1 ? "their" : "its", n_trace_unknown > 1 ? "their" : "its",
               base.trace);
    /* Pass 2: the remaining runs. */
    flsim_exp_event ev;
    memset(&ev, 0, sizeof ev);
    ev.runs = (uint32_t)n_runs;
    ev.rounds = base.rounds;
    for (size_t i = 0; st == FL_OK && r0 && e->progress && i < n_runs; i++) {
        if (!done[i])
            continue;
        ev.kind = FLSIM_EXP_RUN_DONE;
        ev.config = g_cfgs[i / seeds].name;
        ev.seed = (uint32_t)(i % seeds) + 1;
        ev.run = (uint32_t)i + 1;
        ev.reused = 1;
        ev.res = &runs[i].res;
        snprintf(path, sizeof path, "%s/runs/%s-s%u", e->out, ev.config, ev.seed);
        ev.dir = path;
        e->progress(e->progress_user, &ev);
    }
    ev.to_train = (uint32_t)(n_runs - n_done);
    ev.reused = 0;
    exp_cb cb = {e, &ev};
    /* Clients without a training sample: each distinct warning said once, at the first run
     * that has it (flsim_run leaves it to the experiment), not once per run (the 8 runs of a
     * seed share its partition, and so the warning); the runs are counted at the end. */
    enum { N_EMPTY_SAID = 16 };
    uint32_t empty_said[N_EMPTY_SAID];
    size_t n_empty_said = 0, n_empty_runs = 0;
    for (size_t i = 0; st == FL_OK && i < n_runs; i++) {
        if (done[i])
            continue;
        const int c = (int)(i / seeds);
        const uint32_t s = (uint32_t)(i % seeds);
        flsim_config cfg;
        config_of(&base, c, s, down_c, up_c, &cfg);
        run_out *ro = &runs[i];
        ev.config = g_cfgs[c].name;
        ev.seed = s + 1;
        ev.run = (uint32_t)i + 1;
        ev.res = NULL;
        ev.dir = NULL;
        if (r0 && e->progress) {
            ev.kind = FLSIM_EXP_RUN_START;
            e->progress(e->progress_user, &ev);
        }
        st = flsim_run(&cfg, &data, log, r0 && e->progress ? on_round : NULL, &cb, &ro->res,
                       &ro->rec, &ro->n, e2, sizeof e2);
        if (st == FL_ERR_CANCELLED) { /* half a run: not saved, the next experiment trains it */
            if (n_done + ev.trained == 0) /* DIR/runs is removed below if this made it */
                snprintf(err, errlen, "stopped during %s seed %u (%s); no run was finished, so "
                         "none is saved", g_cfgs[c].name, s + 1, e2);
            else
                snprintf(err, errlen, "stopped during %s seed %u (%s); %zu of %zu runs are saved "
                         "under %s/runs, and the same command resumes from them", g_cfgs[c].name,
                         s + 1, e2, n_done + ev.trained, n_runs, e->out);
            break;
        }
        if (st != FL_OK) {
            snprintf(err, errlen, "%s seed %u: %s", g_cfgs[c].name, s + 1, e2);
            *said = ro->res.err_agreed;
            break;
        }
        ev.trained++;
        if (r0 && log && ro->res.empty_clients) {
            /* the runs of an experiment differ only in their seed, configuration and codecs:
             * the count alone tells one warning from another */
            int said = 0;
            for (size_t k = 0; k < n_empty_said && !said; k++)
                said = empty_said[k] == ro->res.empty_clients;
            if (!said && n_empty_said < N_EMPTY_SAID) {
                char what[FLSIM_STR + 320];
                flsim_empty_clients_say(what, sizeof what, &cfg, ro->res.empty_clients,
                                        data.train->N);
                fl_log(log, FL_LOG_WARN, "%s (%s seed %u; said once for the experiment)", what,
                       g_cfgs[c].name, s + 1);
                empty_said[n_empty_said++] = ro->res.empty_clients;
            }
            n_empty_runs++;
        }
        if (r0) {
            snprintf(path, sizeof path, "%s/runs/%s-s%u", e->out, g_cfgs[c].name, s + 1);
            if (flsim_write_outputs(path, &cfg, &ro->res, ro->rec, ro->n, e2, sizeof e2) != FL_OK) {
                snprintf(err, errlen, "%s seed %u: %s", g_cfgs[c].name, s + 1, e2);
                st = FL_ERR_IO;
            } else if ((st = flsim_rounds_as_saved(ro->rec, ro->n)) != FL_OK) {
                /* the curves below come from what rounds.csv holds, as for a run read back */
                snprintf(err, errlen, "%s seed %u: %s", g_cfgs[c].name, s + 1, fl_strerror(st));
            } else if (e->progress) {
                ev.kind = FLSIM_EXP_RUN_DONE;
                ev.res = &ro->res;
                ev.dir = path;
                e->progress(e->progress_user, &ev);
            }
        }
        /* Rank 0 alone saves the run: a failure there (a full disk, DIR/runs/X made unusable)
         * must end every rank, or the others go on into the next run's collectives while rank 0
         * returns and waits in MPI_Finalize (a hang). */
        int saved = (int)st;
        share_codes(&saved, 1);
        if (saved != FL_OK && st == FL_OK)
            snprintf(err, errlen, "%s seed %u: rank 0 could not save the run (its message says "
                     "why)", g_cfgs[c].name, s + 1);
        if (saved != FL_OK)
            *said = r0 ? 1 : 2;
        st = (fl_status)saved;
    }
    free(done);
    if (n_empty_runs > 1 && log)
        fl_log(log, FL_LOG_WARN, "%zu of the %u runs trained had clients that hold no training "
               "sample (said once above%s)", n_empty_runs, ev.trained,
               n_empty_said > 1 ? ", per count" : "");
    if (st == FL_OK && r0) {
        /* Summary statistics per configuration. */
        double m_rt[N_CONFIGS], m_vt[N_CONFIGS], m_by[N_CONFIGS], m_acc[N_CONFIGS];
        double sd_rt[N_CONFIGS], sd_vt[N_CONFIGS], sd_by[N_CONFIGS], sd_acc[N_CONFIGS];
        double m_bd[N_CONFIGS], m_bu[N_CONFIGS], m_vtot[N_CONFIGS], sd_bd, sd_bu, sd_vtot;
        double m_bdt[N_CONFIGS], m_but[N_CONFIGS], sd_bdt, sd_but;
        double ratio[N_CONFIGS][3]; /* rounds, time, bytes: over the seeds both c and full reached */
        int reached[N_CONFIGS], paired[N_CONFIGS];
        static double rt[N_CONFIGS][100], vt[N_CONFIGS][100], by[N_CONFIGS][100];
        const int n = seeds < 100 ? (int)seeds : 100;
        for (int c = 0; c < N_CONFIGS; c++) {
            double acc[100], bd[100], bu[100], vtot[100], bdt[100], but[100];
            reached[c] = 0;
            for (int s = 0; s < n; s++) {
                const flsim_result *r = &runs[c * seeds + (uint32_t)s].res;
                const int ok = r->target_reached;
                reached[c] += ok;
                rt[c][s] = ok ? r->rounds_to_target : NAN;
                vt[c][s] = ok ? r->vtime_to_target : NAN;
                by[c][s] = ok ? (double)(r->bytes_down_to_target + r->bytes_up_to_target) : NAN;
                bdt[s] = ok ? (double)r->bytes_down_to_target : NAN;
                but[s] = ok ? (double)r->bytes_up_to_target : NAN;
                acc[s] = r->final_test_acc;
                bd[s] = (double)r->bytes_down;
                bu[s] = (double)r->bytes_up;
                vtot[s] = r->virtual_time_s;
            }
            mean_sd(rt[c], n, &m_rt[c], &sd_rt[c]);
            mean_sd(vt[c], n, &m_vt[c], &sd_vt[c]);
            mean_sd(by[c], n, &m_by[c], &sd_by[c]);
            mean_sd(bdt, n, &m_bdt[c], &sd_bdt);
            mean_sd(but, n, &m_but[c], &sd_but);
            mean_sd(acc, n, &m_acc[c], &sd_acc[c]);
            mean_sd(bd, n, &m_bd[c], &sd_bd);
            mean_sd(bu, n, &m_bu[c], &sd_bu);
            mean_sd(vtot, n, &m_vtot[c], &sd_vtot);
        }
        /* Ratios to full over paired seeds only (both reached): a config that misses on its hard
         * seeds must not look faster by averaging its easy ones against full's all. */
        for (int c = 0; c < N_CONFIGS; c++) {
            double sum[2][3] = {{0}};
            paired[c] = 0;
            for (int s = 0; s < n; s++) {
                if (!isfinite(rt[c][s]) || !isfinite(rt[0][s]))
                    continue;
                paired[c]++;
                sum[0][0] += rt[c][s], sum[1][0] += rt[0][s];
                sum[0][1] += vt[c][s], sum[1][1] += vt[0][s];
                sum[0][2] += by[c][s], sum[1][2] += by[0][s];
            }
            for (int q = 0; q < 3; q++)
                ratio[c][q] = paired[c] ? sum[0][q] / sum[1][q] : NAN;
        }
        char path_md[sizeof path];
        snprintf(path, sizeof path, "%s/table.csv", e->out);
        snprintf(path_md, sizeof path_md, "%s/table.md", e->out);
        out_file fo, mdo;
        FILE *f = out_open(&fo);
        FILE *md = f ? out_open(&mdo) : NULL;
        if (!f || !md) {
            if (f)
                (void)out_commit(&fo, 0, path, NULL, 0);
            snprintf(err, errlen, "out of memory for the tables");
            st = FL_ERR_NOMEM;
        } else {
            fprintf(f, "config,seeds,reached,rounds_to_target,rounds_to_target_sd,vtime_to_target_s,"
                       "vtime_to_target_sd,bytes_to_target,bytes_to_target_sd,final_acc,final_acc_sd,"
                       "bytes_down_total,bytes_up_total,vtime_total_s,ratio_rounds,ratio_vtime,"
                       "ratio_bytes,ratio_acc,bytes_down_to_target,bytes_up_to_target,"
                       "ratio_seeds,eval_every\n");
            const uint32_t ev = base.eval_every ? base.eval_every : base.rounds;
            char evs[200];
            if (ev == 1)
                snprintf(evs, sizeof evs, "The test set is evaluated after every round.");
            else
                snprintf(evs, sizeof evs, "The test set is evaluated every %u rounds: figures to "
                         "the target are read at those rounds, and the target may have been "
                         "reached sooner, between two of them.", ev);
            char kls[FLM_MAX_LAYERS * 10 + 32] = "";
            for (uint32_t d = 0, n = 0; d < base.n_keep_layers; d++)
                n += (uint32_t)snprintf(kls + n, sizeof kls - n, "%s%.2f", d ? ", " : " (by layer: ",
                                        base.keep_layers[d] > 0 ? base.keep_layers[d] : base.keep);
            if (base.n_keep_layers)
                strncat(kls, ")", sizeof kls - strlen(kls) - 1);
            /* The rest of the setup a caption needs: which samples, the local training and the
             * devices (until 2026-12-02 the small preset's table said "fashion-mnist" of a run on
             * its first 12,000 samples, and nothing of the training or the devices). data_s
             * holds both specs whole (each up to FLSIM_STR - 1, under 100 bytes besides): sized
             * for one, a long --test-dataset beside a long --dataset ran w past its end. */
            char data_s[2 * FLSIM_STR + 128], local_s[256], dev_s[FLSIM_STR + 256];
            const size_t n_train = data.train->N, n_test = base.eval_samples &&
                                       base.eval_samples < data.test->N ? base.eval_samples : data.test->N;
            int w = snprintf(data_s, sizeof data_s, "%s (%s%zu training samples, %zu test samples",
                             base.dataset, base.train_samples == n_train ? "its first " : "",
                             n_train, n_test);
            if (base.test_dataset[0])
                w += snprintf(data_s + w, sizeof data_s - (size_t)w, " of %s", base.test_dataset);
            snprintf(data_s + w, sizeof data_s - (size_t)w, ")");
            w = snprintf(local_s, sizeof local_s, "local training %u epoch%s of batch %u at lr %g",
                         base.epochs, base.epochs == 1 ? "" : "s", base.batch, base.lr);
            if (base.momentum > 0)
                w += snprintf(local_s + w, sizeof local_s - (size_t)w, ", momentum %g", base.momentum);
            if (base.weight_decay > 0)
                w += snprintf(local_s + w, sizeof local_s - (size_t)w, ", weight decay %g",
                              base.weight_decay);
            if (base.prox_mu > 0)
                w += snprintf(local_s + w, sizeof local_s - (size_t)w, ", FedProx mu %g", base.prox_mu);
            if (base.server_lr != 1.0)
                snprintf(local_s + w, sizeof local_s - (size_t)w, ", server lr %g", base.server_lr);
            if (base.trace[0]) {
                const char *slash = strrchr(base.trace, '/');
                w = snprintf(dev_s, sizeof dev_s, "devices from the trace %s", slash ? slash + 1 : base.trace);
            } else {
                const flsim_dist *d3[3] = {&base.flops, &base.down_bps, &base.up_bps};
                char ds[3][64];
                for (int k = 0; k < 3; k++) {
                    if (d3[k]->kind == FLSIM_DIST_LOGNORMAL)
                        snprintf(ds[k], sizeof ds[k], "lognormal (median %g, sigma %g)",
                                 d3[k]->median, d3[k]->sigma);
                    else
                        snprintf(ds[k], sizeof ds[k], "%g", d3[k]->median);
                }
                char av[96];
                if (base.avail.kind == FLSIM_AVAIL_PROB)
                    snprintf(av, sizeof av, "online with probability %g a round", base.avail.p);
                else if (base.avail.kind == FLSIM_AVAIL_DIURNAL)
                    snprintf(av, sizeof av, "online diurnally, %g to %g over %g s", base.avail.p_min,
                             base.avail.p_max, base.avail.period_s);
                else
                    snprintf(av, sizeof av, "always online");
                w = snprintf(dev_s, sizeof dev_s, "devices: compute %s FLOP/s, download %s bit/s, "
                             "upload %s bit/s, %s", ds[0], ds[1], ds[2], av);
            }
            if (base.latency_s > 0)
                w += snprintf(dev_s + w, sizeof dev_s - (size_t)w, ", latency %g s", base.latency_s);
            if (base.overcommit > 1)
                w += snprintf(dev_s + w, sizeof dev_s - (size_t)w, ", over-commit %g", base.overcommit);
            if (base.deadline_s > 0)
                snprintf(dev_s + w, sizeof dev_s - (size_t)w, ", deadline %g s", base.deadline_s);
            fprintf(md, "Preset `%s`: %s, model %s (%zu parameters), %u clients, %u per round, %u rounds, "
                        "partition %s, keep %.2f%s; %s; %s; compression (+c): down %s, up %s; %u seed%s; "
                        "target accuracy %.2f. Mean (sd) over seeds that reached the target; "
                        "ratios are to uncompressed FedAvg (`full`) over the seeds both reached, < 1 "
                        "is better for rounds, time and bytes. %s\n\n",
                    e->preset, data_s, runs[0].res.arch, runs[0].res.n_params, base.clients,
                    base.per_round, base.rounds, base.partition, base.keep, kls, local_s, dev_s,
                    down_c, up_c, seeds, seeds == 1 ? "" : "s", base.target_acc, evs);
            fprintf(md, "| config | reached | rounds to target | virtual time to target (s) | bytes to target (MB) | of which down / up (MB) | final acc | x rounds | x time | x bytes | acc - full |\n");
            fprintf(md, "|---|---|---|---|---|---|---|---|---|---|---|\n");
            for (int c = 0; c < N_CONFIGS; c++) {
                const double rr = ratio[c][0], rv = ratio[c][1], rb = ratio[c][2];
                fprintf(f, "%s,%u,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%u\n",
                        g_cfgs[c].name, seeds, reached[c], m_rt[c], sd_rt[c], m_vt[c], sd_vt[c],
                        m_by[c], sd_by[c], m_acc[c], sd_acc[c], m_bd[c], m_bu[c], m_vtot[c], rr,
                        rv, rb, m_acc[c] / m_acc[0], m_bdt[c], m_but[c], paired[c], ev);
                char a[64], b[64], d[64], du[64], x1[32], x2[32], x3[32];
                if (reached[c] > 1) {
                    snprintf(a, sizeof a, "%.1f (%.1f)", m_rt[c], sd_rt[c]);
                    /* whole seconds, but three digits below 100 s (tiny runs read "0 (0)") */
                    snprintf(b, sizeof b, m_vt[c] >= 100 ? "%.0f (%.0f)" : "%.3g (%.2g)", m_vt[c],
                             sd_vt[c]);
                    snprintf(d, sizeof d, "%.1f (%.1f)", m_by[c] / 1e6, sd_by[c] / 1e6);
                } else if (reached[c] == 1) { /* one seed: no spread to show */
                    snprintf(a, sizeof a, "%.1f (n/a)", m_rt[c]);
                    snprintf(b, sizeof b, m_vt[c] >= 100 ? "%.0f (n/a)" : "%.3g (n/a)", m_vt[c]);
                    snprintf(d, sizeof d, "%.1f (n/a)", m_by[c] / 1e6);
                } else {
                    snprintf(a, sizeof a, "-");
                    snprintf(b, sizeof b, "-");
                    snprintf(d, sizeof d, "-");
                }
                if (reached[c])
                    snprintf(du, sizeof du, "%.1f / %.1f", m_bdt[c] / 1e6, m_but[c] / 1e6);
                else
                    snprintf(du, sizeof du, "-");
                /* a ratio over fewer seeds than ran says over how many */
                char on[24] = "";
                if (paired[c] && paired[c] < n)
                    snprintf(on, sizeof on, " (%d seed%s)", paired[c], paired[c] == 1 ? "" : "s");
                if (isfinite(rr)) snprintf(x1, sizeof x1, "%.3f%s", rr, on); else snprintf(x1, sizeof x1, "-");
                if (isfinite(rv)) snprintf(x2, sizeof x2, "%.3f%s", rv, on); else snprintf(x2, sizeof x2, "-");
                if (isfinite(rb)) snprintf(x3, sizeof x3, "%.3f%s", rb, on); else snprintf(x3, sizeof x3, "-");
                char fa[48];
                if (n > 1)
                    snprintf(fa, sizeof fa, "%.4f (%.4f)", m_acc[c], sd_acc[c]);
                else
                    snprintf(fa, sizeof fa, "%.4f (n/a)", m_acc[c]);
                fprintf(md, "| %s | %d/%u | %s | %s | %s | %s | %s | %s | %s | %s | %+.4f |\n",
                        g_cfgs[c].name, reached[c], seeds, a, b, d, du, fa, x1, x2, x3,
                        m_acc[c] - m_acc[0]);
            }
            /* table.md first: table.csv is not written beside a table.md that failed */
            st = out_commit(&mdo, 1, path_md, err, errlen);
            const fl_status sc = out_commit(&fo, st == FL_OK, path, err, errlen);
            if (st == FL_OK)
                st = sc;
        }
        /* Curves: all runs, and the mean over seeds per round for the plots. */
        snprintf(path, sizeof path, "%s/curves.csv", e->out);
        f = st == FL_OK ? out_open(&fo) : NULL;
        if (f) {
            fprintf(f, "config,seed,round,vtime_s,cum_bytes,test_acc\n");
            for (int c = 0; c < N_CONFIGS; c++)
                for (uint32_t s = 0; s < seeds; s++) {
                    const run_out *ro = &runs[c * seeds + s];
                    for (size_t i = 0; i < ro->n; i++)
                        if (ro->rec[i].evaluated)
                            fprintf(f, "%s,%u,%u,%.6g,%llu,%.6g\n", g_cfgs[c].name, s + 1,
                                    ro->rec[i].round, ro->rec[i].vtime_s,
                                    (unsigned long long)ro->rec[i].cum_bytes_down +
                                        (unsigned long long)ro->rec[i].cum_bytes_up,
                                    ro->rec[i].test_acc);
                }
            st = out_commit(&fo, 1, path, err, errlen);
            for (int c = 0; c < N_CONFIGS && st == FL_OK; c++) {
                snprintf(path, sizeof path, "%s/mean-%s.dat", e->out, g_cfgs[c].name);
                out_file go;
                FILE *g = out_open(&go);
                if (!g) {
                    snprintf(err, errlen, "out of memory for %s", path);
                    st = FL_ERR_NOMEM;
                    break;
                }
                fprintf(g, "# round vtime_s MB test_acc (means over %u seed%s)\n", seeds,
                        seeds == 1 ? "" : "s");
                const size_t nr = runs[c * seeds].n;
                for (size_t i = 0; i < nr; i++) {
                    double vt = 0, by = 0, acc = 0;
                    uint32_t k = 0;
                    for (uint32_t s = 0; s < seeds; s++) {
                        const run_out *ro = &runs[c * seeds + s];
                        if (i < ro->n && ro->rec[i].evaluated) {
                            vt += ro->rec[i].vtime_s;
                            by += (double)(ro->rec[i].cum_bytes_down + ro->rec[i].cum_bytes_up);
                            acc += ro->rec[i].test_acc;
                            k++;
                        }
                    }
                    if (k == seeds)
                        fprintf(g, "%zu %.6g %.6g %.6g\n", i + 1, vt / k, by / k / 1e6, acc / k);
                }
                st = out_commit(&go, 1, path, err, errlen);
            }
        } else if (st == FL_OK) {
            snprintf(err, errlen, "out of memory for %s", path);
            st = FL_ERR_NOMEM;
        }
        if (st == FL_OK) {
            snprintf(path, sizeof path, "%s/plots.gp", e->out);
            out_file go;
            FILE *g = out_open(&go);
            if (!g) {
                snprintf(err, errlen, "out of memory for %s", path);
                st = FL_ERR_NOMEM;
            } else {
                fprintf(g, "# gnuplot script written by fl_sim experiment afd; run from this directory\n");
                const char *xs[2] = {"acc_vs_time", "acc_vs_bytes"};
                const char *xl[2] = {"virtual time (s)", "bytes down + up (MB)"};
                const int col[2] = {2, 3};
                const char *terms[2][2] = {{"pngcairo size 900,600", "png"}, {"svg size 900,600", "svg"}};
                for (int t = 0; t < 2; t++)
                    for (int p = 0; p < 2; p++) {
                        fprintf(g, "set terminal %s\nset output '%s.%s'\n", terms[t][0], xs[p], terms[t][1]);
                        fprintf(g, "set title 'AFD experiment (%s preset): test accuracy, mean of %u seed%s'\n",
                                e->preset, seeds, seeds == 1 ? "" : "s");
                        fprintf(g, "set xlabel '%s'\nset ylabel 'test accuracy'\nset key bottom right\nset grid\n%s",
                                xl[p], "set logscale x\n");
                        fprintf(g, "plot ");
                        for (int c = 0; c < N_CONFIGS; c++)
                            fprintf(g, "%s'mean-%s.dat' using %d:4 with lines lw 2 dt %d title '%s'", c ? ", " : "",
                                    g_cfgs[c].name, col[p], g_cfgs[c].compress ? 2 : 1, g_cfgs[c].name);
                        fprintf(g, "\nunset output\n");
                    }
                st = out_commit(&go, 1, path, err, errlen);
                if (st == FL_OK && run_gnuplot(e->out) != 0 && log)
                    fl_log(log, FL_LOG_WARN, "gnuplot failed or is not installed: no plots");
            }
        }
    }
    for (size_t i = 0; i < (size_t)N_CONFIGS * seeds; i++)
        free(runs[i].rec);
    free(runs);
    flsim_data_free(&data);
    if (st != FL_OK)
        flsim_rmdirs_made(runs_dir, made);
    return st;
}

fl_status flsim_experiment_afd(const flsim_experiment *e, const fl_logger *log, char *err,
                               size_t errlen)
{
    int lock = -1, said = 0;
    const fl_status st = experiment_afd(e, log, err, errlen, &lock, &said);
    if (lock >= 0)
        close(lock);
    if (e->err_agreed)
        *e->err_agreed = st != FL_OK && st != FL_ERR_CANCELLED ? said : 0;
    return st;
}
