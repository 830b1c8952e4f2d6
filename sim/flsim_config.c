/* flsim_config.c: the simulator's options: defaults, one setter shared by the command line and
 * the YAML file, validation, JSON rendering, help text. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "flm_arch.h"
#include "flm_data.h"
#include "fl_fs.h"
#include "fl_text.h"
#include "flsim.h"
#include "flsim_internal.h"
#include "fls_round.h"
#include "flz.h"

#ifdef FLSIM_HAVE_YAML
#include <yaml.h>
#endif

flsim_config flsim_config_default(void)
{
    flsim_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.dataset, sizeof c.dataset, "fashion-mnist");
    c.test_frac = 1.0 / 7.0;
    snprintf(c.model, sizeof c.model, "mlp");
    c.clients = 1000;
    c.per_round = 50;
    c.rounds = 100;
    snprintf(c.partition, sizeof c.partition, "dirichlet:0.3");
    c.policy = FLS_POLICY_FULL;
    c.keep = 0.75;
    c.eps_rel = 1e-3;
    snprintf(c.down_codec, sizeof c.down_codec, "none");
    snprintf(c.up_codec, sizeof c.up_codec, "none");
    c.seed = 1;
    c.epochs = 1;
    c.batch = 10;
    c.lr = 0.05;
    c.server_lr = 1.0;
    c.overcommit = 1.0;
    c.chunk_elems = 65536;
    c.eval_every = 1;
    c.flops = (flsim_dist){FLSIM_DIST_LOGNORMAL, 5e9, 0.5};
    c.down_bps = (flsim_dist){FLSIM_DIST_LOGNORMAL, 20e6, 0.5};
    c.up_bps = (flsim_dist){FLSIM_DIST_LOGNORMAL, 5e6, 0.5};
    c.avail = (flsim_avail){FLSIM_AVAIL_ALWAYS, 1.0, 0, 0, 86400.0};
    c.idle_step_s = 60.0;
    c.fold_threads = FLSIM_FOLD_AUTO;
    c.progress = -1;
    c.checkpoint_every = 10;
    return c;
}

static const flsim_option_doc g_docs[] = {
    {"config", "FILE", "read options from a YAML mapping (name: value); one file, flags override it"},
    {"dataset", "NAME|SPEC", "fashion-mnist (the default), mnist (where: see Datasets below), or a spec (idx:I,L, femnist:DIR, ...)"},
    {"test-dataset", "SPEC", "test set spec (a name alone: its test split); default: the named set's test split, else hold out --test-frac"},
    {"test-frac", "F", "fraction held out as the test set when the dataset has no test split (1/7)"},
    {"train-samples", "N", "use only the first N training samples (all if the set is smaller); 0 = all (0)"},
    {"model", "NAME|SPEC", "mlp = mlp:D-200-200-K, cnn = cnn:K (sized for the dataset), lstm = "
                           "lstm:80:8:256:2:80 (LEAF Shakespeare: token data of 80 steps, e.g. "
                           "shakespeare:DIR or synth-tokens:N:80:80), moge = moge:D:128:4:4:1:K "
                           "(mixture of 4 groups of 4 experts, top 1 of each group, sized for the "
                           "dataset), or an flm_arch spec (mlp)"},
    {"clients", "N", "virtual clients, 1 .. 1000000 (1000)"},
    {"per-round", "N", "clients per round = the quorum (50)"},
    {"rounds", "N", "rounds to run (100)"},
    {"partition", "SPEC", "iid, dirichlet:ALPHA, shards:S, natural (dirichlet:0.3)"},
    {"data-shards", "N", "partition the data into N shards, client k trains shard k mod N (default: one per client)"},
    {"policy", "NAME", "full, fd, fd-per-client, afd-single, afd-multi (full)"},
    {"keep", "P", "keep fraction of each droppable layer, (0, 1] (0.75)"},
    {"keep-layers", "P,P,...", "keep fraction of each droppable layer in order, overriding --keep; "
                               "0 = --keep for that layer, later layers take --keep (none)"},
    {"score-accumulate", "0|1", "afd: S[u] += gain instead of S[u] = gain (0)"},
    {"loss-unweighted", "0|1", "afd-single: the round's loss as a plain mean, not by samples (0)"},
    {"eps-rel", "E", "afd: exploration floor eps = E * max score, [1e-12, 1] (0.001)"},
    {"agg-dilute", "0|1", "count coordinates a client did not train as zero deltas (0)"},
    {"down-codec", "SPEC", "downlink codec pipeline, e.g. rot+q4+zstd (none)"},
    {"up-codec", "SPEC", "uplink codec pipeline, e.g. rot+q2+zstd or topk0.1+q8+zstd (none)"},
    {"seed", "N", "run seed: every random draw derives from it (1)"},
    {"threads", "N", "worker threads training clients; 0 = the CPUs, less the automatic fold helpers from 12 CPUs on (0)"},
    {"fold-threads", "N|auto", "threads helping the main thread decode and fold updates into the aggregate, 0 .. 63; "
                               "auto = a quarter of the CPUs (or of --threads) from 12 on, else 0; a number N "
                               "takes no CPU from --threads 0 (auto)"},
    {"epochs", "N", "local epochs (1)"},
    {"batch", "N", "local batch size (10)"},
    {"lr", "X", "client SGD learning rate (0.05)"},
    {"momentum", "X", "client SGD momentum (0)"},
    {"weight-decay", "X", "client weight decay (0)"},
    {"prox-mu", "X", "FedProx proximal term (0)"},
    {"server-lr", "X", "server FedAvg learning rate (1)"},
    {"overcommit", "X", "select ceil(X * per-round) clients, the round closes at per-round updates (1)"},
    {"deadline", "SECONDS", "virtual round deadline; 0 = none (0)"},
    {"latency", "SECONDS", "one-way network latency added to each transfer (0)"},
    {"chunk-elems", "N", "elements per wire chunk; a tensor may span at most 65536 chunks (65536)"},
    {"eval-every", "N", "evaluate every N rounds; 0 = only after the last (1)"},
    {"eval-samples", "N", "evaluate on the first N test samples (all if the set is smaller); 0 = all (0)"},
    {"target-acc", "A", "stop once the test accuracy reaches A, as evaluated (--eval-every); 0 = none (0)"},
    {"batch-feed", "0|1", "feed updates after the whole round trained, not while clients train (same results; for checking) (0)"},
    {"keep-going", "0|1", "with --target-acc: record when it is reached but run every round (0)"},
    {"flops", "DIST", "client compute speed FLOP/s: V, const:V, lognormal:MEDIAN:SIGMA; V, MEDIAN >= 1, "
                      "SIGMA <= 10, a draw below 1 taken at 1 (lognormal:5G:0.5)"},
    {"down-bps", "DIST", "client download bandwidth, bit/s (lognormal:20M:0.5)"},
    {"up-bps", "DIST", "client upload bandwidth, bit/s (lognormal:5M:0.5)"},
    {"availability", "SPEC", "always, p:P, diurnal:PMIN:PMAX[:PERIOD_S] (always)"},
    {"trace", "FILE", "device trace CSV (client,flops,down_bps,up_bps,availability); replaces the four above"},
    {"idle-step", "SECONDS", "virtual wait when too few clients are online to start a round (60)"},
    {"out", "DIR", "write DIR/rounds.csv and DIR/summary.json"},
    {"checkpoint-every", "N", "with --out: save the run's state to DIR/resume.fls every N rounds, "
                              "at the end and when stopped; 0 = never (10)"},
    {"resume", "0|1", "continue the run saved in --out DIR (DIR/resume.fls) where it stopped, "
                      "to --rounds; a fresh start when DIR holds none (0)"},
    {"progress", "auto|bar|lines", "progress display (auto: a bar on a terminal, not TERM=dumb)"},
    {"quiet", "0|1", "no per-round output (0)"},
    {NULL, NULL, NULL},
};

const flsim_option_doc *flsim_option_docs(void)
{
    return g_docs;
}

/* Optimal string alignment distance between a and b (both at most 63 characters: longer ones
 * are no option's typo), case and '_' against '-' ignored; 99 when either is longer. */
