/* flm_lstm.h: LSTM and embedding layers with full backpropagation through time.
 *
 * One LSTM layer over a batch of sequences, zero initial state, PyTorch gate order (i, f, g, o):
 *   gates_t = x_t W_ih^T + h_{t-1} W_hh^T + b        (4H per sample)
 *   i = sig(.), f = sig(.), g = tanh(.), o = sig(.);  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
 * Shapes: inp (B, T, C), out (B, T, H), w_ih (4H, C), w_hh (4H, H), b (4H) (= PyTorch's
 * b_ih + b_hh). All GEMMs go through flm_sgemm. Pure functions: no allocation, no globals;
 * thread-safe on distinct buffers.
 */
#ifndef FLM_LSTM_H
#define FLM_LSTM_H

#include <stddef.h>
#include <stdint.h>

/* Floats the forward pass stores in `cache` for the backward pass (7*B*T*H: activated gates,
 * c_t, tanh(c_t), h_{t-1}). Pure. */
size_t flm_lstm_cache_floats(int B, int T, int H);
/* Floats of scratch the backward pass needs (4*B*T*H + 2*B*H; C is not used). Pure. */
size_t flm_lstm_scratch_floats(int B, int T, int C, int H);

/* out (B, T, H) = LSTM(inp); fills cache (flm_lstm_cache_floats(B, T, H) floats). B, T >= 1.
 * All buffers are the caller's; none may overlap. The activations use a fast exp (about 1 ulp;
 * tanh to ~1e-7 absolute); NaN in the input or the weights comes out as NaN. */
void flm_lstm_forward(float *out, float *cache, const float *inp, const float *w_ih,
                      const float *w_hh, const float *b, int B, int T, int C, int H);

/* Floats of work flm_lstm_forward_eval needs (4*B*T*H + 3*B*H: the activated gates of every
 * step, c_t of two steps, tanh(c_t) of one). Pure. */
size_t flm_lstm_eval_floats(int B, int T, int H);
/* flm_lstm_forward for a forward that no backward follows: the same out, to the bit, in 4/7 of
 * the cache's memory; work (flm_lstm_eval_floats) is clobbered. No buffer may overlap another. */
void flm_lstm_forward_eval(float *out, float *work, const float *inp, const float *w_ih,
                           const float *w_hh, const float *b, int B, int T, int C, int H);

/* Given dout (B, T, H): accumulates (+=) dw_ih, dw_hh, db; overwrites dinp (B, T, C) unless it is
 * NULL. cache and inp are those of the matching forward call and must be unchanged since; `out`
 * of that call is not read (h_{t-1} is in the cache), so the caller may reuse it. scratch holds
 * flm_lstm_scratch_floats floats, contents ignored and clobbered. For a last-step model pass a
 * dout that is zero except at t = T-1. No buffer may overlap another. */
void flm_lstm_backward(float *dinp, float *dw_ih, float *dw_hh, float *db, float *scratch,
                       const float *dout, const float *cache, const float *inp,
                       const float *w_ih, const float *w_hh, int B, int T, int C, int H);

/* out (B, T, E) = W[tokens]; W (V, E); tokens (B, T) in [0, V) (checked by the caller). */
void flm_embedding_forward(float *out, const int32_t *tokens, const float *w, int B, int T, int E);
/* dw (V, E) += scatter of dout (B, T, E) by tokens (repeated tokens add up; rows of tokens not
 * present are left untouched). */
void flm_embedding_backward(float *dw, const float *dout, const int32_t *tokens, int B, int T, int E);

#endif
