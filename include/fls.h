/* fls.h: libflserver, the fedrop federated-learning coordinator as a library (the fl_server
 * daemon is a thin main() around it).
 *
 * The server binds a ZeroMQ ROUTER on tcp:// and/or ipc:// endpoints, speaks the session protocol
 * of fl_server/PROTOCOL.md (CURVE-encrypted, with a ZAP allow-list of client public keys, by
 * default), drives the IO-free round engine from a single-threaded reactor, evaluates the global
 * model on a test set when asked (on a thread of its own, started for each evaluation, with every
 * signal blocked: the reactor serves the clients meanwhile; the thread is joined before the next
 * round, or, when a stop or a failure cancels the evaluation, by fls_server_free, which then waits
 * for the current batch), reports per-round metrics, and checkpoints.
 *
 * Three objects:
 *   fls_options  every setting of a run, from a YAML file, memory or "key = value" pairs (flags);
 *                the key table (fls_options_key) documents each one;
 *   fls_server   one running coordinator: fls_server_new binds, fls_server_run blocks until the
 *                run is done or fls_server_stop is called;
 *   keys         fls_keygen writes a CURVE key pair.
 *
 * Ownership: every object returned through an `out` pointer belongs to the caller and is released
 * by its *_free (NULL is a no-op). Strings passed in are copied.
 *
 * Thread-safety: an fls_options or fls_server is used by one thread at a time. fls_server_stop and
 * fls_server_reload are async-signal-safe and may be called from any thread or a signal handler,
 * while the server is not being freed: a handler runs on any thread that leaves the signal
 * unblocked (the threads of the OpenBLAS that the library loads inherit the mask of the thread
 * that loads it), so a host that stops on a signal blocks it before fls_server_new and takes it
 * on a thread of its own with sigwait, which calls stop no more once fls_server_free begins
 * (fl_server/examples/embed.c).
 * The library keeps no global state of its own, with one exception: the first model evaluation
 * or aggregation that needs a GEMM loads OpenBLAS once per process (dlopen), and before that load
 * sets OPENBLAS_CORETYPE (and OPENBLAS_NUM_THREADS) in the environment when the host has not set
 * them, so a host whose other threads read the environment should set them itself first. It never
 * exits, aborts or prints: it logs through the callback of fls_host. Nor does a write to a
 * run.metrics FIFO whose reader left raise SIGPIPE in the host: the line is lost, and logged.
 */
#ifndef FLS_H
#define FLS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. The numbers are those of fedrop's internal status enum (and of Error messages on
 * the wire), so a code logged anywhere in fedrop means the same thing. Only ever appended. */
typedef enum fls_status {
    FLS_OK = 0,
    FLS_ERR_NOMEM = 1,
    FLS_ERR_INVALID_ARG = 2,
    FLS_ERR_IO = 3,                /* a file could not be read or written */
    FLS_ERR_INTERNAL = 4,
    FLS_ERR_UNSUPPORTED = 5,       /* e.g. libzmq built without CURVE */
    FLS_ERR_NOT_FOUND = 7,
    FLS_ERR_STATE = 8,
    FLS_ERR_IO_TRANSIENT = 10,     /* a file could not be written for a cause that may pass (a
                                    * full disk, a quota, a device error): try again later */
    FLS_ERR_MODEL = 60,            /* the architecture spec is invalid */
    FLS_ERR_DATASET = 63,          /* the evaluation dataset cannot be loaded */
    FLS_ERR_CHECKPOINT = 84,       /* a checkpoint (or CHECKPOINT.ids) is damaged, truncated,
                                    * fails its checksum, or is a later fedrop's */
    FLS_ERR_CHECKPOINT_MISMATCH = 85, /* a checkpoint of another configuration */
    FLS_ERR_CONFIG = 87,           /* a configuration key or value is invalid */
    FLS_ERR_TRANSPORT = 101,       /* a ZeroMQ call failed (bind, socket options, ...) */
    FLS_ERR_AUTH = 102,            /* key or allow-list problem */
    FLS_ERR_CANCELLED = 104        /* fls_server_run returned because of fls_server_stop */
} fls_status;

/* A static, readable message for any status (also for codes not listed above). Never NULL. */
const char *fls_strerror(fls_status s);

typedef enum fls_log_level { FLS_LOG_DEBUG = 0, FLS_LOG_INFO, FLS_LOG_WARN, FLS_LOG_ERROR } fls_log_level;
/* msg is one line without a newline, valid only during the call. */
typedef void (*fls_log_fn)(void *user, fls_log_level level, const char *msg);

/* ---- options -------------------------------------------------------------------------------- */

typedef struct fls_options fls_options; /* opaque */

