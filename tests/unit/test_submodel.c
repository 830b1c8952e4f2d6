/* Unit tests for models/flm_arch.c and models/flm_submodel.c: architecture parsing, submodel
 * shapes, keep-sets, and gather / scatter / runs checked against an independent reference that
 * derives every submodel element's global index from the layer semantics (shared AFD.md "Units"),
 * not from flm_tensor's row/column fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fl_rng.h"
#include "fl_status.h"
#include "flm_arch.h"
#include "flm_model.h"
#include "flm_optim.h"
#include "flm_submodel.h"
#include "test_heap.h"

/* ------------------------------------------------------------------------------------------ */
/* architectures                                                                                */

static flm_arch parse_ok(const char *spec)
{
    flm_arch a;
    char err[128];
    const fl_status st = flm_arch_parse(spec, &a, err, sizeof err);
    if (st != FL_OK)
        fail_msg("'%s' rejected: %s", spec, err);
    return a;
}

static const flm_tensor *tensor(const flm_arch *a, const char *name)
{
    const int t = flm_arch_find_tensor(a, name);
    if (t < 0)
        fail_msg("no tensor %s in %s", name, a->spec);
    return &a->tensors[t];
}

static void test_arch_counts(void **state)
{
    (void)state;
    flm_arch a = parse_ok("cnn");
    assert_int_equal(a.n_params, 6603710);
    assert_string_equal(a.spec, "cnn:62:28x28x1");
    assert_int_equal(a.n_drop, 3);
    assert_int_equal(a.drop_units[0], 32);
    assert_int_equal(a.drop_units[1], 64);
    assert_int_equal(a.drop_units[2], 2048);
    assert_int_equal(a.classes, 62);

    /* By hand: W (OC x C) + b (OC) per dense layer. */
    a = parse_ok("mlp:784-200-200-10");
    assert_int_equal(a.n_params, 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10);
    assert_int_equal(a.n_drop, 2);
    assert_int_equal(a.classes, 10);

    /* Embedding V*E, per LSTM 4H*(C + H) + 4H, dense V*H + V. */
    a = parse_ok("lstm");
    assert_string_equal(a.spec, "lstm:80:8:256:2:80");
    assert_int_equal(a.n_params, 80 * 8 + (4 * 256 * (8 + 256) + 4 * 256) +
                                     (4 * 256 * (256 + 256) + 4 * 256) + 80 * 256 + 80);
    assert_int_equal(a.n_drop, 2);
    assert_int_equal(a.token_input, 1);

    /* 12x12 -> pool 6x6 -> pool 3x3: flatten 64*9. */
    a = parse_ok("cnn:10:12x12x1");
    assert_int_equal(a.n_params, (32 * 25 + 32) + (64 * 32 * 25 + 64) + (2048 * 576 + 2048) +
                                     (10 * 2048 + 10));
    a = parse_ok("lstm:20:4:8:2:6");
    assert_int_equal(a.n_params, 20 * 4 + (32 * (4 + 8) + 32) + (32 * (8 + 8) + 32) + 20 * 8 + 20);

    /* MoGE: dense IN*H + H; gate N*H + N; experts N*(H*H + H); dense CLASSES*H + CLASSES. */
    a = parse_ok("moge");
    assert_string_equal(a.spec, "moge:784:128:4:4:1:10");
    assert_int_equal(a.n_params, 368026);
    assert_int_equal(a.n_params, (784 * 128 + 128) + (16 * 128 + 16) + 16 * (128 * 128 + 128) +
                                     (10 * 128 + 10));
    assert_int_equal(a.n_drop, 2);
    assert_int_equal(a.drop_units[0], 128);
    assert_int_equal(a.drop_groups[0], 1);
    assert_int_equal(a.drop_units[1], 16); /* experts */
    assert_int_equal(a.drop_groups[1], 4);
    assert_int_equal(flm_arch_keep_units(&a, 1, 0.75), 12); /* 3 of 4 in each group */
    assert_int_equal(flm_arch_keep_units(&a, 1, 0.6), 8);   /* round(2.4) = 2 of each */
    assert_int_equal(flm_arch_keep_units(&a, 1, 0.01), 4);  /* at least one of each */
    assert_int_equal(flm_arch_keep_units(&a, 0, 0.75), 96);
    /* AUX, the load-balancing coefficient: the same model (no parameter of its own), and a
     * canonical spec without trailing zeros, and without the field when it is 0 */
    static const struct { const char *spec, *canon; int ppm; } aux[] = {
        {"moge:784:128:4:4:1:10:0.01", "moge:784:128:4:4:1:10:0.01", 10000},
        {"moge:784:128:4:4:1:10:0.0100", "moge:784:128:4:4:1:10:0.01", 10000},
        {"moge:784:128:4:4:1:10:1", "moge:784:128:4:4:1:10:1", 1000000},
        {"moge:784:128:4:4:1:10:1.000000", "moge:784:128:4:4:1:10:1", 1000000},
        {"moge:784:128:4:4:1:10:0.000001", "moge:784:128:4:4:1:10:0.000001", 1},
        {"moge:784:128:4:4:1:10:0.5", "moge:784:128:4:4:1:10:0.5", 500000},
        {"moge:784:128:4:4:1:10:0", "moge:784:128:4:4:1:10", 0},
        {"moge:784:128:4:4:1:10:0.000", "moge:784:128:4:4:1:10", 0},
    };
    for (size_t i = 0; i < sizeof aux / sizeof aux[0]; i++) {
        const flm_arch m = parse_ok(aux[i].spec);
        assert_string_equal(m.spec, aux[i].canon);
        assert_int_equal(m.n_params, 368026);
        int seen = 0;
        for (int k = 0; k < m.n_layers; k++) {
            assert_int_equal(m.layers[k].aux_ppm, m.layers[k].op == FLM_OP_MOGE ? aux[i].ppm : 0);
            seen += m.layers[k].op == FLM_OP_MOGE;
        }
        assert_int_equal(seen, 1);
        assert_string_equal(parse_ok(m.spec).spec, m.spec);
    }
    /* a forward runs the gate over all 16 experts but only the top 1 of each of the 4 groups, and
     * routes (one scan of the 16 logits for K = 1) */
    assert_true(flm_arch_forward_flops(&a) ==
                784.0 * 128 + 16.0 * 128 + 4.0 * 128 * 128 + 128.0 * 10 + 16.0 * 1);

    /* A single dense layer has nothing to drop. */
    a = parse_ok("mlp:5-3");
    assert_int_equal(a.n_drop, 0);
    assert_int_equal(a.n_params, 18);
}

static void test_arch_coupling(void **state)
{
    (void)state;
    const flm_arch c = parse_ok("cnn");
    const flm_tensor *t = tensor(&c, "conv0.w");
    assert_int_equal(t->row_drop, 0);
    assert_int_equal(t->col_drop, -1);
    t = tensor(&c, "conv1.w");
    assert_int_equal(t->row_drop, 1);
    assert_int_equal(t->col_drop, 0);
    assert_int_equal(t->cols, 32);
    assert_int_equal(t->inner, 25);
    t = tensor(&c, "dense0.w");
    assert_int_equal(t->row_drop, 2);
    assert_int_equal(t->col_drop, 1);
    assert_int_equal(t->cols, 64);
    assert_int_equal(t->inner, 49);
    t = tensor(&c, "dense1.w");
    assert_int_equal(t->row_drop, -1);
    assert_int_equal(t->col_drop, 2);
    t = tensor(&c, "dense1.b");
    assert_int_equal(t->row_drop, -1);

    const flm_arch l = parse_ok("lstm");
    t = tensor(&l, "embed.w");
    assert_int_equal(t->row_drop, -1);
    assert_int_equal(t->col_drop, -1);
    t = tensor(&l, "lstm0.w_ih");
    assert_int_equal(t->row_drop, 0);
    assert_int_equal(t->row_blocks, 4);
    assert_int_equal(t->col_drop, -1);
    t = tensor(&l, "lstm0.w_hh");
    assert_int_equal(t->row_drop, 0);
    assert_int_equal(t->col_drop, 0);
    t = tensor(&l, "lstm1.w_ih");
    assert_int_equal(t->col_drop, 0);
    assert_int_equal(t->row_drop, 1);
    t = tensor(&l, "lstm1.b");
    assert_int_equal(t->row_blocks, 4);
    t = tensor(&l, "dense0.w");
    assert_int_equal(t->col_drop, 1);
    assert_int_equal(t->row_drop, -1);
}

