/* main.c: the fl_server command line. Everything but argument handling, signals and printing lives
 * in libflserver (include/fls.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include "fl_fs.h"
#include "fl_sig.h"
#include "fls.h"

enum { EXIT_DONE = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_STARTUP = 3 };

/* SIGTERM, SIGINT and SIGHUP are taken on a thread of their own (fl_sig.h), which calls
 * on_signal with g_sig_mu held; main holds it while it changes what follows. The running server,
 * once fls_server_new returned it: on_signal forwards to it. Before that (start-up: keys, the
 * evaluation set, the checkpoint to resume, the bind) it only notes the signal, and main acts on
 * it once the server exists. After fls_server_run returned (the shutdown: fls_server_free waits
 * for a cancelled evaluation's current batch and closes the sockets) g_shutdown is set, with the
 * status main will exit with. g_check: fl_server --check runs its checks, which a stop ends at
 * once. (A handler read g_server on whatever thread took the signal, a worker's too, and could
 * stop a server that main was freeing meanwhile.) */
static pthread_mutex_t g_sig_mu = PTHREAD_MUTEX_INITIALIZER;
static fls_server *g_server;
static int g_startup_stop, g_startup_hup, g_check;
static int g_shutdown, g_shutdown_said, g_shutdown_exit;

static void say_from_handler(const char *msg, size_t len)
{
    if (write(STDERR_FILENO, msg, len) < 0) {
        /* nowhere to say it */
    }
}

static void on_signal_locked(int sig)
{
    fls_server *s = g_server;
    if (g_check && sig != SIGHUP)
        fl_sig_die(sig); /* the checks make nothing: ended at once, their status not a pass */
    if (sig == SIGHUP) {
        if (s)
            fls_server_reload(s);
        else
            g_startup_hup = 1;
    } else if (s) {
        fls_server_stop(s);
    } else if (g_shutdown) {
        /* The run is over (its checkpoint written, when one was due and could be): what is
         * left is the wait for a cancelled evaluation's batch (eval.batch samples: it may take
         * a while) and the sockets' close. The first signal says so; a second one ends the
         * process at once, with the status the run has: nothing a resume needs is lost, only
         * the batch's result (dropped anyway), the Byes still queued and the exit lines. */
        if (!g_shutdown_said) {
            g_shutdown_said = 1;
            static const char msg[] = "fl_server: already stopping: the run is over, closing "
                                      "(waiting for a cancelled evaluation's current batch, if "
                                      "any, and the last messages; again to exit now)\n";
            say_from_handler(msg, sizeof msg - 1);
        } else {
            static const char msg[] = "fl_server: exiting now, without waiting for the shutdown "
                                      "to end\n";
            say_from_handler(msg, sizeof msg - 1);
            _exit(g_shutdown_exit);
        }
    } else if (!g_startup_stop) {
        g_startup_stop = 1;
        static const char msg[] = "fl_server: stopping once start-up is over (again to stop now)\n";
        say_from_handler(msg, sizeof msg - 1);
    } else {
        /* A second one during start-up: a start-up that hangs (a FIFO, a dead NFS mount) must
         * still be stoppable. The default action ends the process at once. */
        fl_sig_die(sig);
    }
}

static void on_signal(int sig)
{
    pthread_mutex_lock(&g_sig_mu);
    on_signal_locked(sig);
    pthread_mutex_unlock(&g_sig_mu);
}

static const char *LOG_NAMES[] = {"debug", "info", "warn", "error"};

/* The library filters its own lines by run.log_level; main's lines go through log_main. */
static fls_log_level g_log_min = FLS_LOG_INFO;

/* The last error the library logged while the run went on (its reactor logs from the thread in
 * fls_server_run): the exit line of a run that failed repeats it, beside the bare status
 * ("input/output error" for a checkpoint that cannot be written). */
static int g_running;
static char g_last_error[512];

static void log_stderr(void *user, fls_log_level level, const char *msg)
{
    (void)user;
    if (level == FLS_LOG_ERROR && g_running)
        snprintf(g_last_error, sizeof g_last_error, "%s", msg);
    const char *const *names = LOG_NAMES;
    char ts[32];
    const time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s fl_server %s: %s\n", ts, names[(unsigned)level < 4 ? level : 3], msg);
}

