/* fls_config.c: fls_options, its key table (one place defines every key's type, default, range
 * and help), the YAML reader (libyaml events; outside bytes: strict, bounded) and the conversion
 * to the round engine's fls_config. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <yaml.h>

#include "flm_arch.h"
#include "fl_endpoint.h"
#include "fl_fs.h"
#include "fl_sha256.h"
#include "fl_text.h"
#include "fls_internal.h"
#include "flz.h"

typedef enum ktype {
    K_U32, K_U64, K_F64, K_F32, K_F64_OPT, K_BOOL, K_STR, K_ENUM, K_ENDPOINTS, K_KEEP_LAYERS,
    K_POLICY, K_OPTKIND,
} ktype;

typedef struct key_def {
    const char *key;
    ktype type;
    size_t off;          /* into fls_options */
    size_t size;         /* K_STR: buffer size */
    double min, max;     /* numeric range (inclusive) */
    const char *choices; /* K_ENUM: "a|b|c" (index = value) */
    const char *def;
    const char *help;
} key_def;

#define OFF(f) offsetof(fls_options, f)
#define SZ(f) sizeof(((fls_options *)0)->f)
#define U32MAX 4294967295.0
#define BIG 1.8446744073709552e19

static const key_def KEYS[] = {
    /* server */
    {"server.endpoints", K_ENDPOINTS, OFF(endpoints), 0, 0, 0, NULL, "tcp://*:5555",
     "endpoints to bind (tcp://HOST:PORT, HOST * or an IP address ([::1]) or an interface "
     "(lo, eth0), not a host name; ipc:///PATH, PATH at most 107 bytes); a YAML list, or "
     "comma-separated"},
    {"server.insecure", K_BOOL, OFF(insecure), 0, 0, 1, NULL, "false",
     "turn CURVE off: plain text, no client authentication (logged as a warning)"},
    {"server.secret_key_file", K_STR, OFF(secret_key_file), SZ(secret_key_file), 0, 0, NULL, "",
     "the server's secret key file (fl_server keygen); required unless insecure"},
    {"server.allow_list", K_STR, OFF(allow_list), SZ(allow_list), 0, 0, NULL, "",
     "file of allowed client public keys, one Z85 key per line; re-read on SIGHUP"},
    {"server.heartbeat_ms", K_U32, OFF(heartbeat_ms), 0, 10, 600000, NULL, "1000",
     "interval of the server's Heartbeat messages to each client"},
    {"server.liveness_ms", K_U32, OFF(liveness_ms), 0, 100, 3600000, NULL, "10000",
     "silence after which a client is considered gone (its session ends)"},
    {"server.credit", K_U32, OFF(credit), 0, 1, 1024, NULL, "8",
     "chunks in flight per client, both ways: weight chunks sent ahead of the client's Acks, "
     "update chunks a client may send ahead of the server's Acks (flow-control window)"},
    {"server.upload_slots", K_U32, OFF(upload_slots), 0, 1, 4096, NULL, "1",
     "clients sending update chunks at once; later Updates wait their turn (server memory: one "
     "model-size staging buffer per slot, whatever the number of clients)"},
    {"server.sndhwm", K_U32, OFF(sndhwm), 0, 16, 1000000, NULL, "1000",
     "messages queued per client before sends are dropped (ZMQ_SNDHWM)"},
    {"server.max_clients", K_U32, OFF(max_clients), 0, 1, 10000000, NULL, "100000",
     "client ids this server holds at once, at least round.clients and round.min_clients; in "
     "plain text a new id beyond them takes the place of the id seen least recently if it has had "
     "no session for server.id_idle_s, else its Hello is refused (\"server full\"); under CURVE "
     "an id is only freed by its key leaving the allow-list or by a new id of its own key "
     "(server.ids_per_key)"},
    {"server.id_idle_s", K_U32, OFF(id_idle_s), 0, 0, U32MAX, NULL, "3600",
     "seconds an id must have been without a session before a new id may take its place when "
     "server.max_clients (plain text) or its key's server.ids_per_key (CURVE) is reached (it "
     "loses its key binding, not its training state); 0: ids are never forgotten"},
    {"server.ids_per_key", K_U32, OFF(ids_per_key), 0, 0, 10000000, NULL, "64",
     "client ids one CURVE public key may hold at once (a new one beyond them needs one of the "
     "key's ids idle for server.id_idle_s); 0: no limit; plain text has no keys"},
    {"server.idle_connection_s", K_U32, OFF(idle_conn_s), 0, 0, U32MAX, NULL, "60",
     "seconds a connection may carry no client session (no Hello accepted yet, or its session "
     "over) before the server closes it: connections that never say Hello would otherwise hold "
     "a file descriptor each for good; a live session is never affected (it sends at least once "
     "per server.liveness_ms; a value below twice that is raised to it, logged); 0: never closed"},
    {"server.done_linger_s", K_U32, OFF(done_linger_s), 0, 0, 604800, NULL, "0",
     "seconds the server stays up once the run is done (also when started with --resume on a "
     "finished run), answering every client that comes in with Bye(\"done\"), on which it "
     "exits: devices that were away when the run ended learn that it is over instead of "
     "retrying for good; a stop ends the wait; 0: exit at once"},
    {"server.listen_backlog", K_U32, OFF(backlog), 0, 1, 65535, NULL, "4096",
     "connections waiting to be accepted on each tcp:// or ipc:// endpoint (ZMQ_BACKLOG; Linux "
     "caps it at net.core.somaxconn): when a fleet reconnects at once, as after a restart, "
     "connection attempts beyond it are dropped and retried by the clients' kernels seconds "
     "later"},
    {"server.max_msg_bytes", K_U64, OFF(max_msg_bytes), 0, 4096, 1073741824.0, NULL, "16777216",
     "largest message accepted (ZMQ_MAXMSGSIZE and the wire decoder's cap)"},
    /* model */
    {"model.arch", K_STR, OFF(core.arch), SZ(core.arch), 0, 0, NULL, "mlp:784-200-200-10",
     "architecture spec: mlp:784-200-200-10, cnn:10:28x28x1, lstm, moge, ..."},
    /* run */
    {"run.seed", K_U64, OFF(core.seed), 0, 0, BIG, NULL, "1",
     "run seed: every random draw (sampling, keep-sets, init) derives from it"},
    {"run.rounds", K_U32, OFF(core.max_rounds), 0, 0, U32MAX, NULL, "0",
     "stop after this many rounds (0: no limit)"},
    {"run.metrics", K_STR, OFF(metrics_path), SZ(metrics_path), 0, 0, NULL, "",
     "per-round metrics as JSON lines: a file (appended), '-' for stdout, '' for none"},
    {"run.log_level", K_ENUM, OFF(log_level), 0, 0, 0, "debug|info|warn|error", "info",
     "least severe log level printed"},
    {"run.resume", K_BOOL, OFF(resume), 0, 0, 1, NULL, "false",
     "continue from checkpoint.path when the file exists"},
    /* round */
    {"round.clients", K_U32, OFF(core.clients_per_round), 0, 1, 1000000, NULL, "10",
     "clients per round = quorum: the round closes once this many updates are in"},
    {"round.overcommit", K_F64, OFF(core.overcommit), 0, 1, 100, NULL, "1.3",
     "select ceil(overcommit * clients) clients to absorb stragglers"},
    {"round.min_clients", K_U32, OFF(core.min_clients), 0, 0, 1000000, NULL, "0",
     "connected clients needed to start a round (0: round.clients)"},
    {"round.deadline_s", K_F64, OFF(core.round_timeout_s), 0, 0.001, 1e7, NULL, "600",
     "a round closes this many seconds after it starts even without quorum"},
    /* policy */
    {"policy.kind", K_POLICY, OFF(core.policy.kind), 0, 0, 0, "full|fd|afd-single|afd-multi",
     "full", "submodel selection: full (FedAvg), fd (federated dropout), afd-single, afd-multi"},
    {"policy.keep", K_F64, OFF(core.policy.keep_p), 0, 1e-9, 1, NULL, "0.75",
     "fraction of units kept in every droppable layer, (0, 1]"},
    {"policy.keep_layers", K_KEEP_LAYERS, OFF(core.policy.keep_p_layer), 0, 0, 1, NULL, "",
     "per droppable layer keep fraction overrides, at most one per droppable layer of model.arch "
     "(list; 0 = use policy.keep)"},
    {"policy.fd_per_client", K_BOOL, OFF(core.policy.fd_per_client), 0, 0, 1, NULL, "false",
     "fd: draw one keep-set per client instead of one per round"},
    {"policy.score_accumulate", K_BOOL, OFF(core.policy.score_accumulate), 0, 0, 1, NULL, "false",
     "afd: S[u] += gain instead of S[u] = gain"},
    {"policy.loss_unweighted", K_BOOL, OFF(core.policy.loss_unweighted), 0, 0, 1, NULL, "false",
     "afd-single: plain mean of client losses instead of sample-weighted"},
    {"policy.eps_rel", K_F64, OFF(core.policy.eps_rel), 0, 1e-12, 1e6, NULL, "0.001",
     "afd: exploration weight eps = eps_rel * max score"},
    /* codec */
    {"codec.down", K_STR, OFF(core.down_codec), SZ(core.down_codec), 0, 0, NULL, "none",
     "codec pipeline for the weights sent to clients (grammar: compress/README.md, installed "
     "as share/doc/fedrop/codecs.md)"},
    {"codec.up", K_STR, OFF(core.up_codec), SZ(core.up_codec), 0, 0, NULL, "none",
     "codec pipeline clients use for their deltas (the same grammar)"},
    {"codec.chunk_elems", K_U32, OFF(core.chunk_elems), 0, 1, 1048576, NULL, "65536",
     "elements per chunk message; a tensor may span at most 65536 chunks"},
    /* optimizer */
    {"optimizer.kind", K_OPTKIND, OFF(core.opt.kind), 0, 0, 0,
     "fedavg|fedavgm|fedadagrad|fedadam|fedyogi", "fedavg", "server optimizer"},
    {"optimizer.lr", K_F64_OPT, OFF(opt_lr), 0, 1e-12, 1e6, NULL, "",
     "server learning rate (default: 1, adaptive kinds 0.01)"},
    {"optimizer.momentum", K_F64_OPT, OFF(opt_momentum), 0, 0, 0.999999, NULL, "",
     "fedavgm momentum (default 0.9)"},
    {"optimizer.beta1", K_F64_OPT, OFF(opt_beta1), 0, 0, 0.999999, NULL, "",
     "adaptive kinds: beta1 (default 0.9)"},
    {"optimizer.beta2", K_F64_OPT, OFF(opt_beta2), 0, 0, 0.999999, NULL, "",
     "fedadam, fedyogi: beta2 (default 0.99)"},
    {"optimizer.tau", K_F64_OPT, OFF(opt_tau), 0, 1e-12, 1e6, NULL, "",
     "adaptive kinds: tau (default 0.001)"},
    {"optimizer.v0", K_F64_OPT, OFF(opt_v0), 0, 0, 1e6, NULL, "",
     "adaptive kinds: initial v (default tau^2)"},
    /* aggregation */
    {"aggregation.mode", K_ENUM, OFF(core.agg.mode), 0, 0, 0, "mean|trimmed-mean|median", "mean",
     "mean (exact, sample-weighted), trimmed-mean or median (robust, unweighted)"},
    {"aggregation.dilute", K_BOOL, OFF(core.agg.dilute), 0, 0, 1, NULL, "false",
     "coordinates a client did not train count as zero deltas"},
    {"aggregation.clip_norm", K_F64, OFF(core.agg.clip_norm), 0, 0, 1e12, NULL, "0",
     "scale each update to this L2 norm at most (0: off)"},
    {"aggregation.trim_frac", K_F64, OFF(core.agg.trim_frac), 0, 0, 0.499999, NULL, "0",
     "trimmed-mean: fraction dropped at each end"},
    {"aggregation.max_updates", K_U32, OFF(core.agg.max_updates), 0, 0, 1000000, NULL, "0",
     "robust modes: updates kept per round, at least round.clients (0: 256)"},
    /* train */
    {"train.epochs", K_U32, OFF(core.train.epochs), 0, 1, 100000, NULL, "1",
     "local epochs per round"},
    {"train.batch", K_U32, OFF(core.train.batch_size), 0, 1, 1000000, NULL, "10",
     "local batch size"},
    {"train.lr", K_F32, OFF(core.train.lr), 0, 1e-12, 1e6, NULL, "0.05", "local learning rate"},
    {"train.momentum", K_F32, OFF(core.train.momentum), 0, 0, 0.999999, NULL, "0",
     "local SGD momentum, [0, 1)"},
    {"train.weight_decay", K_F32, OFF(core.train.weight_decay), 0, 0, 1e6, NULL, "0",
     "local weight decay"},
    {"train.prox_mu", K_F32, OFF(core.train.prox_mu), 0, 0, 1e6, NULL, "0",
     "FedProx mu (0: plain SGD)"},
    {"train.max_samples", K_U64, OFF(core.train.max_samples), 0, 0, BIG, NULL, "0",
     "local samples per round (0: the whole local dataset, up to the per-update share: "
     "2^24 / round.clients, at most 2^20)"},
    /* eval */
    {"eval.dataset", K_ENUM, OFF(eval_dataset), 0, 0, 0, "none|synthetic|mnist|fashion-mnist",
     "none", "test set the server evaluates the global model on"},
    {"eval.split", K_ENUM, OFF(eval_split), 0, 0, 0, "test|train", "test", "which split"},
    {"eval.dir", K_STR, OFF(eval_dir), SZ(eval_dir), 0, 0, NULL, "",
     "where the dataset lives: DIR/NAME or DIR, the first that holds it (as $FEDROP_DATA_DIR "
     "and fl_client --data-dir; default $FEDROP_DATA_DIR, else /usr/share/datasets/NAME)"},
    {"eval.max_samples", K_U64, OFF(eval_max_samples), 0, 0, BIG, NULL, "0",
     "evaluate on the first N samples only (0: all)"},
    {"eval.batch", K_U32, OFF(eval_batch), 0, 1, 65536, NULL, "256", "evaluation batch size"},
    {"eval.synthetic_samples", K_U64, OFF(eval_synth_samples), 0, 1, 10000000, NULL, "2000",
     "synthetic: samples generated (Gaussian clusters / token chains from run.seed)"},
    {"eval.every", K_U32, OFF(core.eval_every), 0, 0, U32MAX, NULL, "0",
     "evaluate every N rounds (0: every round when eval.dataset is set)"},
    {"eval.target_accuracy", K_F64, OFF(core.target_accuracy), 0, 0, 1, NULL, "0",
     "stop once an evaluation reaches this accuracy (0: no target)"},
    /* checkpoint */
    {"checkpoint.path", K_STR, OFF(ckpt_path), SZ(ckpt_path), 0, 0, NULL, "",
     "checkpoint file (written atomically); '' for none"},
    {"checkpoint.every", K_U32, OFF(ckpt_every), 0, 0, U32MAX, NULL, "10",
     "write a checkpoint every N rounds (0: only at stop and at the end)"},
};
#define N_KEYS (sizeof KEYS / sizeof KEYS[0])
_Static_assert(N_KEYS == FLS_N_KEYS, "FLS_N_KEYS (fls_internal.h) must count the key table");

