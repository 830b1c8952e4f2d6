/* flsim_load.c: reading a finished run's outputs back (DIR/summary.json and DIR/rounds.csv), so
 * that `fl_sim experiment afd` reuses the runs an interrupted experiment already finished. These
 * are outside bytes: every field is checked, every error names the file and line or field. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef FLSIM_HAVE_JANSSON
#include <jansson.h>
#endif

#include "fl_mem.h"
#include "flsim.h"
#include "fl_text.h"
#include "flsim_internal.h"

/* ---- rounds.csv --------------------------------------------------------------------------- */

/* Columns of the header flsim_rounds_header; a rounds.csv written before 2026-12-02 has the
 * first N_COLS_OLD of them (no eval_wall_s), and reads back with eval_wall_s NaN (not known). */
enum { N_COLS = 20, N_COLS_OLD = 19 };

/* The next comma-separated field of [*p, end) up to the line's end: its bounds; *p moves past
 * the comma. 0 when the line has no more fields. */
static int next_field(const char **p, const char *eol, const char **f0, const char **f1)
{
    if (*p > eol)
        return 0;
    const char *q = memchr(*p, ',', (size_t)(eol - *p));
    *f0 = *p;
    *f1 = q ? q : eol;
    *p = q ? q + 1 : eol + 1;
    return 1;
}

