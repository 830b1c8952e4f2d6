/* fls_opt.h: server optimizers over the aggregated pseudo-gradient (Reddi et al., "Adaptive
 * Federated Optimization", ICLR 2021, Algorithm 2; FedAvgM: Hsu et al. 2019).
 *
 * delta is the round's aggregate (fls_agg_finalize): the weighted mean of client deltas
 * w_local - w_global, so the server moves ALONG it:
 *   FedAvg:     x += lr * delta                                   (lr default 1: plain FedAvg)
 *   FedAvgM:    m  = momentum * m + delta;          x += lr * m
 *   FedAdagrad: m  = b1 * m + (1 - b1) * delta;     v += delta^2;                x += lr * m / (sqrt(v) + tau)
 *   FedAdam:    m  = b1 * m + (1 - b1) * delta;     v = b2 * v + (1 - b2) * delta^2;  (same x step)
 *   FedYogi:    m  = b1 * m + (1 - b1) * delta;     v -= (1 - b2) * delta^2 * sign(v - delta^2); (same)
 * v starts at v0 (default tau^2, as the paper asks v_{-1} >= tau^2); m at 0. No bias correction
 * (the paper has none). Only coordinates with held[i] != 0 change (parameters AND state): a
 * coordinate no client trained this round is left exactly as it was.
 * Arithmetic is float, element by element in the order written above: deterministic.
 *
 * State is flat float arrays of n_params (m, v as the kind needs) plus a step counter; the
 * checkpoint writer saves and restores them through fls_opt_state() and fls_opt_set_steps().
 * Thread-safety: an fls_opt is not thread-safe; distinct ones are independent.
 */
#ifndef FLS_OPT_H
#define FLS_OPT_H

#include <stddef.h>
#include <stdint.h>

#include "fl_status.h"

typedef enum fls_opt_kind {
    FLS_OPT_FEDAVG = 0,
    FLS_OPT_FEDAVGM = 1,
    FLS_OPT_FEDADAGRAD = 2,
    FLS_OPT_FEDADAM = 3,
    FLS_OPT_FEDYOGI = 4,
} fls_opt_kind;

typedef struct fls_opt_config {
    fls_opt_kind kind;
    float lr;        /* server learning rate eta, > 0 */
    float momentum;  /* FedAvgM, [0, 1) */
    float beta1;     /* adaptive: [0, 1) */
    float beta2;     /* Adam, Yogi: [0, 1) */
    float tau;       /* adaptive: > 0, the paper's degree of adaptivity */
    float v0;        /* adaptive: initial v, >= 0; negative = tau^2 */
} fls_opt_config;

/* Defaults for a kind: FedAvg lr 1; FedAvgM lr 1, momentum 0.9; adaptive lr 0.01, beta1 0.9,
 * beta2 0.99, tau 1e-3, v0 = tau^2. */
fls_opt_config fls_opt_config_default(fls_opt_kind kind);

/* Parses "fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi" into *kind. FL_OK or
 * FL_ERR_INVALID_ARG. */
fl_status fls_opt_kind_parse(const char *name, fls_opt_kind *kind);
const char *fls_opt_kind_name(fls_opt_kind kind); /* static string, "unknown" if out of range */

typedef struct fls_opt fls_opt; /* opaque */

/* Allocates state for n_params coordinates (m = 0, v = v0, steps = 0). cfg is copied. Returns
 * FL_OK, FL_ERR_INVALID_ARG (a hyper-parameter outside its domain, n_params 0), FL_ERR_NOMEM. */
fl_status fls_opt_new(const fls_opt_config *cfg, size_t n_params, fls_opt **out);
void fls_opt_free(fls_opt *opt); /* NULL is a no-op */

/* One server step: params[n_params] updated in place from delta[n_params]; held may be NULL
 * (every coordinate). Returns FL_OK, FL_ERR_INVALID_ARG (NULL buffers), or FL_ERR_NUMERIC when
 * the step would make a parameter or state value non-finite (or v negative): then nothing is
 * changed, the step not counted. */
fl_status fls_opt_step(fls_opt *opt, float *params, const float *delta, const uint8_t *held);

const fls_opt_config *fls_opt_get_config(const fls_opt *opt);
size_t fls_opt_n_params(const fls_opt *opt);

/* State arrays for checkpoints: n_state() of them (0 FedAvg, 1 FedAvgM "m", 2 adaptive "m", "v").
 * fls_opt_state(opt, i, &name, &n) returns a pointer to array i (n floats, owned by opt, valid
 * until fls_opt_free; the caller may write it to restore a checkpoint), NULL if i is out of range.
 * Steps: the number of fls_opt_step calls so far (restored with fls_opt_set_steps). */
size_t fls_opt_n_state(const fls_opt *opt);
float *fls_opt_state(fls_opt *opt, size_t i, const char **name, size_t *n);
uint64_t fls_opt_steps(const fls_opt *opt);
void fls_opt_set_steps(fls_opt *opt, uint64_t steps);

/* Resets the state to its initial values (m = 0, v = v0, steps = 0). */
void fls_opt_reset(fls_opt *opt);

#endif
