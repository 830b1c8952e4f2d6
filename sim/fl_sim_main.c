/* fl_sim: the command line of the simulator (see sim/README.md and `fl_sim --help`).
 *
 *   fl_sim [--config FILE] [--NAME VALUE | --NAME=VALUE]...
 *   fl_sim experiment afd [--preset small|full] [--seeds N] [--out DIR] [--NAME VALUE]...
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "fl_fs.h"
#include "fl_log.h"
#include "fl_sig.h"
#include "fl_time.h"
#include "flm_arch.h"
#include "flm_blas.h"
#include "flsim.h"
#include "flsim_fold.h"
#include "flsim_internal.h"

#ifdef FLSIM_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0;
static int g_ranks = 1; /* MPI ranks (1 without a launcher) */

/* Under MPI with several ranks, what is wrong with the settings is held (g_hold) until the ranks
 * have agreed that one failed (flsim_ranks_all_ok; inside a run, flsim_result.err_agreed),
 * then said once: by the lowest rank that
 * failed, and by another only when its own message differs from that one (a file or flag of its
 * host's). Without it every rank printed the same line. */
static int g_hold;
static char g_held[4096];

/* A line made up before it is written: stderr is unbuffered, and a message written piece by
 * piece is interleaved with another process's on the same stderr (the ranks of an MPI run: "is
 * givfen twice"). One write for the line, unless it outgrows the buffer (then in parts). */
typedef struct line_buf {
    char b[16384];
    size_t n;
} line_buf;

static void lb_flush(line_buf *l)
{
    if (l->n)
        fwrite(l->b, 1, l->n, stderr);
    l->n = 0;
}

static void lb_put(line_buf *l, const char *p, size_t n)
{
    while (n) {
        if (l->n == sizeof l->b)
            lb_flush(l);
        const size_t k = n < sizeof l->b - l->n ? n : sizeof l->b - l->n;
        memcpy(l->b + l->n, p, k);
        l->n += k;
        p += k;
        n -= k;
    }
}

/* Appends msg as one line: a control character inside it (a line break or tab in a value or
 * path quoted from a flag or file: --trace $'a\nb') is written \n, \r, \t or \xNN, so that a
 * message is never broken over lines. Line breaks at its start (below a progress bar) and its end
 * are kept. */
static void lb_put_line(line_buf *l, const char *msg)
{
    const size_t len = strlen(msg);
    size_t a = 0, b = len;
    while (a < len && (msg[a] == '\n' || msg[a] == '\r'))
        a++;
    while (b > a && msg[b - 1] == '\n')
        b--;
    lb_put(l, msg, a);
    for (size_t i = a; i < b; i++) {
        const unsigned char ch = (unsigned char)msg[i];
        char esc[8];
        if (ch == '\n' || ch == '\r' || ch == '\t') {
            esc[0] = '\\';
            esc[1] = ch == '\n' ? 'n' : ch == '\r' ? 'r' : 't';
            lb_put(l, esc, 2);
        } else if (ch < 0x20 || ch == 0x7F) {
            snprintf(esc, sizeof esc, "\\x%02x", ch);
            lb_put(l, esc, 4);
        } else {
            lb_put(l, msg + i, 1);
        }
    }
    lb_put(l, msg + b, len - b);
}

/* Writes msg to stderr as one line (lb_put_line), in one write. */
static void put_line(const char *msg)
{
    line_buf l;
    l.n = 0;
    lb_put_line(&l, msg);
    lb_flush(&l);
}

/* fprintf(stderr, ...) of a message, as one line (put_line). */
static void say_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say_msg(const char *fmt, ...)
{
    char line[2 * sizeof g_held];
    va_list ap;
    va_start(ap, fmt);
    /* ap is started on the line above: NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    put_line(line);
}

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
    char line[sizeof g_held];
    va_list ap;
    va_start(ap, fmt);
    /* ap is started on the line above: NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (!g_hold || g_ranks <= 1)
        put_line(line);
    else if (!g_held[0]) /* the first reason: the one that stopped the settings */
        memcpy(g_held, line, sizeof g_held);
}