static void log_main(fls_log_level level, const char *msg)
{
    if (level >= g_log_min)
        log_stderr(NULL, level, msg);
}

/* Every client connection holds a file descriptor, and the soft RLIMIT_NOFILE is often 1024
 * (systemd's default for services, most shells') while the hard limit is far higher: the daemon
 * raises its soft limit to the hard one, as servers that poll() rather than select() may (the
 * library then warns if even that is below what the configuration needs). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max)
        return;
    const rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        /* an unlimited hard limit is above the kernel's fs.nr_open: its default instead */
        rl.rlim_cur = 1048576;
        if (rl.rlim_max != RLIM_INFINITY || rl.rlim_cur <= was ||
            setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "file descriptor limit raised from %llu to %llu (connections need "
             "one each)", (unsigned long long)was, (unsigned long long)rl.rlim_cur);
    log_main(FLS_LOG_INFO, msg);
}

/* run.metrics "-": the lines go to stdout, written here (the library prints nothing). A line that
 * cannot be written (a closed pipe, a full disk behind a redirection) is said as the library says
 * it for a file: once until a line gets through again, the losses counted, and in all at exit. */
static struct {
    unsigned long long lost, lost_from, lost_all;
} g_stdout_metrics;

static void on_round(void *user, const char *json, const char *summary)
{
    (void)summary; /* already logged by the library at info level */
    if (!user)
        return;
    unsigned long long round = 0;
    if (sscanf(json, "{\"round\":%llu", &round) != 1)
        round = 0;
    errno = 0;
    const int bad = fprintf(stdout, "%s\n", json) < 0 || fflush(stdout) != 0;
    const int e = errno;
    clearerr(stdout);
    char msg[256];
    if (bad) {
        if (!g_stdout_metrics.lost) {
            g_stdout_metrics.lost_from = round;
            snprintf(msg, sizeof msg, "run.metrics - (stdout): %s: round %llu's line is lost",
                     e ? strerror(e) : "write error", round);
            log_main(FLS_LOG_ERROR, msg);
        }
        g_stdout_metrics.lost++;
        g_stdout_metrics.lost_all++;
    } else if (g_stdout_metrics.lost) {
        char which[64];
        if (g_stdout_metrics.lost_from + 1 == round)
            snprintf(which, sizeof which, "round %llu", round - 1);
        else
            snprintf(which, sizeof which, "rounds %llu to %llu", g_stdout_metrics.lost_from,
                     round - 1);
        snprintf(msg, sizeof msg, "run.metrics - (stdout) takes lines again from round %llu: %llu "
                 "lost (%s), %llu in all", round, g_stdout_metrics.lost, which,
                 g_stdout_metrics.lost_all);
        log_main(FLS_LOG_WARN, msg);
        g_stdout_metrics.lost = 0;
    }
}

/* The exit status of a start (or --check) that failed with st; the reason was logged. A write
 * that failed for a cause that may pass (a full disk, a quota, a device error) is no start-up
 * error for the operator: exit 1, which systemd's Restart=on-failure tries again (the unit's
 * RestartPreventExitStatus=2 3 would leave a full disk's server down for good). */
static int startup_exit(fls_status st, int check)
{
    if (st == FLS_ERR_CONFIG)
        return EXIT_USAGE;
    if (st == FLS_ERR_IO_TRANSIENT) {
        log_main(FLS_LOG_ERROR, check ? "a start now would fail on a write that may succeed later "
                                        "(a full disk, a quota, a device error): exit 1"
                                      : "the start failed on a write that may succeed later (a full "
                                        "disk, a quota, a device error): exit 1, which a "
                                        "supervisor (systemd's Restart=on-failure) tries again");
        return EXIT_RUNTIME;
    }
    return EXIT_STARTUP;
}