static int field_u64(const char *a, const char *b, uint64_t max, uint64_t *out)
{
    if (a == b || b - a > 20)
        return 0;
    uint64_t v = 0;
    for (const char *c = a; c < b; c++) {
        if (*c < '0' || *c > '9')
            return 0;
        const uint64_t d = (uint64_t)(*c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    if (v > max)
        return 0;
    *out = v;
    return 1;
}

/* A finite decimal number (strtod's syntax minus inf / nan / hex); empty gives NaN when
 * allow_empty. */
static int field_f64(const char *a, const char *b, int allow_empty, double *out)
{
    if (a == b) {
        *out = NAN;
        return allow_empty;
    }
    char buf[64];
    if (b - a >= (long)sizeof buf)
        return 0;
    for (const char *c = a; c < b; c++)
        if (!strchr("0123456789+-.eE", *c))
            return 0;
    memcpy(buf, a, (size_t)(b - a));
    buf[b - a] = '\0';
    char *end;
    errno = 0;
    const double v = strtod(buf, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

fl_status flsim_parse_rounds_csv(const char *text, size_t len, flsim_round_record **out,
                                 size_t *n_out, char *err, size_t errlen)
{
    static const char *const names[N_COLS] = {
        "round", "vtime_s", "round_vtime_s", "wall_s", "train_wall_s", "bytes_down", "bytes_up",
        "cum_bytes_down", "cum_bytes_up", "mean_loss", "test_acc", "test_loss", "online",
        "selected", "reported", "late", "failed", "closed_by", "train_flops", "eval_wall_s"};
    *out = NULL;
    *n_out = 0;
    const char *p = text, *end = text + len;
    const char *eol = memchr(p, '\n', len);
    if (!eol)
        eol = end;
    size_t hl = (size_t)(eol - p);
    if (hl && p[hl - 1] == '\r')
        hl--;
    /* this fl_sim's header, or an earlier one's: the same columns up to train_flops */
    const char *old_end = strstr(flsim_rounds_header, ",eval_wall_s");
    const size_t old_hl = old_end ? (size_t)(old_end - flsim_rounds_header) : 0;
    int ncols = N_COLS;
    if (hl == old_hl && memcmp(p, flsim_rounds_header, hl) == 0)
        ncols = N_COLS_OLD;
    else if (hl != strlen(flsim_rounds_header) || memcmp(p, flsim_rounds_header, hl) != 0)
        return fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT,
                       "line 1: not the header of an fl_sim rounds.csv");
    p = eol < end ? eol + 1 : end;
    flsim_round_record *rec = NULL;
    size_t n = 0, cap = 0;
    fl_status st = FL_OK;
    for (size_t line = 2; p < end; line++) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *le = eol;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p) { /* only the last line may be empty */
            if (eol + 1 < end)
                st = fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT, "line %zu: empty line", line);
            break;
        }
        if ((st = fl_grow(&rec, &cap, n + 1, sizeof *rec, 256)) != FL_OK)
            break;
        flsim_round_record *r = &rec[n];
        memset(r, 0, sizeof *r);
        const char *q = p, *f0 = p, *f1 = p;
        int col = 0, ok = 1, missing = 0;
        uint64_t u = 0;
        double d = 0;
        r->eval_wall_s = NAN;
        for (; col < ncols; col++) {
            if (!next_field(&q, le, &f0, &f1)) {
                missing = 1;
                break;
            }
            switch (col) {
            case 0: ok = field_u64(f0, f1, UINT32_MAX, &u); r->round = (uint32_t)u; break;
            case 1: ok = field_f64(f0, f1, 0, &r->vtime_s); break;
            case 2: ok = field_f64(f0, f1, 0, &r->round_vtime_s); break;
            case 3: ok = field_f64(f0, f1, 0, &r->wall_s); break;
            case 4: ok = field_f64(f0, f1, 0, &r->train_wall_s); break;
            case 5: ok = field_u64(f0, f1, UINT64_MAX, &r->bytes_down); break;
            case 6: ok = field_u64(f0, f1, UINT64_MAX, &r->bytes_up); break;
            case 7: ok = field_u64(f0, f1, UINT64_MAX, &r->cum_bytes_down); break;
            case 8: ok = field_u64(f0, f1, UINT64_MAX, &r->cum_bytes_up); break;
            case 9: ok = field_f64(f0, f1, 1, &r->mean_loss); break;
            case 10:
                ok = field_f64(f0, f1, 1, &d);
                r->evaluated = f0 != f1;
                r->test_acc = d;
                ok = ok && (!r->evaluated || (d >= 0 && d <= 1));
                break;
            case 11:
                ok = field_f64(f0, f1, 1, &r->test_loss);
                ok = ok && (f0 != f1) == r->evaluated;
                break;
            case 12: ok = field_u64(f0, f1, UINT32_MAX, &u); r->online = (uint32_t)u; break;
            case 13: ok = field_u64(f0, f1, UINT32_MAX, &u); r->selected = (uint32_t)u; break;
            case 14: ok = field_u64(f0, f1, UINT32_MAX, &u); r->reported = (uint32_t)u; break;
            case 15: ok = field_u64(f0, f1, UINT32_MAX, &u); r->late = (uint32_t)u; break;
            case 16: ok = field_u64(f0, f1, UINT32_MAX, &u); r->failed = (uint32_t)u; break;
            case 17:
                ok = 0;
                for (int k = 0; k < 4; k++)
                    if ((size_t)(f1 - f0) == strlen(flsim_close_names[k]) &&
                        memcmp(f0, flsim_close_names[k], (size_t)(f1 - f0)) == 0) {
                        r->closed_by = k;
                        ok = 1;
                    }
                break;
            case 18: ok = field_f64(f0, f1, 0, &r->train_flops); break;
            case 19: ok = field_f64(f0, f1, 1, &r->eval_wall_s) && !(r->eval_wall_s < 0); break;
            }
            if (!ok)
                break;
        }
        if (missing) {
            st = fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT, "line %zu: %d columns, want %d",
                         line, col, ncols);
            break;
        }
        if (!ok) {
            st = fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT, "line %zu: bad %s '%.*s'", line,
                         names[col], (int)(f1 - f0 > 40 ? 40 : f1 - f0), f0);
            break;
        }
        if (q <= le) {
            st = fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT, "line %zu: more than %d columns",
                         line, ncols);
            break;
        }
        if (r->round != n + 1) {
            st = fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT, "line %zu: round %u where %zu was due",
                         line, r->round, n + 1);
            break;
        }
        const uint64_t pd = n ? rec[n - 1].cum_bytes_down : 0, pu = n ? rec[n - 1].cum_bytes_up : 0;
        if (r->cum_bytes_down - pd != r->bytes_down || r->cum_bytes_up - pu != r->bytes_up ||
            r->cum_bytes_down < pd || r->cum_bytes_up < pu) {
            st = fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT,
                         "line %zu: cumulative bytes disagree with the round's bytes", line);
            break;
        }
        n++;
        p = eol < end ? eol + 1 : end;
    }
    if (st == FL_OK && n == 0)
        st = fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT, "no rounds after the header");
    if (st != FL_OK) {
        if (st == FL_ERR_NOMEM)
            fl_errf(err, errlen, st, "out of memory");
        free(rec);
        return st;
    }
    *out = rec;
    *n_out = n;
    return FL_OK;
}

/* ---- summary.json ------------------------------------------------------------------------- */

#ifdef FLSIM_HAVE_JANSSON

/* Whether the integer literal s[0..n) (an optional '-', then digits) is outside int64: jansson
 * refuses such a number ("too big integer"), and a --seed from 2^63 to 2^64 - 1 is one. */