/* After the ranks agreed that the settings failed (every rank calls it: a collective call). */
static void complaints_said(void)
{
#ifdef FLSIM_HAVE_MPI
    if (g_hold && g_ranks > 1) {
        /* the lowest rank that has something to say says it; the others only what differs */
        int from = g_held[0] ? g_rank : g_ranks;
        MPI_Allreduce(MPI_IN_PLACE, &from, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        static char first[sizeof g_held];
        memcpy(first, g_held, sizeof first);
        if (from < g_ranks)
            MPI_Bcast(first, (int)sizeof first, MPI_CHAR, from, MPI_COMM_WORLD);
        if (g_held[0] && (g_rank == from || strcmp(g_held, first) != 0))
            put_line(g_held);
    }
#endif
    g_hold = 0;
    g_held[0] = '\0';
}
/* After a failure the ranks did not agree on (flsim_result.err_agreed 0), said by this rank: the
 * others may wait for it in a collective call for ever, so under MPI with several ranks the job
 * ends here (MPI_Abort: mpirun ends every rank and names this one). */
static void end_job_alone(int rc)
{
#ifdef FLSIM_HAVE_MPI
    if (g_ranks > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
#else
    (void)rc;
#endif
}

/* Says why a run or an experiment failed ("PROG: MSG"). A failure every rank returned from the
 * same collective call (agreed 1: this rank's own, 2: another's) is said once, by the lowest rank
 * it is from (a collective call: every rank is here); one the ranks did not agree on is said
 * here, and then ends the job (end_job_alone) with exit status rc. */
static void say_failure(const char *prog, int agreed, const char *msg, int rc)
{
    if (agreed) {
        g_hold = 1;
        if (agreed == 1)
            complain("%s: %s\n", prog, msg);
        complaints_said();
    } else {
        say_msg("%s: %s\n", prog, msg);
        end_job_alone(rc);
    }
}

/* The signal that asked a run to stop (SIGINT, SIGTERM), 0 if none. The flags the handlers
 * share are lock-free atomics, not volatile sig_atomic_t: they run on other threads than the one
 * that reads them (the signal thread, fl_sig.h; SIGPIPE's on the thread whose write raised it). */
static atomic_int g_stop;
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal handler's flags must be lock-free");

/* A single run (not the experiment) that has not yet handed out its first round: a stop then has
 * nothing to keep (a run interrupted before its first round writes nothing), so the process ends
 * at once rather than finishing that round and its evaluation (loading and one round of a large
 * model can take minutes). Cleared by on_round before it writes anything. */
static atomic_int g_quit_now;
static atomic_int g_experiment; /* fl_sim experiment, not a single run */
/* The --out directories this run made (flsim_out_prepare), which a stop under g_quit_now removes
 * again, as a run that fails before its first round does: DIR is left as it was. */
static char g_out_buf[FLSIM_STR]; /* static: the handler may run after run_main returned */
static const char *volatile g_out_dir = NULL;
static volatile size_t g_out_made = 0;

static void say(const char *s)
{
    if (g_rank == 0) {
        const ssize_t w = write(STDERR_FILENO, s, strlen(s)); /* async-signal-safe */
        (void)w;
    }
}

/* A progress line is on the terminal without its newline (lock-free: the handler reads it). */
static atomic_int g_bar_open;

/* say(s) on a line of its own: below the progress line when one is up, else with no blank line
 * before it (stderr a file or a pipe). */
static void say_line(const char *s)
{
    if (atomic_exchange(&g_bar_open, 0))
        say("\n");
    say(s);
}

/* Ends the process as the signal's default action would (so that a shell or a script sees it
 * killed by that signal), after saying so: on the signal thread, or in SIGPIPE's handler. */
static void die_of(int sig)
{
    fl_sig_die(sig);
}

static void on_signal(int sig);

/* SIGPIPE, raised on the thread whose write found the pipe closed (the signal thread takes the
 * others). Keeps errno as the interrupted code had it (say() and sigaction may set it). */
static void on_sigpipe(int sig)
{
    const int saved = errno;
    on_signal(sig);
    errno = saved;
}

/* SIGINT, SIGTERM, SIGUSR1, SIGHUP: on the signal thread (fl_sig.h), one at a time. A handler ran
 * on whatever thread the kernel picked (a client worker's, OpenBLAS's), where the handler's own
 * mask held back a second signal only from that thread: two could run at once, each finding no
 * stop yet, and a second Ctrl-C did not quit. */
static void on_signal(int sig)
{
    const char *name = sig == SIGINT ? "Ctrl-C" : sig == SIGTERM ? "SIGTERM" :
                       sig == SIGHUP ? "SIGHUP" : "SIGUSR1";
    if (sig == SIGPIPE && !g_quit_now) {
        /* The reader of stdout went away (fl_sim ... | head), or of another pipe or socket: the
         * run stops after the round in progress with its results written, as for SIGTERM; the
         * writes that follow fail quietly (EPIPE) instead of raising it again, so no second
         * signal ends it. */
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        sigaction(SIGPIPE, &ign, NULL);
        int none = 0;
        if (atomic_compare_exchange_strong(&g_stop, &none, sig)) {
            say_line("fl_sim: a write to a closed pipe (SIGPIPE; stdout closed?): stopping after the "
                     "round in progress\n");
        }
        return;
    }
    if (g_quit_now) {
        if (g_out_dir)
            flsim_out_unprepare(g_out_dir, g_out_made); /* only what is still empty */
        say_line("fl_sim: interrupted before the first round was done: nothing written\n");
        die_of(sig);
    }
    int none = 0;
    if (!atomic_compare_exchange_strong(&g_stop, &none, sig)) { /* the second: at once, say what stays */
        say_line(g_experiment ? "fl_sim experiment: quitting at once: the runs finished stay saved"
                              : "fl_sim: quitting at once: no summary.json");
        if (g_out_dir) {
            say("; ");
            say(g_out_dir);
            say("/rounds.csv keeps the rounds finished");
        }
        say("\n");
        die_of(sig);
    }
    say_line("fl_sim: stopping after the round in progress (");
    say(name);
    say(" again to quit at once)\n");
}

/* The first Ctrl-C, SIGTERM or SIGUSR1 stops the run after the round in progress, with its
 * results written; the second one ends it at once. SIGUSR1 is for mpirun, which ends the ranks
 * itself on Ctrl-C and SIGTERM (SIGTERM to them, SIGKILL about a second later) but passes SIGUSR1
 * on to every rank. */
static void catch_stop_signals(void)
{
    /* SIGHUP and SIGPIPE only where they are not ignored already: `nohup fl_sim ... &` ignores
     * SIGHUP so that the run outlives the terminal, and a parent that ignores SIGPIPE means it. */
    struct sigaction old;
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGUSR1);
    if (sigaction(SIGHUP, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
        sigaddset(&stops, SIGHUP);
    const int e = fl_sig_take(&stops, on_signal);
    if (e != 0) {
        say_msg("fl_sim: cannot start the thread that takes signals (%s): a signal ends "
                "the run at once\n", strerror(e));
    }
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler != SIG_IGN) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigpipe;
        sigfillset(&sa.sa_mask); /* a SIGPIPE on another thread meanwhile waits for this one */
        sigaction(SIGPIPE, &sa, NULL);
    }
    /* A file size limit (ulimit -f) makes a write fail with EFBIG, said like a full disk (the
     * row cut back off rounds.csv), instead of killing the run mid-row with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: fl_sim [--config FILE] [--OPTION VALUE | --OPTION=VALUE]...\n"
        "       fl_sim experiment afd [--preset small|full] [--seeds N] [--out DIR] [--fresh 0|1] [--OPTION VALUE]...\n"
        "       (the experiment takes any option below but --config, --policy, --seed,\n"
        "       --keep-going, --resume and --checkpoint-every)\n"
        "       fl_sim --version\n"
        "\n"
        "Simulates federated learning with fedrop's own server and client cores: virtual clients\n"
        "with device and network profiles, a virtual clock, worker threads (and MPI ranks under\n"
        "mpirun). Writes DIR/rounds.csv and DIR/summary.json with --out DIR.\n"
        "\n"
        "Options (a YAML --config file takes the same names as keys; flags override it; relative\n"
        "paths of its trace and dataset files are taken beside the file, its out where fl_sim runs;\n"
        "a 0|1 option given alone, with no value after it, means 1: --quiet is --quiet 1):\n");
    for (const flsim_option_doc *d = flsim_option_docs(); d->name; d++) {
        /* name and argument padded together: a name longer than its column (--score-accumulate)
         * shifts its argument, not every column after it */
        char lhs[80];
        snprintf(lhs, sizeof lhs, "--%-14s %s", d->name, d->arg);
        fprintf(f, "  %-33s ", lhs);
        /* the description wrapped at spaces to 100 columns, continued under its column */
        const char *t = d->help;
        const int width = 100 - 36;
        while ((int)strlen(t) > width) {
            int cut = width;
            while (cut > 0 && t[cut] != ' ')
                cut--;
            if (cut == 0) /* one word longer than the column: as it is */
                break;
            fprintf(f, "%.*s\n%36s", cut, t, "");
            t += cut + 1;
        }
        fprintf(f, "%s\n", t);
    }
    fprintf(f,
        "  --help                            this text\n"
        "\n"
        "Datasets (--dataset): fashion-mnist and mnist are read from the directory\n"
        "$FEDROP_DATA_DIR/NAME, else $FEDROP_DATA_DIR itself, when that variable is set;\n"
        "otherwise from /usr/share/datasets/NAME (Debian's dataset-fashion-mnist). Either\n"
        "must hold {train,t10k}-{images-idx3,labels-idx1}-ubyte, gzipped (.gz) or not; the test\n"
        "set is the t10k pair. Any other dataset is a spec that names its files:\n"
        "  idx:IMAGES,LABELS                   an IDX pair (10 classes)\n"
        "  femnist:PATH[,PATH...]              LEAF FEMNIST JSON (a directory: its *.json)\n"
        "  shakespeare:PATH[,PATH...]          LEAF Shakespeare JSON (token data, for --model lstm)\n"
        "  synth-images:N:CxHxW:K[:SIGMA]      N generated images of K classes (no files)\n"
        "  synth-tokens:N:T:VOCAB[:NOISE]      N generated token sequences of length T\n"
        "A spec without a test split holds out --test-frac of it as the test set (LEAF data:\n"
        "of each user's samples); a synth-* --test-dataset draws samples of its own.\n"
        "\n"
        "experiment afd: runs full, fd, afd-single and afd-multi, each without and with compression\n"
        "(--down-codec / --up-codec of the preset), over --seeds seeds (3), and writes table.md,\n"
        "table.csv, curves.csv and plots (gnuplot) under --out (default results/afd-PRESET).\n"
        "Each run is saved under DIR/runs/ as it finishes; a later experiment with the same --out\n"
        "reads back the runs that match its settings instead of running them again, so an\n"
        "interrupted experiment resumes and --seeds 3 adds to an earlier --seeds 1\n"
        "(--fresh 1: run everything again).\n"
        "  --preset small   mlp on 12,000 Fashion-MNIST samples, 200 clients, 20 per round, 100 rounds\n"
        "  --preset full    cnn:10 on Fashion-MNIST, 1,000 clients, 50 per round, 200 rounds\n"
        "\n"
        "Interrupting: rounds.csv grows a line per round, so a crash keeps every finished round.\n"
        "Ctrl-C (or SIGTERM, SIGUSR1) stops a run after the round in progress and writes its results,\n"
        "with \"interrupted\": true in summary.json, and ends killed by it (a shell reads 130; 143\n"
        "for SIGTERM, 138 for SIGUSR1; a script that ran it stops too);\n"
        "a second one ends it at once. An experiment stops the same way, drops the run in progress\n"
        "and keeps the runs it finished: the same command resumes from them. Under mpirun, which ends\n"
        "the ranks itself on Ctrl-C (the round in progress and the summary are lost), stop with\n"
        "kill -USR1 <mpirun's pid>: mpirun passes SIGUSR1 on to every rank.\n"
        "Resuming: with --out DIR the run's state goes to DIR/resume.fls every --checkpoint-every\n"
        "rounds (10), at the end and when stopped; the same command with --resume 1 continues from\n"
        "it, after a stop or a crash, with the same results bit for bit (also to a larger --rounds;\n"
        "a top-k uplink's residuals are saved beside it, and it resumes with as many MPI ranks).\n"
        "\n"
        "Exit status: 0 done; 2 an option or value that does not parse or is out of range (found\n"
        "before anything loads); 1 anything found later, said on stderr: the data, settings that do\n"
        "not fit the data (--partition, --per-round, --test-dataset), the run, its output; 128 + N\n"
        "stopped by signal N (130 Ctrl-C, 143 SIGTERM, 138 SIGUSR1), the finished rounds written.\n"
        "\n"
        "Examples:\n"
        "  fl_sim --dataset fashion-mnist --model cnn --clients 1000 --per-round 50 --rounds 100 \\\n"
        "         --partition dirichlet:0.3 --policy afd-single --keep 0.75 \\\n"
        "         --down-codec rot+q4+zstd --up-codec rot+q2+zstd --seed 1 --threads 2 --out run1\n"
        "  fl_sim --config sim/example_config.yaml --rounds 20 --out run2   (a YAML file of these\n"
        "         options, in the source tree; flags override it)\n"
        "  fl_sim --config sim/example_config.yaml --rounds 40 --out run2 --resume 1   (run2 goes on\n"
        "         to round 40)\n"
        "  mpirun -n 4 --hostfile hosts fl_sim --config sim/example_config.yaml --out run-mpi\n");
}

