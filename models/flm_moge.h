/* flm_moge.h: a mixture-of-grouped-experts (MoGE) layer, forward and backward (llm.c style).
 *
 * N experts in G groups of E = N / G; expert e belongs to group e / E. Each expert is a dense map
 * (C) -> (OC). A gate scores every expert, and each sample is routed to the K experts of highest
 * score IN EACH GROUP (so every group does the same share of the work, the point of grouping):
 *
 *   z (N)  = gate_w x + gate_b                 gate_w (N, C), gate_b (N)
 *   p (N)  = softmax(z) over all N experts
 *   S      = per group, the K experts of largest z (ties to the lower index; a NaN as -inf);
 *            K' = min(K, E)
 *   out    = sum over e in S of p[e] (W_e x + b_e)
 *
 * The expert weights are stored with the expert index INSIDE the output row, so that dropping
 * expert e removes one row of every block as an LSTM gate block does (flm_tensor's row_blocks):
 *   w (OC, N, C): W_e[o][c] = w[(o N + e) C + c]    (a (OC, C) matrix of row stride N*C)
 *   b (OC, N):    b_e[o]    = b[o N + e]
 * A submodel that keeps the same number of experts in every group is again a MoGE layer of the
 * same G with fewer experts per group (shared AFD.md, "Units").
 *
 * Each expert runs one GEMM over the samples routed to it (gathered), so the work is that of the
 * G K' selected experts, not of all N. Routing a sample costs O(N K') comparisons (K' scans of
 * each group; flm_arch caps K at 16) and the batch one counting sort of its picks by expert. The
 * gradient through the routing is that of the softmax (the unselected experts' p[e] still move
 * through the normalisation); the top-K choice itself is piecewise constant. Pure functions: no
 * allocation, no globals; thread-safe on distinct buffers. Every GEMM goes through flm_sgemm.
 *
 * Load balance. The grouping balances the groups (every group runs G K' experts' share); within a
 * group the gate may still favour a few experts. An auxiliary loss with coefficient aux (0: none)
 * pushes it towards using them evenly, as in Switch Transformers and Pangu Pro MoE:
 *
 *   L_aux = aux N sum_e f_e P_e,  f_e = (picks of e in the batch) / (B G K'),  P_e = mean_i p_i[e]
 *
 * which is aux when every expert is picked and weighted evenly. f_e is piecewise constant (it
 * counts picks), so the gradient flows through P_e: d L_aux / d p_i[e] = aux N f_e / B, then
 * through the softmax with the task's gradient.
 */
#ifndef FLM_MOGE_H
#define FLM_MOGE_H

#include <stddef.h>
#include <stdint.h>

/* K', the experts a sample uses in each group: min(K, N / G). Pure. */
int flm_moge_active(int N, int G, int K);

/* Floats the forward stores for the backward: p (B, N), then the selected experts' outputs
 * (B, G K', OC). Pure. */
size_t flm_moge_cache_floats(int B, int N, int G, int K, int OC);
/* int32s the forward stores: the selected experts (B, G K'), and the same pairs bucketed by expert
 * (N + 1 offsets, then two lists of B G K'), which the backward reuses. Pure. */
size_t flm_moge_route_ints(int B, int N, int G, int K);
/* Scratch floats the forward and the backward need: B (N + 2 C + OC). Pure. */
size_t flm_moge_scratch_floats(int B, int C, int N, int OC);

/* out (B, OC) = MoGE(inp (B, C)); fills cache and route (sizes above); scratch is clobbered.
 * N, G >= 1 with N a multiple of G; K >= 1. No buffer may overlap another. */
void flm_moge_forward(float *out, float *cache, int32_t *route, float *scratch, const float *inp,
                      const float *gate_w, const float *gate_b, const float *w, const float *b,
                      int B, int C, int N, int G, int K, int OC);

/* L_aux of the last forward (above) for coefficient aux; 0 when aux is 0. cache and route are
 * the forward's. Pure; the same bits every call. */
double flm_moge_aux_loss(const float *cache, const int32_t *route, int B, int N, int G, int K,
                         float aux);

/* Given dout (B, OC), the gradient of the task's loss: accumulates (+=) dgate_w, dgate_b, dw, db
 * of the task's loss plus L_aux with coefficient aux (0: the task's alone); overwrites dinp (B, C)
 * unless it is NULL. cache, route and inp are those of the matching forward and must be
 * unchanged since; scratch is clobbered. No buffer may overlap another. */
void flm_moge_backward(float *dinp, float *dgate_w, float *dgate_b, float *dw, float *db,
                       float *scratch, const int32_t *route, const float *dout, const float *cache,
                       const float *inp, const float *gate_w, const float *w, int B, int C, int N,
                       int G, int K, int OC, float aux);

/* The same backward fused with the experts' SGD step, in place: w = decay w + alpha dw and
 * b = decay b + alpha db (alpha = -lr, decay = 1 - lr wd), without the experts' gradient ever
 * stored (the experts hold most of the layer's weights). The gate's gradient accumulates into
 * dgate_w / dgate_b as above, for the caller to step. dinp uses the weights as they were before
 * the step. The same arithmetic as flm_moge_backward and a step, up to float rounding. */
void flm_moge_backward_step(float *dinp, float *dgate_w, float *dgate_b, float *w, float *b,
                            float *scratch, const int32_t *route, const float *dout,
                            const float *cache, const float *inp, const float *gate_w, int B,
                            int C, int N, int G, int K, int OC, float aux, float alpha,
                            float decay);

#endif