static int int_outside_i64(const char *s, size_t n)
{
    const int neg = s[0] == '-';
    const char *d = s + neg;
    size_t k = n - (size_t)neg;
    while (k > 1 && *d == '0') { /* JSON has no leading zeros, but be exact about them */
        d++;
        k--;
    }
    const char *lim = neg ? "9223372036854775808" : "9223372036854775807";
    return k > 19 || (k == 19 && memcmp(d, lim, 19) > 0);
}

/* text[0..len) with every integer outside int64 (no fraction or exponent) put in quotes, into
 * buf unless it is NULL: returns the length of the result, len where there is none. */
static size_t quote_wide(const char *text, size_t len, char *buf)
{
    size_t o = 0;
    int in_str = 0;
    for (size_t i = 0; i < len;) {
        const char c = text[i];
        size_t j = i + 1; /* the end of what i starts */
        int wide = 0;
        if (in_str) {
            j += c == '\\' && j < len;
            in_str = c != '"';
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            while (j < len && text[j] >= '0' && text[j] <= '9')
                j++;
            const int frac = j < len && (text[j] == '.' || text[j] == 'e' || text[j] == 'E');
            wide = !frac && (j - i) > 1 && int_outside_i64(text + i, j - i);
        }
        if (buf) {
            if (wide)
                buf[o] = '"';
            memcpy(buf + o + (size_t)wide, text + i, j - i);
            if (wide)
                buf[o + 1 + j - i] = '"';
        }
        o += j - i + 2 * (size_t)wide;
        i = j;
    }
    return o;
}

/* json_loadb of text[0..len), with every integer outside int64 read as a string of its digits
 * (jansson reads integers as int64 only). Both sides of a comparison (same_config) are read so,
 * so a saved seed of 2^63 or more equals this run's; any other use of such a number fails as a
 * wrong type would. NULL with je filled on an error (also out of memory). */
static json_t *load_wide(const char *text, size_t len, size_t flags, json_error_t *je)
{
    const size_t n = quote_wide(text, len, NULL);
    if (n == len)
        return json_loadb(text, len, flags, je);
    char *buf = malloc(n);
    if (!buf) {
        snprintf(je->text, sizeof je->text, "out of memory");
        je->line = 0;
        return NULL;
    }
    quote_wide(text, len, buf);
    json_t *r = json_loadb(buf, n, flags, je);
    free(buf);
    return r;
}

/* A number (or, where nullable, null = NaN) member of o. */
static int get_num(json_t *o, const char *k, int nullable, double *out)
{
    json_t *v = json_object_get(o, k);
    if (nullable && json_is_null(v)) {
        *out = NAN;
        return 1;
    }
    if (!json_is_number(v))
        return 0;
    *out = json_number_value(v);
    return isfinite(*out);
}