static void test_arch_bad_specs(void **state)
{
    (void)state;
    static const char *bad[] = {
        "", "foo", "mlp", "mlp:", "mlp:784", "mlp:784-", "mlp:0-10", "mlp:784--10",
        "mlp:784-10x", "mlp:-5-10", "mlp:99999999-10", "mlpx:5-3", "cnn62", "cnn:0",
        "cnn:10:2x2x1", "cnn:10:28x28", "cnn:10:28x28x1x", "cnn:10:28x28x100", "cnn:10:",
        "lstm:80:8", "lstm:80:8:256:2", "lstm:80:8:256:2:80:1", "lstm:80:8:256:9:80",
        "lstm:80:8:256:0:80", "lstm:80:8:256:2:5000",
        "mlp:1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1", /* > 64 chars */
        "mlp:1-1-1-1-1-1-1-1-1-1-1-1-1-1-1",                                 /* > 24 layers */
        "mlp:65536-65536-65536",                                              /* > 2^31 params */
        "mlp: 5-3", "mlp:+5-3", "mlp:5- 3", "cnn: 10", "cnn:10: 12x12x1", "lstm:80: 8:256:2:80",
        "mlp:5-3 ", "cnn:10:12x 12x1",
        "moge:", "moge:784:128:4:4:1", "moge:784:128:4:4:1:10:2", "moge:784:128:4:4:5:10",
        "moge:784:128:65:4:1:10", "moge:784:128:4:257:1:10", "moge:784:128:0:4:1:10",
        "moge:784:128:4:4:0:10", "mogex", "moge:784: 128:4:4:1:10", "moge:784:128:2:32:17:10",
        "moge:0x310:128:4:4:1:10", "moge:784:128:4:4:1:0x0a",
        /* AUX: a decimal from 0 to 1, at most 6 decimals */
        "moge:784:128:4:4:1:10:", "moge:784:128:4:4:1:10:1.5", "moge:784:128:4:4:1:10:1.000001",
        "moge:784:128:4:4:1:10:0.0000001", "moge:784:128:4:4:1:10:-0.1",
        "moge:784:128:4:4:1:10:0.", "moge:784:128:4:4:1:10:.5", "moge:784:128:4:4:1:10: 0.1",
        "moge:784:128:4:4:1:10:0.1:", "moge:784:128:4:4:1:10:1e-2", "moge:784:128:4:4:1:10:0x1",
        "moge:784:128:4:4:1:10:00000001", "moge:784:128:4:4:1:10:nan", "moge:784:128:4:4:1:10:0,1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        flm_arch a;
        char err[128] = "";
        const fl_status st = flm_arch_parse(bad[i], &a, err, sizeof err);
        if (st != FL_ERR_MODEL_SPEC)
            fail_msg("'%s' gave %s", bad[i], fl_status_name(st));
        assert_true(strlen(err) > 0);
    }
    /* a moge field out of range is named, with its range */
    static const struct { const char *spec, *want; } said[] = {
        {"moge:784:0:2:8:2:10", "moge: HIDDEN must be 1 to 65536, not 0"},
        {"moge:784:128:100000:4:1:10", "moge: GROUPS must be 1 to 64, not 100000"},
        {"moge:784:128:4:300:1:10", "moge: EXPERTS must be 1 to 256, not 300"},
        {"moge:784:128:2:40:17:10", "moge: TOPK must be 1 to 16, not 17"},
        {"moge:784:128:4:4:5:10", "moge: TOPK must be at most EXPERTS (a group's, 4), not 5"},
        {"moge:784:128:4:4:1:0", "moge: CLASSES must be 1 to 65536, not 0"},
        /* a field that is not a number is not said to be one out of range ("not 0") */
        {"moge:0x310:128:4:4:1:10", "moge: expected moge:IN:HIDDEN:GROUPS:EXPERTS:TOPK:CLASSES"},
        {"moge:784:0x80:4:4:1:10", "moge: expected moge:IN:HIDDEN:GROUPS:EXPERTS:TOPK:CLASSES"},
        {"moge:784:128:4:4:1:0x0a", "moge: expected moge:IN:HIDDEN:GROUPS:EXPERTS:TOPK:CLASSES"},
        {"moge:784:128:4:4:1:10:1.5", "moge: AUX (the load-balancing loss's coefficient) must be "
                                      "a decimal from 0 to 1 with at most 6 decimals, like 0.01, "
                                      "not '1.5'"},
    };
    for (size_t i = 0; i < sizeof said / sizeof said[0]; i++) {
        flm_arch m;
        char err[128] = "";
        assert_int_equal(flm_arch_parse(said[i].spec, &m, err, sizeof err), FL_ERR_MODEL_SPEC);
        assert_string_equal(err, said[i].want);
    }
    flm_arch a;
    assert_int_equal(flm_arch_parse(NULL, &a, NULL, 0), FL_ERR_MODEL_SPEC);
}

/* Internal consistency of an accepted architecture: dense offsets, shapes that multiply out,
 * coupling fields that point at droppable layers of the right size, and a canonical spec that
 * parses back to itself. */
static void check_arch_invariants(const flm_arch *a, int is_sub)
{
    size_t off = 0;
    for (int t = 0; t < a->n_tensors; t++) {
        const flm_tensor *x = &a->tensors[t];
        assert_int_equal(x->offset, off);
        size_t numel = 1;
        for (int k = 0; k < x->rank; k++)
            numel *= (size_t)x->shape[k];
        assert_int_equal(x->numel, numel);
        assert_int_equal((size_t)x->rows * (size_t)x->cols * (size_t)x->inner, numel);
        if (x->row_drop >= 0)
            assert_int_equal(x->rows, x->row_blocks * a->drop_units[x->row_drop]);
        if (x->col_drop >= 0)
            assert_int_equal(x->cols, a->drop_units[x->col_drop]);
        off += numel;
    }
    assert_int_equal(a->n_params, off);
    if (is_sub) /* a submodel's arch keeps the spec of the model it was cut from */
        return;
    flm_arch b;
    assert_int_equal(flm_arch_parse(a->spec, &b, NULL, 0), FL_OK);
    assert_string_equal(b.spec, a->spec);
    assert_int_equal(b.n_params, a->n_params);
}

/* Spec strings arrive from the wire (the Task's architecture id): deterministic mutations of
 * valid specs either parse into a consistent architecture or are refused, never anything else. */
static void test_arch_spec_mutations(void **state)
{
    (void)state;
    static const char *seeds[] = {"mlp:784-200-200-10", "cnn:62:28x28x1", "lstm:80:8:256:2:80",
                                  "cnn:10:12x12x1", "lstm:20:4:8:2:6", "mlp:5-3",
                                  "moge:784:128:4:4:1:10", "moge:12:9:3:4:2:5:0.25"};
    static const char alphabet[] = "0123456789:-x mlpcnst+\t.";
    fl_rng r = fl_rng_stream(13, 0, 0, FL_RNG_TEST);
    int accepted = 0;
    for (int it = 0; it < 6000; it++) {
        char buf[96];
        snprintf(buf, sizeof buf, "%s", seeds[it % (int)(sizeof seeds / sizeof seeds[0])]);
        const int edits = 1 + (int)fl_rng_below(&r, 3);
        for (int e = 0; e < edits; e++) {
            const size_t len = strlen(buf);
            const size_t at = fl_rng_below(&r, (uint32_t)len + 1);
            const char ch = alphabet[fl_rng_below(&r, sizeof alphabet - 1)];
            switch (fl_rng_below(&r, 3)) {
            case 0: /* replace */
                if (at < len)
                    buf[at] = ch;
                break;
            case 1: /* insert */
                if (len + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, len - at + 1);
                    buf[at] = ch;
                }
                break;
            default: /* delete */
                if (at < len)
                    memmove(buf + at, buf + at + 1, len - at);
                break;
            }
        }
        flm_arch a;
        const fl_status st = flm_arch_parse(buf, &a, NULL, 0);
        if (st == FL_OK) {
            accepted++;
            check_arch_invariants(&a, 0);
            /* No spaces or signs smuggled through; a point only in a moge's AUX (0.0 is one) */
            assert_null(strpbrk(buf, " \t+"));
            if (strchr(buf, '.'))
                assert_true(!strncmp(buf, "moge:", 5));
            if (a.n_params < 3000000) {
                flm_keepset ks;
                assert_int_equal(flm_keepset_random(&ks, &a, 0.5, &r), FL_OK);
                flm_submodel *sm;
                assert_int_equal(flm_submodel_new(&a, &ks, &sm), FL_OK);
                check_arch_invariants(flm_submodel_arch(sm), 1);
                flm_submodel_free(sm);
                flm_keepset_free(&ks);
            }
        } else {
            assert_int_equal(st, FL_ERR_MODEL_SPEC);
        }
    }
    assert_true(accepted > 100); /* the mutations explore both sides */
}

