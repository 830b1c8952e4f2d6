/* Unit tests for the datasets of models/: IDX and LEAF readers, the synthetic generators and the
 * partitioners. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <zlib.h>

#include "flm_data.h"
#include "fl_rng.h"
#include "fl_status.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static char g_tmpdir[256];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/fedrop-datasets-XXXXXX");
    return mkdtemp(g_tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", g_tmpdir, name);
}

static void write_file(const char *path, const uint8_t *p, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        if (n)
            assert_int_equal(gzwrite(f, p, (unsigned)n), (int)n);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        if (n)
            assert_int_equal(fwrite(p, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
    }
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A small IDX pair: N images of H x W with pixel (i, k) = (i * 7 + k) % 256, label i % 10. */
typedef struct idx_pair {
    uint8_t *img, *lab;
    size_t img_len, lab_len;
} idx_pair;

static idx_pair make_idx(uint32_t N, uint32_t H, uint32_t W)
{
    idx_pair p;
    p.img_len = 16 + (size_t)N * H * W;
    p.lab_len = 8 + N;
    p.img = malloc(p.img_len);
    p.lab = malloc(p.lab_len);
    assert_non_null(p.img);
    assert_non_null(p.lab);
    put_be32(p.img, 0x803);
    put_be32(p.img + 4, N);
    put_be32(p.img + 8, H);
    put_be32(p.img + 12, W);
    put_be32(p.lab, 0x801);
    put_be32(p.lab + 4, N);
    for (size_t i = 0; i < N; i++) {
        p.lab[8 + i] = (uint8_t)(i % 10);
        for (size_t k = 0; k < (size_t)H * W; k++)
            p.img[16 + i * H * W + k] = (uint8_t)((i * 7 + k) % 256);
    }
    return p;
}

static void free_idx(idx_pair *p)
{
    free(p->img);
    free(p->lab);
}

static void check_idx_content(const flm_dataset *ds, uint32_t N, uint32_t H, uint32_t W)
{
    assert_int_equal(ds->kind, FLM_DATA_FLOAT);
    assert_int_equal(ds->N, N);
    assert_int_equal(ds->C, 1);
    assert_int_equal(ds->H, (int)H);
    assert_int_equal(ds->W, (int)W);
    assert_int_equal(ds->sample_len, (size_t)H * W);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(ds->y[i], (int)(i % 10));
        for (size_t k = 0; k < (size_t)H * W; k++)
            assert_true(ds->x[i * H * W + k] == (float)((i * 7 + k) % 256) / 255.0f);
    }
}

/* ---- IDX ------------------------------------------------------------------------------------ */

static void test_idx_roundtrip(void **state)
{
    (void)state;
    idx_pair p = make_idx(37, 5, 3);
    for (int gz = 0; gz < 2; gz++) {
        char ip[300], lp[300];
        tmp_path(ip, sizeof ip, gz ? "img.gz" : "img");
        tmp_path(lp, sizeof lp, gz ? "lab.gz" : "lab");
        write_file(ip, p.img, p.img_len, gz);
        write_file(lp, p.lab, p.lab_len, gz);
        flm_dataset *ds = NULL;
        char err[256] = "";
        assert_int_equal(flm_idx_load(&ds, ip, lp, 10, err, sizeof err), FL_OK);
        check_idx_content(ds, 37, 5, 3);
        flm_dataset_free(ds);
    }
    /* From memory, plain and gzipped. */
    flm_dataset *ds = NULL;
    assert_int_equal(flm_idx_load_mem(&ds, p.img, p.img_len, p.lab, p.lab_len, 10, NULL, 0), FL_OK);
    check_idx_content(ds, 37, 5, 3);
    flm_dataset_free(ds);
    uLongf zl = compressBound(p.img_len) + 64;
    uint8_t *z = malloc(zl);
    /* compress2 writes zlib format; build a real gzip member through deflateInit2. */
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = p.img;
    zs.avail_in = (uInt)p.img_len;
    zs.next_out = z;
    zs.avail_out = (uInt)zl;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    const size_t zn = zs.total_out;
    deflateEnd(&zs);
    assert_int_equal(flm_idx_load_mem(&ds, z, zn, p.lab, p.lab_len, 10, NULL, 0), FL_OK);
    check_idx_content(ds, 37, 5, 3);
    flm_dataset_free(ds);
    /* A gzip stream cut short is malformed, not a crash. */
    char err[256] = "";
    assert_int_equal(flm_idx_load_mem(&ds, z, zn / 2, p.lab, p.lab_len, 10, err, sizeof err),
                     FL_ERR_DATASET_FORMAT);
    assert_null(ds);
    assert_non_null(strstr(err, "images"));
    free(z);
    free_idx(&p);
}