/* A duration as 1h02m or 3m07s. */
static void hms(char *buf, size_t cap, double s)
{
    const long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
}

/* A virtual time for the progress: `decimals` places (as ever) below 1e9 s, beyond that (31
 * years: slow trace rows, long idle steps) six significant digits, so that the line stays short
 * (%.3f of 1e20 s is 24 digits; of the 1e300 a tiny rate once made, 300). */
static void vtime_str(char *buf, size_t cap, double s, int decimals)
{
    if (fabs(s) < 1e9)
        snprintf(buf, cap, "%.*f", decimals, s);
    else
        snprintf(buf, cap, "%.6g", s);
}

/* A terminal that takes no escape sequences: TERM=dumb (Emacs' shell and compilation buffers,
 * some CI log viewers), or no TERM at all, as git reads it. There "\033[K" came out as the text
 * "^[[K" after every redraw (until 2026-12-08). */
static int term_dumb(void)
{
    const char *t = getenv("TERM");
    return !t || !*t || !strcmp(t, "dumb");
}

/* --progress auto: the bar on a terminal that can redraw a line (else a plain line a round) */
static int bar_auto(void)
{
    return isatty(STDERR_FILENO) && !term_dumb();
}

/* Redraws the progress bar's line in place, cut to the terminal's width: a line that wrapped
 * would leave a stale copy behind at every redraw. The rest of a longer line before it is
 * cleared with "\033[K", or on a dumb terminal (--progress bar there) written over with spaces. */
static void bar_line(const char *line)
{
    static int drawn; /* the columns the line before took (the bar's lines come from one thread) */
    struct winsize ws;
    int cols = 80;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
        cols = ws.ws_col;
    const int n = (int)strnlen(line, (size_t)cols - 1);
    const int dumb = term_dumb();
    /* open before the text goes out: a signal's message between the two would otherwise follow
     * the bar's text on its line (at worst, now, a message before the bar gets a blank line) */
    const int was_open = atomic_exchange(&g_bar_open, 1);
    if (!dumb)
        fprintf(stderr, "\r%.*s\033[K", n, line);
    else /* a line ended since (a message, a run's end) leaves nothing to write over */
        fprintf(stderr, "\r%.*s%*s", n, line, was_open && drawn > n ? drawn - n : 0, "");
    drawn = n;
    fflush(stderr);
}

/* The library's warnings (fl_log_to_file's format), each on a line of its own: one logged while
 * the progress line is up starts below it rather than after its text. */
static void log_below_bar(void *user, fl_log_level level, const char *msg)
{
    if (atomic_exchange(&g_bar_open, 0))
        fputc('\n', stderr);
    (void)user; /* stderr: as fl_log_to_file's line, made one (put_line) */
    line_buf l;
    l.n = 0;
    const char *name = fl_log_level_name(level);
    lb_put(&l, name, strlen(name));
    lb_put(&l, "     ", strlen(name) < 5 ? 6 - strlen(name) : 1); /* "%-5s " */
    lb_put_line(&l, msg);
    lb_put(&l, "\n", 1);
    lb_flush(&l);
    fflush(stderr);
}

typedef struct progress {
    int bar;
    uint32_t total;
    int quiet;
    const char *out; /* --out DIR (rank 0), or NULL */
    FILE *log;       /* DIR/rounds.csv, written as the run goes from its first round on */
    int log_failed;
    int dropped;     /* stopped by a signal before its first round was written: nothing kept */
    double rounds_wall; /* wall time of the rounds so far (not the loading): the ETA's rate */
    int resuming;       /* --resume: an earlier run's resume file is this run's */
} progress;

static int on_round(void *user, const flsim_round_record *r, const flsim_result *sofar)
{
    progress *p = user;
    g_quit_now = 0; /* from here on a stop is taken after the round in progress */
    /* DIR/rounds.csv starts with the first round, not before: a run that fails while it loads
     * its data or builds its partition leaves an earlier run's results in DIR untouched. */
    /* Interrupted before the first round came out (while loading, or in round 1): nothing is
     * written, so that DIR keeps an earlier run's results, as when setup fails. */
    if (r->round == 1 && g_stop && r->round < p->total && !r->restored) { /* a 1-round run is
                                                                          * complete: kept */
        p->dropped = 1;
        return FLSIM_STOP_DISCARD; /* nor DIR/resume.fls: an earlier run's stays */
    }
    char why[1400];
    if (p->out && !p->log && !p->log_failed &&
        flsim_rounds_start(p->out, &p->log, why, sizeof why) != FL_OK) {
        p->log_failed = 1;
        say_msg("%sfl_sim: %s (trying again at the end)\n", p->bar && !p->quiet ? "\n" : "",
                why);
    }
    if (p->log && !p->log_failed && flsim_rounds_put(p->log, r) != FL_OK) {
        p->log_failed = 1; /* said once; flsim_write_outputs writes it whole at the end */
        say_msg("%sfl_sim: cannot append to %s/rounds.csv: %s (writing it at the end)\n",
                p->bar && !p->quiet ? "\n" : "", p->out, strerror(errno));
    }
    /* A fresh run in a DIR that holds an earlier run's resume file: that file is not this run's
     * (rounds.csv has just been started anew), so a later --resume must not take it. */
    if (p->out && r->round == 1 && !r->restored && !p->resuming) {
        char rf[FLSIM_STR + 32];
        snprintf(rf, sizeof rf, "%s/%s", p->out, FLSIM_RESUME_FILE);
        (void)unlink(rf); /* and its clients' residuals, if any */
        (void)flsim_resid_sweep(p->out, (uint32_t)g_rank, (uint32_t)g_ranks, FLSIM_SWEEP_ALL, 0);
    }
    if (r->restored) { /* read back by --resume: written to rounds.csv above, said once */
        p->rounds_wall += r->wall_s; /* the time-left estimate's rate counts them */
        if (r->round == sofar->resumed_after && g_rank == 0) { /* said under --quiet too */
            if (atomic_exchange(&g_bar_open, 0))
                fputc('\n', stderr);
            say_msg("fl_sim: resuming %s after round %u of %u (%s/resume.fls)\n",
                    p->out ? p->out : "the run", r->round, p->total, p->out ? p->out : ".");
        }
        return 0; /* a stop asked meanwhile is taken after the next round */
    }
    if (p->quiet || g_rank != 0)
        return g_stop != 0;
    char acc[32] = "-";
    if (r->evaluated)
        snprintf(acc, sizeof acc, "%.4f", r->test_acc);
    if (p->bar) {
        /* Most useful first: a narrow terminal cuts the line's end (bar_line), so the round, the
         * time left and the accuracy come before the bar, the bytes last. */
        p->rounds_wall += r->wall_s;
        const int width = 12;
        const int fill = p->total ? (int)((double)r->round / p->total * width) : width;
        char left[32], failed[32] = "";
        hms(left, sizeof left, p->rounds_wall / r->round * (p->total - r->round));
        if (sofar->updates_failed)
            snprintf(failed, sizeof failed, "  failed %llu", (unsigned long long)sofar->updates_failed);
        char line[256], vt[32];
        /* whole seconds from 100 s on; below, three digits: a run whose rounds take a fraction
         * of a virtual second read "vtime 0s" until its end */
        if (fabs(r->vtime_s) < 100)
            snprintf(vt, sizeof vt, "%.3g", r->vtime_s);
        else
            vtime_str(vt, sizeof vt, r->vtime_s, 0);
        snprintf(line, sizeof line, "%u/%u ~%s left  acc %s [%.*s%*s]%s  wall %.1fs  vtime %ss  "
                 "down %.1f MB  up %.1f MB",
                 r->round, p->total, left, acc, fill, "============", width - fill, "", failed,
                 sofar->wall_s, vt, sofar->bytes_down / 1e6, sofar->bytes_up / 1e6);
        bar_line(line);
    } else {
        char vt[32], rvt[32];
        vtime_str(vt, sizeof vt, r->vtime_s, 3);
        vtime_str(rvt, sizeof rvt, r->round_vtime_s, 3);
        printf("round %u vtime_s %s round_vtime_s %s wall_s %.3f bytes_down %llu bytes_up %llu "
               "loss %.5f acc %s reported %u late %u failed %u\n",
               r->round, vt, rvt, r->wall_s,
               (unsigned long long)r->bytes_down, (unsigned long long)r->bytes_up, r->mean_loss,
               acc, r->reported, r->late, r->failed);
        fflush(stdout);
    }
    return g_stop != 0;
}