static void test_arch_sub_shapes(void **state)
{
    (void)state;
    const flm_arch c = parse_ok("cnn");
    const int u[3] = {24, 48, 1536};
    flm_arch s;
    assert_int_equal(flm_arch_sub(&c, u, &s), FL_OK);
    const flm_tensor *t = tensor(&s, "conv0.w");
    assert_int_equal(t->shape[0], 24);
    assert_int_equal(t->shape[1], 1);
    assert_int_equal(t->numel, 24 * 25);
    t = tensor(&s, "conv1.w");
    assert_int_equal(t->shape[0], 48);
    assert_int_equal(t->shape[1], 24);
    assert_int_equal(t->numel, 48 * 24 * 25);
    t = tensor(&s, "dense0.w");
    assert_int_equal(t->shape[0], 1536);
    assert_int_equal(t->shape[1], 48 * 49);
    assert_int_equal(t->cols, 48);
    assert_int_equal(t->inner, 49);
    t = tensor(&s, "dense1.w");
    assert_int_equal(t->shape[0], 62);
    assert_int_equal(t->shape[1], 1536);
    assert_int_equal(tensor(&s, "dense1.b")->numel, 62);
    assert_int_equal(s.n_params, (24 * 25 + 24) + (48 * 24 * 25 + 48) + (1536 * 48 * 49 + 1536) +
                                     (62 * 1536 + 62));
    /* Offsets are dense in the small buffer. */
    for (int i = 1; i < s.n_tensors; i++)
        assert_int_equal(s.tensors[i].offset, s.tensors[i - 1].offset + s.tensors[i - 1].numel);
    assert_int_equal(s.drop_units[2], 1536);
    /* Its spec names it: the full one and the units kept (flm_arch.h). */
    assert_string_equal(s.spec, "cnn:62:28x28x1/24,48,1536");
    /* Layer shapes follow: dense0 sees 48*7*7 inputs. */
    for (int i = 0; i < s.n_layers; i++)
        if (s.layers[i].op == FLM_OP_DENSE && s.layers[i].drop == 2)
            assert_int_equal(s.layers[i].C, 48 * 49);
    assert_true(flm_arch_forward_flops(&s) < flm_arch_forward_flops(&c));

    const flm_arch l = parse_ok("lstm");
    const int v[2] = {200, 100};
    assert_int_equal(flm_arch_sub(&l, v, &s), FL_OK);
    assert_int_equal(tensor(&s, "embed.w")->numel, 80 * 8);
    t = tensor(&s, "lstm0.w_ih");
    assert_int_equal(t->shape[0], 800);
    assert_int_equal(t->shape[1], 8);
    t = tensor(&s, "lstm0.w_hh");
    assert_int_equal(t->shape[0], 800);
    assert_int_equal(t->shape[1], 200);
    t = tensor(&s, "lstm1.w_ih");
    assert_int_equal(t->shape[0], 400);
    assert_int_equal(t->shape[1], 200);
    t = tensor(&s, "lstm1.w_hh");
    assert_int_equal(t->shape[1], 100);
    assert_int_equal(tensor(&s, "lstm1.b")->numel, 400);
    t = tensor(&s, "dense0.w");
    assert_int_equal(t->shape[0], 80);
    assert_int_equal(t->shape[1], 100);
    assert_string_equal(s.spec, "lstm:80:8:256:2:80/200,100");

    /* An mlp's is the mlp spec of the kept widths, which parses to the same shapes. */
    const flm_arch m = parse_ok("mlp:784-200-100-10");
    const int w[2] = {150, 75};
    assert_int_equal(flm_arch_sub(&m, w, &s), FL_OK);
    assert_string_equal(s.spec, "mlp:784-150-75-10");
    const flm_arch back = parse_ok(s.spec);
    assert_int_equal(back.n_params, s.n_params);
    assert_int_equal(back.n_tensors, s.n_tensors);
    for (int i = 0; i < s.n_tensors; i++) {
        assert_string_equal(back.tensors[i].name, s.tensors[i].name);
        assert_int_equal(back.tensors[i].numel, s.tensors[i].numel);
        assert_memory_equal(back.tensors[i].shape, s.tensors[i].shape, sizeof s.tensors[i].shape);
    }
    /* Two submodels of the same size but other shapes have other specs. */
    const flm_arch two = parse_ok("cnn:10:28x28x1");
    const int ua[3] = {8, 16, 64}, ub[3] = {16, 8, 64};
    flm_arch sa, sb;
    assert_int_equal(flm_arch_sub(&two, ua, &sa), FL_OK);
    assert_int_equal(flm_arch_sub(&two, ub, &sb), FL_OK);
    assert_string_not_equal(sa.spec, sb.spec);

    /* Counts out of range. */
    const int bad0[3] = {0, 48, 1536}, bad1[3] = {24, 65, 1536}, bad2[3] = {24, 48, -1};
    assert_int_equal(flm_arch_sub(&c, bad0, &s), FL_ERR_KEEPSET);
    assert_int_equal(flm_arch_sub(&c, bad1, &s), FL_ERR_KEEPSET);
    assert_int_equal(flm_arch_sub(&c, bad2, &s), FL_ERR_KEEPSET);
    /* The full counts give the full architecture. */
    assert_int_equal(flm_arch_sub(&c, c.drop_units, &s), FL_OK);
    assert_int_equal(s.n_params, c.n_params);
    assert_string_equal(s.spec, c.spec);
}

/* ------------------------------------------------------------------------------------------ */
/* keep-sets                                                                                    */

static void test_keepset_validate(void **state)
{
    (void)state;
    const flm_arch a = parse_ok("mlp:10-6-5-3"); /* droppable: 6 and 5 units */
    const int counts[2] = {3, 2};
    enum { OK, EMPTY, UNSORTED, DUP, RANGE, RANGE_LAST, NDROP, OFFSET, NULLIDX, TOO_MANY } kind;
    static const struct {
        int kind;
        uint32_t idx[5];
        fl_status want;
    } rows[] = {
        {OK, {0, 2, 5, 1, 4}, FL_OK},
        {EMPTY, {0, 2, 5, 1, 4}, FL_ERR_KEEPSET},
        {UNSORTED, {2, 0, 5, 1, 4}, FL_ERR_KEEPSET},
        {UNSORTED, {0, 2, 5, 4, 1}, FL_ERR_KEEPSET},
        {DUP, {0, 2, 2, 1, 4}, FL_ERR_KEEPSET},
        {DUP, {0, 2, 5, 3, 3}, FL_ERR_KEEPSET},
        {RANGE, {0, 2, 6, 1, 4}, FL_ERR_KEEPSET},
        {RANGE_LAST, {0, 2, 5, 1, 5}, FL_ERR_KEEPSET},
        {RANGE, {0, 2, 0xffffffffu, 1, 4}, FL_ERR_KEEPSET},
        {NDROP, {0, 2, 5, 1, 4}, FL_ERR_KEEPSET},
        {OFFSET, {0, 2, 5, 1, 4}, FL_ERR_KEEPSET},
        {NULLIDX, {0, 2, 5, 1, 4}, FL_ERR_KEEPSET},
        {TOO_MANY, {0, 2, 5, 1, 4}, FL_ERR_KEEPSET},
    };
    (void)kind;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        flm_keepset ks;
        assert_int_equal(flm_keepset_alloc(&ks, &a, counts), FL_OK);
        memcpy(ks.idx, rows[i].idx, sizeof rows[i].idx);
        uint32_t *saved = ks.idx;
        switch (rows[i].kind) {
        case EMPTY:
            ks.count[1] = 0;
            break;
        case NDROP:
            ks.n_drop = 1;
            break;
        case OFFSET:
            ks.offset[1] = 2;
            break;
        case NULLIDX:
            ks.idx = NULL;
            break;
        case TOO_MANY:
            ks.count[0] = 7;
            break;
        default:
            break;
        }
        const fl_status st = flm_keepset_validate(&ks, &a);
        if (st != rows[i].want)
            fail_msg("row %zu: got %s", i, fl_status_name(st));
        flm_submodel *sm = NULL;
        assert_int_equal(flm_submodel_new(&a, &ks, &sm), rows[i].want);
        assert_true((sm != NULL) == (rows[i].want == FL_OK));
        flm_submodel_free(sm);
        ks.idx = saved;
        flm_keepset_free(&ks);
    }

    /* alloc refuses counts outside [1, units]; full passes validation. */
    flm_keepset ks;
    const int c0[2] = {0, 2}, c1[2] = {3, 6};
    assert_int_equal(flm_keepset_alloc(&ks, &a, c0), FL_ERR_KEEPSET);
    assert_int_equal(flm_keepset_alloc(&ks, &a, c1), FL_ERR_KEEPSET);
    assert_int_equal(flm_keepset_full(&ks, &a), FL_OK);
    assert_int_equal(flm_keepset_validate(&ks, &a), FL_OK);
    assert_int_equal(ks.count[0], 6);
    assert_int_equal(ks.count[1], 5);
    assert_int_equal(ks.idx[ks.offset[1] + 4], 4);

    flm_keepset cp;
    assert_int_equal(flm_keepset_copy(&cp, &ks), FL_OK);
    assert_true(cp.idx != ks.idx);
    assert_true(flm_keepset_equal(&cp, &ks));
    cp.idx[3] = 2; /* differs in one unit */
    assert_false(flm_keepset_equal(&cp, &ks));
    flm_keepset_free(&cp);
    flm_keepset_free(&ks);
    flm_keepset_free(&ks); /* zeroed: no-op */
    flm_keepset_free(NULL);
    flm_submodel_free(NULL);
}