#define fail(err, errlen, ...) fl_errf(err, errlen, FL_ERR_CONFIG, __VA_ARGS__)

static const key_def *key_find(const char *key)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(KEYS[i].key, key) == 0)
            return &KEYS[i];
    return NULL;
}

/* ---- scalar parsers --------------------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return 0;
    errno = 0;
    char *end = NULL;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end)
        return 0;
    *out = v;
    return 1;
}

/* A decimal number: 1 and *out set (+0 for a "-0"); 0 not one; F64_TINY a nonzero number too small for a double
 * (strtod's ERANGE with a result at or below DBL_MIN: a subnormal, or 0 for 1e-400), which is
 * refused as before but no longer said as "not a finite number"; F64_HUGE beyond DBL_MAX. */
enum { F64_TINY = -1, F64_HUGE = -2 };
static int parse_f64(const char *s, double *out)
{
    if (!s || !*s || strlen(s) > 64)
        return 0;
    /* strtod also takes "inf", "nan" and hex floats: finite decimal numbers only here */
    for (const char *p = s; *p; p++)
        if (!strchr("0123456789+-.eE", *p))
            return 0;
    errno = 0;
    char *end = NULL;
    const double v = strtod(s, &end);
    if (!end || *end)
        return 0;
    if (errno == ERANGE)
        return fabs(v) <= DBL_MIN ? F64_TINY : F64_HUGE;
    if (errno || !isfinite(v))
        return 0;
    /* "-0" is 0: a negative zero reached the checkpoint's settings (compared by their bits), and a
     * run started with train.momentum -0 refused to resume with 0 ("train.momentum 0 -> 0"). */
    *out = v == 0.0 ? 0.0 : v;
    return 1;
}