/* A run in which no client update was accepted learned nothing, yet looks like any other run
 * (exit status 0, a final accuracy): say so, with the likely causes. lr: NaN if not known here. */
static void warn_no_update(const char *who, const flsim_result *res, double lr)
{
    if (res->rounds == 0 || res->updates_accepted > 0)
        return;
    char hint[160] = "";
    char lrs[40] = "--lr";
    if (!isnan(lr))
        snprintf(lrs, sizeof lrs, "--lr %g", lr);
    if (res->updates_failed > 0)
        snprintf(hint, sizeof hint, "; local training failed or its update was refused: the "
                 "learning rate (%s) or the data?", lrs);
    else if (res->updates_late > 0)
        snprintf(hint, sizeof hint, "; every update came after the round closed: --deadline?");
    say_msg("%s: warning: no client update was accepted in %u round%s (%llu failed, "
            "%llu late)%s\n", who, res->rounds, res->rounds == 1 ? "" : "s",
            (unsigned long long)res->updates_failed, (unsigned long long)res->updates_late, hint);
}

/* Options the command line gave as flags ("per_round" stored as "per-round"). */
typedef struct given_opts {
    int n;
    char name[64][32];
    char last[64][80];     /* the last value given, as a warning shows it (cut at 75 bytes) */
    unsigned char again[64]; /* given more than once */
} given_opts;

static int given_add(given_opts *g, const char *name)
{
    if (g->n >= 64)
        return -1;
    snprintf(g->name[g->n], sizeof g->name[0], "%.31s", name); /* longer: no option */
    for (char *c = g->name[g->n]; *c; c++)
        if (*c == '_')
            *c = '-';
    return g->n++;
}

static int given_find(const given_opts *g, const char *name)
{
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->name[i], name))
            return i;
    return -1;
}

static int given_has(const given_opts *g, const char *name)
{
    return given_find(g, name) >= 0;
}

/* A flag given again (either spelling, per_round or per-round) is said once all are read
 * (given_said), with the value that counts: the last one silently won ("--preset small ...
 * --preset full" ran the 4-hour preset). Not refused: a script's common flags followed by an
 * override ("$ARGS --quiet 0") is a way of writing what to run. Then name is in g. */
static void given_again(given_opts *g, const char *name, const char *value)
{
    given_opts one = {0};
    given_add(&one, name);
    int i = given_find(g, one.name[0]);
    if (i >= 0)
        g->again[i] = 1;
    else
        i = given_add(g, name);
    if (i >= 0)
        snprintf(g->last[i], sizeof g->last[0], "%.75s%s", value, strlen(value) > 75 ? "..." : "");
}

/* The warnings of given_again: one per flag given more than once, naming the value used. */
static void given_said(const given_opts *g, const char *who)
{
    for (int i = 0; i < g->n && g_rank == 0; i++)
        if (g->again[i])
            say_msg("%s: warning: --%s is given more than once: the last, '%s', is "
                    "used\n", who, g->name[i], g->last[i]);
}

static int dist_equal(const flsim_dist *a, const flsim_dist *b)
{
    return a->kind == b->kind && a->median == b->median && a->sigma == b->sigma;
}

/* Whether --model is an architecture spec without droppable layers (mlp:784-10, say): the whole
 * model under every policy, so fd and afd runs equal full ones. The names (mlp, cnn, moge) are
 * sized for the data later, and all have droppable layers. */
static int model_drops_nothing(const char *model)
{
    flm_arch a;
    return flm_arch_parse(model, &a, NULL, 0) == FL_OK && a.n_drop == 0;
}

/* An option set (as a flag, or in the YAML file to other than its default) that the run's other
 * settings make inert, such as --keep under --policy full: the library accepts the combination
 * (the value is recorded in summary.json), but a user who gave it expected it to matter. */
static void warn_inert(const flsim_config *cfg, const given_opts *g)
{
    const flsim_config d = flsim_config_default();
    const fls_policy_kind pol = cfg->policy;
    const int afd = pol == FLS_POLICY_AFD_SINGLE || pol == FLS_POLICY_AFD_MULTI;
    const int named = !strcmp(cfg->dataset, "fashion-mnist") || !strcmp(cfg->dataset, "mnist");
    const struct {
        const char *name;
        int set, inert;
        const char *why;
    } t[] = {
        {"keep", cfg->keep != d.keep, pol == FLS_POLICY_FULL,
         "--policy full trains the whole model"},
        {"keep-layers", cfg->n_keep_layers != 0, pol == FLS_POLICY_FULL,
         "--policy full trains the whole model"},
        {"agg-dilute", cfg->agg_dilute != d.agg_dilute, pol == FLS_POLICY_FULL,
         "under --policy full every client trains every coordinate"},
        {"score-accumulate", cfg->score_accumulate != d.score_accumulate, !afd,
         "it applies to the afd-single and afd-multi policies"},
        {"eps-rel", cfg->eps_rel != d.eps_rel, !afd,
         "it applies to the afd-single and afd-multi policies"},
        {"loss-unweighted", cfg->loss_unweighted != d.loss_unweighted,
         pol != FLS_POLICY_AFD_SINGLE, "it applies to the afd-single policy"},
        {"flops", !dist_equal(&cfg->flops, &d.flops), cfg->trace[0] != '\0',
         "--trace replaces it"},
        {"down-bps", !dist_equal(&cfg->down_bps, &d.down_bps), cfg->trace[0] != '\0',
         "--trace replaces it"},
        {"up-bps", !dist_equal(&cfg->up_bps, &d.up_bps), cfg->trace[0] != '\0',
         "--trace replaces it"},
        {"availability", cfg->avail.kind != d.avail.kind || cfg->avail.p != d.avail.p ||
                         cfg->avail.p_min != d.avail.p_min || cfg->avail.p_max != d.avail.p_max ||
                         cfg->avail.period_s != d.avail.period_s,
         cfg->trace[0] != '\0', "--trace replaces it"},
        {"test-frac", cfg->test_frac != d.test_frac, named || cfg->test_dataset[0] != '\0',
         named ? "the named dataset has its own test split" : "--test-dataset is the test set"},
        {"checkpoint-every", cfg->checkpoint_every != d.checkpoint_every, !cfg->out[0],
         "without --out nothing is saved"},
        {"idle-step", cfg->idle_step_s != d.idle_step_s,
         cfg->avail.kind == FLSIM_AVAIL_ALWAYS && cfg->trace[0] == '\0',
         "with --availability always every client is online, so no round waits for clients"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].inert && (t[i].set || given_has(g, t[i].name)))
            say_msg("fl_sim: warning: --%s has no effect here: %s\n", t[i].name, t[i].why);
    int every = cfg->keep >= 1.0; /* every droppable layer keeps all its units */
    for (uint32_t i = 0; i < cfg->n_keep_layers; i++)
        every &= cfg->keep_layers[i] == 0.0 || cfg->keep_layers[i] >= 1.0;
    if (pol != FLS_POLICY_FULL && every)
        say_msg("fl_sim: warning: --keep 1 keeps every unit: --policy %s then trains the "
                "whole model, as --policy full does\n",
                cfg->fd_per_client ? "fd-per-client" : fls_policy_kind_name(pol));
    else if (pol != FLS_POLICY_FULL && model_drops_nothing(cfg->model))
        say_msg("fl_sim: warning: --model %s has no droppable layer: --policy %s then "
                "trains the whole model, as --policy full does\n", cfg->model,
                cfg->fd_per_client ? "fd-per-client" : fls_policy_kind_name(pol));
}

