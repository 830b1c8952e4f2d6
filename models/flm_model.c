#include "flm_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fl_mem.h"
#include "flm_blas.h"
#include "flm_layers.h"
#include "flm_moge.h"
#ifdef FLM_HAVE_LSTM
#include "flm_lstm.h"
#endif

struct flm_model {
    flm_arch a;
    int Bmax;
    int eval_only;       /* flm_model_new_eval: forward only, no backward buffers */
    int n;               /* samples of the last forward */
    int have_labels;     /* the last forward had labels: backward allowed */
    double last_aux;     /* the last labelled forward's MoGE load-balancing losses, summed */
    size_t D;            /* floats per float input sample */
    int T;               /* tokens per token sample */
    /* inputs of the last forward (the caller's or the staging buffers below) */
    const float *x;
    const int32_t *tok;
    const int32_t *y;
    float *x_stage;      /* (B, D) */
    int32_t *tok_stage;  /* (B, T) */
    int32_t *y_stage;    /* (B) */
    /* per layer: output and its gradient (relu and flatten alias their input's buffers); an
     * evaluation runtime has no gradients, and its layers' outputs take two buffers in turn */
    float *act[FLM_MAX_LAYERS];
    float *dact[FLM_MAX_LAYERS];
    int fused_relu[FLM_MAX_LAYERS]; /* conv / dense whose next layer is a relu: fused */
    int32_t *arg[FLM_MAX_LAYERS];   /* maxpool argmax / MoGE routing */
    float *cache[FLM_MAX_LAYERS];   /* conv im2col / LSTM / MoGE cache (evaluation runtime: one
                                     * buffer for all layers, a conv's im2col of one sample) */
    float *scratch;                 /* conv / LSTM / MoGE scratch, max over layers */
    float *grads;                   /* (n_params); NULL in an evaluation runtime */
    float *vel;                     /* (n_params) SGD momentum, made at first use */
    size_t bytes;
    void *blocks[4 * FLM_MAX_LAYERS + 8];
    int n_blocks;
};

static void *model_alloc(flm_model *m, size_t bytes)
{
    if (bytes == 0)
        bytes = sizeof(float);
    /* 64-byte aligned for the GEMM kernels; a large block in pages of its own, which go back to
     * the system when the model is freed (fl_big_alloc: a client frees its model between rounds) */
    const size_t sz = (bytes + 63) & ~(size_t)63;
    void *p = fl_big_alloc(sz); /* zeroed */
    if (!p)
        return NULL;
    m->blocks[m->n_blocks++] = p;
    m->bytes += sz;
    return p;
}

static size_t out_floats(const flm_layer *l)
{
    return (size_t)l->OC * l->OH * l->OW;
}

void flm_model_free(flm_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_blocks; i++)
        fl_big_free(m->blocks[i]);
    free(m);
}

/* The evaluation runtime's buffers: what a forward alone writes. Every layer but relu and
 * flatten (which work in place on their input's buffer, as in the training runtime) writes its
 * output into the other of two buffers than the one its input is in, so two buffers sized by the
 * layers that take each hold every output; maxpool's argmax and MoGE's routing share one int
 * buffer, and the conv (one sample's im2col at a time), LSTM (flm_lstm_forward_eval) and MoGE
 * caches one float buffer, as they are only read within their layer's forward. */