/* The message of a number key whose text parse_f64 refused with got. */
static fl_status f64_fail(char *err, size_t errlen, const key_def *k, const char *v, int got)
{
    if (got == F64_TINY)
        return fail(err, errlen, "%s: '%s' is too small for a double (nonzero, below %.1e in "
                    "magnitude)", k->key, v, DBL_MIN);
    return fail(err, errlen, "%s: '%s' is not a finite number", k->key, v);
}

static int parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) { /* any case, as YAML's True / FALSE */
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 1;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 1;
    }
    return 0;
}

static int parse_choice(const char *choices, const char *s, int *out)
{
    const size_t n = strlen(s);
    int idx = 0;
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        const size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0)
            return *out = idx, 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

static int choice_name(const char *choices, int idx, char *buf, size_t cap)
{
    const char *p = choices;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, '|');
        if (p)
            p++;
    }
    if (!p)
        return 0;
    const char *bar = strchr(p, '|');
    const size_t len = bar ? (size_t)(bar - p) : strlen(p);
    snprintf(buf, cap, "%.*s", (int)len, p);
    return 1;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* An integer key's range as "[MIN, MAX]". The table holds its bounds as doubles, where 2^64 - 1
 * rounds up to 2^64 (BIG): a bound at or past the largest value of the key's type is that value,
 * 18446744073709551615, not %.0f's 18446744073709551616, which the key refuses. */
static const char *int_range(char *buf, size_t cap, const key_def *k)
{
    const uint64_t top = k->type == K_U32 ? UINT32_MAX : UINT64_MAX;
    const unsigned long long max = k->max >= (double)top ? top : (unsigned long long)k->max;
    snprintf(buf, cap, "[%.0f, %llu]", k->min, max);
    return buf;
}

/* Adds one item to a list key (append = 1) or sets the scalar. */
static fl_status key_set(fls_options *o, const key_def *k, const char *v, int append, char *err,
                         size_t errlen)
{
    char *base = (char *)o + k->off;
    if (has_control(v))
        return fail(err, errlen, "%s: control characters in value", k->key);
    switch (k->type) {
    case K_U32:
    case K_U64: {
        uint64_t x;
        char range[64];
        if (!parse_u64(v, &x) && *v && v[strspn(v, "0123456789")] == 0)
            /* all digits, beyond 2^64: an unsigned integer all the same, out of range */
            return fail(err, errlen, "%s: %s is out of range %s", k->key, v,
                        int_range(range, sizeof range, k));
        if (!parse_u64(v, &x))
            return fail(err, errlen, "%s: '%s' is not an unsigned integer", k->key, v);
        if ((double)x < k->min || (double)x > k->max)
            return fail(err, errlen, "%s: %s is out of range %s", k->key, v,
                        int_range(range, sizeof range, k));
        if (k->type == K_U32)
            *(uint32_t *)base = (uint32_t)x;
        else
            *(uint64_t *)base = x;
        return FL_OK;
    }
    case K_F64:
    case K_F32:
    case K_F64_OPT: {
        double x;
        if (k->type == K_F64_OPT && !*v) {
            *(double *)base = NAN;
            return FL_OK;
        }
        const int got = parse_f64(v, &x);
        if (got != 1)
            return f64_fail(err, errlen, k, v, got);
        if (x < k->min || x > k->max)
            return fail(err, errlen, "%s: %s is out of range [%g, %g]", k->key, v, k->min, k->max);
        if (k->type == K_F32)
            *(float *)base = (float)x;
        else
            *(double *)base = x;
        return FL_OK;
    }
    case K_BOOL:
        if (!parse_bool(v, (int *)base))
            return fail(err, errlen, "%s: '%s' is not a boolean (true/false, yes/no, on/off or 1/0)", k->key, v);
        return FL_OK;
    case K_STR:
        if (strlen(v) >= k->size)
            return fail(err, errlen, "%s: value longer than %zu bytes", k->key, k->size - 1);
        snprintf(base, k->size, "%s", v);
        return FL_OK;
    case K_ENUM:
        if (!parse_choice(k->choices, v, (int *)base))
            return fail(err, errlen, "%s: '%s' is not one of %s", k->key, v, k->choices);
        return FL_OK;
    case K_POLICY: {
        fls_policy_kind pk;
        if (fls_policy_kind_parse(v, &pk) != FL_OK)
            return fail(err, errlen, "%s: '%s' is not one of %s", k->key, v, k->choices);
        o->core.policy.kind = pk;
        return FL_OK;
    }
    case K_OPTKIND: {
        fls_opt_kind ok;
        if (fls_opt_kind_parse(v, &ok) != FL_OK)
            return fail(err, errlen, "%s: '%s' is not one of %s", k->key, v, k->choices);
        o->core.opt.kind = ok;
        return FL_OK;
    }
    case K_ENDPOINTS: {
        if (!append)
            o->n_endpoints = 0;
        if (!*v)
            return FL_OK;
        if (o->n_endpoints >= FLS_MAX_ENDPOINTS)
            return fail(err, errlen, "%s: more than %d endpoints", k->key, FLS_MAX_ENDPOINTS);
        if (strlen(v) >= FLS_ENDPOINT_MAX)
            return fail(err, errlen, "%s: endpoint longer than %d bytes", k->key,
                        FLS_ENDPOINT_MAX - 1);
        if (strpbrk(v, " \t,"))
            return fail(err, errlen, "%s: '%s' contains a blank or a comma", k->key, v);
        if (strncmp(v, "tcp://", 6) != 0 && strncmp(v, "ipc://", 6) != 0)
            return fail(err, errlen, "%s: '%s' is not a tcp:// or ipc:// endpoint", k->key, v);
        if (strlen(v) == 6)
            return fail(err, errlen, "%s: '%s' has no address", k->key, v);
        if (strncmp(v, "tcp://", 6) == 0) {
            /* HOST:PORT, PORT a number in 0..65535 (0 or *: one the system picks). libzmq takes
             * 99999 as port 34463 (mod 2^16) and a missing port as "Invalid argument" at bind. */
            const char *host, *port;
            size_t host_len;
            if (!fl_tcp_split(v, &host, &host_len, &port))
                return fail(err, errlen, "%s: '%s' is not HOST:PORT (e.g. tcp://*:5555)", k->key, v);
            /* libzmq's SOURCE;HOST:PORT is for a connect: its bind says "Invalid argument" */
            if (memchr(host, ';', host_len))
                return fail(err, errlen, "%s: '%s' names a source address (SOURCE;HOST), which "
                            "only a client's connect takes: bind tcp://HOST:PORT", k->key, v);
            /* A ':' in HOST outside brackets that leaves no IPv6 address before the last ':':
             * an IPv6 address without its port ("tcp://::1": HOST ':', PORT 1), or a second
             * port ("tcp://h:1:2"). It was refused at the start and by --check as a host name,
             * "no interface of this machine is called ':'". (A bare IPv6 address with its port,
             * tcp://::1:5555, libzmq binds as tcp://[::1]:5555: taken, and the start warns.) */
            char h[FLS_ENDPOINT_MAX];
            snprintf(h, sizeof h, "%.*s", (int)host_len, host);
            if (h[0] != '[' && strchr(h, ':') && fl_ip_literal(h) != 6) {
                if (fl_ip_literal(v + 6) == 6)
                    return fail(err, errlen, "%s: '%s' has no port: an IPv6 address is written "
                                "in brackets, the port after them: tcp://[%s]:PORT", k->key, v,
                                v + 6);
                return fail(err, errlen, "%s: '%s': its HOST '%s' has a ':' and is no IPv6 "
                            "address: write tcp://HOST:PORT, an IPv6 address in brackets "
                            "(tcp://[::1]:5555)", k->key, v, h);
            }
            if (strcmp(port, "*") != 0 && fl_port_number(port) < 0)
                return fail(err, errlen, "%s: '%s': port '%s' is not a number in 0..65535 (0 or "
                            "*: any free port)", k->key, v, port);
        }
        /* libzmq's bind refuses a path longer than a Unix socket's address holds ("File name
         * too long"), which --check did not see */
        const size_t ipc_most = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
        if (strncmp(v, "ipc://", 6) == 0 && strlen(v + 6) > ipc_most)
            return fail(err, errlen, "%s: '%s': a path of %zu bytes, where a Unix socket's holds "
                        "at most %zu", k->key, v, strlen(v + 6), ipc_most);
        snprintf(o->endpoints[o->n_endpoints++], FLS_ENDPOINT_MAX, "%s", v);
        return FL_OK;
    }
    case K_KEEP_LAYERS: {
        double *arr = o->core.policy.keep_p_layer;
        if (!append) {
            for (size_t i = 0; i < FLM_MAX_LAYERS; i++)
                arr[i] = 0;
            o->n_keep_layers = 0;
        }
        if (!*v)
            return FL_OK;
        double x;
        const int got = parse_f64(v, &x);
        if (got != 1)
            return f64_fail(err, errlen, k, v, got);
        if (x < 0 || x > 1)
            return fail(err, errlen, "%s: %s is outside [0, 1] (0: policy.keep)", k->key, v);
        if (o->n_keep_layers >= FLM_MAX_LAYERS)
            return fail(err, errlen, "%s: more than %d layers", k->key, FLM_MAX_LAYERS);
        arr[o->n_keep_layers++] = x;
        return FL_OK;
    }
    }
    return FL_ERR_INTERNAL;
}