/* Flags that map to one key. A flag without a value sets a bool key to true. */
static const struct flag {
    const char *flag, *key;
    int boolean;
} FLAGS[] = {
    {"--endpoint", "server.endpoints", 0},
    {"--insecure", "server.insecure", 1},
    {"--secret-key", "server.secret_key_file", 0},
    {"--allow-list", "server.allow_list", 0},
    {"--arch", "model.arch", 0},
    {"--seed", "run.seed", 0},
    {"--rounds", "run.rounds", 0},
    {"--metrics", "run.metrics", 0},
    {"--log-level", "run.log_level", 0},
    {"--resume", "run.resume", 1},
    {"--clients", "round.clients", 0},
    {"--overcommit", "round.overcommit", 0},
    {"--min-clients", "round.min_clients", 0},
    {"--deadline", "round.deadline_s", 0},
    {"--policy", "policy.kind", 0},
    {"--keep", "policy.keep", 0},
    {"--down-codec", "codec.down", 0},
    {"--up-codec", "codec.up", 0},
    {"--chunk-elems", "codec.chunk_elems", 0},
    {"--optimizer", "optimizer.kind", 0},
    {"--server-lr", "optimizer.lr", 0},
    {"--epochs", "train.epochs", 0},
    {"--batch", "train.batch", 0},
    {"--lr", "train.lr", 0},
    {"--eval-dataset", "eval.dataset", 0},
    {"--eval-dir", "eval.dir", 0},
    {"--eval-every", "eval.every", 0},
    {"--eval-max-samples", "eval.max_samples", 0},
    {"--target-accuracy", "eval.target_accuracy", 0},
    {"--checkpoint", "checkpoint.path", 0},
    {"--checkpoint-every", "checkpoint.every", 0},
};
#define N_FLAGS (sizeof FLAGS / sizeof FLAGS[0])

/* Keys the flags can set, at most (fls_options_key lists 62 in 0.3.8). */
#define SETS_MAX 256

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fl_server [--config FILE] [FLAGS] [--set KEY=VALUE ...]\n"
            "       fl_server keygen DIR [NAME]     write DIR/NAME.pub and DIR/NAME.secret "
            "(NAME: server)\n"
            "       fl_server --version             print the version\n"
            "       fl_server --check [...]         run the startup checks (keys, allow-list, "
            "dataset,\n"
            "                                       checkpoint, metrics; no bind) and print the "
            "settings\n"
            "\n"
            "The fedrop federated-learning coordinator (see fl_server/README.md; installed as\n"
            "share/doc/fedrop/fl_server.md).\n"
            "Settings come from the YAML file, then from flags, in order: a later one wins.\n"
            "\n"
            "Flags:\n"
            "  --config FILE          YAML configuration (sections and keys below); one only; a\n"
            "                         file, or a pipe: --config <(envsubst < fl.yaml.in)\n"
            "  --set KEY=VALUE        set any key below\n");
    for (size_t i = 0; i < N_FLAGS; i++)
        fprintf(f, "  %-22s sets %s%s\n", FLAGS[i].flag, FLAGS[i].key,
                FLAGS[i].boolean ? " to true" : " (takes a value)");
    fprintf(f, "  --help                 this text\n\nKeys (YAML: section:\\n  key: value):\n");
    const char *key, *type, *def, *help;
    for (size_t i = 0; fls_options_key(i, &key, &type, &def, &help); i++)
        fprintf(f, "  %-26s %s (default: %s)\n      %s\n", key, type, def[0] ? def : "''", help);
    fprintf(f,
            "\nSignals: SIGTERM/SIGINT stop (a checkpoint when checkpoint.path is set, Bye "
            "\"restart\", exit 0);\n"
            "         during an evaluation the stop waits for it (its round ends, and is\n"
            "         checkpointed); a second one cancels it and drops the round.\n"
            "         After the run (a cancelled evaluation's batch, the sockets' close): one\n"
            "         is said, the next exits at once with the run's status.\n"
            "         SIGHUP re-reads the allow-list and reopens run.metrics.\n"
            "         During start-up: SIGTERM/SIGINT exit 0 once it is over (no round, no "
            "checkpoint),\n"
            "         a second one at once; SIGHUP waits.\n"
            "Exit codes: 0 run done (Bye \"done\" sent) or stopped by a signal (after its "
            "checkpoint when\n"
            "            checkpoint.path is set);\n"
            "            1 failure while running (e.g. a checkpoint could not be written), or "
            "a start-up\n"
            "            write that may succeed later (a full disk, a quota, a device error: "
            "ENOSPC,\n"
            "            EDQUOT, EIO), which systemd's Restart=on-failure tries again;\n"
            "            2 usage or configuration error; 3 startup failure (keys, allow-list, "
            "dataset,\n"
            "            checkpoint to resume, checkpoint or metrics path not writable, bind).\n");
}

