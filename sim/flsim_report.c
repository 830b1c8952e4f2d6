/* flsim_report.c: rounds.csv and summary.json of a run. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_fs.h"
#include "flsim.h"
#include "flsim_internal.h"

/* One component: 1 created, 0 already a directory, -1 an error. mkdir's EEXIST alone would
 * accept a file there, and the failure would come later as a puzzling ENOTDIR or EIO under it. */
static int mkdir_one(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0777) == 0)
        return 1;
    const int e = errno;
    struct stat st;
    if (e == EEXIST && stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        if (err && errlen)
            snprintf(err, errlen, "%s exists and is not a directory", dir);
        errno = ENOTDIR;
        return -1;
    }
    char to[512];
    ssize_t tl = -1;
    if (e == EEXIST && lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
        tl = readlink(dir, to, sizeof to - 1);
    if (tl >= 0) { /* "results -> /scratch/results", the target gone: not "File exists" */
        to[tl] = '\0';
        if (err && errlen)
            snprintf(err, errlen, "%s is a symbolic link to %s, which does not exist (or cannot "
                     "be reached): make it, or point the link elsewhere", dir, to);
        errno = ENOENT;
        return -1;
    }
    if (err && errlen)
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(e));
    errno = e;
    return -1;
}

int flsim_mkdirs(const char *path, size_t *made, char *err, size_t errlen)
{
    char buf[1024];
    if (made)
        *made = 0;
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        if (err && errlen)
            snprintf(err, errlen, "cannot create %.64s...: path longer than %zu bytes", path,
                     sizeof buf - 1);
        errno = ENAMETOOLONG;
        return -1;
    }
    /* The length of the first component of the run of created ones that ends the path. One
     * that existed ends a run: "a/new/../old" created a/new, but old (a/old) is not ours. */
    size_t first = 0;
    int r = 0;
    char *p = buf + (buf[0] != '\0');
    for (;; p++) {
        if (*p && (*p != '/' || p[-1] == '/'))
            continue;
        if (!*p && p > buf && p[-1] == '/') /* "a/b/": done at "a/b" */
            break;
        const char was = *p;
        *p = '\0';
        r = mkdir_one(buf, err, errlen);
        *p = was;
        if (r < 0)
            break;
        if (r == 1 && !first)
            first = (size_t)(p - buf);
        else if (r == 0)
            first = 0;
        if (!was)
            break;
    }
    if (r < 0) { /* leave no empty directory behind a failure: those above the one at fault */
        const int e = errno;
        while (p > buf && p[-1] != '/')
            p--;
        *p = '\0';
        flsim_rmdirs_made(buf, first);
        errno = e;
        return -1;
    }
    if (made)
        *made = first;
    return 0;
}

void flsim_rmdirs_made(const char *path, size_t made)
{
    /* Only strlen, memcpy and rmdir: async-signal-safe (flsim_out_unprepare's contract). */
    char buf[1024];
    size_t n = made ? strlen(path) : 0;
    if (!made || n >= sizeof buf)
        return;
    memcpy(buf, path, n + 1);
    while (n > made && buf[n - 1] == '/') /* "a/b/" was made as "a/b" */
        buf[--n] = '\0';
    /* Deepest first; rmdir removes only an empty directory, and one that is not stops the walk
     * (so are the ones above it). */
    while (n >= made) {
        if (rmdir(buf) != 0)
            return;
        while (n > 0 && buf[n - 1] != '/') /* up one component */
            n--;
        while (n > 0 && buf[n - 1] == '/')
            n--;
        buf[n] = '\0';
    }
}

/* %.17g, or null for NaN / infinities (JSON has neither). */
static const char *num(char *buf, size_t cap, double v)
{
    if (!isfinite(v))
        snprintf(buf, cap, "null");
    else
        snprintf(buf, cap, "%.17g", v);
    return buf;
}

