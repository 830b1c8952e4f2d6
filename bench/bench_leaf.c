/* bench_leaf: how long fedrop takes to load a LEAF FEMNIST or Shakespeare JSON file, beside the
 * same file parsed with a general JSON library (jansson) and beside reading its bytes, in the same
 * run.
 *
 *   bench_leaf [--kind femnist|shakespeare] [--file FILE | --samples N] [--reps R]
 *
 * The file: a real LEAF FEMNIST file (`--file data/femnist/data/train/all_data_0.json`), or by
 * default one written to $TMPDIR from Fashion-MNIST's training set (found as fl_sim finds it:
 * $FEDROP_DATA_DIR, else /usr/share/datasets/fashion-mnist): N images (20,000: about 190 MB of JSON) inverted as
 * FEMNIST's are (white 1.0 background), 200 to a user, each pixel p written as LEAF writes them
 * (Python's repr of a float: the shortest decimal that reads back to (255 - p) / 255, so
 * "0.9882352941176471" and "0.011764705882352941", 16 and 17 digits, and "1.0"), removed at
 * the end. Fashion-MNIST's garments hold more ink than FEMNIST's characters, so more of its
 * pixels are long decimals rather than "1.0": a harder file for any parser.
 * --kind shakespeare: a real LEAF Shakespeare file, or by default one written from the English
 * prose of Debian's license texts (/usr/share/common-licenses, in every Debian system) as LEAF
 * writes Shakespeare's lines (its whitespace runs made one space; each sample 80 characters of it
 * and the next one as its label, a window sliding by one character, 25,000 to a user; N samples,
 * 1,000,000 by default: about 90 MB), JSON-escaped as Python's json.dump does ('"' as \", any
 * character beyond ASCII as a \u escape). Its double quotes make some strings take the reader's
 * escape path. Ours gives tokens; the peer decodes jansson's strings to code points and maps them
 * with the same alphabet; the SHA-256 compared is of each sample's 80 tokens and label.
 *
 * Ours: flm_leaf_load (what fl_sim's --dataset femnist:PATH goes through): a streaming
 * tokenizer, every number checked and converted to float32 as it arrives, into arrays of floats.
 * Peer: jansson's json_load_file of the same file into its tree (json_t objects, as a program using
 * a JSON library would read it), then its x lists walked into a float array of the same size: the
 * same floats (checked, bit for bit) from a widely used C parser. Floor: fread of the file into a
 * 64 KB buffer, nothing parsed. The three alternate R times (ours, peer, floor, ...) after one
 * untimed load of each, the file in the page cache for all. Each load runs in a fresh child
 * process, as fl_sim makes its one load (a process that loaded before reuses what its malloc
 * kept, and glibc's raised mmap threshold then puts the arrays on its heap), and its floats'
 * SHA-256 is compared with the peer's. Figures: medians of wall time (least and greatest beside),
 * and the minor page faults of ours.
 * LAST line: load_s=<median> jansson_s=<median> ratio=<load / jansson> read_s=<median>
 *            read_ratio=<load / read> minflt=<median faults a load>
 */
#include <errno.h>
#include <math.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_exit.h"
#include "bench_stat.h"
#include "flm_data.h"
#include "fl_sha256.h"
#include "fl_time.h"

static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* Python's repr of v in [0, 1]: the shortest %.*g that reads back to v, with ".0" on an integer. */
static void py_repr(char *out, size_t cap, double v)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(out, cap, "%.*g", p, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (!strchr(out, '.') && !strchr(out, 'e'))
        strncat(out, ".0", cap - strlen(out) - 1);
}

