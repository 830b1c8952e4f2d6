/* fls_round.c: configuration defaults, validation, digest; metrics as JSON (see fls_round.h). */
#include "fls_round.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_text.h"
#include "flz.h"

fls_config fls_config_default(void)
{
    fls_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.arch, sizeof c.arch, "mlp:784-200-200-10");
    c.seed = 1;
    c.policy = fls_policy_config_default();
    c.opt = fls_opt_config_default(FLS_OPT_FEDAVG);
    c.agg = fls_agg_options_default();
    c.clients_per_round = 10;
    c.overcommit = 1.3;
    c.round_timeout_s = 600.0;
    c.train.epochs = 1;
    c.train.batch_size = 10;
    c.train.lr = 0.05f;
    snprintf(c.down_codec, sizeof c.down_codec, "none");
    snprintf(c.up_codec, sizeof c.up_codec, "none");
    c.chunk_elems = 65536;
    return c;
}

#define cfg_fail(err, errlen, ...) fl_errf(err, errlen, FL_ERR_CONFIG, __VA_ARGS__)

fl_status fls_config_validate(const fls_config *cfg, char *err, size_t errlen)
{
    if (!cfg)
        return FL_ERR_INVALID_ARG;
    if (err && errlen)
        err[0] = 0;
    flm_arch a;
    char why[256];
    if (memchr(cfg->arch, 0, sizeof cfg->arch) == NULL ||
        flm_arch_parse(cfg->arch, &a, why, sizeof why) != FL_OK)
        return cfg_fail(err, errlen, "arch: %s", memchr(cfg->arch, 0, sizeof cfg->arch) ? why
                                                                                       : "too long");
    flz_spec sp;
    if (memchr(cfg->down_codec, 0, sizeof cfg->down_codec) == NULL ||
        flz_spec_parse(cfg->down_codec, &sp, why, sizeof why) != FL_OK)
        return cfg_fail(err, errlen, "down_codec: %s", why);
    const char *no = fls_down_codec_refusal(&sp);
    if (no)
        return cfg_fail(err, errlen, "down_codec: %s", no);
    if (memchr(cfg->up_codec, 0, sizeof cfg->up_codec) == NULL ||
        flz_spec_parse(cfg->up_codec, &sp, why, sizeof why) != FL_OK)
        return cfg_fail(err, errlen, "up_codec: %s", why);
    if ((unsigned)cfg->policy.kind > FLS_POLICY_AFD_MULTI)
        return cfg_fail(err, errlen, "policy: unknown kind %d", (int)cfg->policy.kind);
    if (!(cfg->policy.keep_p > 0.0 && cfg->policy.keep_p <= 1.0))
        return cfg_fail(err, errlen, "policy.keep_p must be in (0, 1]");
    for (int d = 0; d < FLM_MAX_LAYERS; d++)
        if (!(cfg->policy.keep_p_layer[d] >= 0.0 && cfg->policy.keep_p_layer[d] <= 1.0))
            return cfg_fail(err, errlen, "policy.keep_p_layer[%d] must be in [0, 1]", d);
    /* an override past the last droppable layer would be silently ignored */
    for (int d = a.n_drop; d < FLM_MAX_LAYERS; d++)
        if (cfg->policy.keep_p_layer[d] != 0.0)
            return cfg_fail(err, errlen, "policy.keep_p_layer[%d] is set, but arch %s has %d "
                                         "droppable layers", d, a.spec, a.n_drop);
    if (!(cfg->policy.eps_rel > 0.0 && isfinite(cfg->policy.eps_rel)))
        return cfg_fail(err, errlen, "policy.eps_rel must be > 0");
    if (cfg->clients_per_round < 1)
        return cfg_fail(err, errlen, "clients_per_round must be >= 1");
    if (!(cfg->overcommit >= 1.0 && cfg->overcommit <= 100.0))
        return cfg_fail(err, errlen, "overcommit must be in [1, 100]");
    if (!(cfg->round_timeout_s > 0.0 && isfinite(cfg->round_timeout_s)))
        return cfg_fail(err, errlen, "round_timeout_s must be > 0");
    if (!(cfg->target_accuracy >= 0.0 && cfg->target_accuracy <= 1.0))
        return cfg_fail(err, errlen, "target_accuracy must be in [0, 1]");
    const flp_train_config *t = &cfg->train;
    if (t->epochs < 1 || t->batch_size < 1 || !(t->lr > 0.0f && isfinite(t->lr)) ||
        !(t->momentum >= 0.0f && t->momentum < 1.0f) ||
        !(t->weight_decay >= 0.0f && isfinite(t->weight_decay)) ||
        !(t->prox_mu >= 0.0f && isfinite(t->prox_mu)))
        return cfg_fail(err, errlen, "train: epochs, batch_size >= 1, lr > 0, momentum in [0,1), "
                                     "weight_decay, prox_mu >= 0");
    if (cfg->chunk_elems < 1 || cfg->chunk_elems > (1u << 20))
        return cfg_fail(err, errlen, "chunk_elems must be in [1, 2^20]");
    const uint32_t least = fls_chunk_elems_refusal(&a, cfg->chunk_elems, why, sizeof why);
    if (least)
        return cfg_fail(err, errlen, "chunk_elems %u %s: it must be at least %u",
                        cfg->chunk_elems, why, least);
    /* The optimizer and the aggregator check their own options: ask them on a 1-element model. */
    fls_opt *o = NULL;
    fl_status st = fls_opt_new(&cfg->opt, 1, &o);
    fls_opt_free(o);
    if (st == FL_ERR_NOMEM)
        return st;
    if (st != FL_OK)
        return cfg_fail(err, errlen, "opt: a hyper-parameter of %s is outside its domain",
                        fls_opt_kind_name(cfg->opt.kind));
    fls_agg *g = NULL;
    st = fls_agg_new_flat(1, &cfg->agg, &g);
    const uint64_t w_cap = fls_agg_weight_cap(g);
    fls_agg_free(g);
    if (st == FL_ERR_NOMEM)
        return st;
    if (st != FL_OK)
        return cfg_fail(err, errlen, "agg: an aggregation option is outside its domain");
    /* Each update's samples are capped at the round's weight budget over clients_per_round
     * (fls_core.h, samples_cap): a cap of 0 refused every update, round after round, with no
     * word (until 2026-12-07; only an embedder's frac_bits and max_abs_log2 can make it so). */
    if (w_cap / cfg->clients_per_round == 0)
        return cfg_fail(err, errlen, "clients_per_round (%u) is above the aggregator's weight "
                        "budget of a round (%llu samples in all, 2^(62 - frac_bits - "
                        "max_abs_log2)): no update could claim a sample", cfg->clients_per_round,
                        (unsigned long long)w_cap);
    /* the robust modes keep each update of a round, at most max_updates: a quorum above that
     * could never be reached (every commit past it fails) */
    const int kept = fls_agg_updates_kept(&cfg->agg);
    if (cfg->agg.mode != FLS_AGG_MEAN && cfg->clients_per_round > (uint32_t)kept)
        return cfg_fail(err, errlen, "agg.max_updates (%d) is below clients_per_round (%u): the "
                        "robust modes keep every update of a round", kept,
                        cfg->clients_per_round);
    return FL_OK;
}