/* Sets a key from text: list keys split on commas. A list may also be written as in the YAML
 * file, [a, b] with its items quoted or not (--help calls these keys lists): the brackets and a
 * pair of quotes around each item are taken off, where the first item, '[tcp:...', used to be
 * refused as no endpoint. */
static fl_status key_set_text(fls_options *o, const key_def *k, const char *v, char *err,
                              size_t errlen)
{
    if (k->type != K_ENDPOINTS && k->type != K_KEEP_LAYERS)
        return key_set(o, k, v, 0, err, errlen);
    fl_status st = key_set(o, k, "", 0, err, errlen); /* clear */
    const char *p = v, *end = v + strlen(v);
    while (*p == ' ' || *p == '\t')
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    const int flow = *p == '[';
    if (flow) {
        if (end - p < 2 || end[-1] != ']')
            return fail(err, errlen, "%s: '%s' opens a list with '[' but does not end with ']'",
                        k->key, v);
        p++;
        end--;
    }
    while (st == FL_OK && p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
        char item[FLS_ENDPOINT_MAX + 1];
        size_t a = 0, b = len;
        while (a < b && (p[a] == ' ' || p[a] == '\t'))
            a++;
        while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t'))
            b--;
        if (flow && b - a >= 2 && (p[a] == '"' || p[a] == '\'') && p[b - 1] == p[a]) {
            a++;
            b--;
        }
        if (b - a >= sizeof item)
            return fail(err, errlen, "%s: list item too long", k->key);
        memcpy(item, p + a, b - a);
        item[b - a] = 0;
        if (!item[0])
            return fail(err, errlen, "%s: empty list item", k->key);
        st = key_set(o, k, item, 1, err, errlen);
        p = comma ? comma + 1 : p + len;
        if (comma && p >= end)
            return fail(err, errlen, "%s: empty list item", k->key);
    }
    return st;
}

/* ---- origins: where each key's value came from ---------------------------------------------- */

/* A flag as typed, whole when it fits, else its start and "...". */
static void origin_text(fls_options *o, const key_def *k, const char *text)
{
    char *dst = o->origin[k - KEYS];
    if (strlen(text) < FLS_ORIGIN_MAX)
        snprintf(dst, FLS_ORIGIN_MAX, "%s", text);
    else
        snprintf(dst, FLS_ORIGIN_MAX, "%.*s...", FLS_ORIGIN_MAX - 4, text);
}

/* "NAME:LINE"; a name too long keeps its end (the file's own name) and the line. */
static void origin_file(fls_options *o, const key_def *k, const char *name, size_t line)
{
    char *dst = o->origin[k - KEYS];
    char num[24];
    snprintf(num, sizeof num, ":%zu", line);
    const size_t room = FLS_ORIGIN_MAX - 1 - strlen(num); /* for the name */
    size_t n = strlen(name), used = 0;
    if (n > room) {
        memcpy(dst, "...", 3); /* NOLINT(bugprone-not-null-terminated-result): ended below */
        used = 3;
        name += n - (room - 3);
        n = room - 3;
    }
    memcpy(dst + used, name, n); /* NOLINT(bugprone-not-null-terminated-result): next line */
    memcpy(dst + used + n, num, strlen(num) + 1);
}

const char *fls_options_origin(const fls_options *o, const char *key)
{
    const key_def *k = o && key ? key_find(key) : NULL;
    return k ? o->origin[k - KEYS] : "";
}

/* fls_options_inert: the core's rule (fls_config_inert), of the keys set to other than their
 * default */
typedef struct inert_ctx {
    const fls_options *o, *d;
    void (*say)(void *u, const char *key, const char *origin, const char *why);
    void *u;
} inert_ctx;

static void inert_one(void *u, const char *key, const char *why)
{
    inert_ctx *x = u;
    /* a value written out at its default (the example configuration lists every key) is no
     * request: only one that differs from the default is said */
    const char *origin = fls_options_origin(x->o, key);
    char v[256], dv[256];
    if (origin[0] && fls_options_get(x->o, key, v, sizeof v) == FLS_OK &&
        fls_options_get(x->d, key, dv, sizeof dv) == FLS_OK && strcmp(v, dv) != 0)
        x->say(x->u, key, origin, why);
}

void fls_options_inert(const fls_options *o,
                       void (*say)(void *u, const char *key, const char *origin, const char *why),
                       void *u)
{
    fls_options *d = NULL;
    if (fls_options_new(&d) != FLS_OK)
        return;
    inert_ctx x = {o, d, say, u};
    (void)fls_config_inert(&o->core, inert_one, &x);
    /* the evaluation's keys, which the core does not hold: what load_eval reads of each kind */
    static const char *const none = "eval.dataset is none: the server evaluates nothing";
    static const char *const synth = "eval.dataset synthetic generates its held-out samples from "
                                     "run.seed: it reads no directory and has no splits";
    static const char *const files = "it applies to eval.dataset synthetic";
    if (o->eval_dataset == FLS_EVAL_NONE) {
        static const char *const keys[] = {"eval.split", "eval.dir", "eval.max_samples",
                                           "eval.batch", "eval.synthetic_samples"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            inert_one(&x, keys[i], none);
    } else if (o->eval_dataset == FLS_EVAL_SYNTHETIC) {
        inert_one(&x, "eval.split", synth);
        inert_one(&x, "eval.dir", synth);
    } else {
        inert_one(&x, "eval.synthetic_samples", files);
    }
    fls_options_free(d);
}

fl_status fls_options_errf(const fls_options *o, char *err, size_t errlen, fl_status st,
                           const char *key, const char *other, const char *fmt, ...)
{
    if (!err || !errlen)
        return st;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *at = fls_options_origin(o, key);
    const char *at2 = other ? fls_options_origin(o, other) : "";
    if (!*at) { /* key holds its default: the other key's value is the one that was chosen */
        at = at2;
        at2 = "";
    }
    const int both = *at2 && strcmp(at, at2) != 0;
    snprintf(err, errlen, "%s%s%s%s%s%s%s", at, *at ? ": " : "", msg, both ? "; " : "",
             both ? other : "", both ? " from " : "", both ? at2 : "");
    return st;
}

/* ---- public: options ------------------------------------------------------------------------- */

fls_status fls_options_new(fls_options **out)
{
    if (!out)
        return FLS_ERR_INVALID_ARG;
    *out = NULL;
    fls_options *o = calloc(1, sizeof *o);
    if (!o)
        return FLS_ERR_NOMEM;
    o->core = fls_config_default();
    for (size_t i = 0; i < N_KEYS; i++) {
        if (key_set_text(o, &KEYS[i], KEYS[i].def, NULL, 0) != FL_OK) {
            free(o); /* a default that does not parse: a bug in the table */
            return FLS_ERR_INTERNAL;
        }
    }
    *out = o;
    return FLS_OK;
}

void fls_options_free(fls_options *o)
{
    free(o);
}

fls_status fls_options_set_from(fls_options *o, const char *key, const char *value,
                                const char *origin, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!o || !key || !value)
        return FLS_ERR_INVALID_ARG;
    const key_def *k = key_find(key);
    if (!k)
        return fls_status_of(fail(err, errlen, "unknown key '%s'", key));
    const fl_status st = key_set_text(o, k, value, err, errlen);
    if (st == FL_OK)
        origin_text(o, k, origin ? origin : ""); /* the file's line no longer holds the value */
    return fls_status_of(st);
}