/* New options holding the defaults of every key. FLS_OK or FLS_ERR_NOMEM. */
fls_status fls_options_new(fls_options **out);
void fls_options_free(fls_options *o); /* NULL is a no-op */

/* Reads a YAML configuration (a mapping of sections to mappings of keys, see fls_options_key and
 * fl_server/README.md) and sets every key it names; keys it does not name keep their value.
 * Unknown keys, duplicate keys, a section written twice, a key's null value (~, null or
 * nothing: leave the key out for its default; a section with nothing under it, "round:", is an
 * empty section and taken), values of the wrong type or out of range, aliases and
 * anything but a two-level mapping are refused with FLS_ERR_CONFIG and a message in err naming
 * the file (name), line and key, e.g. "fl.yaml:12: round.clients: 'ten' is not an unsigned
 * integer". A YAML syntax error anywhere in the text is reported before any key is read, as
 * "fl.yaml:LINE:COLUMN: YAML syntax error: PROBLEM (CONTEXT at line L, column C)" (libyaml's
 * words). load_file also returns FLS_ERR_IO (cannot read; input capped at 1 MiB; a directory or
 * a device is refused at once, "PATH: a directory, not a regular file"; a FIFO or a pipe, as a
 * shell's `<(command)`, is read to its end, waiting at most 10 s at a time for its writer, and
 * refused after that, "PATH: a FIFO that no process wrote to within 10 s", where a FIFO without
 * a writer would block the read for good). On error o may hold some of the file's values:
 * discard it. err may be NULL. load_file remembers path (the last file it read): the server
 * refuses a checkpoint.path or run.metrics that is that file (FLS_ERR_CONFIG, at start and in
 * fls_server_check), which would destroy the configuration. */
fls_status fls_options_load_file(fls_options *o, const char *path, char *err, size_t errlen);
fls_status fls_options_load_mem(fls_options *o, const char *buf, size_t len, const char *name,
                                char *err, size_t errlen);

/* Sets one key from its text form, checked as the same text in a YAML file would be
 * ("round.clients", "10"), but taken as it is: no quoting, and "~" or "null" is that text (a
 * path key takes it as a file name), not YAML's null. List keys (server.endpoints,
 * policy.keep_layers) take comma-separated values. FLS_OK or
 * FLS_ERR_CONFIG with the reason in err. */
fls_status fls_options_set(fls_options *o, const char *key, const char *value, char *err,
                           size_t errlen);
/* As fls_options_set, and records origin, how the value was given (a command line's flag as
 * typed: "--set model.arch=x", "--arch x"; copied, shortened past 191 bytes), as where key's
 * value came from: fls_options_validate and the startup checks of fls_server_new put it before
 * their errors about this key ("--arch x: model.arch: unknown architecture 'x' ..."). A file read
 * by fls_options_load_* records "NAME:LINE" for each key it sets; fls_options_set (origin NULL)
 * records none. */
fls_status fls_options_set_from(fls_options *o, const char *key, const char *value,
                                const char *origin, char *err, size_t errlen);

/* The current value of key in text form into buf (NUL-terminated, truncated to cap); a number in
 * the fewest digits that set the key back to the same value ("0.05" for a float32 0.05, not
 * "0.0500000007"). FLS_OK, FLS_ERR_NOT_FOUND (no such key), FLS_ERR_INVALID_ARG. */
fls_status fls_options_get(const fls_options *o, const char *key, char *buf, size_t cap);

/* As fls_options_get, but the value the server will apply where it adjusts one at start:
 * server.idle_connection_s below twice server.liveness_ms is raised to that (rounded up to whole
 * seconds), and an optimizer key left unset (optimizer.lr, ...: fls_options_get gives "") reads
 * as the default of optimizer.kind that stands in for it (optimizer.lr 1 under fedavg, 0.01 under
 * the adaptive kinds; optimizer.v0 optimizer.tau squared). fl_server --check prints these. */
fls_status fls_options_get_effective(const fls_options *o, const char *key, char *buf,
                                     size_t cap);

/* For a key left unset whose value fls_options_get_effective derives (the optimizer's optional
 * keys), whose default that value is, into buf: "fedavg's default", "tau^2, fedadam's default",
 * or, for a key optimizer.kind does not use, "the default; no effect under optimizer.kind fedavg:
 * it applies to optimizer.kind fedavgm". "" for any other key, and for one given. FLS_OK,
 * FLS_ERR_NOT_FOUND (no such key), FLS_ERR_INVALID_ARG. */
fls_status fls_options_get_unset_note(const fls_options *o, const char *key, char *buf,
                                      size_t cap);

