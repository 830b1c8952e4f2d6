/* flsim.h: fl_sim, the federated-learning simulator of fedrop (shared DESIGN.md, "sim").
 *
 * The simulator drives the very same IO-free cores as the daemons: one fls_core (server) and, for
 * each client training in a round, an flc_core (client), exchanging flp_msg structs in process
 * (no encoding of the envelope; bytes are counted as the chunk payload bytes, i.e. after
 * compression). Time is virtual: a client's round trip is download + compute + upload from its
 * device profile, and updates reach the server core in order of virtual finish time with `now` =
 * that time, so quorum and deadline closes and late rejections happen as they would live.
 *
 * Population: up to FLSIM_MAX_CLIENTS virtual clients. A client is its number k: its profile
 * (compute speed, bandwidths) and its availability are pure functions of (seed, k[, round]) drawn
 * from fl_rng streams FL_RNG_PROFILE / FL_RNG_AVAIL (or rows of a trace file); its samples are a
 * slice of a dataset partition (O(1) per client); models exist only for the clients training now.
 *
 * Every function here is thread-safe on distinct objects; a trace is immutable once parsed.
 */
#ifndef FLSIM_H
#define FLSIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fl_log.h"
#include "fl_sha256.h"
#include "fl_status.h"
#include "flm_data.h"
#include "fls_policy.h"

#define FLSIM_MAX_CLIENTS 1000000u
#define FLSIM_STR 256
/* Room for a codec pipeline spec (--down-codec, --up-codec), with its NUL. */
#define FLSIM_CODEC_STR 96
/* Longest line of a trace file, bytes (longer: FL_ERR_TRACE_FORMAT). */
#define FLSIM_TRACE_MAX_LINE 1024

/* ---- distributions of device / network parameters ------------------------------------------ */

/* The least rate a client may have: compute speed in FLOP/s and bandwidths in bit/s alike, in a
 * trace row or as the value of a const distribution or the median of a lognormal one. Smaller
 * rates let a client's round trip overflow the virtual clock (1e-300 FLOP/s does by round 5); at
 * 1 or more, a round trip of 2^64 bytes each way and 1e30 FLOPs stays finite. */
#define FLSIM_RATE_MIN 1.0

typedef enum flsim_dist_kind {
    FLSIM_DIST_CONST = 0,      /* always `median` */
    FLSIM_DIST_LOGNORMAL = 1,  /* median * exp(sigma * N(0, 1)) */
} flsim_dist_kind;

typedef struct flsim_dist {
    flsim_dist_kind kind;
    double median;   /* > 0 */
    double sigma;    /* >= 0 (lognormal) */
} flsim_dist;

/* Parses "V" or "const:V" (V >= FLSIM_RATE_MIN) or "lognormal:MEDIAN:SIGMA" (MEDIAN >=
 * FLSIM_RATE_MIN, 0 <= SIGMA <= 10, and no draw beyond DBL_MAX: ln MEDIAN + 37.17 SIGMA <= ln
 * DBL_MAX, 37.17 the largest |z| of fl_rng_normal); numbers accept SI suffixes k, M, G, T (10^3
 * ..). FL_OK or FL_ERR_INVALID_ARG (reason in err). */
fl_status flsim_dist_parse(const char *s, flsim_dist *out, char *err, size_t errlen);

typedef enum flsim_avail_kind {
    FLSIM_AVAIL_ALWAYS = 0,   /* every client is online every round */
    FLSIM_AVAIL_PROB = 1,     /* online in a round with probability p, independently */
    FLSIM_AVAIL_DIURNAL = 2,  /* p(t) = pmin + (pmax - pmin) * (1 + cos(2 pi (t / period + phase_k))) / 2 */
} flsim_avail_kind;

typedef struct flsim_avail {
    flsim_avail_kind kind;
    double p;                 /* PROB */
    double p_min, p_max;      /* DIURNAL, 0 <= p_min <= p_max <= 1 */
    double period_s;          /* DIURNAL, > 0 (default 86400) */
} flsim_avail;

/* Parses "always", "p:P" (or a bare P) with 0 < P <= 1, "diurnal:PMIN:PMAX[:PERIOD_S]".
 * FL_OK or FL_ERR_INVALID_ARG (reason in err). */
