/* fls_round.c: configuration defaults, validation, digest; metrics as JSON (see fls_round.h). */
#include "fls_round.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    char why[160];
    if (memchr(cfg->arch, 0, sizeof cfg->arch) == NULL ||
        flm_arch_parse(cfg->arch, &a, why, sizeof why) != FL_OK)
        return cfg_fail(err, errlen, "arch: %s", memchr(cfg->arch, 0, sizeof cfg->arch) ? why
                                                                                       : "too long");
    flz_spec sp;
    if (memchr(cfg->down_codec, 0, sizeof cfg->down_codec) == NULL ||
        flz_spec_parse(cfg->down_codec, &sp, why, sizeof why) != FL_OK)
        return cfg_fail(err, errlen, "down_codec: %s", why);
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
    fls_agg_free(g);
    if (st == FL_ERR_NOMEM)
        return st;
    if (st != FL_OK)
        return cfg_fail(err, errlen, "agg: an aggregation option is outside its domain");
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

fl_status fls_config_digest(const fls_config *cfg, uint8_t out[FL_SHA256_LEN])
{
    if (!cfg || !out)
        return FL_ERR_INVALID_ARG;
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
    fl_status st = c->overflow ? FL_ERR_INTERNAL : fl_sha256_digest(out, c->buf, c->len);
    free(c);
    return st;
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
