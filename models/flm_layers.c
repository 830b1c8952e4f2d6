#include "flm_layers.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "flm_blas.h"

/* ---- dense ---------------------------------------------------------------------------------- */

void flm_dense_forward(float *out, const float *inp, const float *w, const float *b, int B, int C,
                       int OC, int relu)
{
    /* out (B, OC) starts as the bias, then += inp (B, C) @ w^T (C, OC) */
    for (int i = 0; i < B; i++)
        memcpy(out + (size_t)i * OC, b, (size_t)OC * sizeof *out);
    flm_sgemm(0, 1, B, OC, C, 1.0f, inp, C, w, C, 1.0f, out, OC);
    if (relu)
        flm_relu_forward(out, out, (size_t)B * OC);
}

void flm_dense_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int B, int C, int OC)
{
    /* dinp (B, C) = dout (B, OC) @ w (OC, C) */
    if (dinp)
        flm_sgemm(0, 0, B, C, OC, 1.0f, dout, OC, w, C, 0.0f, dinp, C);
    /* dw (OC, C) += dout^T (OC, B) @ inp (B, C) */
    flm_sgemm(1, 0, OC, C, B, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    /* db (OC) += sum over the batch */
    for (int i = 0; i < B; i++) {
        const float *d = dout + (size_t)i * OC;
        for (int o = 0; o < OC; o++)
            db[o] += d[o];
    }
}

/* ---- conv2d --------------------------------------------------------------------------------- */

size_t flm_conv2d_col_floats(int B, int C, int K, int OH, int OW)
{
    return (size_t)B * C * K * K * OH * OW;
}

size_t flm_conv2d_scratch_floats(int B, int C, int OC, int K, int OH, int OW)
{
    (void)B;
    (void)OC;
    return (size_t)C * K * K * OH * OW;
}

/* The output columns [*lo, *hi) of a convolution row whose input column ow + kw - pad lies
 * inside [0, W): for kernel column kw, padding pad, OW output columns (empty: *lo == *hi). */
static inline void valid_cols(int kw, int pad, int W, int OW, int *lo, int *hi)
{
    int a = pad - kw, b = W + pad - kw;
    a = a < 0 ? 0 : a;
    b = b > OW ? OW : b;
    *lo = a;
    *hi = b < a ? a : b;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FLM_LAYERS_AVX512 __attribute__((target("avx512f")))

static int have_avx512f(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

/* Lanes [lo, hi) of the 16 starting at lane `base`, as a mask. */
static inline __mmask16 lane_mask(int lo, int hi, int base)
{
    lo -= base;
    hi -= base;
    lo = lo < 0 ? 0 : lo > 16 ? 16 : lo;
    hi = hi < 0 ? 0 : hi > 16 ? 16 : hi;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

/* im2col and col2im for output rows of at most 32 floats: one masked load and store (two for
 * rows over 16) per output row instead of a short loop with zero edges. Same values, same
 * additions in the same order as the scalar versions below. */
static FLM_LAYERS_AVX512 void im2col_avx512(float *col, size_t ld, const float *inp, int C, int H,
                                            int W, int K, int pad, int OH, int OW)
{
    const __mmask16 s0 = lane_mask(0, OW, 0), s1 = lane_mask(0, OW, 16);
    const __m512 zero = _mm512_setzero_ps();
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                float *row = col + ((size_t)(c * K + kh) * K + kw) * ld;
                int lo, hi;
                valid_cols(kw, pad, W, OW, &lo, &hi);
                const __mmask16 m0 = lane_mask(lo, hi, 0), m1 = lane_mask(lo, hi, 16);
                for (int oh = 0; oh < OH; oh++) {
                    float *dst = row + (size_t)oh * OW;
                    const int ih = oh + kh - pad;
                    if (ih < 0 || ih >= H) {
                        _mm512_mask_storeu_ps(dst, s0, zero);
                        if (OW > 16)
                            _mm512_mask_storeu_ps(dst + 16, s1, zero);
                        continue;
                    }
                    const float *src = inp + ((size_t)c * H + ih) * W + (kw - pad);
                    _mm512_mask_storeu_ps(dst, s0, _mm512_maskz_loadu_ps(m0, src));
                    if (OW > 16)
                        _mm512_mask_storeu_ps(dst + 16, s1, _mm512_maskz_loadu_ps(m1, src + 16));
                }
            }
}

/* dinp (C, H, W) = col2im of dcol, OVERWRITING dinp: each input row (c, ih) is summed in
 * registers over its (kh, kw) contributions, in the (kh, kw) order of the scalar col2im, then
 * stored once (scattering row by row would reload rows just stored at a shifted offset: a
 * store-forwarding stall per row). Needs W <= 32 and OW <= 32. */
static FLM_LAYERS_AVX512 void col2im_avx512(float *dinp, const float *dcol, int C, int H, int W,
                                            int K, int pad, int OH, int OW)
{
    const size_t P = (size_t)OH * OW;
    const __mmask16 w0 = lane_mask(0, W, 0), w1 = lane_mask(0, W, 16);
    for (int c = 0; c < C; c++)
        for (int ih = 0; ih < H; ih++) {
            __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
            for (int kh = 0; kh < K; kh++) {
                const int oh = ih + pad - kh;
                if (oh < 0 || oh >= OH)
                    continue;
                for (int kw = 0; kw < K; kw++) {
                    /* lane iw takes src[ow], ow = iw + pad - kw, for ow in [0, OW), iw in [0, W) */
                    const float *src = dcol + ((size_t)(c * K + kh) * K + kw) * P +
                                       (size_t)oh * OW + (pad - kw);
                    int lo = kw - pad, hi = OW + kw - pad;
                    lo = lo < 0 ? 0 : lo;
                    hi = hi > W ? W : hi;
                    if (hi <= lo)
                        continue;
                    const __mmask16 m0 = lane_mask(lo, hi, 0), m1 = lane_mask(lo, hi, 16);
                    acc0 = _mm512_mask_add_ps(acc0, m0, acc0, _mm512_maskz_loadu_ps(m0, src));
                    if (W > 16)
                        acc1 = _mm512_mask_add_ps(acc1, m1, acc1,
                                                  _mm512_maskz_loadu_ps(m1, src + 16));
                }
            }
            float *dst = dinp + ((size_t)c * H + ih) * W;
            _mm512_mask_storeu_ps(dst, w0, acc0);
            if (W > 16)
                _mm512_mask_storeu_ps(dst + 16, w1, acc1);
        }
}

/* flm_maxpool2d_relu_backward for K = 2 windows that tile the input (H = 2 OH, W = 2 OW): 8
 * windows (16 input columns of a row pair) at a time, every element of dinp written once (no
 * memset pass, no scatter). An element gets 0 + dout of its window where it is the window's
 * argmax and positive, else 0: the same values as the memset + scatter below. */
static FLM_LAYERS_AVX512 void maxpool2_relu_backward_avx512(float *dinp, const float *dout,
                                                            const int32_t *arg, const float *inp,
                                                            int BC, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512 zero = _mm512_setzero_ps();
    for (int bc = 0; bc < BC; bc++) {
        float *dx = dinp + (size_t)bc * H * W;
        const float *x = inp + (size_t)bc * H * W;
        const float *dy = dout + (size_t)bc * OH * OW;
        const int32_t *a = arg + (size_t)bc * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow0 = 0; ow0 < OW; ow0 += 8) {
                const int nw = OW - ow0 < 8 ? OW - ow0 : 8;
                const __mmask16 wm = (__mmask16)((1u << nw) - 1);
                const __mmask16 cm = lane_mask(0, 2 * nw, 0);
                const __m512i av = _mm512_permutexvar_epi32(
                    dup, _mm512_maskz_loadu_epi32(wm, a + oh * OW + ow0));
                const __m512 g = _mm512_add_ps(
                    zero, _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(wm, dy + oh * OW + ow0)));
                const int j0 = 2 * oh * W + 2 * ow0;
                for (int r = 0; r < 2; r++) {
                    const int j = j0 + r * W;
                    const __m512 xv = _mm512_maskz_loadu_ps(cm, x + j);
                    const __mmask16 m =
                        cm & _mm512_cmpeq_epi32_mask(av, _mm512_add_epi32(iota, _mm512_set1_epi32(j))) &
                        _mm512_cmp_ps_mask(xv, zero, _CMP_GT_OQ);
                    _mm512_mask_storeu_ps(dx + j, cm, _mm512_maskz_mov_ps(m, g));
                }
            }
    }
}
#else
static int have_avx512f(void) { return 0; }
static void maxpool2_relu_backward_avx512(float *dinp, const float *dout, const int32_t *arg,
                                          const float *inp, int BC, int H, int W)
{
    (void)dinp; (void)dout; (void)arg; (void)inp; (void)BC; (void)H; (void)W;
}
static void im2col_avx512(float *col, size_t ld, const float *inp, int C, int H, int W, int K,
                          int pad, int OH, int OW)
{
    (void)col; (void)ld; (void)inp; (void)C; (void)H; (void)W; (void)K; (void)pad; (void)OH;
    (void)OW;
}
static void col2im_avx512(float *dinp, const float *dcol, int C, int H, int W, int K, int pad,
                          int OH, int OW)
{
    (void)dinp; (void)dcol; (void)C; (void)H; (void)W; (void)K; (void)pad; (void)OH; (void)OW;
}
#endif

/* col (C*K*K, P) of one sample from inp (C, H, W), rows ld floats apart: row (c, kh, kw),
 * column (oh, ow). */
static void im2col(float *col, size_t ld, const float *inp, int C, int H, int W, int K, int pad,
                   int OH, int OW)
{
    if (OW <= 32 && have_avx512f()) {
        im2col_avx512(col, ld, inp, C, H, W, K, pad, OH, OW);
        return;
    }
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                float *row = col + ((size_t)(c * K + kh) * K + kw) * ld;
                int lo, hi;
                valid_cols(kw, pad, W, OW, &lo, &hi);
                for (int oh = 0; oh < OH; oh++) {
                    float *dst = row + (size_t)oh * OW;
                    const int ih = oh + kh - pad;
                    if (ih < 0 || ih >= H) {
                        memset(dst, 0, (size_t)OW * sizeof *dst);
                        continue;
                    }
                    const float *src = inp + ((size_t)c * H + ih) * W + (kw - pad);
                    for (int ow = 0; ow < lo; ow++)
                        dst[ow] = 0.0f;
                    for (int ow = lo; ow < hi; ow++)
                        dst[ow] = src[ow];
                    for (int ow = hi; ow < OW; ow++)
                        dst[ow] = 0.0f;
                }
            }
}