fl_status flsim_avail_parse(const char *s, flsim_avail *out, char *err, size_t errlen);

/* ---- trace files ----------------------------------------------------------------------------- */

/* One client's row of a trace. */
typedef struct flsim_trace_row {
    double flops;        /* training speed, FLOP/s, >= FLSIM_RATE_MIN */
    double down_bps;     /* download bandwidth, bit/s, >= FLSIM_RATE_MIN */
    double up_bps;       /* upload bandwidth, bit/s, >= FLSIM_RATE_MIN */
    double availability; /* probability of being online in a round, [0, 1] */
} flsim_trace_row;

/* A parsed trace: rows[k] describes client k; a population larger than n uses row k mod n. */
typedef struct flsim_trace {
    size_t n;
    flsim_trace_row *rows;
} flsim_trace;

/* Parses a trace CSV from memory:
 *     client,flops,down_bps,up_bps,availability      (this header, exactly, on the first line)
 *     0,2.5e9,20e6,5e6,0.9
 * One row per client id 0 .. n-1, in any order, each id exactly once; numbers are C decimal or
 * exponent floats (no SI suffixes) that a double holds (a value strtod under- or overflows is
 * refused as out of range, not taken as its rounding), rates at least FLSIM_RATE_MIN;
 * blank lines and lines starting with '#' are skipped; "\r\n"
 * line ends are accepted. At most FLSIM_MAX_CLIENTS rows and FLSIM_TRACE_MAX_LINE bytes per line.
 * A bad row gives FL_ERR_TRACE_FORMAT and err = "line N: reason" (1-based line numbers); a missing
 * id is reported as "client K missing" after the whole text was read, and a trace where every
 * availability is 0 (no round could ever start) as "every client's availability is 0: ...".
 * Memory grows with the rows
 * actually read. The caller owns *out (flsim_trace_free). Thread-safe. */
fl_status flsim_trace_parse(flsim_trace **out, const char *text, size_t len, char *err,
                            size_t errlen);
/* Reads a file and parses it (errors prefixed with the path). FL_ERR_IO if it cannot be read. */
fl_status flsim_trace_load(flsim_trace **out, const char *path, char *err, size_t errlen);
void flsim_trace_free(flsim_trace *t); /* NULL is a no-op */
/* The SHA-256 of a parsed trace's rows (n x 4 doubles, in client order, as this host holds them)
 * into out: what the run used, so comments, blank lines, the rows' order in the file and how a
 * number is spelled do not change it, a changed value does. The MPI ranks compare it, resume.fls
 * records it (a --resume refuses a trace whose rows changed) and summary.json shows it
 * ("trace_sha256"). FL_OK, FL_ERR_INVALID_ARG (NULL), FL_ERR_NOMEM. Thread-safe. */
fl_status flsim_trace_sha256(uint8_t out[FL_SHA256_LEN], const flsim_trace *t);

/* ---- population ---------------------------------------------------------------------------- */

typedef struct flsim_population {
    uint64_t seed;
    uint32_t clients;
    flsim_dist flops, down_bps, up_bps;
    flsim_avail avail;
    const flsim_trace *trace;  /* borrowed; when set it replaces the distributions above */
} flsim_population;

typedef struct flsim_profile {
    double flops, down_bps, up_bps;
} flsim_profile;

/* Client k's device profile: from the trace (row k mod n) or drawn from the stream (seed, 0, k,
 * FL_RNG_PROFILE): three standard normals, for flops, down and up in that order, a draw below
 * FLSIM_RATE_MIN taken at it, so every rate is finite and at least FLSIM_RATE_MIN. Pure. */
void flsim_profile_of(const flsim_population *p, uint32_t k, flsim_profile *out);

/* 1 if client k is online for round `round` at virtual time t, on the round's attempt-th draw
 * (0 when the round is first tried; 1, 2, ... for each idle step spent waiting for enough clients
 * to come online): the attempt-th uniform of the stream (seed, round + 1, k, FL_RNG_AVAIL) against
 * the probability (trace row, PROB, or DIURNAL at t with the client's phase, a uniform from (seed,
 * 0, k, FL_RNG_AVAIL)). Pure. */
int flsim_available(const flsim_population *p, uint32_t k, uint32_t round, uint32_t attempt,
                    double t);

