/* flc.h: libflclient, the fedrop client library for devices.
 *
 * A device embeds one flc_client per federated identity. The library speaks the fedrop protocol
 * (fl_server/PROTOCOL.md) to a server over ZeroMQ (CURVE-encrypted by default), receives the
 * submodel the server chose for this device, trains it, and uploads the compressed delta. It
 * handles the protocol, codecs, chunking, flow control, heartbeats and reconnection; the device
 * decides how to train:
 *   - the built-in trainer (fedrop's CPU engine over OpenBLAS) on samples the caller provides, or
 *   - a callback (flc_config.train) for an NPU, a GPU or any other trainer.
 *
 * Ownership: the caller owns every buffer it passes in and keeps flc_config's pointers valid for
 * the lifetime of the client (the library copies strings, not sample arrays). flc_client_free
 * releases everything the library allocated; passing NULL is a no-op. What the library passes to
 * a callback is the library's, valid during that call only: the log's msg, and the trainer's task
 * (its weights, tensors, names and specs) and out->weights; copy what is needed later, and a
 * trainer that hands the work to a thread of its own waits for it before it returns. Memory: the
 * library holds the submodel being trained and its update (flc_config.memory_bytes gives the
 * estimate), the built-in trainer's model and optimizer state, and the codec's buffers while a
 * round is in progress, and gives them all back once it is over (its update sent in full or cut
 * short by the server's answer, its training failed, its task refused or dropped, its download
 * past its Task's deadline: see flc_stats.tasks_dropped, its session ended) and when
 * flc_client_run returns: an idle client holds no round's memory (its buffers
 * of 1 MiB and more are pages of its own, unmapped then, so the memory leaves the process
 * whatever the host's malloc keeps), and the next task allocates afresh (a few milliseconds per
 * 10 MB of submodel, against its training). With
 * a top-k uplink (error feedback) it also holds, from round to round, a residual of the full
 * model and a copy of it from before the last training (restored if a resumed server replays
 * that round, so the run stays bit-exact): 8 bytes per parameter of the full model. The residual
 * belongs to one run of the server: a Task naming another run resets it to zero.
 *
 * Thread-safety: an flc_client is driven by one thread (flc_client_run blocks it). flc_client_stop
 * is the only call that may come from another thread (or a signal handler: but see
 * flc_client_stop). Distinct clients are independent; the library has no global state of its
 * own. The one thing shared by a process's clients is the built-in trainer's OpenBLAS: loaded
 * once, with one thread count, and two environment variables set before it loads
 * (flc_config.threads). The caller may share one ZeroMQ context among clients
 * (flc_config.zmq_context) or let each client make its own.
 *
 * Errors: every call that can fail returns an flc_status; flc_strerror gives a static message. The library never
 * exits, aborts or prints: it logs through flc_config.log.
 */
#ifndef FLC_H
#define FLC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. The numbers are those of fedrop's internal status enum (and of Error messages on
 * the wire), so a code logged by the server means the same here. Only ever appended. */
typedef enum flc_status {
    FLC_OK = 0,
    FLC_ERR_NOMEM = 1,
    FLC_ERR_INVALID_ARG = 2,
    FLC_ERR_IO = 3,
    FLC_ERR_INTERNAL = 4,
    FLC_ERR_UNSUPPORTED = 5,
    FLC_ERR_STATE = 8,
    FLC_ERR_WIRE = 21,          /* the server sent bytes that are not a valid message */
    FLC_ERR_MODEL = 60,         /* the task names an architecture this client cannot build */
    FLC_ERR_DATASET = 63,       /* the local dataset cannot be used */
    FLC_ERR_NUMERIC = 66,       /* training produced non-finite weights (or ones the
                                 * up codec cannot carry) */
    FLC_ERR_ROUND_CLOSED = 80,  /* the server closed the round before the update arrived */
    FLC_ERR_TIMEOUT = 100,
    FLC_ERR_TRANSPORT = 101,    /* a ZeroMQ call failed */
    FLC_ERR_AUTH = 102,         /* the server refused this client's key or id */
    FLC_ERR_REMOTE = 103,       /* the server answered with an Error */
    FLC_ERR_CANCELLED = 104     /* flc_client_stop was called */
} flc_status;

/* A static, readable message for any status (also for codes not listed above). Never NULL. */
const char *flc_strerror(flc_status s);