static void test_keepset_random(void **state)
{
    (void)state;
    const flm_arch c = parse_ok("cnn");
    fl_rng r = fl_rng_stream(7, 1, 2, FL_RNG_KEEPSET);
    flm_keepset ks, ks2, ks3;
    assert_int_equal(flm_keepset_random(&ks, &c, 0.75, &r), FL_OK);
    assert_int_equal(flm_keepset_validate(&ks, &c), FL_OK);
    assert_int_equal(ks.count[0], 24);
    assert_int_equal(ks.count[1], 48);
    assert_int_equal(ks.count[2], 1536);
    r = fl_rng_stream(7, 1, 2, FL_RNG_KEEPSET);
    assert_int_equal(flm_keepset_random(&ks2, &c, 0.75, &r), FL_OK);
    assert_true(flm_keepset_equal(&ks, &ks2)); /* same stream, same keep-set */
    r = fl_rng_stream(7, 1, 3, FL_RNG_KEEPSET);
    assert_int_equal(flm_keepset_random(&ks3, &c, 0.75, &r), FL_OK);
    assert_false(flm_keepset_equal(&ks, &ks3));
    flm_keepset_free(&ks);
    flm_keepset_free(&ks2);
    flm_keepset_free(&ks3);

    /* Tiny p keeps at least one unit; p = 1 keeps all. */
    assert_int_equal(flm_keepset_random(&ks, &c, 0.001, &r), FL_OK);
    assert_int_equal(ks.count[0], 1);
    assert_int_equal(ks.count[2], 2);
    flm_keepset_free(&ks);
    assert_int_equal(flm_keepset_random(&ks, &c, 1.0, &r), FL_OK);
    assert_int_equal(flm_keepset_full(&ks2, &c), FL_OK);
    assert_true(flm_keepset_equal(&ks, &ks2));
    flm_keepset_free(&ks);
    flm_keepset_free(&ks2);
    assert_int_equal(flm_keepset_random(&ks, &c, 0.0, &r), FL_ERR_INVALID_ARG);
    assert_int_equal(flm_keepset_random(&ks, &c, 1.5, &r), FL_ERR_INVALID_ARG);
    assert_int_equal(flm_keepset_random(&ks, &c, NAN, &r), FL_ERR_INVALID_ARG);

    /* Uniformity: every unit of a 10-unit layer kept with frequency 3/10, and every one of the
     * C(10,3) = 120 subsets drawn. 24000 draws: a unit's count has sd ~71 around 7200. */
    const flm_arch m = parse_ok("mlp:4-10-2");
    int freq[10] = {0};
    static int subsets[1024];
    memset(subsets, 0, sizeof subsets);
    r = fl_rng_stream(11, 0, 0, FL_RNG_TEST);
    for (int i = 0; i < 24000; i++) {
        assert_int_equal(flm_keepset_random(&ks, &m, 0.3, &r), FL_OK);
        assert_int_equal(ks.count[0], 3);
        assert_int_equal(flm_keepset_validate(&ks, &m), FL_OK);
        int bits = 0;
        for (int j = 0; j < 3; j++) {
            freq[ks.idx[j]]++;
            bits |= 1 << ks.idx[j];
        }
        subsets[bits]++;
        flm_keepset_free(&ks);
    }
    for (int u = 0; u < 10; u++)
        if (freq[u] < 7200 - 400 || freq[u] > 7200 + 400)
            fail_msg("unit %d kept %d times of 24000 (expected ~7200)", u, freq[u]);
    int distinct = 0;
    for (int b = 0; b < 1024; b++)
        distinct += subsets[b] > 0;
    assert_int_equal(distinct, 120);
}

/* ------------------------------------------------------------------------------------------ */
/* the reference: global index of every submodel element, from the layer semantics            */

typedef struct refmap {
    size_t *m; /* sub index -> full index */
    size_t n, cap;
    size_t foff; /* offset of the current tensor in the full buffer */
} refmap;

static void emit(refmap *r, size_t full)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 1024;
        r->m = realloc(r->m, r->cap * sizeof *r->m);
        assert_non_null(r->m);
    }
    r->m[r->n++] = r->foff + full;
}

/* Unit j of a layer that keeps `u` (NULL: the layer does not drop, identity). */
static size_t unit(const uint32_t *u, size_t j)
{
    return u ? u[j] : j;
}

static const uint32_t *keep(const flm_keepset *ks, int d)
{
    return ks->idx + ks->offset[d];
}

static refmap ref_mlp(const int *dims, int n, const flm_keepset *ks)
{
    refmap r = {0};
    for (int i = 1; i < n; i++) {
        const size_t OC = (size_t)dims[i], C = (size_t)dims[i - 1];
        const uint32_t *uo = i < n - 1 ? keep(ks, i - 1) : NULL;
        const uint32_t *ui = i > 1 ? keep(ks, i - 2) : NULL;
        const size_t ko = uo ? (size_t)ks->count[i - 1] : OC;
        const size_t ki = ui ? (size_t)ks->count[i - 2] : C;
        for (size_t o = 0; o < ko; o++)
            for (size_t c = 0; c < ki; c++)
                emit(&r, unit(uo, o) * C + unit(ui, c));
        r.foff += OC * C;
        for (size_t o = 0; o < ko; o++)
            emit(&r, unit(uo, o));
        r.foff += OC;
    }
    return r;
}

/* cnn:CLASSES:HxWxC: conv 5x5 32, pool 2, conv 5x5 64, pool 2, dense 2048, dense CLASSES. */
static refmap ref_cnn(int classes, int H, int W, int C, const flm_keepset *ks)
{
    refmap r = {0};
    const uint32_t *k0 = keep(ks, 0), *k1 = keep(ks, 1), *k2 = keep(ks, 2);
    const size_t n0 = (size_t)ks->count[0], n1 = (size_t)ks->count[1], n2 = (size_t)ks->count[2];
    /* conv0.w (o, c, kh, kw) -> (k0[o], c, kh, kw) */
    for (size_t o = 0; o < n0; o++)
        for (size_t c = 0; c < (size_t)C; c++)
            for (size_t kh = 0; kh < 5; kh++)
                for (size_t kw = 0; kw < 5; kw++)
                    emit(&r, ((k0[o] * (size_t)C + c) * 5 + kh) * 5 + kw);
    r.foff += 32 * (size_t)C * 25;
    for (size_t o = 0; o < n0; o++)
        emit(&r, k0[o]);
    r.foff += 32;
    /* conv1.w (o, c, kh, kw) -> (k1[o], k0[c], kh, kw) */
    for (size_t o = 0; o < n1; o++)
        for (size_t c = 0; c < n0; c++)
            for (size_t kh = 0; kh < 5; kh++)
                for (size_t kw = 0; kw < 5; kw++)
                    emit(&r, ((k1[o] * 32 + k0[c]) * 5 + kh) * 5 + kw);
    r.foff += 64 * 32 * 25;
    for (size_t o = 0; o < n1; o++)
        emit(&r, k1[o]);
    r.foff += 64;
    /* dense0.w (o, c*HW + p) -> (k2[o], k1[c]*HW + p): channel-major flatten after two pools */
    const size_t HW = (size_t)(H / 2 / 2) * (size_t)(W / 2 / 2);
    for (size_t o = 0; o < n2; o++)
        for (size_t c = 0; c < n1; c++)
            for (size_t p = 0; p < HW; p++)
                emit(&r, k2[o] * 64 * HW + k1[c] * HW + p);
    r.foff += 2048 * 64 * HW;
    for (size_t o = 0; o < n2; o++)
        emit(&r, k2[o]);
    r.foff += 2048;
    /* dense1.w (o, j) -> (o, k2[j]); logits never drop */
    for (size_t o = 0; o < (size_t)classes; o++)
        for (size_t j = 0; j < n2; j++)
            emit(&r, o * 2048 + k2[j]);
    r.foff += (size_t)classes * 2048;
    for (size_t o = 0; o < (size_t)classes; o++)
        emit(&r, o);
    r.foff += (size_t)classes;
    return r;
}

/* lstm:V:E:HD:L:T: embedding, L LSTMs (gates i, f, g, o), dense V. */
static refmap ref_lstm(int V, int E, int HD, int L, const flm_keepset *ks)
{
    refmap r = {0};
    const size_t Hd = (size_t)HD;
    for (size_t i = 0; i < (size_t)V * (size_t)E; i++)
        emit(&r, i);
    r.foff += (size_t)V * (size_t)E;
    for (int l = 0; l < L; l++) {
        const uint32_t *u = keep(ks, l), *ui = l > 0 ? keep(ks, l - 1) : NULL;
        const size_t k = (size_t)ks->count[l];
        const size_t Cin = l > 0 ? Hd : (size_t)E, kin = l > 0 ? (size_t)ks->count[l - 1] : Cin;
        /* w_ih (g*k + i, c) -> (g*Hd + u[i], ui[c]) */
        for (size_t g = 0; g < 4; g++)
            for (size_t i = 0; i < k; i++)
                for (size_t c = 0; c < kin; c++)
                    emit(&r, (g * Hd + u[i]) * Cin + unit(ui, c));
        r.foff += 4 * Hd * Cin;
        /* w_hh (g*k + i, j) -> (g*Hd + u[i], u[j]): recurrent rows AND columns */
        for (size_t g = 0; g < 4; g++)
            for (size_t i = 0; i < k; i++)
                for (size_t j = 0; j < k; j++)
                    emit(&r, (g * Hd + u[i]) * Hd + u[j]);
        r.foff += 4 * Hd * Hd;
        for (size_t g = 0; g < 4; g++)
            for (size_t i = 0; i < k; i++)
                emit(&r, g * Hd + u[i]);
        r.foff += 4 * Hd;
    }
    const uint32_t *u = keep(ks, L - 1);
    const size_t k = (size_t)ks->count[L - 1];
    for (size_t v = 0; v < (size_t)V; v++)
        for (size_t j = 0; j < k; j++)
            emit(&r, v * Hd + u[j]);
    r.foff += (size_t)V * Hd;
    for (size_t v = 0; v < (size_t)V; v++)
        emit(&r, v);
    r.foff += (size_t)V;
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* gather / scatter / runs                                                                      */

typedef struct run_log {
    size_t *full, *sub, *len;
    size_t n, cap;
} run_log;

static void log_run(void *user, size_t full_index, size_t sub_index, size_t len)
{
    run_log *l = user;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->full = realloc(l->full, l->cap * sizeof(size_t));
        l->sub = realloc(l->sub, l->cap * sizeof(size_t));
        l->len = realloc(l->len, l->cap * sizeof(size_t));
        assert_true(l->full && l->sub && l->len);
    }
    l->full[l->n] = full_index;
    l->sub[l->n] = sub_index;
    l->len[l->n] = len;
    l->n++;
}