static unsigned option_distance(const char *a, const char *b)
{
    enum { L = 64 };
    const size_t n = strlen(a), m = strlen(b);
    if (n >= L || m >= L)
        return 99;
    char x[L], y[L];
    for (size_t i = 0; i <= n; i++)
        x[i] = a[i] == '_' ? '-' : (char)tolower((unsigned char)a[i]);
    for (size_t j = 0; j <= m; j++)
        y[j] = b[j] == '_' ? '-' : (char)tolower((unsigned char)b[j]);
    unsigned d[L][L];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (unsigned)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (unsigned)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            unsigned v = d[i - 1][j - 1] + (x[i - 1] != y[j - 1]);
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && x[i - 1] == y[j - 2] && x[i - 2] == y[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

/* The nearest of n names (name(i) gives the i-th) within the distance a key of its length
 * allows; NULL if none. */
static const char *nearest(const char *key, const char *(*name)(const void *, size_t),
                           const void *list)
{
    if (!key)
        return NULL;
    /* "lr" against "xy" is two edits too: short keys get one */
    const unsigned most = strlen(key) >= 5 ? 2 : 1;
    const char *best = NULL;
    unsigned best_d = most + 1;
    for (size_t i = 0; name(list, i); i++) {
        const unsigned k = option_distance(key, name(list, i));
        if (k < best_d) {
            best_d = k;
            best = name(list, i);
        }
    }
    return best;
}

static const char *doc_name(const void *list, size_t i)
{
    return ((const flsim_option_doc *)list)[i].name;
}

static const char *str_name(const void *list, size_t i)
{
    return ((const char *const *)list)[i];
}

const char *flsim_option_nearest(const char *key)
{
    return nearest(key, doc_name, g_docs);
}

const char *flsim_name_nearest(const char *key, const char *const *names)
{
    return names ? nearest(key, str_name, names) : NULL;
}

/* "unknown option 'KEY'", with the option it was probably meant to be, spelt as KEY is (a YAML
 * key with '_' gets per_round, a flag --per-round). */
static void unknown_option(char *err, size_t errlen, const char *key, int flag)
{
    if (!err || !errlen)
        return;
    const char *near = flsim_option_nearest(key);
    if (!near) {
        snprintf(err, errlen, "unknown option '%s' (see --help)", key);
        return;
    }
    char as[64];
    snprintf(as, sizeof as, "%s", near);
    if (!flag && strchr(key, '_'))
        for (char *q = as; *q; q++)
            if (*q == '-')
                *q = '_';
    snprintf(err, errlen, "unknown option '%s' (did you mean %s%s? see --help)", key,
             flag ? "--" : "", as);
}

static fl_status reason(char *err, size_t errlen, const char *key, const char *value,
                        const char *want)
{
    if (err && errlen)
        snprintf(err, errlen, "--%s: '%s' is not %s", key, value, want);
    return FL_ERR_INVALID_ARG;
}

static fl_status too_long(char *err, size_t errlen, const char *key, size_t cap)
{
    if (err && errlen)
        snprintf(err, errlen, "--%s: longer than %zu characters", key, cap - 1);
    return FL_ERR_INVALID_ARG;
}

/* Decimal digits only: no sign, and no leading blank (strtoull skips one), as
 * flsim_parse_number refuses one for the number and rate options. */
static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return 0;
    errno = 0;
    char *end = NULL;
    const unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v < lo || v > hi)
        return 0;
    *out = (uint32_t)v;
    return 1;
}

/* In any case, and on/off too, as fl_server's config takes them: YAML writes True, FALSE, On
 * (until 2026-12-08 `resume: True` or `quiet: on` in a --config was refused here, while the
 * server's file took it). */
int flsim_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no", "off"};
    if (!s)
        return 0;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 1;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 1;
    }
    return 0;
}

static int parse_dbl(const char *s, double lo, double hi, double *out)
{
    double v;
    if (!flsim_parse_number(s, &v) || v < lo || v > hi)
        return 0;
    *out = v; /* a "-0" is +0 (flsim_parse_number) */
    return 1;
}

void flsim_path_trim(char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = '\0';
}

static int copy_str(char *dst, size_t cap, const char *s)
{
    if (strlen(s) >= cap)
        return 0;
    memcpy(dst, s, strlen(s) + 1);
    return 1;
}

/* msg (cap bytes) made one line: a control character in it (a value's line break, from a YAML
 * block scalar or a quoted "2\n", or a flag's $'2\n') is written as \n, \r, \t or \xNN, so
 * that what is quoted shows where it is, and the message is not broken over lines. A message
 * that no longer fits is cut at a whole escape. */
static void one_line(char *msg, size_t cap)
{
    if (!msg || !cap)
        return;
    size_t n = 0;
    for (const char *q = msg; *q; q++)
        n += (unsigned char)*q < 0x20 || *q == 0x7F;
    if (!n)
        return;
    char *copy = strdup(msg);
    if (!copy) { /* no room to escape: a blank keeps it one line */
        for (char *q = msg; *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7F)
                *q = ' ';
        return;
    }
    size_t o = 0;
    for (const char *q = copy; *q; q++) {
        const unsigned char ch = (unsigned char)*q;
        char esc[5];
        if (ch == '\n' || ch == '\r' || ch == '\t')
            snprintf(esc, sizeof esc, "\\%c", ch == '\n' ? 'n' : ch == '\r' ? 'r' : 't');
        else if (ch < 0x20 || ch == 0x7F)
            snprintf(esc, sizeof esc, "\\x%02x", ch);
        else
            snprintf(esc, sizeof esc, "%c", ch);
        const size_t l = strlen(esc);
        if (o + l >= cap)
            break;
        memcpy(msg + o, esc, l);
        o += l;
    }
    msg[o] = '\0';
    free(copy);
}

static fl_status config_set(flsim_config *c, const char *key, const char *v, char *err,
                            size_t errlen);

fl_status flsim_config_set(flsim_config *c, const char *key, const char *v, char *err,
                           size_t errlen)
{
    const fl_status st = config_set(c, key, v, err, errlen);
    if (st != FL_OK)
        one_line(err, errlen);
    return st;
}

