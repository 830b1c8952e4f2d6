/* flm_layers.h: forward and backward of the feed-forward layers, as plain functions (llm.c style).
 *
 * Conventions: row-major, batch first; B batch, C in-channels or features, OC out-channels,
 * H/W spatial input, OH/OW spatial output, K kernel or window, P = OH*OW. A forward writes its
 * output (overwrites). A backward OVERWRITES the input gradient dinp (skipped when dinp is NULL)
 * and ACCUMULATES (+=) the parameter gradients dw/db. Every GEMM goes through flm_sgemm.
 * Pure functions: no allocation, no globals; thread-safe on distinct buffers.
 * Embedding and LSTM live in flm_lstm.h.
 */
#ifndef FLM_LAYERS_H
#define FLM_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* out (B, OC) = inp (B, C) w^T + b;  w (OC, C), b (OC). relu != 0 fuses max(0, .). */
void flm_dense_forward(float *out, const float *inp, const float *w, const float *b, int B, int C,
                       int OC, int relu);
/* dout (B, OC) -> dinp (B, C) = dout w;  dw (OC, C) += dout^T inp;  db (OC) += sum_b dout. */
void flm_dense_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int B, int C, int OC);

/* Conv2d, stride 1, zero padding `pad` on each side: OH = H + 2 pad - K + 1 (same for W).
 * inp (B, C, H, W), out (B, OC, OH, OW), w (OC, C, K, K), b (OC).
 * col is the im2col matrix (C*K*K, B*P), sample b in columns [b*P, (b+1)*P), which the forward
 * fills and the backward reads: keep it between the two calls. One GEMM per sample, the forward
 * writing straight into out's (OC, P) block; bias and relu (relu != 0) in one pass after it. */
size_t flm_conv2d_col_floats(int B, int C, int K, int OH, int OW);
/* Scratch floats the backward needs (one sample's column gradient). */
size_t flm_conv2d_scratch_floats(int B, int C, int OC, int K, int OH, int OW);
void flm_conv2d_forward(float *out, float *col, const float *inp, const float *w, const float *b,
                        int B, int C, int H, int W, int OC, int K, int pad, int relu);
/* dout (B, OC, OH, OW) -> dinp (B, C, H, W) (NULL: skipped, the cheapest case for a first layer),
 * dw += , db += . scratch: flm_conv2d_scratch_floats. */
void flm_conv2d_backward(float *dinp, float *dw, float *db, float *scratch, const float *dout,
                         const float *col, const float *w, int B, int C, int H, int W, int OC,
                         int K, int pad);

/* Max pooling, window K, stride K: inp (B, C, H, W) -> out (B, C, H/K, W/K); arg (B, C, H/K, W/K)
 * records the flat input index (within the sample's channel plane) of each maximum; ties go to the
 * first in row-major order (as PyTorch). */
void flm_maxpool2d_forward(float *out, int32_t *arg, const float *inp, int B, int C, int H, int W,
                           int K);
void flm_maxpool2d_backward(float *dinp, const float *dout, const int32_t *arg, int B, int C,
                            int H, int W, int K);

/* The maxpool backward followed by the backward of the relu that produced its input, in one pass:
 * inp (B, C, H, W) is the relu output the pool read; dinp gets dout only where the maximum was
 * positive. Equals flm_maxpool2d_backward then flm_relu_backward(dinp, dinp, inp). */
void flm_maxpool2d_relu_backward(float *dinp, const float *dout, const int32_t *arg,
                                 const float *inp, int B, int C, int H, int W, int K);

/* out (N) = max(0, inp); in place allowed (out == inp). */
void flm_relu_forward(float *out, const float *inp, size_t N);
/* dinp (N) = dout where out > 0, else 0; in place allowed (dinp == dout). */
void flm_relu_backward(float *dinp, const float *dout, const float *out, size_t N);

/* last step: inp (B, T, C) -> out (B, C) = inp[:, T-1, :]; backward zeroes dinp but the last step. */
void flm_last_step_forward(float *out, const float *inp, int B, int T, int C);
void flm_last_step_backward(float *dinp, const float *dout, int B, int T, int C);

/* Softmax cross-entropy, mean over the batch. logits (B, V), labels (B) in [0, V).
 * Returns the mean loss; when dlogits is non-NULL writes dlogits (B, V) = (softmax - onehot) / B
 * (dlogits may equal logits). */
double flm_softmax_xent(float *dlogits, const float *logits, const int32_t *labels, int B, int V);

#endif