/* dinp (C, H, W) += scatter of dcol (C*K*K, P); the inverse map of im2col. */
static void col2im(float *dinp, const float *dcol, int C, int H, int W, int K, int pad, int OH,
                   int OW)
{
    const size_t P = (size_t)OH * OW;
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                const float *row = dcol + ((size_t)(c * K + kh) * K + kw) * P;
                int lo, hi;
                valid_cols(kw, pad, W, OW, &lo, &hi);
                for (int oh = 0; oh < OH; oh++) {
                    const int ih = oh + kh - pad;
                    if (ih < 0 || ih >= H)
                        continue;
                    const float *src = row + (size_t)oh * OW;
                    float *dst = dinp + ((size_t)c * H + ih) * W + (kw - pad);
                    for (int ow = lo; ow < hi; ow++)
                        dst[ow] += src[ow];
                }
            }
}

void flm_conv2d_forward(float *out, float *col, const float *inp, const float *w, const float *b,
                        int B, int C, int H, int W, int OC, int K, int pad, int relu)
{
    const int OH = H + 2 * pad - K + 1, OW = W + 2 * pad - K + 1;
    const int P = OH * OW, CKK = C * K * K;
    const size_t BP = (size_t)B * P;
    for (int i = 0; i < B; i++) {
        float *col_i = col + (size_t)i * P;                     /* (CKK, P), row stride B*P */
        float *out_i = out + (size_t)i * OC * P;                /* (OC, P) */
        im2col(col_i, BP, inp + (size_t)i * C * H * W, C, H, W, K, pad, OH, OW);
        /* out_i (OC, P) = w (OC, CKK) @ col_i (CKK, P), then bias (and relu) in one pass */
        flm_sgemm(0, 0, OC, P, CKK, 1.0f, w, CKK, col_i, (int)BP, 0.0f, out_i, P);
        for (int o = 0; o < OC; o++) {
            float *row = out_i + (size_t)o * P;
            const float bo = b[o];
            if (relu)
                for (int p = 0; p < P; p++) {
                    const float v = row[p] + bo;
                    row[p] = v > 0.0f ? v : 0.0f;
                }
            else
                for (int p = 0; p < P; p++)
                    row[p] += bo;
        }
    }
}