static int get_u64(json_t *o, const char *k, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

/* A count that summaries written before it existed lack: absent reads as 0. */
static int opt_u64(json_t *o, const char *k, uint64_t *out)
{
    *out = 0;
    return !json_object_get(o, k) || get_u64(o, k, INT64_MAX, out);
}

static int get_str(json_t *o, const char *k, char *buf, size_t cap)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v) || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v))
        return 0;
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* o[key] as a SHA-256 in 64 lowercase hex digits, into out: 1, or 0 if it is not one. */
static int get_sha256(json_t *o, const char *key, uint8_t out[FL_SHA256_LEN])
{
    char hex[2 * FL_SHA256_LEN + 1];
    if (!get_str(o, key, hex, sizeof hex) || strlen(hex) != sizeof hex - 1)
        return 0;
    for (size_t i = 0; i < FL_SHA256_LEN; i++) {
        const int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

/* A value as a message shows it (malloc'ed): a real in the fewest digits that read back as it
 * (0.05, where jansson writes 0.050000000000000003). */
static char *dump_value(const json_t *v)
{
    if (!json_is_real(v))
        return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    char *b = malloc(32);
    return b ? (char *)fl_text_shortest(b, 32, json_real_value(v), 0) : NULL;
}

/* Of a value v (a setting's, as dump_value writes it) the part a message shows: the whole of it
 * up to 60 characters; of a longer one 60 from a little before `from`, where it first differs
 * from the other value, with "..." where it is cut. Two paths that differ past their 60th
 * character (a trace's file name under a long directory) then do not read the same. */
static const char *value_shown(char *out, size_t cap, const char *v, size_t from)
{
    enum { SHOWN = 60, BEFORE = 20 };
    const size_t n = strlen(v);
    if (n <= SHOWN) {
        snprintf(out, cap, "%s", v);
        return out;
    }
    size_t start = from > BEFORE ? from - BEFORE : 0;
    if (start > n - SHOWN)
        start = n - SHOWN;
    snprintf(out, cap, "%s%.*s%s", start ? "..." : "", (int)SHOWN, v + start,
             start + SHOWN < n ? "..." : "");
    return out;
}

/* A saved setting against this run's: equal JSON, or the same number in another form. The
 * numbers are written by fl_text_shortest, whose form of a whole number changed (6e+01 from
 * 4c6f6fe, 60 before it and since a25ebd3): jansson reads the one as a real and the other as an
 * integer, which json_equal calls different. Two integers compare as integers (a seed above
 * 2^53 is not rounded). */
static int same_value(json_t *a, json_t *b)
{
    if (json_equal(a, b))
        return 1;
    return json_is_number(a) && json_is_number(b) && (json_is_real(a) || json_is_real(b)) &&
           json_number_value(a) == json_number_value(b);
}

/* A rate or availability spec (flops, down_bps, up_bps, availability) saved by an fl_sim before
 * 2026-12-07 (42aeef36), which kept a "-0" given in one ("diurnal:-0:1" saved as
 * "diurnal:-0:1:86400"): the same setting as this run's, which reads it as 0, when the two
 * differ only in fields "-0" where this run's are "0" (the same draws: a zero minimum or sigma). */
static int same_spec_but_neg_zero(const char *k, const json_t *s, const json_t *v)
{
    if (!json_is_string(s) || !json_is_string(v) ||
        (strcmp(k, "flops") && strcmp(k, "down_bps") && strcmp(k, "up_bps") &&
         strcmp(k, "availability")))
        return 0;
    const char *a = json_string_value(s), *b = json_string_value(v);
    int any = 0;
    for (;;) {
        const size_t la = strcspn(a, ":"), lb = strcspn(b, ":");
        if (la == 2 && lb == 1 && !memcmp(a, "-0", 2) && b[0] == '0')
            any = 1;
        else if (la != lb || memcmp(a, b, la) != 0)
            return 0;
        if (!a[la] || !b[lb])
            return !a[la] && !b[lb] && any;
        a += la + 1;
        b += lb + 1;
    }
}

/* A path setting (trace, dataset, test_dataset) saved as a relative path, before runs saved
 * them absolute (flsim_config_paths_absolute): the same setting when, taken from the working
 * directory, it names the files this run's names (a run resumed where it was started, as before
 * the paths were saved absolute). */
static int same_path_setting(const char *k, const json_t *s, const flsim_config *want)
{
    if (!json_is_string(s))
        return 0;
    flsim_config t = *want;
    char *f = !strcmp(k, "trace") ? t.trace : !strcmp(k, "dataset") ? t.dataset
            : !strcmp(k, "test_dataset") ? t.test_dataset : NULL;
    const char *w = !strcmp(k, "trace") ? want->trace : !strcmp(k, "dataset") ? want->dataset
                  : want->test_dataset;
    if (!f || json_string_length(s) >= FLSIM_STR)
        return 0;
    memcpy(f, json_string_value(s), json_string_length(s) + 1);
    (void)flsim_config_paths_absolute(&t, NULL, 0); /* a path too long stays as given */
    return strcmp(f, w) == 0;
}

/* Whether a saved path setting (trace, or a dataset spec's files: idx:, femnist:, shakespeare:)
 * names a file by a relative path, as fl_sim saved them before 0.3.4: it then names the files
 * seen from the directory that run was started in. */
static int relative_path_setting(const char *k, const json_t *s)
{
    if (!json_is_string(s) || (strcmp(k, "trace") && strcmp(k, "dataset") &&
                               strcmp(k, "test_dataset")))
        return 0;
    const char *v = json_string_value(s);
    if (!strcmp(k, "trace"))
        return v[0] && v[0] != '/';
    static const char *const with_paths[] = {"idx:", "femnist:", "shakespeare:"};
    for (size_t i = 0; i < sizeof with_paths / sizeof with_paths[0]; i++) {
        if (strncmp(v, with_paths[i], strlen(with_paths[i])) != 0)
            continue;
        for (const char *p = v + strlen(with_paths[i]); p; p = strchr(p, ',')) {
            p += *p == ',';
            if (*p && *p != '/' && *p != ',')
                return 1;
        }
    }
    return 0;
}

/* The saved settings against those of this run: FL_OK, or FL_ERR_RESULTS_MISMATCH naming the
 * first setting that differs. `threads` and `fold_threads` are left out: results do not depend
 * on them. `model` as written may differ where both name the same architecture (saved_arch, the
 * saved run's canonical spec, equals want_arch): `mlp` and its full spec train the same model. */
static fl_status same_config(json_t *saved, const char *saved_arch, const flsim_config *want,
                             const char *want_arch, int any_rounds, char *err, size_t errlen)
{
    char buf[16384];
    if (flsim_config_json(want, buf, sizeof buf) >= sizeof buf)
        return fl_errf(err, errlen, FL_ERR_INTERNAL, "settings too long to compare");
    json_error_t je;
    json_t *w = load_wide(buf, strlen(buf), 0, &je);
    if (!w)
        return fl_errf(err, errlen, FL_ERR_INTERNAL, "settings JSON: %s", je.text);
    fl_status st = FL_OK;
    const char *k;
    json_t *v;
    /* A setting added after the run was saved is absent from it: the run had its default. */
    char dbuf[16384];
    const flsim_config def = flsim_config_default();
    json_t *d = flsim_config_json(&def, dbuf, sizeof dbuf) < sizeof dbuf ? load_wide(dbuf, strlen(dbuf), 0, &je)
                                                                         : NULL;
    json_object_foreach(w, k, v) {
        if (!strcmp(k, "threads") || !strcmp(k, "fold_threads") ||
            (any_rounds && !strcmp(k, "rounds")))
            continue;
        json_t *s = json_object_get(saved, k);
        if (!s && d && json_object_get(d, k) && json_equal(json_object_get(d, k), v))
            continue;
        if (!strcmp(k, "model") && want_arch && saved_arch && !strcmp(saved_arch, want_arch))
            continue;
        if (s && !same_value(s, v) && same_path_setting(k, s, want))
            continue;
        if (s && same_spec_but_neg_zero(k, s, v))
            continue;
        if (!s || !same_value(s, v)) {
            char *a = s ? dump_value(s) : NULL;
            char *b = dump_value(v);
            /* the model: its canonical specs too, where the caller knows them */
            const int arch = !strcmp(k, "model") && want_arch && saved_arch;
            const char *sa = a ? a : "(absent)", *sb = b ? b : "?";
            size_t same = 0; /* where the two first differ */
            while (sa[same] && sa[same] == sb[same])
                same++;
            char va[80], vb[80];
            st = fl_errf(err, errlen, FL_ERR_RESULTS_MISMATCH,
                         "setting '%s' differs: saved %s%s%.60s%s, this run %s%s%.60s%s", k,
                         value_shown(va, sizeof va, sa, same), arch ? " (" : "",
                         arch ? saved_arch : "", arch ? ")" : "",
                         value_shown(vb, sizeof vb, sb, same), arch ? " (" : "",
                         arch ? want_arch : "", arch ? ")" : "");
            const size_t at = err && errlen ? strlen(err) : 0;
            if (err && errlen && s && at + 1 < errlen && relative_path_setting(k, s))
                snprintf(err + at, errlen - at, " (a relative path, as fl_sim saved paths before "
                         "0.3.4: it names the files seen from the directory that run was started "
                         "in; resume it from there)");
            free(a);
            free(b);
            break;
        }
    }
    if (st == FL_OK) {
        json_object_foreach(saved, k, v) {
            if (!json_object_get(w, k)) {
                st = fl_errf(err, errlen, FL_ERR_RESULTS_MISMATCH,
                             "setting '%s' is not one of this version's", k);
                break;
            }
        }
    }
    json_decref(w);
    json_decref(d);
    return st;
}

/* flsim_parse_summary; *counted (may be NULL) says whether the three update counts were given
 * (a summary from before they existed has none: a count of 0 is not the same thing). */
static fl_status parse_summary(const char *text, size_t len, const flsim_config *want,
                               const char *want_arch, flsim_result *res, int *counted, char *err,
                               size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (counted)
        *counted = 0;
    json_error_t je;
    json_t *o = load_wide(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT, "line %d: %s", je.line, je.text);
    fl_status st = FL_OK;
    const char *bad = NULL;
    uint64_t u = 0, ec = 0, tr = 0, wk = 0, fh = 0, ra = 0;
    json_t *t = json_object_get(o, "target");
    json_t *conf = json_object_get(o, "config");
    if (!json_is_object(o))
        bad = "the document (not an object)";
    else if (!get_u64(o, "rounds", UINT32_MAX, &u) || (res->rounds = (uint32_t)u) == 0)
        bad = "rounds";
    else if (!get_num(o, "final_test_acc", 1, &res->final_test_acc) ||
             !(isnan(res->final_test_acc) || (res->final_test_acc >= 0 && res->final_test_acc <= 1)))
        bad = "final_test_acc";
    else if (!get_num(o, "final_test_loss", 1, &res->final_test_loss))
        bad = "final_test_loss";
    else if (!get_num(o, "virtual_time_s", 0, &res->virtual_time_s))
        bad = "virtual_time_s";
    else if (!get_u64(o, "bytes_down", INT64_MAX, &res->bytes_down))
        bad = "bytes_down";
    else if (!get_u64(o, "bytes_up", INT64_MAX, &res->bytes_up))
        bad = "bytes_up";
    else if (!get_num(o, "wall_s", 0, &res->wall_s))
        bad = "wall_s";
    else if (!get_num(o, "train_wall_s", 0, &res->train_wall_s))
        bad = "train_wall_s";
    else if (!get_num(o, "train_flops", 0, &res->train_flops))
        bad = "train_flops";
    else if (!get_sha256(o, "model_sha256", res->model_sha256))
        bad = "model_sha256";
    else if (!json_is_object(t) || !get_num(t, "accuracy", 0, &(double){0}) ||
             !json_is_boolean(json_object_get(t, "reached")))
        bad = "target";
    else if (!get_str(o, "arch", res->arch, sizeof res->arch))
        bad = "arch";
    else if (!get_u64(o, "n_params", SIZE_MAX, &u) || (res->n_params = (size_t)u) == 0)
        bad = "n_params";
    else if (!get_u64(o, "empty_clients", UINT32_MAX, &ec))
        bad = "empty_clients";
    else if (!get_str(o, "blas", res->blas, sizeof res->blas))
        bad = "blas";
    else if (!get_u64(o, "mpi_ranks", INT32_MAX, &u) || (res->mpi_ranks = (int)u) < 1)
        bad = "mpi_ranks";
    else if (!opt_u64(o, "workers", &wk) || wk > UINT32_MAX)
        bad = "workers";
    else if (!opt_u64(o, "fold_helpers", &fh) || fh > UINT32_MAX)
        bad = "fold_helpers";
    else if (!get_num(o, "peak_rss_mb", 0, &res->peak_rss_mb))
        bad = "peak_rss_mb";
    else if (json_object_get(o, "interrupted") && !json_is_boolean(json_object_get(o, "interrupted")))
        bad = "interrupted"; /* absent in summaries written before it existed: a finished run */
    else if (!opt_u64(o, "resumed_after", &ra) || ra > res->rounds)
        bad = "resumed_after"; /* absent before --resume existed: 0, a run of one process */
    else if (!opt_u64(o, "updates_accepted", &res->updates_accepted))
        bad = "updates_accepted";
    else if (!opt_u64(o, "updates_failed", &res->updates_failed))
        bad = "updates_failed";
    else if (!opt_u64(o, "updates_late", &res->updates_late))
        bad = "updates_late";
    else if (!json_is_object(conf))
        bad = "config";
    /* The trace's rows digest: null without a trace, absent in a summary written before it
     * existed (both leave has_trace_sha 0). */
    json_t *ts = json_object_get(o, "trace_sha256");
    if (!bad && ts && !json_is_null(ts)) {
        if (!get_sha256(o, "trace_sha256", res->trace_sha256))
            bad = "trace_sha256";
        res->has_trace_sha = !bad;
    }
    if (!bad) {
        res->empty_clients = (uint32_t)ec;
        res->workers = (uint32_t)wk;
        res->fold_helpers = (uint32_t)fh;
        res->resumed_after = (uint32_t)ra;
        res->interrupted = json_is_true(json_object_get(o, "interrupted"));
        res->target_reached = json_is_true(json_object_get(t, "reached"));
        if (res->target_reached) {
            if (!get_u64(t, "rounds", res->rounds, &tr) || tr == 0)
                bad = "target.rounds";
            else if (!get_num(t, "virtual_time_s", 0, &res->vtime_to_target))
                bad = "target.virtual_time_s";
            else if (!get_u64(t, "bytes_down", res->bytes_down, &res->bytes_down_to_target))
                bad = "target.bytes_down";
            else if (!get_u64(t, "bytes_up", res->bytes_up, &res->bytes_up_to_target))
                bad = "target.bytes_up";
            res->rounds_to_target = (uint32_t)tr;
        }
    }
    if (bad)
        st = fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT, "missing or invalid %s", bad);
    else if (want)
        st = same_config(conf, res->arch, want, want_arch, 0, err, errlen);
    if (counted)
        *counted = json_object_get(o, "updates_accepted") && json_object_get(o, "updates_failed") &&
                   json_object_get(o, "updates_late");
    json_decref(o);
    return st;
}

fl_status flsim_config_matches(const char *json, const char *saved_arch, const flsim_config *want,
                               const char *want_arch, int any_rounds, char *err, size_t errlen)
{
    json_error_t je;
    json_t *o = load_wide(json, strlen(json), JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT, "its settings: %s",
                       o ? "not a JSON object" : je.text);
    }
    const fl_status st = same_config(o, saved_arch, want, want_arch, any_rounds, err, errlen);
    json_decref(o);
    return st;
}

