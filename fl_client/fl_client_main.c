/* fl_client: a fedrop client on a partition of a dataset, over libflclient.
 *
 *   fl_client --server tcp://127.0.0.1:5555 --server-key keys/server.pub --key keys/c3.secret \
 *             --dataset fashion-mnist --partition dirichlet:0.5 --client-index 3 --num-clients 100
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fl_endpoint.h"
#include "fl_fs.h"
#include "fl_keyfile.h"
#include "fl_sig.h"
#include "flc.h"
#include "flm_blas.h"
#include "flm_data.h"
#include "flp_wire.h"

/* The client, once made: a stop signal stops it (flc_client_run then says Bye and returns).
 * g_phase: 0 start-up, 1 running (g_client set), 2 run over (being freed: nothing to do). The
 * signals are taken on a thread of their own (fl_sig.h), which calls on_signal with g_sig_mu
 * held; main holds it while it changes these. (A handler read them on whatever thread took the
 * signal, the training thread's too, and could stop a client that main was freeing meanwhile.) */
static pthread_mutex_t g_sig_mu = PTHREAD_MUTEX_INITIALIZER;
static flc_client *g_client;
static int g_phase;

static void set_phase(int phase, flc_client *c)
{
    pthread_mutex_lock(&g_sig_mu);
    g_phase = phase;
    g_client = c;
    pthread_mutex_unlock(&g_sig_mu);
}

/* SIGPIPE is raised on the thread whose write found the pipe closed, not taken by the signal
 * thread: its handler passes it on to that thread as a SIGTERM, which stops the client the same
 * way. kill(2) is async-signal-safe. */
static void on_sigpipe(int sig)
{
    (void)sig;
    /* stderr is gone: the lines still to come fail with EPIPE instead of raising it again */
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, NULL);
    kill(getpid(), SIGTERM);
}

static void on_signal(int sig)
{
    (void)sig;
    pthread_mutex_lock(&g_sig_mu);
    if (g_phase == 1)
        flc_client_stop(g_client);
    if (g_phase != 0) {
        pthread_mutex_unlock(&g_sig_mu);
        return;
    }
    /* Start-up (the key files, the dataset: a slow disk, a FIFO): nothing connected and nothing
     * to save, so it ends here, with the status --help gives a stop (0), and says so. */
    static const char msg[] = "fl_client: stopped during start-up\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* nowhere to say it */
    }
    _exit(0);
}

/* An unsigned count (--seed, --partition-seed, --memory-bytes): strtoull, except that a sign is
 * refused (*end left on it: "not a number"), where strtoull takes "-1" (or " -5", after blanks) for
 * 2^64 - 1 (2^64 - 5): a seed or a limit of 16 EiB that nobody gave. */
