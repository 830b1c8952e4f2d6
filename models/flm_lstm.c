/* flm_lstm.c: LSTM (forward + full BPTT) and embedding layers. See flm_lstm.h.
 *
 * Layout: every per-step tensor stays batch-major, (B, T, .), like inp and out, so the input
 * projection and all weight gradients are single GEMMs over the B*T rows; a step's rows are
 * strided views (row stride T*4H or T*H) handed to flm_sgemm as lda/ldc.
 *
 * Cache (flm_lstm_cache_floats = 7*B*T*H):
 *   act (B, T, 4H)  activated gates i, f, g, o
 *   c   (B, T, H)   cell state c_t
 *   tc  (B, T, H)   tanh(c_t)
 *   hp  (B, T, H)   h_{t-1} (zero at t = 0): dW_hh is then one GEMM dgates^T hp over all rows
 * Scratch (flm_lstm_scratch_floats = B*T*4H + 2*B*H):
 *   dg  (B, T, 4H)  gradient of the gate pre-activations
 *   dh  (B, H)      recurrent gradient flowing into h_{t-1}
 *   dc  (B, H)      gradient flowing into c_{t-1}
 */
#include "flm_lstm.h"

/* Compiler settings for this file, and why:
 * - The NaN-preserving clamps below are compare-and-select; GCC if-converts (and so vectorizes)
 *   them only when it may assume float compares do not trap (nothing here reads the FP
 *   environment).
 * - No a*b+c is contracted into an FMA, whatever -std says, so the gate math gives the same bits
 *   on every x86 CPU and in every clone below (the GEMMs are flm_sgemm's business).
 * - The gate loops are also compiled for AVX-512 and AVX2 and picked at load time (ifunc). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("no-trapping-math", "fp-contract=off")
#endif
/* Not under ThreadSanitizer: the ifunc resolver runs during relocation, before its runtime is up,
 * and its instrumented prologue crashes there. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_THREAD__)
#define FLM_CELL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FLM_CELL_CLONES
#endif

#include <stdint.h>
#include <string.h>

#include "flm_blas.h"

/* expf for x in [-87, 88] from Cephes' single-precision expf (range reduction by ln 2 in two
 * parts, degree-5 polynomial; about 1 ulp). Written branch-free with plain float and uint32
 * operations so that the gate loops vectorize without -ffast-math. The caller clamps x; NaN
 * passes through the clamps and comes out NaN. */
static inline float exp_clamped(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float t = x * 1.44269504088896341f + magic;
    const float n = t - magic;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t tb, sb;
    memcpy(&tb, &t, sizeof tb);
    sb = (tb - 0x4b400000u + 127u) << 23; /* 2^n: low bits of t hold n (two's complement) */
    float s;
    memcpy(&s, &sb, sizeof s);
    return p * s;
}

static inline float sigmoidf_fast(float x)
{
    /* Comparisons rather than fminf/fmaxf: they keep NaN. */
    x = x < -87.0f ? -87.0f : x;
    x = x > 87.0f ? 87.0f : x;
    return 1.0f / (1.0f + exp_clamped(-x));
}

static inline float tanhf_fast(float x)
{
    /* tanh(x) = 1 - 2 / (exp(2x) + 1); |tanh(9)| rounds to 1 in float. Absolute error ~1e-7. */
    x = x < -9.0f ? -9.0f : x;
    x = x > 9.0f ? 9.0f : x;
    return 1.0f - 2.0f / (exp_clamped(2.0f * x) + 1.0f);
}

size_t flm_lstm_cache_floats(int B, int T, int H)
{
    return (size_t)7 * (size_t)B * (size_t)T * (size_t)H;
}

size_t flm_lstm_scratch_floats(int B, int T, int C, int H)
{
    (void)C;
    return (size_t)4 * B * T * H + (size_t)2 * B * H;
}

/* One sample, one step: activate the gate pre-activations a (4H) in place (adding the bias),
 * then c = f c_prev + i g, h = o tanh(c), copied to hnext (h_{t-1} of the next step) unless
 * NULL. cp NULL means c_prev = 0. */
