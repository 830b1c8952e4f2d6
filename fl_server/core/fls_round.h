/* fls_round.h: the round engine's configuration (with defaults, validation and a digest) and the
 * per-round metrics record (with a JSON rendering for hosts to print).
 *
 * Plain data, no state: thread-safe.
 */
#ifndef FLS_ROUND_H
#define FLS_ROUND_H

#include <stddef.h>
#include <stdint.h>

#include "fl_log.h"
#include "fl_sha256.h"
#include "fl_status.h"
#include "flm_arch.h"
#include "flp_wire.h"
#include "fls_agg.h"
#include "fls_opt.h"
#include "fls_policy.h"
#include "flz.h"

#define FLS_CODEC_STRLEN 96

typedef struct fls_config {
    char arch[FLM_ARCH_SPEC_MAX];  /* architecture spec ("mlp:784-200-200-10", "cnn", ...) */
    uint64_t seed;                 /* run seed: every random draw derives from it */
    fls_policy_config policy;      /* selection policy and its options */
    fls_opt_config opt;            /* server optimizer */
    fls_agg_options agg;           /* aggregation (mode, dilution, fixed point, clipping) */
    uint32_t clients_per_round;    /* quorum: the round closes once this many updates committed */
    double overcommit;             /* select ceil(overcommit * clients_per_round) clients, >= 1 */
    uint32_t min_clients;          /* connected clients needed to start a round; 0 = quorum */
    double round_timeout_s;        /* the round's deadline, seconds after it starts, > 0 */
    uint32_t max_rounds;           /* stop after this many rounds; 0 = no limit */
    uint32_t eval_every;           /* ask the host to evaluate every k rounds; 0 = never */
    double target_accuracy;        /* stop once an evaluation reaches it; 0 = no target */
    flp_train_config train;        /* sent in every Task */
    char down_codec[FLS_CODEC_STRLEN]; /* codec pipeline spec for the Task weights ("none" ...) */
    char up_codec[FLS_CODEC_STRLEN];   /* codec pipeline spec clients use for their deltas */
    uint32_t chunk_elems;          /* elements per chunk, 1 .. 2^20 */
    fl_logger log;                 /* copied; zeroed = silent */
    /* How log lines name a client (optional; not a setting: no part of the digest): the host's
     * name for key (the daemon: its id), or NULL for the key's number. Called on the core's
     * thread, during the message call whose line it names. */
    const char *(*client_name)(void *user, uint32_t key);
    void *client_name_user;
} fls_config;

/* Defaults: arch "mlp:784-200-200-10", seed 1, policy full (p 0.75), FedAvg lr 1, mean
 * aggregation, 10 clients per round, over-commit 1.3, min_clients 0 (= quorum), timeout 600 s,
 * no round limit, no evaluation, no target, train {1 epoch, batch 10, lr 0.05}, codecs "none",
 * chunks of 65536 elements. */
fls_config fls_config_default(void);

/* FL_OK, or FL_ERR_CONFIG with the reason in err (NUL-terminated, may be NULL). Checks every field
 * (architecture and codec specs parse, ranges of counts, rates and options). */
fl_status fls_config_validate(const fls_config *cfg, char *err, size_t errlen);

/* The smallest chunk_elems with which no tensor of a is cut into more chunks than the wire carries
 * a tensor (flp_limits_default's max_chunks, 2^16, which every peer's decoder applies): 1 where
 * no tensor holds more than 65,536 elements. *largest (may be NULL) gets the index of the tensor
 * that sets it, -1 for a model of no tensor. A smaller chunk_elems could never be sent: every Task
 * would fail to encode. */
uint32_t fls_chunk_elems_min(const flm_arch *a, int *largest);

/* 0 when chunk_elems cuts no tensor of a into more chunks than the wire carries; else the least
 * chunk_elems that does not (fls_chunk_elems_min), with why (NUL-terminated, may be NULL) saying
 * "cuts tensor T of ARCH (N elements) into C chunks, more than the 65536 a tensor the wire
 * carries", for the caller to put after its own name for the setting. */
uint32_t fls_chunk_elems_refusal(const flm_arch *a, uint32_t chunk_elems, char *why, size_t cap);

/* NULL when spec may encode the downlink, else why not: the downlink carries the model's weights,
 * not an update, with no error feedback to carry what a stage drops, so top-k (which zeroes all
 * but the largest weights) and random subsampling (which zeroes weights at random and scales the
 * rest by 1/p) would hand clients a broken model. */
const char *fls_down_codec_refusal(const flz_spec *spec);

/* SHA-256 over a canonical text serialisation of the fields that determine the run's results:
 * arch, seed, policy, opt, agg (not its logger), clients_per_round, overcommit, train, codecs,
 * chunk_elems. Operational fields (min_clients, round_timeout_s, max_rounds, eval_every,
 * target_accuracy, log) are left out so that a resumed run may change them. Specs are digested in
 * canonical form ("q4" and "q4b256" digest alike). FL_OK, FL_ERR_CONFIG (a spec that does not
 * parse), FL_ERR_NOMEM. */
fl_status fls_config_digest(const fls_config *cfg, uint8_t out[FL_SHA256_LEN]);