size_t flsim_summary_json(const flsim_config *cfg, const flsim_result *r, char *buf, size_t cap)
{
    char hex[2 * FL_SHA256_LEN + 1], th[2 * FL_SHA256_LEN + 3] = "null";
    fl_sha256_hex(hex, r->model_sha256);
    if (r->has_trace_sha) { /* null without a trace */
        char t[2 * FL_SHA256_LEN + 1];
        fl_sha256_hex(t, r->trace_sha256);
        snprintf(th, sizeof th, "\"%s\"", t);
    }
    char conf[8192];
    flsim_config_json(cfg, conf, sizeof conf);
    char a[40], b[40], c[40], d[40], e[40], f[40], g[40];
    char arch[2 * FLSIM_STR], blas[160];
    flsim_json_str(arch, sizeof arch, r->arch);
    flsim_json_str(blas, sizeof blas, r->blas);
    char target[512];
    if (r->target_reached)
        snprintf(target, sizeof target,
                 "{\"accuracy\": %s, \"reached\": true, \"rounds\": %u, \"virtual_time_s\": %s, "
                 "\"bytes_down\": %llu, \"bytes_up\": %llu}",
                 num(a, sizeof a, cfg->target_acc), r->rounds_to_target,
                 num(b, sizeof b, r->vtime_to_target),
                 (unsigned long long)r->bytes_down_to_target,
                 (unsigned long long)r->bytes_up_to_target);
    else
        snprintf(target, sizeof target, "{\"accuracy\": %s, \"reached\": false}",
                 num(a, sizeof a, cfg->target_acc));
    return (size_t)snprintf(buf, cap,
        "{\n  \"rounds\": %u,\n  \"final_test_acc\": %s,\n  \"final_test_loss\": %s,\n"
        "  \"virtual_time_s\": %s,\n  \"bytes_down\": %llu,\n  \"bytes_up\": %llu,\n"
        "  \"wall_s\": %s,\n  \"train_wall_s\": %s,\n  \"train_flops\": %s,\n"
        "  \"model_sha256\": \"%s\",\n  \"trace_sha256\": %s,\n  \"target\": %s,\n  \"arch\": %s,\n  \"n_params\": %zu,\n"
        "  \"empty_clients\": %u,\n  \"blas\": %s,\n  \"fl_sim_version\": \"%s\",\n"
        "  \"mpi_ranks\": %d,\n  \"workers\": %u,\n"
        "  \"fold_helpers\": %u,\n  \"peak_rss_mb\": %s,\n"
        "  \"interrupted\": %s,\n  \"resumed_after\": %u,\n  \"updates_accepted\": %llu,\n"
        "  \"updates_failed\": %llu,\n"
        "  \"updates_late\": %llu,\n  \"config\": %s\n}\n",
        r->rounds, num(c, sizeof c, r->final_test_acc), num(d, sizeof d, r->final_test_loss),
        num(e, sizeof e, r->virtual_time_s), (unsigned long long)r->bytes_down,
        (unsigned long long)r->bytes_up, num(f, sizeof f, r->wall_s),
        num(g, sizeof g, r->train_wall_s), num(b, sizeof b, r->train_flops), hex, th, target, arch,
        r->n_params, r->empty_clients, blas, FEDROP_VERSION, r->mpi_ranks, r->workers, r->fold_helpers,
        num(a, sizeof a, r->peak_rss_mb),
        r->interrupted ? "true" : "false", r->resumed_after, (unsigned long long)r->updates_accepted,
        (unsigned long long)r->updates_failed, (unsigned long long)r->updates_late, conf);
}

/* rounds.csv's header line, and the names of fls_close_reason 0 .. 3 in its closed_by column.
 * Columns are only ever appended (eval_wall_s on 2026-12-02), so that a reader of the columns by
 * their position keeps working; flsim_parse_rounds_csv reads every header ever written. */
const char flsim_rounds_header[] =
    "round,vtime_s,round_vtime_s,wall_s,train_wall_s,bytes_down,bytes_up,cum_bytes_down,"
    "cum_bytes_up,mean_loss,test_acc,test_loss,online,selected,reported,late,failed,closed_by,"
    "train_flops,eval_wall_s";
const char *const flsim_close_names[4] = {"", "quorum", "deadline", "exhausted"};

static void csv_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
}