/* Closes a file written whole; 0 or -1 (said). */
static int close_written(FILE *f, const char *path)
{
    if (fclose(f) != 0) {
        fprintf(stderr, "bench_leaf: writing %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Writes the FEMNIST-like file from Fashion-MNIST's first n training images, found as fl_sim
 * finds them (flm_dataset_load_named); 0 or -1 (said). */
static int write_file(const char *path, size_t n)
{
    flm_dataset *fm = NULL;
    char err[512];
    if (flm_dataset_load_named(&fm, "fashion-mnist", "train", NULL, err, sizeof err) != FL_OK) {
        fprintf(stderr, "bench_leaf: %s\n", err);
        return -1;
    }
    if (fm->N < n || fm->sample_len != 784) {
        fprintf(stderr, "bench_leaf: Fashion-MNIST holds %zu images of %zu pixels, not %zu of 784\n",
                fm->N, fm->sample_len, n);
        flm_dataset_free(fm);
        return -1;
    }
    char repr[256][24];
    for (int k = 0; k < 256; k++)
        py_repr(repr[k], sizeof repr[k], (255 - k) / 255.0);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_leaf: %s: %s\n", path, strerror(errno));
        flm_dataset_free(fm);
        return -1;
    }
    const size_t per = 200, users = (n + per - 1) / per;
    fputs("{\"users\": [", f);
    for (size_t u = 0; u < users; u++)
        fprintf(f, "%s\"f%04zu_%02zu\"", u ? ", " : "", u, u % 97);
    fputs("], \"num_samples\": [", f);
    for (size_t u = 0; u < users; u++)
        fprintf(f, "%s%zu", u ? ", " : "", u + 1 < users ? per : n - u * per);
    fputs("], \"user_data\": {", f);
    for (size_t u = 0; u < users; u++) {
        const size_t a = u * per, b = a + per < n ? a + per : n;
        fprintf(f, "%s\"f%04zu_%02zu\": {\"x\": [", u ? ", " : "", u, u % 97);
        for (size_t i = a; i < b; i++) {
            fputs(i > a ? ", [" : "[", f);
            for (size_t k = 0; k < 784; k++) {
                if (k)
                    fputs(", ", f);
                /* the loader's floats are p / 255 exactly: p back, as a byte */
                fputs(repr[lrintf(fm->x[i * 784 + k] * 255.0f) & 255], f);
            }
            fputc(']', f);
        }
        fputs("], \"y\": [", f);
        for (size_t i = a; i < b; i++)
            fprintf(f, "%s%d", i > a ? ", " : "", fm->y[i]);
        fputs("]}", f);
    }
    fputs("}}", f);
    flm_dataset_free(fm);
    return close_written(f, path);
}

/* jansson's tree of the file, with the samples its users' x lists hold in *n and a buffer of
 * row_bytes for each in *rows (malloc'd); NULL (said, or out of memory). */
static json_t *jansson_open(const char *path, size_t row_bytes, size_t *n, void **rows)
{
    json_error_t e;
    json_t *doc = json_load_file(path, 0, &e);
    if (!doc) {
        fprintf(stderr, "bench_leaf: jansson: %s:%d: %s\n", path, e.line, e.text);
        return NULL;
    }
    const char *key;
    json_t *v;
    *n = 0;
    json_object_foreach(json_object_get(doc, "user_data"), key, v)
        *n += json_array_size(json_object_get(v, "x"));
    *rows = malloc((*n ? *n : 1) * row_bytes);
    if (!*rows) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* The peer: jansson's tree, then every user's x walked into x[0..n*784). The samples' count, or
 * -1 (said). */
static long long jansson_load(const char *path, float **xs)
{
    size_t n;
    void *rows;
    json_t *doc = jansson_open(path, 784 * sizeof(float), &n, &rows);
    if (!doc)
        return -1;
    float *x = rows;
    json_t *ud = json_object_get(doc, "user_data");
    const char *key;
    json_t *v;
    size_t i = 0;
    json_object_foreach(ud, key, v)
    {
        json_t *list = json_object_get(v, "x");
        for (size_t s = 0; s < json_array_size(list); s++, i++) {
            json_t *row = json_array_get(list, s);
            if (json_array_size(row) != 784) {
                fprintf(stderr, "bench_leaf: jansson: a sample of %zu values\n",
                        json_array_size(row));
                json_decref(doc);
                free(x);
                return -1;
            }
            for (size_t k = 0; k < 784; k++)
                x[i * 784 + k] = (float)json_number_value(json_array_get(row, k));
        }
    }
    json_decref(doc);
    *xs = x;
    return (long long)n;
}

/* The license texts' prose, whitespace runs made one space, in *text (malloc'd); its length, or
 * -1 (said). */
static long long license_prose(char **text)
{
    static const char *const names[] = {"Apache-2.0", "Artistic", "BSD", "CC0-1.0", "GFDL-1.3",
                                        "GPL-2", "GPL-3", "LGPL-2", "LGPL-2.1", "LGPL-3",
                                        "MPL-1.1", "MPL-2.0"};
    size_t cap = 1 << 20, n = 0;
    char *t = malloc(cap);
    if (!t)
        return -1;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[128];
        snprintf(path, sizeof path, "/usr/share/common-licenses/%s", names[k]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue; /* a file this system lacks: the others do */
        int c;
        while ((c = fgetc(f)) != EOF) {
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
                if (n == 0 || t[n - 1] == ' ')
                    continue;
                c = ' ';
            }
            if (n + 1 >= cap) {
                char *nt = realloc(t, cap *= 2);
                if (!nt) {
                    free(t);
                    fclose(f);
                    return -1;
                }
                t = nt;
            }
            t[n++] = (char)c;
        }
        fclose(f);
    }
    if (n < 1000) {
        fprintf(stderr, "bench_leaf: /usr/share/common-licenses holds too little text\n");
        free(t);
        return -1;
    }
    *text = t;
    return (long long)n;
}

/* One character of the prose as json.dump writes it (ensure_ascii: a byte beyond ASCII, which
 * the license texts hardly hold, as its Latin-1 \u escape). */
static void put_json_char(FILE *f, unsigned char c)
{
    if (c == '"' || c == '\\')
        fprintf(f, "\\%c", c);
    else if (c < 0x20 || c >= 0x80)
        fprintf(f, "\\u%04x", c);
    else
        fputc(c, f);
}

/* Writes the Shakespeare-like file of n samples; 0 or -1 (said). */
static int write_shakespeare(const char *path, size_t n)
{
    char *t = NULL;
    const long long len = license_prose(&t);
    if (len < 0)
        return -1;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_leaf: %s: %s\n", path, strerror(errno));
        free(t);
        return -1;
    }
    const size_t per = 25000, users = (n + per - 1) / per, span = (size_t)len - 81;
    fputs("{\"users\": [", f);
    for (size_t u = 0; u < users; u++)
        fprintf(f, "%s\"THE_LICENSES_READER_%zu\"", u ? ", " : "", u);
    fputs("], \"num_samples\": [", f);
    for (size_t u = 0; u < users; u++)
        fprintf(f, "%s%zu", u ? ", " : "", u + 1 < users ? per : n - u * per);
    fputs("], \"user_data\": {", f);
    for (size_t u = 0; u < users; u++) {
        const size_t a = u * per, b = a + per < n ? a + per : n;
        fprintf(f, "%s\"THE_LICENSES_READER_%zu\": {\"x\": [", u ? ", " : "", u);
        for (size_t i = a; i < b; i++) {
            const size_t o = (i * 7) % span;
            fputs(i > a ? ", \"" : "\"", f);
            for (size_t k = 0; k < 80; k++)
                put_json_char(f, (unsigned char)t[o + k]);
            fputc('"', f);
        }
        fputs("], \"y\": [", f);
        for (size_t i = a; i < b; i++) {
            fputs(i > a ? ", \"" : "\"", f);
            put_json_char(f, (unsigned char)t[(i * 7) % span + 80]);
            fputc('"', f);
        }
        fputs("]}", f);
    }
    fputs("}}", f);
    free(t);
    return close_written(f, path);
}

/* A jansson string's UTF-8 as tokens into out[0..want): 0, or -1 when it holds another count of
 * code points. */
static int peer_tokens(const char *s, int32_t *out, size_t want, const int32_t ascii[128])
{
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp = *p++;
        if (cp >= 0x80) { /* jansson hands out valid UTF-8 only */
            const int extra = cp >= 0xf0 ? 3 : cp >= 0xe0 ? 2 : 1;
            cp &= 0x3fu >> extra;
            for (int e = 0; e < extra; e++)
                cp = cp << 6 | (*p++ & 0x3fu);
        }
        if (k == want)
            return -1;
        out[k++] = cp < 128 ? ascii[cp] : flm_leaf_char_token(cp);
    }
    return k == want ? 0 : -1;
}