fls_status fls_options_set(fls_options *o, const char *key, const char *value, char *err,
                           size_t errlen)
{
    return fls_options_set_from(o, key, value, NULL, err, errlen);
}

uint32_t fls_options_idle_conn_s(const fls_options *o)
{
    /* A session's connection is renewed by its messages only while the session lives, and the
     * liveness timeout drops a silent one: below twice that, a client that pauses within its
     * liveness could lose its connection first. */
    const uint32_t live2 = (uint32_t)(((uint64_t)o->liveness_ms * 2 + 999) / 1000);
    return o->idle_conn_s && o->idle_conn_s < live2 ? live2 : o->idle_conn_s;
}

static int fmt_shortest(char *buf, size_t cap, double x, int is_f32);

/* An optimizer key left unset (fls_options_get gives ""): the float32 value the core uses in its
 * place (fls_options_core_config; v0's -1 means tau^2, as fls_opt applies it) into *x, and 1; 0
 * for any other key, or one given. */
static int opt_unset_value(const fls_options *o, const key_def *k, float *x)
{
    if (k->type != K_F64_OPT || !isnan(*(const double *)((const char *)o + k->off)))
        return 0;
    const fls_opt_config c = fls_options_core_config(o).opt;
    const size_t off = k->off;
    *x = off == OFF(opt_lr) ? c.lr : off == OFF(opt_momentum) ? c.momentum
       : off == OFF(opt_beta1) ? c.beta1 : off == OFF(opt_beta2) ? c.beta2
       : off == OFF(opt_tau) ? c.tau : c.v0 < 0.0f ? c.tau * c.tau : c.v0;
    return 1;
}

fls_status fls_options_get_effective(const fls_options *o, const char *key, char *buf,
                                     size_t cap)
{
    const fls_status st = fls_options_get(o, key, buf, cap);
    float x;
    if (st == FLS_OK && strcmp(key, "server.idle_connection_s") == 0)
        snprintf(buf, cap, "%u", fls_options_idle_conn_s(o));
    else if (st == FLS_OK && opt_unset_value(o, key_find(key), &x))
        fmt_shortest(buf, cap, x, 1);
    return st;
}

typedef struct inert_why {
    const char *key, *why;
} inert_why;

static void inert_why_one(void *u, const char *key, const char *why)
{
    inert_why *x = u;
    if (strcmp(x->key, key) == 0)
        x->why = why;
}

fls_status fls_options_get_unset_note(const fls_options *o, const char *key, char *buf,
                                      size_t cap)
{
    if (!o || !key || !buf || !cap)
        return FLS_ERR_INVALID_ARG;
    const key_def *k = key_find(key);
    if (!k)
        return FLS_ERR_NOT_FOUND;
    buf[0] = 0;
    float x;
    if (!opt_unset_value(o, k, &x))
        return FLS_OK;
    /* the one rule of which optimizer key a kind uses: the one the start warns by */
    inert_why w = {key, NULL};
    (void)fls_config_inert(&o->core, inert_why_one, &w);
    const char *kind = fls_opt_kind_name(o->core.opt.kind);
    if (w.why)
        snprintf(buf, cap, "the default; no effect under optimizer.kind %s: %s", kind, w.why);
    else if (k->off == OFF(opt_v0))
        snprintf(buf, cap, "tau^2, %s's default", kind);
    else
        snprintf(buf, cap, "%s's default", kind);
    return FLS_OK;
}

/* x in the fewest significant digits that read back as x, as the key's parser reads them (a
 * double; for a float32 key a double rounded to float): 0.1, not %.17g's 0.10000000000000001,
 * and 0.05 for a float32 0.05, not 0.0500000007, which is what --check printed of `lr: 0.05`.
 * No exponent where the full form has none: 600, not 6e+02. */
static int fmt_shortest(char *buf, size_t cap, double x, int is_f32)
{
    char full[64];
    snprintf(full, sizeof full, "%.*g", is_f32 ? 9 : 17, x);
    const int exp_ok = strchr(full, 'e') != NULL;
    int n = 0;
    for (int digits = 1; digits <= (is_f32 ? 9 : 17); digits++) {
        n = snprintf(buf, cap, "%.*g", digits, x);
        const double back = strtod(buf, NULL);
        const int same = is_f32 ? (float)back == (float)x : back == x;
        if (same && (exp_ok || !strchr(buf, 'e')))
            break;
    }
    return n;
}

fls_status fls_options_get(const fls_options *o, const char *key, char *buf, size_t cap)
{
    if (!o || !key || !buf || !cap)
        return FLS_ERR_INVALID_ARG;
    const key_def *k = key_find(key);
    if (!k)
        return FLS_ERR_NOT_FOUND;
    const char *base = (const char *)o + k->off;
    buf[0] = 0;
    switch (k->type) {
    case K_U32:
        snprintf(buf, cap, "%u", *(const uint32_t *)base);
        break;
    case K_U64:
        snprintf(buf, cap, "%llu", (unsigned long long)*(const uint64_t *)base);
        break;
    case K_F64:
        fmt_shortest(buf, cap, *(const double *)base, 0);
        break;
    case K_F64_OPT:
        if (!isnan(*(const double *)base))
            fmt_shortest(buf, cap, *(const double *)base, 0);
        break;
    case K_F32:
        fmt_shortest(buf, cap, *(const float *)base, 1);
        break;
    case K_BOOL:
        snprintf(buf, cap, "%s", *(const int *)base ? "true" : "false");
        break;
    case K_STR:
        snprintf(buf, cap, "%s", base);
        break;
    case K_ENUM:
        choice_name(k->choices, *(const int *)base, buf, cap);
        break;
    case K_POLICY:
        snprintf(buf, cap, "%s", fls_policy_kind_name(o->core.policy.kind));
        break;
    case K_OPTKIND:
        snprintf(buf, cap, "%s", fls_opt_kind_name(o->core.opt.kind));
        break;
    case K_ENDPOINTS: {
        size_t used = 0;
        for (uint32_t i = 0; i < o->n_endpoints && used < cap; i++)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? "," : "",
                                     o->endpoints[i]);
        break;
    }
    case K_KEEP_LAYERS: {
        size_t used = 0;
        for (size_t i = 0; i < o->n_keep_layers && used < cap; i++) {
            if (i)
                used += (size_t)snprintf(buf + used, cap - used, ",");
            if (used < cap)
                used += (size_t)fmt_shortest(buf + used, cap - used,
                                             o->core.policy.keep_p_layer[i], 0);
        }
        break;
    }
    }
    return FLS_OK;
}