static void put_row(FILE *f, const flsim_round_record *r)
{
    fprintf(f, "%u,%.9g,%.9g,%.6f,%.6f,%llu,%llu,%llu,%llu,", r->round, r->vtime_s,
            r->round_vtime_s, r->wall_s, r->train_wall_s, (unsigned long long)r->bytes_down,
            (unsigned long long)r->bytes_up, (unsigned long long)r->cum_bytes_down,
            (unsigned long long)r->cum_bytes_up);
    csv_num(f, r->mean_loss);
    fputc(',', f);
    csv_num(f, r->evaluated ? r->test_acc : NAN);
    fputc(',', f);
    csv_num(f, r->evaluated ? r->test_loss : NAN);
    fprintf(f, ",%u,%u,%u,%u,%u,%s,%.6g,", r->online, r->selected, r->reported, r->late,
            r->failed, r->closed_by >= 1 && r->closed_by <= 3 ? flsim_close_names[r->closed_by] : "",
            r->train_flops);
    /* wall time, as wall_s; empty where it is not known (a round read back from a rounds.csv of
     * before the column) */
    if (isfinite(r->eval_wall_s))
        fprintf(f, "%.6f", r->eval_wall_s);
    fputc('\n', f);
}

int flsim_write_rounds_csv(FILE *f, const flsim_round_record *rec, size_t n)
{
    fprintf(f, "%s\n", flsim_rounds_header);
    for (size_t i = 0; i < n; i++)
        put_row(f, &rec[i]);
    return ferror(f) ? -1 : 0;
}

fl_status flsim_rounds_as_saved(flsim_round_record *rec, size_t n)
{
    if (n == 0)
        return FL_OK;
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return FL_ERR_NOMEM;
    int bad = flsim_write_rounds_csv(m, rec, n);
    bad |= fclose(m) != 0;
    flsim_round_record *back = NULL;
    size_t nb = 0;
    fl_status st = bad || !text ? FL_ERR_NOMEM
                                : flsim_parse_rounds_csv(text, len, &back, &nb, NULL, 0);
    free(text);
    if (st == FL_OK && nb != n)
        st = FL_ERR_INTERNAL;
    if (st != FL_OK) {
        free(back);
        return st == FL_ERR_NOMEM ? st : FL_ERR_INTERNAL; /* a run's rows always read back */
    }
    /* the reals (the integers are exact): what the file says, field by field */
    for (size_t i = 0; i < n; i++) {
        flsim_round_record *r = &rec[i];
        const flsim_round_record *b = &back[i];
        r->vtime_s = b->vtime_s;
        r->round_vtime_s = b->round_vtime_s;
        r->wall_s = b->wall_s;
        r->train_wall_s = b->train_wall_s;
        r->mean_loss = b->mean_loss;
        r->test_acc = b->test_acc;
        r->test_loss = b->test_loss;
        r->train_flops = b->train_flops;
        r->eval_wall_s = b->eval_wall_s;
    }
    free(back);
    return FL_OK;
}

/* Creates dir and removes its summary.json (a summary marks a finished run: none may stand
 * beside rounds being written). */
static fl_status begin_dir(const char *dir, char *err, size_t errlen)
{
    char sum[1200];
    snprintf(sum, sizeof sum, "%s/summary.json", dir);
    if (flsim_mkdirs(dir, NULL, err, errlen) != 0)
        return FL_ERR_IO;
    if (remove(sum) != 0 && errno != ENOENT) {
        if (err && errlen)
            snprintf(err, errlen, "cannot remove the earlier run's %s: %s", sum, strerror(errno));
        return FL_ERR_IO;
    }
    return FL_OK;
}