/* The peer for Shakespeare: jansson's tree, then each sample's x and y as tokens into
 * tk[0..n*81). The samples' count, or -1 (said). */
static long long jansson_load_tokens(const char *path, int32_t **tk)
{
    size_t n;
    void *rows;
    json_t *doc = jansson_open(path, 81 * sizeof(int32_t), &n, &rows);
    if (!doc)
        return -1;
    int32_t *out = rows;
    json_t *ud = json_object_get(doc, "user_data");
    const char *key;
    json_t *v;
    int32_t ascii[128];
    for (uint32_t c = 0; c < 128; c++)
        ascii[c] = flm_leaf_char_token(c);
    size_t i = 0;
    json_object_foreach(ud, key, v)
    {
        json_t *xs = json_object_get(v, "x"), *ys = json_object_get(v, "y");
        for (size_t s = 0; s < json_array_size(xs); s++, i++)
            if (peer_tokens(json_string_value(json_array_get(xs, s)), out + i * 81, 80,
                            ascii) != 0 ||
                !json_string_value(json_array_get(ys, s)) ||
                peer_tokens(json_string_value(json_array_get(ys, s)), out + i * 81 + 80, 1,
                            ascii) != 0) {
                fprintf(stderr, "bench_leaf: jansson: a sample not of 80 characters and one\n");
                json_decref(doc);
                free(out);
                return -1;
            }
    }
    json_decref(doc);
    *tk = out;
    return (long long)n;
}