static void keygen_usage(FILE *f)
{
    fprintf(f, "usage: fl_server keygen DIR [NAME]\n"
               "\n"
               "Writes a CURVE key pair: DIR/NAME.pub (the public key, for the other side) and\n"
               "DIR/NAME.secret (mode 0600, never overwritten). NAME defaults to server; DIR is\n"
               "made (mode 0700) if it is missing (its parent must exist).\n"
               "DIR and NAME cannot start with '-' (exit 2):\n"
               "write ./-DIR for a directory whose name does.\n"
               "Exit status: 0 written, 1 not written (a file of the pair exists, or I/O),\n"
               "2 bad usage.\n");
}

static int keygen(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            keygen_usage(stdout);
            return EXIT_DONE;
        }
    }
    /* An option keygen does not know is no directory or key name to create. */
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] == '-') {
            fprintf(stderr, "fl_server keygen: unknown option '%s' (DIR and NAME cannot start "
                            "with '-'; see fl_server keygen --help)\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (argc < 3 || argc > 4) {
        keygen_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argc == 4 ? argv[3] : "server";
    char err[512] = "";
    const fls_status st = fls_keygen(argv[2], name, err, sizeof err);
    if (st != FLS_OK) {
        fprintf(stderr, "fl_server keygen: %s\n", err[0] ? err : fls_strerror(st));
        return st == FLS_ERR_INVALID_ARG ? EXIT_USAGE : EXIT_RUNTIME;
    }
    printf("wrote %s/%s.pub and %s/%s.secret (the secret key, mode 0600)\n", argv[2], name, argv[2],
           name);
    return EXIT_DONE;
}

int main(int argc, char **argv)
{
    /* Before anything opens a file: until 2026-12-07 CHECKPOINT.lock, the first, took a closed
     * stderr's number and the log (or stdout's, and the metrics of `run.metrics: "-"`). */
    if (fl_std_fds_open() != 0)
        return EXIT_RUNTIME; /* nowhere to say it: stderr is what is missing */
    /* From the first moment, as the daemon has it once it runs (a write to a gone peer or log
     * reader fails with EPIPE, said or not, and never ends the daemon): --help, --version and
     * --check into a reader that went away (`fl_server --help | grep -q usage`, grep gone before
     * the help's end) ended with SIGPIPE's default action, exit 141, about every other time. */
    signal(SIGPIPE, SIG_IGN);
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("fl_server %s\n", FEDROP_VERSION);
        return EXIT_DONE;
    }
    if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
        return keygen(argc, argv);
    /* Before anything slow, and before any thread: a SIGTERM or SIGHUP while the evaluation set
     * loads must not kill the daemon without a word. Taken on a thread of their own, they do not
     * interrupt a start-up file being read (a FIFO, a slow disk). */
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGHUP);
    const int se = fl_sig_take(&stops, on_signal);
    if (se != 0) {
        fprintf(stderr, "fl_server: cannot start the thread that takes signals: %s\n",
                strerror(se));
        return EXIT_RUNTIME;
    }
    fls_options *o = NULL;
    if (fls_options_new(&o) != FLS_OK) {
        fprintf(stderr, "fl_server: out of memory\n");
        return EXIT_RUNTIME;
    }
    char err[1024];
    int check = 0;
    /* --help wherever it is: before the file is read, whose error ("fl.yaml: No such file or
     * directory", exit 2) used to stand in for the help when --config came first */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            fls_options_free(o);
            return EXIT_DONE;
        }
    }
    /* The file first, so that every flag overrides it whatever the order on the line. One file,
     * as fl_sim takes: a second would be laid over the first key by key, silently, its order on
     * the line deciding. */
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                fprintf(stderr, "fl_server: --config needs a FILE%s%s%s\n",
                        i + 1 < argc ? " (the next argument, " : "", i + 1 < argc ? argv[i + 1] : "",
                        i + 1 < argc ? ", is a flag)" : "");
                fls_options_free(o);
                return EXIT_USAGE;
            }
            if (config) {
                fprintf(stderr, "fl_server: --config given twice (%s, then %s): a run reads one "
                        "configuration file; give other settings as flags (--set KEY=VALUE)\n",
                        config, argv[i + 1]);
                fls_options_free(o);
                return EXIT_USAGE;
            }
            config = argv[i + 1];
            if (fls_options_load_file(o, argv[++i], err, sizeof err) != FLS_OK) {
                fprintf(stderr, "fl_server: %s\n", err);
                fls_options_free(o);
                return EXIT_USAGE;
            }
        }
    }
    int endpoints_from_flags = 0;
    /* Each key the flags set, with the flag that set it last: a key set again (`--rounds 3 ...
     * --rounds 5`, or `--set run.rounds=5` after it) is said once the line is read, naming the
     * value that counts, as fl_sim and fl_client say it (until 2026-12-08 the last won without a
     * word). --endpoint is a list, each one added; the same flag and value again chose nothing. */
    static struct set_by {
        char key[128], origin[256];
        int again;
    } set[SETS_MAX]; /* every key a flag may set, at most: they are fls_options_key's */
    size_t n_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strcmp(a, "--check") == 0) {
            check = 1;
            continue;
        }
        const char *key = NULL, *val = NULL;
        /* the flag as typed ("--set model.arch=x", "--arch x", "--insecure"): where the value
         * came from, in this error and in those of the checks made once every flag is in */
        char origin[256];
        if (strcmp(a, "--set") == 0) {
            if (i + 1 >= argc || !strchr(argv[i + 1], '=')) {
                fprintf(stderr, "fl_server: --set needs KEY=VALUE\n");
                fls_options_free(o);
                return EXIT_USAGE;
            }
            static char kbuf[128];
            const char *kv = argv[++i];
            const size_t kl = (size_t)(strchr(kv, '=') - kv);
            snprintf(kbuf, sizeof kbuf, "%.*s", (int)(kl < 127 ? kl : 127), kv);
            key = kbuf;
            val = kv + kl + 1;
            snprintf(origin, sizeof origin, "%s %s", a, kv);
        } else {
            const struct flag *f = NULL;
            for (size_t k = 0; k < N_FLAGS && !f; k++)
                if (strcmp(a, FLAGS[k].flag) == 0)
                    f = &FLAGS[k];
            /* "--rounds=5": the flag is known, its value goes after a blank */
            const char *eq = !f && strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
            if (eq) {
                const size_t n = (size_t)(eq - a);
                const struct flag *g = NULL;
                for (size_t k = 0; k < N_FLAGS && !g; k++)
                    if (strlen(FLAGS[k].flag) == n && strncmp(a, FLAGS[k].flag, n) == 0)
                        g = &FLAGS[k];
                const int takes = (g && !g->boolean) || (n == 5 && strncmp(a, "--set", 5) == 0) ||
                                  (n == 8 && strncmp(a, "--config", 8) == 0);
                if (takes || g) {
                    if (takes)
                        fprintf(stderr, "fl_server: unknown argument '%s': write %.*s %s (the "
                                "value after a blank, not '=')\n", a, (int)n, a, eq + 1);
                    else
                        fprintf(stderr, "fl_server: unknown argument '%s': %.*s takes no value "
                                "(or write --set %s=%s)\n", a, (int)n, a, g->key, eq + 1);
                    fls_options_free(o);
                    return EXIT_USAGE;
                }
            }
            if (!f) {
                fprintf(stderr, "fl_server: unknown argument '%s' (see --help)\n", a);
                fls_options_free(o);
                return EXIT_USAGE;
            }
            key = f->key;
            if (f->boolean) {
                val = "true";
            } else if (i + 1 >= argc) {
                fprintf(stderr, "fl_server: %s needs a value\n", a);
                fls_options_free(o);
                return EXIT_USAGE;
            } else if (strncmp(argv[i + 1], "--", 2) == 0) {
                /* "--metrics --resume": the value left out, the next flag is not taken for it
                 * (a metrics file named --resume, and a run started afresh over the checkpoint) */
                fprintf(stderr, "fl_server: %s needs a value, and the next argument, %s, is a "
                        "flag (a path that starts with '-' can be given as ./%s)\n", a,
                        argv[i + 1], argv[i + 1]);
                fls_options_free(o);
                return EXIT_USAGE;
            } else {
                val = argv[++i];
            }
            snprintf(origin, sizeof origin, "%s%s%s", a, f->boolean ? "" : " ",
                     f->boolean ? "" : val);
            if (strcmp(key, "server.endpoints") == 0) {
                /* --endpoint may be repeated: the flags together replace the file's list */
                char cur[4096] = "";
                if (endpoints_from_flags++)
                    fls_options_get(o, key, cur, sizeof cur);
                char joined[4400];
                snprintf(joined, sizeof joined, "%s%s%s", cur, cur[0] ? "," : "", val);
                if (fls_options_set_from(o, key, joined, origin, err, sizeof err) != FLS_OK) {
                    fprintf(stderr, "fl_server: %s: %s\n", origin, err);
                    fls_options_free(o);
                    return EXIT_USAGE;
                }
                continue;
            }
        }
        if (fls_options_set_from(o, key, val, origin, err, sizeof err) != FLS_OK) {
            fprintf(stderr, "fl_server: %s: %s\n", origin, err);
            fls_options_free(o);
            return EXIT_USAGE;
        }
        size_t k = 0;
        while (k < n_set && strcmp(set[k].key, key) != 0)
            k++;
        if (k == n_set && n_set < SETS_MAX)
            snprintf(set[n_set++].key, sizeof set->key, "%s", key);
        else if (k < n_set && strcmp(set[k].origin, origin) != 0) /* --insecure twice: no choice */
            set[k].again = 1;
        if (k < n_set)
            snprintf(set[k].origin, sizeof set->origin, "%s", origin);
    }
    for (size_t k = 0; k < n_set; k++)
        if (set[k].again)
            fprintf(stderr, "fl_server: warning: %s is given more than once: the last, '%s', is "
                    "used\n", set[k].key, set[k].origin);
    if (fls_options_validate(o, err, sizeof err) != FLS_OK) {
        fprintf(stderr, "fl_server: %s\n", err);
        fls_options_free(o);
        return EXIT_USAGE;
    }
    char metrics[1024] = "", level[16] = "";
    fls_options_get(o, "run.metrics", metrics, sizeof metrics);
    fls_options_get(o, "run.log_level", level, sizeof level);
    for (int l = FLS_LOG_DEBUG; l <= FLS_LOG_ERROR; l++)
        if (strcmp(level, LOG_NAMES[l]) == 0)
            g_log_min = (fls_log_level)l;
    fls_host host = {0};
    host.log = log_stderr;
    if (check) {
        /* the daemon's own startup checks, short of binding and training. They make nothing: a
         * stop ends them at once (the default action), and the status says they did not pass. */
        pthread_mutex_lock(&g_sig_mu);
        g_check = 1;
        pthread_mutex_unlock(&g_sig_mu);
        const fls_status cs = fls_server_check(o, &host);
        if (cs != FLS_OK) {
            fls_options_free(o); /* the reason was logged */
            return startup_exit(cs, 1);
        }
        const char *key;
        char val[4096], eff[4096], note[256];
        for (size_t i = 0; fls_options_key(i, &key, NULL, NULL, NULL); i++) {
            fls_options_get(o, key, val, sizeof val);
            fls_options_get_effective(o, key, eff, sizeof eff);
            fls_options_get_unset_note(o, key, note, sizeof note);
            /* the value the server applies, and the one given when the server adjusts it, or
             * whose default stands in for a key left unset (optimizer.lr: it printed blank) */
            if (note[0])
                printf("%s = %s (unset: %s)\n", key, eff, note);
            else if (strcmp(val, eff) != 0)
                printf("%s = %s (given %s: raised at start, see --help)\n", key, eff, val);
            else
                printf("%s = %s\n", key, val);
        }
        fls_options_free(o);
        return EXIT_DONE;
    }

    host.on_round = on_round;
    host.round_user = strcmp(metrics, "-") == 0 ? (void *)stdout : NULL;
    /* a file size limit (ulimit -f): a checkpoint or metrics write fails with EFBIG and is said
     * as any failed write, instead of SIGXFSZ killing the daemon mid-write */
    signal(SIGXFSZ, SIG_IGN);
    raise_nofile();
    fls_server *srv = NULL;
    const fls_status st = fls_server_new(o, &host, &srv);
    fls_options_free(o);
    if (st != FLS_OK) {
        /* the reason was logged */
        return startup_exit(st, 0);
    }
    pthread_mutex_lock(&g_sig_mu);
    g_server = srv; /* from here on on_signal reaches it; a signal before is in the flags */
    const int startup_stop = g_startup_stop, startup_hup = g_startup_hup;
    if (startup_stop)
        g_server = NULL;
    pthread_mutex_unlock(&g_sig_mu);
    if (startup_stop) {
        log_main(FLS_LOG_INFO, "stopped during start-up: no round run, no checkpoint written");
        fls_server_free(srv);
        return EXIT_DONE;
    }
    if (startup_hup) {
        log_main(FLS_LOG_INFO, "SIGHUP during start-up: acted on now (allow-list, run.metrics)");
        fls_server_reload(srv);
    }

    g_running = 1;
    const fls_status rs = fls_server_run(srv);
    g_running = 0;
    fls_server_stats stats;
    fls_server_stats_get(srv, &stats);
    log_main(FLS_LOG_INFO, rs == FLS_OK ? "exiting: run done" : "exiting");
    fprintf(stderr,
            "fl_server: %llu round%s, %llu message%s in, %llu out, %llu malformed, %llu refused, "
            "%llu auth refused, %llu checkpoint%s; %u client id%s bound, %llu client%s in the "
            "round engine; at most %u connection%s open at once, %llu closed idle, %llu over "
            "the limit\n",
            (unsigned long long)stats.rounds_done, stats.rounds_done == 1 ? "" : "s",
            (unsigned long long)stats.msgs_in, stats.msgs_in == 1 ? "" : "s",
            (unsigned long long)stats.msgs_out, (unsigned long long)stats.malformed,
            (unsigned long long)stats.refused, (unsigned long long)stats.auth_refused,
            (unsigned long long)stats.checkpoints, stats.checkpoints == 1 ? "" : "s", stats.ids,
            stats.ids == 1 ? "" : "s", (unsigned long long)stats.engine_clients,
            stats.engine_clients == 1 ? "" : "s", stats.connections_peak,
            stats.connections_peak == 1 ? "" : "s",
            (unsigned long long)stats.idle_closed, (unsigned long long)stats.over_limit_closed);
    if (g_stdout_metrics.lost_all) {
        char msg[192], tail[96] = "";
        if (g_stdout_metrics.lost)
            snprintf(tail, sizeof tail, ", the last %llu from round %llu on",
                     g_stdout_metrics.lost, g_stdout_metrics.lost_from);
        snprintf(msg, sizeof msg, "run.metrics - (stdout): %llu line%s lost in all%s",
                 g_stdout_metrics.lost_all, g_stdout_metrics.lost_all == 1 ? "" : "s", tail);
        log_main(FLS_LOG_WARN, msg);
    }
    /* the server away from on_signal, which then finds the shutdown, not start-up */
    pthread_mutex_lock(&g_sig_mu);
    g_shutdown_exit = rs == FLS_OK || rs == FLS_ERR_CANCELLED ? EXIT_DONE : EXIT_RUNTIME;
    g_shutdown = 1;
    g_server = NULL;
    pthread_mutex_unlock(&g_sig_mu);
    fls_server_free(srv);
    if (rs == FLS_OK || rs == FLS_ERR_CANCELLED)
        return EXIT_DONE;
    if (g_last_error[0])
        fprintf(stderr, "fl_server: stopped: %s (the last error logged: %s)\n", fls_strerror(rs),
                g_last_error);
    else
        fprintf(stderr, "fl_server: %s\n", fls_strerror(rs));
    return EXIT_RUNTIME;
}
