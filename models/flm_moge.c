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
    return 3 * (size_t)B * GK + (size_t)N + 1;
}

size_t flm_moge_scratch_floats(int B, int C, int N, int OC)
{
    return (size_t)B * ((size_t)N + 2 * (size_t)C + (size_t)OC);
}

/* The gate's order: a before b when its logit is larger, or equal and its index lower; a NaN
 * logit counts as -inf, so that the order is total and the picks distinct whatever z holds. */
static int before(const float *z, int a, int b)
{
    const float za = isnan(z[a]) ? -INFINITY : z[a], zb = isnan(z[b]) ? -INFINITY : z[b];
    return za > zb || (za == zb && a < b);
}

/* route: sel (B, GK), then the samples of each expert in a counting sort of sel: expert e's are
 * entries [off[e], off[e+1]) of rows / slots (the sample, and where e sits in its selection). */
typedef struct routing {
    int32_t *sel, *off, *rows, *slots;
} routing;

static routing routing_of(int32_t *route, int B, int N, int GK)
{
    routing r;
    r.sel = route;
    r.off = route + (size_t)B * GK;
    r.rows = r.off + N + 1;
    r.slots = r.rows + (size_t)B * GK;
    return r;
}

void flm_moge_forward(float *out, float *cache, int32_t *route, float *scratch, const float *inp,
                      const float *gate_w, const float *gate_b, const float *w, const float *b,
                      int B, int C, int N, int G, int K, int OC)
{
    const int E = N / G, Ka = flm_moge_active(N, G, K), GK = G * Ka;
    float *P = cache;                         /* (B, N): z, then softmax(z) */
    float *Hs = cache + (size_t)B * N;        /* (B, GK, OC) */
    const routing rt = routing_of(route, B, N, GK);
    float *Xe = scratch, *He = scratch + (size_t)B * C; /* (n, C), (n, OC) */

    flm_dense_forward(P, inp, gate_w, gate_b, B, C, N, 0);
    for (int i = 0; i < B; i++) {
        float *z = P + (size_t)i * N;
        int32_t *si = rt.sel + (size_t)i * GK;
        /* per group, the Ka first in the gate's order: each pick is the first of those after the
         * previous one, Ka scans of the group's E logits */
        for (int g = 0; g < G; g++)
            for (int s = 0; s < Ka; s++) {
                int best = -1;
                for (int j = g * E; j < (g + 1) * E; j++)
                    if ((s == 0 || before(z, si[g * Ka + s - 1], j)) &&
                        (best < 0 || before(z, j, best)))
                        best = j;
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
    /* bucket the (sample, slot) pairs by expert, samples in increasing order within each */
    memset(rt.off, 0, ((size_t)N + 1) * sizeof *rt.off);
    for (size_t q = 0; q < (size_t)B * GK; q++)
        rt.off[rt.sel[q] + 1]++;
    for (int e = 0; e < N; e++)
        rt.off[e + 1] += rt.off[e];
    for (int i = 0; i < B; i++)
        for (int s = 0; s < GK; s++) {
            const int e = rt.sel[(size_t)i * GK + s];
            const int32_t at = rt.off[e]++;
            rt.rows[at] = i;
            rt.slots[at] = s;
        }
    for (int e = N; e > 0; e--) /* the fill moved every start to the next expert's */
        rt.off[e] = rt.off[e - 1];
    rt.off[0] = 0;
    memset(out, 0, (size_t)B * OC * sizeof *out);
    /* expert by expert, in index order: the sum's order is fixed, so the same bits every run */
    for (int e = 0; e < N; e++) {
        const int32_t *rows = rt.rows + rt.off[e], *slots = rt.slots + rt.off[e];
        const int n = rt.off[e + 1] - rt.off[e];
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

double flm_moge_aux_loss(const float *cache, const int32_t *route, int B, int N, int G, int K,
                         float aux)
{
    if (aux == 0.0f)
        return 0.0;
    const int GK = G * flm_moge_active(N, G, K);
    const routing rt = routing_of((int32_t *)route, B, N, GK);
    /* N sum_e f_e P_e = N / (B G K' B) sum_e picks_e sum_i p_i[e], in index order */
    double s = 0.0;
    for (int e = 0; e < N; e++) {
        double pe = 0.0;
        for (int i = 0; i < B; i++)
            pe += cache[(size_t)i * N + e];
        s += (double)(rt.off[e + 1] - rt.off[e]) * pe;
    }
    return (double)aux * N * s / ((double)B * GK * B);
}

/* The backward; the experts' part either accumulates their gradient into dw/db (alpha 1, decay 1)
 * or, for a fused SGD step, updates the weights in place: w = decay w + alpha grad (dw == w). */
static void backward(float *dinp, float *dgate_w, float *dgate_b, float *dw, float *db,
                     float *scratch, const int32_t *route, const float *dout, const float *cache,
                     const float *inp, const float *gate_w, const float *w, int B, int C, int N,
                     int G, int K, int OC, float aux, float alpha, float decay)
{
    const int GK = G * flm_moge_active(N, G, K);
    const float *P = cache, *Hs = cache + (size_t)B * N;
    const routing rt = routing_of((int32_t *)route, B, N, GK);
    /* d L_aux / d p_i[e] = aux N f_e / B = gaux picks_e */
    const double gaux = (double)aux * N / ((double)B * GK * B);
    const int32_t *sel = rt.sel;
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
        if (aux != 0.0f) /* the load-balancing loss reaches every expert's p, picked or not */
            for (int j = 0; j < N; j++) {
                const double g = gaux * (double)(rt.off[j + 1] - rt.off[j]);
                dz[j] = (float)((double)dz[j] + g);
                pdp += (double)p[j] * g;
            }
        for (int j = 0; j < N; j++)
            dz[j] = (float)((double)p[j] * ((double)dz[j] - pdp));
    }
    /* the gate: overwrites dinp, which the experts then add to */
    flm_dense_backward(dinp, dgate_w, dgate_b, dZ, inp, gate_w, B, C, N);
    for (int e = 0; e < N; e++) {
        const int32_t *rows = rt.rows + rt.off[e];
        const int n = rt.off[e + 1] - rt.off[e];
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
                       float *scratch, const int32_t *route, const float *dout, const float *cache,
                       const float *inp, const float *gate_w, const float *w, int B, int C, int N,
                       int G, int K, int OC, float aux)
{
    backward(dinp, dgate_w, dgate_b, dw, db, scratch, route, dout, cache, inp, gate_w, w, B, C, N,
             G, K, OC, aux, 1.0f, 1.0f);
}

void flm_moge_backward_step(float *dinp, float *dgate_w, float *dgate_b, float *w, float *b,
                            float *scratch, const int32_t *route, const float *dout,
                            const float *cache, const float *inp, const float *gate_w, int B,
                            int C, int N, int G, int K, int OC, float aux, float alpha,
                            float decay)
{
    backward(dinp, dgate_w, dgate_b, w, b, scratch, route, dout, cache, inp, gate_w, w, B, C, N, G,
             K, OC, aux, alpha, decay);
}