fl_status flsim_parse_summary(const char *text, size_t len, const flsim_config *want,
                              const char *want_arch, flsim_result *res, char *err, size_t errlen)
{
    return parse_summary(text, len, want, want_arch, res, NULL, err, errlen);
}

#else

static fl_status parse_summary(const char *text, size_t len, const flsim_config *want,
                               const char *want_arch, flsim_result *res, int *counted, char *err,
                               size_t errlen)
{
    if (counted)
        *counted = 0;
    return flsim_parse_summary(text, len, want, want_arch, res, err, errlen);
}

fl_status flsim_config_matches(const char *json, const char *saved_arch, const flsim_config *want,
                               const char *want_arch, int any_rounds, char *err, size_t errlen)
{
    (void)json;
    (void)saved_arch;
    (void)want_arch;
    (void)want;
    (void)any_rounds;
    return fl_errf(err, errlen, FL_ERR_UNSUPPORTED, "built without jansson: cannot compare a "
                   "saved run's settings");
}

fl_status flsim_parse_summary(const char *text, size_t len, const flsim_config *want,
                              const char *want_arch, flsim_result *res, char *err, size_t errlen)
{
    (void)text;
    (void)len;
    (void)want;
    (void)want_arch;
    memset(res, 0, sizeof *res);
    return fl_errf(err, errlen, FL_ERR_UNSUPPORTED, "built without jansson: cannot read summary.json");
}

