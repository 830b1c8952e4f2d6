#include "flm_arch.h"
#include "flm_moge.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Caps that keep a hostile spec from describing an absurd model. */
#define MAX_DIM 65536
#define MAX_PARAMS ((size_t)1 << 31)

#define spec_error(err, errlen, ...) fl_errf(err, errlen, FL_ERR_MODEL_SPEC, __VA_ARGS__)

/* Builder state: the current per-sample shape flowing through the layers. */
typedef struct builder {
    flm_arch *a;
    int C, H, W;
} builder;

static flm_layer *push(builder *b, flm_op op)
{
    flm_arch *a = b->a;
    if (a->n_layers >= FLM_MAX_LAYERS)
        return NULL;
    flm_layer *l = &a->layers[a->n_layers++];
    memset(l, 0, sizeof *l);
    l->op = op;
    l->C = b->C;
    l->H = b->H;
    l->W = b->W;
    l->drop = -1;
    l->tensor0 = a->n_tensors;
    return l;
}

static void finish(builder *b, flm_layer *l, int OC, int OH, int OW)
{
    l->OC = OC;
    l->OH = OH;
    l->OW = OW;
    b->C = OC;
    b->H = OH;
    b->W = OW;
}

static flm_tensor *add_tensor(flm_arch *a, flm_layer *l, const char *name, flm_role role, int rank,
                              int d0, int d1, int d2, int d3)
{
    if (a->n_tensors >= FLM_MAX_TENSORS)
        return NULL;
    flm_tensor *t = &a->tensors[a->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->layer = (int)(l - a->layers);
    t->role = role;
    t->rank = rank;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shape[2] = d2;
    t->shape[3] = d3;
    t->numel = 1;
    for (int i = 0; i < rank; i++)
        t->numel *= (size_t)t->shape[i];
    t->rows = d0;
    t->cols = 1;
    t->inner = 1;
    t->row_drop = -1;
    t->row_blocks = 1;
    t->col_drop = -1;
    l->n_tensors++;
    return t;
}

static int add_dense(builder *b, int idx, int OC)
{
    if (b->H != 1 || b->W != 1)
        return -1;
    flm_layer *l = push(b, FLM_OP_DENSE);
    if (!l)
        return -1;
    char nm[24];
    snprintf(nm, sizeof nm, "dense%d.w", idx);
    flm_tensor *w = add_tensor(b->a, l, nm, FLM_ROLE_W, 2, OC, b->C, 1, 1);
    snprintf(nm, sizeof nm, "dense%d.b", idx);
    flm_tensor *bb = add_tensor(b->a, l, nm, FLM_ROLE_B, 1, OC, 1, 1, 1);
    if (!w || !bb)
        return -1;
    w->cols = b->C;
    finish(b, l, OC, 1, 1);
    return 0;
}

static int add_conv(builder *b, int idx, int OC, int K, int same)
{
    flm_layer *l = push(b, FLM_OP_CONV2D);
    if (!l)
        return -1;
    l->K = K;
    l->pad = same ? (K - 1) / 2 : 0;
    const int OH = b->H + 2 * l->pad - K + 1, OW = b->W + 2 * l->pad - K + 1;
    if (OH < 1 || OW < 1)
        return -1;
    char nm[24];
    snprintf(nm, sizeof nm, "conv%d.w", idx);
    flm_tensor *w = add_tensor(b->a, l, nm, FLM_ROLE_W, 4, OC, b->C, K, K);
    snprintf(nm, sizeof nm, "conv%d.b", idx);
    flm_tensor *bb = add_tensor(b->a, l, nm, FLM_ROLE_B, 1, OC, 1, 1, 1);
    if (!w || !bb)
        return -1;
    w->cols = b->C;
    w->inner = K * K;
    finish(b, l, OC, OH, OW);
    return 0;
}

static int add_simple(builder *b, flm_op op, int K)
{
    flm_layer *l = push(b, op);
    if (!l)
        return -1;
    switch (op) {
    case FLM_OP_RELU:
        finish(b, l, b->C, b->H, b->W);
        break;
    case FLM_OP_MAXPOOL2D:
        if (K < 1 || b->H < K || b->W < K)
            return -1;
        l->K = K;
        finish(b, l, b->C, b->H / K, b->W / K);
        break;
    case FLM_OP_FLATTEN:
        finish(b, l, b->C * b->H * b->W, 1, 1);
        break;
    case FLM_OP_LAST_STEP:
        finish(b, l, b->C, 1, 1);
        break;
    default:
        return -1;
    }
    return 0;
}

static int add_embedding(builder *b, int V, int E)
{
    flm_layer *l = push(b, FLM_OP_EMBEDDING);
    if (!l)
        return -1;
    l->C = V;
    flm_tensor *w = add_tensor(b->a, l, "embed.w", FLM_ROLE_W, 2, V, E, 1, 1);
    if (!w)
        return -1;
    w->cols = E;
    finish(b, l, E, b->H, 1);
    return 0;
}

static int add_lstm(builder *b, int idx, int Hd)
{
    flm_layer *l = push(b, FLM_OP_LSTM);
    if (!l)
        return -1;
    char nm[24];
    snprintf(nm, sizeof nm, "lstm%d.w_ih", idx);
    flm_tensor *wih = add_tensor(b->a, l, nm, FLM_ROLE_W_IH, 2, 4 * Hd, b->C, 1, 1);
    snprintf(nm, sizeof nm, "lstm%d.w_hh", idx);
    flm_tensor *whh = add_tensor(b->a, l, nm, FLM_ROLE_W_HH, 2, 4 * Hd, Hd, 1, 1);
    snprintf(nm, sizeof nm, "lstm%d.b", idx);
    flm_tensor *bb = add_tensor(b->a, l, nm, FLM_ROLE_B, 1, 4 * Hd, 1, 1, 1);
    if (!wih || !whh || !bb)
        return -1;
    wih->cols = b->C;
    whh->cols = Hd;
    finish(b, l, Hd, b->H, 1);
    return 0;
}

/* A mixture of N = G * E grouped experts, each C -> C, K used per group (flm_moge.h). */
static int add_moge(builder *b, int idx, int G, int E, int K)
{
    if (b->H != 1 || b->W != 1)
        return -1;
    flm_layer *l = push(b, FLM_OP_MOGE);
    if (!l)
        return -1;
    const int N = G * E, OC = b->C;
    l->experts = N;
    l->groups = G;
    l->topk = K;
    char nm[24];
    snprintf(nm, sizeof nm, "moge%d.gate_w", idx);
    flm_tensor *gw = add_tensor(b->a, l, nm, FLM_ROLE_W, 2, N, b->C, 1, 1);
    snprintf(nm, sizeof nm, "moge%d.gate_b", idx);
    flm_tensor *gb = add_tensor(b->a, l, nm, FLM_ROLE_B, 1, N, 1, 1, 1);
    snprintf(nm, sizeof nm, "moge%d.w", idx);
    flm_tensor *w = add_tensor(b->a, l, nm, FLM_ROLE_EXPERT_W, 2, OC * N, b->C, 1, 1);
    snprintf(nm, sizeof nm, "moge%d.b", idx);
    flm_tensor *bb = add_tensor(b->a, l, nm, FLM_ROLE_EXPERT_B, 1, OC * N, 1, 1, 1);
    if (!gw || !gb || !w || !bb)
        return -1;
    gw->cols = b->C;
    w->cols = b->C;
    finish(b, l, OC, 1, 1);
    return 0;
}

/* Marks droppable layers, then fills offsets and the row/column coupling of every tensor. */
static void link_arch(flm_arch *a)
{
    /* Every parametrised layer but the last and the embedding drops. */
    int last_param = -1;
    for (int i = 0; i < a->n_layers; i++)
        if (a->layers[i].n_tensors > 0)
            last_param = i;
    a->n_drop = 0;
    for (int i = 0; i < a->n_layers; i++) {
        flm_layer *l = &a->layers[i];
        const int droppable = (l->op == FLM_OP_DENSE || l->op == FLM_OP_CONV2D ||
                               l->op == FLM_OP_LSTM || l->op == FLM_OP_MOGE) && i != last_param;
        if (droppable) {
            l->drop = a->n_drop;
            a->drop_layer[a->n_drop] = i;
            a->drop_units[a->n_drop] = l->op == FLM_OP_MOGE ? l->experts : l->OC;
            a->drop_groups[a->n_drop] = l->op == FLM_OP_MOGE ? l->groups : 1;
            a->n_drop++;
        }
    }
    /* Rows: a layer's own output units. Columns: the units of the previous droppable layer, the
     * shape in between (pool, flatten, last step) deciding the column block. */
    int prev_drop = -1;
    int inner_after = 1; /* floats per unit of prev_drop as seen by the next dense input */
    for (int i = 0; i < a->n_layers; i++) {
        flm_layer *l = &a->layers[i];
        for (int k = 0; k < l->n_tensors; k++) {
            flm_tensor *t = &a->tensors[l->tensor0 + k];
            if (l->drop >= 0) {
                t->row_drop = l->drop;
                t->row_blocks = l->op == FLM_OP_LSTM ? 4
                                : t->role == FLM_ROLE_EXPERT_W || t->role == FLM_ROLE_EXPERT_B
                                    ? l->OC
                                    : 1;
            }
            if (t->role == FLM_ROLE_W || t->role == FLM_ROLE_W_IH ||
                t->role == FLM_ROLE_EXPERT_W) {
                if (l->op != FLM_OP_EMBEDDING && prev_drop >= 0) {
                    t->col_drop = prev_drop;
                    if (l->op == FLM_OP_DENSE) {
                        t->cols = l->C / inner_after;
                        t->inner = inner_after;
                    }
                }
            } else if (t->role == FLM_ROLE_W_HH && l->drop >= 0) {
                t->col_drop = l->drop;
            }
        }
        switch (l->op) {
        case FLM_OP_FLATTEN:
            inner_after = l->H * l->W;
            break;
        case FLM_OP_DENSE:
        case FLM_OP_CONV2D:
        case FLM_OP_LSTM:
            prev_drop = l->drop;
            inner_after = 1;
            break;
        case FLM_OP_MOGE: /* dropping experts keeps every output: nothing to cut after it */
            prev_drop = -1;
            inner_after = 1;
            break;
        default:
            break;
        }
    }
    size_t off = 0;
    for (int t = 0; t < a->n_tensors; t++) {
        a->tensors[t].offset = off;
        off += a->tensors[t].numel;
    }
    a->n_params = off;
}

static int parse_int(const char **p, int *out)
{
    char *end;
    /* Digits only: strtol alone would also take leading spaces and a sign, so that "mlp: 5-3"
     * and "mlp:5-3" named the same model. */
    if (**p < '0' || **p > '9')
        return -1;
    errno = 0;
    const long v = strtol(*p, &end, 10);
    if (end == *p || errno || v < 1 || v > MAX_DIM)
        return -1;
    *out = (int)v;
    *p = end;
    return 0;
}

static fl_status parse_mlp(flm_arch *a, const char *p, char *err, size_t errlen)
{
    int dims[FLM_MAX_LAYERS + 1], n = 0;
    if (*p++ != ':')
        return spec_error(err, errlen, "mlp needs sizes: mlp:IN-HIDDEN...-CLASSES");
    for (;;) {
        if (n > FLM_MAX_LAYERS / 2 || parse_int(&p, &dims[n]) != 0)
            return spec_error(err, errlen, "mlp: bad or too many layer sizes near '%s'", p);
        n++;
        if (*p == '\0')
            break;
        if (*p++ != '-')
            return spec_error(err, errlen, "mlp: expected '-' between sizes");
    }
    if (n < 2)
        return spec_error(err, errlen, "mlp: need at least input and classes");
    builder b = {a, dims[0], 1, 1};
    a->in_C = dims[0];
    a->in_H = a->in_W = 1;
    for (int i = 1; i < n; i++) {
        if (add_dense(&b, i - 1, dims[i]) != 0)
            return spec_error(err, errlen, "mlp: too many layers");
        if (i + 1 < n && add_simple(&b, FLM_OP_RELU, 0) != 0)
            return spec_error(err, errlen, "mlp: too many layers");
    }
    a->classes = dims[n - 1];
    int off = snprintf(a->spec, sizeof a->spec, "mlp:%d", dims[0]);
    for (int i = 1; i < n && off < (int)sizeof a->spec; i++)
        off += snprintf(a->spec + off, sizeof a->spec - (size_t)off, "-%d", dims[i]);
    if (off >= (int)sizeof a->spec)
        return spec_error(err, errlen, "mlp: spec longer than %d characters", FLM_ARCH_SPEC_MAX - 1);
    return FL_OK;
}

static fl_status parse_cnn(flm_arch *a, const char *p, char *err, size_t errlen)
{
    int classes = 62, H = 28, W = 28, C = 1;
    if (*p == ':') {
        p++;
        if (parse_int(&p, &classes) != 0)
            return spec_error(err, errlen, "cnn: bad class count");
        if (*p == ':') {
            p++;
            if (parse_int(&p, &H) != 0 || *p++ != 'x' || parse_int(&p, &W) != 0 || *p++ != 'x' ||
                parse_int(&p, &C) != 0)
                return spec_error(err, errlen, "cnn: input shape must be HxWxC");
        }
    }
    if (*p != '\0')
        return spec_error(err, errlen, "cnn: unexpected '%s'", p);
    if (H < 4 || W < 4 || H > 1024 || W > 1024 || C > 64)
        return spec_error(err, errlen, "cnn: input %dx%dx%d out of range", H, W, C);
    a->in_C = C;
    a->in_H = H;
    a->in_W = W;
    builder b = {a, C, H, W};
    if (add_conv(&b, 0, 32, 5, 1) || add_simple(&b, FLM_OP_RELU, 0) ||
        add_simple(&b, FLM_OP_MAXPOOL2D, 2) || add_conv(&b, 1, 64, 5, 1) ||
        add_simple(&b, FLM_OP_RELU, 0) || add_simple(&b, FLM_OP_MAXPOOL2D, 2) ||
        add_simple(&b, FLM_OP_FLATTEN, 0) || add_dense(&b, 0, 2048) ||
        add_simple(&b, FLM_OP_RELU, 0) || add_dense(&b, 1, classes))
        return spec_error(err, errlen, "cnn: shape does not fit");
    a->classes = classes;
    snprintf(a->spec, sizeof a->spec, "cnn:%d:%dx%dx%d", classes, H, W, C);
    return FL_OK;
}

static fl_status parse_lstm(flm_arch *a, const char *p, char *err, size_t errlen)
{
    int V = 80, E = 8, Hd = 256, L = 2, T = 80;
    if (*p == ':') {
        p++;
        int *f[5] = {&V, &E, &Hd, &L, &T};
        for (int i = 0; i < 5; i++) {
            if (parse_int(&p, f[i]) != 0)
                return spec_error(err, errlen, "lstm: expected lstm:VOCAB:EMB:HIDDEN:LAYERS:SEQ");
            if (i < 4 && *p++ != ':')
                return spec_error(err, errlen, "lstm: expected lstm:VOCAB:EMB:HIDDEN:LAYERS:SEQ");
        }
    }
    if (*p != '\0')
        return spec_error(err, errlen, "lstm: unexpected '%s'", p);
    if (L > 8 || T > 4096 || V > 65536)
        return spec_error(err, errlen, "lstm: %d layers / %d steps / vocabulary %d out of range", L, T, V);
    a->in_C = 1;
    a->in_H = T;
    a->in_W = 1;
    a->token_input = 1;
    builder b = {a, 1, T, 1};
    if (add_embedding(&b, V, E))
        return spec_error(err, errlen, "lstm: too many layers");
    for (int i = 0; i < L; i++)
        if (add_lstm(&b, i, Hd))
            return spec_error(err, errlen, "lstm: too many layers");
    if (add_simple(&b, FLM_OP_LAST_STEP, 0) || add_dense(&b, 0, V))
        return spec_error(err, errlen, "lstm: too many layers");
    a->classes = V;
    snprintf(a->spec, sizeof a->spec, "lstm:%d:%d:%d:%d:%d", V, E, Hd, L, T);
    return FL_OK;
}

/* A decimal from 0 to 1 with at most 6 decimals ("0.01", "1", "0.5"), read exactly into
 * millionths: its value, or -1 if the text at *p is not one (*p then unchanged). */
static long parse_ppm(const char **p)
{
    const char *s = *p;
    long whole = 0, frac = 0;
    int wd = 0, fd = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        if (++wd > 7 || (whole = whole * 10 + (*s - '0')) > 1)
            return -1;
    if (wd == 0)
        return -1;
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++)
            if (++fd > 6 || (frac = frac * 10 + (*s - '0')) < 0)
                return -1;
        if (fd == 0)
            return -1;
    }
    for (int i = fd; i < 6; i++)
        frac *= 10;
    const long v = whole * 1000000 + frac;
    if (v > 1000000)
        return -1;
    *p = s;
    return v;
}