static int alloc_eval(flm_model *m, const flm_arch *a, int B)
{
    const size_t Bz = (size_t)B;
    size_t side_n[2] = {0, 0}, ints = 0, cache = 0, scratch = 0;
    int side[FLM_MAX_LAYERS];
    int cur = 1; /* the side of the last output written; the input is in neither */
    for (int i = 0; i < a->n_layers; i++) {
        const flm_layer *l = &a->layers[i];
        const size_t N = Bz * out_floats(l);
        if (i > 0 && (l->op == FLM_OP_RELU || l->op == FLM_OP_FLATTEN)) {
            side[i] = cur;
        } else {
            cur = side[i] = 1 - cur;
            side_n[cur] = N > side_n[cur] ? N : side_n[cur];
        }
        if ((l->op == FLM_OP_DENSE || l->op == FLM_OP_CONV2D) && i + 1 < a->n_layers &&
            a->layers[i + 1].op == FLM_OP_RELU)
            m->fused_relu[i] = 1;
        size_t c = 0, r = 0, s = 0;
        if (l->op == FLM_OP_MAXPOOL2D)
            r = N;
        if (l->op == FLM_OP_CONV2D)
            c = flm_conv2d_col_floats(1, l->C, l->K, l->OH, l->OW);
        if (l->op == FLM_OP_MOGE) {
            c = flm_moge_cache_floats(B, l->experts, l->groups, l->topk, l->OC);
            r = flm_moge_route_ints(B, l->experts, l->groups, l->topk);
            s = flm_moge_scratch_floats(B, l->C, l->experts, l->OC);
        }
#ifdef FLM_HAVE_LSTM
        if (l->op == FLM_OP_LSTM)
            c = flm_lstm_eval_floats(B, l->H, l->OC);
#endif
        cache = c > cache ? c : cache;
        ints = r > ints ? r : ints;
        scratch = s > scratch ? s : scratch;
    }
    float *buf[2];
    int32_t *arg;
    float *cbuf;
    if (!(buf[0] = model_alloc(m, side_n[0] * sizeof(float))) ||
        !(buf[1] = model_alloc(m, side_n[1] * sizeof(float))) ||
        !(arg = model_alloc(m, ints * sizeof(int32_t))) ||
        !(cbuf = model_alloc(m, cache * sizeof(float))) ||
        !(m->scratch = model_alloc(m, scratch * sizeof(float))))
        return 0;
    for (int i = 0; i < a->n_layers; i++) {
        m->act[i] = buf[side[i]];
        m->arg[i] = arg;
        m->cache[i] = cbuf;
    }
    return 1;
}

static fl_status model_new(const flm_arch *a, int B, int eval, flm_model **out)
{
    if (!a || !out || B < 1 || a->n_layers < 1)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
#ifndef FLM_HAVE_LSTM
    if (a->token_input)
        return FL_ERR_UNSUPPORTED;
#endif
    (void)flm_blas_init(); /* FL_ERR_BLAS is not fatal: the reference GEMM runs */
    flm_model *m = calloc(1, sizeof *m);
    if (!m)
        return FL_ERR_NOMEM;
    m->a = *a;
    m->Bmax = B;
    m->D = (size_t)a->in_C * a->in_H * a->in_W;
    m->T = a->in_H;
    const size_t Bz = (size_t)B;
    int ok = 1;
    if (a->token_input) {
        ok &= (m->tok_stage = model_alloc(m, Bz * m->T * sizeof(int32_t))) != NULL;
    } else {
        ok &= (m->x_stage = model_alloc(m, Bz * m->D * sizeof(float))) != NULL;
    }
    ok &= (m->y_stage = model_alloc(m, Bz * sizeof(int32_t))) != NULL;
    m->eval_only = eval;
    if (eval) {
        if (!ok || !alloc_eval(m, a, B)) {
            flm_model_free(m);
            return FL_ERR_NOMEM;
        }
        *out = m;
        return FL_OK;
    }
    size_t scratch = 0;
    for (int i = 0; i < a->n_layers && ok; i++) {
        const flm_layer *l = &a->layers[i];
        const size_t N = Bz * out_floats(l);
        switch (l->op) {
        case FLM_OP_RELU:
        case FLM_OP_FLATTEN:
            if (i == 0) { /* nothing to alias: give it its own buffers */
                ok &= (m->act[i] = model_alloc(m, N * sizeof(float))) != NULL;
                ok &= (m->dact[i] = model_alloc(m, N * sizeof(float))) != NULL;
            } else {
                m->act[i] = m->act[i - 1];
                m->dact[i] = m->dact[i - 1];
            }
            break;
        default:
            ok &= (m->act[i] = model_alloc(m, N * sizeof(float))) != NULL;
            ok &= (m->dact[i] = model_alloc(m, N * sizeof(float))) != NULL;
            break;
        }
        if (!ok)
            break;
        if ((l->op == FLM_OP_DENSE || l->op == FLM_OP_CONV2D) && i + 1 < a->n_layers &&
            a->layers[i + 1].op == FLM_OP_RELU)
            m->fused_relu[i] = 1;
        if (l->op == FLM_OP_MAXPOOL2D)
            ok &= (m->arg[i] = model_alloc(m, N * sizeof(int32_t))) != NULL;
        if (l->op == FLM_OP_CONV2D) {
            ok &= (m->cache[i] = model_alloc(
                       m, flm_conv2d_col_floats(B, l->C, l->K, l->OH, l->OW) * sizeof(float))) != NULL;
            const size_t s = flm_conv2d_scratch_floats(B, l->C, l->OC, l->K, l->OH, l->OW);
            scratch = s > scratch ? s : scratch;
        }
        if (l->op == FLM_OP_MOGE) {
            ok &= (m->cache[i] = model_alloc(m, flm_moge_cache_floats(B, l->experts, l->groups,
                                                                      l->topk, l->OC) *
                                                    sizeof(float))) != NULL;
            ok &= (m->arg[i] = model_alloc(m, flm_moge_route_ints(B, l->experts, l->groups,
                                                                  l->topk) *
                                                  sizeof(int32_t))) != NULL;
            const size_t s = flm_moge_scratch_floats(B, l->C, l->experts, l->OC);
            scratch = s > scratch ? s : scratch;
        }
#ifdef FLM_HAVE_LSTM
        if (l->op == FLM_OP_LSTM) {
            ok &= (m->cache[i] = model_alloc(m, flm_lstm_cache_floats(B, l->H, l->OC) *
                                                    sizeof(float))) != NULL;
            const size_t s = flm_lstm_scratch_floats(B, l->H, l->C, l->OC);
            scratch = s > scratch ? s : scratch;
        }
#endif
    }
    if (ok)
        ok &= (m->scratch = model_alloc(m, scratch * sizeof(float))) != NULL;
    if (ok)
        ok &= (m->grads = model_alloc(m, a->n_params * sizeof(float))) != NULL;
    if (!ok) {
        flm_model_free(m);
        return FL_ERR_NOMEM;
    }
    *out = m;
    return FL_OK;
}