/* ---- virtual clock --------------------------------------------------------------------------- */

typedef struct flsim_timing {
    double t_down;      /* latency + bytes_down * 8 / down_bps */
    double t_compute;   /* flops / profile flops */
    double t_up;        /* latency + bytes_up * 8 / up_bps */
    double total;       /* the sum: the client's round trip */
} flsim_timing;

/* A client's round trip for a task of bytes_down payload bytes, `flops` FLOPs of training and an
 * update of bytes_up payload bytes, with a one-way latency per direction. Pure. */
flsim_timing flsim_client_timing(const flsim_profile *p, uint64_t bytes_down, double flops,
                                 uint64_t bytes_up, double latency_s);

/* ---- run configuration ---------------------------------------------------------------------- */

#define FLSIM_FOLD_AUTO 0xFFFFFFFFu
#define FLSIM_FOLD_MAX 63

typedef struct flsim_config {
    char dataset[FLSIM_STR];       /* "fashion-mnist", "mnist", or an flm_dataset_load_spec spec */
    char test_dataset[FLSIM_STR];  /* "" = the named test split, else hold out test_frac */
    double test_frac;              /* held-out fraction when no test split exists */
    uint32_t train_samples;        /* 0: every training sample, else only the first n */
    char model[FLSIM_STR];         /* "mlp", "cnn", "moge" or a full architecture spec */
    uint32_t clients, per_round, rounds;
    uint32_t data_shards;          /* 0 = clients: the partition's client count; client k uses
                                    * shard k mod data_shards */
    char partition[64];            /* "iid", "dirichlet:A", "shards:S", "natural" */
    fls_policy_kind policy;
    int fd_per_client;
    double keep;
    double keep_layers[FLM_MAX_LAYERS]; /* per droppable layer, in order: 0 = keep; the layers
                                         * past n_keep_layers take keep (fl_server's
                                         * policy.keep_layers) */
    uint32_t n_keep_layers;
    /* AFD.md's named alternatives (fl_server's policy.* and aggregation.dilute): */
    int score_accumulate;          /* afd: 0 "S[u] = gain" (AFD.md), 1 "S[u] += gain" */
    int loss_unweighted;           /* afd-single: 0 loss weighted by samples, 1 plain mean */
    double eps_rel;                /* afd: eps = eps_rel * max S (1e-3) */
    int agg_dilute;                /* 1: coordinates a client did not hold count as zero deltas */
    char down_codec[FLSIM_CODEC_STR], up_codec[FLSIM_CODEC_STR];
    uint64_t seed;
    uint32_t threads;              /* worker threads; 0 = the CPUs (flsim_cpus), less the
                                    * automatic fold helpers (flsim_threads_resolve) */
    uint32_t fold_threads;         /* helpers that split the main thread's folds and decodes
                                    * (results do not depend on it); FLSIM_FOLD_AUTO = from
                                    * the CPUs or threads (flsim_threads_resolve) */
    uint32_t epochs, batch;
    double lr, momentum, weight_decay, prox_mu;
    double server_lr;
    double overcommit;
    double deadline_s;             /* 0: no deadline */
    double latency_s;
    uint32_t chunk_elems;
    uint32_t eval_every;           /* 0: only after the last round */
    uint32_t eval_samples;         /* 0: the whole test set, else its first n samples */
    double target_acc;             /* 0: none; else stop at it unless keep_going */
    int keep_going;                /* 1: record when the target is reached but run every round */
    int batch_feed;                /* 1: feed a round's updates only after all trained (as under
                                    * MPI) instead of while later clients train; same results */
    uint32_t feed_group;           /* updates fed to the server core at once, their chunks
                                    * interleaved (the accumulator stays in the cache); 1: one by
                                    * one; 0: the default (8), at most 64; same results. Not an
                                    * option: for tests and benchmarks */
    flsim_dist flops, down_bps, up_bps;
    flsim_avail avail;
    char trace[FLSIM_STR];         /* trace CSV path, "" = none */
    double idle_step_s;            /* virtual wait when too few clients are online */
    char out[FLSIM_STR];           /* output directory, "" = none */
    uint32_t checkpoint_every;     /* with out: DIR/resume.fls every N rounds (and at the end or a
                                    * stop); 0: none. Not a setting of the results */
    int resume;                    /* 1: continue the run DIR/resume.fls holds (a fresh start
                                    * when there is none) */
    int progress;                  /* -1 auto (isatty), 0 plain lines, 1 bar */
    int quiet;
} flsim_config;