static long long read_file(const char *path, unsigned char *buf)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    long long total = 0;
    size_t r;
    while ((r = fread(buf, 1, 65536, f)) > 0)
        total += (long long)r;
    const int bad = ferror(f);
    fclose(f);
    return bad ? -1 : total;
}

/* One load in a fresh child process, as fl_sim makes its one load in a fresh process (a process
 * that loaded before would reuse the pages its malloc kept, and glibc's raised mmap threshold
 * would put the next arrays on its heap). which: 0 ours, 1 jansson, 2 read. 0 with *sec, *flt
 * (minor faults), *n (samples) and the floats' SHA-256 in dig, or -1 (the child said why). */
typedef struct child_out {
    double sec;
    long flt;
    long long n, bytes;
    uint8_t dig[FL_SHA256_LEN];
    int ok;
} child_out;

static flm_leaf_kind kind = FLM_LEAF_FEMNIST;

/* ds's samples laid out as the Shakespeare peer lays them (80 tokens and the label each), hashed;
 * 0 or -1. Outside the timed load. */
static int digest_tokens(const flm_dataset *ds, uint8_t dig[FL_SHA256_LEN])
{
    int32_t *tk = malloc((ds->N ? ds->N : 1) * 81 * sizeof *tk);
    if (!tk)
        return -1;
    for (size_t i = 0; i < ds->N; i++) {
        memcpy(tk + i * 81, ds->tokens + i * 80, 80 * sizeof *tk);
        tk[i * 81 + 80] = ds->y[i];
    }
    const int rc = fl_sha256_digest(dig, tk, ds->N * 81 * sizeof *tk) == FL_OK ? 0 : -1;
    free(tk);
    return rc;
}