/* Appends "key=value\n" with a fixed format: doubles as %a (exact, locale-free hex floats). */
typedef struct canon {
    char buf[4096];
    size_t len;
    int overflow;
} canon;

static void put(canon *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(canon *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(c->buf + c->len, sizeof c->buf - c->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof c->buf - c->len)
        c->overflow = 1;
    else
        c->len += (size_t)n;
}

uint32_t fls_chunk_elems_min(const flm_arch *a, int *largest)
{
    const uint64_t max = flp_limits_default().max_chunks;
    int big = -1;
    for (int i = 0; a && i < a->n_tensors; i++)
        if (big < 0 || a->tensors[i].numel > a->tensors[big].numel)
            big = i;
    if (largest)
        *largest = big;
    if (big < 0)
        return 1;
    const uint64_t least = ((uint64_t)a->tensors[big].numel + max - 1) / max;
    return least > 1 ? (uint32_t)least : 1u;
}

uint32_t fls_chunk_elems_refusal(const flm_arch *a, uint32_t chunk_elems, char *why, size_t cap)
{
    int big = -1;
    const uint32_t least = fls_chunk_elems_min(a, &big);
    if (chunk_elems >= least)
        return 0;
    if (why && cap) {
        const size_t n = a->tensors[big].numel;
        snprintf(why, cap, "cuts tensor %s of %s (%zu elements) into %llu chunks, more than the "
                 "%u a tensor the wire carries", a->tensors[big].name, a->spec, n,
                 (unsigned long long)((n + chunk_elems - 1) / (chunk_elems ? chunk_elems : 1)),
                 flp_limits_default().max_chunks);
    }
    return least;
}

const char *fls_down_codec_refusal(const flz_spec *spec)
{
    if (spec && spec->topk > 0)
        return "topk keeps only the largest weights and zeroes the rest of the model the clients "
               "train (the downlink carries weights, with no error feedback): use a quantizer "
               "(q8, rot+q4, f16) and zstd; top-k is for the uplink";
    if (spec && spec->sub > 0)
        return "sub zeroes weights at random and scales the rest of the model the clients train "
               "(the downlink carries weights, not an unbiased update): use a quantizer (q8, "
               "rot+q4, f16) and zstd; subsampling is for the uplink";
    return NULL;
}

fl_status fls_config_canon(const fls_config *cfg, char *buf, size_t cap, size_t *len)
{
    if (!cfg || !buf || !len)
        return FL_ERR_INVALID_ARG;
    *len = 0;
    flm_arch a;
    flz_spec down, up;
    char dstr[FLZ_SPEC_STRLEN], ustr[FLZ_SPEC_STRLEN];
    if (memchr(cfg->arch, 0, sizeof cfg->arch) == NULL ||
        flm_arch_parse(cfg->arch, &a, NULL, 0) != FL_OK ||
        memchr(cfg->down_codec, 0, sizeof cfg->down_codec) == NULL ||
        flz_spec_parse(cfg->down_codec, &down, NULL, 0) != FL_OK ||
        memchr(cfg->up_codec, 0, sizeof cfg->up_codec) == NULL ||
        flz_spec_parse(cfg->up_codec, &up, NULL, 0) != FL_OK)
        return FL_ERR_CONFIG;
    flz_spec_format(&down, dstr, sizeof dstr);
    flz_spec_format(&up, ustr, sizeof ustr);
    canon *c = calloc(1, sizeof *c);
    if (!c)
        return FL_ERR_NOMEM;
    put(c, "fedrop-config=1\n");
    put(c, "arch=%s\n", a.spec);
    put(c, "seed=%llu\n", (unsigned long long)cfg->seed);
    const fls_policy_config *p = &cfg->policy;
    put(c, "policy=%s\nfd_per_client=%d\nscore_accumulate=%d\nloss_unweighted=%d\n",
        fls_policy_kind_name(p->kind), p->fd_per_client, p->score_accumulate, p->loss_unweighted);
    put(c, "keep_p=%a\neps_rel=%a\n", p->keep_p, p->eps_rel);
    for (int d = 0; d < a.n_drop && d < FLM_MAX_LAYERS; d++)
        put(c, "keep_p_layer%d=%a\n", d, p->keep_p_layer[d] > 0 ? p->keep_p_layer[d] : p->keep_p);
    const fls_opt_config *o = &cfg->opt;
    put(c, "opt=%s\nopt_lr=%a\nopt_momentum=%a\nopt_beta1=%a\nopt_beta2=%a\nopt_tau=%a\n"
           "opt_v0=%a\n",
        fls_opt_kind_name(o->kind), (double)o->lr, (double)o->momentum, (double)o->beta1,
        (double)o->beta2, (double)o->tau, (double)o->v0);
    const fls_agg_options *g = &cfg->agg;
    put(c, "agg_mode=%d\nagg_dilute=%d\nagg_frac_bits=%d\nagg_max_abs_log2=%d\nagg_clip=%a\n"
           "agg_trim=%a\nagg_max_updates=%d\n",
        (int)g->mode, g->dilute, g->frac_bits, g->max_abs_log2, g->clip_norm, g->trim_frac,
        g->max_updates);
    put(c, "clients_per_round=%u\novercommit=%a\n", cfg->clients_per_round, cfg->overcommit);
    const flp_train_config *t = &cfg->train;
    put(c, "epochs=%u\nbatch=%u\nlr=%a\nmomentum=%a\nwd=%a\nprox_mu=%a\nmax_samples=%llu\n",
        t->epochs, t->batch_size, (double)t->lr, (double)t->momentum, (double)t->weight_decay,
        (double)t->prox_mu, (unsigned long long)t->max_samples);
    put(c, "down_codec=%s\nup_codec=%s\nchunk_elems=%u\n", dstr, ustr, cfg->chunk_elems);
    fl_status st = FL_OK;
    if (c->overflow || c->len >= cap) {
        st = c->overflow ? FL_ERR_INTERNAL : FL_ERR_INVALID_ARG;
    } else {
        memcpy(buf, c->buf, c->len + 1);
        *len = c->len;
    }
    free(c);
    return st;
}

fl_status fls_config_digest(const fls_config *cfg, uint8_t out[FL_SHA256_LEN])
{
    if (!cfg || !out)
        return FL_ERR_INVALID_ARG;
    char *text = malloc(FLS_CONFIG_CANON_MAX);
    if (!text)
        return FL_ERR_NOMEM;
    size_t n = 0;
    fl_status st = fls_config_canon(cfg, text, FLS_CONFIG_CANON_MAX, &n);
    if (st == FL_OK)
        st = fl_sha256_digest(out, text, n);
    free(text);
    return st;
}

/* The fl_server key that sets each line of the canonical text, and how its value reads best.
 * agg_frac_bits and agg_max_abs_log2 have no key: fedrop's build sets them. */
static const struct {
    const char *canon, *key;
    int kind; /* 0: as written, 1: a %a double, 2: the aggregation mode's number, 3: a %a of a
              * float32 setting, 4: a 0/1 bool */
} CANON_KEYS[] = {
    {"arch", "model.arch", 0}, {"seed", "run.seed", 0}, {"policy", "policy.kind", 0},
    {"fd_per_client", "policy.fd_per_client", 4}, {"score_accumulate", "policy.score_accumulate", 4},
    {"loss_unweighted", "policy.loss_unweighted", 4}, {"keep_p", "policy.keep", 1},
    {"eps_rel", "policy.eps_rel", 1}, {"opt", "optimizer.kind", 0}, {"opt_lr", "optimizer.lr", 3},
    {"opt_momentum", "optimizer.momentum", 3}, {"opt_beta1", "optimizer.beta1", 3},
    {"opt_beta2", "optimizer.beta2", 3}, {"opt_tau", "optimizer.tau", 3},
    {"opt_v0", "optimizer.v0", 3}, {"agg_mode", "aggregation.mode", 2},
    {"agg_dilute", "aggregation.dilute", 4}, {"agg_frac_bits", "aggregation frac_bits (built in)", 0},
    {"agg_max_abs_log2", "aggregation max_abs_log2 (built in)", 0}, {"agg_clip", "aggregation.clip_norm", 1},
    {"agg_trim", "aggregation.trim_frac", 1}, {"agg_max_updates", "aggregation.max_updates", 0},
    {"clients_per_round", "round.clients", 0}, {"overcommit", "round.overcommit", 1},
    {"epochs", "train.epochs", 0}, {"batch", "train.batch", 0}, {"lr", "train.lr", 3},
    {"momentum", "train.momentum", 3}, {"wd", "train.weight_decay", 3},
    {"prox_mu", "train.prox_mu", 3}, {"max_samples", "train.max_samples", 0},
    {"down_codec", "codec.down", 0}, {"up_codec", "codec.up", 0},
    {"chunk_elems", "codec.chunk_elems", 0},
};

/* The value of line `name` in canonical text t[0..n) into [*v, *v + *vl); 0 if absent. */
static int canon_find(const char *t, size_t n, const char *name, size_t nl, const char **v,
                      size_t *vl)
{
    for (size_t p = 0; p < n;) {
        const char *nlc = memchr(t + p, '\n', n - p);
        const size_t e = nlc ? (size_t)(nlc - t) : n;
        if (e - p > nl && memcmp(t + p, name, nl) == 0 && t[p + nl] == '=') {
            *v = t + p + nl + 1;
            *vl = e - p - nl - 1;
            return 1;
        }
        p = e + 1;
    }
    return 0;
}

/* A canonical value as an operator wrote it: hex floats in the fewest digits that read back as
 * the same value (as a float32 for the float32 settings: 0.05, not 0.0500000007; 0.7500001, not
 * %g's 0.75, which made "policy.keep 0.75 -> 0.75" of a real change), the mode by name, a bool
 * as false / true. */
static void canon_show(char *out, size_t cap, const char *v, size_t vl, int kind)
{
    char raw[96];
    snprintf(raw, sizeof raw, "%.*s", (int)(vl < 95 ? vl : 95), v);
    static const char *const modes[] = {"mean", "trimmed-mean", "median"};
    char *end = NULL;
    if (kind == 1 || kind == 3) {
        const double d = strtod(raw, &end);
        if (end && !*end && end != raw) {
            fl_text_shortest(out, cap, d, kind == 3);
            return;
        }
    } else if (kind == 2) {
        const long m = strtol(raw, &end, 10);
        if (end && !*end && end != raw && m >= 0 && m < 3) {
            snprintf(out, cap, "%s", modes[m]);
            return;
        }
    } else if (kind == 4 && (!strcmp(raw, "0") || !strcmp(raw, "1"))) {
        snprintf(out, cap, "%s", raw[0] == '1' ? "true" : "false");
        return;
    }
    snprintf(out, cap, "%s", raw[0] ? raw : "(none)");
}

static const char *canon_inert(const char *t, size_t n, const char *name, size_t nl);

/* fls_config_canon_diff, of the settings without effect under `now` (inert 1), of the others
 * (inert 0), or of all (inert -1). */
static size_t canon_diff(const char *was, size_t was_len, const char *now, size_t now_len,
                         char *out, size_t cap, int inert)
{
    if (out && cap)
        out[0] = 0;
    if (!was || !now)
        return 0;
    size_t n = 0, o = 0;
    /* every line of either text: the table's names, then per-layer keep_p_layerD lines */
    for (size_t i = 0; i < sizeof CANON_KEYS / sizeof CANON_KEYS[0] + FLM_MAX_LAYERS; i++) {
        char name[32], key[64];
        int kind = 1;
        if (i < sizeof CANON_KEYS / sizeof CANON_KEYS[0]) {
            snprintf(name, sizeof name, "%s", CANON_KEYS[i].canon);
            snprintf(key, sizeof key, "%s", CANON_KEYS[i].key);
            kind = CANON_KEYS[i].kind;
        } else {
            const size_t d = i - sizeof CANON_KEYS / sizeof CANON_KEYS[0];
            snprintf(name, sizeof name, "keep_p_layer%zu", d);
            snprintf(key, sizeof key, "policy.keep_layers[%zu]", d);
        }
        const size_t nl = strlen(name);
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        const int ha = canon_find(was, was_len, name, nl, &a, &al);
        const int hb = canon_find(now, now_len, name, nl, &b, &bl);
        if (!ha && !hb)
            continue;
        if (ha && hb && al == bl && memcmp(a, b, al) == 0)
            continue;
        if (inert >= 0 && (canon_inert(now, now_len, name, nl) != NULL) != inert)
            continue;
        if (i >= sizeof CANON_KEYS / sizeof CANON_KEYS[0]) {
            /* a layer without its own keep value follows policy.keep: said once, there. A layer
             * only one side's model.arch has (said as model.arch) and that follows policy.keep
             * there is no setting of its own either: a changed arch of fewer layers listed
             * "policy.keep_layers[1] 0.75 -> (none)" of a run that never set keep_layers */
            const char *pa = NULL, *pb = NULL;
            size_t pal = 0, pbl = 0;
            const int fa = !ha || (canon_find(was, was_len, "keep_p", 6, &pa, &pal) &&
                                   pal == al && memcmp(pa, a, al) == 0);
            const int fb = !hb || (canon_find(now, now_len, "keep_p", 6, &pb, &pbl) &&
                                   pbl == bl && memcmp(pb, b, bl) == 0);
            if (fa && fb)
                continue;
        }
        char va[128], vb[128];
        canon_show(va, sizeof va, ha ? a : "", ha ? al : 0, kind);
        canon_show(vb, sizeof vb, hb ? b : "", hb ? bl : 0, kind);
        n++;
        if (out && cap && o < cap) {
            const int w = snprintf(out + o, cap - o, "%s%s %s -> %s", n > 1 ? ", " : "", key, va,
                                   vb);
            o = w < 0 ? cap : o + (size_t)w;
        }
    }
    return n;
}

size_t fls_config_canon_diff(const char *was, size_t was_len, const char *now, size_t now_len,
                             char *out, size_t cap)
{
    return canon_diff(was, was_len, now, now_len, out, cap, -1);
}

size_t fls_config_canon_diff_effect(const char *was, size_t was_len, const char *now,
                                    size_t now_len, int inert, char *out, size_t cap)
{
    return canon_diff(was, was_len, now, now_len, out, cap, inert ? 1 : 0);
}

/* Why canonical line `name` (nl bytes) has no effect under the settings of text t (its policy,
 * optimizer and aggregation mode), or NULL when it has one. The one rule: a resume passes over
 * such a line (fls_config_canon_same_effect), and fl_server warns of such a key at start
 * (fls_config_inert). */
static const char *canon_inert(const char *t, size_t n, const char *name, size_t nl)
{
    const char *v = NULL;
    size_t vl = 0;
#define IS(key, val) (canon_find(t, n, key, strlen(key), &v, &vl) && vl == strlen(val) && \
                      memcmp(v, val, vl) == 0)
#define NAME(s) (nl == strlen(s) && memcmp(name, s, nl) == 0)
#define WHEN(cond, why) return (cond) ? (why) : NULL
    const int full = IS("policy", "full"), fd = IS("policy", "fd");
    const int afd = IS("policy", "afd-single") || IS("policy", "afd-multi");
    const int avgm = IS("opt", "fedavgm");
    const int adam_yogi = IS("opt", "fedadam") || IS("opt", "fedyogi");
    const int adaptive = adam_yogi || IS("opt", "fedadagrad");
    const int mean = IS("agg_mode", "0"), trimmed = IS("agg_mode", "1");
    const int layer = nl > 12 && memcmp(name, "keep_p_layer", 12) == 0;
    if (NAME("keep_p") || layer)
        WHEN(full, "policy.kind full trains the whole model");
    if (NAME("agg_dilute"))
        WHEN(full, "under policy.kind full every client trains every coordinate");
    if (NAME("fd_per_client"))
        WHEN(!fd, "it applies to policy.kind fd");
    if (NAME("score_accumulate") || NAME("eps_rel"))
        WHEN(!afd, "it applies to policy.kind afd-single and afd-multi");
    if (NAME("loss_unweighted"))
        WHEN(!IS("policy", "afd-single"), "it applies to policy.kind afd-single");
    if (NAME("opt_momentum"))
        WHEN(!avgm, "it applies to optimizer.kind fedavgm");
    if (NAME("opt_beta1") || NAME("opt_tau") || NAME("opt_v0"))
        WHEN(!adaptive, "it applies to the adaptive optimizer.kinds");
    if (NAME("opt_beta2"))
        WHEN(!adam_yogi, "it applies to optimizer.kind fedadam and fedyogi");
    if (NAME("agg_trim"))
        WHEN(!trimmed, "it applies to aggregation.mode trimmed-mean");
    if (NAME("agg_max_updates"))
        WHEN(mean, "it applies to the robust aggregation.modes");
    return NULL;
#undef IS
#undef NAME
#undef WHEN
}