FLM_CELL_CLONES
static void cell_forward(float *restrict a, float *restrict c, float *restrict tc,
                         float *restrict h, float *restrict hnext, const float *restrict cp,
                         const float *restrict b, int H)
{
    /* Gate blocks: i, f sigmoid; g tanh; o sigmoid. */
    for (int j = 0; j < 2 * H; j++)
        a[j] = sigmoidf_fast(a[j] + b[j]);
    for (int j = 2 * H; j < 3 * H; j++)
        a[j] = tanhf_fast(a[j] + b[j]);
    for (int j = 3 * H; j < 4 * H; j++)
        a[j] = sigmoidf_fast(a[j] + b[j]);
    const float *ig = a, *fg = a + H, *gg = a + 2 * H, *og = a + 3 * H;
    if (cp) {
        for (int j = 0; j < H; j++)
            c[j] = fg[j] * cp[j] + ig[j] * gg[j];
    } else {
        for (int j = 0; j < H; j++)
            c[j] = ig[j] * gg[j];
    }
    for (int j = 0; j < H; j++) {
        tc[j] = tanhf_fast(c[j]);
        h[j] = og[j] * tc[j];
    }
    if (hnext)
        memcpy(hnext, h, (size_t)H * sizeof *h);
}

void flm_lstm_forward(float *out, float *cache, const float *inp, const float *w_ih,
                      const float *w_hh, const float *b, int B, int T, int C, int H)
{
    const size_t BT = (size_t)B * T, H4 = (size_t)4 * H;
    float *act = cache;        /* (B, T, 4H) */
    float *cs = act + BT * H4; /* (B, T, H) */
    float *tcs = cs + BT * H;  /* (B, T, H) */
    float *hp = tcs + BT * H;  /* (B, T, H) */

    /* Input projection for every step at once: act (B*T, 4H) = inp (B*T, C) W_ih^T. */
    flm_sgemm(0, 1, (int)BT, (int)H4, C, 1.0f, inp, C, w_ih, C, 0.0f, act, (int)H4);
    for (int bb = 0; bb < B; bb++)
        memset(hp + (size_t)bb * T * H, 0, (size_t)H * sizeof *hp);

    for (int t = 0; t < T; t++) {
        /* act[:, t] += h_{t-1} W_hh^T; h_{t-1} is out[:, t-1] (row stride T*H). */
        if (t > 0)
            flm_sgemm(0, 1, B, (int)H4, H, 1.0f, out + (size_t)(t - 1) * H, T * H, w_hh, H, 1.0f,
                      act + (size_t)t * H4, (int)(T * H4));
        for (int bb = 0; bb < B; bb++) {
            const size_t row = (size_t)bb * T + t;
            cell_forward(act + row * H4, cs + row * H, tcs + row * H, out + row * H,
                         t + 1 < T ? hp + (row + 1) * H : NULL, t > 0 ? cs + (row - 1) * H : NULL,
                         b, H);
        }
    }
}

size_t flm_lstm_eval_floats(int B, int T, int H)
{
    return (size_t)4 * B * T * H + (size_t)3 * B * H;
}

/* flm_lstm_forward without what only the backward reads: the activated gates stay (B, T, 4H), as
 * the input projection is the same single GEMM over the B*T rows and each step's recurrent GEMM
 * the same strided call, but c_t lives in two (B, H) planes taken in turn, tanh(c_t) in one, and
 * h_{t-1} is read from out as the forward does (its copy in hp only serves the backward). Every
 * float is computed by the same operations in the same order: the same bits. */
void flm_lstm_forward_eval(float *out, float *work, const float *inp, const float *w_ih,
                           const float *w_hh, const float *b, int B, int T, int C, int H)
{
    const size_t BT = (size_t)B * T, H4 = (size_t)4 * H;
    float *act = work;                  /* (B, T, 4H) */
    float *cs = act + BT * H4;          /* (2, B, H): c_t at t % 2 */
    float *tcs = cs + (size_t)2 * B * H; /* (B, H) */

    flm_sgemm(0, 1, (int)BT, (int)H4, C, 1.0f, inp, C, w_ih, C, 0.0f, act, (int)H4);
    for (int t = 0; t < T; t++) {
        if (t > 0)
            flm_sgemm(0, 1, B, (int)H4, H, 1.0f, out + (size_t)(t - 1) * H, T * H, w_hh, H, 1.0f,
                      act + (size_t)t * H4, (int)(T * H4));
        float *c = cs + (size_t)(t & 1) * B * H, *cp = cs + (size_t)((t + 1) & 1) * B * H;
        for (int bb = 0; bb < B; bb++) {
            const size_t row = (size_t)bb * T + t;
            cell_forward(act + row * H4, c + (size_t)bb * H, tcs + (size_t)bb * H, out + row * H,
                         NULL, t > 0 ? cp + (size_t)bb * H : NULL, b, H);
        }
    }
}

