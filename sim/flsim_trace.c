/* flsim_trace.c: the device / availability trace CSV (format in flsim.h and sim/README.md). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_mem.h"
#include "flsim.h"
#include "flsim_internal.h"

#define TRACE_HEADER "client,flops,down_bps,up_bps,availability"

typedef struct entry {
    uint32_t id;
    size_t line;
    flsim_trace_row row;
} entry;

/* "line N: " and msg into err, a control byte of msg as \xNN: the file's bytes are quoted in
 * it, and a CR of a file whose lines end in CR alone, or an ESC, would garble the terminal that
 * shows the message. */
static void say_line(char *err, size_t errlen, size_t line, const char *msg)
{
    char shown[2048];
    size_t o = 0;
    for (const char *c = msg; *c && o + 5 < sizeof shown; c++) {
        const unsigned char ch = (unsigned char)*c;
        if (ch < 0x20 || ch == 0x7f)
            o += (size_t)snprintf(shown + o, sizeof shown - o, "\\x%02x", ch);
        else
            shown[o++] = (char)ch;
    }
    shown[o] = '\0';
    snprintf(err, errlen, "line %zu: %s", line, shown);
}

static fl_status bad(char *err, size_t errlen, size_t line, const char *fmt, const char *what)
{
    if (err && errlen) {
        char msg[512];
        snprintf(msg, sizeof msg, fmt, what);
        say_line(err, errlen, line, msg);
    }
    return FL_ERR_TRACE_FORMAT;
}

/* A strict float field: the whole field, finite. 1 on success; 0 if it is no number; -1 if it is
 * one too small for a double (strtod's ERANGE on underflow: 5e-324, 1e-400), -2 if too large
 * (1e999). */
static int field_double(const char *s, int keep_neg_zero, double *out)
{
    /* decimal only, as flsim_parse_number: no leading space, no hexadecimal float */
    const char *d = s + (*s == '+' || *s == '-');
    if (!((*d >= '0' && *d <= '9') || *d == '.') || strpbrk(s, "xX"))
        return 0;
    errno = 0;
    char *end = NULL;
    const double v = strtod(s, &end);
    if (end == s || *end)
        return 0;
    if (errno == ERANGE)
        return fabs(v) < 1.0 ? -1 : -2;
    if (!isfinite(v))
        return 0;
    *out = v == 0.0 && !keep_neg_zero ? 0.0 : v; /* "-0" is 0: the rows' SHA-256 is of their
                                                  * values, not their spelling (an availability
                                                  * of -0 once hashed apart from 0) */
    return 1;
}

static int field_id(const char *s, uint32_t *out)
{
    if (!*s || strlen(s) > 10)
        return 0;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v >= FLSIM_MAX_CLIENTS)
        return 0;
    *out = (uint32_t)v;
    return 1;
}

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