/* Defaults: fashion-mnist, mlp, 1000 clients, 50 per round, 100 rounds, dirichlet:0.3, full
 * policy, keep 0.75, codecs "none", seed 1, 1 epoch of batch 10 at lr 0.05, FedAvg (server lr 1),
 * over-commit 1, no deadline, flops lognormal:5G:0.5, down lognormal:20M:0.5, up
 * lognormal:5M:0.5 (bit/s), always available, eval every round on the whole test set. */
flsim_config flsim_config_default(void);

/* Sets one option by its long name without dashes ("per-round", "down-codec", ...) from a string:
 * the one entry point of the command line and the YAML file. FL_OK, FL_ERR_NOT_FOUND (unknown
 * name), FL_ERR_INVALID_ARG (bad value, an empty dataset or model included); the reason is in
 * err. */
fl_status flsim_config_set(flsim_config *c, const char *key, const char *value, char *err,
                           size_t errlen);

/* Reads a YAML file holding one mapping of option names to scalars (flsim_config_set for each).
 * A null value (a plain ~, null, Null, NULL or nothing) leaves the option as it stands (fl_sim
 * reads the file before the flags: its default), except for trace and test_dataset, which it sets
 * to none (""). A relative `trace` path in the file is taken relative to the file's directory.
 * FL_ERR_IO (err: "--config: PATH: reason"), FL_ERR_CONFIG (not a flat mapping of scalars; line
 * in err), or what set returns. FL_ERR_UNSUPPORTED when built without libyaml. err is one line: a
 * control character quoted from the file is escaped (\n). */
fl_status flsim_config_load_yaml(flsim_config *c, const char *path, char *err, size_t errlen);
/* The same from memory (text[0..len), not NUL-terminated; name prefixes the errors, "file:line:
 * reason"). Options set before an error stay set. */
fl_status flsim_config_parse_yaml(flsim_config *c, const char *text, size_t len,
                                  const char *name, char *err, size_t errlen);

/* Cross-field checks (per_round <= clients, rates of at least FLSIM_RATE_MIN unless a trace
 * replaces them, ...). FL_OK or FL_ERR_CONFIG (reason in err). */
fl_status flsim_config_validate(const flsim_config *c, char *err, size_t errlen);

/* Names the files the run reads (trace, the files of a dataset or test_dataset spec such as
 * idx:IMAGES,LABELS) as realpath(3) does: absolute, without symlinks, "." or "..". The settings a
 * run saves (resume.fls, summary.json, an experiment's runs) then name the same files from any
 * working directory, so a --resume or an experiment started elsewhere compares them as equal. A
 * path that does not resolve (a file not there, which the load then reports) stays as given, as
 * does a descriptor's name (/dev/stdin, /dev/fd/N, /proc/...). FL_OK, or FL_ERR_CONFIG (reason in
 * err) where a file's resolved path does not fit (FLSIM_STR - 1 characters at most): that path is
 * left as given, and a run saved with it could resume only from this directory. Resolves against
 * the working directory of the moment: not to be called while another thread changes it. */
fl_status flsim_config_paths_absolute(flsim_config *c, char *err, size_t errlen);

/* Writes the configuration as a JSON object (no newline) into buf; returns the full length. */
size_t flsim_config_json(const flsim_config *c, char *buf, size_t cap);

/* The options, for --help: name, argument, description, one per entry, NULL-terminated. */
typedef struct flsim_option_doc {
    const char *name, *arg, *help;
} flsim_option_doc;
const flsim_option_doc *flsim_option_docs(void);

/* The option a key that names none was probably meant to be (a typo in a YAML key or a flag):
 * the one equal to it but for '_' against '-' and case, else the nearest within one edit (two
 * for keys of five characters or more; an edit adds, removes or changes a character, or swaps
 * two neighbours), the first of --help's order on a tie. NULL if none is that near (or key is
 * NULL). The name is --help's, with '-' (static storage). */
