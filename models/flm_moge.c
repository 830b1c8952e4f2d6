#include "flm_moge.h"

#include <math.h>
#include <string.h>

#include "flm_blas.h"
#include "flm_layers.h"

int flm_moge_active(int N, int G, int K)
{
    const int E = N / G;
    return K < E ? K : E;
}

size_t flm_moge_cache_floats(int B, int N, int G, int K, int OC)
{
    const size_t GK = (size_t)G * flm_moge_active(N, G, K);
    return (size_t)B * N + (size_t)B * GK * OC;
}

size_t flm_moge_route_ints(int B, int N, int G, int K)
{
    const size_t GK = (size_t)G * flm_moge_active(N, G, K);
    return (size_t)B * GK + 2 * (size_t)B;
}

size_t flm_moge_scratch_floats(int B, int C, int N, int OC)
{
    return (size_t)B * ((size_t)N + 2 * (size_t)C + (size_t)OC);
}

/* The samples routed to expert e: rows[r] the sample, slots[r] where e sits in its selection.
 * Returns their number. A sample selects an expert at most once (one group, distinct picks). */
static int routed(int32_t *rows, int32_t *slots, const int32_t *sel, int B, int GK, int e)
{
    int n = 0;
    for (int i = 0; i < B; i++)
        for (int s = 0; s < GK; s++)
            if (sel[(size_t)i * GK + s] == e) {
                rows[n] = i;
                slots[n] = s;
                n++;
                break;
            }
    return n;
}