/* flsim_trace_parse; keep_neg_zero: a "-0" kept as a negative zero, as before 2026-12-07. */
static fl_status trace_parse(flsim_trace **out, const char *text, size_t len, int keep_neg_zero,
                             char *err, size_t errlen)
{
    if (!out || (!text && len))
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    entry *ents = NULL;
    size_t n = 0, cap = 0;
    size_t line = 0, pos = 0;
    int have_header = 0;
    fl_status st = FL_OK;
    char buf[FLSIM_TRACE_MAX_LINE + 2];
    while (pos < len && st == FL_OK) {
        line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *s = text + pos;
        pos += l + (nl ? 1 : 0);
        if (l && s[l - 1] == '\r')
            l--;
        if (l > FLSIM_TRACE_MAX_LINE) {
            st = bad(err, errlen, line, "longer than %s bytes", "1024");
            break;
        }
        if (memchr(s, '\0', l)) {
            st = bad(err, errlen, line, "%s", "contains a NUL byte");
            break;
        }
        memcpy(buf, s, l);
        buf[l] = '\0';
        if (!have_header) {
            /* What a spreadsheet's "CSV UTF-8" export puts first: the header then looks right. */
            if (memcmp(buf, "\xEF\xBB\xBF", 3) == 0 && strcmp(buf + 3, TRACE_HEADER) == 0) {
                st = bad(err, errlen, line, "the header starts with a UTF-8 byte order mark (EF BB "
                         "BF): save the file without it, as '%s'", TRACE_HEADER);
                break;
            }
            if (strcmp(buf, TRACE_HEADER) != 0) {
                /* The first column that differs, quoted as found: a reordered, renamed or
                 * space-padded header is seen at once, not compared with the wanted one by eye. */
                static const char *const want[5] = {"client", "flops", "down_bps", "up_bps",
                                                    "availability"};
                char why[160];
                const char *p = buf;
                for (int col = 0;; col++) {
                    const size_t fl = strcspn(p, ",");
                    const int cut = fl > 40 ? 40 : (int)fl;
                    if (col == 5) {
                        snprintf(why, sizeof why, "its column 6 ('%.*s') is one too many", cut, p);
                        break;
                    }
                    if (fl != strlen(want[col]) || strncmp(p, want[col], fl) != 0) {
                        snprintf(why, sizeof why, "its column %d is '%.*s%s', not '%s'%s", col + 1,
                                 cut, p, (int)fl > cut ? "..." : "", want[col],
                                 col == 0 && *p >= '0' && *p <= '9'
                                     ? " (the header line comes first, before the rows)" : "");
                        break;
                    }
                    /* p walks the NUL-terminated line:
                     * NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Branch) */
                    if (!p[fl]) {
                        snprintf(why, sizeof why, "it ends after column %d, %s", col + 1, want[col]);
                        break;
                    }
                    p += fl + 1;
                }
                char msg[400];
                snprintf(msg, sizeof msg, "the header must be exactly '%s': %s%s", TRACE_HEADER, why,
                         strchr(buf, '\r') ? " (the file's lines end in a CR alone: save it with "
                                              "LF or CRLF line ends)" : "");
                st = bad(err, errlen, line, "%s", msg);
                break;
            }
            have_header = 1;
            continue;
        }
        const char *lead = buf + strspn(buf, " \t");
        if (*lead == '\0' || *lead == '#') /* blank (or only spaces), or a comment */
            continue;
        char *f[6];
        int nf = 0;
        char *p = buf;
        while (nf < 6) {
            f[nf++] = p;
            char *c = strchr(p, ',');
            if (!c)
                break;
            *c = '\0';
            p = c + 1;
        }
        if (nf != 5) {
            st = bad(err, errlen, line, "%s", "want 5 comma-separated fields: client,flops,down_bps,up_bps,availability");
            break;
        }
        entry e = {0};
        e.line = line;
        if (!field_id(f[0], &e.id)) {
            /* A trace of a larger fleet than --clients takes fails here, at its row 1000001,
             * although a smaller population reads the first rows only: say why. */
            const int digits = f[0][0] && strspn(f[0], "0123456789") == strlen(f[0]);
            char m[200];
            snprintf(m, sizeof m, "client '%.40s' is not an integer in [0, 1000000)%s", f[0],
                     digits ? ": a trace holds at most 1000000 clients, as many as --clients "
                              "takes (keep its first 1000000 rows: ids 0 .. 999999)"
                            : "");
            st = bad(err, errlen, line, "%s", m);
            break;
        }
        static const char *names[] = {"flops", "down_bps", "up_bps", "availability"};
        static const char *units[] = {"FLOP/s", "bit/s", "bit/s"};
        double v[4];
        for (int i = 0; i < 4 && st == FL_OK; i++) {
            /* The field as given: ' 1e9' and '1 ' look like numbers until quoted. */
            char what[80];
            snprintf(what, sizeof what, "%s '%.40s'", names[i], f[i + 1]);
            const int got = field_double(f[i + 1], keep_neg_zero, &v[i]);
            if (got == 0)
                st = bad(err, errlen, line, "%s is not a finite number (no spaces, no units)", what);
            else if (got == -2)
                st = bad(err, errlen, line, "%s is out of range (beyond 1.8e308)", what);
            else if (got == -1 && i == 3)
                st = bad(err, errlen, line, "%s is too small for a double (below 2.2e-308): write "
                         "0 for never online", what);
            else if (i < 3 && (got == -1 || (v[i] > 0 && v[i] < FLSIM_RATE_MIN))) {
                /* > 0, but a round trip at this rate could overflow the virtual clock: refused
                 * here, with its line, not at the round whose time stops being finite */
                char msg[200];
                snprintf(msg, sizeof msg, "%s is below 1 %s, the least rate fl_sim takes (a "
                         "smaller one can overflow the virtual clock)", what, units[i]);
                st = bad(err, errlen, line, "%s", msg);
            }
            else if (i < 3 && !(v[i] > 0)) {
                char msg[200];
                snprintf(msg, sizeof msg, "%s must be > 0 (in %s)", what, units[i]);
                st = bad(err, errlen, line, "%s", msg);
            }
            else if (i == 3 && !(v[i] >= 0 && v[i] <= 1))
                st = bad(err, errlen, line, "%s must lie in [0, 1] (the chance, each round, that "
                         "the client is online)", what);
        }
        if (st != FL_OK)
            break;
        e.row = (flsim_trace_row){v[0], v[1], v[2], v[3]};
        if (n == FLSIM_MAX_CLIENTS) {
            st = bad(err, errlen, line, "more than %s rows", "1000000");
            break;
        }
        if ((st = fl_grow(&ents, &cap, n + 1, sizeof *ents, 64)) != FL_OK)
            break;
        ents[n++] = e;
    }
    if (st == FL_OK && !have_header)
        st = bad(err, errlen, line ? line : 1, "%s", "empty trace: the header line is missing");
    if (st == FL_OK && n == 0)
        st = bad(err, errlen, line, "%s", "no client rows");
    flsim_trace *t = NULL;
    if (st == FL_OK) {
        qsort(ents, n, sizeof *ents, cmp_entry);
        /* A repeated id first: it also leaves a gap, and the repeat is the mistake to name. */
        for (size_t i = 1; i < n && st == FL_OK; i++) {
            if (ents[i].id == ents[i - 1].id) {
                if (err && errlen)
                    snprintf(err, errlen, "line %zu: client %u already given on line %zu",
                             ents[i].line, ents[i].id, ents[i - 1].line);
                st = FL_ERR_TRACE_FORMAT;
            }
        }
        /* No repeats, so a gap means an id at or above n: the largest, whose row is named by
         * its line, as every other bad row is (ids 1 .. n, counted from 1, is the usual case). */
        for (size_t i = 0; i < n && st == FL_OK; i++) {
            if (ents[i].id != (uint32_t)i) {
                if (err && errlen)
                    snprintf(err, errlen, "line %zu: client %u is beyond the %zu rows (ids must "
                             "be 0 .. %zu, each once): client %zu is missing",
                             ents[n - 1].line, ents[n - 1].id, n, n - 1, i);
                st = FL_ERR_TRACE_FORMAT;
            }
        }
    }
    if (st == FL_OK) {
        /* Every availability 0: no round could ever start (found at load, not after the run's
         * 10,000 idle steps). */
        size_t on = 0;
        for (size_t i = 0; i < n; i++)
            on += ents[i].row.availability > 0;
        if (!on) {
            if (err && errlen)
                snprintf(err, errlen, "every client's availability is 0: no client could ever "
                         "take part");
            st = FL_ERR_TRACE_FORMAT;
        }
    }
    if (st == FL_OK) {
        t = calloc(1, sizeof *t);
        if (t)
            t->rows = malloc(n * sizeof *t->rows);
        if (!t || !t->rows) {
            free(t);
            t = NULL;
            st = FL_ERR_NOMEM;
        } else {
            t->n = n;
            for (size_t i = 0; i < n; i++)
                t->rows[i] = ents[i].row;
        }
    }
    free(ents);
    if (st == FL_OK)
        *out = t;
    return st;
}