static void test_idx_malformed(void **state)
{
    (void)state;
    struct {
        const char *what;
        int img_edit;       /* byte offset to overwrite in the image file, -1 none */
        uint8_t img_val;
        int lab_edit;
        uint8_t lab_val;
        long img_cut;       /* bytes to drop from the end of the image file */
        long lab_cut;
        long img_extra;     /* bytes to append */
        int classes;
        fl_status want;
        const char *msg;    /* expected in err */
    } cases[] = {
        {"bad image magic", 2, 0x09, -1, 0, 0, 0, 0, 10, FL_ERR_DATASET_FORMAT, "bad magic"},
        {"bad image dims", 3, 0x02, -1, 0, 0, 0, 0, 10, FL_ERR_DATASET_FORMAT, "bad magic"},
        {"bad label magic", -1, 0, 0, 0x12, 0, 0, 0, 10, FL_ERR_DATASET_FORMAT, "bad magic"},
        {"labels as images", -1, 0, 3, 0x03, 0, 0, 0, 10, FL_ERR_DATASET_FORMAT, "bad magic"},
        {"truncated images", -1, 0, -1, 0, 5, 0, 0, 10, FL_ERR_DATASET_FORMAT, "truncated"},
        {"truncated labels", -1, 0, -1, 0, 0, 1, 0, 10, FL_ERR_DATASET_FORMAT, "truncated"},
        {"header only", -1, 0, -1, 0, 20 * 4 * 4, 0, 0, 10, FL_ERR_DATASET_FORMAT, "truncated"},
        {"cut in header", -1, 0, -1, 0, 20 * 4 * 4 + 6, 0, 0, 10, FL_ERR_DATASET_FORMAT,
         "truncated header"},
        {"count mismatch", 7, 21, -1, 0, 0, 0, 0, 10, FL_ERR_DATASET_FORMAT, "21 images"},
        {"trailing bytes", -1, 0, -1, 0, 0, 0, 3, 10, FL_ERR_DATASET_FORMAT, "trailing"},
        {"label out of range", -1, 0, 8 + 4, 200, 0, 0, 0, 10, FL_ERR_DATASET_FORMAT, "label 200"},
        {"label 9 with 9 classes", -1, 0, -1, 0, 0, 0, 0, 9, FL_ERR_DATASET_FORMAT, "label 9"},
        {"zero width", 15, 0, -1, 0, 0, 0, 0, 10, FL_ERR_DATASET_FORMAT, "image size"},
        {"huge count", 4, 0x7f, 4, 0x7f, 0, 0, 0, 10, FL_ERR_DATASET_FORMAT, "truncated"},
        {"valid", -1, 0, -1, 0, 0, 0, 0, 10, FL_OK, ""},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        idx_pair p = make_idx(20, 4, 4);
        uint8_t *img = realloc(p.img, p.img_len + 8);
        assert_non_null(img);
        p.img = img;
        if (cases[c].img_edit >= 0)
            p.img[cases[c].img_edit] = cases[c].img_val;
        if (cases[c].lab_edit >= 0)
            p.lab[cases[c].lab_edit] = cases[c].lab_val;
        const size_t il = p.img_len - (size_t)cases[c].img_cut + (size_t)cases[c].img_extra;
        const size_t ll = p.lab_len - (size_t)cases[c].lab_cut;
        memset(p.img + p.img_len, 0, 8);
        /* Both entry points agree; the file one also through gzip. */
        for (int mode = 0; mode < 3; mode++) {
            flm_dataset *ds = (flm_dataset *)(uintptr_t)1;
            char err[256] = "";
            fl_status st;
            if (mode == 0) {
                st = flm_idx_load_mem(&ds, p.img, il, p.lab, ll, cases[c].classes, err, sizeof err);
            } else {
                char ip[300], lp[300];
                tmp_path(ip, sizeof ip, "bad-img");
                tmp_path(lp, sizeof lp, "bad-lab");
                write_file(ip, p.img, il, mode == 2);
                write_file(lp, p.lab, ll, mode == 2);
                st = flm_idx_load(&ds, ip, lp, cases[c].classes, err, sizeof err);
            }
            if (st != cases[c].want || !strstr(err, cases[c].msg))
                fail_msg("%s (mode %d): got %s \"%s\"", cases[c].what, mode, fl_status_name(st), err);
            if (st == FL_OK)
                flm_dataset_free(ds);
            else
                assert_null(ds);
        }
        free_idx(&p);
    }
    /* Unreadable files: FL_ERR_DATASET_IO. */
    flm_dataset *ds = NULL;
    char err[256] = "";
    assert_int_equal(flm_idx_load(&ds, "/nonexistent/x", "/nonexistent/y", 10, err, sizeof err),
                     FL_ERR_DATASET_IO);
    assert_non_null(strstr(err, "/nonexistent/"));
    assert_int_equal(flm_idx_load(&ds, g_tmpdir, g_tmpdir, 10, err, sizeof err), FL_ERR_DATASET_IO);
    assert_int_equal(flm_dataset_load_named(&ds, "cifar", "train", NULL, err, sizeof err),
                     FL_ERR_NOT_FOUND);
    assert_int_equal(flm_dataset_load_named(&ds, "mnist", "valid", NULL, err, sizeof err),
                     FL_ERR_NOT_FOUND);
    assert_int_equal(flm_dataset_load_named(&ds, "mnist", "train", g_tmpdir, err, sizeof err),
                     FL_ERR_DATASET_IO);
}