static fl_status parse_moge(flm_arch *a, const char *p, char *err, size_t errlen)
{
    int IN = 784, Hd = 128, G = 4, E = 4, K = 1, classes = 10;
    long aux = 0;
    static const char *const name[6] = {"IN", "HIDDEN", "GROUPS", "EXPERTS", "TOPK", "CLASSES"};
    static const int most[6] = {MAX_DIM, MAX_DIM, 64, 256, 16, MAX_DIM};
    if (*p == ':') {
        p++;
        int *f[6] = {&IN, &Hd, &G, &E, &K, &classes};
        for (int i = 0; i < 6; i++) {
            if (parse_int(&p, f[i]) != 0) {
                const int digits = (int)strspn(p, "0123456789");
                /* a whole field of digits, out of range: say which ("0x80" is no number) */
                if (digits > 0 && (p[digits] == ':' || (i == 5 && p[digits] == '\0')))
                    return spec_error(err, errlen, "moge: %s must be 1 to %d, not %.*s%s",
                                      name[i], most[i], digits < 12 ? digits : 12, p,
                                      digits > 12 ? "..." : "");
                return spec_error(err, errlen,
                                  "moge: expected moge:IN:HIDDEN:GROUPS:EXPERTS:TOPK:CLASSES");
            }
            if (i < 5 && *p++ != ':')
                return spec_error(err, errlen,
                                  "moge: expected moge:IN:HIDDEN:GROUPS:EXPERTS:TOPK:CLASSES");
        }
        if (*p == ':') {
            const char *q = ++p;
            if ((aux = parse_ppm(&p)) < 0 || *p != '\0')
                return spec_error(err, errlen,
                                  "moge: AUX (the load-balancing loss's coefficient) must be a "
                                  "decimal from 0 to 1 with at most 6 decimals, like 0.01, not "
                                  "'%.12s%s'", q, strlen(q) > 12 ? "..." : "");
        }
    }
    if (*p != '\0')
        return spec_error(err, errlen, "moge: unexpected '%s'", p);
    const int vals[3] = {G, E, K};
    for (int i = 0; i < 3; i++)
        if (vals[i] > most[2 + i])
            return spec_error(err, errlen, "moge: %s must be 1 to %d, not %d", name[2 + i],
                              most[2 + i], vals[i]);
    if (K > E)
        return spec_error(err, errlen, "moge: TOPK must be at most EXPERTS (a group's, %d), not %d",
                          E, K);
    a->in_C = IN;
    a->in_H = a->in_W = 1;
    builder b = {a, IN, 1, 1};
    if (add_dense(&b, 0, Hd) || add_simple(&b, FLM_OP_RELU, 0) || add_moge(&b, 0, G, E, K) ||
        add_simple(&b, FLM_OP_RELU, 0) || add_dense(&b, 1, classes))
        return spec_error(err, errlen, "moge: too many layers");
    a->classes = classes;
    for (int i = 0; i < a->n_layers; i++)
        if (a->layers[i].op == FLM_OP_MOGE)
            a->layers[i].aux_ppm = (int)aux;
    char coef[16] = "";
    if (aux == 1000000) {
        snprintf(coef, sizeof coef, ":1");
    } else if (aux > 0) { /* 0.DDDDDD without its trailing zeros */
        snprintf(coef, sizeof coef, ":0.%06ld", aux);
        size_t n = strlen(coef); /* 9, and coef[3..8] holds a nonzero digit */
        while (n > 4 && coef[n - 1] == '0')
            coef[--n] = '\0';
    }
    snprintf(a->spec, sizeof a->spec, "moge:%d:%d:%d:%d:%d:%d%s", IN, Hd, G, E, K, classes, coef);
    return FL_OK;
}