static fl_status config_set(flsim_config *c, const char *key, const char *v, char *err,
                            size_t errlen)
{
    if (!c || !key || !v)
        return FL_ERR_INVALID_ARG;
    char e2[200];
    e2[0] = '\0';
#define U32(name, field, lo, hi, want) \
    if (strcmp(key, name) == 0) \
        return parse_u32(v, lo, hi, &c->field) ? FL_OK : reason(err, errlen, key, v, want)
#define DBL(name, field, lo, hi, want) \
    if (strcmp(key, name) == 0) \
        return parse_dbl(v, lo, hi, &c->field) ? FL_OK : reason(err, errlen, key, v, want)
#define STR(name, field) \
    if (strcmp(key, name) == 0) \
        return copy_str(c->field, sizeof c->field, v) ? FL_OK : too_long(err, errlen, key, sizeof c->field)
    if ((strcmp(key, "dataset") == 0 || strcmp(key, "model") == 0) && !*v) {
        /* here, not only in flsim_config_validate: a config file's line is known now */
        if (err && errlen)
            snprintf(err, errlen, "--%s is empty", key);
        return FL_ERR_INVALID_ARG;
    }
    if ((strcmp(key, "trace") == 0 || strcmp(key, "test-dataset") == 0) && !*v) {
        /* an unset $TRACE in a script or an envsubst'ed config: say so, not run without it */
        if (err && errlen)
            snprintf(err, errlen, "--%s is empty (leave it out, or write ~ in a config file, for "
                     "none)", key);
        return FL_ERR_INVALID_ARG;
    }
    if (strcmp(key, "model") == 0 && strcmp(v, "mlp") != 0 && strcmp(v, "cnn") != 0 &&
        strcmp(v, "moge") != 0) {
        /* here too, not only in flsim_config_validate: a config file's line is known now */
        flm_arch a;
        char why[256];
        if (flm_arch_parse(v, &a, why, sizeof why) != FL_OK) {
            if (err && errlen)
                snprintf(err, errlen, "--model: %s", why);
            return FL_ERR_CONFIG;
        }
    }
    STR("dataset", dataset);
    STR("test-dataset", test_dataset);
    DBL("test-frac", test_frac, 1e-6, 0.9, "a fraction in [1e-6, 0.9]");
    STR("model", model);
    U32("train-samples", train_samples, 0, 0xFFFFFFFFu, "a sample count in 0 .. 4294967295 (0 = all)");
    U32("clients", clients, 1, FLSIM_MAX_CLIENTS, "a client count in 1 .. 1000000");
    U32("per-round", per_round, 1, FLSIM_MAX_CLIENTS, "a count in 1 .. 1000000");
    U32("rounds", rounds, 1, 100000000, "a round count in 1 .. 100000000");
    U32("data-shards", data_shards, 0, FLSIM_MAX_CLIENTS, "a shard count (0 = clients)");
    U32("threads", threads, 0, 1024, "a thread count in 0 .. 1024");
    if (strcmp(key, "fold-threads") == 0) {
        if (strcmp(v, "auto") == 0) {
            c->fold_threads = FLSIM_FOLD_AUTO;
            return FL_OK;
        }
        return parse_u32(v, 0, FLSIM_FOLD_MAX, &c->fold_threads)
                   ? FL_OK : reason(err, errlen, key, v, "a thread count in 0 .. 63, or auto");
    }
    U32("epochs", epochs, 1, 1000, "an epoch count in 1 .. 1000");
    U32("batch", batch, 1, 65536, "a batch size in 1 .. 65536");
    U32("chunk-elems", chunk_elems, 1, 1u << 20, "a chunk size in 1 .. 1048576");
    U32("checkpoint-every", checkpoint_every, 0, 100000000, "a round count in 0 .. 100000000 (0 = never)");
    U32("eval-every", eval_every, 0, 100000000, "a round count in 0 .. 100000000 (0 = only at the end)");
    U32("eval-samples", eval_samples, 0, 1u << 31, "a sample count in 0 .. 2147483648");
    DBL("keep", keep, DBL_TRUE_MIN, 1.0, "a keep fraction in (0, 1]"); /* any above 0, as the core */
    if (strcmp(key, "keep-layers") == 0) {
        /* P,P,...: each in (0, 1], or 0 for --keep; empty = none */
        double vals[FLM_MAX_LAYERS];
        uint32_t n = 0;
        const char *q = v;
        while (*q) {
            const char *comma = strchr(q, ',');
            const size_t l = comma ? (size_t)(comma - q) : strlen(q);
            char one[64];
            if (n == FLM_MAX_LAYERS) {
                if (err && errlen)
                    snprintf(err, errlen, "--keep-layers: more than %d values", FLM_MAX_LAYERS);
                return FL_ERR_INVALID_ARG;
            }
            if (l >= sizeof one)
                return reason(err, errlen, key, v, "a list of keep fractions in [0, 1], e.g. 0.5,0.75");
            memcpy(one, q, l);
            one[l] = '\0';
            char *t = one;
            while (*t == ' ')
                t++;
            for (char *e = t + strlen(t); e > t && e[-1] == ' ';)
                *--e = '\0';
            if (!parse_dbl(t, 0.0, 1.0, &vals[n])) {
                if (err && errlen)
                    snprintf(err, errlen, "--keep-layers: '%s' (value %u) is not a keep fraction "
                             "in [0, 1] (0: --keep for that layer)", t, n + 1);
                return FL_ERR_INVALID_ARG;
            }
            n++;
            if (!comma)
                break;
            q = comma + 1;
            if (!*q)
                return reason(err, errlen, key, v, "a list of keep fractions in [0, 1], e.g. 0.5,0.75");
        }
        memset(c->keep_layers, 0, sizeof c->keep_layers);
        memcpy(c->keep_layers, vals, n * sizeof vals[0]);
        c->n_keep_layers = n;
        return FL_OK;
    }
    DBL("lr", lr, 1e-12, 1e6, "a learning rate in [1e-12, 1e6]");
    DBL("momentum", momentum, 0.0, 0.999999, "a momentum in [0, 0.999999]");
    DBL("weight-decay", weight_decay, 0.0, 1e6, "a weight decay in [0, 1e6]");
    DBL("prox-mu", prox_mu, 0.0, 1e6, "a proximal weight in [0, 1e6]");
    DBL("server-lr", server_lr, 1e-12, 1e6, "a learning rate in [1e-12, 1e6]");
    DBL("overcommit", overcommit, 1.0, 100.0, "an over-commit factor in [1, 100]");
    DBL("deadline", deadline_s, 0.0, 1e12, "a deadline in seconds in [0, 1e12] (0 = none)");
    DBL("latency", latency_s, 0.0, 1e6, "a latency in seconds in [0, 1e6]");
    DBL("target-acc", target_acc, 0.0, 1.0, "an accuracy in [0, 1]");
    DBL("eps-rel", eps_rel, 1e-12, 1.0, "a relative floor in [1e-12, 1]");
    DBL("idle-step", idle_step_s, 1e-6, 1e9, "a number of seconds in [1e-6, 1e9]");
    STR("trace", trace);
    if (strcmp(key, "out") == 0 && !*v) { /* an unset $DIR in a script: say so, not run unsaved */
        if (err && errlen)
            snprintf(err, errlen, "--out is empty (leave it out to write no files)");
        return FL_ERR_INVALID_ARG;
    }
    if (strcmp(key, "out") == 0) {
        if (!copy_str(c->out, sizeof c->out, v))
            return too_long(err, errlen, key, sizeof c->out);
        flsim_path_trim(c->out); /* "o/" wrote "o//rounds.csv" in every path it printed */
        return FL_OK;
    }
    if (strcmp(key, "seed") == 0) {
        errno = 0;
        char *end = NULL;
        /* Decimal only, as every other count: base 0 read "010" as 8 and refused "08". */
        const unsigned long long s = strtoull(v, &end, 10);
        if (*v < '0' || *v > '9' || *end || errno)
            return reason(err, errlen, key, v, "a decimal integer in 0 .. 18446744073709551615");
        c->seed = s;
        return FL_OK;
    }
    /* The boolean options: 0/1, true/false, yes/no, on/off, in any case. */
    int *flag = !strcmp(key, "score-accumulate") ? &c->score_accumulate
                : !strcmp(key, "loss-unweighted") ? &c->loss_unweighted
                : !strcmp(key, "agg-dilute")      ? &c->agg_dilute
                : !strcmp(key, "keep-going")      ? &c->keep_going
                : !strcmp(key, "batch-feed")      ? &c->batch_feed
                : !strcmp(key, "quiet")           ? &c->quiet
                : !strcmp(key, "resume")          ? &c->resume
                                                  : NULL;
    if (flag)
        return flsim_parse_bool(v, flag)
                   ? FL_OK : reason(err, errlen, key, v, "a boolean (0/1, true/false, yes/no, on/off)");
    if (strcmp(key, "progress") == 0) {
        if (!strcmp(v, "auto"))
            c->progress = -1;
        else if (!strcmp(v, "bar"))
            c->progress = 1;
        else if (!strcmp(v, "lines"))
            c->progress = 0;
        else
            return reason(err, errlen, key, v, "auto, bar or lines");
        return FL_OK;
    }
    if (strcmp(key, "policy") == 0) {
        if (strcmp(v, "fd-per-client") == 0) {
            c->policy = FLS_POLICY_FD;
            c->fd_per_client = 1;
            return FL_OK;
        }
        fls_policy_kind k;
        if (fls_policy_kind_parse(v, &k) != FL_OK)
            return reason(err, errlen, key, v, "full, fd, fd-per-client, afd-single or afd-multi");
        c->policy = k;
        c->fd_per_client = 0;
        return FL_OK;
    }
    if (strcmp(key, "partition") == 0) {
        flm_partition_spec ps;
        if (flm_partition_spec_parse(v, &ps, e2, sizeof e2) != FL_OK || !copy_str(c->partition, sizeof c->partition, v)) {
            if (err && errlen)
                snprintf(err, errlen, "--partition: %s", e2[0] ? e2 : "too long");
            return FL_ERR_INVALID_ARG;
        }
        return FL_OK;
    }
    if (strcmp(key, "down-codec") == 0 || strcmp(key, "up-codec") == 0) {
        flz_spec zs;
        if (flz_spec_parse(v, &zs, e2, sizeof e2) != FL_OK) {
            if (err && errlen)
                snprintf(err, errlen, "--%s: %s", key, e2);
            return FL_ERR_INVALID_ARG;
        }
        const char *no = key[0] == 'd' ? fls_down_codec_refusal(&zs) : NULL;
        if (no) {
            if (err && errlen)
                snprintf(err, errlen, "--%s: %s: %s", key, v, no);
            return FL_ERR_INVALID_ARG;
        }
        char *dst = key[0] == 'd' ? c->down_codec : c->up_codec;
        return copy_str(dst, FLSIM_CODEC_STR, v) ? FL_OK : reason(err, errlen, key, v, "short enough");
    }
    flsim_dist *d = !strcmp(key, "flops") ? &c->flops : !strcmp(key, "down-bps") ? &c->down_bps
                  : !strcmp(key, "up-bps") ? &c->up_bps : NULL;
    if (d) {
        if (flsim_dist_parse(v, d, e2, sizeof e2) != FL_OK) {
            if (err && errlen)
                snprintf(err, errlen, "--%s: %s", key, e2);
            return FL_ERR_INVALID_ARG;
        }
        return FL_OK;
    }
    if (strcmp(key, "availability") == 0) {
        if (flsim_avail_parse(v, &c->avail, e2, sizeof e2) != FL_OK) {
            if (err && errlen)
                snprintf(err, errlen, "--%s: %s", key, e2);
            return FL_ERR_INVALID_ARG;
        }
        return FL_OK;
    }
#undef U32
#undef DBL
#undef STR
    unknown_option(err, errlen, key, 1);
    return FL_ERR_NOT_FOUND;
}