fl_status flsim_out_prepare(const char *dir, int checkpoints, size_t *made, char *err,
                            size_t errlen)
{
    size_t m = 0;
    if (made)
        *made = 0;
    if (flsim_mkdirs(dir, &m, err, errlen) != 0)
        return FL_ERR_IO;
    const int e = fl_dir_writable(dir);
    if (e) {
        flsim_rmdirs_made(dir, m);
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", dir, strerror(e));
        return FL_ERR_IO;
    }
    /* A run's files are written when its first round ends (rounds.csv), at each checkpoint
     * (resume.fls) and at its end (the summary): something other than a file in their place (a
     * directory) would fail there, after the training (a resume.fls at every checkpoint, with
     * nothing saved to resume from at the end), so it is refused now, before any. */
    static const char *const outputs[] = {"rounds.csv", "summary.json", FLSIM_RESUME_FILE};
    const size_t n_out = sizeof outputs / sizeof outputs[0] - !checkpoints;
    for (size_t i = 0; i < n_out; i++) {
        char path[1200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, outputs[i]);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            flsim_rmdirs_made(dir, m); /* a directory it made holds nothing */
            if (err && errlen)
                snprintf(err, errlen, "%s is a directory, where the run writes a file", path);
            return FL_ERR_IO;
        }
    }
    if (made)
        *made = m;
    return FL_OK;
}

fl_status flsim_out_lock(const char *dir, int *fd, char *err, size_t errlen)
{
    *fd = -1;
    const int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0)
        return FL_OK; /* a DIR this process may write but not read, or out of descriptors: the
                       * run goes on without the lock, as where flock is missing */
    if (flock(d, LOCK_EX | LOCK_NB) == 0) {
        *fd = d;
        return FL_OK;
    }
    const int e = errno;
    close(d);
    if (e != EWOULDBLOCK)
        return FL_OK; /* no flock here: go on without */
    if (err && errlen)
        snprintf(err, errlen, "--out %s is in use by another fl_sim run (one run or experiment at "
                 "a time writes a DIR: wait for it to end, or choose another DIR)", dir);
    return FL_ERR_STATE;
}

void flsim_out_unprepare(const char *dir, size_t made)
{
    flsim_rmdirs_made(dir, made);
}

fl_status flsim_rounds_start(const char *dir, FILE **out, char *err, size_t errlen)
{
    *out = NULL;
    if (begin_dir(dir, err, errlen) != FL_OK)
        return FL_ERR_IO;
    char path[1200];
    snprintf(path, sizeof path, "%s/rounds.csv", dir);
    /* Opened without blocking: a FIFO in rounds.csv's place that no process reads held fopen's
     * open for good, the run hanging silently after its first round (until 2026-12-07). It is
     * refused now, as a file that cannot be written, and written whole at the end; once open,
     * the writes block as fopen's would (a reader that is slow). */
    const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
                        0666);
    const int fl = fd < 0 ? -1 : fcntl(fd, F_GETFL);
    FILE *f = fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ? NULL : fdopen(fd, "w");
    if (!f || fprintf(f, "%s\n", flsim_rounds_header) < 0 || fflush(f) != 0) {
        const int e = errno;
        struct stat sb;
        if (err && errlen)
            snprintf(err, errlen, "cannot write %s: %s", path,
                     e == ENXIO && stat(path, &sb) == 0 && S_ISFIFO(sb.st_mode)
                         ? "a FIFO that no process reads"
                         : strerror(e));
        if (f)
            fclose(f);
        else if (fd >= 0)
            close(fd);
        return FL_ERR_IO;
    }
    *out = f;
    return FL_OK;
}

/* The row is made in memory and written with write(2) after all that stdio holds is flushed: a
 * row that does not fit (a full disk, a file size limit) is cut back off the file, so that
 * rounds.csv keeps whole rounds only (a torn last line would read as a bad row), and stdio has
 * none of it left to write at the close. Until 2026-11-30 a full disk left half a row. */
fl_status flsim_rounds_put(FILE *f, const flsim_round_record *r)
{
    if (!f || !r)
        return FL_ERR_INVALID_ARG;
    if (fflush(f) != 0 || ferror(f))
        return FL_ERR_IO;
    char *row = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&row, &len);
    if (!m)
        return FL_ERR_NOMEM;
    put_row(m, r);
    if (fclose(m) != 0 || !row) {
        free(row);
        errno = ENOMEM;
        return FL_ERR_NOMEM;
    }
    const int fd = fileno(f);
    const off_t at = lseek(fd, 0, SEEK_CUR);
    const int e = fl_write_all(fd, row, len) == 0 ? 0 : errno;
    free(row);
    if (!e)
        return FL_OK;
    if (at >= 0 && ftruncate(fd, at) == 0)
        (void)lseek(fd, at, SEEK_SET);
    errno = e; /* what the caller says */
    return FL_ERR_IO;
}