fl_status flm_model_new(const flm_arch *a, int B, flm_model **out)
{
    return model_new(a, B, 0, out);
}

fl_status flm_model_new_eval(const flm_arch *a, int B, flm_model **out)
{
    return model_new(a, B, 1, out);
}

const flm_arch *flm_model_arch(const flm_model *m) { return &m->a; }
int flm_model_max_batch(const flm_model *m) { return m->Bmax; }
size_t flm_model_bytes(const flm_model *m) { return m->bytes + sizeof *m; }
float *flm_model_grads(flm_model *m) { return m->grads; }

float *flm_model_velocity(flm_model *m)
{
    if (!m->vel && !m->eval_only)
        m->vel = model_alloc(m, m->a.n_params * sizeof(float));
    return m->vel;
}

void flm_model_init_params(const flm_arch *a, float *params, fl_rng *r)
{
    for (int t = 0; t < a->n_tensors; t++) {
        const flm_tensor *ten = &a->tensors[t];
        const flm_layer *l = &a->layers[ten->layer];
        float *p = params + ten->offset;
        double bound;
        switch (l->op) {
        case FLM_OP_EMBEDDING:
            for (size_t i = 0; i < ten->numel; i++)
                p[i] = (float)fl_rng_normal(r);
            continue;
        case FLM_OP_LSTM:
            bound = 1.0 / sqrt((double)l->OC);
            for (size_t i = 0; i < ten->numel; i++) {
                double v = (2.0 * fl_rng_uniform(r) - 1.0) * bound;
                if (ten->role == FLM_ROLE_B)
                    v += (2.0 * fl_rng_uniform(r) - 1.0) * bound;
                p[i] = (float)v;
            }
            continue;
        case FLM_OP_CONV2D:
            bound = 1.0 / sqrt((double)l->C * l->K * l->K);
            break;
        default:
            bound = 1.0 / sqrt((double)l->C);
            break;
        }
        for (size_t i = 0; i < ten->numel; i++)
            p[i] = (float)((2.0 * fl_rng_uniform(r) - 1.0) * bound);
    }
}