/* The version of this header, and of the library a program runs with (flc_version, e.g.
 * "0.3.2"): a program that reads a field appended since some version (flc_stats.tasks_dropped:
 * 0.2.1; flc_task.lib_state and flc_task_cancelled: 0.3.1; flc_stats.memory_needed: 0.3.2;
 * flc_stats.handshakes_unanswered: 0.3.8)
 * checks flc_version_number() against it when it may run with an older libflclient.so.0.2.
 * Since 0.3.1. */
#define FLC_VERSION_MAJOR 0
#define FLC_VERSION_MINOR 3
#define FLC_VERSION_PATCH 8
#define FLC_VERSION_NUMBER (FLC_VERSION_MAJOR * 10000 + FLC_VERSION_MINOR * 100 + FLC_VERSION_PATCH)
const char *flc_version(void);
int flc_version_number(void); /* MAJOR * 10000 + MINOR * 100 + PATCH, as FLC_VERSION_NUMBER */

/* Reads a CURVE key file as `fl_server keygen` writes them (a '#' comment line naming the kind
 * of key, then the key: 40 characters of Z85) into z85 (40 characters and a NUL), for
 * flc_config's server_public_key, public_key or secret_key. secret: 1 for a secret key file, 0
 * for a public one; a file whose keygen header names the other kind is refused (a hand-written
 * file without it is taken as either). Blank lines, other comments and a '\r' are skipped. FLC_OK;
 * FLC_ERR_IO (cannot be read, not a regular file, above 64 KiB), FLC_ERR_AUTH (no key, a line
 * that is not a Z85 key, the other kind of key, a second key or any other line but a comment
 * after the key: a file holds one key, and 0.3.8 and earlier took the first without a word),
 * FLC_ERR_INVALID_ARG (NULL path or z85),
 * FLC_ERR_NOMEM; why (may be NULL) then says what, naming the file. z85 is written only on FLC_OK. The library
 * prints nothing. Since 0.3.1. */
flc_status flc_key_file_read(const char *path, int secret, char z85[41], char *why, size_t whylen);

typedef enum flc_log_level { FLC_LOG_DEBUG = 0, FLC_LOG_INFO, FLC_LOG_WARN, FLC_LOG_ERROR } flc_log_level;
/* The log callback (flc_config.log, with log_user as user): msg is a message without a trailing
 * newline, at most 4095 bytes (a longer one is cut at a character and ends in "..."), valid during
 * the call only. Called on the threads of flc_client_new and flc_client_run and on the thread of a
 * training (see flc_client_run), possibly at once: it must be thread-safe (also on the thread of
 * a call the library refuses as misuse, a second flc_client_run or an flc_client_free under a
 * run, to say so). It may call flc_client_stop; never flc_client_free or flc_client_run. */
typedef void (*flc_log_fn)(void *user, flc_log_level level, const char *msg);

typedef enum flc_backend { FLC_BACKEND_CPU = 1, FLC_BACKEND_GPU, FLC_BACKEND_NPU, FLC_BACKEND_OTHER } flc_backend;

/* One tensor of a submodel, in the flat parameter layout (row-major, offsets in floats). */
typedef struct flc_tensor {
    const char *name;      /* "conv0.w", "dense1.b", "lstm0.w_hh", ... */
    size_t offset;         /* into flc_task.weights */
    size_t numel;                  /* the product of shape[0 .. ndim-1] */
    int ndim;                      /* 1 .. 4 */
    int shape[4];                  /* outermost first; the ndim used, then 1s */
} flc_tensor;