static void test_idx_named_dir(void **state)
{
    (void)state;
    /* load_named finds {train,t10k}-*-ubyte[.gz] in an explicit directory. */
    idx_pair p = make_idx(12, 28, 28);
    char ip[300], lp[300];
    tmp_path(ip, sizeof ip, "t10k-images-idx3-ubyte.gz");
    tmp_path(lp, sizeof lp, "t10k-labels-idx1-ubyte");
    write_file(ip, p.img, p.img_len, 1);
    write_file(lp, p.lab, p.lab_len, 0);
    flm_dataset *ds = NULL;
    char err[256] = "";
    assert_int_equal(flm_dataset_load_named(&ds, "fashion-mnist", "test", g_tmpdir, err, sizeof err),
                     FL_OK);
    check_idx_content(ds, 12, 28, 28);
    flm_dataset_free(ds);
    unlink(ip);
    unlink(lp);
    free_idx(&p);
}

static void test_fashion_mnist_real(void **state)
{
    (void)state;
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char probe[300];
    snprintf(probe, sizeof probe, "%s/t10k-labels-idx1-ubyte.gz", dir);
    if (access(probe, R_OK) != 0) {
        skip();
        return;
    }
    static const struct { const char *split; size_t n; } splits[] = {{"test", 10000},
                                                                      {"train", 60000}};
    for (int s = 0; s < 2; s++) {
        flm_dataset *ds = NULL;
        char err[256] = "";
        const fl_status st = flm_dataset_load_named(&ds, "fashion-mnist", splits[s].split, dir,
                                                    err, sizeof err);
        if (st != FL_OK)
            fail_msg("%s: %s", fl_status_name(st), err);
        assert_int_equal(ds->N, splits[s].n);
        assert_int_equal(ds->H, 28);
        assert_int_equal(ds->W, 28);
        assert_int_equal(ds->classes, 10);
        size_t counts[10];
        flm_dataset_label_counts(ds, counts);
        size_t total = 0;
        for (int c = 0; c < 10; c++) {
            /* Fashion-MNIST is exactly balanced: 6000 / 1000 per class. */
            assert_int_equal(counts[c], splits[s].n / 10);
            total += counts[c];
        }
        assert_int_equal(total, splits[s].n);
        float lo = 1.0f, hi = 0.0f;
        for (size_t k = 0; k < ds->N * ds->sample_len; k++) {
            lo = ds->x[k] < lo ? ds->x[k] : lo;
            hi = ds->x[k] > hi ? ds->x[k] : hi;
        }
        assert_true(lo == 0.0f);
        assert_true(hi == 1.0f);
        flm_dataset_free(ds);
    }
}