static void run_log_free(run_log *l)
{
    free(l->full);
    free(l->sub);
    free(l->len);
    memset(l, 0, sizeof *l);
}

typedef struct scat_ctx {
    float *acc;
    const float *chunk; /* the chunk's values; sub index relative to chunk_off */
    size_t chunk_off;
} scat_ctx;

/* What the server does with a decoded chunk: scatter-add it through the runs. */
static void scat_run(void *user, size_t full_index, size_t sub_index, size_t len)
{
    scat_ctx *c = user;
    for (size_t i = 0; i < len; i++)
        c->acc[full_index + i] += c->chunk[sub_index - c->chunk_off + i];
}

static float *random_vec(size_t n, fl_rng *r)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = fl_rng_uniform(r) * 2.0f - 1.0f;
    return x;
}

/* Everything checked for one (arch, keep-set) pair; ref may be NULL (no semantic reference). */
static void check_submodel(const flm_arch *a, const flm_keepset *ks, const refmap *ref, fl_rng *r)
{
    flm_submodel *sm;
    assert_int_equal(flm_submodel_new(a, ks, &sm), FL_OK);
    const flm_arch *s = flm_submodel_arch(sm);
    assert_int_equal(flm_submodel_full_arch(sm)->n_params, a->n_params);
    assert_true(flm_keepset_equal(flm_submodel_keepset(sm), ks));
    int counts[FLM_MAX_LAYERS];
    for (int d = 0; d < a->n_drop; d++)
        counts[d] = ks->count[d];
    flm_arch s2;
    assert_int_equal(flm_arch_sub(a, counts, &s2), FL_OK);
    assert_int_equal(s->n_params, s2.n_params);
    const size_t N = a->n_params, n = s->n_params;

    /* Semantics: gather of iota picks exactly the reference's global indexes (exact below 2^24). */
    if (ref) {
        assert_true(N < (1u << 24));
        assert_int_equal(ref->n, n);
        assert_int_equal(ref->foff, N);
        float *iota = malloc(N * sizeof *iota), *g = malloc(n * sizeof *g);
        assert_true(iota && g);
        for (size_t i = 0; i < N; i++)
            iota[i] = (float)i;
        flm_submodel_gather(sm, g, iota);
        for (size_t i = 0; i < n; i++)
            if ((size_t)g[i] != ref->m[i])
                fail_msg("%s: sub %zu -> %zu, reference %zu", a->spec, i, (size_t)g[i], ref->m[i]);
        free(iota);
        free(g);
    }

    /* Round trip: scatter_add(gather(x)) into zeros == x * mask, bit for bit. */
    float *x = random_vec(N, r), *g = malloc(n * sizeof *g), *z = calloc(N, sizeof *z);
    float *mask = malloc(N * sizeof *mask);
    assert_true(g && z && mask);
    flm_submodel_gather(sm, g, x);
    flm_submodel_scatter_add(sm, z, g, 1.0f);
    flm_submodel_mask(sm, mask);
    size_t ones = 0;
    for (size_t i = 0; i < N; i++) {
        assert_true(mask[i] == 0.0f || mask[i] == 1.0f);
        ones += mask[i] == 1.0f;
        if (z[i] != x[i] * mask[i])
            fail_msg("%s: coordinate %zu: %g != %g * %g", a->spec, i, z[i], x[i], mask[i]);
    }
    assert_int_equal(ones, n);
    /* alpha scales; a second scatter adds. */
    flm_submodel_scatter_add(sm, z, g, -0.5f);
    for (size_t i = 0; i < N; i++)
        assert_true(z[i] == x[i] * mask[i] - 0.5f * x[i] * mask[i]);

    /* Runs over the whole range: cover [0, n) in order, maximal, and agree with the gather. */
    run_log lg = {0};
    flm_submodel_runs(sm, 0, n, log_run, &lg);
    size_t next = 0;
    for (size_t i = 0; i < lg.n; i++) {
        assert_int_equal(lg.sub[i], next);
        assert_true(lg.len[i] > 0);
        assert_true(lg.full[i] + lg.len[i] <= N);
        if (i > 0)
            assert_true(lg.full[i] != lg.full[i - 1] + lg.len[i - 1]); /* else not maximal */
        for (size_t t = 0; t < lg.len[i]; t++) {
            assert_true(g[lg.sub[i] + t] == x[lg.full[i] + t]);
            if (ref)
                assert_int_equal(ref->m[lg.sub[i] + t], lg.full[i] + t);
        }
        next += lg.len[i];
    }
    assert_int_equal(next, n);
    const size_t whole_runs = lg.n;
    run_log_free(&lg);

    /* Random chunkings: chunk-by-chunk scatter through runs == scatter_add, and each chunk's runs
     * cover exactly that chunk. */
    for (int trial = 0; trial < 4; trial++) {
        float *acc = calloc(N, sizeof *acc);
        assert_non_null(acc);
        const size_t max_chunk = trial == 0 ? 1 : trial == 1 ? 7 : 1 + fl_rng_below(r, (uint32_t)(n / 3 + 1));
        size_t off = 0, pieces = 0;
        while (off < n) {
            size_t len = 1 + fl_rng_below(r, (uint32_t)max_chunk);
            if (len > n - off)
                len = n - off;
            /* Big models: tiny chunks only over a prefix and a middle window. */
            if (trial < 2 && n > 20000 && off >= 3000 && off < n / 2)
                len = n / 2 - off;
            else if (trial < 2 && n > 20000 && off >= n / 2 + 3000)
                len = n - off;
            run_log cl = {0};
            flm_submodel_runs(sm, off, len, log_run, &cl);
            size_t nx = off;
            for (size_t i = 0; i < cl.n; i++) {
                assert_int_equal(cl.sub[i], nx);
                nx += cl.len[i];
            }
            assert_int_equal(nx, off + len);
            pieces += cl.n;
            scat_ctx c = {acc, g + off, off};
            flm_submodel_runs(sm, off, len, scat_run, &c);
            run_log_free(&cl);
            off += len;
        }
        assert_true(pieces >= whole_runs);
        for (size_t i = 0; i < N; i++)
            assert_true(acc[i] == x[i] * mask[i]);
        free(acc);
    }
    /* Out-of-range requests are clipped: nothing past n. */
    lg = (run_log){0};
    flm_submodel_runs(sm, n, 10, log_run, &lg);
    assert_int_equal(lg.n, 0);
    flm_submodel_runs(sm, n - 1, 10, log_run, &lg);
    assert_int_equal(lg.n, 1);
    assert_int_equal(lg.len[0], 1);
    run_log_free(&lg);

    free(x);
    free(g);
    free(z);
    free(mask);
    flm_submodel_free(sm);
}

/* moge:IN:HD:G:E:K:CLASSES: dense HD, experts N = G E of HD -> HD, dense CLASSES. An expert's
 * weights are row o*N + e of w (HD*N, HD), its bias b[o*N + e] (flm_moge.h). */
static refmap ref_moge(int IN, int HD, int N, int classes, const flm_keepset *ks)
{
    refmap r = {0};
    const uint32_t *u = keep(ks, 0), *x = keep(ks, 1);
    const size_t k = (size_t)ks->count[0], kx = (size_t)ks->count[1], Hd = (size_t)HD;
    for (size_t o = 0; o < k; o++) /* dense0.w: kept rows, every input */
        for (size_t c = 0; c < (size_t)IN; c++)
            emit(&r, u[o] * (size_t)IN + c);
    r.foff += Hd * (size_t)IN;
    for (size_t o = 0; o < k; o++)
        emit(&r, u[o]);
    r.foff += Hd;
    for (size_t e = 0; e < kx; e++) /* gate_w: kept experts x kept inputs */
        for (size_t c = 0; c < k; c++)
            emit(&r, x[e] * Hd + u[c]);
    r.foff += (size_t)N * Hd;
    for (size_t e = 0; e < kx; e++)
        emit(&r, x[e]);
    r.foff += (size_t)N;
    for (size_t o = 0; o < Hd; o++) /* w: every output, kept experts, kept inputs */
        for (size_t e = 0; e < kx; e++)
            for (size_t c = 0; c < k; c++)
                emit(&r, (o * (size_t)N + x[e]) * Hd + u[c]);
    r.foff += Hd * (size_t)N * Hd;
    for (size_t o = 0; o < Hd; o++)
        for (size_t e = 0; e < kx; e++)
            emit(&r, o * (size_t)N + x[e]);
    r.foff += Hd * (size_t)N;
    for (size_t i = 0; i < (size_t)classes * Hd + (size_t)classes; i++) /* dense1: whole */
        emit(&r, i);
    r.foff += (size_t)classes * Hd + (size_t)classes;
    return r;
}