/* What a plug-in trainer receives: a genuinely smaller dense model (the submodel) to train. */
typedef struct flc_task {
    uint64_t round;
    const char *arch;              /* the global architecture spec, e.g. "cnn:10:28x28x1" */
    const char *sub_arch;          /* the submodel's own spec: for an mlp a spec of the kept
                                    * widths ("mlp:784-150-150-10"); for a cnn, an lstm or a
                                    * moge the full spec, '/', and the units each droppable layer
                                    * keeps ("cnn:10:28x28x1/24,48,1536"; a moge's second count is
                                    * experts, as many of each group); with nothing dropped, arch.
                                    * Two submodels of other shapes never share one. The shapes
                                    * themselves are in tensors. */
    int n_tensors;
    const flc_tensor *tensors;
    size_t n_params;               /* floats in weights */
    const float *weights;          /* the submodel as received (read-only) */
    int n_layers;                  /* droppable layers */
    const int *kept_units;         /* units kept per droppable layer */
    const int *full_units;         /* units of the full layer */
    /* The server's training configuration, as the built-in trainer runs it: epochs passes over
     * the samples, each in a fresh random order, in batches of batch_size (the last one smaller;
     * a batch at most the samples). Per batch, with g the gradient of the batch's mean
     * cross-entropy, as PyTorch's SGD: g += weight_decay w + prox_mu (w - task->weights) (an L2
     * weight decay on every weight, biases too, and FedProx's term prox_mu/2 |w - w0|^2 around
     * the weights received); v = momentum v + g (v zero at the task's start) when momentum is
     * not 0; then w -= lr (momentum ? v : g). The loss to report (flc_update.loss) leaves the
     * FedProx term out (models/flm_optim.h in the source tree is the reference). A trainer
     * is given no other values than epochs and batch_size >= 1, lr > 0, momentum in [0, 1),
     * weight_decay and prox_mu >= 0, all finite: the library takes no Task outside them. */
    uint32_t epochs, batch_size;
    float lr, momentum, weight_decay, prox_mu;
    uint64_t max_samples;          /* 0: all local samples. fedrop's server sets it to at most
                                    * the samples one update may count (its round's weight cap
                                    * over the clients per round, at most 2^20): train on no more
                                    * (the built-in trainer takes max_samples evenly spaced rows of
                                    * its samples, row floor(i n / max_samples) for i = 0, 1, ...:
                                    * not the first ones, which in a label-sorted set are its first
                                    * classes) */
    const void *lib_state;         /* the library's (flc_task_cancelled reads it): not for the
                                    * trainer (since 0.3.1) */
} flc_task;

/* 1 once the training of task will not be used: the client is stopping (flc_client_stop), its
 * session with the server is over (the link was lost, the server restarted), a Task that came
 * in meanwhile replaced this one, or the task's deadline passed (the Task's deadline_ms, when not
 * 0, counted from its arrival: the round is over, and the server would refuse the update as
 * late; said once at warn; 0.3.7 and earlier let it train on); else 0. A plug-in trainer that
 * runs long (an NPU's many batches) polls it between steps and, once it is 1, returns
 * FLC_ERR_CANCELLED, saving the device's time and battery (the library never sends the result
 * of such a training). How often: at least once per batch, as the built-in trainer does (before
 * each one), and so that no more than a fraction of a second of work passes between two polls:
 * that gap is how long a stop (flc_client_run returns only once the trainer has) or a training
 * past its deadline goes on. flc_task carries no deadline: a trainer cannot size its work to the
 * round's end, and need not; the library watches the deadline and this poll tells the trainer.
 * Call it only from the trainer, or a thread the trainer handed the work to and waits for,
 * during the call that got task (0 for NULL
 * or a task whose lib_state is NULL, as one a device fills in itself, zeroed, to test its
 * trainer; a copy of a task kept past the call must not be passed). Cheap (one atomic load) and
 * thread-safe. Since 0.3.1. */
int flc_task_cancelled(const flc_task *task);

/* What a plug-in trainer returns: the trained weights (same layout and length as task->weights;
 * the library provides the buffer, initialised to a copy of task->weights), the number of local
 * samples it trained on, and the mean training loss of its last epoch. */
typedef struct flc_update {
    float *weights;                /* n_params floats, written by the trainer */
    size_t n_params;
    uint64_t n_samples;
    double loss;
} flc_update;

/* Returns FLC_OK, or an error status. On an error, and also when the trainer returns FLC_OK but
 * reports n_samples 0, above task->max_samples (when that is not 0) or above the samples' n the
 * device declared (flc_config.samples, when set: flc_samples), a non-finite loss or one
 * outside [0, 1e40] (the server takes a cross-entropy), non-finite weights or a change of the
 * weights too large for the server's up codec to carry (e.g. above 65504 with f16)
 * (FLC_ERR_NUMERIC), or changed out->weights or out->n_params (FLC_ERR_INVALID_ARG: the weights are read from that
 * buffer), the library logs the failure once and tells the server this round failed: it sends
 * an Error message whose round and run id are the task's and whose code is that status (e.g. 4 for FLC_ERR_INTERNAL; a value not listed in flc_status,
 * as -1, is sent as FLC_ERR_INTERNAL, the value said in its message), so the
 * server need not wait for an update that will never come (a server started afresh meanwhile, a
 * new run, ignores it). The client then waits for its next task.
 * FLC_ERR_CANCELLED is no failure to report: it says the device is stopping the client (see
 * flc_client_stop), whether the plug-in returns it just before or just after that call. Nor is
 * any status returned once flc_task_cancelled is 1 (a stop, the session's end, a replacing Task,
 * the task's deadline: a trainer whose work was aborted under it may fail with an error of its
 * own), nor one returned after the task's deadline however the trainer ended: its result
 * would not have been used, so it is logged at info level, not error, the server is not told,
 * and flc_stats counts it in tasks_dropped, not rounds_failed. A
 * device that skips a round for reasons of its own (battery, heat) should return another status
 * (e.g. FLC_ERR_INTERNAL), so that the server hears of it and stops waiting for the update. */