/* A MoGE layer's load-balancing coefficient (flm_moge.h): its spec's AUX. */
static float moge_aux(const flm_layer *l)
{
    return (float)(l->aux_ppm / 1e6);
}

static const float *tensor(const flm_model *m, const float *params, const flm_layer *l, int k)
{
    return params + m->a.tensors[l->tensor0 + k].offset;
}

fl_status flm_model_forward(flm_model *m, const float *params, const float *x,
                            const int32_t *tokens, const int32_t *labels, int n, float *loss)
{
    if (!m || !params || n < 1 || n > m->Bmax)
        return FL_ERR_INVALID_ARG;
    const flm_arch *a = &m->a;
    m->have_labels = 0;
    if (a->token_input) {
        if (!tokens)
            return FL_ERR_INVALID_ARG;
        const int V = a->layers[0].C;
        for (size_t i = 0; i < (size_t)n * m->T; i++)
            if (tokens[i] < 0 || tokens[i] >= V)
                return FL_ERR_INVALID_ARG;
    } else if (!x) {
        return FL_ERR_INVALID_ARG;
    }
    if (labels)
        for (int i = 0; i < n; i++)
            if (labels[i] < 0 || labels[i] >= a->classes)
                return FL_ERR_INVALID_ARG;
    m->n = n;
    m->x = x;
    m->tok = tokens;
    m->y = labels;
    const float *inp = x;
    double aux = 0.0; /* the MoGE layers' load-balancing losses: minimised by the backward, not
                         reported */
    for (int i = 0; i < a->n_layers; i++) {
        const flm_layer *l = &a->layers[i];
        float *out = m->act[i];
        switch (l->op) {
        case FLM_OP_DENSE:
            flm_dense_forward(out, inp, tensor(m, params, l, 0), tensor(m, params, l, 1), n, l->C,
                              l->OC, m->fused_relu[i]);
            break;
        case FLM_OP_CONV2D:
            if (m->eval_only) {
                /* sample by sample through one sample's im2col: the very GEMM of each sample
                 * (flm_conv2d_forward runs one per sample), only its B operand's row stride
                 * differs */
                const size_t in_n = (size_t)l->C * l->H * l->W, out_n = out_floats(l);
                for (int j = 0; j < n; j++)
                    flm_conv2d_forward(out + (size_t)j * out_n, m->cache[i], inp + (size_t)j * in_n,
                                       tensor(m, params, l, 0), tensor(m, params, l, 1), 1, l->C,
                                       l->H, l->W, l->OC, l->K, l->pad, m->fused_relu[i]);
                break;
            }
            flm_conv2d_forward(out, m->cache[i], inp, tensor(m, params, l, 0),
                               tensor(m, params, l, 1), n, l->C, l->H, l->W, l->OC, l->K, l->pad,
                               m->fused_relu[i]);
            break;
        case FLM_OP_MAXPOOL2D:
            flm_maxpool2d_forward(out, m->arg[i], inp, n, l->C, l->H, l->W, l->K);
            break;
        case FLM_OP_RELU:
            if (i == 0 || !m->fused_relu[i - 1])
                flm_relu_forward(out, inp, (size_t)n * out_floats(l));
            break;
        case FLM_OP_FLATTEN:
            if (out != inp)
                /* inp is x or a layer's output, never NULL:
                 * NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
                memcpy(out, inp, (size_t)n * out_floats(l) * sizeof *out);
            break;
        case FLM_OP_LAST_STEP:
            flm_last_step_forward(out, inp, n, l->H, l->C);
            break;
        case FLM_OP_MOGE:
            flm_moge_forward(out, m->cache[i], m->arg[i], m->scratch, inp,
                             tensor(m, params, l, 0), tensor(m, params, l, 1),
                             tensor(m, params, l, 2), tensor(m, params, l, 3), n, l->C,
                             l->experts, l->groups, l->topk, l->OC);
            /* its load-balancing loss now, before another MoGE layer (an evaluation runtime's
             * share the cache) overwrites what it reads: the same sum in the same order */
            if (labels && l->aux_ppm)
                aux += flm_moge_aux_loss(m->cache[i], m->arg[i], n, l->experts, l->groups,
                                         l->topk, moge_aux(l));
            break;
#ifdef FLM_HAVE_LSTM
        case FLM_OP_EMBEDDING:
            flm_embedding_forward(out, tokens, tensor(m, params, l, 0), n, l->H, l->OC);
            break;
        case FLM_OP_LSTM:
            if (m->eval_only) {
                flm_lstm_forward_eval(out, m->cache[i], inp, tensor(m, params, l, 0),
                                      tensor(m, params, l, 1), tensor(m, params, l, 2), n, l->H,
                                      l->C, l->OC);
                break;
            }
            flm_lstm_forward(out, m->cache[i], inp, tensor(m, params, l, 0),
                             tensor(m, params, l, 1), tensor(m, params, l, 2), n, l->H, l->C,
                             l->OC);
            break;
#endif
        default:
            return FL_ERR_UNSUPPORTED;
        }
        inp = out;
    }
    if (labels) {
        m->have_labels = 1;
        const double L = flm_softmax_xent(NULL, m->act[a->n_layers - 1], labels, n, a->classes);
        m->last_aux = aux;
        if (loss)
            *loss = (float)L;
    }
    return FL_OK;
}

