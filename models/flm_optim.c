#include "flm_optim.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fl_mem.h"

void flm_sgd_step(float *w, float *vel, const float *g, const float *w_global, size_t n,
                  const flm_sgd *o)
{
    const float lr = o->lr, mom = o->momentum, wd = o->weight_decay, mu = o->mu;
    const int prox = mu != 0.0f && w_global;
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f)
            d += wd * w[i];
        if (prox)
            d += mu * (w[i] - w_global[i]);
        if (mom != 0.0f && vel) {
            vel[i] = mom * vel[i] + d;
            d = vel[i];
        }
        w[i] -= lr * d;
    }
}

fl_status flm_sgd_validate(const flm_sgd *o)
{
    if (!o || !isfinite(o->lr) || !isfinite(o->momentum) || !isfinite(o->weight_decay) ||
        !isfinite(o->mu) || o->lr <= 0.0f || o->momentum < 0.0f || o->momentum >= 1.0f ||
        o->weight_decay < 0.0f || o->mu < 0.0f)
        return FL_ERR_INVALID_ARG;
    return FL_OK;
}

fl_status flm_train_local(flm_model *m, float *params, const float *w_global,
                          const flm_samples *data, int epochs, const flm_sgd *o, fl_rng *order,
                          double *mean_loss)
{
    return flm_train_local_cancellable(m, params, w_global, data, epochs, o, order, mean_loss,
                                       NULL);
}

fl_status flm_train_local_cancellable(flm_model *m, float *params, const float *w_global,
                                      const flm_samples *data, int epochs, const flm_sgd *o,
                                      fl_rng *order, double *mean_loss, const atomic_int *cancel)
{
    return flm_train_local_from(m, params, params, w_global, data, epochs, o, order, mean_loss,
                                cancel);
}

fl_status flm_train_local_from(flm_model *m, float *params, const float *init,
                               const float *w_global, const flm_samples *data, int epochs,
                               const flm_sgd *o, fl_rng *order, double *mean_loss,
                               const atomic_int *cancel)
{
    if (!m || !params || !init)
        return FL_ERR_INVALID_ARG;
    const flm_arch *a = flm_model_arch(m);
    if (!data || !order || epochs < 1 || data->n == 0 || data->n > UINT32_MAX ||
        flm_sgd_validate(o) != FL_OK || (o->mu > 0.0f && !w_global)) {
        if (init != params) /* no step taken: params are the initial weights */
            memcpy(params, init, a->n_params * sizeof *params);
        return FL_ERR_INVALID_ARG;
    }
    if (!flm_model_grads(m)) { /* an evaluation runtime (flm_model_new_eval): no backward */
        if (init != params)
            memcpy(params, init, a->n_params * sizeof *params);
        return FL_ERR_STATE;
    }
    const size_t P = a->n_params, N = data->n;
    const int B = flm_model_max_batch(m);
    /* pages of their own when large (fl_big_alloc), given back at the end of the training. The
     * velocity is the model's (flm_model_velocity), made once and zeroed here: one of its own
     * each training (an mmap of 4 MB for 1M parameters, its pages faulted in anew) cost a
     * simulator's client of a few samples 3.6 ms instead of 0.6 */
    uint32_t *perm = fl_big_alloc(N * sizeof *perm);
    float *vel = o->momentum != 0.0f ? flm_model_velocity(m) : NULL;
    if (vel)
        memset(vel, 0, P * sizeof *vel);
    if (!perm || (o->momentum != 0.0f && !vel)) {
        fl_big_free(perm);
        if (init != params)
            memcpy(params, init, P * sizeof *params);
        return FL_ERR_NOMEM;
    }
    /* Plain SGD (with or without weight decay) fuses the step into the backward; momentum and
     * the proximal term need the whole gradient first. */
    const int fused = o->momentum == 0.0f && o->mu == 0.0f;
    /* The weights before the next step: init until the first step has written params. The
     * unfused step (momentum, proximal term) works in place, so it starts from a copy. */
    const float *cur = init;
    if (init != params && !fused) {
        memcpy(params, init, P * sizeof *params);
        cur = params;
    }
    float *grads = flm_model_grads(m);
    flm_samples view = *data;
    view.index = perm;
    fl_status st = FL_OK;
    double epoch_loss = 0.0;
    for (int e = 0; e < epochs && st == FL_OK; e++) {
        for (size_t i = 0; i < N; i++)
            perm[i] = data->index ? data->index[i] : (uint32_t)i;
        for (size_t i = N - 1; i > 0; i--) {
            const size_t j = fl_rng_below(order, (uint32_t)(i + 1));
            const uint32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        epoch_loss = 0.0;
        for (size_t start = 0; start < N; start += (size_t)B) {
            if (cancel && atomic_load_explicit(cancel, memory_order_relaxed)) {
                st = FL_ERR_CANCELLED;
                break;
            }
            const int n = N - start < (size_t)B ? (int)(N - start) : B;
            float L;
            st = flm_model_forward_samples(m, cur, &view, start, n, &L);
            if (st != FL_OK)
                break;
            if (!isfinite(L)) {
                st = FL_ERR_NUMERIC;
                break;
            }
            epoch_loss += (double)L * n;
            if (fused) {
                st = flm_model_backward_sgd_from(m, params, cur, o->lr, o->weight_decay);
                if (st == FL_OK)
                    cur = params;
            } else {
                memset(grads, 0, P * sizeof *grads);
                st = flm_model_backward(m, params, grads);
                if (st == FL_OK)
                    flm_sgd_step(params, vel, grads, w_global, P, o);
            }
            if (st != FL_OK)
                break;
        }
    }
    fl_big_free(perm);
    if (cur != params) /* stopped before the first step: params are the initial weights */
        memcpy(params, init, P * sizeof *params);
    if (st == FL_OK && mean_loss)
        *mean_loss = epoch_loss / (double)N;
    return st;
}
