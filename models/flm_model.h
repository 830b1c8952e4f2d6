/* flm_model.h: the training runtime of one architecture at one batch size.
 *
 * Layout (llm.c style): the parameters of an flm_arch live in ONE flat float buffer of
 * arch.n_params floats, each tensor a named view at arch.tensors[t].offset. Gradients, optimizer
 * state and federated deltas use the very same layout, so compression and aggregation work on
 * plain (const float *x, size_t n). The model does NOT own the parameters: every call takes the
 * buffer, so one model serves the global weights, a client's local copy or a submodel of the same
 * architecture alike.
 *
 * An flm_model owns the activations, their gradients, the conv/LSTM caches, the scratch, and a
 * gradient buffer, all allocated once by flm_model_new for batches of up to B samples: forward,
 * backward and evaluate never allocate. Not thread-safe: one model per thread (GEMMs may still use
 * OpenBLAS threads, see flm_blas_set_threads). Results do not depend on the thread count.
 *
 * Inputs: float images / features (n, in_C*in_H*in_W) channel-major, or int32 tokens (n, T) for
 * token models (lstm: the label is the next token). Labels int32 in [0, classes).
 */
#ifndef FLM_MODEL_H
#define FLM_MODEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_rng.h"
#include "fl_status.h"
#include "flm_arch.h"

/* A view of labelled samples, owned by the caller (the dataset readers fill it). Sample i of the
 * view is row index[i] (or row i when index is NULL) of x / tokens / labels. */
typedef struct flm_samples {
    const float *x;          /* (rows, in_C*in_H*in_W) float inputs; NULL for token models */
    const int32_t *tokens;   /* (rows, T = in_H) token inputs; NULL for float models */
    const int32_t *labels;   /* (rows) */
    const uint32_t *index;   /* (n) rows of this view; NULL: rows 0 .. n-1 */
    size_t n;                /* samples in the view */
} flm_samples;

typedef struct flm_model flm_model; /* opaque */

/* Allocates the runtime of arch `a` for batches of 1..B samples (copies a). FL_ERR_INVALID_ARG for
 * B < 1 or NULL arguments, FL_ERR_UNSUPPORTED for an lstm when the LSTM layer is not built,
 * FL_ERR_NOMEM. Loads the BLAS (flm_blas_init) but runs without it (slowly) if it cannot. */
fl_status flm_model_new(const flm_arch *a, int B, flm_model **out);
/* An evaluation runtime of arch `a` for batches of 1..B samples: forward passes only, for
 * flm_model_forward(_samples), flm_model_logits, flm_model_evaluate(_cancel), which give the very
 * bits of a training runtime's (flm_model_new) at the same B. It holds what a forward writes and
 * no more: no gradients, nor the caches a backward reads (a conv's im2col of the whole batch, an
 * LSTM's cell states), and the layers' outputs in two buffers taken in turn, so the logits are
 * the last layer's alone. flm_model_backward(_sgd, _sgd_from) and flm_train_local* return
 * FL_ERR_STATE; flm_model_grads and flm_model_velocity give NULL. For the default cnn at B = 256,
 * 40 MB instead of 319; lstm 127 instead of 467. Errors as flm_model_new. */
fl_status flm_model_new_eval(const flm_arch *a, int B, flm_model **out);
void flm_model_free(flm_model *m); /* NULL is a no-op */

const flm_arch *flm_model_arch(const flm_model *m);
int flm_model_max_batch(const flm_model *m);
/* Bytes the model allocated (activations, caches, scratch, gradients, optimizer state). */
size_t flm_model_bytes(const flm_model *m);
/* The model's gradient buffer (arch.n_params floats), owned by the model; zeroed at creation.
 * NULL for an evaluation runtime (flm_model_new_eval). */
float *flm_model_grads(flm_model *m);
/* The SGD momentum buffer (arch.n_params floats), owned by the model: made at the first call and
 * kept with the model (its pages go when the model is freed), so that the trainings of one model
 * allocate it once (flm_train_local zeroes it at each start); NULL when memory is short, and for
 * an evaluation runtime. */