int fls_options_key(size_t i, const char **key, const char **type, const char **def,
                    const char **help)
{
    if (i >= N_KEYS)
        return 0;
    static const char *names[] = {
        [K_U32] = "uint", [K_U64] = "uint", [K_F64] = "float", [K_F32] = "float",
        [K_F64_OPT] = "float", [K_BOOL] = "bool", [K_STR] = "string", [K_ENUM] = NULL,
        [K_ENDPOINTS] = "list", [K_KEEP_LAYERS] = "list", [K_POLICY] = NULL, [K_OPTKIND] = NULL,
    };
    const key_def *k = &KEYS[i];
    if (key)
        *key = k->key;
    if (type)
        *type = names[k->type] ? names[k->type] : k->choices;
    if (def)
        *def = k->def;
    if (help)
        *help = k->help;
    return 1;
}

fls_config fls_options_core_config(const fls_options *o)
{
    fls_config c = o->core;
    const fls_opt_config d = fls_opt_config_default(o->core.opt.kind);
    c.opt = d;
    if (!isnan(o->opt_lr))
        c.opt.lr = (float)o->opt_lr;
    if (!isnan(o->opt_momentum))
        c.opt.momentum = (float)o->opt_momentum;
    if (!isnan(o->opt_beta1))
        c.opt.beta1 = (float)o->opt_beta1;
    if (!isnan(o->opt_beta2))
        c.opt.beta2 = (float)o->opt_beta2;
    if (!isnan(o->opt_tau))
        c.opt.tau = (float)o->opt_tau;
    if (!isnan(o->opt_v0))
        c.opt.v0 = (float)o->opt_v0;
    memset(&c.log, 0, sizeof c.log);
    memset(&c.agg.log, 0, sizeof c.agg.log);
    return c;
}

/* A failed check across keys, in fls_options_validate: the message after where key's value (or
 * other's, see fls_options_errf) came from. */
#define vfail(o, err, errlen, key, other, ...)                                                     \
    fls_status_of(fls_options_errf(o, err, errlen, FL_ERR_CONFIG, key, other, __VA_ARGS__))

fls_status fls_options_validate(const fls_options *o, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!o)
        return FLS_ERR_INVALID_ARG;
    if (o->n_endpoints == 0)
        return vfail(o, err, errlen, "server.endpoints", NULL,
                     "server.endpoints: no endpoint to bind");
    if (!o->insecure && (!o->secret_key_file[0] || !o->allow_list[0]))
        return vfail(o, err, errlen,
                     !o->secret_key_file[0] ? "server.secret_key_file" : "server.allow_list",
                     "server.insecure",
                     "server.secret_key_file and server.allow_list are required "
                     "(or set server.insecure / --insecure for plain text)");
    if (o->core.eval_every && o->eval_dataset == FLS_EVAL_NONE)
        return vfail(o, err, errlen, "eval.every", "eval.dataset",
                     "eval.every is %u but eval.dataset is none", o->core.eval_every);
    if (o->core.target_accuracy > 0 && o->eval_dataset == FLS_EVAL_NONE)
        return vfail(o, err, errlen, "eval.target_accuracy", "eval.dataset",
                     "eval.target_accuracy needs an eval.dataset");
    if (o->resume && !o->ckpt_path[0])
        return vfail(o, err, errlen, "run.resume", "checkpoint.path",
                     "run.resume needs checkpoint.path");
    if (o->liveness_ms <= o->heartbeat_ms)
        return vfail(o, err, errlen, "server.liveness_ms", "server.heartbeat_ms",
                     "server.liveness_ms (%u) must exceed server.heartbeat_ms (%u)",
                     o->liveness_ms, o->heartbeat_ms);
    /* A round starts once round.min_clients (0: round.clients) clients are connected and closes
     * by quorum at round.clients updates: more than the server admits would never come. */
    if (o->core.clients_per_round > o->max_clients)
        return vfail(o, err, errlen, "round.clients", "server.max_clients",
                     "round.clients (%u) exceeds server.max_clients (%u): no round could reach "
                     "its quorum", o->core.clients_per_round, o->max_clients);
    /* The robust modes keep each update of a round until it closes, at most
     * aggregation.max_updates of them: a quorum above that would fail every commit past it, each
     * after a whole upload, and no round could close but by its deadline. */
    const uint32_t kept = (uint32_t)fls_agg_updates_kept(&o->core.agg);
    if (o->core.agg.mode != FLS_AGG_MEAN && o->core.clients_per_round > kept)
        return vfail(o, err, errlen, "aggregation.max_updates", "round.clients",
                     "aggregation.max_updates (%u%s) is below round.clients (%u): %s keeps every "
                     "update of a round, and a round could not reach its quorum; raise "
                     "aggregation.max_updates to at least %u", kept,
                     o->core.agg.max_updates > 0 ? "" : ", its default", o->core.clients_per_round,
                     o->core.agg.mode == FLS_AGG_MEDIAN ? "median" : "trimmed-mean",
                     o->core.clients_per_round);
    if (o->core.min_clients > o->max_clients)
        return vfail(o, err, errlen, "round.min_clients", "server.max_clients",
                     "round.min_clients (%u) exceeds server.max_clients (%u): no round could "
                     "start", o->core.min_clients, o->max_clients);
    /* The specs the core checks again, here first so that errors name the keys as written. */
    char why[256];
    flm_arch a;
    if (flm_arch_parse(o->core.arch, &a, why, sizeof why) != FL_OK)
        return vfail(o, err, errlen, "model.arch", NULL, "model.arch: %s", why);
    flz_spec sp;
    if (flz_spec_parse(o->core.down_codec, &sp, why, sizeof why) != FL_OK)
        return vfail(o, err, errlen, "codec.down", NULL, "codec.down: %s", why);
    const char *no_down = fls_down_codec_refusal(&sp);
    if (no_down)
        return vfail(o, err, errlen, "codec.down", NULL, "codec.down: %s", no_down);
    if (flz_spec_parse(o->core.up_codec, &sp, why, sizeof why) != FL_OK)
        return vfail(o, err, errlen, "codec.up", NULL, "codec.up: %s", why);
    /* A keep_layers value past the model's last droppable layer would be ignored: refused. */
    if (o->n_keep_layers > (uint32_t)a.n_drop)
        return vfail(o, err, errlen, "policy.keep_layers", "model.arch",
                     "policy.keep_layers: %u values, but model.arch %s has %d droppable layer%s",
                     o->n_keep_layers, a.spec, a.n_drop, a.n_drop == 1 ? "" : "s");
    /* A tensor cut into more chunks than the wire carries could never be sent: every Task would
     * fail to encode, and the run would go on with no update in any round. */
    const uint32_t least = fls_chunk_elems_refusal(&a, o->core.chunk_elems, why, sizeof why);
    if (least)
        return vfail(o, err, errlen, "codec.chunk_elems", "model.arch",
                     "codec.chunk_elems %u %s: use codec.chunk_elems %u or more",
                     o->core.chunk_elems, why, least);
    const fls_config c = fls_options_core_config(o);
    /* The core checks the optimizer's and the aggregator's options by making them: out of
     * memory there is no fault of the configuration's, and must not read as one. */
    const fl_status cst = fls_config_validate(&c, why, sizeof why);
    if (cst == FL_ERR_NOMEM)
        return fls_status_of(fl_errf(err, errlen, cst, "out of memory"));
    if (cst != FL_OK)
        return fls_status_of(fail(err, errlen, "%s", why)); /* names the core's fields, no key */
    /* A chunk must fit a message: raw floats are the worst case of every codec but zstd's
     * incompressible overhead, which a small margin covers. */
    const uint64_t worst = (uint64_t)c.chunk_elems * 4u + 4096u;
    if (worst > o->max_msg_bytes)
        return vfail(o, err, errlen, "codec.chunk_elems", "server.max_msg_bytes",
                     "codec.chunk_elems %u needs messages of up to %llu bytes, above "
                     "server.max_msg_bytes %llu",
                     c.chunk_elems, (unsigned long long)worst,
                     (unsigned long long)o->max_msg_bytes);
    return FLS_OK;
}

/* ---- YAML ----------------------------------------------------------------------------------- */