const char *flsim_option_nearest(const char *key);
/* The same over names (NULL-terminated, e.g. a command's own options) instead of fl_sim's. */
const char *flsim_name_nearest(const char *key, const char *const *names);

/* ---- running ----------------------------------------------------------------------------------- */

/* What one round did. */
typedef struct flsim_round_record {
    uint32_t round;            /* 1-based */
    double vtime_s;            /* virtual time at the round's close */
    double round_vtime_s;      /* its virtual duration */
    double wall_s;             /* wall time of the round (training, feeding, evaluation) */
    double train_wall_s;       /* of which the client-core phase (download decode, training, encode) */
    double feed_wall_s;        /* main-thread time feeding updates to the server core (overlaps
                                * the client phase when pipelined) */
    double train_cpu_s;        /* summed over clients: wall time of their local SGD alone (the
                                * built-in trainer inside flc_core_train; not decoding, delta or
                                * encoding) */
    double sgd_thread_cpu_s;   /* the same SGD, in thread CPU time (immune to other processes) */
    double proc_cpu_s;         /* CPU time of the whole process during the round, all threads
                                * (user + system): with sgd_thread_cpu_s, the simulator's CPU
                                * overhead on a loaded machine */
    double client_cpu_s;       /* summed over clients: their whole client core (task decode,
                                * training, encoding, copying the update out), wall time */
    double client_pre_cpu_s;   /* summed over clients, thread CPU: their client core before the
                                * training (rebinding, the task, decoding or borrowing the weights) */
    double client_post_cpu_s;  /* summed over clients, thread CPU: flc_core_train outside the SGD
                                * (the delta and the update's encoding) and taking the payload out */
    double feed_cpu_s;         /* CPU time of the feeding (the server core's ingest): the main
                                * thread's, and the fold helpers' (their polling included) */
    double eval_wall_s;        /* of which the evaluation */
    uint64_t bytes_down, bytes_up;   /* payload bytes (after compression) of the round */
    uint64_t cum_bytes_down, cum_bytes_up;
    double mean_loss;          /* sample-weighted local loss of the committed updates */
    int evaluated;
    double test_acc, test_loss;/* NaN when not evaluated */
    uint32_t online, selected, reported, late, failed; /* failed: training failed (before or
                                * after the close, unless the close cut its download: late)
                                * or the server refused the update */
    int closed_by;             /* fls_close_reason */
    int restored;              /* read back from DIR/resume.fls (--resume): the callback sees the
                                * rounds finished before, once, ahead of the new ones */
    double train_flops;        /* summed over the round's clients that trained, as the virtual
                                * clock charged them: a failed training's too (its estimate) */
} flsim_round_record;

typedef struct flsim_result {
    uint32_t rounds;
    double final_test_acc, final_test_loss;
    double virtual_time_s;
    uint64_t bytes_down, bytes_up;
    double wall_s, train_wall_s;
    double train_flops;
    uint8_t model_sha256[FL_SHA256_LEN];
    int has_trace_sha;                   /* a run with a trace: trace_sha256 holds its rows'
                                          * SHA-256 (flsim_trace_sha256); 0 without one, and in a
                                          * summary.json read back (flsim_parse_summary) whose
                                          * trace_sha256 is null or absent (an older fl_sim) */
    uint8_t trace_sha256[FL_SHA256_LEN];
    int target_reached;
    uint32_t rounds_to_target;           /* when reached: the first evaluated round at or above
                                          * it (eval_every 0: only the last round is evaluated) */
    double vtime_to_target;
    uint64_t bytes_down_to_target, bytes_up_to_target;
    uint32_t empty_clients;              /* clients whose shard holds no sample (never online) */
    size_t n_params;
    char arch[FLSIM_STR];
    char blas[64];
    int mpi_ranks;
    uint32_t workers, fold_helpers; /* the threads the run used (flsim_threads_resolve), per rank;
                                     * 0 in a summary.json written before they were recorded */
    double peak_rss_mb;
    int interrupted;                     /* stopped by the round callback before its last round:
                                          * the figures are those of the rounds it finished */
    /* Client updates over all rounds (the sums of rounds.csv's reported, failed, late): none
     * accepted means the model never learned from a client (a learning rate that diverges...).
     * A summary.json written before these existed reads back with them taken from rounds.csv. */
    uint64_t updates_accepted, updates_failed, updates_late;
    uint32_t resumed_after;              /* --resume: the rounds read back (0: a fresh run) */
    /* After a failed run: 0, or where every rank returned the failure from the same point (under
     * MPI, agreed by a collective call; the ranks may then make one more to say it once) 1 when
     * the failure (err) is this rank's own, 2 when it is another rank's (err says only that).
     * Under MPI, 0 means the other ranks may wait for this one in a collective call (a failure in
     * the core's tick or event handling): the caller ends the job (MPI_Abort). */
    int err_agreed;
} flsim_result;