float *flm_model_velocity(flm_model *m);

/* Fills params (arch.n_params) deterministically from r, PyTorch's default initialisation:
 * dense and conv weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); LSTM weights
 * U(-1/sqrt(H), 1/sqrt(H)) and bias = sum of two such draws (b_ih + b_hh); embedding N(0, 1).
 * Draws tensor by tensor in arch order. Thread-safe on distinct buffers. */
void flm_model_init_params(const flm_arch *a, float *params, fl_rng *r);

/* Forward pass of n (1..B) samples: x (n, D) for float models or tokens (n, T) for token models
 * (the other NULL). With labels (n) it computes *loss (mean softmax cross-entropy, may be NULL)
 * and makes flm_model_backward possible; without, only logits. x / tokens / labels must stay
 * valid and unchanged until the matching backward. FL_ERR_INVALID_ARG for a bad n, a missing
 * input, a token or label out of range. */
fl_status flm_model_forward(flm_model *m, const float *params, const float *x,
                            const int32_t *tokens, const int32_t *labels, int n, float *loss);
/* Forward of view samples [start, start + n) of s: gathers them into the model's input buffers. */
fl_status flm_model_forward_samples(flm_model *m, const float *params, const flm_samples *s,
                                    size_t start, int n, float *loss);
/* Logits (n, classes) of the last forward; valid until the next forward or backward. */
const float *flm_model_logits(const flm_model *m);
/* The load-balancing losses (flm_moge.h) of the MoGE layers whose spec sets AUX, summed, for the
 * last labelled forward; 0 without such a layer or labels. Training minimises *loss plus this
 * (flm_model_backward's gradient is of the sum), but reports *loss alone: the task's loss, which
 * the client sends and AFD scores submodels by, and which evaluation measures. */
double flm_model_aux_loss(const flm_model *m);
/* Backward of the last forward (which must have had labels): grads (n_params) += d loss / d
 * params. params must be those of the forward. grads may be flm_model_grads(m).
 * FL_ERR_STATE without a labelled forward, and always on an evaluation runtime. */
fl_status flm_model_backward(flm_model *m, const float *params, float *grads);

/* Backward of the last forward fused with one plain SGD step (no momentum, no proximal term):
 * params -= lr * (grad + weight_decay * params), layer by layer as the backward goes, so the big
 * weight gradients never make a round trip through memory (dense layers: the weight-gradient GEMM
 * writes straight into the weights). Same result as flm_model_backward on a zeroed gradient
 * followed by flm_sgd_step, up to float rounding. Uses the model's gradient buffer as scratch. */
fl_status flm_model_backward_sgd(flm_model *m, float *params, float lr, float weight_decay);
/* The same step out of other weights: src (n_params) are the weights before the step, those of
 * the forward, and params receive the stepped weights (src == params: flm_model_backward_sgd).
 * The same bits as copying src into params and stepping in place, with the copy folded into the
 * step where it can be (dense layers read src and write params in one pass). src and params must
 * not overlap otherwise. On FL_ERR_STATE / FL_ERR_UNSUPPORTED params may be partly written. */
fl_status flm_model_backward_sgd_from(flm_model *m, float *params, const float *src, float lr,
                                      float weight_decay);

/* Mean loss (softmax cross-entropy) and accuracy (fraction of argmax == label) over all samples
 * of s, in batches of B.
 * Either output may be NULL. FL_ERR_INVALID_ARG for an empty view. */
fl_status flm_model_evaluate(flm_model *m, const float *params, const flm_samples *s,
                             double *loss, double *accuracy);

/* flm_model_evaluate, stopped between two batches once *cancel is non-zero (another thread may
 * set it): then FL_ERR_CANCELLED and the outputs untouched. cancel NULL: never. The same bits as
 * flm_model_evaluate when it runs to the end. */
fl_status flm_model_evaluate_cancel(flm_model *m, const float *params, const flm_samples *s,
                                    const atomic_int *cancel, double *loss, double *accuracy);

#endif