typedef flc_status (*flc_train_fn)(const flc_task *task, flc_update *out, void *user);

/* Local samples for the built-in trainer. Float inputs (n, row_len) with row_len matching the
 * architecture's input (images channel-major, values as the server's evaluation data has them,
 * e.g. [0, 1]), or int32 token sequences (n, row_len = T) for token models; int32 labels (n).
 * The server picks the model: before the first training with a model (and again when its input
 * or classes change), the library checks that the samples fit it (row_len, float or token inputs,
 * every label below its classes, every token below its vocabulary). When they do not, it tells
 * the server the round failed, logs why, says Bye and flc_client_run returns FLC_ERR_DATASET; it
 * never reads past n * row_len values. Exactly one of x and tokens is set (both: FLC_ERR_INVALID_ARG
 * from flc_client_new), and n * row_len values of 4 bytes are an array that can exist (at most
 * PTRDIFF_MAX bytes: a garbage n or row_len whose product would wrap is FLC_ERR_INVALID_ARG from
 * flc_client_new, which 0.3.8 and earlier took).
 * n is also what the client tells the server it holds (its Hello), with either trainer: the
 * server refuses an update that claims more samples than that. A plug-in device tells it the
 * same way, with samples pointing at {NULL, NULL, NULL, n, 0} (only n read); without samples it
 * tells 0, "not said", and only the Task's max_samples caps its updates' n_samples. */
typedef struct flc_samples {
    const float *x;
    const int32_t *tokens;
    const int32_t *labels;
    size_t n;
    size_t row_len;                /* floats (x) or tokens per sample; required (> 0) */
} flc_samples;

typedef struct flc_config {
    const char *server_endpoint;   /* "tcp://host:5555", "tcp://[::1]:5555" or "ipc:///path" (required) */
    const char *client_id;         /* this device's stable id (required) */
    /* CURVE keys, Z85 text (40 characters that decode to 32 bytes). server_public_key NULL: plain
     * text (the server must run --insecure), and then public_key and secret_key must be NULL
     * too. With server_public_key, secret_key is required; public_key may be NULL (derived from
     * secret_key) and, if given, must be secret_key's. */
    const char *server_public_key;
    const char *public_key;
    const char *secret_key;
    void *zmq_context;             /* NULL: the client makes and owns its own */
    /* Capabilities announced to the server (in the Hello): backend, what trains here (0:
     * FLC_BACKEND_CPU), memory_bytes and flops, the sustained FLOP/s the device claims (0: not
     * said). fedrop's server reads memory_bytes alone; backend and flops are carried for servers
     * that use them (its selection knows neither: a plug-in that is fast or slow shows to it only
     * by when its updates arrive). */
    flc_backend backend;
    /* Memory the client may use for a task (0: not said, no limit). The server does not select a
     * client for a run whose submodel needs more by the estimate below (fedrop's server; it logs
     * that). The client also keeps to it:
     * a Task whose submodel would need more, estimated at 16 bytes per submodel parameter (the
     * received and working weights, the gradient, the encoded update) plus 8 per model parameter
     * with a top-k up codec (its error-feedback residual and the residual's rewind copy, see
     * Memory above), is refused before anything is allocated, and the server is told at once (an
     * Error of that round, "task refused: ...").
     * Batch activations and the optimizer's momentum come on top: leave room for them. */
    uint64_t memory_bytes;
    double flops;
    /* How to train: train != NULL selects the plug-in trainer, else the built-in one on samples. */
    flc_train_fn train;
    void *train_user;
    const flc_samples *samples;
    uint64_t seed;                 /* local randomness (batch order, codec dither); 0: from id */
    /* Timing (milliseconds; 0: default; negative: FLC_ERR_INVALID_ARG). */
    int heartbeat_ms;              /* default 1000 */
    int liveness_ms;               /* silence before the server is considered gone; default 10000.
                                    * An idle client hears the server's Heartbeats, one each
                                    * server.heartbeat_ms (1000 by default): keep it several
                                    * times that (a shorter one reconnects again and again,
                                    * said with the reason) */
    int reconnect_min_ms;          /* backoff starts here (default 200) ... */
    int reconnect_max_ms;          /* ... and doubles up to this (default 10000); each wait is
                                    * half the backoff plus up to as much at random */
    int max_rounds;                /* return after this many uploaded updates (flc_stats.updates_sent;
                                    * and the server's answer to the last one); 0: until
                                    * Bye("done"); < 0: invalid */
    flc_log_fn log;                /* NULL: silent */
    void *log_user;
    flc_log_level log_level;
    /* Built-in trainer: the threads its matrix products may use (0: 1; at most 1024). fedrop
     * multiplies through OpenBLAS, loaded (dlopen) by flc_client_new on the calling thread,
     * single-threaded: a large product is cut into blocks by its shape alone, at most 16, shared
     * out among these threads (started for each such product, joined at its end), so the
     * trained weights are the same bits whatever the count, and no product runs on more than 16
     * threads: a count above 16 gains nothing. The count is the process's: set it the same in
     * every client of a process. When OpenBLAS is not yet loaded, flc_client_new sets in the
     * environment OPENBLAS_NUM_THREADS (to 1, if unset, so that OpenBLAS starts no idle pool;
     * child processes inherit it) and OPENBLAS_CORETYPE (if unset, to the CPU's kernel family:
     * OpenBLAS's own detection picks slow generic kernels on many virtual machines), before any
     * training thread exists; call it before threads of your own read the environment, or set
     * both variables yourself. A name of your own that OpenBLAS passes over (one it does not
     * know, such as a typo, or will not run on this CPU: it then runs its own detection's pick)
     * is said at warn by flc_client_new, naming the kernel that runs (since 2026-12-07). */
    int threads;
} flc_config;