fl_status flm_arch_parse(const char *spec, flm_arch *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!spec || !out)
        return spec_error(err, errlen, "no spec");
    if (strlen(spec) >= FLM_ARCH_SPEC_MAX)
        return spec_error(err, errlen, "spec longer than %d characters", FLM_ARCH_SPEC_MAX - 1);
    flm_arch a;
    memset(&a, 0, sizeof a);
    fl_status st;
    /* the family's name whole, then ':' or the end: "mlpx" is an unknown architecture, not an
     * mlp without its sizes */
#define FAMILY(name) (strncmp(spec, (name), sizeof(name) - 1) == 0 && \
                      (spec[sizeof(name) - 1] == ':' || spec[sizeof(name) - 1] == '\0'))
    if (FAMILY("mlp")) {
        st = parse_mlp(&a, spec + 3, err, errlen);
        snprintf(a.family, sizeof a.family, "mlp");
    } else if (FAMILY("cnn")) {
        st = parse_cnn(&a, spec + 3, err, errlen);
        snprintf(a.family, sizeof a.family, "cnn");
    } else if (FAMILY("lstm")) {
        st = parse_lstm(&a, spec + 4, err, errlen);
        snprintf(a.family, sizeof a.family, "lstm");
    } else if (FAMILY("moge")) {
        st = parse_moge(&a, spec + 4, err, errlen);
        snprintf(a.family, sizeof a.family, "moge");
    } else {
        return spec_error(err, errlen, "unknown architecture '%s' (expected mlp, cnn, lstm or moge)",
                          spec);
    }