fl_status flm_model_forward_samples(flm_model *m, const float *params, const flm_samples *s,
                                    size_t start, int n, float *loss)
{
    if (!m || !s || !s->labels || n < 1 || n > m->Bmax || start > s->n || (size_t)n > s->n - start)
        return FL_ERR_INVALID_ARG;
    const int tok = m->a.token_input;
    if (tok ? !s->tokens : !s->x)
        return FL_ERR_INVALID_ARG;
    for (int i = 0; i < n; i++) {
        const size_t row = s->index ? s->index[start + i] : start + i;
        if (tok)
            memcpy(m->tok_stage + (size_t)i * m->T, s->tokens + row * m->T,
                   (size_t)m->T * sizeof(int32_t));
        else
            memcpy(m->x_stage + (size_t)i * m->D, s->x + row * m->D, m->D * sizeof(float));
        m->y_stage[i] = s->labels[row];
    }
    return flm_model_forward(m, params, tok ? NULL : m->x_stage, tok ? m->tok_stage : NULL,
                             m->y_stage, n, loss);
}

const float *flm_model_logits(const flm_model *m)
{
    return m->act[m->a.n_layers - 1];
}

double flm_model_aux_loss(const flm_model *m)
{
    return m && m->have_labels ? m->last_aux : 0.0;
}

/* The update a fused backward applies, or NULL for a plain backward. */
typedef struct fused_sgd {
    float lr, wd;
    const float *src; /* the weights before the step, when not params themselves (else NULL) */
} fused_sgd;

/* params[t] -= lr * (g[t] + wd * params[t]) over tensor range [t0, t0 + nt). */
static void apply_sgd(const flm_arch *a, float *params, const float *g, int t0, int nt,
                      const fused_sgd *f)
{
    for (int t = t0; t < t0 + nt; t++) {
        float *w = params + a->tensors[t].offset;
        const float *gt = g + a->tensors[t].offset;
        const size_t N = a->tensors[t].numel;
        if (f->wd != 0.0f)
            for (size_t i = 0; i < N; i++)
                w[i] -= f->lr * (gt[i] + f->wd * w[i]);
        else
            for (size_t i = 0; i < N; i++)
                w[i] -= f->lr * gt[i];
    }
}

