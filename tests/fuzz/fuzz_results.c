/* fuzz_results: the readers of a saved simulator run (sim/flsim.h), which `fl_sim experiment afd`
 * uses to resume: rounds.csv (flsim_parse_rounds_csv) and summary.json (flsim_parse_summary,
 * against the default settings); and a run's resume file (flsim_resume_parse, `fl_sim --resume`)
 * and its clients' residual file (flsim_resid_parse), each as it is and with its trailing SHA-256
 * made to match, so that mutations reach the fields behind the checksum. Every input goes to
 * all of them. rounds.csv (this fl_sim's header or an earlier one's, without eval_wall_s): FL_OK with rounds 1..n in order, cumulative bytes that add up, accuracies in [0, 1] and an eval_wall_s that is NaN or at least 0, or FL_ERR_RESULTS_FORMAT
 * with a reason that names a line (or says no rounds follow the header) and nothing returned.
 * summary.json: FL_OK, FL_ERR_RESULTS_FORMAT or FL_ERR_RESULTS_MISMATCH with a reason, or
 * FL_ERR_UNSUPPORTED without jansson. Never a crash, a leak or an unbounded allocation. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fl_sha256.h"
#include "flsim.h"
#include "flsim_internal.h"

/* flsim_resume_parse: FL_OK with rounds 1..n whose bytes add up and a checkpoint of round n, or
 * a refusal with a reason and nothing kept. */
static void resume_one(const uint8_t *data, size_t size)
{
    flsim_resume_file f;
    char err[256] = "";
    const fl_status st = flsim_resume_parse(data, size, &f, err, sizeof err);
    if (st == FL_OK) {
        if (!f.config_json || f.ckpt.round != f.n_records || (f.n_records && !f.records))
            abort();
        for (size_t i = 0; i < f.n_records; i++)
            if (f.records[i].round != i + 1 ||
                f.records[i].cum_bytes_up - (i ? f.records[i - 1].cum_bytes_up : 0) !=
                    f.records[i].bytes_up)
                abort();
    } else {
        if (f.config_json || f.records || f.n_records || f.ckpt.params)
            abort();
        if (st != FL_ERR_NOMEM && (st != FL_ERR_RESULTS_FORMAT || !err[0]))
            abort();
    }
    flsim_resume_free(&f);
}

/* flsim_resid_parse, expecting the round, ranks and sizes the input's own header names (so that
 * mutations get past them), within bounds: FL_OK with residuals of n_params floats, each of this
 * rank's clients, or a refusal with a reason and none kept. */
#define RESID_CLIENTS 64
static void resid_one(const uint8_t *data, size_t size)
{
    uint32_t round = 3, rank = 0, ranks = 1, clients = 8;
    uint64_t n_params = 16;
    if (size >= 40) {
        memcpy(&round, data + 12, 4);
        memcpy(&rank, data + 16, 4);
        memcpy(&ranks, data + 20, 4);
        memcpy(&clients, data + 24, 4);
        memcpy(&n_params, data + 28, 8);
        if (ranks == 0 || ranks > 8 || rank >= ranks)
            rank = 0, ranks = 1;
        if (clients > RESID_CLIENTS)
            clients = RESID_CLIENTS;
        if (n_params > 4096)
            n_params = 16;
    }
    float *resid[RESID_CLIENTS] = {0};
    size_t resid_n[RESID_CLIENTS] = {0};
    char err[256] = "";
    const fl_status st = flsim_resid_parse(data, size, round, rank, ranks, clients,
                                           (size_t)n_params, NULL, resid, resid_n, err,
                                           sizeof err);
    for (uint32_t k = 0; k < RESID_CLIENTS; k++) {
        if (resid[k] && (st != FL_OK || k >= clients || k % ranks != rank ||
                         resid_n[k] != n_params))
            abort();
        if (!resid[k] && resid_n[k])
            abort();
        free(resid[k]);
    }
    if (st != FL_OK && st != FL_ERR_NOMEM && (st != FL_ERR_RESULTS_FORMAT || !err[0]))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    flsim_round_record *rec = NULL;
    size_t n = 0;
    fl_status st = flsim_parse_rounds_csv((const char *)data, size, &rec, &n, err, sizeof err);
    if (st == FL_OK) {
        if (!rec || n == 0)
            abort();
        for (size_t i = 0; i < n; i++) {
            const flsim_round_record *r = &rec[i];
            if (r->round != i + 1 || !isfinite(r->vtime_s) || r->closed_by < 0 || r->closed_by > 3)
                abort();
            if (r->evaluated && !(r->test_acc >= 0 && r->test_acc <= 1))
                abort();
            if (r->cum_bytes_down - (i ? rec[i - 1].cum_bytes_down : 0) != r->bytes_down)
                abort();
            if (!isnan(r->eval_wall_s) && !(r->eval_wall_s >= 0 && isfinite(r->eval_wall_s)))
                abort(); /* NaN: not known (an earlier fl_sim's file, an empty cell) */
        }
        free(rec);
    } else {
        if (rec || n)
            abort();
        if (st != FL_ERR_NOMEM && (st != FL_ERR_RESULTS_FORMAT ||
                                   (strncmp(err, "line ", 5) != 0 && !strstr(err, "no rounds"))))
            abort();
    }
    resume_one(data, size);
    resid_one(data, size);
    if (size > FL_SHA256_LEN) {
        uint8_t *fixed = malloc(size);
        if (!fixed)
            return 0;
        memcpy(fixed, data, size);
        if (fl_sha256_digest(fixed + size - FL_SHA256_LEN, fixed, size - FL_SHA256_LEN) == FL_OK) {
            resume_one(fixed, size);
            resid_one(fixed, size);
        }
        free(fixed);
    }
    const flsim_config c = flsim_config_default();
    flsim_result res;
    err[0] = '\0';
    st = flsim_parse_summary((const char *)data, size, &c, NULL, &res, err, sizeof err);
    if (st != FL_OK && st != FL_ERR_RESULTS_FORMAT && st != FL_ERR_RESULTS_MISMATCH &&
        st != FL_ERR_UNSUPPORTED && st != FL_ERR_NOMEM)
        abort();
    if (st != FL_OK && !err[0])
        abort();
    if (st == FL_OK && (res.rounds == 0 || res.n_params == 0 ||
                        (res.target_reached && res.rounds_to_target > res.rounds)))
        abort();
    return 0;
}