/* ---- LEAF ----------------------------------------------------------------------------------- */

static void fixture_path(char *buf, size_t cap, const char *name)
{
    const char *root = getenv("FEDROP_SOURCE_ROOT");
    snprintf(buf, cap, "%s/tests/fixtures/datasets/%s", root ? root : "..", name);
}

static void test_leaf_alphabet(void **state)
{
    (void)state;
    assert_int_equal(strlen(FLM_LEAF_ALPHABET), FLM_LEAF_VOCAB);
    assert_int_equal(flm_leaf_char_token('\n'), 0);
    assert_int_equal(flm_leaf_char_token(' '), 1);
    assert_int_equal(flm_leaf_char_token('A'), 25);
    assert_int_equal(flm_leaf_char_token('a'), 53);
    assert_int_equal(flm_leaf_char_token('}'), 79);
    assert_int_equal(flm_leaf_char_token('{'), FLM_LEAF_UNKNOWN_TOKEN);
    assert_int_equal(flm_leaf_char_token(0xe9), FLM_LEAF_UNKNOWN_TOKEN);
    assert_int_equal(flm_leaf_char_token(0), FLM_LEAF_UNKNOWN_TOKEN);
    /* Each alphabet character has its own index. */
    for (int i = 0; i < FLM_LEAF_VOCAB; i++)
        assert_int_equal(flm_leaf_char_token((uint8_t)FLM_LEAF_ALPHABET[i]), i);
}

static void test_leaf_femnist_fixture(void **state)
{
    (void)state;
    char path[512], err[256] = "";
    fixture_path(path, sizeof path, "femnist_tiny.json");
    const char *paths[] = {path};
    flm_dataset *ds = NULL;
    const fl_status st = flm_leaf_load(&ds, FLM_LEAF_FEMNIST, paths, 1, err, sizeof err);
    if (st != FL_OK)
        fail_msg("%s: %s", fl_status_name(st), err);
    assert_int_equal(ds->kind, FLM_DATA_FLOAT);
    assert_int_equal(ds->N, 6);
    assert_int_equal(ds->C, 1);
    assert_int_equal(ds->H, 28);
    assert_int_equal(ds->W, 28);
    assert_int_equal(ds->classes, 62);
    assert_int_equal(ds->n_users, 3);
    assert_string_equal(ds->users[0], "f0000_14");
    assert_string_equal(ds->users[1], "f0001_41");
    assert_string_equal(ds->users[2], "f0002_07");
    /* make_fixtures.py: user u sample j pixel k = ((u + j + k) % 5) / 4, y = (10u + j) % 62. */
    static const int nsamp[3] = {2, 3, 1};
    size_t i = 0;
    for (int u = 0; u < 3; u++)
        for (int j = 0; j < nsamp[u]; j++, i++) {
            assert_int_equal(ds->user[i], u);
            assert_int_equal(ds->y[i], (10 * u + j) % 62);
            for (int k = 0; k < 784; k++)
                assert_true(ds->x[i * 784 + k] == (float)((u + j + k) % 5) / 4.0f);
        }
    /* A subset carries samples, labels and users. */
    const uint32_t pick[2] = {4, 0};
    flm_dataset *sub = NULL;
    assert_int_equal(flm_dataset_subset(&sub, ds, pick, 2), FL_OK);
    assert_int_equal(sub->N, 2);
    assert_int_equal(sub->y[0], ds->y[4]);
    assert_int_equal(sub->user[0], 1);
    assert_int_equal(sub->user[1], 0);
    assert_string_equal(sub->users[1], "f0001_41");
    assert_memory_equal(flm_dataset_x(sub, 0), flm_dataset_x(ds, 4), 784 * sizeof(float));
    assert_null(flm_dataset_x(sub, 2));
    assert_null(flm_dataset_tokens(sub, 0));
    const uint32_t bad[1] = {6};
    flm_dataset *none = NULL;
    assert_int_equal(flm_dataset_subset(&none, ds, bad, 1), FL_ERR_INVALID_ARG);
    assert_null(none);
    flm_dataset_free(sub);
    /* The same file twice: the users collide. */
    const char *twice[] = {path, path};
    flm_dataset *ds2 = NULL;
    assert_int_equal(flm_leaf_load(&ds2, FLM_LEAF_FEMNIST, twice, 2, err, sizeof err),
                     FL_ERR_DATASET_FORMAT);
    assert_non_null(strstr(err, "appears twice"));
    assert_null(ds2);
    /* The wrong kind for the file is a format error, not garbage. */
    assert_int_equal(flm_leaf_load(&ds2, FLM_LEAF_SHAKESPEARE, paths, 1, err, sizeof err),
                     FL_ERR_DATASET_FORMAT);
    const char *missing[] = {"/nonexistent/leaf.json"};
    assert_int_equal(flm_leaf_load(&ds2, FLM_LEAF_FEMNIST, missing, 1, err, sizeof err),
                     FL_ERR_DATASET_IO);
    assert_non_null(strstr(err, "/nonexistent/leaf.json"));
    flm_dataset_free(ds);
    flm_dataset_free(NULL);
}