#undef FAMILY
    if (st != FL_OK)
        return st;
    link_arch(&a);
    if (a.n_params > MAX_PARAMS)
        return spec_error(err, errlen, "%zu parameters is above the limit of %zu", a.n_params, MAX_PARAMS);
    *out = a;
    return FL_OK;
}

fl_status flm_arch_sub(const flm_arch *full, const int *units, flm_arch *out)
{
    for (int d = 0; d < full->n_drop; d++)
        if (units[d] < 1 || units[d] > full->drop_units[d] ||
            units[d] % flm_arch_groups(full, d) != 0)
            return FL_ERR_KEEPSET;
    flm_arch a = *full;
    /* Replay the shapes with reduced unit counts. */
    int C = a.in_C, H = a.in_H, W = a.in_W;
    if (a.token_input)
        C = 1;
    for (int i = 0; i < a.n_layers; i++) {
        flm_layer *l = &a.layers[i];
        if (l->op != FLM_OP_EMBEDDING)
            l->C = C;
        l->H = H;
        l->W = W;
        /* U: the layer's units (its outputs, or a MoGE layer's experts) */
        const int U = l->drop >= 0 ? units[l->drop] : l->op == FLM_OP_MOGE ? l->experts : l->OC;
        const int OC = l->op == FLM_OP_MOGE ? l->OC : U;
        switch (l->op) {
        case FLM_OP_MOGE:
            l->experts = U;
            break;
        case FLM_OP_DENSE:
        case FLM_OP_CONV2D:
        case FLM_OP_LSTM:
        case FLM_OP_EMBEDDING:
            l->OC = OC;
            break;
        case FLM_OP_RELU:
        case FLM_OP_MAXPOOL2D:
        case FLM_OP_LAST_STEP:
            l->OC = C;
            break;
        case FLM_OP_FLATTEN:
            l->OC = C * H * W;
            break;
        }
        C = l->OC;
        H = l->OH;
        W = l->OW;
        for (int k = 0; k < l->n_tensors; k++) {
            flm_tensor *t = &a.tensors[l->tensor0 + k];
            const int rows = l->op == FLM_OP_EMBEDDING ? t->shape[0] : U * t->row_blocks;
            t->shape[0] = rows;
            t->rows = rows;
            if (t->rank >= 2) {
                if (t->role == FLM_ROLE_W_HH) {
                    t->shape[1] = OC;
                    t->cols = OC;
                } else if (l->op == FLM_OP_DENSE) {
                    t->shape[1] = l->C;
                    t->cols = l->C / t->inner;
                } else if (l->op != FLM_OP_EMBEDDING) {
                    t->shape[1] = l->C;
                    t->cols = l->C;
                }
            }
            t->numel = 1;
            for (int r = 0; r < t->rank; r++)
                t->numel *= (size_t)t->shape[r];
        }
    }
    int all = 1;
    for (int d = 0; d < a.n_drop; d++) {
        all &= units[d] == full->drop_units[d];
        a.drop_units[d] = units[d];
    }
    if (!all) {
        /* The submodel's own name (flm_arch.h). It fits for every spec that parses (at most 63
         * characters and 8 droppable layers of 10 characters each); a longer one is refused. */
        char *p = a.spec;
        size_t room = sizeof a.spec;
        int n;
        if (strcmp(a.family, "mlp") == 0) {
            n = snprintf(p, room, "mlp:%d", a.layers[0].C);
            for (int i = 0; i < a.n_layers && n >= 0 && (size_t)n < room; i++) {
                if (a.layers[i].op != FLM_OP_DENSE)
                    continue;
                p += n;
                room -= (size_t)n;
                n = snprintf(p, room, "-%d", a.layers[i].OC);
            }
        } else {
            n = snprintf(p, room, "%s", full->spec);
            for (int d = 0; d < a.n_drop && n >= 0 && (size_t)n < room; d++) {
                p += n;
                room -= (size_t)n;
                n = snprintf(p, room, "%c%d", d ? ',' : '/', units[d]);
            }
        }
        if (n < 0 || (size_t)n >= room)
            return FL_ERR_MODEL_SPEC;
    }
    size_t off = 0;
    for (int t = 0; t < a.n_tensors; t++) {
        a.tensors[t].offset = off;
        off += a.tensors[t].numel;
    }
    a.n_params = off;
    *out = a;
    return FL_OK;
}