/* The target is checked where the test set is evaluated: with --eval-every 0 (or not below
 * --rounds) only after the last round, so rounds, virtual time and bytes to it can only be the
 * whole run's, or none, and the run cannot stop early at it. A legitimate, cheaper run, but not
 * what the option's name promises: said once, at start. */
static void warn_target_at_end(const flsim_config *cfg)
{
    if (cfg->target_acc <= 0 || cfg->rounds < 2 ||
        (cfg->eval_every != 0 && cfg->eval_every < cfg->rounds))
        return;
    say_msg("fl_sim: warning: --target-acc %g with --eval-every %u: the test set is "
            "evaluated only after the last round (%u), so the target is found reached there or "
            "not at all: rounds, virtual time and bytes to it are the whole run's%s\n",
            cfg->target_acc, cfg->eval_every, cfg->rounds,
            cfg->keep_going ? "" : ", and the run cannot stop early at it");
}

/* More worker threads than the CPUs this process may run on (its affinity mask: taskset, a
 * container's cpuset; flsim_cpus): they take turns on those CPUs, so the run is no faster, only
 * more switching (its results are the same bits whatever the count). Said once, at start; the run
 * goes on. */
static void warn_threads(const char *prog, uint32_t threads)
{
    const unsigned ncpu = flsim_cpus();
    if (threads <= ncpu)
        return;
    say_msg("%s: warning: --threads %u is more than the %u CPU%s this process may run on: "
            "the threads take turns on them, so the run is no faster than with --threads %u (its "
            "results are the same either way)\n", prog, threads, ncpu, ncpu == 1 ? "" : "s", ncpu);
}

/* OPENBLAS_CORETYPE in the environment naming another kernel than the one fedrop picks for this
 * CPU: the run goes on with the user's kernel, which rounds otherwise (the published results and
 * model_sha256 were made with the pick) and, from AVX-512 down to AVX2, may train slower. A note, not
 * a warning (nothing is wrong with the run); said once at start, not under --quiet. */
static void note_blas(const char *prog, int quiet)
{
    if (quiet)
        return;
    const char *pick = flm_blas_cpu_coretype();
    /* loaded as the run loads it (flsim_run.c), to name the kernel that runs: a name OpenBLAS
     * does not know (a typo) is passed over by it, and was noted as the kernel that "replaces"
     * fedrop's pick */
    (void)flm_blas_init_threads(1);
    const char *ignored = flm_blas_env_coretype_ignored();
    if (ignored) {
        char kernel[64]; /* as summary.json's "blas" names it (flsim_blas_name), "+AVX512" too */
        flm_blas_kernel_name(kernel, sizeof kernel);
        say_msg("%s: note: OPENBLAS_CORETYPE=%s in the environment is not what OpenBLAS "
                "runs (a name it does not know, or a kernel it will not run on this CPU): it "
                "runs %s (summary.json \"blas\")%s%s%s\n", prog, ignored, kernel,
                pick ? "; fedrop picks " : "", pick ? pick : "",
                pick ? " for this CPU: unset the variable to train on it" : "");
        return;
    }
    int slower = 0;
    const char *env = flm_blas_env_coretype_other(&slower);
    if (!env)
        return;
    say_msg("%s: note: OPENBLAS_CORETYPE=%s in the environment replaces %s, the kernel "
            "fedrop picks for this CPU: training rounds otherwise (other bits than a run on %s; "
            "summary.json \"blas\" names the kernel)%s; unset the variable to train on %s\n", prog,
            env, pick, pick,
            slower ? " and may be slower (OpenBLAS's GEMMs, as in conv layers, then leave out "
                     "AVX-512)"
                   : "",
            pick);
}

/* An option neither fl_sim's nor the experiment's: the experiment's own (--preset, --seeds,
 * --fresh) are suggested too, where none of fl_sim's is as near. why holds fl_config_set's
 * message; returns it, or the message with the experiment's option in it. */
static const char *experiment_unknown(const char *name, char *why, size_t cap)
{
    static const char *const own[] = {"preset", "seeds", "fresh", NULL};
    const char *near = flsim_name_nearest(name, own);
    if (near && !flsim_option_nearest(name))
        snprintf(why, cap, "unknown option '%s' (did you mean --%s? see --help)", name, near);
    return why;
}

/* A 0|1 option (its --help value column), or the experiment's --fresh: given alone, with no
 * value after it, it means 1. */
static int bare_switch(const char *name, int experiment)
{
    if (experiment && !strcmp(name, "fresh"))
        return 1;
    for (const flsim_option_doc *d = flsim_option_docs(); d->name; d++)
        if (!strcmp(d->name, name))
            return !strcmp(d->arg, "0|1");
    return 0;
}

/* Splits argv into (name, value) pairs: --name value or --name=value; a 0|1 option may stand
 * alone (bare_switch). */
static int next_opt(int argc, char **argv, int *i, const char **name, const char **value,
                    char *buf, size_t cap, int experiment)
{
    const char *a = argv[*i];
    if (strncmp(a, "--", 2) != 0) {
        complain("fl_sim: unexpected argument '%s' (options start with --; see --help)\n", a);
        return -1;
    }
    a += 2;
    if (!*a) {
        complain("fl_sim: '--' alone: fl_sim takes options only, each --name value or "
                 "--name=value (see --help)\n");
        return -1;
    }
    const char *eq = strchr(a, '=');
    if (eq && ((eq - a == 4 && !strncmp(a, "help", 4)) ||
               (eq - a == 7 && !strncmp(a, "version", 7)))) {
        complain("fl_sim: --%.*s takes no value (fl_sim --%.*s)\n", (int)(eq - a), a,
                 (int)(eq - a), a);
        return -1;
    }
    if (eq) {
        snprintf(buf, cap, "%.*s", (int)(eq - a), a);
        *name = buf;
        *value = eq + 1;
        (*i)++;
        return 0;
    }
    *name = a;
    if (!strcmp(a, "version")) { /* "--version 1": not an unknown option */
        complain("fl_sim: --version stands alone (fl_sim --version)\n");
        return -1;
    }
    const int last = *i + 1 >= argc;
    const int no_value = last || strncmp(argv[*i + 1], "--", 2) == 0;
    if (no_value && bare_switch(a, experiment)) {
        *value = "1"; /* "--quiet" alone: "--quiet 1" */
        (*i)++;
        return 0;
    }
    if (no_value) {
        /* No value follows: a misspelt option is named as such, not as one missing its value. */
        static const char *const own[] = {"config", "preset", "seeds", "fresh"};
        int known = 0;
        for (size_t k = 0; k < (experiment ? sizeof own / sizeof own[0] : 1); k++)
            known |= strcmp(a, own[k]) == 0;
        flsim_config probe = flsim_config_default();
        char why[256];
        if (!known && flsim_config_set(&probe, a, "", why, sizeof why) == FL_ERR_NOT_FOUND)
            complain("fl_sim: %s\n", experiment ? experiment_unknown(a, why, sizeof why) : why);
        else if (last)
            complain("fl_sim: --%s needs a value (see --help)\n", a);
        else /* "--out --rounds 5": the value left out */
            complain("fl_sim: --%s needs a value, and the next argument, %s, is an option "
                    "(a path that starts with '-' can be given as ./%s)\n", a, argv[*i + 1],
                    argv[*i + 1]);
        return -1;
    }
    *value = argv[*i + 1];
    *i += 2;
    return 0;
}