/* Checks the options as a whole (architecture and codec specs parse, ranges, keys needed by other
 * keys: CURVE needs server.secret_key_file and server.allow_list, evaluation needs a dataset,
 * run.resume needs checkpoint.path). FLS_OK or FLS_ERR_CONFIG with the reason in err, after where
 * the value at fault came from when it was not a default: "fl.yaml:7: model.arch: unknown
 * architecture 'bogus' ...", "--arch bogus: model.arch: ..." (see fls_options_set_from).
 * FLS_ERR_NOMEM when memory ran out (the optimizer and aggregator options are checked by making
 * them): no verdict on the options. FLS_ERR_INVALID_ARG for o NULL. */
fls_status fls_options_validate(const fls_options *o, char *err, size_t errlen);

/* The documented key table, for --help and tools: key i's name ("round.clients"), a type word
 * ("uint", "float", "bool", "string", "list", one of "a|b|c"), its default in text form, and a
 * one-line description. Returns 0 past the end. */
int fls_options_key(size_t i, const char **key, const char **type, const char **def,
                    const char **help);

/* ---- the server ----------------------------------------------------------------------------- */

/* What the embedding program provides. Every field may be zero. */
typedef struct fls_host {
    fls_log_fn log;               /* NULL: silent; the level threshold is option run.log_level */
    void *log_user;
    void *zmq_context;            /* NULL: the server makes and owns its own. A shared context
                                   * may have no other ZAP handler bound (one per context), and
                                   * should have one I/O thread (ZeroMQ's default): with more,
                                   * connections are counted approximately and the server closes
                                   * none (server.idle_connection_s, the connection limit). */
    /* Called once per finished round with its metrics as one JSON object (no newline) and a
     * human-readable summary line. The server also appends the JSON line to option
     * run.metrics when that names a file ("-" is left to the host: the library never prints). */
    void (*on_round)(void *user, const char *json, const char *summary);
    void *round_user;
} fls_host;

typedef struct fls_server fls_server; /* opaque */

/* Validates o, loads the keys, the allow-list and the evaluation dataset, builds the round engine
 * (restoring option checkpoint.path when run.resume is set and the file exists; the file's
 * directory must be writable), checks that run.metrics can be written, binds every endpoint
 * (logging "listening on ENDPOINT" for each) and only then opens (creates) the metrics file, so
 * that a start that fails at the bind or before makes no file but CHECKPOINT.lock (with
 * checkpoint.path set: taken first, and never removed, which would race with another server;
 * held until fls_server_free: a second server on the same path, in this process or another, is
 * refused with FLS_ERR_IO, the log naming the holder).
 * When run.metrics is a FIFO, the open waits for a process to read it (as the daemon documents),
 * and nothing can cancel that wait: give a FIFO only with its reader running. o may be freed
 * afterwards. Returns FLS_OK, FLS_ERR_CONFIG (also a tcp:// endpoint whose host is a name, which a bind does not
 * resolve), FLS_ERR_IO, FLS_ERR_IO_TRANSIENT (a start-up write failed for a cause that may pass:
 * a full disk, a quota, a device error; worth trying again later), FLS_ERR_AUTH (bad key or
 * allow-list file), FLS_ERR_DATASET, FLS_ERR_CHECKPOINT / _MISMATCH (resume), FLS_ERR_TRANSPORT
 * (bind failed, ...), FLS_ERR_UNSUPPORTED (CURVE requested but libzmq lacks it), FLS_ERR_NOMEM,
 * FLS_ERR_INVALID_ARG (o or out NULL). *out is NULL on any failure. */
fls_status fls_server_new(const fls_options *o, const fls_host *host, fls_server **out);

/* Runs every startup check of fls_server_new that needs no socket and makes no file: validates
 * o, reads the secret key (and logs the public key), the allow-list and the evaluation dataset
 * (which must fit the architecture), builds the round engine, reads the checkpoint to resume,
 * and checks that checkpoint.path's directory takes a write (a probe file made, written and
 * removed) and that run.metrics is writable. Binds nothing and
 * starts no round. Returns what fls_server_new would, with the same message logged. */
fls_status fls_server_check(const fls_options *o, const fls_host *host);

/* Frees the server: closes its sockets (waiting at most 2 s for queued messages) and, if it owns
 * it, the ZeroMQ context; logs how many metrics lines were lost, if any were. NULL is a no-op. */
void fls_server_free(fls_server *s);