static void child(int which, const char *file, int fd)
{
    child_out o;
    memset(&o, 0, sizeof o);
    char err[512];
    const char *paths[1] = {file};
    const long f0 = minflt();
    const double t0 = fl_time_mono_s();
    if (which == 0) {
        flm_dataset *ds = NULL;
        const fl_status st = flm_leaf_load(&ds, kind, paths, 1, err, sizeof err);
        o.sec = fl_time_mono_s() - t0;
        o.flt = minflt() - f0;
        if (st != FL_OK)
            fprintf(stderr, "bench_leaf: %s\n", err);
        else {
            o.n = (long long)ds->N;
            o.ok = kind == FLM_LEAF_SHAKESPEARE
                       ? digest_tokens(ds, o.dig) == 0
                       : fl_sha256_digest(o.dig, ds->x, ds->N * 784 * sizeof(float)) == FL_OK;
        }
        flm_dataset_free(ds);
    } else if (which == 1 && kind == FLM_LEAF_SHAKESPEARE) {
        int32_t *tk = NULL;
        o.n = jansson_load_tokens(file, &tk);
        o.sec = fl_time_mono_s() - t0;
        o.flt = minflt() - f0;
        o.ok = o.n >= 0 &&
               fl_sha256_digest(o.dig, tk, (size_t)o.n * 81 * sizeof *tk) == FL_OK;
        free(tk);
    } else if (which == 1) {
        float *x = NULL;
        o.n = jansson_load(file, &x);
        o.sec = fl_time_mono_s() - t0;
        o.flt = minflt() - f0;
        o.ok = o.n >= 0 && fl_sha256_digest(o.dig, x, (size_t)o.n * 784 * sizeof(float)) == FL_OK;
        free(x);
    } else {
        unsigned char *buf = malloc(65536);
        o.bytes = buf ? read_file(file, buf) : -1;
        o.sec = fl_time_mono_s() - t0;
        o.ok = o.bytes >= 0;
        if (!o.ok)
            fprintf(stderr, "bench_leaf: cannot read %s\n", file);
        free(buf);
    }
    if (write(fd, &o, sizeof o) != (ssize_t)sizeof o)
        _exit(1);
    _exit(o.ok ? 0 : 1);
}