/* Statistics of a client's life so far. */
typedef struct flc_stats {
    uint64_t rounds_trained;       /* local trainings that finished (whatever became of the
                                    * update), but the built-in trainer's that were cancelled
                                    * (flc_client_run) */
    uint64_t updates_accepted;
    uint64_t updates_late;         /* dropped by the server: the round had closed */
    uint64_t reconnects;           /* times the client started over with the server: connected
                                    * anew (a lost link, a Bye but "done", a refused Hello or
                                    * handshake) or, on the same connection, registered again
                                    * with a server that no longer knew it (Error(unknown
                                    * client): it restarted behind a link ZeroMQ restored, or
                                    * timed the client out). A Hello sent again because the last
                                    * one went unanswered is no new start. */
    uint64_t bytes_down, bytes_up; /* payload bytes of the weight chunks taken / the delta
                                    * chunks sent (of every download and upload, also one cut
                                    * short) */
    double last_loss;              /* the training loss of the last update sent in full
                                    * (updates_sent); 0 before the first */
    uint64_t updates_sent;         /* updates sent in full (or cut short by the server's answer):
                                    * what max_rounds counts */
    uint64_t rounds_failed;        /* tasks that failed here, each reported to the server (an
                                    * Error; counted even when that Error could not be sent, the
                                    * session then lost): a training that failed (the trainer's
                                    * status, or FLC_ERR_NUMERIC), a task refused (memory_bytes,
                                    * caps; its Task sent again, of the same round and run,
                                    * counts once), or one whose weight chunk did not decode */
    uint64_t updates_refused;      /* sent, and refused by the server for another reason than
                                    * lateness (a value or count out of its bounds: the log says
                                    * which); sent = accepted + late + refused once all are Acked.
                                    * Each update counts once: in updates_sent and then by its
                                    * first answer (a second one is ignored), or in tasks_dropped.
                                    * An answer that comes for an update the library gave up
                                    * (tasks_dropped) is logged (info) and counted nowhere else:
                                    * an update is given up only before its last chunk went out,
                                    * so no server has it in full (one that says it accepted it
                                    * does not keep to the protocol: said at warn). 0.3.6 and
                                    * earlier counted such answers here too */
    uint64_t tasks_dropped;        /* tasks whose update did not reach the server in full: a
                                    * download cut short, a training finished but not sent, or
                                    * cut short (or failed once it was cancelled: flc_train_fn),
                                    * or an upload cut short, because a newer Task came in (the
                                    * server closed that round without this client, or
                                    * restarted), the session ended, a send failed, or the
                                    * client was stopped; or a download still incomplete once
                                    * the Task's deadline passed (counted from its arrival):
                                    * the partial task's memory is then given back at once (a
                                    * download that only slows down is kept, however long no
                                    * chunk comes: the server shares its downlink among every
                                    * client downloading); or an upload still waiting for the
                                    * server's credits liveness_ms after the Task's deadline
                                    * (or after the upload began, if later), whose answer (the
                                    * round closed) did not come; or a training still running
                                    * once the Task's deadline passed (cancelled then:
                                    * flc_task_cancelled) or ended after it, whose update is not
                                    * sent (0.3.7 and earlier sent it, to be answered late:
                                    * updates_late). A device
                                    * slower than its server's rounds, on its downlink or in
                                    * training, shows here, where the server counts it late or
                                    * missing (updates_late counts only the updates the server
                                    * answered late). Since 0.2.1 (appended); since 0.3.7 it
                                    * also counts a download cut short, a training that failed
                                    * once cancelled, and the downloads and uploads past their
                                    * round's deadline, which 0.3.6 and earlier counted
                                    * nowhere (FLC_VERSION_NUMBER tells which counting) */
    uint64_t memory_needed;        /* the server's answer to the last Hello: the memory (bytes,
                                    * about) that a submodel of its model needs, where
                                    * memory_bytes is below it: the server admits this client
                                    * but will not select it, and says so ("the server says:
                                    * ..." at warn); 0 when it fits, or from a server before
                                    * 0.3.2. Set before that warning is logged, on
                                    * flc_client_run's thread: a log callback may read it there
                                    * and call flc_client_stop to give up. Since 0.3.2 (appended) */
    uint64_t handshakes_unanswered; /* CURVE handshakes that the endpoint ended without an
                                    * answer (it hung up) before this client's first handshake
                                    * that succeeded: a wrong server_public_key, or no server
                                    * behind the endpoint (a load balancer or proxy whose server
                                    * is down, a server over its connection limit), which look
                                    * the same then. Retried with the reconnect backoff for as
                                    * long as they last (flc_client_run: Refusal); a program
                                    * that would rather give up reads this in its log callback
                                    * (set before anything about the handshake is logged, on
                                    * flc_client_run's thread) and calls flc_client_stop. Counts
                                    * no more once a handshake succeeded (the key is proven).
                                    * Appended in 0.3.8 (0.3.7 and earlier gave up after 3 of
                                    * them with FLC_ERR_AUTH) */
} flc_stats;