int flm_arch_find_tensor(const flm_arch *a, const char *name)
{
    for (int t = 0; t < a->n_tensors; t++)
        if (strcmp(a->tensors[t].name, name) == 0)
            return t;
    return -1;
}

double flm_arch_forward_flops(const flm_arch *a)
{
    double f = 0;
    for (int i = 0; i < a->n_layers; i++) {
        const flm_layer *l = &a->layers[i];
        switch (l->op) {
        case FLM_OP_DENSE:
            f += (double)l->OC * l->C;
            break;
        case FLM_OP_CONV2D:
            f += (double)l->OC * l->OH * l->OW * l->C * l->K * l->K;
            break;
        case FLM_OP_LSTM:
            f += (double)l->H * 4.0 * l->OC * (l->C + l->OC);
            break;
        case FLM_OP_MOGE: { /* the gate, the experts a sample runs, and its routing (K' scans
                             * of every expert's logit) */
            const double Ka = flm_moge_active(l->experts, l->groups, l->topk);
            f += (double)l->experts * l->C + (double)l->groups * Ka * l->OC * l->C +
                 (double)l->experts * Ka;
            break;
        }
        default:
            break;
        }
    }
    return f;
}

size_t flm_arch_activation_floats(const flm_arch *a)
{
    size_t n = 0;
    for (int i = 0; i < a->n_layers; i++) {
        const flm_layer *l = &a->layers[i];
        n += (size_t)l->OC * (size_t)l->OH * (size_t)l->OW;
    }
    return n;
}

int flm_keep_count(double p, int n)
{
    long k = lround(p * n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (int)k;
}

int flm_arch_groups(const flm_arch *a, int d)
{
    return a->drop_groups[d] > 1 ? a->drop_groups[d] : 1;
}

int flm_arch_keep_units(const flm_arch *a, int d, double p)
{
    const int G = flm_arch_groups(a, d);
    return G * flm_keep_count(p, a->drop_units[d] / G);
}

uint64_t flm_train_memory_need(size_t sub_params, size_t full_params, int residual)
{
    return FLM_TRAIN_BYTES_PER_PARAM * (uint64_t)sub_params +
           (residual ? FLM_RESIDUAL_BYTES_PER_PARAM * (uint64_t)full_params : 0);
}