fl_status flsim_config_validate(const flsim_config *c, char *err, size_t errlen)
{
#define FAIL(...) do { if (err && errlen) snprintf(err, errlen, __VA_ARGS__); return FL_ERR_CONFIG; } while (0)
    if (c->per_round > c->clients)
        FAIL("--per-round %u is larger than --clients %u", c->per_round, c->clients);
    /* A spec that cannot name a model is found here, before the data loads (mlp and cnn are
     * completed for the dataset's shape later, and its fit to the data is checked then). */
    if (strcmp(c->model, "mlp") != 0 && strcmp(c->model, "cnn") != 0 &&
        strcmp(c->model, "moge") != 0) {
        flm_arch a;
        char why[256];
        if (flm_arch_parse(c->model, &a, why, sizeof why) != FL_OK)
            FAIL("--model: %s", why);
    }
    if (c->data_shards > c->clients)
        FAIL("--data-shards %u is larger than --clients %u", c->data_shards, c->clients);
    if (!c->dataset[0])
        FAIL("--dataset is empty");
    /* A spec that does not parse is found here, before anything loads (flm_dataset_spec_check
     * reads nothing); whether its files are there is found when they load. */
    char why[512];
    if (!flsim_named_dataset(c->dataset) &&
        flm_dataset_spec_check(c->dataset, why, sizeof why) != FL_OK)
        FAIL("--dataset: %s", why);
    if (c->test_dataset[0] && !flsim_named_dataset(c->test_dataset) &&
        flm_dataset_spec_check(c->test_dataset, why, sizeof why) != FL_OK)
        FAIL("--test-dataset: %s", why);
    if (!c->model[0])
        FAIL("--model is empty");
    if (c->target_acc == 0 && c->keep_going)
        FAIL("--keep-going needs a --target-acc above 0 (0, the default, is none)");
    if (c->resume && !c->out[0])
        FAIL("--resume needs --out DIR: the run to continue is the one saved there");
    /* flsim_dist_parse refuses these; a program may fill the struct itself */
    const flsim_dist *rates[3] = {&c->flops, &c->down_bps, &c->up_bps};
    static const char *const rate_opt[3] = {"flops", "down-bps", "up-bps"};
    for (int i = 0; i < 3 && !c->trace[0]; i++)
        if (!(rates[i]->median >= FLSIM_RATE_MIN) || !isfinite(rates[i]->median))
            FAIL("--%s: %g: a rate must be finite and at least 1 (FLOP/s or bit/s), or the "
                 "virtual clock can overflow", rate_opt[i], rates[i]->median);
        else if (rates[i]->kind == FLSIM_DIST_LOGNORMAL &&
                 !(rates[i]->sigma >= 0 && rates[i]->sigma <= 10))
            FAIL("--%s: lognormal sigma %g is not in [0, 10]", rate_opt[i], rates[i]->sigma);
        else if (!isfinite(flsim_dist_max(rates[i])))
            FAIL("--%s: lognormal:%g:%g can draw a rate that is not finite (its largest draw "
                 "overflows a double)", rate_opt[i], rates[i]->median, rates[i]->sigma);
#undef FAIL
    return FL_OK;
}

void flsim_dist_format(const flsim_dist *d, char *buf, size_t cap)
{
    if (d->kind == FLSIM_DIST_LOGNORMAL)
        snprintf(buf, cap, "lognormal:%.17g:%.17g", d->median, d->sigma);
    else
        snprintf(buf, cap, "const:%.17g", d->median);
}

void flsim_avail_format(const flsim_avail *a, char *buf, size_t cap)
{
    if (a->kind == FLSIM_AVAIL_PROB)
        snprintf(buf, cap, "p:%.17g", a->p);
    else if (a->kind == FLSIM_AVAIL_DIURNAL)
        snprintf(buf, cap, "diurnal:%.17g:%.17g:%.17g", a->p_min, a->p_max, a->period_s);
    else
        snprintf(buf, cap, "always");
}