typedef struct flc_client flc_client;

/* A client with cfg, in *out (set to NULL on failure). Does not connect yet. cfg is validated
 * first: required fields (samples->row_len with the built-in trainer), a server_endpoint a client
 * can connect to (tcp://HOST:PORT, HOST not the bind-all "*" (nor "[*]", nor after a SOURCE's
 * ';'), an IPv6 address in both its brackets, no ':' in HOST outside them ("tcp://::1:5555"
 * is refused: 0.3.8 and earlier took it), no blank or control character in HOST, nor another
 * character libzmq's connect refuses ('!', ',', '/', a UTF-8 name's bytes; '-' or '_' first) (a
 * tab was libzmq's "Invalid argument" at the connect, FLC_ERR_TRANSPORT from flc_client_run; a
 * space a name retried for ever); ipc://PATH; inproc://
 * only with zmq_context), enum ranges (backend, log_level), threads in 0 .. 1024, timing fields
 * and max_rounds >= 0, heartbeat_ms >= 10 and below liveness_ms,
 * reconnect_min_ms <= reconnect_max_ms, a client_id the wire takes (UTF-8, at most 1024 bytes,
 * no control character), flops finite and >= 0, keys that are Z85 CURVE keys, no key of the
 * client's without server_public_key, and a public_key that is secret_key's. On
 * FLC_ERR_INVALID_ARG (also for cfg or out NULL) the library logs which field is wrong, at error
 * level, through cfg->log (the logger is set up before anything is checked). FLC_OK,
 * FLC_ERR_INVALID_ARG, FLC_ERR_NOMEM, FLC_ERR_TRANSPORT. */
flc_status flc_client_new(const flc_config *cfg, flc_client **out);