fl_status fls_config_inert(const fls_config *cfg,
                           void (*say)(void *u, const char *key, const char *why), void *u)
{
    char *text = malloc(FLS_CONFIG_CANON_MAX);
    if (!text)
        return FL_ERR_NOMEM;
    size_t n = 0;
    const fl_status st = fls_config_canon(cfg, text, FLS_CONFIG_CANON_MAX, &n);
    for (size_t i = 0; st == FL_OK && i < sizeof CANON_KEYS / sizeof CANON_KEYS[0]; i++) {
        const char *name = CANON_KEYS[i].canon;
        const char *why = canon_inert(text, n, name, strlen(name));
        if (why)
            say(u, CANON_KEYS[i].key, why);
        if (why && !strcmp(name, "keep_p")) /* the layers' values follow the same rule */
            say(u, "policy.keep_layers", why);
    }
    free(text);
    return st;
}

/* Every line of a[0..an) that is not inert under `now` is in b[0..bn) with the same value. */
static int canon_lines_in(const char *a, size_t an, const char *b, size_t bn, const char *now,
                          size_t now_len)
{
    for (size_t p = 0; p < an;) {
        const char *nlc = memchr(a + p, '\n', an - p);
        const size_t e = nlc ? (size_t)(nlc - a) : an;
        const char *eq = memchr(a + p, '=', e - p);
        if (!eq)
            return 0; /* not a canonical line */
        const size_t nl = (size_t)(eq - (a + p));
        const char *v = NULL;
        size_t vl = 0;
        if (!canon_inert(now, now_len, a + p, nl) &&
            (!canon_find(b, bn, a + p, nl, &v, &vl) || vl != e - p - nl - 1 ||
             memcmp(v, eq + 1, vl) != 0))
            return 0;
        p = e + 1;
    }
    return 1;
}