/* Writes text[0..len) to path atomically (fl_atomic: a temporary beside it, fsync, rename, fsync
 * of the directory): a reader never sees half a file, a crash leaves the old one. FL_OK, or
 * FL_ERR_IO with "cannot write PATH: reason" in err (which may be NULL). */
fl_status flsim_write_atomic(const char *path, const void *text, size_t len, char *err,
                             size_t errlen)
{
    fl_atomic w;
    int e = fl_atomic_open(&w, path, 0666); /* as fopen makes a file: the umask decides */
    if (!e)
        e = fl_atomic_write(&w, text, len);
    if (!e)
        e = fl_atomic_commit(&w, path, 0); /* EISDIR: a directory in the file's place */
    fl_atomic_end(&w);
    if (!e)
        return FL_OK;
    if (err && errlen)
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
    return FL_ERR_IO;
}

fl_status flsim_rounds_finish(FILE *f, const char *dir)
{
    if (!f)
        return FL_ERR_INVALID_ARG;
    int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    /* The rows went to the file opened at the start; if DIR/rounds.csv is no longer it (deleted,
     * or DIR removed and made again, while the run went on) they went nowhere a reader looks,
     * and a summary.json written alone beside them would mark a finished run without its
     * rounds. */
    int gone = 0;
    if (!bad && dir) {
        char path[1200];
        snprintf(path, sizeof path, "%s/rounds.csv", dir);
        struct stat a, b;
        gone = fstat(fileno(f), &a) != 0 || stat(path, &b) != 0 || !fl_stat_same_file(&a, &b);
    }
    bad |= fclose(f) != 0;
    return bad ? FL_ERR_IO : gone ? FL_ERR_NOT_FOUND : FL_OK;
}

fl_status flsim_write_summary(const char *dir, const flsim_config *cfg, const flsim_result *res,
                              char *err, size_t errlen)
{
    char sum[1200];
    snprintf(sum, sizeof sum, "%s/summary.json", dir);
    const size_t need = flsim_summary_json(cfg, res, NULL, 0) + 1;
    char *buf = malloc(need);
    if (!buf) {
        if (err && errlen)
            snprintf(err, errlen, "cannot write %s: out of memory", sum);
        return FL_ERR_NOMEM;
    }
    flsim_summary_json(cfg, res, buf, need);
    const fl_status st = flsim_write_atomic(sum, buf, need - 1, err, errlen);
    free(buf);
    return st;
}

fl_status flsim_write_outputs(const char *dir, const flsim_config *cfg, const flsim_result *res,
                              const flsim_round_record *records, size_t n_records, char *err,
                              size_t errlen)
{
    /* summary.json marks a finished run (flsim_load_outputs): it goes first and comes back last,
     * so a crash in between leaves no summary beside another run's rounds. */
    if (begin_dir(dir, err, errlen) != FL_OK)
        return FL_ERR_IO;
    char path[1200], e1[1400] = "", e2[1400] = "";
    snprintf(path, sizeof path, "%s/rounds.csv", dir);
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    int bad = !m;
    if (m) {
        bad = flsim_write_rounds_csv(m, records, n_records);
        bad |= fclose(m) != 0;
    }
    const fl_status rs = bad ? FL_ERR_NOMEM : flsim_write_atomic(path, text, len, e1, sizeof e1);
    if (bad)
        snprintf(e1, sizeof e1, "cannot write %s: out of memory", path);
    free(text);
    /* The summary even when rounds.csv failed: it alone holds the run's results, and a reader
     * cannot mistake it for a finished run's pair (flsim_load_outputs checks that rounds.csv
     * agrees with it). */
    const fl_status ss = flsim_write_summary(dir, cfg, res, e2, sizeof e2);
    if (err && errlen)
        snprintf(err, errlen, "%s%s%s", e1, e1[0] && e2[0] ? "; " : "", e2);
    return rs != FL_OK ? rs : ss;
}