/* Connects, registers and serves tasks until the server says the run is done (FLC_OK), max_rounds
 * updates were uploaded (FLC_OK, once the server answered the last one or liveness_ms passed
 * without an answer, so flc_stats.updates_accepted counts it), flc_client_stop was called
 * (FLC_ERR_CANCELLED), the server refuses this client (FLC_ERR_AUTH), the built-in trainer's
 * samples do not fit the server's model (FLC_ERR_DATASET: the server was told the round failed,
 * then Bye; a plug-in's FLC_ERR_DATASET fails its round only), or a socket cannot be made or the
 * endpoint is not one ZeroMQ can connect to (FLC_ERR_TRANSPORT). The process being out of file
 * descriptors (RLIMIT_NOFILE) when a connection is to be opened, at the start or a reconnection,
 * is one such case, logged ("out of file descriptors ..."): libzmq would abort the process then.
 * A process that runs many clients gives them one zmq_context: each context of its own takes
 * a few descriptors and two threads.
 *
 * Refusal: the CURVE handshake is watched (a ZeroMQ socket monitor). A handshake the server
 * refuses (its ZAP handler: this public key is not on its allow-list), one that meets a server of
 * the other mechanism (CURVE against a plain-text server, or the other way round; once that was
 * seen, also that server's hang-ups before its greeting is read, which is how the mismatch often
 * shows) or one that fails on a protocol error is retried with the reconnect backoff; after 3
 * such failures in a row, with no successful handshake between them, flc_client_run returns
 * FLC_ERR_AUTH. The few retries leave room for an allow-list the server reloads, without
 * retrying forever. libzmq reports a mismatch only when the client read the server's greeting
 * before the server hung up, which it mostly does not; so at the first handshake that fails
 * without detail (a hang-up) since the run's start or the last handshake that succeeded, the
 * client probes the endpoint (tcp:// and ipc://): a connection of its own that reads the
 * server's greeting, which names its mechanism, and closes (at most 2 s, cut short by
 * flc_client_stop; the server sees a connection that ended mid-greeting and logs nothing). A
 * server of the other mechanism is then known at the first connection, and said naming it ("its
 * greeting names CURVE"); until 2026-12-05 the client retried until libzmq happened to report
 * it (3-70 s at the default backoff; a CURVE client against a plain-text server could retry for
 * ever). An endpoint that takes each connection and closes it (a proxy with no server behind
 * it) sends no greeting: while no probe of the streak read one, every 8th hang-up is probed again,
 * so that a server which comes up behind it later is still named (within 8 retries), for at most
 * one connection more in 8.
 * A CURVE handshake that the endpoint ends without an answer (it hangs up) is no refusal: before
 * this client's first handshake that succeeded it is a wrong server_public_key (the server
 * cannot open the client's HELLO and hangs up) or no server behind the endpoint (a load
 * balancer or proxy whose server is down, a server over its connection limit), which the client
 * cannot tell apart. It is logged once at warn (asking both questions),
 * counted in flc_stats.handshakes_unanswered, and retried with the reconnect backoff for as long
 * as it lasts, so that a device started while its server is down comes in when the server is
 * back; a program that would rather give up on a key it suspects reads that count in its log
 * callback (called on the thread of flc_client_run, which logs each reconnection at info:
 * "reconnecting in N ms") and calls flc_client_stop. (0.3.7 and earlier returned FLC_ERR_AUTH
 * after 3 of them: within half a second at the default backoff.) After a handshake succeeded,
 * such hang-ups are network errors (below). An Error(auth) from the server (answering the Hello:
 * the id is taken by another key; or later: the key was taken off the allow-list) also gives
 * FLC_ERR_AUTH, at once.
 *
 * Lost connections are retried with exponential backoff (from reconnect_min_ms again once the
 * client registered), each wait drawn between half the backoff and all of it, so that a fleet
 * does not come back at one instant; a server restart is survived. Only a valid message of the
 * protocol counts as word from the server: a peer that sends nothing else (not a fedrop server,
 * another protocol version) is left at liveness_ms like a silent one ("no valid message from EP
 * ..."), its malformed messages said once a session at warn level, the rest at debug (so is a
 * message no server sends: a Hello, an Update, a Chunk of an update, which is not Acked nor
 * counted in bytes_down). A connection that something at
 * the endpoint takes and closes before a handshake ends the attempt and the backoff applies (at
 * the first such loss in a session that never reached the server, at the second since its link
 * was lost in one that did). So, for ever, are CURVE
 * handshakes that fail without a refusal after one had succeeded (as network errors); 3 in a row
 * are logged (warn) as a server whose key may have changed: server_public_key must then be its
 * new one. Whenever it returns while registered (done, max_rounds, stop, unfit samples) it first
 * says Bye, so the server drops the client at once instead of waiting out its liveness timeout
 * (unless its link to the server is known to be down: see flc_client_free).
 * Blocks the calling thread.
 *
 * A training in progress when its session with the server ends (the server says Bye, the
 * connection is lost, or the server no longer knows the client: a restart) has no one to send
 * its update to. The built-in trainer is then cancelled (before its next batch, or, past its
 * last batch, before its update is sent), which is no failed round: nothing is told to the
 * server, flc_stats counts it neither in rounds_trained nor in rounds_failed, and the
 * error-feedback residual stays as it was before that training (0.3.8 and earlier changed it,
 * and counted the training, when the cancel came while the update was encoded); the
 * client reconnects at once. A plug-in trainer cannot be cancelled: the client reconnects,
 * registers and sends heartbeats while it runs on, and what it returns is not sent (a success
 * counts in rounds_trained, and leaves the residual as it was too); a Task of the new session
 * that came in meanwhile is trained once it has returned (one training at a time). A training still running once its Task's deadline_ms
 * (when not 0) passed since the Task came in is cancelled the same way, the session going on:
 * its round is over (fedrop's server closes a round at its deadline and refuses a later update
 * of it, Ack(of UPDATE, FL_ERR_ROUND_CLOSED)), so its update is not sent, nor is one that ended
 * after the deadline; logged once at warn, counted in flc_stats.tasks_dropped, nothing told to
 * the server (it counts this client late).
 *
 * Threads: each local training runs on a thread the library starts for it (one per task, joined
 * when it ends), so that heartbeats and stop go on while it trains. The plug-in trainer is called
 * on that thread, not on the thread of flc_client_run; a trainer bound to one thread (a GPU or
 * NPU context, JNI) must hand the work to a thread of its own. The log callback is called from
 * both threads, possibly at the same time: it must be thread-safe. flc_client_stats must not be
 * called from the trainer. When that thread cannot be started (pthread_create fails: the
 * process's thread limit, or memory), the training runs on the thread of flc_client_run instead,
 * logged at warn ("cannot start a training thread"): nothing else happens on it meanwhile, so no
 * heartbeats go out (a training longer than the server's liveness timeout then loses its round:
 * the server drops the client, which registers again) and flc_client_stop is heard through the
 * trainer alone (the built-in one stops before its next batch; a plug-in that polls
 * flc_task_cancelled).
 *
 * Once flc_client_stop was called the client stays stopped: a later flc_client_run returns
 * FLC_ERR_CANCELLED at once. To pause and resume, free the client and make a new one. A later
 * flc_client_run after one that returned FLC_OK goes on with the same client and its statistics:
 * one that ended at max_rounds updates returns FLC_OK at once (the count is the client's, not the
 * call's); make a new client for max_rounds more. FLC_ERR_INVALID_ARG for c NULL; FLC_ERR_STATE
 * (said at error level) while another flc_client_run of c is in progress, on another thread or
 * calling this one from its trainer or log callback (0.3.8 and earlier hung both). */