/* Bytes of the well-formed UTF-8 character at s (2 to 4; s[0] >= 0x80), 0 if it is not one
 * (a stray continuation byte, an overlong form, a surrogate, above U+10FFFF, cut short). */
static int utf8_char_len(const unsigned char *s)
{
    const unsigned c = s[0];
    int n;
    unsigned lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

void flsim_json_str(char *buf, size_t cap, const char *s)
{
    size_t o = 0;
    if (cap < 3) {
        if (cap)
            buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    for (; *s && o + 8 < cap; s++) {
        const unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7F) {
            o += (size_t)snprintf(buf + o, cap - o, "\\u%04x", ch);
        } else if (ch >= 0x80) {
            /* a path is bytes, JSON is UTF-8: a byte that starts no well-formed character is
             * written as U+FFFD, so that the file stays JSON */
            const int n = utf8_char_len((const unsigned char *)s);
            if (n == 0) {
                o += (size_t)snprintf(buf + o, cap - o, "\\ufffd");
            } else {
                memcpy(buf + o, s, (size_t)n);
                o += (size_t)n;
                s += n - 1;
            }
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* v in the fewest significant digits that read back as v (fl_text_shortest), into b (32
 * bytes). */
static const char *num(char *b, double v)
{
    return fl_text_shortest(b, 32, v, 0);
}

size_t flsim_config_json(const flsim_config *c, char *buf, size_t cap)
{
    char ds[2 * FLSIM_STR], tds[2 * FLSIM_STR], mo[2 * FLSIM_STR], tr[2 * FLSIM_STR], pa[160];
    char dc[200], uc[200], fl[96], db[96], ub[96], av[128];
    flsim_json_str(ds, sizeof ds, c->dataset);
    flsim_json_str(tds, sizeof tds, c->test_dataset);
    flsim_json_str(mo, sizeof mo, c->model);
    flsim_json_str(tr, sizeof tr, c->trace);
    flsim_json_str(pa, sizeof pa, c->partition);
    flsim_json_str(dc, sizeof dc, c->down_codec);
    flsim_json_str(uc, sizeof uc, c->up_codec);
    char t[128], nb[13][32];
    flsim_dist_format(&c->flops, t, sizeof t);
    flsim_json_str(fl, sizeof fl, t);
    flsim_dist_format(&c->down_bps, t, sizeof t);
    flsim_json_str(db, sizeof db, t);
    flsim_dist_format(&c->up_bps, t, sizeof t);
    flsim_json_str(ub, sizeof ub, t);
    flsim_avail_format(&c->avail, t, sizeof t);
    flsim_json_str(av, sizeof av, t);
    if (c->trace[0]) { /* the trace replaces the four: what they say was not used */
        snprintf(fl, sizeof fl, "null");
        snprintf(db, sizeof db, "null");
        snprintf(ub, sizeof ub, "null");
        snprintf(av, sizeof av, "null");
    }
    char ft[16];
    if (c->fold_threads == FLSIM_FOLD_AUTO)
        snprintf(ft, sizeof ft, "\"auto\"");
    else
        snprintf(ft, sizeof ft, "%u", c->fold_threads);
    const char *pol = c->policy == FLS_POLICY_FD && c->fd_per_client ? "fd-per-client"
                                                                      : fls_policy_kind_name(c->policy);
    char kl[FLM_MAX_LAYERS * 26 + 3];
    size_t kn = (size_t)snprintf(kl, sizeof kl, "[");
    for (uint32_t i = 0; i < c->n_keep_layers && i < FLM_MAX_LAYERS; i++)
        {
        char one[32];
        kn += (size_t)snprintf(kl + kn, sizeof kl - kn, "%s%s", i ? ", " : "",
                               num(one, c->keep_layers[i]));
    }
    snprintf(kl + kn, sizeof kl - kn, "]");
    return (size_t)snprintf(buf, cap,
        "{\"dataset\": %s, \"test_dataset\": %s, \"test_frac\": %s, \"train_samples\": %u, \"model\": %s, "
        "\"clients\": %u, \"per_round\": %u, \"rounds\": %u, \"data_shards\": %u, "
        "\"partition\": %s, \"policy\": \"%s\", \"keep\": %s, \"keep_layers\": %s, \"down_codec\": %s, "
        "\"up_codec\": %s, \"seed\": %llu, \"threads\": %u, \"fold_threads\": %s, \"epochs\": %u, "
        "\"batch\": %u, "
        "\"lr\": %s, \"momentum\": %s, \"weight_decay\": %s, \"prox_mu\": %s, "
        "\"server_lr\": %s, \"overcommit\": %s, \"deadline\": %s, \"latency\": %s, "
        "\"chunk_elems\": %u, \"eval_every\": %u, \"eval_samples\": %u, \"target_acc\": %s, "
        "\"keep_going\": %d, \"flops\": %s, \"down_bps\": %s, \"up_bps\": %s, "
        "\"availability\": %s, \"trace\": %s, \"idle_step\": %s, "
        "\"score_accumulate\": %d, \"loss_unweighted\": %d, \"eps_rel\": %s, "
        "\"agg_dilute\": %d}",
        ds, tds, num(nb[0], c->test_frac), c->train_samples, mo, c->clients, c->per_round, c->rounds, c->data_shards, pa, pol,
        num(nb[1], c->keep), kl, dc, uc, (unsigned long long)c->seed, c->threads, ft, c->epochs, c->batch, num(nb[2], c->lr),
        num(nb[3], c->momentum), num(nb[4], c->weight_decay), num(nb[5], c->prox_mu), num(nb[6], c->server_lr), num(nb[7], c->overcommit), num(nb[8], c->deadline_s),
        num(nb[9], c->latency_s), c->chunk_elems, c->eval_every, c->eval_samples, num(nb[10], c->target_acc),
        c->keep_going, fl, db, ub, av, tr, num(nb[11], c->idle_step_s), c->score_accumulate,
        c->loss_unweighted, num(nb[12], c->eps_rel), c->agg_dilute);
}

#ifdef FLSIM_HAVE_YAML
fl_status flsim_config_parse_yaml(flsim_config *c, const char *text, size_t len,
                                  const char *name, char *err, size_t errlen)
{
    if (!c || (!text && len))
        return FL_ERR_INVALID_ARG;
    if (!name)
        name = "config";
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return FL_ERR_NOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)(text ? text : ""), len);
    fl_status st = FL_OK;
    int depth = 0, done = 0, in_map = 0, docs = 0;
    char key[128] = "", raw[128] = ""; /* key as fl_sim names it ('_' made '-'), and as written */
    int have_key = 0, in_seq = 0;
    char seq[FLM_MAX_LAYERS * 32]; /* keep-layers given as a YAML list, joined by commas */
    /* the keys seen so far, and their lines: a key given twice is an error, not "the last wins" */
    enum { MAX_KEYS = 256 }; /* more than there are options: a longer file has an unknown one */
    char (*seen)[128] = calloc(MAX_KEYS, sizeof *seen);
    char (*seen_raw)[128] = calloc(MAX_KEYS, sizeof *seen_raw); /* each as the file spells it */
    size_t *seen_line = calloc(MAX_KEYS, sizeof *seen_line), n_seen = 0;
    if (!seen || !seen_raw || !seen_line)
        st = FL_ERR_NOMEM;
    while (!done && st == FL_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            /* libyaml's reader errors (a control character, invalid UTF-8) carry only an
             * offset, their mark stays at the start */
            size_t eline = (size_t)p.problem_mark.line, ecol = 0;
            if (p.error == YAML_READER_ERROR)
                fl_text_line_col(text ? text : "", len, p.problem_offset, &eline, &ecol);
            /* A key without its ': ' ("lr:0.1", "lr 0.1") is found missing only where the
             * scanner gives up on it, the next line or past the file's end: the line at fault
             * is where that key began (the context mark), quoted, with what YAML wants. */
            const char *problem = p.problem ? p.problem : "YAML syntax error";
            fl_text_overindent oi;
            if (p.error != YAML_READER_ERROR && fl_text_yaml_overindent(&oi, text, len, eline)) {
                /* a line indented under an option (or a list item) that already has a value
                 * ("rounds: 2", then "    seed: 3"), said as such, at that line: libyaml's
                 * "mapping values are not allowed in this context" or "did not find expected
                 * key" (after a comment or a quoted value) named neither */
                if (err && errlen)
                    snprintf(err, errlen, "%s:%zu: this line is indented under %s%s%s (line %zu), "
                             "which already has a value ('%s'): %s beside it is indented as it "
                             "is (libyaml: %s)", name, oi.line + 1, oi.item ? "" : "'",
                             oi.item ? "the list item" : oi.key, oi.item ? "" : "'",
                             oi.owner + 1, oi.value, oi.item ? "an item" : "an option", problem);
            } else if (p.error == YAML_SCANNER_ERROR && p.context &&
                p.context_mark.line < p.problem_mark.line && p.context_mark.index < len &&
                strcmp(problem, "could not find expected ':'") == 0) {
                eline = (size_t)p.context_mark.line;
                const char *at = text + p.context_mark.index;
                size_t n = 0; /* text need not end in a NUL (the fuzzer's does not) */
                while (p.context_mark.index + n < len && at[n] != '\n' && at[n] != '\r')
                    n++;
                if (err && errlen)
                    snprintf(err, errlen, "%s:%zu: '%.*s%s' is not 'name: value' (a colon and a "
                             "space after the name)", name, eline + 1, (int)(n > 60 ? 57 : n), at,
                             n > 60 ? "..." : "");
            } else if (err && errlen) {
                /* what libyaml was reading, and where it began ("found unexpected end of stream
                 * while scanning a quoted scalar (from line 1)": a quote not closed); and a tab
                 * where it gave up, which its "found character that cannot start any token"
                 * does not name, and which looks like the spaces beside it */
                char ctx[160] = "";
                if (p.context && p.error != YAML_READER_ERROR)
                    snprintf(ctx, sizeof ctx, " %s (from line %zu)", p.context,
                             (size_t)p.context_mark.line + 1);
                const char *tab = "";
                if (p.error != YAML_READER_ERROR && !strstr(problem, "tab")) {
                    size_t i = 0;
                    for (size_t l = 0; l < (size_t)p.problem_mark.line && i < len; i++)
                        l += text[i] == '\n';
                    for (size_t col = 0; i < len && col < (size_t)p.problem_mark.column &&
                                         text[i] != '\n'; i++)
                        col += ((unsigned char)text[i] & 0xC0) != 0x80; /* characters */
                    while (i < len && ((unsigned char)text[i] & 0xC0) == 0x80)
                        i++;
                    if (i < len && text[i] == '\t')
                        tab = ": a tab there (YAML indents with spaces, never tabs)";
                }
                snprintf(err, errlen, "%s:%zu: %s%s%s", name, eline + 1, problem, ctx, tab);
            }
            st = FL_ERR_CONFIG;
            break;
        }
        const size_t line = (size_t)ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            /* A second document ('---') is neither a nested mapping nor a second set of values. */
            if (docs++ != 0) {
                if (err && errlen)
                    snprintf(err, errlen, "%s:%zu: a second YAML document ('---'): the file must "
                             "be one mapping of option names to values", name, line);
                st = FL_ERR_CONFIG;
            }
            break;
        case YAML_MAPPING_START_EVENT:
            if (depth++ != 0 || in_map) {
                if (err && errlen)
                    snprintf(err, errlen, "%s:%zu: nested mappings are not options (want name: value)", name, line);
                st = FL_ERR_CONFIG;
            }
            in_map = 1;
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_SEQUENCE_START_EVENT:
            /* keep-layers: [0.5, 0.75] (as fl_server's policy.keep_layers), or 0.5,0.75 */
            if (depth == 1 && have_key && !in_seq && strcmp(key, "keep-layers") == 0) {
                in_seq = 1;
                seq[0] = '\0';
                break;
            }
            /* fall through */
        case YAML_ALIAS_EVENT:
            /* The value of an option (`clients: [1, 2]`, `clients: *n`) said as such: "only
             * scalar values are options" told neither that keep_layers alone takes a list nor
             * that an alias is refused as one (the value it names is a scalar) */
            if (err && errlen && depth == 1 && have_key && !in_seq &&
                ev.type == YAML_SEQUENCE_START_EVENT)
                snprintf(err, errlen, "%s:%zu: --%s takes one value, not a list (keep_layers "
                         "alone takes a list)", name, line, key);
            else if (err && errlen && depth == 1 && have_key && !in_seq)
                snprintf(err, errlen, "%s:%zu: --%s: '*%.60s' is a YAML alias: write the value "
                         "itself (a config file takes no aliases)", name, line, key,
                         (const char *)ev.data.alias.anchor);
            else if (err && errlen && depth == 1 && in_seq) /* inside keep_layers' list */
                snprintf(err, errlen, "%s:%zu: --%s: %s in its list: write each keep fraction "
                         "itself (keep_layers: [0.5, 0.75])", name, line, key,
                         ev.type == YAML_SEQUENCE_START_EVENT ? "a list" : "a YAML alias");
            else if (err && errlen)
                snprintf(err, errlen, depth == 0 ? "%s:%zu: the file must be one mapping of option "
                                                   "names to values"
                                                 : "%s:%zu: only scalar values are options",
                         name, line);
            st = FL_ERR_CONFIG;
            break;
        case YAML_SEQUENCE_END_EVENT:
            if (in_seq) {
                char e2[256];
                in_seq = 0;
                have_key = 0;
                if ((st = flsim_config_set(c, key, seq, e2, sizeof e2)) != FL_OK && err && errlen)
                    snprintf(err, errlen, "%s:%zu: %s", name, line, e2);
            }
            break;
        case YAML_SCALAR_EVENT: {
            const char *val = (const char *)ev.data.scalar.value;
            /* A plain value that runs on to a later line: a line indented under the option by
             * mistake ("rounds: 2", then "    seed"), which YAML joins to the value ("'2 seed'
             * is not a round count"; for a path, a file "x.csv seed"). A value that spans lines
             * on purpose is quoted. */
            fl_text_overindent oi;
            if ((have_key || in_seq) && depth == 1 &&
                ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                ev.end_mark.line > ev.start_mark.line &&
                fl_text_yaml_overindent(&oi, text, len, (size_t)ev.end_mark.line)) {
                if (err && errlen)
                    snprintf(err, errlen, "%s:%zu: --%s: this line is indented under %s%s%s "
                             "(line %zu), which already has a value ('%s'): YAML reads it as "
                             "more of that value; %s beside it is indented as it is", name,
                             oi.line + 1, key, oi.item ? "" : "'",
                             oi.item ? "the list item" : oi.key, oi.item ? "" : "'",
                             oi.owner + 1, oi.value, oi.item ? "an item" : "an option");
                st = FL_ERR_CONFIG;
                break;
            }
            if (in_seq) { /* one value of keep-layers' list */
                const size_t have = strlen(seq), add = strlen(val);
                if (!add || have + add + 2 > sizeof seq) {
                    if (err && errlen)
                        snprintf(err, errlen, "%s:%zu: --%s: '%s' is not a keep fraction in "
                                 "[0, 1]", name, line, key, val);
                    st = FL_ERR_CONFIG;
                    break;
                }
                snprintf(seq + have, sizeof seq - have, "%s%s", have ? "," : "", val);
                break;
            }
            /* YAML's null as a value (a plain ~, null, Null, NULL, or nothing after the colon; a
             * quoted "~" or "" is a string) leaves the option as it stands, which in fl_sim (the
             * file is read before the flags) is its default. trace and test_dataset, whose
             * default is no value, are set to none by ~ or null, so that a null there also undoes
             * a value set before the file; nothing after their colon is refused (below). */
            const int is_null = have_key && ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                                (!val[0] || !strcmp(val, "~") || !strcmp(val, "null") ||
                                 !strcmp(val, "Null") || !strcmp(val, "NULL"));
            /* Nothing after the colon of trace or test_dataset is refused, not read as none:
             * that is what `trace: $TRACE` through envsubst gives when TRACE is unset, and a run
             * without the trace it was meant to have is a wrong result, not an error seen. */
            const int none_word = is_null && val[0];
            if (is_null)
                val = "";
            if (depth == 0 && val[0]) { /* a line alone, 'rounds = 3' or 'lr:0.1' */
                if (err && errlen)
                    snprintf(err, errlen, "%s:%zu: '%.60s%s' is not 'name: value' (a colon and a "
                             "space after the name): the file must be one mapping of option "
                             "names to values", name, line, val, strlen(val) > 60 ? "..." : "");
                st = FL_ERR_CONFIG;
            } else if (depth != 1) {
                if (err && errlen)
                    snprintf(err, errlen, "%s:%zu: the file must be one mapping of option names to values", name, line);
                st = FL_ERR_CONFIG;
            } else if (!have_key) {
                snprintf(key, sizeof key, "%s", val);
                snprintf(raw, sizeof raw, "%s", val);
                for (char *q = key; *q; q++)
                    if (*q == '_')
                        *q = '-';
                have_key = 1;
                /* each spelling as the file has it: "'per_round' is given twice (first on line
                 * 1)" of a line 1 that reads per-round sent a search of the file for per_round
                 * to this line alone */
                for (size_t i = 0; i < n_seen && st == FL_OK; i++)
                    if (strcmp(seen[i], key) == 0) {
                        if (err && errlen && strcmp(seen_raw[i], raw) != 0)
                            snprintf(err, errlen, "%s:%zu: '%s' is given twice (first on line %zu, "
                                     "as '%s'): keep one of the two lines", name, line, raw,
                                     seen_line[i], seen_raw[i]);
                        else if (err && errlen)
                            snprintf(err, errlen, "%s:%zu: '%s' is given twice (first on line "
                                     "%zu): keep one of the two lines", name, line, raw,
                                     seen_line[i]);
                        st = FL_ERR_CONFIG;
                    }
                if (st == FL_OK && n_seen < MAX_KEYS) {
                    memcpy(seen[n_seen], key, sizeof key);
                    memcpy(seen_raw[n_seen], raw, sizeof raw);
                    seen_line[n_seen++] = line;
                }
            } else {
                char e2[256];
                if (strcmp(key, "config") == 0) {
                    if (err && errlen)
                        snprintf(err, errlen, "%s:%zu: config files do not nest", name, line);
                    st = FL_ERR_CONFIG;
                } else if (is_null && none_word &&
                           (strcmp(key, "trace") == 0 || strcmp(key, "test-dataset") == 0)) {
                    (strcmp(key, "trace") == 0 ? c->trace : c->test_dataset)[0] = '\0';
                } else if (is_null && strcmp(key, "trace") != 0 &&
                           strcmp(key, "test-dataset") != 0) {
                    int known = 0;
                    for (const flsim_option_doc *d = g_docs; d->name && !known; d++)
                        known = strcmp(d->name, key) == 0;
                    if (!known) {
                        unknown_option(e2, sizeof e2, raw, 0);
                        if (err && errlen)
                            snprintf(err, errlen, "%s:%zu: %s", name, line, e2);
                        st = FL_ERR_NOT_FOUND;
                    }
                } else if ((st = flsim_config_set(c, key, val, e2, sizeof e2)) != FL_OK) {
                    /* the key as the file has it, not as fl_sim spells it: a search of the file
                     * for 'per-rond' would not find per_rond */
                    if (st == FL_ERR_NOT_FOUND)
                        unknown_option(e2, sizeof e2, raw, 0);
                    /* a block scalar's value ends in its line break (`rounds: |`, then 2 on the
                     * next line, is "2\n"): the message shows it escaped, and says why */
                    const int block = (ev.data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                                       ev.data.scalar.style == YAML_FOLDED_SCALAR_STYLE) &&
                                      strchr(val, '\n');
                    if (err && errlen)
                        snprintf(err, errlen, "%s:%zu: %s%s", name, line, e2,
                                 block ? " (a block scalar, '|' or '>', keeps its line break: "
                                         "write the value on the key's line)" : "");
                }
                have_key = 0;
            }
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    /* A file without a single setting (empty, comments only) is refused, not run on the
     * defaults: it is what --config <(envsubst < run.yaml.in) gives when run.yaml.in is not
     * there, and a run of the default dataset and model is a wrong result, not an error seen. */
    if (st == FL_OK && n_seen == 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s: no setting in it (an empty file, or comments only): a "
                     "config file holds one 'name: value' line per option", name);
        st = FL_ERR_CONFIG;
    }
    free(seen);
    free(seen_raw);
    free(seen_line);
    if (st != FL_OK) /* a key or value quoted with a line break in it ("a\nb": 1) */
        one_line(err, errlen);
    return st;
}
#else
fl_status flsim_config_parse_yaml(flsim_config *c, const char *text, size_t len,
                                  const char *name, char *err, size_t errlen)
{
    (void)c;
    (void)text;
    (void)len;
    if (err && errlen)
        snprintf(err, errlen, "%s: this fl_sim was built without libyaml", name ? name : "config");
    return FL_ERR_UNSUPPORTED;
}
#endif

/* One path p (its first len bytes) a config file named, as seen from where fl_sim runs, into dst
 * (cap bytes): a relative one is the config's neighbour, joined to dir (its first dirlen bytes:
 * the config file's directory); an absolute or empty one is kept. Returns the length written, or
 * -1 if it would not fit (never a truncated path). */
static int path_beside(char *dst, size_t cap, const char *dir, int dirlen, const char *p, int len)
{
    const int rel = len > 0 && p[0] != '/';
    const int w = snprintf(dst, cap, "%.*s%s%.*s", rel ? dirlen : 0, dir, rel ? "/" : "", len, p);
    return w < 0 || (size_t)w >= cap ? -1 : w;
}

/* p[0..len) names a descriptor under /proc: /proc/self/fd/N, /proc/thread-self/fd/N,
 * /proc/PID/fd/N (/proc/self/cwd/x and the like name files, and are resolved). */
static int proc_fd(const char *p, int len)
{
    if (len < 6 || strncmp(p, "/proc/", 6) != 0)
        return 0;
    int i = 6;
    if (len - i >= 5 && strncmp(p + i, "self/", 5) == 0)
        i += 5;
    else if (len - i >= 12 && strncmp(p + i, "thread-self/", 12) == 0)
        i += 12;
    else {
        const int d = i;
        while (i < len && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == d || i >= len || p[i] != '/')
            return 0;
        i++;
    }
    return len - i >= 3 && strncmp(p + i, "fd/", 3) == 0;
}

/* One path p (its first len bytes) as realpath(3) names it, into dst (cap bytes): absolute,
 * without a symlink, "." or "..", so that the same file reads the same from any working
 * directory. A path that does not resolve (not there: its load says so) is kept as given; so is
 * a descriptor's name (/dev/stdin, /dev/fd/N, /proc/self/fd/N), which realpath would turn into
 * the file behind this process's descriptor (--trace /dev/stdin < t.csv saved as t.csv's path).
 * Returns the length written; -1 if even the path as given does not fit; -2 if it resolves to a
 * path that does not fit (kept as given: a run saved so would resume only from here, so
 * flsim_config_paths_absolute refuses it). */
static int path_absolute(char *dst, size_t cap, const char *p, int len)
{
    char given[PATH_MAX], real[PATH_MAX];
    const char *use = NULL;
    int too_long = 0;
    const int descriptor = (len >= 5 && strncmp(p, "/dev/", 5) == 0) || proc_fd(p, len);
    if (!descriptor && len > 0 && (size_t)len < sizeof given) {
        memcpy(given, p, (size_t)len);
        given[len] = '\0';
        if (realpath(given, real)) {
            if (strlen(real) < cap)
                use = real;
            else
                too_long = 1;
        }
    }
    const int w = use ? snprintf(dst, cap, "%s", use) : snprintf(dst, cap, "%.*s", len, p);
    return w < 0 || (size_t)w >= cap ? -1 : too_long ? -2 : w;
}

/* The file paths of a dataset spec (idx:A,B, femnist:P[,P...], shakespeare:P[,P...]; named and
 * synthetic datasets have none), each through path_beside (a config file named them: dir is
 * its directory) or, with dir NULL, through path_absolute. Returns 0; -1 if the result would
 * not fit in cap; -2 if a path resolves to one that does not fit (the spec left as it was). */
static int rebase_spec(char *spec, size_t cap, const char *dir, int dirlen)
{
    static const char *const with_paths[] = {"idx:", "femnist:", "shakespeare:"};
    size_t pre = 0;
    for (size_t i = 0; i < sizeof with_paths / sizeof with_paths[0] && !pre; i++)
        if (strncmp(spec, with_paths[i], strlen(with_paths[i])) == 0)
            pre = strlen(with_paths[i]);
    if (!pre)
        return 0;
    char out[FLSIM_STR];
    const size_t lim = cap < sizeof out ? cap : sizeof out;
    if (pre >= lim)
        return -1;
    memcpy(out, spec, pre);
    size_t o = pre;
    for (const char *p = spec + pre;;) {
        const char *comma = strchr(p, ',');
        const int len = comma ? (int)(comma - p) : (int)strlen(p);
        const int w = dir ? path_beside(out + o, lim - o, dir, dirlen, p, len)
                          : path_absolute(out + o, lim - o, p, len);
        if (w < 0)
            return w;
        o += (size_t)w;
        if (!comma)
            break;
        if (o + 1 >= lim)
            return -1;
        out[o++] = ',';
        p = comma + 1;
    }
    memcpy(spec, out, o + 1);
    return 0;
}

fl_status flsim_config_paths_absolute(flsim_config *c, char *err, size_t errlen)
{
    char t[sizeof c->trace];
    const int tw = c->trace[0] ? path_absolute(t, sizeof t, c->trace, (int)strlen(c->trace)) : 0;
    if (tw >= 0 && c->trace[0])
        memcpy(c->trace, t, sizeof t);
    /* on a spec that would not fit, each stays as it was (rebase_spec leaves it untouched) */
    const int dw = rebase_spec(c->dataset, sizeof c->dataset, NULL, 0);
    const int sw = rebase_spec(c->test_dataset, sizeof c->test_dataset, NULL, 0);
    const char *key = tw == -2 ? "trace" : dw == -2 ? "dataset" : sw == -2 ? "test-dataset" : NULL;
    if (!key)
        return FL_OK;
    if (err && errlen)
        snprintf(err, errlen, "--%s: a file's absolute path (as realpath names it, which "
                 "summary.json and resume.fls record, so that a run resumes from any directory) "
                 "is longer than %d characters, the most fl_sim records: move the file to a "
                 "shorter path", key, FLSIM_STR - 1);
    return FL_ERR_CONFIG;
}

fl_status flsim_config_load_yaml(flsim_config *c, const char *path, char *err, size_t errlen)
{
    /* Config files are small: a hard cap keeps a wrong path (a dataset) from being slurped. A
     * regular file, or a FIFO or pipe (`--config <(envsubst < run.yaml.in)`) whose writer is
     * waited for 10 s at most at a time: a FIFO without a writer used to hang the start. */
    enum { CAP = (1 << 20) - 1 };
    char *buf = NULL;
    size_t n = 0;
    mode_t mode = 0;
    fl_status st = fl_file_read_wait(path, CAP, 10.0, &buf, &n, &mode, err, errlen);
    if (st != FL_OK && err && errlen) { /* "missing.yaml: No such file" named no option */
        char *why = strdup(err);
        if (why)
            snprintf(err, errlen, "--config: %s", why);
        free(why);
    }
    if (st == FL_OK) {
        char before[sizeof c->trace], ds_before[sizeof c->dataset],
            tds_before[sizeof c->test_dataset];
        memcpy(before, c->trace, sizeof before);
        memcpy(ds_before, c->dataset, sizeof ds_before);
        memcpy(tds_before, c->test_dataset, sizeof tds_before);
        st = flsim_config_parse_yaml(c, buf, n, path, err, errlen);
        /* What the file names to be read (a trace, a dataset's files) is the file's neighbour,
         * wherever fl_sim runs from (as the config's author wrote it); out stays where fl_sim
         * runs: an output. A value the file did not change (set before it) is left alone. A
         * pipe (/dev/fd/63) has no neighbours, nor has a descriptor's name (--config /dev/stdin
         * < run.yaml): their paths are taken from where fl_sim runs. */
        const int piped = S_ISFIFO(mode) || strncmp(path, "/dev/", 5) == 0 ||
                          strncmp(path, "/proc/", 6) == 0;
        const char *sl = piped ? NULL : strrchr(path, '/');
        const int dirlen = sl ? (int)(sl - path) : 0;
        if (st == FL_OK && sl) {
            char *const specs[2] = {c->dataset, c->test_dataset};
            const size_t caps[2] = {sizeof c->dataset, sizeof c->test_dataset};
            const char *const was[2] = {ds_before, tds_before};
            static const char *const key[2] = {"dataset", "test_dataset"};
            for (int i = 0; i < 2 && st == FL_OK; i++) {
                if (strcmp(was[i], specs[i]) == 0)
                    continue;
                if (rebase_spec(specs[i], caps[i], path, dirlen) != 0) {
                    if (err && errlen)
                        snprintf(err, errlen, "%s: %s: the paths beside the config are longer "
                                 "than %zu characters", path, key[i], caps[i] - 1);
                    st = FL_ERR_CONFIG;
                }
            }
        }
        if (st == FL_OK && sl && strcmp(before, c->trace) != 0) {
            char joined[sizeof c->trace];
            if (path_beside(joined, sizeof joined, path, dirlen, c->trace,
                            (int)strlen(c->trace)) < 0) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: trace: the path beside the config is longer than "
                             "%zu characters", path, sizeof joined - 1);
                st = FL_ERR_CONFIG;
            } else {
                memcpy(c->trace, joined, sizeof joined);
            }
        }
    }
    free(buf);
    return st;
}