/* Runs the reactor until the run is over or fls_server_stop is called.
 *   done (max rounds or target accuracy reached): sends Bye("done") to every client, writes a
 *     final checkpoint (if checkpoint.path is set) and returns FLS_OK; with server.done_linger_s
 *     set, only after that many seconds more, during which every client that comes in is
 *     answered Bye("done") (nothing reaches the run), or at once on fls_server_stop;
 *   stopped: takes no more updates, writes a checkpoint of the last state between rounds (an open
 *     round is abandoned and replayed on resume) when checkpoint.path is set and the run has
 *     finished a round or was resumed (a fresh run stopped before its first round keeps the file
 *     already there), sends Bye("restart") and returns FLS_ERR_CANCELLED. A stop during an
 *     evaluation waits for it when checkpoint.path is set (its round ends and is checkpointed);
 *     a second fls_server_stop, or one without checkpoint.path, cancels it and drops the round.
 * Other statuses are failures: FLS_ERR_IO or FLS_ERR_IO_TRANSIENT (a checkpoint that could not be
 * written, ...), FLS_ERR_NOMEM (memory ran out in the reactor or the round engine),
 * FLS_ERR_TRANSPORT (a ZeroMQ call), FLS_ERR_INTERNAL (a fault of fedrop's); a later
 * fls_server_run or fls_server_step returns the same status. FLS_ERR_INVALID_ARG for s NULL. */
fls_status fls_server_run(fls_server *s);

/* One reactor step: waits at most timeout_ms for input (0: none; negative: until the reactor's
 * next timer, within 50 ms), handles what arrived, runs due timers and the round engine. For
 * hosts with their own loop and for tests. Returns FLS_OK while the run goes on,
 * FLS_ERR_CANCELLED once stopped (after the stop steps of fls_server_run), FLS_ERR_STATE once
 * done (after the done steps, and server.done_linger_s's wait: FLS_OK while it lasts), or a
 * failure (see fls_server_run). */
fls_status fls_server_step(fls_server *s, int timeout_ms);

/* Asks the reactor to stop (see fls_server_run). Async-signal-safe; any thread. */
void fls_server_stop(fls_server *s);
/* Asks the reactor to re-read the allow-list file (SIGHUP). A file that fails to parse leaves the
 * old list in force (logged). The sessions of keys that were removed end (Error auth), those keys
 * are refused from then on, and the client ids they registered are released: another key on the
 * list may register them (key rotation). run.metrics is opened again. No other setting changes:
 * a configuration file (fls_options_load_file) that differs from what was read is logged as not
 * applied, a warning. Async-signal-safe; any thread. */
void fls_server_reload(fls_server *s);

/* The i-th bound endpoint as ZeroMQ resolved it ("tcp://0.0.0.0:5555"); NULL past the end. Valid
 * while s lives. */
const char *fls_server_endpoint(const fls_server *s, size_t i);
/* The server's Z85 public key (40 characters), or NULL under --insecure. */
const char *fls_server_public_key(const fls_server *s);

typedef struct fls_server_stats {
    uint64_t round;               /* the round running or next */
    uint64_t rounds_done;         /* rounds finished in this process */
    uint32_t clients;             /* clients that said Hello and are still live */
    uint64_t msgs_in, msgs_out;
    uint64_t malformed;           /* frames that failed to decode (never reached the engine) */
    uint64_t refused;             /* decoded messages the protocol or the engine refused */
    uint64_t auth_refused;        /* handshakes and Hellos refused by the allow-list or key binding */
    uint64_t send_dropped;        /* messages dropped because a client's queue was full */
    uint64_t checkpoints;         /* checkpoints written */
    uint32_t ids;                 /* client ids bound, with a session or idle (<= max_clients) */
    uint64_t engine_clients;      /* clients the round engine keeps a record of: a forgotten id
                                   * drops its own */
    uint32_t connections;         /* connections open (said Hello or not), as libzmq's socket
                                   * monitor last told the reactor */
    uint32_t connections_peak;    /* the most open at once in this process */
    uint64_t idle_closed;         /* connections closed for carrying no session for
                                   * server.idle_connection_s */
    uint64_t over_limit_closed;   /* new connections closed at once: the file descriptor limit
                                   * (less 32 for the server's files) was reached */
} fls_server_stats;
/* The server's statistics into *out (all zero for s NULL; nothing for out NULL). */
void fls_server_stats_get(const fls_server *s, fls_server_stats *out);

/* ---- keys ----------------------------------------------------------------------------------- */

/* Generates a CURVE key pair and writes DIR/NAME.pub (the Z85 public key, mode 0644) and
 * DIR/NAME.secret (the Z85 secret key, mode 0600, refused if it exists). Both files hold the key
 * on one line after '#' comment lines. FLS_OK, FLS_ERR_IO (with the reason in err),
 * FLS_ERR_UNSUPPORTED (no CURVE in libzmq), FLS_ERR_INVALID_ARG (an empty DIR, an empty NAME or
 * one with '/', a path too long; the reason in err). */
fls_status fls_keygen(const char *dir, const char *name, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