static fl_status backward(flm_model *m, float *params, float *grads, const fused_sgd *f)
{
    if (m && m->eval_only) /* no gradients nor caches to run one from */
        return FL_ERR_STATE;
    if (!m || !params || !grads)
        return FL_ERR_INVALID_ARG;
    if (!m->have_labels)
        return FL_ERR_STATE;
    const flm_arch *a = &m->a;
    const int n = m->n;
    const int last = a->n_layers - 1;
    flm_softmax_xent(m->dact[last], m->act[last], m->y, n, a->classes);
    int relu_done = -1; /* a relu whose backward a fused maxpool backward already did */
    for (int i = last; i >= 0; i--) {
        const flm_layer *l = &a->layers[i];
        const float *inp = i > 0 ? m->act[i - 1] : m->x;
        float *dinp = i > 0 ? m->dact[i - 1] : NULL;
        const float *dout = m->dact[i];
        const flm_tensor *t0 = &a->tensors[l->tensor0];
        /* a step out of other weights: a layer other than dense reads and steps its weights in
         * place, so they are copied in first (dense layers read them from src) */
        if (f && f->src && l->n_tensors > 0 && l->op != FLM_OP_DENSE)
            for (int k = 0; k < l->n_tensors; k++)
                memcpy(params + t0[k].offset, f->src + t0[k].offset, t0[k].numel * sizeof(float));
        /* gradients of a fused step go to the scratch gradient buffer, zeroed per layer (a MoGE
         * layer's gate only: its experts step in place) */
        const int stepped = l->op == FLM_OP_MOGE ? 2 : l->n_tensors;
        if (f && l->n_tensors > 0 && l->op != FLM_OP_DENSE)
            for (int k = 0; k < stepped; k++)
                memset(grads + t0[k].offset, 0, t0[k].numel * sizeof(float));
        switch (l->op) {
        case FLM_OP_DENSE: {
            const int C = l->C, OC = l->OC;
            float *w = params + t0[0].offset, *b = params + t0[1].offset;
            if (!f) {
                flm_dense_backward(dinp, grads + t0[0].offset, grads + t0[1].offset, dout, inp, w,
                                   n, C, OC);
                break;
            }
            /* dinp with the old weights and w = (1 - lr wd) w - lr dout^T inp, one pass */
            const float *ws = f->src ? f->src + t0[0].offset : w;
            const float *bs = f->src ? f->src + t0[1].offset : b;
            flm_dense_bwd_update_from(dinp, w, ws, dout, inp, n, C, OC, -f->lr,
                                      1.0f - f->lr * f->wd);
            for (int o = 0; o < OC; o++) {
                float s = 0.0f;
                for (int j = 0; j < n; j++)
                    s += dout[(size_t)j * OC + o];
                b[o] = bs[o] - f->lr * (s + f->wd * bs[o]);
            }
            break;
        }
        case FLM_OP_CONV2D:
            flm_conv2d_backward(i > 0 ? dinp : NULL, grads + t0[0].offset, grads + t0[1].offset,
                                m->scratch, dout, m->cache[i], params + t0[0].offset, n, l->C, l->H,
                                l->W, l->OC, l->K, l->pad);
            break;
        case FLM_OP_MAXPOOL2D:
            if (!dinp)
                break;
            if (i >= 2 && a->layers[i - 1].op == FLM_OP_RELU) {
                /* pool after an in-place relu: mask in the same pass, skip the relu's backward */
                flm_maxpool2d_relu_backward(dinp, dout, m->arg[i], inp, n, l->C, l->H, l->W, l->K);
                relu_done = i - 1;
            } else {
                flm_maxpool2d_backward(dinp, dout, m->arg[i], n, l->C, l->H, l->W, l->K);
            }
            break;
        case FLM_OP_RELU:
            /* in place when aliased (dinp == dout), using the relu output */
            if (dinp && relu_done != i)
                flm_relu_backward(dinp, dout, m->act[i], (size_t)n * out_floats(l));
            break;
        case FLM_OP_FLATTEN:
            if (dinp && dinp != dout)
                memcpy(dinp, dout, (size_t)n * out_floats(l) * sizeof *dinp);
            break;
        case FLM_OP_LAST_STEP:
            if (dinp)
                flm_last_step_backward(dinp, dout, n, l->H, l->C);
            break;
        case FLM_OP_MOGE:
            if (f)
                flm_moge_backward_step(dinp, grads + t0[0].offset, grads + t0[1].offset,
                                       params + t0[2].offset, params + t0[3].offset, m->scratch,
                                       m->arg[i], dout, m->cache[i], inp, params + t0[0].offset,
                                       n, l->C, l->experts, l->groups, l->topk, l->OC,
                                       moge_aux(l), -f->lr, 1.0f - f->lr * f->wd);
            else
                flm_moge_backward(dinp, grads + t0[0].offset, grads + t0[1].offset,
                                  grads + t0[2].offset, grads + t0[3].offset, m->scratch,
                                  m->arg[i], dout, m->cache[i], inp, params + t0[0].offset,
                                  params + t0[2].offset, n, l->C, l->experts, l->groups, l->topk,
                                  l->OC, moge_aux(l));
            break;
#ifdef FLM_HAVE_LSTM
        case FLM_OP_EMBEDDING:
            flm_embedding_backward(grads + t0[0].offset, dout, m->tok, n, l->H, l->OC);
            break;
        case FLM_OP_LSTM:
            flm_lstm_backward(dinp, grads + t0[0].offset, grads + t0[1].offset,
                              grads + t0[2].offset, m->scratch, dout, m->cache[i], inp,
                              params + t0[0].offset, params + t0[1].offset, n, l->H, l->C, l->OC);
            break;
#endif
        default:
            return FL_ERR_UNSUPPORTED;
        }
        if (f && l->n_tensors > 0 && l->op != FLM_OP_DENSE)
            apply_sgd(a, params, grads, l->tensor0, stepped, f);
    }
    return FL_OK;
}