static void test_moge_reference(void **state)
{
    (void)state;
    fl_rng r = fl_rng_stream(10, 0, 0, FL_RNG_TEST);
    const flm_arch a = parse_ok("moge:12:9:3:4:2:5");
    const double ps[] = {0.75, 0.5, 0.2, 1.0};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        flm_keepset ks;
        assert_int_equal(flm_keepset_random(&ks, &a, ps[i], &r), FL_OK);
        refmap ref = ref_moge(12, 9, 12, 5, &ks);
        check_submodel(&a, &ks, &ref, &r);
        /* the submodel is a MoGE layer of the same groups, fewer experts in each */
        flm_submodel *sm;
        assert_int_equal(flm_submodel_new(&a, &ks, &sm), FL_OK);
        const flm_layer *l = &flm_submodel_arch(sm)->layers[2];
        assert_int_equal(l->op, FLM_OP_MOGE);
        assert_int_equal(l->groups, 3);
        assert_int_equal(l->experts, ks.count[1]);
        assert_int_equal(l->OC, 9);
        flm_submodel_free(sm);
        free(ref.m);
        flm_keepset_free(&ks);
    }
}

/* A grouped layer's keep-set keeps as many experts of every group (shared AFD.md, "Units"): the
 * draw does, and validation refuses any other. */
static void test_keepset_groups(void **state)
{
    (void)state;
    const flm_arch a = parse_ok("moge:6:4:3:4:1:2"); /* experts 0-3, 4-7, 8-11 */
    fl_rng r = fl_rng_stream(13, 0, 0, FL_RNG_TEST);
    int freq[12] = {0};
    for (int t = 0; t < 3000; t++) {
        flm_keepset ks;
        assert_int_equal(flm_keepset_random(&ks, &a, 0.5, &r), FL_OK);
        assert_int_equal(ks.count[1], 6);
        const uint32_t *x = keep(&ks, 1);
        for (int j = 0; j < 6; j++) {
            assert_int_equal(x[j] / 4, (uint32_t)j / 2); /* two of each group, in order */
            freq[x[j]]++;
        }
        assert_int_equal(flm_keepset_validate(&ks, &a), FL_OK);
        flm_keepset_free(&ks);
    }
    for (int e = 0; e < 12; e++) /* each expert kept half the time: 1500, sd ~27 */
        if (freq[e] < 1350 || freq[e] > 1650)
            fail_msg("expert %d kept %d of 3000 times", e, freq[e]);

    static const struct {
        int count;
        uint32_t idx[8];
        fl_status want;
    } rows[] = {
        {6, {0, 1, 4, 7, 9, 10}, FL_OK},
        {6, {0, 1, 2, 4, 8, 9}, FL_ERR_KEEPSET},   /* 3, 1, 2 */
        {6, {0, 1, 2, 3, 4, 5}, FL_ERR_KEEPSET},   /* 4, 2, 0 */
        {5, {0, 4, 5, 8, 9}, FL_ERR_KEEPSET},      /* not a multiple of 3 groups */
        {3, {3, 7, 11}, FL_OK},
        {3, {3, 6, 7}, FL_ERR_KEEPSET},
        {12, {0}, FL_OK},                          /* filled with all below */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const int counts[2] = {4, rows[i].count};
        flm_keepset ks;
        assert_int_equal(flm_keepset_alloc(&ks, &a, counts), FL_OK);
        for (int j = 0; j < 4; j++)
            ks.idx[j] = (uint32_t)j;
        for (int j = 0; j < rows[i].count; j++)
            ks.idx[4 + j] = rows[i].count == 12 ? (uint32_t)j : rows[i].idx[j];
        if (flm_keepset_validate(&ks, &a) != rows[i].want)
            fail_msg("row %zu: validate gave %s", i, fl_status_name(flm_keepset_validate(&ks, &a)));
        flm_submodel *sm = NULL;
        assert_int_equal(flm_submodel_new(&a, &ks, &sm), rows[i].want);
        flm_submodel_free(sm);
        flm_keepset_free(&ks);
    }
    /* flm_arch_sub refuses unit counts that do not split into the groups */
    flm_arch sub;
    assert_int_equal(flm_arch_sub(&a, (const int[]){4, 5}, &sub), FL_ERR_KEEPSET);
    assert_int_equal(flm_arch_sub(&a, (const int[]){4, 9}, &sub), FL_OK);
    assert_int_equal(sub.layers[2].experts, 9);
    assert_string_equal(sub.spec, "moge:6:4:3:4:1:2/4,9");
}

static void test_full_is_identity(void **state)
{
    (void)state;
    static const char *specs[] = {"mlp:784-200-200-10", "cnn:10:12x12x1", "lstm:20:4:8:2:6", "mlp:5-3",
                                  "moge:12:9:3:4:2:5"};
    fl_rng r = fl_rng_stream(3, 0, 0, FL_RNG_TEST);
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const flm_arch a = parse_ok(specs[i]);
        flm_keepset ks;
        assert_int_equal(flm_keepset_full(&ks, &a), FL_OK);
        flm_submodel *sm;
        assert_int_equal(flm_submodel_new(&a, &ks, &sm), FL_OK);
        assert_int_equal(flm_submodel_arch(sm)->n_params, a.n_params);
        float *x = random_vec(a.n_params, &r), *g = malloc(a.n_params * sizeof *g);
        assert_non_null(g);
        flm_submodel_gather(sm, g, x);
        assert_memory_equal(g, x, a.n_params * sizeof *x);
        /* The whole model is one run. */
        run_log lg = {0};
        flm_submodel_runs(sm, 0, a.n_params, log_run, &lg);
        assert_int_equal(lg.n, 1);
        assert_int_equal(lg.full[0], 0);
        assert_int_equal(lg.sub[0], 0);
        assert_int_equal(lg.len[0], a.n_params);
        run_log_free(&lg);
        check_submodel(&a, &ks, NULL, &r);
        assert_int_equal(flm_submodel_is_identity(sm), 1);
        /* One unit fewer in any droppable layer is not the identity any more. */
        for (int d = 0; d < a.n_drop; d++) {
            if (a.drop_units[d] < 2 || a.drop_groups[d] > 1)
                continue;
            int counts[FLM_MAX_LAYERS];
            for (int e = 0; e < a.n_drop; e++)
                counts[e] = a.drop_units[e];
            counts[d]--;
            flm_keepset kd;
            assert_int_equal(flm_keepset_alloc(&kd, &a, counts), FL_OK);
            for (int e = 0; e < a.n_drop; e++)
                for (int u = 0; u < counts[e]; u++)
                    kd.idx[kd.offset[e] + u] = (uint32_t)(u + (e == d)); /* d drops unit 0 */
            flm_submodel *sd;
            assert_int_equal(flm_submodel_new(&a, &kd, &sd), FL_OK);
            assert_int_equal(flm_submodel_is_identity(sd), 0);
            flm_submodel_free(sd);
            flm_keepset_free(&kd);
        }
        free(x);
        free(g);
        flm_submodel_free(sm);
        flm_keepset_free(&ks);
    }
}

static void test_mlp_reference(void **state)
{
    (void)state;
    const int dims[4] = {20, 12, 9, 4};
    const flm_arch a = parse_ok("mlp:20-12-9-4");
    fl_rng r = fl_rng_stream(5, 0, 0, FL_RNG_TEST);
    const double ps[] = {0.75, 0.5, 0.1, 1.0};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        flm_keepset ks;
        assert_int_equal(flm_keepset_random(&ks, &a, ps[i], &r), FL_OK);
        refmap ref = ref_mlp(dims, 4, &ks);
        check_submodel(&a, &ks, &ref, &r);
        free(ref.m);
        flm_keepset_free(&ks);
    }
    /* Hand-made keep-set: first and last units only. */
    const int counts[2] = {2, 2};
    flm_keepset ks;
    assert_int_equal(flm_keepset_alloc(&ks, &a, counts), FL_OK);
    const uint32_t idx[4] = {0, 11, 0, 8};
    memcpy(ks.idx, idx, sizeof idx);
    refmap ref = ref_mlp(dims, 4, &ks);
    check_submodel(&a, &ks, &ref, &r);
    free(ref.m);
    flm_keepset_free(&ks);
}