static const char TEXT[] =
    "To be, or not to be: that is the question: Whether 'tis nobler in the mind to suffer "
    "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles, "
    "And by opposing end them? To die: to sleep; No more; and by a sleep to say we end "
    "The heart-ache and the thousand natural shocks \xc3\xa9 That flesh is heir to, 'tis a "
    "consummation Devoutly to be wish'd. [Exit] {stage}";

/* Tokens of TEXT from character offset o (the e-acute, 2 bytes, is character 302). */
static int32_t text_token(size_t o)
{
    if (o == 302)
        return FLM_LEAF_UNKNOWN_TOKEN;
    const size_t b = o > 302 ? o + 1 : o;
    return flm_leaf_char_token((uint8_t)TEXT[b]);
}

static void test_leaf_shakespeare_fixture(void **state)
{
    (void)state;
    char path[512], err[256] = "";
    fixture_path(path, sizeof path, "shakespeare_tiny.json");
    const char *paths[] = {path};
    flm_dataset *ds = NULL;
    const fl_status st = flm_leaf_load(&ds, FLM_LEAF_SHAKESPEARE, paths, 1, err, sizeof err);
    if (st != FL_OK)
        fail_msg("%s: %s", fl_status_name(st), err);
    assert_int_equal(ds->kind, FLM_DATA_TOKENS);
    assert_int_equal(ds->N, 5);
    assert_int_equal(ds->C, 1);
    assert_int_equal(ds->H, 80);
    assert_int_equal(ds->W, 1);
    assert_int_equal(ds->classes, 80);
    assert_int_equal(ds->n_users, 2);
    assert_string_equal(ds->users[1], "HAMLET_HAMLET");
    static const size_t off[5] = {0, 40, 80, 230, 290};
    static const uint32_t uid[5] = {0, 0, 0, 1, 1};
    int saw_newline = 0, saw_unknown = 0;
    for (size_t i = 0; i < 5; i++) {
        const int32_t *tk = flm_dataset_tokens(ds, i);
        for (size_t t = 0; t < 80; t++) {
            assert_int_equal(tk[t], text_token(off[i] + t));
            saw_newline |= tk[t] == 0;
            saw_unknown |= tk[t] == FLM_LEAF_UNKNOWN_TOKEN;
        }
        assert_int_equal(ds->y[i], text_token(off[i] + 80));
        assert_int_equal(ds->user[i], uid[i]);
    }
    assert_true(saw_newline);
    assert_true(saw_unknown);
    flm_dataset_free(ds);
}