typedef struct yctx {
    fls_options *o;
    const char *name;
    const char *buf;               /* the text, for the line of a reader error (an offset) */
    size_t len;
    char *err;
    size_t errlen;
    unsigned char seen[N_KEYS];
    /* sections met so far and the line of each: a repeated one is refused, not merged */
    struct {
        char name[64];
        size_t line;
    } sect[16];
    size_t n_sect;
} yctx;

static fl_status yfail(yctx *y, const yaml_event_t *ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static fl_status yfail(yctx *y, const yaml_event_t *ev, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail(y->err, y->errlen, "%s:%zu: %s", y->name, ev ? ev->start_mark.line + 1 : 0, msg);
}

/* libyaml's error as "NAME:LINE:COL: YAML syntax error: PROBLEM (CONTEXT at line L, column C)":
 * where it gave up, and where the construct it was reading began (an unclosed '[' or quote is
 * found only at the end of the input, lines below the cause). */
static fl_status ysyntax(yctx *y, const yaml_parser_t *p)
{
    size_t line = p->problem_mark.line, col = p->problem_mark.column;
    if (p->error == YAML_READER_ERROR) /* a bad byte: libyaml gives only its offset */
        fl_text_line_col(y->buf, y->len, p->problem_offset, &line, &col);
    /* a line indented under a key (or list item) that already has a value: said as such, at
     * that line, rather than libyaml's "mapping values are not allowed in this context" */
    fl_text_overindent oi;
    char what[80];
    if (p->error != YAML_READER_ERROR && fl_text_yaml_overindent(&oi, y->buf, y->len, line)) {
        if (oi.item)
            snprintf(what, sizeof what, "the list item");
        else
            snprintf(what, sizeof what, "'%s'", oi.key);
        return fail(y->err, y->errlen, "%s:%zu:%zu: YAML syntax error: this line is indented "
                    "under %s (line %zu), which already has a value ('%s'): %s (libyaml: %s)",
                    y->name, oi.line + 1, oi.col + 1, what, oi.owner + 1, oi.value,
                    oi.item ? "an item beside it is indented as it is"
                            : "a key beside it is indented as it is, one under it needs it "
                              "without a value",
                    p->problem ? p->problem : "unknown");
    }
    char ctx[128] = "";
    if (p->context && p->error != YAML_READER_ERROR)
        snprintf(ctx, sizeof ctx, " (%s at line %zu, column %zu)", p->context,
                 p->context_mark.line + 1, p->context_mark.column + 1);
    /* A tab where libyaml gave up: its "found character that cannot start any token" does not
     * say which character, and a tab looks like the spaces around it (an editor's indent) */
    const char *tab = "";
    if (!p->problem || !strstr(p->problem, "tab")) {
        size_t i = 0;
        for (size_t l = 0; l < line && i < y->len; i++)
            l += y->buf[i] == '\n';
        for (size_t c = 0; i < y->len && c < col && y->buf[i] != '\n'; i++)
            c += ((unsigned char)y->buf[i] & 0xC0) != 0x80; /* columns count characters */
        while (i < y->len && ((unsigned char)y->buf[i] & 0xC0) == 0x80)
            i++;
        if (i < y->len && y->buf[i] == '\t')
            tab = "; a tab there: YAML indents with spaces, never tabs";
    }
    return fail(y->err, y->errlen, "%s:%zu:%zu: YAML syntax error: %s%s%s", y->name, line + 1,
                col + 1, p->problem ? p->problem : "unknown", ctx, tab);
}

/* Next event, or a parse error with libyaml's own reason and position. */
static fl_status ynext(yctx *y, yaml_parser_t *p, yaml_event_t *ev)
{
    if (yaml_parser_parse(p, ev))
        return FL_OK;
    return ysyntax(y, p);
}

/* The whole text through libyaml first: the reader below checks types as the events come, and
 * would report a syntax error further down as a type error about the first key it spoils
 * ("clients: [1" with no ']': "expected a value, found a list"). */
static fl_status ysyntax_check(yctx *y)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return FL_ERR_NOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)y->buf, y->len);
    fl_status st = FL_OK;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            st = p.error == YAML_MEMORY_ERROR ? FL_ERR_NOMEM : ysyntax(y, &p);
            break;
        }
        const int end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (end)
            break;
    }
    yaml_parser_delete(&p);
    return st;
}

static const char *ev_name(yaml_event_type_t t)
{
    switch (t) {
    case YAML_SCALAR_EVENT: return "a scalar";
    case YAML_SEQUENCE_START_EVENT: return "a list";
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_ALIAS_EVENT: return "an alias";
    default: return "an unexpected event";
    }
}

/* YAML's null: a plain ~, null, Null, NULL or nothing after the colon. libyaml hands it over as
 * that text; taken literally it would be a file named "~" or "null". Quoted, it is a string. */
static int yaml_is_null(const yaml_event_t *ev)
{
    static const char *nulls[] = {"", "~", "null", "Null", "NULL"};
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (strcmp((const char *)ev->data.scalar.value, nulls[i]) == 0)
            return 1;
    return 0;
}

/* Keys whose value names a file or a directory. */
static int key_is_path(const key_def *k)
{
    static const char *paths[] = {"server.secret_key_file", "server.allow_list", "run.metrics",
                                  "eval.dir", "checkpoint.path"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (strcmp(k->key, paths[i]) == 0)
            return 1;
    return 0;
}

static fl_status yaml_value(yctx *y, yaml_parser_t *p, const char *section, const yaml_event_t *kev)
{
    char key[128];
    const char *kname = (const char *)kev->data.scalar.value;
    snprintf(key, sizeof key, "%s.%s", section, kname);
    const key_def *k = strlen(kname) < 64 ? key_find(key) : NULL;
    if (!k)
        return yfail(y, kev, "unknown key '%s'", strlen(key) < 100 ? key : "(long)");
    const size_t ki = (size_t)(k - KEYS);
    if (y->seen[ki])
        return yfail(y, kev, "%s: duplicate key", k->key);
    y->seen[ki] = 1;

    yaml_event_t ev;
    fl_status st = ynext(y, p, &ev);
    if (st != FL_OK)
        return st;
    char msg[384];
    /* the key's line: where an operator looks for the value (a list may span lines) */
    const size_t line = kev->start_mark.line + 1;
    if (ev.type == YAML_SCALAR_EVENT) {
        /* A plain value that runs on to a later line: a line indented under the key by mistake
         * ("rounds: 2" then "    seed"), which YAML joins to the value ("2 seed": "not an
         * unsigned integer"; for a path, a file "m.csv seed" without a word). A value that spans
         * lines on purpose is quoted. */
        fl_text_overindent oi;
        if (ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
            ev.end_mark.line > ev.start_mark.line &&
            fl_text_yaml_overindent(&oi, y->buf, y->len, ev.end_mark.line)) {
            char what[80];
            if (oi.item)
                snprintf(what, sizeof what, "the list item");
            else
                snprintf(what, sizeof what, "'%s'", oi.key);
            st = fail(y->err, y->errlen, "%s:%zu:%zu: %s: this line is indented under %s (line "
                      "%zu), which already has a value ('%s'): YAML reads it as more of that "
                      "value; a key beside it is indented as it is", y->name, oi.line + 1,
                      oi.col + 1, k->key, what, oi.owner + 1, oi.value);
            yaml_event_delete(&ev);
            return st;
        }
        const int null = yaml_is_null(&ev);
        if (null && k->type != K_F64_OPT) {
            /* Nothing to read: refused rather than guessed at. The optimizer's optional keys
             * are the exception: for them "no value" is one (unset: the kind's default), as an
             * empty value always was. */
            st = yfail(y, kev, "%s: null is not a %s; leave the key out for the default",
                       k->key, key_is_path(k) ? "path" : "value");
            yaml_event_delete(&ev);
            return st;
        }
        st = key_set_text(y->o, k, null ? "" : (const char *)ev.data.scalar.value, msg,
                          sizeof msg);
        if (st != FL_OK)
            st = yfail(y, &ev, "%s", msg);
        else
            origin_file(y->o, k, y->name, line);
        yaml_event_delete(&ev);
        return st;
    }
    if (ev.type != YAML_SEQUENCE_START_EVENT ||
        (k->type != K_ENDPOINTS && k->type != K_KEEP_LAYERS)) {
        st = yfail(y, &ev, "%s: expected a value, found %s", k->key, ev_name(ev.type));
        yaml_event_delete(&ev);
        return st;
    }
    yaml_event_delete(&ev);
    (void)key_set(y->o, k, "", 0, msg, sizeof msg); /* clear the list ("" cannot fail) */
    for (;;) {
        if ((st = ynext(y, p, &ev)) != FL_OK)
            return st;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            origin_file(y->o, k, y->name, line);
            return FL_OK;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            st = yfail(y, &ev, "%s: list items must be scalars, found %s", k->key,
                       ev_name(ev.type));
            yaml_event_delete(&ev);
            return st;
        }
        const char *v = (const char *)ev.data.scalar.value;
        if (!*v)
            st = yfail(y, &ev, "%s: empty list item", k->key);
        else if ((st = key_set(y->o, k, v, 1, msg, sizeof msg)) != FL_OK)
            st = yfail(y, &ev, "%s", msg);
        yaml_event_delete(&ev);
        if (st != FL_OK)
            return st;
    }
}