static unsigned long long unsigned_of(const char *text, char **end)
{
    const unsigned long long v = strtoull(text, end, 10);
    if (strchr(text, '-'))
        *end = (char *)"-";
    return v;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: fl_client --server ENDPOINT [options]\n"
"       fl_client --version\n"
"\n"
"Joins a fedrop server, trains the submodels it sends on this client's partition of a dataset,\n"
"and uploads the compressed updates, until the server ends the run.\n"
"\n"
"Connection:\n"
"  --server EP            server endpoint, e.g. tcp://127.0.0.1:5555 or ipc:///tmp/fl.sock (required)\n"
"  --server-key FILE      the server's CURVE public key file (fl_server keygen DIR writes DIR/server.pub)\n"
"  --key FILE             this client's CURVE secret key file (DIR/NAME.secret); its public key must be\n"
"                         on the server's allow-list\n"
"  --insecure             no encryption (only against a server started with --insecure)\n"
"  --id ID                client id (default: client-<index>)\n"
"  --heartbeat-ms N       a Heartbeat after N ms without sending anything (default 1000); keep it\n"
"                         well under the server's server.liveness_ms, which drops a silent client\n"
"  --liveness-ms N        the server is taken for gone after N ms without a word from it, and\n"
"                         the client reconnects (default 10000; above --heartbeat-ms, and\n"
"                         several times the server's server.heartbeat_ms, 1000 by default:\n"
"                         its Heartbeats are what an idle client hears)\n"
"\n"
"Data (the built-in CPU trainer):\n"
"  --dataset SPEC         fashion-mnist | mnist | idx:IMAGES,LABELS | femnist:PATH | shakespeare:PATH |\n"
"                         synth-images:N:CxHxW:CLASSES[:SIGMA] | synth-tokens:N:T:VOCAB[:NOISE]\n"
"                         (default fashion-mnist; the train split)\n"
"  --data-dir DIR         where fashion-mnist / mnist live: DIR/<name> or DIR,\n"
"                         the first that holds it (default $FEDROP_DATA_DIR, read\n"
"                         the same way, else /usr/share/datasets/<name>)\n"
"  --partition SPEC       iid | dirichlet:ALPHA | shards:S | natural   (default iid); natural\n"
"                         takes a LEAF dataset's users (femnist, shakespeare), at least N of them\n"
"  --num-clients N        clients the dataset is partitioned over (default 1)\n"
"  --client-index K       this client's partition, 0 <= K < N (default 0)\n"
"  --partition-seed S     seed of the partition; every client of a run must use the same (default 1)\n"
"\n"
"Run:\n"
"  --max-rounds N         stop after uploading N updates, N <= %d (default 0: until the\n"
"                         server says done)\n"
"  --threads N            BLAS threads for training (default 1)\n"
"  --memory-bytes N[K|M|G] memory this client may use for a task, told to the server (default 0:\n"
"                         no limit); the server does not select it for a submodel that needs\n"
"                         more (about 16 bytes a submodel parameter, and 8 more a model\n"
"                         parameter with a top-k uplink), and such a task is refused; a\n"
"                         device it will never select is told so, and says it as it exits\n"
"  --seed S               local randomness (default: derived from the id)\n"
"  --log-level LEVEL      debug | info | warn | error (default info)\n"
"  -h, --help             this text\n"
"\n"
"Exit status: 0 the run ended (or a stop: SIGINT, SIGTERM, SIGHUP, or SIGPIPE from a closed\n"
"stderr; the server is told, with a Bye), 1 bad usage, 2 dataset error (also: the\n"
"samples do not fit the server's model, e.g. another input size or more classes),\n"
"3 refused by the server (its key not on the allow-list, or taken off it while connected;\n"
"its id registered with another key, or colliding with another id's key: use another --id;\n"
"or 3 failed handshakes with a server of the other mechanism: --insecure against a server\n"
"that runs CURVE, or keys against one that runs --insecure: known at the first\n"
"connection, whose hang-up is probed by reading the server's greeting),\n"
"4 transport error. A server with no room (server.max_clients, server.ids_per_key) is retried\n"
"with backoff; so is an endpoint where no server answers (not started yet, restarting), for\n"
"ever: the log says \"no connection to EP\" until one does; so are CURVE handshakes that the\n"
"endpoint ends without an answer (a wrong --server-key, or no server behind a load balancer;\n"
"said once: \"is --server-key the server's key?\"); and so is a server whose CURVE\n"
"handshakes fail after one succeeded: the log asks \"has the server's key changed?\".\n",
            INT_MAX);
}

/* Reads the key --server-key (want FL_KEY_PUBLIC) or --key (FL_KEY_SECRET) names, with the
 * reader fl_server uses. A file that `fl_server keygen` wrote says which kind it holds: the other
 * kind is refused here, naming the option, rather than by a handshake that fails with a hint
 * about the allow-list or the server's key. */
static int read_key(const char *path, fl_key_kind want, const char *opt,
                    char out[FL_KEY_Z85_LEN + 1])
{
    char err[512];
    fl_key_kind said = FL_KEY_ANY;
    const fl_status st = fl_key_file_read(path, want, out, &said, err, sizeof err);
    if (st == FL_OK)
        return 0;
    if (said != FL_KEY_ANY && said != want)
        fprintf(stderr, "fl_client: %s: %s is a %s key file; %s takes %s\n", opt, path,
                fl_key_kind_name(said), opt, want == FL_KEY_SECRET
                                                 ? "this client's secret key (its .secret file)"
                                                 : "the server's public key (server.pub)");
    else
        fprintf(stderr, "fl_client: %s: %s\n", opt, err[0] ? err : fl_strerror(st));
    return -1;
}