/* Sum of x[0..n): 16 interleaved partial sums (lane l takes x[l], x[l + 16], ...), which the
 * compiler vectorizes (one serial chain of float adds cannot be: it is latency-bound), then
 * added in a fixed order: the same bits on every run. */
static float row_sum(const float *x, int n)
{
    enum { L = 16 };
    float acc[L] = {0};
    int p = 0;
    for (; p + L <= n; p += L)
        for (int l = 0; l < L; l++)
            acc[l] += x[p + l];
    for (int l = 0; p + l < n; l++)
        acc[l] += x[p + l];
    for (int w = L / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

void flm_conv2d_backward(float *dinp, float *dw, float *db, float *scratch, const float *dout,
                         const float *col, const float *w, int B, int C, int H, int W, int OC,
                         int K, int pad)
{
    const int OH = H + 2 * pad - K + 1, OW = W + 2 * pad - K + 1;
    const int P = OH * OW, CKK = C * K * K;
    const size_t BP = (size_t)B * P;
    float *dcol = scratch;                                      /* (CKK, P) */
    /* One weight-gradient GEMM per sample, not one over all B*P columns: OpenBLAS splits the
     * long-K batched GEMM differently with 1 and 2 threads (different bits), the per-sample
     * shape it does not, and results must not depend on the thread count. */
    for (int i = 0; i < B; i++) {
        const float *dout_i = dout + (size_t)i * OC * P;        /* (OC, P) */
        for (int o = 0; o < OC; o++)
            db[o] += row_sum(dout_i + (size_t)o * P, P);
        /* dw (OC, CKK) += dout_i (OC, P) @ col_i^T (P, CKK) */
        flm_sgemm(0, 1, OC, CKK, P, 1.0f, dout_i, P, col + (size_t)i * P, (int)BP, 1.0f, dw, CKK);
    }
    if (!dinp)
        return;
    const int avx512 = have_avx512f();
    for (int i = 0; i < B; i++) {
        /* dcol (CKK, P) = w^T (CKK, OC) @ dout_i (OC, P), then scattered back */
        flm_sgemm(1, 0, CKK, P, OC, 1.0f, w, CKK, dout + (size_t)i * OC * P, P, 0.0f, dcol, P);
        float *dinp_i = dinp + (size_t)i * C * H * W;
        if (W <= 32 && OW <= 32 && avx512) {
            col2im_avx512(dinp_i, dcol, C, H, W, K, pad, OH, OW); /* overwrites */
            continue;
        }
        memset(dinp_i, 0, (size_t)C * H * W * sizeof *dinp_i);
        col2im(dinp_i, dcol, C, H, W, K, pad, OH, OW);
    }
}

/* ---- maxpool2d ------------------------------------------------------------------------------ */

void flm_maxpool2d_forward(float *out, int32_t *arg, const float *inp, int B, int C, int H, int W,
                           int K)
{
    const int OH = H / K, OW = W / K;
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = inp + (size_t)bc * H * W;
        float *y = out + (size_t)bc * OH * OW;
        int32_t *a = arg + (size_t)bc * OH * OW;
        if (K == 2) { /* the common window, unrolled; same tie and NaN rules as below */
            for (int oh = 0; oh < OH; oh++) {
                const float *r0 = x + (size_t)(2 * oh) * W, *r1 = r0 + W;
                for (int ow = 0; ow < OW; ow++) {
                    const int j = 2 * oh * W + 2 * ow;
                    int best = j;
                    float m = r0[2 * ow];
                    if (r0[2 * ow + 1] > m || isnan(r0[2 * ow + 1])) {
                        m = r0[2 * ow + 1];
                        best = j + 1;
                    }
                    if (r1[2 * ow] > m || isnan(r1[2 * ow])) {
                        m = r1[2 * ow];
                        best = j + W;
                    }
                    if (r1[2 * ow + 1] > m || isnan(r1[2 * ow + 1])) {
                        m = r1[2 * ow + 1];
                        best = j + W + 1;
                    }
                    y[oh * OW + ow] = m;
                    a[oh * OW + ow] = best;
                }
            }
            continue;
        }
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                int best = oh * K * W + ow * K;
                float m = x[best];
                for (int kh = 0; kh < K; kh++)
                    for (int kw = 0; kw < K; kw++) {
                        const int j = (oh * K + kh) * W + ow * K + kw;
                        if (x[j] > m || isnan(x[j])) {
                            m = x[j];
                            best = j;
                        }
                    }
                y[oh * OW + ow] = m;
                a[oh * OW + ow] = best;
            }
    }
}