static int run_child(int which, const char *file, child_out *o)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        bench_in_child(parent);
        close(fds[0]);
        child(which, file, fds[1]);
    }
    close(fds[1]);
    const ssize_t got = read(fds[0], o, sizeof *o);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return got == (ssize_t)sizeof *o && WIFEXITED(status) && WEXITSTATUS(status) == 0 && o->ok
               ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    long long samples = 0;
    int reps = 5;
    static const char usage[] =
        "usage: bench_leaf [--kind femnist|shakespeare (femnist)]\n"
        "                  [--file FILE | --samples N] [--reps R (5)]\n"
        "Loads a LEAF FEMNIST or Shakespeare JSON file with flm_leaf_load, alternated\n"
        "with jansson's json_load_file of the same file walked into floats or tokens\n"
        "(the peer) and a bare read of it (the floor), each load in a fresh child\n"
        "process. Without --file, writes a file to $TMPDIR (or /tmp) and removes it at\n"
        "the end (also on Ctrl-C, SIGTERM, SIGHUP): FEMNIST-like, of N Fashion-MNIST images (20000); Shakespeare-like, of\n"
        "N 80-character samples of the prose of /usr/share/common-licenses (1000000).\n"
        "Last line:\n"
        "load_s=<f> jansson_s=<f> ratio=<f> read_s=<f> read_ratio=<f> minflt=<f>\n";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--kind") == 0 && v) {
            if (strcmp(v, "femnist") != 0 && strcmp(v, "shakespeare") != 0) {
                fprintf(stderr, "bench_leaf: --kind takes femnist or shakespeare, not '%s'\n", v);
                return 2;
            }
            kind = strcmp(v, "femnist") == 0 ? FLM_LEAF_FEMNIST : FLM_LEAF_SHAKESPEARE;
        } else if (strcmp(a, "--file") == 0 && v) {
            file = v;
        } else if (strcmp(a, "--samples") == 0 && v) {
            samples = strtoll(v, &end, 10); /* 0 or junk: refused below, not the default */
            if (*end || end == v || samples < 1)
                samples = -1;
        } else if (strcmp(a, "--reps") == 0 && v) {
            const long r = strtol(v, &end, 10);
            reps = *end || end == v || r < 1 || r > 1000 ? 0 : (int)r;
        } else {
            fputs(usage, stderr);
            return 2;
        }
        i++;
    }
    const long long most = kind == FLM_LEAF_FEMNIST ? 60000 : 20000000;
    if (!samples)
        samples = kind == FLM_LEAF_FEMNIST ? 20000 : 1000000;
    if (reps < 1 || reps > 1000 || samples < 1 || samples > most) {
        fprintf(stderr, "bench_leaf: --reps must be 1 .. 1000 and --samples 1 .. %lld\n", most);
        return 2;
    }
    char tmp[4096] = "";
    if (!file) {
        const char *td = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/bench_leaf.%ld.json", td && *td ? td : "/tmp",
                 (long)getpid());
        bench_tmp_add(tmp); /* removed however the run ends: Ctrl-C, SIGTERM, SIGHUP too */
        const double t0 = fl_time_mono_s();
        if ((kind == FLM_LEAF_FEMNIST ? write_file(tmp, (size_t)samples)
                                      : write_shakespeare(tmp, (size_t)samples)) != 0) {
            unlink(tmp);
            return 1;
        }
        printf("wrote %s (%lld %s) in %.1f s\n", tmp, samples,
               kind == FLM_LEAF_FEMNIST ? "Fashion-MNIST images as FEMNIST-like LEAF JSON"
                                        : "samples of license prose as Shakespeare-like LEAF JSON",
               fl_time_mono_s() - t0);
        file = tmp;
    }
    int rc = 1;
    double *t_load = calloc((size_t)reps, sizeof *t_load);
    double *t_peer = calloc((size_t)reps, sizeof *t_peer);
    double *t_read = calloc((size_t)reps, sizeof *t_read);
    double *f_load = calloc((size_t)reps, sizeof *f_load);
    if (!t_load || !t_peer || !t_read || !f_load) {
        fprintf(stderr, "bench_leaf: out of memory\n");
        goto out;
    }
    long long n = 0, bytes = 0;
    for (int r = -1; r < reps; r++) { /* r = -1: untimed, warms the page cache */
        child_out a, b, c;
        if (run_child(0, file, &a) != 0 || run_child(1, file, &b) != 0 ||
            run_child(2, file, &c) != 0) {
            fprintf(stderr, "bench_leaf: a load failed\n");
            goto out;
        }
        /* the same floats in the same order (LEAF's user_data in file order; jansson keeps
         * insertion order) */
        if (a.n != b.n || memcmp(a.dig, b.dig, sizeof a.dig) != 0) {
            fprintf(stderr, "bench_leaf: jansson's %s differ from ours (%lld against %lld "
                            "samples)\n", kind == FLM_LEAF_FEMNIST ? "floats" : "tokens", b.n,
                    a.n);
            goto out;
        }
        n = a.n;
        bytes = c.bytes;
        if (r < 0)
            continue;
        t_load[r] = a.sec;
        t_peer[r] = b.sec;
        t_read[r] = c.sec;
        f_load[r] = (double)a.flt;
        printf("rep %d: load %.3f s (%ld minor faults), jansson %.3f s (%ld), read %.3f s\n",
               r + 1, a.sec, a.flt, b.sec, b.flt, c.sec);
    }
    const bench_stat L = bench_stat_of(t_load, reps), P = bench_stat_of(t_peer, reps),
                     R = bench_stat_of(t_read, reps), F = bench_stat_of(f_load, reps);
    printf("%s: %.0f MB of JSON, %lld samples (%.0f MB as %s)\n", file, (double)bytes / 1e6, n,
           (double)n * (kind == FLM_LEAF_FEMNIST ? 784 : 80) * 4 / 1e6,
           kind == FLM_LEAF_FEMNIST ? "floats" : "int32 tokens");
    printf("ours (flm_leaf_load): median %.3f s (%.3f-%.3f), %.0f MB/s, %.0f minor faults a load\n",
           L.med, L.lo, L.hi, (double)bytes / 1e6 / L.med, F.med);
    printf("peer (jansson json_load_file + walk to %s, the same bits): median %.3f s "
           "(%.3f-%.3f), %.0f MB/s\n", kind == FLM_LEAF_FEMNIST ? "floats" : "tokens", P.med,
           P.lo, P.hi, (double)bytes / 1e6 / P.med);
    printf("floor (fread, nothing parsed): median %.3f s (%.3f-%.3f)\n", R.med, R.lo, R.hi);
    printf("load_s=%.4f jansson_s=%.4f ratio=%.3f read_s=%.4f read_ratio=%.2f minflt=%.0f\n",
           L.med, P.med, L.med / P.med, R.med, L.med / R.med, F.med);
    rc = 0;
out:
    bench_tmp_remove(); /* the file written, if any */
    free(t_load);
    free(t_peer);
    free(t_read);
    free(f_load);
    return rc;
}