static fl_status yaml_section(yctx *y, yaml_parser_t *p, const yaml_event_t *sev)
{
    char section[64];
    const char *sname = (const char *)sev->data.scalar.value;
    if (strlen(sname) >= sizeof section)
        return yfail(y, sev, "unknown section (name too long)");
    snprintf(section, sizeof section, "%s", sname);
    int known = 0;
    const size_t sl = strlen(section);
    for (size_t i = 0; i < N_KEYS && !known; i++)
        known = strncmp(KEYS[i].key, section, sl) == 0 && KEYS[i].key[sl] == '.';
    if (!known)
        return yfail(y, sev, "unknown section '%s'", section);
    for (size_t i = 0; i < y->n_sect; i++)
        if (strcmp(y->sect[i].name, section) == 0)
            return yfail(y, sev, "section '%s' repeated (first at line %zu): put all its keys "
                         "under one '%s:'", section, y->sect[i].line, section);
    if (y->n_sect < sizeof y->sect / sizeof y->sect[0]) {
        snprintf(y->sect[y->n_sect].name, sizeof y->sect[0].name, "%s", section);
        y->sect[y->n_sect++].line = sev->start_mark.line + 1;
    }

    yaml_event_t ev;
    fl_status st = ynext(y, p, &ev);
    if (st != FL_OK)
        return st;
    if (yaml_is_null(&ev)) {
        /* "section:", "section: ~", "section: null": YAML's null, all three; an empty section.
         * A quoted '' or '~' is a string, and refused below. */
        yaml_event_delete(&ev);
        return FL_OK;
    }
    if (ev.type != YAML_MAPPING_START_EVENT) {
        st = yfail(y, &ev, "section '%s' must be a mapping of keys, found %s", section,
                   ev_name(ev.type));
        yaml_event_delete(&ev);
        return st;
    }
    yaml_event_delete(&ev);
    for (;;) {
        if ((st = ynext(y, p, &ev)) != FL_OK)
            return st;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return FL_OK;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            st = yfail(y, &ev, "in section '%s': keys must be plain names, found %s", section,
                       ev_name(ev.type));
            yaml_event_delete(&ev);
            return st;
        }
        st = yaml_value(y, p, section, &ev);
        yaml_event_delete(&ev);
        if (st != FL_OK)
            return st;
    }
}

static fl_status yaml_doc(yctx *y, yaml_parser_t *p)
{
    yaml_event_t ev;
    fl_status st;
    int depth = 0; /* 0: before the stream, then the state of the top level */
    for (;;) {
        if ((st = ynext(y, p, &ev)) != FL_OK)
            return st;
        const yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            return FL_OK;
        }
        if (t == YAML_DOCUMENT_START_EVENT) {
            if (depth > 0)
                st = yfail(y, &ev, "only one YAML document is allowed");
            depth = 1;
            yaml_event_delete(&ev);
            if (st != FL_OK)
                return st;
            continue;
        }
        if (depth == 1 && yaml_is_null(&ev)) {
            depth = 2; /* a null document ("---", "~", "null"): empty, as a file of comments */
            yaml_event_delete(&ev);
            continue;
        }
        if (depth == 1 && t == YAML_SCALAR_EVENT) {
            /* a string ('', "x", a word): no configuration, whatever it says */
            const char *v = (const char *)ev.data.scalar.value;
            const int show = !has_control(v);
            st = yfail(y, &ev, "the configuration must be a mapping of sections, found a "
                       "scalar%s%.40s%s%s", show ? " ('" : "", show ? v : "",
                       show && strlen(v) > 40 ? "..." : "", show ? "')" : "");
            yaml_event_delete(&ev);
            return st;
        }
        if (depth != 1 || t != YAML_MAPPING_START_EVENT) {
            st = yfail(y, &ev, "the configuration must be a mapping of sections, found %s",
                       ev_name(t));
            yaml_event_delete(&ev);
            return st;
        }
        yaml_event_delete(&ev);
        depth = 2;
        for (;;) {
            if ((st = ynext(y, p, &ev)) != FL_OK)
                return st;
            if (ev.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&ev);
                break;
            }
            if (ev.type != YAML_SCALAR_EVENT) {
                st = yfail(y, &ev, "section names must be plain names, found %s",
                           ev_name(ev.type));
                yaml_event_delete(&ev);
                return st;
            }
            st = yaml_section(y, p, &ev);
            yaml_event_delete(&ev);
            if (st != FL_OK)
                return st;
        }
    }
}

fls_status fls_options_load_mem(fls_options *o, const char *buf, size_t len, const char *name,
                                char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!o || (!buf && len))
        return FLS_ERR_INVALID_ARG;
    if (!name)
        name = "config";
    if (len > FLS_CONFIG_MAX_BYTES)
        return fls_status_of(fail(err, errlen, "%s: larger than %u bytes", name,
                                  FLS_CONFIG_MAX_BYTES));
    if (len && memchr(buf, 0, len))
        return fls_status_of(fail(err, errlen, "%s: contains a NUL byte", name));
    yctx *y = calloc(1, sizeof *y);
    if (!y)
        return FLS_ERR_NOMEM;
    y->o = o;
    y->name = name;
    y->buf = buf ? buf : "";
    y->len = len;
    y->err = err;
    y->errlen = errlen;
    fl_status st = ysyntax_check(y);
    if (st != FL_OK) {
        free(y);
        return fls_status_of(st);
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        free(y);
        return FLS_ERR_NOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)y->buf, len);
    st = yaml_doc(y, &p);
    yaml_parser_delete(&p);
    free(y);
    return fls_status_of(st);
}

fls_status fls_options_load_file(fls_options *o, const char *path, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!o || !path)
        return FLS_ERR_INVALID_ARG;
    /* A regular file, or a FIFO or pipe (`--config <(envsubst < fl.yaml.in)`) whose writer is
     * waited for FLS_CONFIG_FIFO_WAIT_S at most: one without a writer would otherwise block the
     * start, and --check, for good. A directory or a device is no configuration. The file is
     * read once: a reload (SIGHUP) does not read it again. */
    char *buf = NULL;
    size_t n = 0;
    mode_t mode = 0;
    const fl_status rs = fl_file_read_wait(path, FLS_CONFIG_MAX_BYTES, FLS_CONFIG_FIFO_WAIT_S, &buf,
                                           &n, &mode, err, errlen);
    if (rs != FL_OK)
        return fls_status_of(rs);
    const fls_status st = fls_options_load_mem(o, buf, n, path, err, errlen);
    /* a FIFO's bytes cannot be read again: a reload has nothing to compare them with */
    o->config_digest_set = st == FLS_OK && S_ISREG(mode) &&
                           fl_sha256_digest(o->config_digest, buf, n) == FL_OK;
    free(buf);
    if (st == FLS_OK && strlen(path) < sizeof o->config_path)
        snprintf(o->config_path, sizeof o->config_path, "%s", path);
    else
        o->config_digest_set = 0;
    return st;
}