void flm_maxpool2d_backward(float *dinp, const float *dout, const int32_t *arg, int B, int C,
                            int H, int W, int K)
{
    const int OH = H / K, OW = W / K;
    memset(dinp, 0, (size_t)B * C * H * W * sizeof *dinp);
    for (int bc = 0; bc < B * C; bc++) {
        float *dx = dinp + (size_t)bc * H * W;
        const float *dy = dout + (size_t)bc * OH * OW;
        const int32_t *a = arg + (size_t)bc * OH * OW;
        for (int j = 0; j < OH * OW; j++)
            dx[a[j]] += dy[j];
    }
}

void flm_maxpool2d_relu_backward(float *dinp, const float *dout, const int32_t *arg,
                                 const float *inp, int B, int C, int H, int W, int K)
{
    const int OH = H / K, OW = W / K;
    if (K == 2 && H == 2 * OH && W == 2 * OW && have_avx512f()) {
        maxpool2_relu_backward_avx512(dinp, dout, arg, inp, B * C, H, W);
        return;
    }
    memset(dinp, 0, (size_t)B * C * H * W * sizeof *dinp);
    for (int bc = 0; bc < B * C; bc++) {
        float *dx = dinp + (size_t)bc * H * W;
        const float *x = inp + (size_t)bc * H * W;
        const float *dy = dout + (size_t)bc * OH * OW;
        const int32_t *a = arg + (size_t)bc * OH * OW;
        for (int j = 0; j < OH * OW; j++)
            if (x[a[j]] > 0.0f)
                dx[a[j]] += dy[j];
    }
}