/* Datasets of a run, loaded once (the experiment shares them between runs). */
typedef struct flsim_data {
    flm_dataset *train, *test;
    int owns_test;  /* test is a subset made here (freed with the data) */
} flsim_data;

/* Loads cfg's train and test sets. FL_OK or the loader's status (reason in err). Under MPI with
 * several ranks a collective call (every rank calls it at the same point): a rank that could not
 * load ends them all, the others with FL_ERR_IO, "another MPI rank could not load the data". */
fl_status flsim_data_load(flsim_data *d, const flsim_config *cfg, char *err, size_t errlen);
void flsim_data_free(flsim_data *d);

/* The architecture spec cfg->model names on the dataset ds: "mlp", "cnn" and "moge" completed
 * for its shape (mlp:D-200-200-K, cnn:K:HxWxC, moge:D:128:4:4:1:K), else the spec as given.
 * Writes at most cap bytes (NUL-terminated). Pure. */
void flsim_model_spec(const flsim_config *cfg, const flm_dataset *ds, char *out, size_t cap);

/* Called after every round (from the thread that called flsim_run). Returns 0 to go on, nonzero
 * to stop the run there (fl_sim's Ctrl-C): the run ends after that round as if it were its last.
 * FLSIM_STOP_DISCARD stops it too, and the caller keeps nothing of it (fl_sim's stop before the
 * first round was done): no cfg->out/resume.fls is written then, so that an earlier run's stays. */
#define FLSIM_STOP_DISCARD 2
typedef int (*flsim_round_fn)(void *user, const flsim_round_record *r, const flsim_result *sofar);

/* Runs the simulation described by cfg on data (NULL: loaded here). Fills *res; *records (may be
 * NULL) receives a malloc'ed array of *n_records per-round records owned by the caller. Under MPI
 * (when the program initialised MPI with more than one rank) every rank runs the identical server
 * core, trains its share of the selected clients and sees every update (see sim/README.md); every
 * rank returns the same results. With data NULL, a policy that drops units while --keep-layers
 * keeps every unit of each droppable layer is said in a warning on log (a caller that passes its
 * data, as the experiment does, says it itself, once: flsim_keep_layers_whole); so is a run whose
 * clients hold no training sample (res->empty_clients, said by such a caller once for the runs
 * that share it). Returns FL_OK,
 * FL_ERR_CONFIG (reason logged and in err), the data loader's status, FL_ERR_NOMEM, or a core's
 * error. log may be NULL.
 * FL_ERR_CANCELLED when cb asked to stop (on any rank: every rank stops after the same round):
 * *res, its model_sha256 (of the model after that round) and *records then hold the rounds
 * finished, and res->interrupted is set. */
fl_status flsim_run(const flsim_config *cfg, const flsim_data *data, const fl_logger *log,
                    flsim_round_fn cb, void *user, flsim_result *res,
                    flsim_round_record **records, size_t *n_records, char *err, size_t errlen);

/* rounds.csv as the run goes (fl_sim --out), so that a crash keeps every finished round:
 * flsim_rounds_start creates DIR, removes a summary.json left there by an earlier run (a summary
 * marks a finished run) and opens DIR/rounds.csv with its header; flsim_rounds_put appends one
 * round and flushes it to the kernel; flsim_rounds_finish syncs the file to disk and closes it
 * (it closes it whatever it returns). The run then ends with flsim_write_summary, not
 * flsim_write_outputs: the rounds are already on disk. FL_OK or FL_ERR_IO (flsim_rounds_start:
 * with what failed in err, which may be NULL); flsim_rounds_finish, given DIR (or NULL: not
 * checked), returns FL_ERR_NOT_FOUND when DIR/rounds.csv is no longer the file it wrote (deleted
 * or replaced during the run): the rounds are then to be written whole (flsim_write_outputs). */