void flm_moge_forward(float *out, float *cache, int32_t *route, float *scratch, const float *inp,
                      const float *gate_w, const float *gate_b, const float *w, const float *b,
                      int B, int C, int N, int G, int K, int OC)
{
    const int E = N / G, Ka = flm_moge_active(N, G, K), GK = G * Ka;
    float *P = cache;                         /* (B, N): z, then softmax(z) */
    float *Hs = cache + (size_t)B * N;        /* (B, GK, OC) */
    int32_t *sel = route;                     /* (B, GK) */
    int32_t *rows = route + (size_t)B * GK, *slots = rows + B;
    float *Xe = scratch, *He = scratch + (size_t)B * C; /* (n, C), (n, OC) */

    flm_dense_forward(P, inp, gate_w, gate_b, B, C, N, 0);
    for (int i = 0; i < B; i++) {
        float *z = P + (size_t)i * N;
        int32_t *si = sel + (size_t)i * GK;
        /* per group, the Ka largest z by selection (Ka and E are small); ties to the lower
         * index; the picks stay distinct even where z holds a NaN */
        for (int g = 0; g < G; g++)
            for (int s = 0; s < Ka; s++) {
                int best = -1;
                for (int j = g * E; j < (g + 1) * E; j++) {
                    int taken = 0;
                    for (int t = 0; t < s; t++)
                        taken |= si[g * Ka + t] == j;
                    if (!taken && (best < 0 || z[j] > z[best]))
                        best = j;
                }
                si[g * Ka + s] = best;
            }
        float m = z[0];
        for (int j = 1; j < N; j++)
            m = z[j] > m ? z[j] : m;
        double sum = 0.0;
        for (int j = 0; j < N; j++) {
            z[j] = expf(z[j] - m);
            sum += z[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int j = 0; j < N; j++)
            z[j] *= inv;
    }
    memset(out, 0, (size_t)B * OC * sizeof *out);
    /* expert by expert, in index order: the sum's order is fixed, so the same bits every run */
    for (int e = 0; e < N; e++) {
        const int n = routed(rows, slots, sel, B, GK, e);
        if (n == 0)
            continue;
        for (int r = 0; r < n; r++) {
            memcpy(Xe + (size_t)r * C, inp + (size_t)rows[r] * C, (size_t)C * sizeof *Xe);
            float *h = He + (size_t)r * OC;
            for (int o = 0; o < OC; o++)
                h[o] = b[(size_t)o * N + e];
        }
        flm_sgemm(0, 1, n, OC, C, 1.0f, Xe, C, w + (size_t)e * C, N * C, 1.0f, He, OC);
        for (int r = 0; r < n; r++) {
            const int i = rows[r];
            const float pe = P[(size_t)i * N + e];
            const float *h = He + (size_t)r * OC;
            memcpy(Hs + ((size_t)i * GK + slots[r]) * OC, h, (size_t)OC * sizeof *h);
            float *y = out + (size_t)i * OC;
            for (int o = 0; o < OC; o++)
                y[o] += pe * h[o];
        }
    }
}

/* The backward; the experts' part either accumulates their gradient into dw/db (alpha 1, decay 1)
 * or, for a fused SGD step, updates the weights in place: w = decay w + alpha grad (dw == w). */
static void backward(float *dinp, float *dgate_w, float *dgate_b, float *dw, float *db,
                     float *scratch, int32_t *route, const float *dout, const float *cache,
                     const float *inp, const float *gate_w, const float *w, int B, int C, int N,
                     int G, int K, int OC, float alpha, float decay)
{
    const int GK = G * flm_moge_active(N, G, K);
    const float *P = cache, *Hs = cache + (size_t)B * N;
    const int32_t *sel = route;
    int32_t *rows = route + (size_t)B * GK, *slots = rows + B;
    float *dZ = scratch;                                /* (B, N) */
    float *Xe = dZ + (size_t)B * N;                     /* (n, C) */
    float *dXe = Xe + (size_t)B * C;                    /* (n, C) */
    float *dHe = dXe + (size_t)B * C;                   /* (n, OC) */

    /* dp[e] = <dout, h_e> for the selected experts (0 for the others), then through the softmax:
     * dz[j] = p[j] (dp[j] - sum_k p[k] dp[k]) */
    for (int i = 0; i < B; i++) {
        const float *p = P + (size_t)i * N, *d = dout + (size_t)i * OC;
        float *dz = dZ + (size_t)i * N;
        memset(dz, 0, (size_t)N * sizeof *dz);
        double pdp = 0.0;
        for (int s = 0; s < GK; s++) {
            const int e = sel[(size_t)i * GK + s];
            const float *h = Hs + ((size_t)i * GK + s) * OC;
            double dp = 0.0;
            for (int o = 0; o < OC; o++)
                dp += (double)d[o] * h[o];
            dz[e] = (float)dp;
            pdp += (double)p[e] * dp;
        }
        for (int j = 0; j < N; j++)
            dz[j] = (float)((double)p[j] * ((double)dz[j] - pdp));
    }
    /* the gate: overwrites dinp, which the experts then add to */
    flm_dense_backward(dinp, dgate_w, dgate_b, dZ, inp, gate_w, B, C, N);
    for (int e = 0; e < N; e++) {
        const int n = routed(rows, slots, sel, B, GK, e);
        for (int r = 0; r < n; r++) {
            const int i = rows[r];
            const float pe = P[(size_t)i * N + e];
            const float *d = dout + (size_t)i * OC;
            float *dh = dHe + (size_t)r * OC;
            memcpy(Xe + (size_t)r * C, inp + (size_t)i * C, (size_t)C * sizeof *Xe);
            for (int o = 0; o < OC; o++)
                dh[o] = pe * d[o];
        }
        /* dinp first: it reads W_e as it was before a fused step writes it */
        if (dinp && n > 0) {
            flm_sgemm(0, 0, n, C, OC, 1.0f, dHe, OC, w + (size_t)e * C, N * C, 0.0f, dXe, C);
            for (int r = 0; r < n; r++) {
                float *dx = dinp + (size_t)rows[r] * C;
                const float *s = dXe + (size_t)r * C;
                for (int c = 0; c < C; c++)
                    dx[c] += s[c];
            }
        }
        if (decay != 1.0f) /* weight decay reaches the experts no sample chose, too */
            for (int o = 0; o < OC; o++) {
                float *we = dw + ((size_t)o * N + e) * C;
                for (int c = 0; c < C; c++)
                    we[c] *= decay;
                db[(size_t)o * N + e] *= decay;
            }
        if (n == 0)
            continue;
        /* W_e (OC, C) += alpha dHe^T Xe, in place in the strided layout */
        flm_sgemm(1, 0, OC, C, n, alpha, dHe, OC, Xe, C, 1.0f, dw + (size_t)e * C, N * C);
        for (int o = 0; o < OC; o++) {
            float sum = 0.0f;
            for (int r = 0; r < n; r++)
                sum += dHe[(size_t)r * OC + o];
            db[(size_t)o * N + e] += alpha * sum;
        }
    }
}

void flm_moge_backward(float *dinp, float *dgate_w, float *dgate_b, float *dw, float *db,
                       float *scratch, int32_t *route, const float *dout, const float *cache,
                       const float *inp, const float *gate_w, const float *w, int B, int C, int N,
                       int G, int K, int OC)
{
    backward(dinp, dgate_w, dgate_b, dw, db, scratch, route, dout, cache, inp, gate_w, w, B, C, N,
             G, K, OC, 1.0f, 1.0f);
}

void flm_moge_backward_step(float *dinp, float *dgate_w, float *dgate_b, float *w, float *b,
                            float *scratch, int32_t *route, const float *dout, const float *cache,
                            const float *inp, const float *gate_w, int B, int C, int N, int G,
                            int K, int OC, float alpha, float decay)
{
    backward(dinp, dgate_w, dgate_b, w, b, scratch, route, dout, cache, inp, gate_w, w, B, C, N, G,
             K, OC, alpha, decay);
}