fl_status flsim_trace_parse(flsim_trace **out, const char *text, size_t len, char *err,
                            size_t errlen)
{
    return trace_parse(out, text, len, 0, err, errlen);
}

fl_status flsim_trace_sha256_neg_zero_kept(uint8_t out[FL_SHA256_LEN], const char *path)
{
    char *buf = NULL;
    size_t n = 0;
    fl_status st = flsim_read_file(path, (size_t)1 << 30, &buf, &n);
    flsim_trace *t = NULL;
    if (st == FL_OK)
        st = trace_parse(&t, buf, n, 1, NULL, 0);
    free(buf);
    if (st == FL_OK)
        st = flsim_trace_sha256(out, t);
    flsim_trace_free(t);
    return st;
}

fl_status flsim_trace_load(flsim_trace **out, const char *path, char *err, size_t errlen)
{
    if (!out || !path)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    char *buf = NULL;
    size_t n = 0;
    const fl_status rs = flsim_read_file(path, (size_t)1 << 30, &buf, &n);
    if (rs != FL_OK) {
        const int e = errno; /* the reason of an FL_ERR_IO: "Is a directory", "Permission denied" */
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path,
                     rs == FL_ERR_NOT_FOUND ? "no such file"
                     : rs == FL_ERR_RESULTS_FORMAT ? "larger than 1 GiB"
                     : rs == FL_ERR_IO && e ? strerror(e) : fl_strerror(rs));
        return rs == FL_ERR_NOMEM ? rs : FL_ERR_IO;
    }
    char inner[384];
    const fl_status st = flsim_trace_parse(out, buf, n, inner, sizeof inner);
    free(buf);
    if (st != FL_OK && err && errlen)
        snprintf(err, errlen, "%s: %s", path, inner);
    return st;
}

fl_status flsim_trace_sha256(uint8_t out[FL_SHA256_LEN], const flsim_trace *t)
{
    if (!out || !t || (t->n && !t->rows))
        return FL_ERR_INVALID_ARG;
    return fl_sha256_digest(out, t->rows, t->n * sizeof *t->rows);
}

void flsim_trace_free(flsim_trace *t)
{
    if (!t)
        return;
    free(t->rows);
    free(t);
}