static int has_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    return 0;
}

/* The experiment's progress: on a terminal a bar for the current run (with the experiment's
 * estimated time left), else one line as each run begins and ends and, within a run, one at most
 * every EXP_LINE_S of wall time (a full-preset run takes 7-17 minutes: a log had nothing to say
 * meanwhile); always a line per finished or read-back run. */
#define EXP_LINE_S 30.0
typedef struct exp_progress {
    int bar, quiet;
    double t0;          /* when the first run trained here began */
    double acc;         /* the current run's last test accuracy (NaN: none yet) */
    double said;        /* when the last line within the current run was written (lines mode) */
} exp_progress;

static int on_exp(void *user, const flsim_exp_event *ev)
{
    exp_progress *p = user;
    char tag[64];
    snprintf(tag, sizeof tag, "run %u/%u %s seed %u", ev->run, ev->runs, ev->config, ev->seed);
    if (p->quiet) {
        if (ev->kind == FLSIM_EXP_RUN_DONE) /* a warning, not progress: --quiet keeps it */
            warn_no_update(tag, ev->res, NAN);
        return g_stop != 0;
    }
    if (ev->kind == FLSIM_EXP_RUN_START) {
        if (ev->trained == 0)
            p->t0 = fl_time_mono_s();
        p->acc = NAN;
        p->said = fl_time_mono_s();
        if (!p->bar)
            say_msg("%s: training (%u of %u to train)\n", tag, ev->trained + 1, ev->to_train);
        return g_stop != 0;
    }
    if (ev->kind == FLSIM_EXP_ROUND) {
        const double now = fl_time_mono_s(), run_s = ev->res->wall_s;
        if (ev->round->evaluated)
            p->acc = ev->round->test_acc;
        if (!p->bar && now - p->said < EXP_LINE_S)
            return g_stop != 0;
        /* time left: this run's rate, and the runs still to train after it at the mean so far */
        const double this_left = run_s / ev->round->round * (ev->rounds - ev->round->round);
        const double per_run = (now - p->t0 + this_left) / (ev->trained + 1);
        char left[32], el[32];
        hms(left, sizeof left, this_left + per_run * (ev->to_train - ev->trained - 1));
        hms(el, sizeof el, run_s);
        const int width = 10;
        const int fill = (int)((double)ev->round->round / ev->rounds * width);
        char acc[16] = "-";
        if (!isnan(p->acc))
            snprintf(acc, sizeof acc, "%.4f", p->acc);
        if (!p->bar) {
            p->said = now;
            say_msg("%s: round %u/%u, acc %s, wall %s; all done in ~%s\n", tag,
                    ev->round->round, ev->rounds, acc, el, left);
            return g_stop != 0;
        }
        /* The experiment's time left right after the run count, the bar last: a narrow terminal
         * cuts the line's end (bar_line), and the round count already says what the bar does.
         * The longest config, 100 rounds: 76 columns before the bar. */
        char line[256];
        snprintf(line, sizeof line, "run %u/%u, all done in ~%s: %s seed %u, %u/%u, acc %s, %s "
                 "[%.*s%*s]", ev->run, ev->runs, left, ev->config, ev->seed, ev->round->round,
                 ev->rounds, acc, el, fill, "==========", width - fill, "");
        bar_line(line);
        return g_stop != 0;
    }
    if (p->bar && !ev->reused)
        fputc('\n', stderr);
    if (ev->reused)
        say_msg("%s: final acc %.4f, %u rounds (read back from %s)\n", tag,
                ev->res->final_test_acc, ev->res->rounds, ev->dir);
    else
        say_msg("%s: final acc %.4f, %u rounds, %.1f virtual s, %.1f MB, wall %.1f s\n",
                tag, ev->res->final_test_acc, ev->res->rounds, ev->res->virtual_time_s,
                (double)(ev->res->bytes_down + ev->res->bytes_up) / 1e6, ev->res->wall_s);
    warn_no_update(tag, ev->res, NAN); /* the lr is the preset's, or an override's */
    return g_stop != 0;
}

static int run_experiment(int argc, char **argv, int first)
{
    flsim_experiment e;
    memset(&e, 0, sizeof e);
    snprintf(e.preset, sizeof e.preset, "small");
    e.seeds = 3;
    int n_over = 0, quiet = 0, pmode = -1;
    uint32_t threads = 0; /* --threads, for its warning */
    static char store[64][FLSIM_STR + 64];
    given_opts seen = {0};
    for (int i = first; i < argc;) {
        const char *name, *value;
        char buf[128];
        if (next_opt(argc, argv, &i, &name, &value, buf, sizeof buf, 1) != 0)
            return 2;
        given_again(&seen, name, value);
        if (!strcmp(name, "preset")) {
            if (strcmp(value, "small") && strcmp(value, "full")) {
                say_msg("fl_sim: --preset: '%s' is not small or full\n", value);
                return 2;
            }
            snprintf(e.preset, sizeof e.preset, "%s", value);
        } else if (!strcmp(name, "seeds")) {
            char *end;
            const long v = strtol(value, &end, 10);
            if (*value < '0' || *value > '9' || *end || v < 1 || v > 100) { /* as other counts */
                say_msg("fl_sim: --seeds: '%s' is not a count in 1 .. 100\n", value);
                return 2;
            }
            e.seeds = (uint32_t)v;
        } else if (!strcmp(name, "out")) {
            if (!*value || strlen(value) >= sizeof e.out) {
                say_msg("fl_sim: --out: %s\n",
                        *value ? "too long" : "empty (leave it out for results/afd-PRESET)");
                return 2;
            }
            snprintf(e.out, sizeof e.out, "%s", value);
            flsim_path_trim(e.out); /* "o/" wrote "o//table.csv" */
        } else if (!strcmp(name, "fresh")) {
            /* as every other on/off option takes it (until 2026-12-07 0 or 1 only) */
            if (!flsim_parse_bool(value, &e.fresh)) {
                say_msg("fl_sim: --fresh: '%s' is not a boolean (0/1, true/false, yes/no, on/off)\n",
                        value);
                return 2;
            }
        } else if (!strcmp(name, "quiet") || !strcmp(name, "progress")) {
            flsim_config probe = flsim_config_default();
            char err[300];
            if (flsim_config_set(&probe, name, value, err, sizeof err) != FL_OK) {
                say_msg("fl_sim: %s\n", err);
                return 2;
            }
            if (name[0] == 'q')
                quiet = probe.quiet;
            else
                pmode = probe.progress;
        } else if (!strcmp(name, "resume") || !strcmp(name, "checkpoint-every")) {
            say_msg("fl_sim experiment: --%s: the experiment resumes by whole runs (the "
                    "same command again reads back the runs it finished); --%s is for a single "
                    "fl_sim run\n", name, name);
            return 2;
        } else if (!strcmp(name, "policy") || !strcmp(name, "seed") || !strcmp(name, "config") ||
                   !strcmp(name, "keep-going")) {
            /* The experiment sets these itself: an override would be silently replaced (or, for
             * keep-going, would end runs at the target and make "final acc" incomparable). */
            say_msg("fl_sim experiment: --%s: %s\n", name,
                    name[0] == 'p' ? "the experiment runs every policy (full, fd, afd-single, "
                                     "afd-multi); run one policy with fl_sim --policy"
                    : name[0] == 's' ? "the experiment runs seeds 1 .. N; set N with --seeds"
                    : name[0] == 'k' ? "the experiment runs every configuration for --rounds rounds, "
                                       "so that final accuracies compare"
                                     : "not taken by the experiment; give its settings as flags");
            return 2;
        } else {
            flsim_config probe = flsim_config_default();
            char err[300];
            const fl_status ps = flsim_config_set(&probe, name, value, err, sizeof err);
            if (ps != FL_OK) {
                say_msg("fl_sim: %s\n", ps == FL_ERR_NOT_FOUND ?
                        experiment_unknown(name, err, sizeof err) : err);
                return 2;
            }
            if (!strcmp(name, "keep") && probe.keep >= 1.0 && g_rank == 0)
                say_msg("fl_sim experiment: warning: --keep %s keeps every unit: fd and "
                        "afd then train the whole model, as full does\n", value);
            if (!strcmp(name, "threads"))
                threads = probe.threads; /* the last one given counts */
            if (!strcmp(name, "model") && model_drops_nothing(value) && g_rank == 0)
                say_msg("fl_sim experiment: warning: --model %s has no droppable layer: "
                        "fd and afd then train the whole model, as full does\n", value);
            if (n_over >= 63) {
                say_msg("fl_sim: too many options\n");
                return 2;
            }
            snprintf(store[n_over], sizeof store[n_over], "%s=%s", name, value);
            e.overrides[n_over] = store[n_over];
            n_over++;
        }
    }
    given_said(&seen, "fl_sim experiment");
    if (!e.out[0])
        snprintf(e.out, sizeof e.out, "results/afd-%s", e.preset);
    if (g_rank == 0) {
        warn_threads("fl_sim experiment", threads);
        note_blas("fl_sim experiment", quiet);
    }
    if (e.seeds < 3 && g_rank == 0)
        say_msg("fl_sim experiment: warning: %u seed%s: docs/AFD.md asks for at least 3 (no "
                "spread to compare configurations by)\n", e.seeds, e.seeds == 1 ? "" : "s");
    const fl_logger lg = {log_below_bar, stderr, FL_LOG_WARN};
    char err[2560]; /* the experiment's own e2 (2048) and what it adds to it */
    exp_progress ep = {pmode == 1 || (pmode == -1 && bar_auto()), quiet, 0.0, NAN, 0.0};
    if (g_rank == 0) {
        e.progress = on_exp;
        e.progress_user = &ep;
    }
    g_experiment = 1;
    catch_stop_signals();
    int agreed = 0;
    e.err_agreed = &agreed;
    const fl_status st = flsim_experiment_afd(&e, &lg, err, sizeof err);
    if (st == FL_ERR_CANCELLED) {
        if (g_rank == 0)
            say_msg("%sfl_sim experiment: interrupted: %s\n", ep.bar && !quiet ? "\n" : "", err);
        return 128 + (g_stop ? (int)g_stop : SIGINT);
    }
    if (st != FL_OK) {
        const int rc = st == FL_ERR_CONFIG ? 2 : 1; /* an option or value: as a run's (README) */
        say_failure("fl_sim experiment", agreed, err[0] ? err : fl_strerror(st), rc);
        return rc;
    }
    if (g_rank == 0) {
        char png[sizeof e.out + 32];
        snprintf(png, sizeof png, "%s/acc_vs_time.png", e.out);
        printf("results in %s (table.md, table.csv, curves.csv, %s)\n", e.out,
               access(png, F_OK) == 0 ? "plots" : "no plots: gnuplot failed or is missing");
    }
    return 0;
}

