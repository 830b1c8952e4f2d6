/* flm_optim.h: SGD (momentum, weight decay, FedProx proximal term) and the local-training entry
 * point the client core calls.
 *
 * All vectors share the flat layout of flm_arch (params, grads, velocity, global weights), so the
 * step is one pass over (float *, size_t n). Pure functions over caller buffers; thread-safe on
 * distinct buffers.
 */
#ifndef FLM_OPTIM_H
#define FLM_OPTIM_H

#include <stdatomic.h>
#include <stddef.h>

#include "fl_rng.h"
#include "fl_status.h"
#include "flm_model.h"

typedef struct flm_sgd {
    float lr;            /* learning rate, > 0 */
    float momentum;      /* 0: plain SGD; PyTorch semantics (v = momentum v + g, w -= lr v) */
    float weight_decay;  /* L2: g += weight_decay * w (PyTorch semantics) */
    float mu;            /* FedProx: loss += mu/2 ||w - w_global||^2, i.e. g += mu (w - w_global) */
} flm_sgd;

/* One step over n coordinates: g' = g + wd w + mu (w - w_global); v = momentum v + g' (when
 * momentum != 0; v zeroed by the caller before the first step gives PyTorch's first step);
 * w -= lr * (momentum ? v : g'). vel may be NULL when momentum is 0; w_global may be NULL when
 * mu is 0. */
void flm_sgd_step(float *w, float *vel, const float *g, const float *w_global, size_t n,
                  const flm_sgd *o);

/* FL_OK, or FL_ERR_INVALID_ARG for a non-finite or negative rate / coefficient or lr == 0. */
fl_status flm_sgd_validate(const flm_sgd *o);

/* Local training (the client's E epochs): for each epoch, a fresh permutation of the view's
 * samples drawn from `order` (Fisher-Yates), then batches of flm_model_max_batch(m) samples (the
 * last one smaller), forward, backward, step. params (arch n_params) is updated in place;
 * w_global (n_params) is the round's global model for the FedProx term, needed iff o->mu > 0.
 * With momentum the velocity starts at zero in every call. *mean_loss (may be NULL) = mean
 * training loss over the samples of the last epoch (without the proximal term, nor a MoGE
 * load-balancing loss: flm_model_forward's).
 * Allocates its permutation (and the velocity when momentum != 0) once per call, nothing per step.
 * Deterministic: same inputs and stream, same bits. FL_ERR_INVALID_ARG (bad args, empty view,
 * epochs < 1), FL_ERR_NUMERIC when the loss stops being finite, FL_ERR_NOMEM, FL_ERR_STATE for an
 * evaluation runtime (flm_model_new_eval), which cannot train. */
fl_status flm_train_local(flm_model *m, float *params, const float *w_global,
                          const flm_samples *data, int epochs, const flm_sgd *o, fl_rng *order,
                          double *mean_loss);

/* flm_train_local that also stops early: when cancel is non-NULL and *cancel becomes nonzero (set
 * by another thread or a signal handler), it returns FL_ERR_CANCELLED before its next batch,
 * leaving params part-trained. cancel NULL: exactly flm_train_local. A batch already begun runs to
 * its end, so the wait is at most one batch's forward and backward. */
fl_status flm_train_local_cancellable(flm_model *m, float *params, const float *w_global,
                                      const flm_samples *data, int epochs, const flm_sgd *o,
                                      fl_rng *order, double *mean_loss, const atomic_int *cancel);

/* flm_train_local_cancellable starting from init (n_params) instead of params' own values: params
 * receive the trained weights, init is only read (init == params: the same call). The same bits
 * as copying init into params first, without the copy: the first step reads init and writes
 * params (flm_model_backward_sgd_from). For a host whose received weights must stay as they are
 * (the delta's reference). On an early stop or error params hold the part-trained weights, or
 * init's values if no step was taken (with m, params or init NULL nothing is written). init and
 * params must not overlap unless equal. */
fl_status flm_train_local_from(flm_model *m, float *params, const float *init,
                               const float *w_global, const flm_samples *data, int epochs,
                               const flm_sgd *o, fl_rng *order, double *mean_loss,
                               const atomic_int *cancel);

#endif