#define S80 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static void test_leaf_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        flm_leaf_kind kind;
        const char *json;
        fl_status want;
        const char *msg;
    } cases[] = {
        {"empty", FLM_LEAF_SHAKESPEARE, "", FL_ERR_DATASET_FORMAT, "expected '{'"},
        {"not an object", FLM_LEAF_SHAKESPEARE, "[]", FL_ERR_DATASET_FORMAT, "expected '{'"},
        {"no user_data", FLM_LEAF_SHAKESPEARE, "{\"users\": []}", FL_ERR_DATASET_FORMAT,
         "no \"user_data\""},
        {"unclosed", FLM_LEAF_SHAKESPEARE, "{\"user_data\": {\"a\": {\"x\": [], \"y\": []}}",
         FL_ERR_DATASET_FORMAT, "expected ',' or '}'"},
        {"missing colon", FLM_LEAF_SHAKESPEARE, "{\"user_data\" {}}", FL_ERR_DATASET_FORMAT,
         "expected ':'"},
        {"trailing comma", FLM_LEAF_SHAKESPEARE, "{\"user_data\": {},}", FL_ERR_DATASET_FORMAT,
         "expected a key"},
        {"data after", FLM_LEAF_SHAKESPEARE, "{\"user_data\": {}} {}", FL_ERR_DATASET_FORMAT,
         "data after"},
        {"garbage", FLM_LEAF_SHAKESPEARE, "{\"user_data\": @}", FL_ERR_DATASET_FORMAT,
         "unexpected character"},
        {"bad literal", FLM_LEAF_SHAKESPEARE, "{\"h\": nul, \"user_data\": {}}",
         FL_ERR_DATASET_FORMAT, "invalid literal"},
        {"bad number", FLM_LEAF_FEMNIST, "{\"num_samples\": [01], \"user_data\": {}}",
         FL_ERR_DATASET_FORMAT, "expected ','"},
        {"bad escape", FLM_LEAF_SHAKESPEARE, "{\"a\\q\": 1, \"user_data\": {}}",
         FL_ERR_DATASET_FORMAT, "bad escape"},
        {"lone surrogate", FLM_LEAF_SHAKESPEARE, "{\"\\udc00\": 1, \"user_data\": {}}",
         FL_ERR_DATASET_FORMAT, "surrogate"},
        {"x not a list", FLM_LEAF_SHAKESPEARE, "{\"user_data\": {\"a\": {\"x\": 5, \"y\": []}}}",
         FL_ERR_DATASET_FORMAT, "x must be a list"},
        {"user not an object", FLM_LEAF_SHAKESPEARE, "{\"user_data\": {\"a\": []}}",
         FL_ERR_DATASET_FORMAT, "expected an object"},
        {"short string", FLM_LEAF_SHAKESPEARE,
         "{\"user_data\": {\"a\": {\"x\": [\"abc\"], \"y\": [\"d\"]}}}", FL_ERR_DATASET_FORMAT,
         "has 3 characters"},
        {"x number", FLM_LEAF_SHAKESPEARE, "{\"user_data\": {\"a\": {\"x\": [3], \"y\": [\"d\"]}}}",
         FL_ERR_DATASET_FORMAT, "expected a string of 80"},
        {"y two chars", FLM_LEAF_SHAKESPEARE,
         "{\"user_data\": {\"a\": {\"x\": [\"" S80 "\"], \"y\": [\"de\"]}}}",
         FL_ERR_DATASET_FORMAT, "1-character"},
        {"invalid utf-8", FLM_LEAF_SHAKESPEARE,
         "{\"user_data\": {\"a\": {\"x\": [\"\xc3" S80 "\"], \"y\": [\"d\"]}}}",
         FL_ERR_DATASET_FORMAT, "invalid UTF-8"},
        {"x/y length mismatch", FLM_LEAF_SHAKESPEARE,
         "{\"user_data\": {\"a\": {\"x\": [\"" S80 "\"], \"y\": [\"d\", \"e\"]}}}",
         FL_ERR_DATASET_FORMAT, "1 x samples but 2 y labels"},
        {"num_samples mismatch", FLM_LEAF_SHAKESPEARE,
         "{\"users\": [\"a\"], \"num_samples\": [2], \"user_data\": {\"a\": {\"x\": [\"" S80
         "\"], \"y\": [\"d\"]}}}", FL_ERR_DATASET_FORMAT, "num_samples says 2"},
        {"num_samples count", FLM_LEAF_SHAKESPEARE,
         "{\"num_samples\": [1, 1], \"user_data\": {\"a\": {\"x\": [], \"y\": []}}}",
         FL_ERR_DATASET_FORMAT, "2 entries for 1 users"},
        {"users unknown", FLM_LEAF_SHAKESPEARE,
         "{\"users\": [\"b\"], \"user_data\": {\"a\": {\"x\": [], \"y\": []}}}",
         FL_ERR_DATASET_FORMAT, "listed but not in user_data"},
        {"users count", FLM_LEAF_SHAKESPEARE,
         "{\"users\": [\"a\", \"a\"], \"user_data\": {\"a\": {\"x\": [], \"y\": []}}}",
         FL_ERR_DATASET_FORMAT, "lists 2 users"},
        {"users type", FLM_LEAF_SHAKESPEARE, "{\"users\": [1], \"user_data\": {}}",
         FL_ERR_DATASET_FORMAT, "users: expected a string"},
        {"duplicate user", FLM_LEAF_SHAKESPEARE,
         "{\"user_data\": {\"a\": {\"x\": [], \"y\": []}, \"a\": {\"x\": [], \"y\": []}}}",
         FL_ERR_DATASET_FORMAT, "appears twice"},
        {"duplicate key", FLM_LEAF_SHAKESPEARE, "{\"user_data\": {}, \"user_data\": {}}",
         FL_ERR_DATASET_FORMAT, "duplicate key"},
        {"femnist short sample", FLM_LEAF_FEMNIST,
         "{\"user_data\": {\"a\": {\"x\": [[0.5, 1, 0]], \"y\": [3]}}}", FL_ERR_DATASET_FORMAT,
         "sample has 3 values"},
        {"femnist pixel range", FLM_LEAF_FEMNIST,
         "{\"user_data\": {\"a\": {\"x\": [[0.5, 1.5]], \"y\": [3]}}}", FL_ERR_DATASET_FORMAT,
         "outside [0, 1]"},
        {"femnist label range", FLM_LEAF_FEMNIST,
         "{\"user_data\": {\"a\": {\"x\": [], \"y\": [62]}}}", FL_ERR_DATASET_FORMAT,
         "integer class in 0..61"},
        {"femnist label fraction", FLM_LEAF_FEMNIST,
         "{\"user_data\": {\"a\": {\"y\": [2.5], \"x\": []}}}", FL_ERR_DATASET_FORMAT,
         "integer class"},
        {"femnist x strings", FLM_LEAF_FEMNIST,
         "{\"user_data\": {\"a\": {\"x\": [\"0\"], \"y\": [1]}}}", FL_ERR_DATASET_FORMAT,
         "list of 784 floats"},
        {"deep nesting", FLM_LEAF_SHAKESPEARE,
         "{\"h\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
         ", \"user_data\": {}}", FL_ERR_DATASET_FORMAT, "nesting deeper"},
        {"error position", FLM_LEAF_SHAKESPEARE,
         "{\n \"users\": [],\n \"user_data\": {\n  \"a\": {\"x\": [\"x\"]}}}",
         FL_ERR_DATASET_FORMAT, "line 4, byte 46: x: string has 1 characters"},
        {"valid, other keys skipped", FLM_LEAF_SHAKESPEARE,
         "{\"hierarchies\": [{\"a\": [1, -2.5e3, true, false, null, \"\\u00e9\\ud83d\\ude00\"]}], "
         "\"users\": [\"a\"], \"num_samples\": [1], \"user_data\": {\"a\": {\"meta\": {}, "
         "\"y\": [\"\\u00e9\"], \"x\": [\"" S80 "\"]}}}", FL_OK, ""},
        {"valid, empty", FLM_LEAF_FEMNIST, " { \"user_data\" : { } } \n", FL_OK, ""},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        flm_dataset *ds = (flm_dataset *)(uintptr_t)1;
        char err[256] = "";
        const fl_status st = flm_leaf_load_mem(&ds, cases[c].kind, (const uint8_t *)cases[c].json,
                                               strlen(cases[c].json), err, sizeof err);
        if (st != cases[c].want || !strstr(err, cases[c].msg))
            fail_msg("%s: got %s \"%s\"", cases[c].what, fl_status_name(st), err);
        if (st == FL_OK) {
            assert_int_equal(ds->N, c + 1 == sizeof cases / sizeof cases[0] ? 0 : 1);
            if (ds->N) {
                assert_int_equal(ds->y[0], FLM_LEAF_UNKNOWN_TOKEN);
                assert_int_equal(ds->tokens[79], flm_leaf_char_token('a'));
            }
            flm_dataset_free(ds);
        } else {
            assert_null(ds);
            assert_non_null(strstr(err, "line "));
        }
    }
}