static int run_main(int argc, char **argv)
{
    /* The version or the help to a reader that went away (`fl_sim --help | grep -q usage`, grep
     * gone before the help's end) is no failure: SIGPIPE's default action ended the process, exit
     * 141, about every other time. Ignored for these two alone: a run takes SIGPIPE as a stop
     * (catch_stop_signals, which leaves it ignored where it came so). */
    const int help = has_help(argc, argv), version = argc == 2 && !strcmp(argv[1], "--version");
    if (help || version)
        signal(SIGPIPE, SIG_IGN);
    if (version) {
        if (g_rank == 0)
            printf("fl_sim %s\n", FEDROP_VERSION);
        return 0;
    }
    if (help) {
        if (g_rank == 0)
            usage(stdout);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "experiment")) {
        if (argc < 3 || strcmp(argv[2], "afd") != 0) {
            /* the name given is quoted: "the experiment is 'afd'" alone did not say that
             * 'afd-multi' (say) was read as the experiment's name, nor that one was missing */
            if (argc < 3)
                say_msg("fl_sim: experiment needs its name: the experiment is 'afd' (fl_sim "
                        "experiment afd --help)\n");
            else
                say_msg("fl_sim: unknown experiment '%s': the experiment is 'afd' (fl_sim "
                        "experiment afd --help)\n", argv[2]);
            return 2;
        }
        return run_experiment(argc, argv, 3);
    }
    flsim_config cfg = flsim_config_default();
    given_opts given = {0};
    char err[512];
    /* The config file first, whatever its position: flags override it. One file: a second
     * would be laid over the first key by key, its order on the command line deciding. */
    const char *config = NULL;
    g_hold = 1; /* until the ranks agree on the settings: complain() */
    int cfg_bad = 0;
    for (int i = 1; !cfg_bad && i < argc; i++) {
        const char *path = NULL;
        /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): argv[i], i < argc */
        if (!strcmp(argv[i], "--config") && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
            path = argv[i + 1]; /* "--config --rounds 2": the value left out, as next_opt says */
        else if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
        if (path && !path[0]) {
            complain("fl_sim: --config is empty (want a YAML file)\n");
            cfg_bad = 1;
        } else if (path && config) {
            complain("fl_sim: --config given twice (%s, then %s): a run reads one config file; "
                     "give other settings as flags\n", config, path);
            cfg_bad = 1;
        } else if (path) {
            config = path;
        }
    }
    /* The settings are read on every rank, from its own host's --config file: a rank that
     * cannot read it, or whose settings do not hold, must end them all (agreed once all is read
     * and checked), not leave the others in the next collective (--out's, below) while it waits
     * in MPI_Finalize. */
    if (!cfg_bad && config && flsim_config_load_yaml(&cfg, config, err, sizeof err) != FL_OK) {
        complain("fl_sim: %s\n", err);
        cfg_bad = 1;
    }
    for (int i = 1; !cfg_bad && i < argc;) {
        const char *name, *value;
        char buf[128];
        if (next_opt(argc, argv, &i, &name, &value, buf, sizeof buf, 0) != 0) {
            cfg_bad = 1;
            break;
        }
        if (!strcmp(name, "config"))
            continue;
        if (flsim_config_set(&cfg, name, value, err, sizeof err) != FL_OK) {
            complain("fl_sim: %s\n", err);
            cfg_bad = 1;
            break;
        }
        given_again(&given, name, value);
    }
    if (!cfg_bad)
        given_said(&given, "fl_sim");
    if (!cfg_bad && flsim_config_validate(&cfg, err, sizeof err) != FL_OK) {
        complain("fl_sim: %s\n", err);
        cfg_bad = 1;
    }
    /* The files the run reads, as absolute paths: what resume.fls and summary.json record then
     * means the same from any directory, and --resume from another one is not refused for a
     * relative --trace or --config. */
    if (!cfg_bad && flsim_config_paths_absolute(&cfg, err, sizeof err) != FL_OK) {
        complain("fl_sim: %s\n", err);
        cfg_bad = 1;
    }
    const int cfg_ok = flsim_ranks_all_ok(!cfg_bad);
    if (!cfg_ok)
        complaints_said();
    g_hold = 0;
    if (!cfg_ok)
        return 2;
    if (g_rank == 0) {
        warn_inert(&cfg, &given);
        warn_target_at_end(&cfg);
        warn_threads("fl_sim", cfg.threads);
        note_blas("fl_sim", cfg.quiet);
    }
    progress pr = {cfg.progress == 1 || (cfg.progress == -1 && bar_auto()),
                   cfg.rounds, cfg.quiet, cfg.out[0] && g_rank == 0 ? cfg.out : NULL, NULL, 0, 0,
                   0.0, cfg.resume};
    size_t out_made = 0; /* what flsim_out_prepare created: removed again if nothing is written */
    int prep_bad = pr.out && flsim_out_prepare(cfg.out, cfg.checkpoint_every != 0, &out_made, err,
                                               sizeof err) != FL_OK;
    if (prep_bad)
        say_msg("fl_sim: --out: %s\n", err);
    /* One run at a time in DIR (flsim_out_lock), held until this process ends. */
    int lock_fd = -1;
    if (pr.out && !prep_bad && flsim_out_lock(cfg.out, &lock_fd, err, sizeof err) != FL_OK) {
        say_msg("fl_sim: %s\n", err);
        prep_bad = 1;
    }
    (void)lock_fd; /* held until this process ends */
    /* Rank 0 alone prepares DIR: the other ranks must not go on into the run's exchanges,
     * where they would wait for rank 0 forever. */
    if (!flsim_ranks_all_ok(!prep_bad))
        return 1;
    /* Not under MPI with several ranks: each clears the flag at its own first round, so a signal
     * passed to all of them as round 1 ends could end one rank while rank 0 has begun writing;
     * there the ranks agree on the stop after the round (flsim_run), as from round 2 on. */
    if (pr.out) {
        memcpy(g_out_buf, cfg.out, sizeof g_out_buf);
        g_out_made = out_made;
        g_out_dir = g_out_buf;
    }
    int resuming = 0; /* --resume with a file to resume from (rank 0) */
    if (pr.out && cfg.resume) { /* said under --quiet too, as the resume itself */
        char rf[FLSIM_STR + 32];
        snprintf(rf, sizeof rf, "%s/%s", cfg.out, FLSIM_RESUME_FILE);
        resuming = access(rf, F_OK) == 0 || errno != ENOENT;
        if (!resuming)
            say_msg("fl_sim: --resume: %s holds no %s (none written yet, or another "
                    "DIR?): a fresh start\n", cfg.out, FLSIM_RESUME_FILE);
    }
    g_quit_now = g_ranks == 1;
    catch_stop_signals();
    const fl_logger lg = {log_below_bar, stderr, FL_LOG_WARN};
    flsim_result res;
    flsim_round_record *recs = NULL;
    size_t n = 0;
    if (pr.bar && !pr.quiet && g_rank == 0) {
        /* Until the first round is over (loading, the population, a round of a large model can
         * take a while) the line says what is going on; the first round's line replaces it. */
        char line[600];
        if (resuming)
            snprintf(line, sizeof line, "0/%u  loading %.200s, then resuming %.200s ...",
                     cfg.rounds, cfg.dataset, cfg.out);
        else
            snprintf(line, sizeof line, "0/%u  loading %.200s, then round 1 of %u clients ...",
                     cfg.rounds, cfg.dataset, cfg.per_round);
        bar_line(line);
    }
    const fl_status st = flsim_run(&cfg, NULL, &lg, on_round, &pr, &res, &recs, &n, err, sizeof err);
    /* rounds.csv complete on disk: the end writes only the summary beside it */
    int log_ok = 0;
    if (pr.log) {
        const fl_status fs = flsim_rounds_finish(pr.log, cfg.out);
        log_ok = fs == FL_OK && !pr.log_failed;
        if (fs == FL_ERR_NOT_FOUND && (st == FL_OK || st == FL_ERR_CANCELLED) && g_rank == 0)
            say_msg("fl_sim: %s/rounds.csv was deleted or replaced during the run: it is "
                    "written again whole\n", cfg.out);
    }
    if (pr.bar && !cfg.quiet && g_rank == 0)
        fputc('\n', stderr);
    if (st != FL_OK && st != FL_ERR_CANCELLED) {
        if (pr.out)
            flsim_out_unprepare(cfg.out, out_made); /* only what is still empty */
        say_failure("fl_sim", res.err_agreed, err[0] ? err : fl_strerror(st), 1);
        free(recs);
        return 1;
    }
    if (st == FL_ERR_CANCELLED && pr.dropped) {
        if (pr.out)
            flsim_out_unprepare(cfg.out, out_made);
        if (g_rank == 0)
            say_msg("fl_sim: interrupted before the first round was done: nothing written%s%s%s\n",
                    cfg.out[0] ? " (" : "", cfg.out[0] ? cfg.out : "", cfg.out[0] ? " as it was)" : "");
        free(recs);
        return 128 + (g_stop ? (int)g_stop : SIGINT);
    }
    int rc = 0;
    if (g_rank == 0) {
        char hex[2 * FL_SHA256_LEN + 1];
        fl_sha256_hex(hex, res.model_sha256);
        printf("rounds %u final_test_acc %.4f virtual_time_s %.6g bytes_down %llu bytes_up %llu "
               "wall_s %.2f blas %s ranks %d model_sha256 %s\n",
               res.rounds, res.final_test_acc, res.virtual_time_s,
               (unsigned long long)res.bytes_down, (unsigned long long)res.bytes_up, res.wall_s,
               res.blas, res.mpi_ranks, hex);
        if (cfg.target_acc > 0) {
            if (res.target_reached)
                printf("target %.6g reached after %u rounds, %.1f virtual s, %llu bytes down, %llu up\n",
                       cfg.target_acc, res.rounds_to_target, res.vtime_to_target,
                       (unsigned long long)res.bytes_down_to_target,
                       (unsigned long long)res.bytes_up_to_target);
            else
                printf("target %.6g not reached\n", cfg.target_acc);
        }
        fflush(stdout); /* the warning below comes after the results it is about */
        warn_no_update("fl_sim", &res, cfg.lr);
        /* An interrupted run's last round is evaluated after its line went out: rounds.csv is
         * written again whole (atomically), as a run of that many rounds would have it. */
        char werr[3000] = "";
        const fl_status ws =
            !cfg.out[0]                  ? FL_OK
            : log_ok && !res.interrupted ? flsim_write_summary(cfg.out, &cfg, &res, werr, sizeof werr)
                                         : flsim_write_outputs(cfg.out, &cfg, &res, recs, n, werr,
                                                               sizeof werr);
        if (ws != FL_OK) {
            say_msg("fl_sim: %s\n", werr[0] ? werr : fl_strerror(ws));
            rc = 1;
        }
    }
    if (st == FL_OK && g_stop && g_rank == 0)
        /* The stop came in the last round or after it: nothing was cut, yet the process ends
         * by the signal (main), so that a script's loop stops too. */
        say_msg("fl_sim: the stop came after the last round had started: the run is complete "
                "(\"interrupted\": false)%s%s\n", cfg.out[0] ? ", its results in " : "",
                cfg.out[0] ? cfg.out : "");
    if (st == FL_ERR_CANCELLED) {
        if (g_rank == 0)
            say_msg("fl_sim: interrupted: %s%s%s%s\n", err,
                    cfg.out[0] ? "; the results of those rounds are in " : "",
                    cfg.out[0] ? cfg.out : "",
                    cfg.out[0] && cfg.checkpoint_every
                        ? " (the same command with --resume 1 goes on from there)" : "");
        if (rc == 0)
            rc = 128 + (g_stop ? (int)g_stop : SIGINT);
    }
    free(recs);
    return rc;
}