/* ---- relu, last step ------------------------------------------------------------------------ */

void flm_relu_forward(float *out, const float *inp, size_t N)
{
    for (size_t i = 0; i < N; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void flm_relu_backward(float *dinp, const float *dout, const float *out, size_t N)
{
    /* Both loads unconditional, so that the compiler makes a branch-free select of it (a blend,
     * vectorized): with the load inside the condition it kept a branch per element, and a relu's
     * signs are a coin toss, so about every other element was a mispredicted branch (a tenth of the
     * mlp's local training in a profile). Same values: dout[i] where out[i] > 0, else +0. dinp may be dout. */
    for (size_t i = 0; i < N; i++) {
        const float d = dout[i];
        dinp[i] = out[i] > 0.0f ? d : 0.0f;
    }
}

void flm_last_step_forward(float *out, const float *inp, int B, int T, int C)
{
    for (int i = 0; i < B; i++)
        memcpy(out + (size_t)i * C, inp + ((size_t)i * T + (T - 1)) * C, (size_t)C * sizeof *out);
}

void flm_last_step_backward(float *dinp, const float *dout, int B, int T, int C)
{
    memset(dinp, 0, (size_t)B * T * C * sizeof *dinp);
    for (int i = 0; i < B; i++)
        memcpy(dinp + ((size_t)i * T + (T - 1)) * C, dout + (size_t)i * C, (size_t)C * sizeof *dinp);
}

/* ---- softmax cross-entropy ------------------------------------------------------------------ */

double flm_softmax_xent(float *dlogits, const float *logits, const int32_t *labels, int B, int V)
{
    double loss = 0.0;
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * V;
        float m = -FLT_MAX;
        for (int v = 0; v < V; v++)
            m = z[v] > m ? z[v] : m;
        double s = 0.0;
        for (int v = 0; v < V; v++)
            s += exp((double)z[v] - m);
        const double lse = log(s) + m;
        loss += lse - z[labels[i]];
        if (dlogits) {
            float *d = dlogits + (size_t)i * V;
            const int y = labels[i];
            for (int v = 0; v < V; v++) {
                const double p = exp((double)z[v] - lse);
                d[v] = (float)((p - (v == y ? 1.0 : 0.0)) / B);
            }
        }
    }
    return loss / B;
}