#endif

/* ---- a run's directory -------------------------------------------------------------------- */

/* Reads f to its end (closed here), at most cap bytes. */
static fl_status read_all(FILE *f, size_t cap, char **out, size_t *len)
{
    size_t n = 0, c = 65536;
    char *b = malloc(c + 1);
    fl_status st = b ? FL_OK : FL_ERR_NOMEM;
    while (st == FL_OK) {
        if (n == c) {
            if (c >= cap) {
                st = FL_ERR_RESULTS_FORMAT;
                break;
            }
            c = 2 * c < cap ? 2 * c : cap;
            char *g = realloc(b, c + 1);
            if (!g) {
                st = FL_ERR_NOMEM;
                break;
            }
            b = g;
        }
        const size_t k = fread(b + n, 1, c - n, f);
        n += k;
        if (k == 0) {
            if (ferror(f))
                st = FL_ERR_IO;
            break;
        }
    }
    const int e = errno;
    fclose(f);
    if (st != FL_OK) {
        free(b);
        errno = e; /* the read's reason, for the caller's message */
        return st;
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    return FL_OK;
}

fl_status flsim_read_file(const char *path, size_t cap, char **out, size_t *len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? FL_ERR_NOT_FOUND : FL_ERR_IO;
    return read_all(f, cap, out, len);
}

fl_status flsim_read_regular(const char *path, size_t cap, char **out, size_t *len)
{
    *out = NULL;
    /* without blocking: a FIFO with no writer would hold the open for good */
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? FL_ERR_NOT_FOUND : FL_ERR_IO;
    struct stat sb;
    const int se = fstat(fd, &sb) != 0 ? errno : 0;
    FILE *f = se || !S_ISREG(sb.st_mode) ? NULL : fdopen(fd, "rb");
    if (!f) {
        const int e = se ? se : S_ISREG(sb.st_mode) ? errno : S_ISDIR(sb.st_mode) ? EISDIR : EINVAL;
        close(fd);
        errno = e;
        return FL_ERR_IO;
    }
    return read_all(f, cap, out, len);
}

/* a and b agree to the 9 significant digits rounds.csv keeps (both NaN: no figure) */
static int near9(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return fabs(a - b) <= 1e-8 * fmax(fabs(a), fabs(b));
}

/* Why flsim_read_regular failed with st, errno as it left it: a saved run's file that is no
 * regular file was said as "input/output error" (fl_strerror), which named no cause. */
static const char *read_failure(fl_status st)
{
    if (st != FL_ERR_IO || !errno)
        return fl_strerror(st);
    return errno == EINVAL ? "not a regular file (a FIFO, a device or a socket)" : strerror(errno);
}

fl_status flsim_load_outputs(const char *dir, const flsim_config *want, const char *want_arch,
                             flsim_result *res, flsim_round_record **rec, size_t *n_rec, char *err,
                             size_t errlen)
{
    *rec = NULL;
    *n_rec = 0;
    char path[FLSIM_STR + 64], why[300];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *text = NULL;
    size_t len = 0;
    fl_status st = flsim_read_regular(path, 1 << 20, &text, &len);
    if (st == FL_ERR_NOT_FOUND)
        return fl_errf(err, errlen, st, "%s: no finished run", dir);
    if (st != FL_OK)
        return fl_errf(err, errlen, st, "%s: %s", path,
                       st == FL_ERR_RESULTS_FORMAT ? "larger than 1 MiB" : read_failure(st));
    int counted = 0;
    st = parse_summary(text, len, want, want_arch, res, &counted, why, sizeof why);
    free(text);
    if (st != FL_OK)
        return fl_errf(err, errlen, st, "%s: %s", path, why);
    if (res->interrupted)
        return fl_errf(err, errlen, FL_ERR_NOT_FOUND, "%s: no finished run (interrupted after "
                       "round %u)", dir, res->rounds);
    snprintf(path, sizeof path, "%s/rounds.csv", dir);
    st = flsim_read_regular(path, (size_t)1 << 32, &text, &len);
    if (st != FL_OK)
        return fl_errf(err, errlen, st == FL_ERR_NOT_FOUND ? FL_ERR_RESULTS_FORMAT : st,
                       "%s: %s", path, st == FL_ERR_NOT_FOUND ? "missing" : read_failure(st));
    st = flsim_parse_rounds_csv(text, len, rec, n_rec, why, sizeof why);
    free(text);
    if (st != FL_OK)
        return fl_errf(err, errlen, st, "%s: %s", path, why);
    const flsim_round_record *last = &(*rec)[*n_rec - 1];
    uint64_t acc = 0, failed = 0, late = 0;
    for (size_t i = 0; i < *n_rec; i++) {
        acc += (*rec)[i].reported;
        failed += (*rec)[i].failed;
        late += (*rec)[i].late;
    }
    /* A summary from before the counts existed: they come from rounds.csv. */
    if (!counted) {
        res->updates_accepted = acc;
        res->updates_failed = failed;
        res->updates_late = late;
    }
    /* The last round is the evaluated one whose figures are the summary's final ones (the run
     * evaluates its last round), to 9 digits (rounds.csv's %.9g): what tells apart two runs of
     * the same counts and bytes, say of other learning rates, should the pair come from two
     * runs (a rounds.csv that could not be rewritten beside a new summary). */
    const int final_same = !last->evaluated ||
                           (near9(last->test_acc, res->final_test_acc) &&
                            near9(last->test_loss, res->final_test_loss));
    if (*n_rec != res->rounds || last->cum_bytes_down != res->bytes_down ||
        last->cum_bytes_up != res->bytes_up || res->updates_accepted != acc ||
        res->updates_failed != failed || res->updates_late != late || !final_same) {
        free(*rec);
        *rec = NULL;
        *n_rec = 0;
        return fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT,
                       "%s: rounds.csv and summary.json disagree (rounds, bytes, updates or the "
                       "final test accuracy and loss)", dir);
    }
    /* The target's figures are rounds.csv's first evaluated round at or above it (take_eval):
     * the experiment's table is made of them, so a summary whose "target" says otherwise (edited,
     * or paired with another run's rounds.csv) is not read back. */
    const flsim_round_record *hit = NULL;
    for (size_t i = 0; want && want->target_acc > 0 && !hit && i < *n_rec; i++)
        if ((*rec)[i].evaluated && (*rec)[i].test_acc >= want->target_acc)
            hit = &(*rec)[i];
    if (want && want->target_acc > 0 &&
        (!!res->target_reached != !!hit ||
         (hit && (res->rounds_to_target != hit->round || !near9(res->vtime_to_target, hit->vtime_s) ||
                  res->bytes_down_to_target != hit->cum_bytes_down ||
                  res->bytes_up_to_target != hit->cum_bytes_up)))) {
        const uint32_t at = hit ? hit->round : 0; /* hit points into *rec */
        free(*rec);
        *rec = NULL;
        *n_rec = 0;
        return fl_errf(err, errlen, FL_ERR_RESULTS_FORMAT,
                       "%s: summary.json's target (%s) is not what rounds.csv shows (%s at round "
                       "%u)", dir, res->target_reached ? "reached" : "not reached",
                       at ? "reached" : "not reached", at);
    }
    return FL_OK;
}