int main(int argc, char **argv)
{
    /* Before anything opens a file (MPI too): a closed stderr (`fl_sim ... >&- 2>&-`) took the
     * number of a file the run opened, DIR/rounds.csv, and the run's messages went into it. */
    if (fl_std_fds_open() != 0)
        return 1; /* nowhere to say it: stderr is what is missing */
#ifdef FLSIM_HAVE_MPI
    /* Only under a launcher: a plain run must not need an MPI runtime. */
    const int under_mpi = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
    if (under_mpi) {
        int provided = 0;
        MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_ranks);
    }
#endif
    /* Every round allocates and frees model-sized buffers (tasks, updates, client cores): keep
     * them on the heap instead of fresh zeroed mmap pages each time (glibc). */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    const int rc = run_main(argc, argv);
#ifdef FLSIM_HAVE_MPI
    if (under_mpi) {
        int rcs = rc;
        MPI_Allreduce(MPI_IN_PLACE, &rcs, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        MPI_Finalize();
        return rcs; /* mpirun reports a rank killed by a signal as a crash: the status is said */
    }
#endif
    /* A run or experiment that took a stop signal ends killed by it once its results are
     * written, not with exit(128 + N): a shell that gets Ctrl-C too goes on with its script when
     * the child exits normally, since the child then handled the Ctrl-C (bash's wait-and-
     * cooperative-exit). Until 2026-12-08 `for s in 1 2 3; do fl_sim --seed $s ...; done` ran
     * seeds 2 and 3 after a Ctrl-C in seed 1. The status a shell reads is the same 128 + N. */
    const int sig = atomic_load(&g_stop);
    if (sig && (rc == 0 || rc == 128 + sig)) {
        fflush(NULL);
        fl_sig_die(sig);
    }
    return rc;
}