static void test_cnn_reference(void **state)
{
    (void)state;
    const flm_arch a = parse_ok("cnn:10:12x12x1");
    fl_rng r = fl_rng_stream(6, 0, 0, FL_RNG_TEST);
    const double ps[] = {0.75, 0.3};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        flm_keepset ks;
        assert_int_equal(flm_keepset_random(&ks, &a, ps[i], &r), FL_OK);
        refmap ref = ref_cnn(10, 12, 12, 1, &ks);
        check_submodel(&a, &ks, &ref, &r);
        free(ref.m);
        flm_keepset_free(&ks);
    }
    /* Odd sizes and 3 channels: pools floor 13 -> 6 -> 3, 9 -> 4 -> 2. */
    const flm_arch b = parse_ok("cnn:7:13x9x3");
    flm_keepset ks;
    assert_int_equal(flm_keepset_random(&ks, &b, 0.6, &r), FL_OK);
    refmap ref = ref_cnn(7, 13, 9, 3, &ks);
    check_submodel(&b, &ks, &ref, &r);
    free(ref.m);
    flm_keepset_free(&ks);
}

static void test_lstm_reference(void **state)
{
    (void)state;
    fl_rng r = fl_rng_stream(8, 0, 0, FL_RNG_TEST);
    const flm_arch a = parse_ok("lstm:20:4:8:2:6");
    const double ps[] = {0.75, 0.5, 0.2};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        flm_keepset ks;
        assert_int_equal(flm_keepset_random(&ks, &a, ps[i], &r), FL_OK);
        refmap ref = ref_lstm(20, 4, 8, 2, &ks);
        check_submodel(&a, &ks, &ref, &r);
        free(ref.m);
        flm_keepset_free(&ks);
    }
    const flm_arch b = parse_ok("lstm:30:5:16:3:4");
    flm_keepset ks;
    assert_int_equal(flm_keepset_random(&ks, &b, 0.7, &r), FL_OK);
    refmap ref = ref_lstm(30, 5, 16, 3, &ks);
    check_submodel(&b, &ks, &ref, &r);
    free(ref.m);
    flm_keepset_free(&ks);
}