#define FLS_CONFIG_CANON_MAX 4096 /* bytes of the canonical text, its NUL included */
/* The canonical text that fls_config_digest hashes: one "name=value\n" line per field (doubles
 * as %a), NUL-terminated into buf[cap] (cap FLS_CONFIG_CANON_MAX always suffices), its length
 * without the NUL in *len. Checkpoints keep it, so that a refused resume can say what changed.
 * FL_OK, FL_ERR_CONFIG (a spec that does not parse), FL_ERR_INVALID_ARG (cap too small),
 * FL_ERR_NOMEM. */
fl_status fls_config_canon(const fls_config *cfg, char *buf, size_t cap, size_t *len);

/* Compares two canonical texts (was: a checkpoint's, now: this configuration's) and writes the
 * settings that differ into out (NUL-terminated, truncated to cap; may be NULL) by their
 * fl_server key, values as an operator writes them: "round.clients 10 -> 20, policy.keep 0.5 ->
 * 0.75". Returns how many settings differ (0 also when either text is NULL). */
size_t fls_config_canon_diff(const char *was, size_t was_len, const char *now, size_t now_len,
                             char *out, size_t cap);

/* fls_config_canon_diff of only the settings that have no effect under now's configuration
 * (inert 1: those fls_config_canon_same_effect passes over), or of only the others (inert 0). */
size_t fls_config_canon_diff_effect(const char *was, size_t was_len, const char *now,
                                    size_t now_len, int inert, char *out, size_t cap);

/* Calls say(u, fl_server key, why) for each setting that has no effect under cfg's policy,
 * optimizer and aggregation mode (policy.keep and policy.keep_layers under policy.kind full, ...):
 * the rule by which fls_config_canon_same_effect passes over a setting, so that fl_server warns at
 * start of exactly the settings a resume may change. The caller chooses which to say (fl_server:
 * those set to other than their default). FL_OK, FL_ERR_CONFIG, FL_ERR_NOMEM. */
fl_status fls_config_inert(const fls_config *cfg,
                           void (*say)(void *u, const char *key, const char *why), void *u);

/* 1 when two canonical texts (was: a checkpoint's, now: this configuration's) differ at most in
 * settings that have no effect under now's (and so was's: what decides that is compared) policy,
 * optimizer and aggregation mode: policy.keep and keep_layers and aggregation.dilute under
 * policy full, the afd settings under other policies, fd_per_client outside fd, the optimizer's
 * settings of other kinds, trim_frac outside trimmed-mean, max_updates under mean. The settings
 * fl_server warns about at start as having no effect. Results do not depend on them, so such a
 * checkpoint resumes. 0 otherwise (NULL texts included). */
int fls_config_canon_same_effect(const char *was, size_t was_len, const char *now,
                                 size_t now_len);

typedef enum fls_close_reason {
    FLS_CLOSE_QUORUM = 1,    /* clients_per_round updates committed */
    FLS_CLOSE_DEADLINE = 2,  /* the round's deadline passed */
    FLS_CLOSE_EXHAUSTED = 3, /* every selected client reported, failed or left before quorum */
} fls_close_reason;

/* One round, as the host reports it (JSON through fls_round_metrics_json). */
typedef struct fls_round_metrics {
    uint64_t round;
    uint64_t model_version;        /* after the round's server step */
    fls_close_reason closed_by;
    uint32_t connected;            /* connected clients at the round's start */
    uint32_t selected;             /* clients sent a Task */
    uint32_t quorum;               /* updates the round waited for */
    uint32_t reported;             /* updates committed to the aggregate */
    uint32_t late;                 /* selected, still connected, no update by the close */
    uint32_t failed;               /* left mid-round or sent an update that was refused */
    uint32_t rejected;             /* messages refused during the round (any reason, but for the
                                    * uploads of an earlier round's late clients: its `late`) */
    uint64_t bytes_down;           /* Task chunk payload bytes produced for clients */
    uint64_t bytes_up;             /* Update chunk payload bytes accepted */
    uint64_t samples;              /* sum of the committed updates' sample counts */
    double mean_loss;              /* sample-weighted mean local loss (NaN if none reported) */
    int evaluated;                 /* the host evaluated after this round */
    double test_accuracy;          /* when evaluated, else NaN */
    double test_loss;              /* when evaluated, else NaN */
    double t_start, t_end;         /* the time arguments at the start and at the close */
    double duration_s;             /* t_end - t_start */
    double time_unix;              /* calendar time of the close, seconds since 1970: set by a
                                    * host with a clock (the core reads none); 0: left out */
    uint64_t run_id;               /* the run's id (fls_core_run_id: kept by a resume, new for a
                                    * fresh run), set by the host; 0: left out */
    fls_policy_kind policy;
    fls_policy_info afd;           /* AFD state (kept/resampled, score histogram) */
} fls_round_metrics;

/* Writes m as one JSON object (no newline) into buf (NUL-terminated, truncated to cap). Returns
 * the length of the full text, like snprintf. NaN values are written as null. Thread-safe. */
size_t fls_round_metrics_json(const fls_round_metrics *m, char *buf, size_t cap);

#endif