fl_status flsim_rounds_start(const char *dir, FILE **out, char *err, size_t errlen);
/* Creates DIR (and its parents) and checks that it is a directory this process may write in (a
 * probe file made and removed: fl_dir_writable) where DIR/rounds.csv and DIR/summary.json, and
 * with checkpoints (a run with --checkpoint-every above 0) DIR/resume.fls, are files or absent
 * (a directory there is refused before the run, not after it); leaves nothing inside it, so that
 * a run which fails before its first round leaves an earlier run's results there as they were.
 * made (may be NULL): what flsim_out_unprepare needs to remove the directories this call
 * created. FL_OK, or FL_ERR_IO with the reason in err (nothing created is left then). */
fl_status flsim_out_prepare(const char *dir, int checkpoints, size_t *made, char *err,
                            size_t errlen);
/* After a run that failed or was stopped before writing anything: removes the directories
 * flsim_out_prepare(dir, &made) created, deepest first, each only while it is empty (a directory
 * that existed before, or that holds anything, is kept, and so are those above it).
 * Async-signal-safe (rmdir and string copies only): a signal handler that ends the process
 * before the first round may call it. */
void flsim_out_unprepare(const char *dir, size_t made);
/* One fl_sim process at a time writes an --out DIR (a run or an experiment): a second would
 * interleave rounds.csv, replace the first's resume.fls and sweep its temporaries. Takes an
 * advisory lock (flock) on the directory itself, so that no file is left in DIR, and hands back
 * its descriptor in *fd: the lock is held until close(*fd) or the process ends. *fd is -1 where
 * the filesystem has no flock on directories (some NFS) or DIR cannot be opened for reading: the
 * call then succeeds without a lock. FL_OK, or FL_ERR_STATE when another process holds DIR
 * ("--out DIR is in use by another fl_sim run ...", in err). */
fl_status flsim_out_lock(const char *dir, int *fd, char *err, size_t errlen);
fl_status flsim_rounds_put(FILE *f, const flsim_round_record *r);
fl_status flsim_rounds_finish(FILE *f, const char *dir);

/* Writes DIR/summary.json alone (atomically: a reader never sees half of it), after the rounds
 * went to DIR/rounds.csv. FL_OK, FL_ERR_IO or FL_ERR_NOMEM, with "cannot write PATH: reason" in
 * err (which may be NULL). */
fl_status flsim_write_summary(const char *dir, const flsim_config *cfg, const flsim_result *res,
                              char *err, size_t errlen);

/* Writes DIR/rounds.csv and DIR/summary.json (creating DIR). The summary is written even when
 * rounds.csv cannot be (it holds the run's results; flsim_load_outputs refuses a pair that does
 * not agree). FL_OK or the first failure's status, with every failure ("cannot write PATH:
 * reason", joined by "; ") in err (which may be NULL). */
fl_status flsim_write_outputs(const char *dir, const flsim_config *cfg, const flsim_result *res,
                              const flsim_round_record *records, size_t n_records, char *err,
                              size_t errlen);

/* Reading a finished run back (fl_sim experiment afd reuses the runs an interrupted experiment
 * finished). flsim_load_outputs reads DIR/summary.json and DIR/rounds.csv: FL_OK with *res and
 * a malloc'ed *records (rounds.csv's fields: the wall-time split and CPU times it does not hold
 * are 0, eval_wall_s NaN where its cell is empty or the file is of before that column, 2026-12-02,
 * whose header is read too); FL_ERR_NOT_FOUND when DIR holds no summary.json, or that of an interrupted run (no
 * finished run there); FL_ERR_RESULTS_MISMATCH when want (if not NULL) differs from the saved
 * settings in anything but `threads` and `fold_threads` (and `model` as written, when want_arch,
 * if not NULL, equals the saved run's canonical arch: `mlp` and its full spec are the same model);
 * FL_ERR_RESULTS_FORMAT for a malformed
 * or inconsistent file; FL_ERR_UNSUPPORTED when built without jansson; FL_ERR_IO, FL_ERR_NOMEM.
 * The reason, naming the file and line or field, goes to err. The two parsers take the files'
 * bytes. */