/* text as a message shows it: a control character escaped (\t, \r, \n, \xHH), so that a value
 * pasted with a CR (a Windows-edited script) is seen, and does not send the terminal back over
 * the line. Cut to fit cap. */
static const char *shown(const char *text, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && o + 5 < cap; p++) {
        const char *named = *p == '\t' ? "\\t" : *p == '\r' ? "\\r" : *p == '\n' ? "\\n" : NULL;
        if (*p >= 0x20 && *p != 0x7f)
            out[o++] = (char)*p;
        else if (named)
            o += (size_t)snprintf(out + o, cap - o, "%s", named);
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
    }
    out[o] = '\0';
    return out;
}

/* The library's lines name flc_config's fields ("is server_public_key the server's key?"): a
 * command-line user set them through flags, so the fields are said as the flags. Whole words only
 * (server.heartbeat_ms is the server's setting, kept). */
static void say_as_flags(const char *msg, char *out, size_t cap)
{
    static const char *const map[][2] = {
        {"server_public_key", "--server-key"}, {"secret_key", "--key"},
        {"memory_bytes", "--memory-bytes"},    {"heartbeat_ms", "--heartbeat-ms"},
        {"liveness_ms", "--liveness-ms"},      {"max_rounds", "--max-rounds"},
        {"client_id", "--id"}};
    size_t o = 0;
    for (const char *p = msg; *p && o + 1 < cap;) {
        /* a word of its own: not part of a name, a path or a setting (server.heartbeat_ms,
         * /tmp/heartbeat_ms.sock, client_id-x) */
        const int start = p == msg || !(isalnum((unsigned char)p[-1]) || strchr("_.-/", p[-1]));
        size_t i = 0, n = 0;
        for (; start && i < sizeof map / sizeof map[0]; i++) {
            n = strlen(map[i][0]);
            if (strncmp(p, map[i][0], n) == 0 && !isalnum((unsigned char)p[n]) &&
                (!p[n] || !strchr("_.-/", p[n])))
                break;
        }
        if (start && i < sizeof map / sizeof map[0]) {
            o += (size_t)snprintf(out + o, cap - o, "%s", map[i][1]);
            if (o >= cap)
                o = cap - 1;
            p += n;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

/* --id goes on the wire in every message (the envelope's sender, the Hello's client_id):
 * checked as flc_client_new checks it, with the other options, not once the dataset has loaded
 * (whose error a missing dataset then showed instead). 1 when it may be sent. */
static int id_ok(const char *id)
{
    if (!id[0]) {
        fprintf(stderr, "fl_client: --id is empty (leave it out for client-<index>)\n");
        return 0;
    }
    flp_msg m = flp_msg_header(FLP_HELLO, 0, id);
    m.hello.client_id = id;
    m.hello.backend = FLP_BACKEND_CPU;
    m.hello.min_version = FLP_VERSION;
    m.hello.max_version = FLP_VERSION;
    char why[FLP_ERRBUF];
    if (flp_validate(&m, NULL, why, sizeof why) == FL_OK)
        return 1;
    const char *r = strstr(why, ": "); /* the reason, after the wire field's name */
    fprintf(stderr, "fl_client: --id: %s (an id is UTF-8 text without control characters, at "
            "most %u bytes)\n", r ? r + 2 : why, flp_limits_default().max_str);
    return 0;
}

static void log_stderr(void *user, flc_log_level level, const char *msg)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[4200];
    say_as_flags(msg, line, sizeof line);
    fprintf(stderr, "[%s] %-5s %s\n", (const char *)user, names[level & 3], line);
}

int main(int argc, char **argv)
{
    const char *server = NULL, *server_key = NULL, *key = NULL, *id = NULL;
    const char *dataset = "fashion-mnist", *data_dir = NULL, *partition = "iid";
    long num_clients = 1, index = 0, max_rounds = 0, threads = 1, heartbeat = 0, liveness = 0;
    unsigned long long part_seed = 1, seed = 0, memory = 0;
    int insecure = 0, index_given = 0;
    flc_log_level level = FLC_LOG_INFO;
    /* Before anything opens a file: a closed stderr (`fl_client ... >&- 2>&-`) took the number of
     * the first descriptor opened, the client's wake pipe, and the log went into it. */
    if (fl_std_fds_open() != 0)
        return 4; /* nowhere to say it: stderr is what is missing */
    /* From the first moment, before any thread: a SIGTERM while the dataset loads used to kill
     * the process with the default action (exit 143), not the 0 of a stop. A closed terminal
     * (SIGHUP) and a closed stderr (SIGPIPE, once the client runs: `fl_client ... 2>&1 | head`,
     * a log reader that went away) stop it the same way: their default action ended the process without a Bye,
     * and the server held the device's place in a round until its liveness timeout. Left
     * ignored when they came ignored (nohup; systemd's IgnoreSIGPIPE=, on by default, so that a
     * journald restart does not end a service). */
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    struct sigaction was;
    if (sigaction(SIGHUP, NULL, &was) == 0 && was.sa_handler != SIG_IGN)
        sigaddset(&stops, SIGHUP);
    const int se = fl_sig_take(&stops, on_signal);
    if (se != 0) {
        fprintf(stderr, "fl_client: cannot start the thread that takes signals: %s\n",
                strerror(se));
        return 4;
    }
    /* SIGPIPE is taken as a stop (on_sigpipe) once the client runs: before, a closed stdout or
     * stderr fails the write (EPIPE) and nothing else, and start-up ends with its own status.
     * Taken from the first moment, `fl_client --help | grep -q usage` (grep gone before the
     * help's second half) said "fl_client: stopped during start-up" on the terminal about one
     * time in six, and an error of the command line, the key files or the dataset written to a
     * closed stderr exited 0 or its own status as the signal thread and main raced. */
    const int pipe_ignored = sigaction(SIGPIPE, NULL, &was) == 0 && was.sa_handler == SIG_IGN;
    struct sigaction pipe_sa;
    memset(&pipe_sa, 0, sizeof pipe_sa);
    pipe_sa.sa_handler = SIG_IGN;
    sigemptyset(&pipe_sa.sa_mask);
    sigaction(SIGPIPE, &pipe_sa, NULL);
    enum { O_SERVER = 256, O_SKEY, O_KEY, O_INSECURE, O_ID, O_DATASET, O_DATADIR, O_PART, O_NUM,
           O_INDEX, O_PSEED, O_MAXR, O_THREADS, O_SEED, O_LOG, O_MEM, O_HB, O_LIVE };
    static const struct option opts[] = {
        {"server", required_argument, 0, O_SERVER}, {"server-key", required_argument, 0, O_SKEY},
        {"key", required_argument, 0, O_KEY}, {"insecure", no_argument, 0, O_INSECURE},
        {"id", required_argument, 0, O_ID}, {"dataset", required_argument, 0, O_DATASET},
        {"data-dir", required_argument, 0, O_DATADIR}, {"partition", required_argument, 0, O_PART},
        {"num-clients", required_argument, 0, O_NUM}, {"client-index", required_argument, 0, O_INDEX},
        {"partition-seed", required_argument, 0, O_PSEED}, {"max-rounds", required_argument, 0, O_MAXR},
        {"threads", required_argument, 0, O_THREADS}, {"seed", required_argument, 0, O_SEED},
        {"log-level", required_argument, 0, O_LOG}, {"memory-bytes", required_argument, 0, O_MEM},
        {"heartbeat-ms", required_argument, 0, O_HB}, {"liveness-ms", required_argument, 0, O_LIVE},
        {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};
    /* An option given again: the last value counts (a fleet script's common flags followed by an
     * override, as fl_sim takes them), said once after the command line (given_twice): until
     * 2026-12-08 `--server A ... --server B` silently joined B. */
    const char *given[O_LIVE - O_SERVER + 1] = {0};
    unsigned char given_twice[O_LIVE - O_SERVER + 1] = {0};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        /* getopt_long gives every option that takes a value its optarg */
        const int takes_value = o >= O_SERVER && opts[o - O_SERVER].has_arg == required_argument;
        if (takes_value && strncmp(optarg, "--", 2) == 0) {
            /* "--server --insecure": the value left out, the next option is not taken for it */
            fprintf(stderr, "fl_client: --%s needs a value, and the next argument, %s, is an "
                    "option\n", opts[o - O_SERVER].name, optarg);
            return 1;
        }
        if (takes_value) { /* --insecure twice says nothing that needs choosing */
            given_twice[o - O_SERVER] |= given[o - O_SERVER] != NULL;
            given[o - O_SERVER] = optarg;
        }
        errno = 0; /* strtol's ERANGE: a count it clamped to LONG_MAX is not the one given */
        switch (o) {
        case O_SERVER: server = optarg; break;
        case O_SKEY: server_key = optarg; break;
        case O_KEY: key = optarg; break;
        case O_INSECURE: insecure = 1; break;
        case O_ID: id = optarg; break;
        case O_DATASET: dataset = optarg; break;
        case O_DATADIR: data_dir = optarg; break;
        case O_PART: partition = optarg; break;
        case O_NUM: num_clients = strtol(optarg, &end, 10); break;
        case O_INDEX: index = strtol(optarg, &end, 10); index_given = 1; break;
        case O_PSEED: part_seed = unsigned_of(optarg, &end); break;
        case O_MAXR: max_rounds = strtol(optarg, &end, 10); break;
        case O_THREADS: threads = strtol(optarg, &end, 10); break;
        case O_SEED: seed = unsigned_of(optarg, &end); break;
        case O_HB:
        case O_LIVE:
            /* 0 or nothing is not a count here (flc_config's 0 means its default) */
            if ((*(o == O_HB ? &heartbeat : &liveness) = strtol(optarg, &end, 10)) == 0) {
                fprintf(stderr, "fl_client: --%s '%s': expected %s <= N <= %d\n",
                        opts[o - O_SERVER].name, optarg, o == O_HB ? "10" : "1", INT_MAX);
                return 1;
            }
            break;
        case O_MEM:
            /* a sign refused (unsigned_of: *end is then "-", no suffix) */
            memory = unsigned_of(optarg, &end);
            if (end != optarg && *end && !end[1] && strchr("KMG", *end)) {
                const int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : 30;
                if (memory > (UINT64_MAX >> shift)) {
                    fprintf(stderr, "fl_client: --memory-bytes %s: too large\n", optarg);
                    return 1;
                }
                memory <<= shift;
                end++;
            } else if (end == optarg) {
                end = (char *)"x";
            }
            break;
        case O_LOG:
            if (!strcmp(optarg, "debug")) level = FLC_LOG_DEBUG;
            else if (!strcmp(optarg, "info")) level = FLC_LOG_INFO;
            else if (!strcmp(optarg, "warn")) level = FLC_LOG_WARN;
            else if (!strcmp(optarg, "error")) level = FLC_LOG_ERROR;
            else { fprintf(stderr, "fl_client: --log-level: expected debug, info, warn or error\n"); return 1; }
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("fl_client %s\n", FEDROP_VERSION); return 0;
        default: /* getopt said which option; the whole usage would bury that line */
            fprintf(stderr, "fl_client: see fl_client --help for the options\n");
            return 1;
        }
        /* an empty value (an unset variable in a fleet's script: --client-index "$IDX") is no
         * number either: strtol and strtoull take it for 0 */
        if (end && (*end || end == optarg)) {
            /* --memory-bytes takes a suffix: "64k", "1.5G" or "64MB" were "not a number", which
             * left the user to guess what is one */
            fprintf(stderr, "fl_client: --%s: '%s' is not a number%s\n", opts[o - O_SERVER].name,
                    optarg, o == O_MEM ? " of bytes (N, or N followed by K, M or G: 1K is 1024 "
                                         "bytes, 1M 1024K, 1G 1024M)" : "");
            return 1;
        }
        if (end && errno == ERANGE) {
            fprintf(stderr, "fl_client: --%s: '%s' is out of range\n", opts[o - O_SERVER].name,
                    optarg);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fl_client: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    for (int k = 0; k <= O_LIVE - O_SERVER; k++) {
        if (!given_twice[k])
            continue;
        char raw[76], v[76 * 4 + 1]; /* as fl_sim: 75 bytes of it at most, each shown */
        snprintf(raw, sizeof raw, "%s", given[k]);
        fprintf(stderr, "fl_client: warning: --%s is given more than once: the last, '%s%s', is "
                "used\n", opts[k].name, shown(raw, v, sizeof v),
                strlen(given[k]) > 75 ? "..." : "");
    }
    if (!server) {
        fprintf(stderr, "fl_client: --server is required (try --help)\n");
        return 1;
    }
    char why[128], ep_shown[1100];
    shown(server, ep_shown, sizeof ep_shown);
    if (!fl_connect_endpoint_ok(server, why, sizeof why)) { /* before the dataset loads */
        /* The library's forms include inproc://NAME (a server on the caller's ZeroMQ context),
         * which fl_client refuses below: a typo (tcp//, tpc://) was told to give it. */
        static const char forms[] = "is not tcp://HOST:PORT, ipc://PATH or inproc://NAME";
        if (strncmp(why, forms, sizeof forms - 1) == 0)
            fprintf(stderr, "fl_client: --server %s is not tcp://HOST:PORT or ipc://PATH%s\n",
                    ep_shown, why + sizeof forms - 1);
        else
            fprintf(stderr, "fl_client: --server %s %s\n", ep_shown, why);
        return 1;
    }
    if (strncmp(server, "inproc://", 9) == 0) {
        fprintf(stderr, "fl_client: --server %s: inproc:// reaches only a server in the same "
                "process; give tcp://HOST:PORT or ipc://PATH\n", ep_shown);
        return 1;
    }
    if (num_clients < 1 || num_clients > INT_MAX) {
        fprintf(stderr, "fl_client: --num-clients %ld: expected 1 <= N <= %d\n", num_clients,
                INT_MAX);
        return 1;
    }
    if (index < 0 || index >= num_clients) {
        fprintf(stderr, "fl_client: --client-index %ld: expected 0 <= I < --num-clients (%ld)\n",
                index, num_clients);
        return 1;
    }
    if (threads < 1 || threads > 1024) {
        fprintf(stderr, "fl_client: --threads %ld: expected 1 <= N <= 1024\n", threads);
        return 1;
    }
    /* flc_config.max_rounds is an int: a larger count must not wrap into a negative or small one. */
    if (max_rounds < 0 || max_rounds > INT_MAX) {
        fprintf(stderr, "fl_client: --max-rounds %ld: expected 0 <= N <= %d\n", max_rounds, INT_MAX);
        return 1;
    }
    /* flc_config's timing fields are ints (0: the default, 1000 and 10000 ms) */
    if (heartbeat && (heartbeat < 10 || heartbeat > INT_MAX)) {
        fprintf(stderr, "fl_client: --heartbeat-ms %ld: expected 10 <= N <= %d\n", heartbeat,
                INT_MAX);
        return 1;
    }
    if (liveness && (liveness < 1 || liveness > INT_MAX)) {
        fprintf(stderr, "fl_client: --liveness-ms %ld: expected 1 <= N <= %d\n", liveness, INT_MAX);
        return 1;
    }
    if ((liveness ? liveness : 10000) <= (heartbeat ? heartbeat : 1000)) {
        fprintf(stderr, "fl_client: --liveness-ms %ld is not above --heartbeat-ms %ld: the server "
                "would seem gone between two heartbeats\n", liveness ? liveness : 10000,
                heartbeat ? heartbeat : 1000);
        return 1;
    }
    if (id && !id_ok(id))
        return 1;
    if (insecure && (server_key || key)) {
        fprintf(stderr, "fl_client: --insecure turns CURVE off; drop --server-key and --key, or "
                        "--insecure\n");
        return 1;
    }
    if (!insecure && (!server_key || !key)) {
        fprintf(stderr, "fl_client: --server-key and --key are required (or --insecure against an "
                        "insecure server)\n");
        return 1;
    }
    char spk[FL_KEY_Z85_LEN + 1], sk[FL_KEY_Z85_LEN + 1];
    if (!insecure && (read_key(server_key, FL_KEY_PUBLIC, "--server-key", spk) != 0 ||
                      read_key(key, FL_KEY_SECRET, "--key", sk) != 0))
        return 1;
    char idbuf[64];
    /* Every process of a fleet started the same way would be client-0 on partition 0: the
     * server sees one id on several connections and each client is told, again and again, that
     * the server no longer knows it. */
    if (num_clients > 1 && !index_given)
        fprintf(stderr, "fl_client: warning: --num-clients %ld without --client-index: this is "
                "client 0 (partition 0%s); give each process its own --client-index\n",
                num_clients, id ? "" : ", id client-0");
    if (!id) {
        snprintf(idbuf, sizeof idbuf, "client-%ld", index);
        id = idbuf;
    }

    /* This client's partition. */
    char spec[1024], err[256];
    if (!strchr(dataset, ':'))
        snprintf(spec, sizeof spec, "%s:train", dataset);
    else
        snprintf(spec, sizeof spec, "%s", dataset);
    flm_dataset *all = NULL, *mine = NULL;
    fl_status st;
    /* --data-dir names the directory of fashion-mnist / mnist; given to the loader as such, so
     * that a missing file is said of it (set as $FEDROP_DATA_DIR, the error blamed the
     * variable, which the user had not set). */
    const char *kind_end = strchr(spec, ':');
    const size_t kl = (size_t)(kind_end - spec);
    if (data_dir && ((kl == 13 && strncmp(spec, "fashion-mnist", kl) == 0) ||
                     (kl == 5 && strncmp(spec, "mnist", kl) == 0))) {
        char name[16];
        memcpy(name, spec, kl);
        name[kl] = '\0';
        st = flm_dataset_load_named(&all, name, kind_end + 1, data_dir, err, sizeof err);
    } else {
        st = flm_dataset_load_spec(&all, spec, part_seed, FLM_SPLIT_TRAIN, err, sizeof err);
    }
    if (st != FL_OK) {
        fprintf(stderr, "fl_client: dataset %s: %s\n", spec, err[0] ? err : fl_strerror(st));
        return 2;
    }
    flm_partition_spec ps;
    flm_partition *part = NULL;
    const uint32_t *idx;
    size_t n;
    if (flm_partition_spec_parse(partition, &ps, err, sizeof err) != FL_OK) {
        fprintf(stderr, "fl_client: --partition %s: %s\n", partition, err);
        return 1;
    }
    err[0] = '\0';
    if ((st = flm_partition_make_err(&part, all, &ps, (size_t)num_clients, part_seed, err,
                                     sizeof err)) != FL_OK) {
        /* the limit that was hit, in fl_sim's words (flm_partition_make_err) */
        fprintf(stderr, "fl_client: --partition: %s; --dataset %s over --num-clients %ld\n",
                err[0] ? err : fl_strerror(st), spec, num_clients);
        flm_dataset_free(all);
        return 2;
    }
    if ((st = flm_partition_client(part, (size_t)index, &idx, &n)) != FL_OK ||
        (st = flm_dataset_subset(&mine, all, idx, n)) != FL_OK) {
        fprintf(stderr, "fl_client: partition %s of %s over %ld clients: %s\n", partition, spec,
                num_clients, fl_strerror(st));
        return 2;
    }
    flm_partition_free(part);
    flm_dataset_free(all);
    if (mine->N == 0) {
        fprintf(stderr, "fl_client: partition %ld of %ld is empty\n", index, num_clients);
        return 2;
    }
    flm_blas_init_threads((int)threads); /* loaded with its pool this size, for the line below */
    if (level <= FLC_LOG_INFO) { /* info lines: --log-level warn and error leave them out */
        /* named as fl_sim names it (summary.json "blas"): "Haswell+AVX512" where fedrop's own
         * AVX-512 kernels run beside OpenBLAS's Haswell core, which round otherwise than a CPU
         * with AVX2 alone (until 2026-12-07 both were "Haswell" here) */
        char kernel[64];
        flm_blas_kernel_name(kernel, sizeof kernel);
        fprintf(stderr, "[%s] info  %zu local samples (%s, %s, partition %ld of %ld); BLAS kernel "
                "%s\n", id, mine->N, spec, partition, index, num_clients, kernel);
        int slower = 0;
        const char *env = flm_blas_env_coretype_other(&slower);
        const char *ignored = flm_blas_env_coretype_ignored();
        /* a name OpenBLAS passed over (a typo) is not the kernel that runs: flc_client_new says
         * so, at warn */
        if (env && !ignored) /* the user's kernel, not fedrop's pick: said, as the run goes on with it */
            fprintf(stderr, "[%s] info  OPENBLAS_CORETYPE=%s in the environment replaces %s, the "
                    "kernel fedrop picks for this CPU: training rounds otherwise%s; unset the "
                    "variable to train on %s\n", id, env, flm_blas_cpu_coretype(),
                    slower ? " and may be slower (OpenBLAS's GEMMs, as in conv layers, then "
                             "leave out AVX-512)"
                           : "",
                    flm_blas_cpu_coretype());
    }

    const flc_samples samples = {mine->x, mine->tokens, mine->y, mine->N, mine->sample_len};
    flc_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.server_endpoint = server;
    cfg.client_id = id;
    cfg.server_public_key = insecure ? NULL : spk;
    cfg.secret_key = insecure ? NULL : sk;
    cfg.backend = FLC_BACKEND_CPU;
    cfg.threads = (int)threads;
    cfg.samples = &samples;
    cfg.seed = seed;
    cfg.max_rounds = (int)max_rounds;
    cfg.memory_bytes = memory;
    cfg.heartbeat_ms = (int)heartbeat;
    cfg.liveness_ms = (int)liveness;
    cfg.log = log_stderr;
    cfg.log_user = (void *)id;
    cfg.log_level = level;
    flc_client *client = NULL;
    flc_status cs = flc_client_new(&cfg, &client);
    if (cs != FLC_OK) {
        fprintf(stderr, "fl_client: %s\n", flc_strerror(cs));
        flm_dataset_free(mine);
        return cs == FLC_ERR_INVALID_ARG ? 1 : 4;
    }
    set_phase(1, client); /* from here a signal stops it: run returns FLC_ERR_CANCELLED */
    if (!pipe_ignored) { /* and so does a closed stderr, at the client's next line */
        pipe_sa.sa_handler = on_sigpipe;
        sigaction(SIGPIPE, &pipe_sa, NULL);
    }
    cs = flc_client_run(client);
    const flc_stats *s = flc_client_stats(client);
    /* the exit line, at info; said at any level when the run ends in an error (its status) */
    if (level <= FLC_LOG_INFO || (cs != FLC_OK && cs != FLC_ERR_CANCELLED)) {
        fprintf(stderr, "[%s] %s %llu rounds trained, %llu failed here, %llu tasks dropped (a "
                "newer task, the session's end, a stop, or a download, training or upload past its "
                "round's deadline), %llu updates sent, "
                "%llu accepted, %llu late, %llu refused, %llu reconnects, %.1f MB down, %.1f MB "
                "up: %s\n",
                id, cs != FLC_OK && cs != FLC_ERR_CANCELLED ? "error" : "info ",
                (unsigned long long)s->rounds_trained, (unsigned long long)s->rounds_failed,
                (unsigned long long)s->tasks_dropped, (unsigned long long)s->updates_sent,
                (unsigned long long)s->updates_accepted, (unsigned long long)s->updates_late,
                (unsigned long long)s->updates_refused,
                (unsigned long long)s->reconnects, s->bytes_down / 1e6, s->bytes_up / 1e6,
                cs == FLC_ERR_CANCELLED ? "stopped" : flc_strerror(cs));
    }
    if (s->memory_needed) /* at any level: why this device trains nothing there */
        fprintf(stderr, "[%s] warn  the server's last answer: it does not select this device, "
                "whose --memory-bytes %llu is below the about %llu bytes that its model needs\n",
                id, (unsigned long long)cfg.memory_bytes, (unsigned long long)s->memory_needed);
    set_phase(2, NULL);
    flc_client_free(client);
    flm_dataset_free(mine);
    switch (cs) {
    case FLC_OK:
    case FLC_ERR_CANCELLED: return 0;
    case FLC_ERR_DATASET: return 2;
    case FLC_ERR_AUTH:
    case FLC_ERR_REMOTE: return 3;
    default: return 4;
    }
}