/* A LEAF file far larger than the 64 KiB read buffer, so tokens straddle refills. */
static void test_leaf_streaming(void **state)
{
    (void)state;
    char path[300];
    tmp_path(path, sizeof path, "big.json");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    const int U = 40, per = 150;
    fprintf(f, "{\"users\": [");
    for (int u = 0; u < U; u++)
        fprintf(f, "%s\"user%03d\"", u ? ", " : "", u);
    fprintf(f, "],\n \"num_samples\": [");
    for (int u = 0; u < U; u++)
        fprintf(f, "%s%d", u ? ", " : "", per);
    fprintf(f, "],\n \"user_data\": {");
    for (int u = 0; u < U; u++) {
        fprintf(f, "%s\n\"user%03d\": {\"x\": [", u ? "," : "", u);
        for (int j = 0; j < per; j++) {
            fputs(j ? ", \"" : "\"", f);
            for (int t = 0; t < 80; t++)
                fputc(FLM_LEAF_ALPHABET[1 + (u * 7 + j + t) % 79] == '"' ? 'q'
                      : FLM_LEAF_ALPHABET[1 + (u * 7 + j + t) % 79], f);
            fputs("\"", f);
        }
        fprintf(f, "],\n \"y\": [");
        for (int j = 0; j < per; j++)
            fprintf(f, "%s\"%c\"", j ? ", " : "", 'a' + (j % 26));
        fprintf(f, "]}");
    }
    fprintf(f, "}}\n");
    const long size = ftell(f);
    assert_int_equal(fclose(f), 0);
    assert_true(size > 4 * 65536);
    const char *paths[] = {path};
    flm_dataset *ds = NULL;
    char err[256] = "";
    const fl_status st = flm_leaf_load(&ds, FLM_LEAF_SHAKESPEARE, paths, 1, err, sizeof err);
    if (st != FL_OK)
        fail_msg("%s: %s", fl_status_name(st), err);
    assert_int_equal(ds->N, (size_t)U * per);
    assert_int_equal(ds->n_users, U);
    for (int u = 0; u < U; u++)
        for (int j = 0; j < per; j++) {
            const size_t i = (size_t)u * per + j;
            assert_int_equal(ds->user[i], u);
            assert_int_equal(ds->y[i], flm_leaf_char_token('a' + j % 26));
            for (int t = 0; t < 80; t += 13) {
                const char ch = FLM_LEAF_ALPHABET[1 + (u * 7 + j + t) % 79];
                assert_int_equal(ds->tokens[i * 80 + t], flm_leaf_char_token(ch == '"' ? 'q' : ch));
            }
        }
    flm_dataset_free(ds);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_roundtrip),
        cmocka_unit_test(test_idx_malformed),
        cmocka_unit_test(test_idx_named_dir),
        cmocka_unit_test(test_fashion_mnist_real),
        cmocka_unit_test(test_leaf_alphabet),
        cmocka_unit_test(test_leaf_femnist_fixture),
        cmocka_unit_test(test_leaf_shakespeare_fixture),
        cmocka_unit_test(test_leaf_malformed),
        cmocka_unit_test(test_leaf_streaming),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