fl_status flm_model_backward(flm_model *m, const float *params, float *grads)
{
    /* the plain backward never writes params */
    return backward(m, (float *)params, grads, NULL);
}

fl_status flm_model_backward_sgd(flm_model *m, float *params, float lr, float weight_decay)
{
    if (!m)
        return FL_ERR_INVALID_ARG;
    const fused_sgd f = {lr, weight_decay, NULL};
    return backward(m, params, m->grads, &f);
}

fl_status flm_model_backward_sgd_from(flm_model *m, float *params, const float *src, float lr,
                                      float weight_decay)
{
    if (!m || !params || !src)
        return FL_ERR_INVALID_ARG;
    if (src == params)
        return flm_model_backward_sgd(m, params, lr, weight_decay);
    /* Every tensor belongs to a layer (flm_arch adds them with theirs), so the layers' steps
     * write all of params. */
    const fused_sgd f = {lr, weight_decay, src};
    return backward(m, params, m->grads, &f);
}

fl_status flm_model_evaluate(flm_model *m, const float *params, const flm_samples *s,
                             double *loss, double *accuracy)
{
    return flm_model_evaluate_cancel(m, params, s, NULL, loss, accuracy);
}

fl_status flm_model_evaluate_cancel(flm_model *m, const float *params, const flm_samples *s,
                                    const atomic_int *cancel, double *loss, double *accuracy)
{
    if (!m || !params || !s || s->n == 0)
        return FL_ERR_INVALID_ARG;
    const int V = m->a.classes;
    double lsum = 0.0;
    size_t correct = 0;
    for (size_t start = 0; start < s->n; start += (size_t)m->Bmax) {
        if (cancel && atomic_load_explicit(cancel, memory_order_relaxed)) {
            m->have_labels = 0;
            return FL_ERR_CANCELLED;
        }
        const size_t left = s->n - start;
        const int n = left < (size_t)m->Bmax ? (int)left : m->Bmax;
        float L;
        const fl_status st = flm_model_forward_samples(m, params, s, start, n, &L);
        if (st != FL_OK)
            return st;
        lsum += (double)L * n;
        const float *z = flm_model_logits(m);
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int v = 1; v < V; v++)
                if (z[(size_t)i * V + v] > z[(size_t)i * V + best])
                    best = v;
            correct += best == m->y_stage[i];
        }
    }
    m->have_labels = 0; /* the staged batch is not the caller's */
    if (loss)
        *loss = lsum / (double)s->n;
    if (accuracy)
        *accuracy = (double)correct / (double)s->n;
    return FL_OK;
}