/* The full-size models at the default keep fraction (no semantic reference: > 2^24 params). */
static void test_full_size(void **state)
{
    (void)state;
    fl_rng r = fl_rng_stream(9, 0, 0, FL_RNG_TEST);
    static const char *specs[] = {"cnn", "lstm"};
    for (size_t i = 0; i < 2; i++) {
        const flm_arch a = parse_ok(specs[i]);
        flm_keepset ks;
        assert_int_equal(flm_keepset_random(&ks, &a, 0.75, &r), FL_OK);
        check_submodel(&a, &ks, NULL, &r);
        flm_keepset_free(&ks);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* training equivalence: a submodel step == the masked full model's step                       */

/* The full model with every coordinate the submodel lacks zeroed: a dropped unit's incoming
 * weights and bias (so it outputs 0: relu(0), a zero conv filter, an LSTM unit with zero gate
 * pre-activations and c0 = 0 gives h = 0.5 * tanh(0) = 0) and its outgoing columns. One SGD step
 * on the same batch, ignoring the gradient of masked coordinates, must equal the scatter of the
 * submodel's step, and the submodel's loss must equal the masked model's. */
static void check_step_equivalence(const char *spec, double p, uint64_t seed)
{
    const flm_arch a = parse_ok(spec);
    enum { B = 4 };
    const float lr = 0.1f;
    fl_rng r = fl_rng_stream(seed, 0, 0, FL_RNG_TEST);
    flm_keepset ks;
    assert_int_equal(flm_keepset_random(&ks, &a, p, &r), FL_OK);
    flm_submodel *sm;
    assert_int_equal(flm_submodel_new(&a, &ks, &sm), FL_OK);
    const flm_arch *s = flm_submodel_arch(sm);
    const size_t N = a.n_params, n = s->n_params;
    assert_true(n < N);

    flm_model *mf = NULL, *ms = NULL;
    fl_status st = flm_model_new(&a, B, &mf);
    if (st == FL_ERR_UNSUPPORTED && a.token_input) {
        print_message("  %s: LSTM layer not built, skipped\n", spec);
        flm_submodel_free(sm);
        flm_keepset_free(&ks);
        return;
    }
    assert_int_equal(st, FL_OK);
    assert_int_equal(flm_model_new(s, B, &ms), FL_OK);

    /* Inputs and labels. */
    const size_t D = (size_t)a.in_C * (size_t)a.in_H * (size_t)a.in_W;
    float *x = NULL;
    int32_t *tok = NULL, labels[B];
    if (a.token_input) {
        tok = malloc((size_t)B * (size_t)a.in_H * sizeof *tok);
        assert_non_null(tok);
        for (size_t i = 0; i < (size_t)B * (size_t)a.in_H; i++)
            tok[i] = (int32_t)fl_rng_below(&r, (uint32_t)a.classes);
    } else {
        x = random_vec((size_t)B * D, &r);
    }
    for (int i = 0; i < B; i++)
        labels[i] = (int32_t)fl_rng_below(&r, (uint32_t)a.classes);

    float *P = malloc(N * sizeof *P), *mask = malloc(N * sizeof *mask);
    float *gf = calloc(N, sizeof *gf), *sub = malloc(n * sizeof *sub), *gs = calloc(n, sizeof *gs);
    float *want = calloc(N, sizeof *want);
    assert_true(P && mask && gf && sub && gs && want);
    flm_model_init_params(&a, P, &r);

    /* The unmasked full model's loss differs: the dropped units matter, so the test can fail. */
    float loss_unmasked, loss_full, loss_sub;
    assert_int_equal(flm_model_forward(mf, P, x, tok, labels, B, &loss_unmasked), FL_OK);

    flm_submodel_mask(sm, mask);
    for (size_t i = 0; i < N; i++)
        P[i] *= mask[i];
    flm_submodel_gather(sm, sub, P);

    assert_int_equal(flm_model_forward(mf, P, x, tok, labels, B, &loss_full), FL_OK);
    assert_int_equal(flm_model_backward(mf, P, gf), FL_OK);
    assert_int_equal(flm_model_forward(ms, sub, x, tok, labels, B, &loss_sub), FL_OK);
    assert_int_equal(flm_model_backward(ms, sub, gs), FL_OK);
    assert_true(isfinite(loss_full) && isfinite(loss_sub));
    if (fabsf(loss_full - loss_sub) > 1e-5f * (1.0f + fabsf(loss_full)))
        fail_msg("%s: masked full loss %.8g, submodel loss %.8g", spec, loss_full, loss_sub);
    if (fabsf(loss_unmasked - loss_sub) < 1e-4f)
        fail_msg("%s: dropping units did not change the loss (%.8g)", spec, loss_sub);

    /* The masked coordinates get no gradient anyway (dropped units output 0 and receive 0). */
    for (size_t i = 0; i < N; i++)
        if (mask[i] == 0.0f && fabsf(gf[i]) > 1e-7f)
            fail_msg("%s: masked coordinate %zu has gradient %g", spec, i, gf[i]);

    /* One step each: full with the masked gradient, sub plain; then scatter the sub step. */
    const flm_sgd o = {lr, 0.0f, 0.0f, 0.0f};
    for (size_t i = 0; i < N; i++)
        gf[i] *= mask[i];
    flm_sgd_step(P, NULL, gf, NULL, N, &o);
    flm_sgd_step(sub, NULL, gs, NULL, n, &o);
    flm_submodel_scatter_add(sm, want, sub, 1.0f);
    double max_err = 0;
    size_t changed = 0;
    for (size_t i = 0; i < N; i++) {
        const double e = fabs((double)P[i] - (double)want[i]);
        if (e > max_err)
            max_err = e;
        if (mask[i] == 0.0f)
            assert_true(P[i] == 0.0f && want[i] == 0.0f);
        else
            assert_true(e <= 1e-5 * (1.0 + fabs((double)want[i])));
        changed += gf[i] != 0.0f;
    }
    assert_true(changed > n / 10); /* the step actually moved the weights */
    print_message("  %s p=%.2f: %zu of %zu params, loss %.6f (unmasked %.6f), max |diff| %.2e\n",
                  spec, p, n, N, (double)loss_sub, (double)loss_unmasked, max_err);

    /* Local training as the client runs it (several epochs, batches in a shuffled order, the
     * fused backward+SGD path, then with momentum): masked coordinates get zero gradients, so the
     * masked full model stays masked and matches the submodel trained from the same stream. */
    const int S = 3 * B + 1; /* a short last batch too */
    float *xs = NULL;
    int32_t *ts = NULL, *ls = malloc((size_t)S * sizeof *ls);
    assert_non_null(ls);
    if (a.token_input) {
        ts = malloc((size_t)S * (size_t)a.in_H * sizeof *ts);
        assert_non_null(ts);
        for (size_t i = 0; i < (size_t)S * (size_t)a.in_H; i++)
            ts[i] = (int32_t)fl_rng_below(&r, (uint32_t)a.classes);
    } else {
        xs = random_vec((size_t)S * D, &r);
    }
    for (int i = 0; i < S; i++)
        ls[i] = (int32_t)fl_rng_below(&r, (uint32_t)a.classes);
    const flm_samples data = {xs, ts, ls, NULL, (size_t)S};
    for (int variant = 0; variant < 2; variant++) {
        const flm_sgd ot = {0.05f, variant ? 0.9f : 0.0f, 0.0f, 0.0f};
        flm_model_init_params(&a, P, &r);
        for (size_t i = 0; i < N; i++)
            P[i] *= mask[i];
        flm_submodel_gather(sm, sub, P);
        fl_rng of = fl_rng_stream(seed, 1, 0, FL_RNG_BATCH), os = of;
        double lf, ls_;
        assert_int_equal(flm_train_local(mf, P, NULL, &data, 2, &ot, &of, &lf), FL_OK);
        assert_int_equal(flm_train_local(ms, sub, NULL, &data, 2, &ot, &os, &ls_), FL_OK);
        assert_true(fabs(lf - ls_) <= 1e-4 * (1.0 + fabs(lf)));
        memset(want, 0, N * sizeof *want);
        flm_submodel_scatter_add(sm, want, sub, 1.0f);
        double err = 0;
        for (size_t i = 0; i < N; i++) {
            const double e = fabs((double)P[i] - (double)want[i]);
            if (e > err)
                err = e;
            if (mask[i] == 0.0f && P[i] != 0.0f)
                fail_msg("%s: masked coordinate %zu moved to %g in training", spec, i, P[i]);
            if (e > 1e-4 * (1.0 + fabs((double)want[i])))
                fail_msg("%s: coordinate %zu: full %.8g, submodel %.8g", spec, i, P[i], want[i]);
        }
        print_message("  %s train_local 2 epochs%s: loss %.6f, max |diff| %.2e\n", spec,
                      variant ? " momentum 0.9" : "", ls_, err);
    }
    free(xs);
    free(ts);
    free(ls);

    free(P);
    free(mask);
    free(gf);
    free(sub);
    free(gs);
    free(want);
    free(x);
    free(tok);
    flm_model_free(mf);
    flm_model_free(ms);
    flm_submodel_free(sm);
    flm_keepset_free(&ks);
}

static void test_step_equivalence(void **state)
{
    (void)state;
    check_step_equivalence("mlp:20-16-12-5", 0.5, 21);
    check_step_equivalence("mlp:784-200-200-10", 0.75, 22);
    check_step_equivalence("cnn:10:12x12x1", 0.5, 23);
    check_step_equivalence("cnn:7:13x9x3", 0.75, 24);
    check_step_equivalence("lstm:20:4:8:2:6", 0.5, 25);
    check_step_equivalence("lstm:30:5:16:3:4", 0.75, 26);
}

/* flm_submodel_bytes_bound, which fl_server's start estimate multiplies by a round's selected
 * clients when each gets a keep-set of its own (afd-multi, per-client fd): the estimate counted a
 * Task's record alone, 4 KB, where its keep-set and maps hold about 51 KB for mlp:784-500-10.
 * The bound must cover what 64 submodels of random and full keep-sets really hold (glibc's heap in
 * use; skipped where that is not readable, e.g. under a sanitizer's allocator) without being
 * wildly above a full keep-set's. */
/* A submodel that borrows its global architecture (flm_submodel_new_borrowed, the server core's
 * per-client Tasks) has flm_submodel_new's small architecture, keep-set and maps: gather,
 * scatter_add and mask give the same bits, for every family and random keep-sets. */
static void test_submodel_borrowed_same_bits(void **state)
{
    (void)state;
    const char *specs[] = {"mlp:784-500-10", "cnn", "lstm", "moge"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        const flm_arch a = parse_ok(specs[i]);
        fl_rng r = fl_rng_stream(11, 0, (uint32_t)i, FL_RNG_TEST);
        float *x = malloc(a.n_params * sizeof *x), *z1 = calloc(a.n_params, sizeof *z1),
              *z2 = calloc(a.n_params, sizeof *z2);
        assert_true(x && z1 && z2);
        for (size_t j = 0; j < a.n_params; j++)
            x[j] = (float)(j % 101) * 0.01f - 0.5f;
        for (int k = 0; k < 4; k++) {
            flm_keepset ks;
            assert_int_equal(flm_keepset_random(&ks, &a, k == 3 ? 1.0 : 0.5, &r), FL_OK);
            flm_submodel *sm, *bw;
            assert_int_equal(flm_submodel_new(&a, &ks, &sm), FL_OK);
            assert_int_equal(flm_submodel_new_borrowed(&a, &ks, &bw), FL_OK);
            const flm_arch *s1 = flm_submodel_arch(sm), *s2 = flm_submodel_arch(bw);
            assert_memory_equal(s1, s2, sizeof *s1);
            assert_true(flm_keepset_equal(flm_submodel_keepset(sm), flm_submodel_keepset(bw)));
            assert_int_equal(flm_submodel_is_identity(sm), flm_submodel_is_identity(bw));
            const size_t n = s1->n_params;
            float *g1 = malloc(n * sizeof *g1), *g2 = malloc(n * sizeof *g2);
            assert_true(g1 && g2);
            flm_submodel_gather(sm, g1, x);
            flm_submodel_gather(bw, g2, x);
            assert_memory_equal(g1, g2, n * sizeof *g1);
            flm_submodel_scatter_add(sm, z1, g1, 0.75f);
            flm_submodel_scatter_add(bw, z2, g2, 0.75f);
            assert_memory_equal(z1, z2, a.n_params * sizeof *z1);
            flm_submodel_mask(sm, z1);
            flm_submodel_mask(bw, z2);
            assert_memory_equal(z1, z2, a.n_params * sizeof *z1);
            free(g1);
            free(g2);
            flm_submodel_free(sm);
            flm_submodel_free(bw);
            flm_keepset_free(&ks);
        }
        free(x);
        free(z1);
        free(z2);
    }
}

static void test_submodel_bytes_bound(void **state)
{
    (void)state;
    enum { N = 64 };
    const char *specs[] = {"mlp:784-500-10", "cnn", "lstm", "moge"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        const flm_arch a = parse_ok(specs[i]);
        const size_t bound = flm_submodel_bytes_bound(&a);
        assert_true(bound > 0);
        assert_int_equal(flm_submodel_bytes_bound(NULL), 0);
        fl_rng r = fl_rng_stream(7, 0, (uint32_t)i, FL_RNG_TEST);
        for (int full = 0; full < 2; full++) {
            flm_keepset ks[N];
            for (int k = 0; k < N; k++)
                assert_int_equal(full ? flm_keepset_full(&ks[k], &a)
                                      : flm_keepset_random(&ks[k], &a, 0.75, &r),
                                 FL_OK);
            flm_submodel *sm[N], *bw[N];
            const size_t h0 = heap_in_use();
            for (int k = 0; k < N; k++)
                assert_int_equal(flm_submodel_new(&a, &ks[k], &sm[k]), FL_OK);
            const size_t h1 = heap_in_use();
            for (int k = 0; k < N; k++)
                assert_int_equal(flm_submodel_new_borrowed(&a, &ks[k], &bw[k]), FL_OK);
            const size_t h2 = heap_in_use();
            for (int k = 0; k < N; k++) {
                assert_ptr_equal(flm_submodel_full_arch(bw[k]), &a);
                assert_memory_equal(flm_submodel_full_arch(sm[k]), &a, sizeof a);
                flm_submodel_free(sm[k]);
                flm_submodel_free(bw[k]);
                flm_keepset_free(&ks[k]);
            }
            if (!h0 || h1 <= h0 || h2 <= h1)
                continue;
            const double held = (double)(h1 - h0) / N, lent = (double)(h2 - h1) / N;
            if ((double)bound < held || (full && (double)bound > 1.5 * held))
                fail_msg("%s, %s keep-sets: a submodel holds %.0f B, the bound says %zu",
                         specs[i], full ? "full" : "random 0.75", held, bound);
            const size_t lb = flm_submodel_borrowed_bytes_bound(&a);
            if ((double)lb < lent || (full && (double)lb > 1.5 * lent) ||
                held - lent < 0.9 * (double)sizeof a) /* malloc's rounding aside */
                fail_msg("%s, %s keep-sets: a submodel borrowing its architecture holds %.0f B "
                         "(one that copies it %.0f), the bound says %zu", specs[i],
                         full ? "full" : "random 0.75", lent, held, lb);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arch_counts),
        cmocka_unit_test(test_arch_coupling),
        cmocka_unit_test(test_arch_bad_specs),
        cmocka_unit_test(test_arch_spec_mutations),
        cmocka_unit_test(test_arch_sub_shapes),
        cmocka_unit_test(test_keepset_validate),
        cmocka_unit_test(test_keepset_random),
        cmocka_unit_test(test_full_is_identity),
        cmocka_unit_test(test_mlp_reference),
        cmocka_unit_test(test_cnn_reference),
        cmocka_unit_test(test_lstm_reference),
        cmocka_unit_test(test_moge_reference),
        cmocka_unit_test(test_keepset_groups),
        cmocka_unit_test(test_full_size),
        cmocka_unit_test(test_step_equivalence),
        cmocka_unit_test(test_submodel_bytes_bound),
        cmocka_unit_test(test_submodel_borrowed_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