fl_status flsim_load_outputs(const char *dir, const flsim_config *want, const char *want_arch,
                             flsim_result *res, flsim_round_record **records, size_t *n_records,
                             char *err, size_t errlen);
fl_status flsim_parse_summary(const char *text, size_t len, const flsim_config *want,
                              const char *want_arch, flsim_result *res, char *err, size_t errlen);
fl_status flsim_parse_rounds_csv(const char *text, size_t len, flsim_round_record **records,
                                 size_t *n_records, char *err, size_t errlen);

/* Writes the summary JSON into buf; returns the full length (like snprintf). */
size_t flsim_summary_json(const flsim_config *cfg, const flsim_result *res, char *buf, size_t cap);

/* Peak resident set size of this process, MiB (getrusage). */
double flsim_peak_rss_mb(void);

/* ---- the AFD experiment ------------------------------------------------------------------- */

/* What an experiment reports while it works (flsim_experiment.progress): a run begins (RUN_START),
 * one of its rounds ends (ROUND), a run ends or is read back (RUN_DONE). */
enum { FLSIM_EXP_RUN_START = 1, FLSIM_EXP_ROUND = 2, FLSIM_EXP_RUN_DONE = 3 };
typedef struct flsim_exp_event {
    int kind;
    const char *config;             /* "full", "afd-multi+c", ... */
    uint32_t seed;
    uint32_t run, runs;             /* this run's 1-based index among all runs; their number */
    uint32_t to_train, trained;     /* runs this invocation trains; how many it finished so far */
    uint32_t rounds;                /* the run's rounds */
    int reused;                     /* RUN_DONE: read back from its directory, not trained */
    const flsim_round_record *round;/* ROUND */
    const flsim_result *res;        /* ROUND: the run so far; RUN_DONE: its result */
    const char *dir;                /* RUN_DONE: where the run is saved */
} flsim_exp_event;
/* Returns 0 to go on; nonzero on a ROUND event stops the experiment after that round (the run
 * in progress is dropped, the finished ones stay saved: the same experiment resumes from them).
 * The return value of the other events is ignored. */
typedef int (*flsim_exp_fn)(void *user, const flsim_exp_event *ev);

typedef struct flsim_experiment {
    char preset[16];     /* "small" or "full" */
    char out[FLSIM_STR]; /* output directory */
    uint32_t seeds;      /* default 3 */
    uint32_t threads;
    int fresh;           /* run everything again, not reading back runs finished under out */
    flsim_exp_fn progress; /* NULL, or called on rank 0 from the calling thread (the library
                            * itself prints nothing) */
    void *progress_user;
    const char *overrides[64]; /* "key=value" option settings applied after the preset, NULL-terminated */
    int *err_agreed;     /* NULL, or set after a failure as flsim_result.err_agreed: 1 or 2 where
                          * every rank returned it from the same collective call (1: this rank's
                          * own failure, 2: another's), 0 otherwise */
} flsim_experiment;

/* Runs the comparison of AFD.md (8 configurations x seeds), writes DIR/table.md, DIR/table.csv,
 * DIR/curves.csv, per run DIR/runs/<name>-s<seed>/{rounds.csv,summary.json}, and the plots
 * DIR/acc_vs_time.{png,svg}, DIR/acc_vs_bytes.{png,svg} when gnuplot is installed. A run whose
 * directory already holds a finished run with the same settings is read back, not run again
 * (unless fresh): an interrupted experiment resumes, and more seeds add to fewer; a saved run
 * with other settings, or a damaged one, stops it with FL_ERR_RESULTS_MISMATCH or
 * FL_ERR_RESULTS_FORMAT before anything is overwritten. With a trace, a saved run whose
 * trace_sha256 is not that of the rows the trace file holds now (or that has none) is run again,
 * with one warning through log. FL_ERR_CANCELLED when progress asked to
 * stop (err says how many runs are saved). FL_ERR_STATE when another fl_sim process holds DIR
 * (flsim_out_lock: the experiment holds it too, until it returns). */
fl_status flsim_experiment_afd(const flsim_experiment *e, const fl_logger *log, char *err,
                               size_t errlen);

#endif