/* One sample, one step of the backward pass. dL/dh_t = dout + dhr (dhr: from step t+1),
 * dc (in/out): dL/dc_t from step t+1 on entry, dL/dc_{t-1} on exit. Writes the pre-activation
 * gradients dg (4H). cp is c_{t-1}; at the first step (first != 0) c_{-1} = 0 and cp is any
 * readable stand-in of H floats (one loop body, no per-element branch, keeps it vectorized). */
FLM_CELL_CLONES
static void cell_backward(float *restrict dg, float *restrict dc, const float *restrict dout,
                          const float *restrict dhr, const float *restrict a,
                          const float *restrict tc, const float *restrict cp, int first, int H)
{
    const float *ig = a, *fg = a + H, *gg = a + 2 * H, *og = a + 3 * H;
    float *di = dg, *df = dg + H, *dgg = dg + 2 * H, *dov = dg + 3 * H;
    for (int j = 0; j < H; j++) {
        const float dh = dout[j] + dhr[j];
        const float o = og[j], tcv = tc[j], i = ig[j], f = fg[j], g = gg[j];
        const float dcv = dc[j] + dh * o * (1.0f - tcv * tcv);
        const float c_prev = cp[j];
        dov[j] = dh * tcv * o * (1.0f - o);
        di[j] = dcv * g * i * (1.0f - i);
        dgg[j] = dcv * i * (1.0f - g * g);
        df[j] = dcv * c_prev * f * (1.0f - f);
        dc[j] = dcv * f;
    }
    if (first)
        memset(df, 0, (size_t)H * sizeof *df); /* c_{-1} = 0: cp held a stand-in */
}

void flm_lstm_backward(float *dinp, float *dw_ih, float *dw_hh, float *db, float *scratch,
                       const float *dout, const float *cache, const float *inp,
                       const float *w_ih, const float *w_hh, int B, int T, int C, int H)
{
    const size_t BT = (size_t)B * T, H4 = (size_t)4 * H;
    const float *act = cache;
    const float *cs = act + BT * H4;
    const float *tcs = cs + BT * H;
    const float *hp = tcs + BT * H;
    float *dg = scratch;        /* (B, T, 4H) */
    float *dh = dg + BT * H4;   /* (B, H) */
    float *dc = dh + (size_t)B * H; /* (B, H) */

    memset(dh, 0, (size_t)B * H * sizeof *dh);
    memset(dc, 0, (size_t)B * H * sizeof *dc);
    for (int t = T - 1; t >= 0; t--) {
        for (int bb = 0; bb < B; bb++) {
            const size_t row = (size_t)bb * T + t;
            cell_backward(dg + row * H4, dc + (size_t)bb * H, dout + row * H, dh + (size_t)bb * H,
                          act + row * H4, tcs + row * H, t > 0 ? cs + (row - 1) * H : cs + row * H,
                          t == 0, H);
        }
        /* dh (B, H) = dg[:, t] (B, 4H) W_hh (4H, H): the gradient reaching h_{t-1}. */
        if (t > 0)
            flm_sgemm(0, 0, B, H, (int)H4, 1.0f, dg + (size_t)t * H4, (int)(T * H4), w_hh, H, 0.0f,
                      dh, H);
    }

    /* Weight gradients over all B*T rows at once. */
    flm_sgemm(1, 0, (int)H4, C, (int)BT, 1.0f, dg, (int)H4, inp, C, 1.0f, dw_ih, C);
    flm_sgemm(1, 0, (int)H4, H, (int)BT, 1.0f, dg, (int)H4, hp, H, 1.0f, dw_hh, H);
    for (size_t r = 0; r < BT; r++) {
        const float *g = dg + r * H4;
        for (size_t j = 0; j < H4; j++)
            db[j] += g[j];
    }
    if (dinp)
        flm_sgemm(0, 0, (int)BT, C, (int)H4, 1.0f, dg, (int)H4, w_ih, C, 0.0f, dinp, C);
}

void flm_embedding_forward(float *out, const int32_t *tokens, const float *w, int B, int T, int E)
{
    const size_t BT = (size_t)B * T;
    for (size_t r = 0; r < BT; r++)
        memcpy(out + r * E, w + (size_t)tokens[r] * E, (size_t)E * sizeof *out);
}

void flm_embedding_backward(float *dw, const float *dout, const int32_t *tokens, int B, int T,
                            int E)
{
    const size_t BT = (size_t)B * T;
    for (size_t r = 0; r < BT; r++) {
        float *row = dw + (size_t)tokens[r] * E;
        const float *d = dout + r * E;
        for (int e = 0; e < E; e++)
            row[e] += d[e];
    }
}