flc_status flc_client_run(flc_client *c);

/* Asks a running flc_client_run to return: it does at once (every wait of the library is woken
 * by it). A local training in progress is cut short too: the built-in trainer stops before its
 * next batch (so within one batch's forward and backward). A plug-in trainer (flc_config.train)
 * is the device's code, which the library cannot stop: run returns once it does. A plug-in that
 * may run long should poll flc_task_cancelled (or watch the device's own reason for calling
 * stop) and return FLC_ERR_CANCELLED. A training cut short is not reported to the server as a failure: the Bye
 * that follows drops the client, and its round counts the update as missing. Async-signal-safe
 * and thread-safe. An idle client wakes about twice per heartbeat_ms, not more often. c must not
 * be freed meanwhile: a signal handler runs on any thread that leaves the signal unblocked (the
 * training thread inherits the mask of flc_client_run's), so a program that stops on a signal
 * blocks it before flc_client_new and takes it on a thread of its own with sigwait, which calls
 * stop no more once flc_client_free begins (fl_client/examples/device.c, which also passes on a
 * signal that lands on a thread made before main). NULL is a no-op. */
void flc_client_stop(flc_client *c);

/* The client's statistics (all zero for NULL): a pointer into c, valid until flc_client_free,
 * whose fields flc_client_run updates as it goes, without a lock. Read them on the thread of
 * flc_client_run (its log callback when called there: the log callback also runs on the training
 * thread, where it must not read them) or once flc_client_run has returned; never from the
 * trainer or from another thread while a run is in progress. */
const flc_stats *flc_client_stats(const flc_client *c);

/* NULL is a no-op. While an flc_client_run of c is in progress (on another thread, or this is
 * called from its trainer or log callback) c is not freed: the library logs that at error level
 * and returns (c stays allocated: call flc_client_stop, and free c once run has returned); 0.3.8
 * and earlier freed it under the run. Waits for a training still running, then releases
 * everything. There is no
 * connection left to say Bye on: flc_client_run said it before returning, and that Bye may keep
 * the client's own ZeroMQ context here for at most 200 ms while it leaves (not at all when the
 * link to the server was known to be down: the Bye is then not sent). With a caller's
 * zmq_context (flc_config.zmq_context) that wait, if any, is in the caller's zmq_ctx_term
 * instead. */
void flc_client_free(flc_client *c);

#ifdef __cplusplus
}
#endif

#endif