int fls_config_canon_same_effect(const char *was, size_t was_len, const char *now,
                                 size_t now_len)
{
    if (!was || !now)
        return 0;
    return canon_lines_in(was, was_len, now, now_len, now, now_len) &&
           canon_lines_in(now, now_len, was, was_len, now, now_len);
}

static void jnum(canon *c, const char *key, double v)
{
    if (isfinite(v))
        put(c, ",\"%s\":%.9g", key, v);
    else
        put(c, ",\"%s\":null", key);
}

size_t fls_round_metrics_json(const fls_round_metrics *m, char *buf, size_t cap)
{
    if (!m)
        return 0;
    canon *c = calloc(1, sizeof *c);
    if (!c) {
        if (buf && cap)
            buf[0] = 0;
        return 0;
    }
    static const char *const reasons[] = {"?", "quorum", "deadline", "exhausted"};
    put(c, "{\"round\":%llu,\"model_version\":%llu,\"closed_by\":\"%s\",\"policy\":\"%s\"",
        (unsigned long long)m->round, (unsigned long long)m->model_version,
        reasons[(unsigned)m->closed_by < 4 ? m->closed_by : 0], fls_policy_kind_name(m->policy));
    put(c, ",\"connected\":%u,\"selected\":%u,\"quorum\":%u,\"reported\":%u,\"late\":%u,"
           "\"failed\":%u,\"rejected\":%u",
        m->connected, m->selected, m->quorum, m->reported, m->late, m->failed, m->rejected);
    put(c, ",\"bytes_down\":%llu,\"bytes_up\":%llu,\"samples\":%llu",
        (unsigned long long)m->bytes_down, (unsigned long long)m->bytes_up,
        (unsigned long long)m->samples);
    jnum(c, "mean_loss", m->mean_loss);
    put(c, ",\"evaluated\":%s", m->evaluated ? "true" : "false");
    jnum(c, "test_accuracy", m->evaluated ? m->test_accuracy : NAN);
    jnum(c, "test_loss", m->evaluated ? m->test_loss : NAN);
    jnum(c, "t_start", m->t_start);
    jnum(c, "t_end", m->t_end);
    jnum(c, "duration_s", m->duration_s);
    if (m->time_unix > 0 && isfinite(m->time_unix))
        put(c, ",\"time_unix\":%.3f", m->time_unix); /* milliseconds, not 9 digits */
    if (m->run_id) /* as the log writes it: "a fresh run: id ..." */
        put(c, ",\"run_id\":\"%016llx\"", (unsigned long long)m->run_id);
    if (m->afd.afd) {
        put(c, ",\"afd\":{\"kept\":%u,\"resampled\":%u,\"clients\":%u", m->afd.kept,
            m->afd.resampled, m->afd.clients);
        jnum(c, "loss", m->afd.have_loss ? m->afd.loss : NAN);
        jnum(c, "score_max", m->afd.score_max);
        jnum(c, "score_mean", m->afd.score_mean);
        put(c, ",\"score_zero\":%llu,\"hist\":[", (unsigned long long)m->afd.score_zero);
        for (int b = 0; b < FLS_POLICY_HIST_BINS; b++)
            put(c, "%s%llu", b ? "," : "", (unsigned long long)m->afd.hist[b]);
        put(c, "]}");
    }
    put(c, "}");
    const size_t n = c->len;
    if (buf && cap) {
        const size_t k = n < cap - 1 ? n : cap - 1;
        memcpy(buf, c->buf, k);
        buf[k] = 0;
    }
    free(c);
    return n;
}
