/* flc_core.h: the IO-free client core of fedrop (shared DESIGN.md, "One round, as data flows",
 * step 2). libflclient (ZeroMQ) and fl_sim (in-process queue) run this very code.
 *
 * No sockets, clocks or files. The host feeds it the decoded messages of one Task (the Task, then
 * its weight chunks in any order); once the weights are complete it trains (the built-in CPU
 * trainer on the host's samples, or the trainer callback a device provides), computes the delta
 * of the submodel, encodes it chunk by chunk with the uplink codec and exposes the Update message
 * and its chunks for the host to send.
 *
 *   flc_core_on_message(Task)      a new task: drops any unfinished one (a Task of another server
 *                                  run than the last one named resets the residual to zero; with
 *                                  the rewind point on, a Task for the round last trained
 *                                  restores the residual first)
 *   flc_core_on_message(Chunk)     decodes the chunk into the submodel weights
 *   flc_core_ready()               all weight chunks arrived (and the task was not trained yet,
 *                                  nor failed to train: a task is trained at most once)
 *   flc_core_train()               trains and encodes the update
 *   flc_core_update(), flc_core_update_chunk(i)   what to send
 *
 * Error feedback (for pipelines with a top-k stage, whose dropped mass is large): the residual is
 * kept in GLOBAL coordinates (full model size), so it survives keep-sets that change from round
 * to round: before encoding, the kept coordinates' residual is added to the delta; afterwards what
 * the server will not see, (delta + residual) - decode(payload), is stored back. That is so
 * whatever becomes of the update once encoded: one the server answers late, or one encoded and
 * then not sent (its deadline passed), leaves the residual as one it aggregated would, and what
 * its payload held is lost with it (the rewind point restores the residual only for a round the
 * server replays, and for a training the host cancelled after its trainer's last step,
 * flc_core_drop_update: a cancelled training changes nothing). An encoding that fails, part way
 * or not, changes nothing either, with or without the rewind point: the residual is stored once
 * every chunk has encoded. fl_sim
 * does the same (its late updates were encoded like the others), so its runs and a fleet's
 * agree.
 *
 * Chunks decode into the weights as received (w0) and are copied to the working weights while in
 * cache; after training the delta w - w0 is formed one chunk at a time into a chunk-sized scratch
 * buffer right before that chunk is encoded (no full-model delta pass).
 *
 * Thread-safety: one flc_core is driven by one thread (cfg.cancel alone may be set by another, or
 * by a signal handler). Memory: the submodel's weights, its initial copy, the training runtime, the
 * encoded update (compressed), one chunk of scratch, the last task's submodel maps (a few KB,
 * reused by a Task of the same architecture and keep-set), and the full-size residual only for
 * top-k pipelines (with the rewind point on, flc_core_keep_rewind_point, a full-size copy of it
 * too). All but the residual are kept from task to task for reuse, until flc_core_release or
 * flc_core_free. The weights (and, with flc_core_set_own_pages, the encoded update) are
 * fl_big_alloc buffers (fl_mem.h): from 1 MiB on, pages of their own that go back to the system
 * when freed.
 */
#ifndef FLC_CORE_H
#define FLC_CORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_log.h"
#include "fl_status.h"
#include "flm_arch.h"
#include "flm_model.h"
#include "flm_submodel.h"
#include "flp_wire.h"

/* What a plug-in trainer gets: the submodel's architecture and keep-set, the training config of
 * the Task, and its weights (sub->n_params floats, in the flat layout of flm_arch) to update in
 * place. It reports the local samples used and the mean training loss of its last epoch, and
 * returns FL_OK or an error status (the host then sends an Error instead of an Update). */
typedef struct flc_core_job {
    uint64_t round;
    const flm_arch *full;          /* the global architecture */
    const flm_arch *sub;           /* the submodel's architecture */
    const flm_keepset *keep;       /* which units of each droppable layer the submodel keeps */
    const flp_train_config *train;
    const float *w_global;         /* the weights as received (for a FedProx term) */
    uint64_t seed;                 /* the client's seed for its batch order this round */
    char *why;                     /* a trainer that fails may say why here (whycap bytes, ""
                                    * on entry); the round's failure is then logged in these
                                    * words instead of "failed with status N" */
    size_t whycap;
} flc_core_job;

typedef fl_status (*flc_core_train_fn)(void *user, const flc_core_job *job, float *params,
                                       uint64_t *n_samples, double *loss);

typedef struct flc_core_config {
    const char *client_id;         /* copied; the Update's sender */
    uint32_t client_key;           /* mixed into the codec keys and batch-order streams; a Task
                                    * naming another (Task.client_key) overrides it for that
                                    * Task */
    uint64_t seed;                 /* the client's seed */
    const flm_samples *data;       /* built-in trainer: the local samples (caller keeps them
                                    * alive); with a plug-in, only n is read (the most samples
                                    * an update may claim), and NULL: no bound */
    flc_core_train_fn train;       /* plug-in trainer; NULL: the built-in one (needs data) */
    void *train_user;
    fl_logger log;                 /* copied */
    const atomic_int *cancel;      /* built-in trainer: once *cancel != 0 it stops before its next
                                    * batch (FL_ERR_CANCELLED); NULL: never. Read, never written */
} flc_core_config;

typedef struct flc_core flc_core;

/* FL_OK, FL_ERR_INVALID_ARG (no client id; neither data nor a trainer), FL_ERR_NOMEM. */
fl_status flc_core_new(const flc_core_config *cfg, flc_core **out);
void flc_core_free(flc_core *c); /* NULL is a no-op */

/* Gives the core a new identity (client id, key, seed, data, trainer, logger: cfg as for
 * flc_core_new) and drops any task it holds, keeping its buffers, codec context and training
 * runtime: a host that plays many clients in turn (the simulator) reuses one core per thread
 * instead of creating one per client. The error-feedback residual is not touched (a host that
 * reuses cores swaps each client's in and out with flc_core_swap_residual); the server run last
 * named is forgotten (the next Task's run id resets nothing). FL_OK,
 * FL_ERR_INVALID_ARG (cfg as flc_core_new refuses it; the core is then unchanged), FL_ERR_NOMEM. */
fl_status flc_core_rebind(flc_core *c, const flc_core_config *cfg);

/* 1 while the core holds a task that is still to be trained: its weights are coming in, or are
 * complete and not trained yet (a task trained, failed or refused is none). */
int flc_core_busy(const flc_core *c);

/* Drops any task the core holds and frees everything it allocated for tasks: the weights, the
 * training runtime (the built-in trainer's model and optimizer state), the encoded update, the
 * scratch, the last submodel's maps and the codec context. Kept: the identity, the settings, the
 * last stats, and the error-feedback residual with its rewind point (they carry from round to
 * round). The next Task allocates afresh. For a host whose core waits long between tasks
 * (libflclient, once a round's update is sent or its task dropped); a host that reuses a core at
 * once (the simulator) does not call it. */
void flc_core_release(flc_core *c);

/* Tasks whose full model has more than n parameters are refused (FL_ERR_MODEL_SPEC) before
 * anything is allocated: a hostile or mistaken server could otherwise ask for gigabytes. The
 * default is 2^28 floats (1 GiB); 0 restores it. */
void flc_core_set_max_params(flc_core *c, size_t n);

/* on: the plug-in trainer only wraps flc_core_builtin_train (to time it, to log), calling it with
 * the params it got. After flc_core_set_weights_borrowed those params are then not filled before
 * the call: the built-in trainer starts from the borrowed weights itself, without a copy (if the
 * plug-in returns without calling it, the core fills them afterwards). Off (the default): params
 * always hold the received weights when the plug-in is called. Kept across flc_core_rebind. */
void flc_core_set_trainer_wraps_builtin(flc_core *c, int on);

/* What the core holds for a task's submodel, estimated: flm_train_memory_need (models/flm_arch.h;
 * the server's selection uses the same estimate). */
#define FLC_CORE_BYTES_PER_PARAM FLM_TRAIN_BYTES_PER_PARAM
uint64_t flc_core_memory_need(size_t sub_params, size_t full_params, int residual);

/* Tasks whose flc_core_memory_need is above bytes are refused (FL_ERR_MODEL_SPEC) before any
 * weight buffer is allocated. 0 (the default): no limit but max_params. */
void flc_core_set_memory_limit(flc_core *c, uint64_t bytes);

/* Why the last Task was refused, for the Error the host sends about it (also logged, at error
 * level, when the Task is refused); "" when it was accepted. */
const char *flc_core_task_error(const flc_core *c);

/* A decoded (hence validated) message from the server. Task: starts a new job, checking that the
 * architecture parses and is no larger than max_params (FL_ERR_MODEL_SPEC), that the keep-set fits it, that the codec specs parse and that the tensor
 * headers are exactly the submodel's (names and sizes): FL_ERR_MODEL_SPEC, FL_ERR_KEEPSET,
 * FL_ERR_CODEC_SPEC, FL_ERR_WIRE_SHAPE. A Task whose run id (flp_task.run_id, nonzero) differs
 * from the last nonzero one seen comes from a new server run: the error-feedback residual belongs
 * to the old run and is reset to zero first (logged; 0, an older server, changes nothing).
 * Chunk (down): checked against the tracker (range,
 * duplicates), decoded into place: FL_ERR_WIRE_CHUNK_*, FL_ERR_CODEC_*, FL_ERR_STATE (no task or
 * another round). A chunk of the other direction (an update's: no server sends one) is
 * FL_ERR_WIRE_FIELD, the task left as it was. Each refused chunk is logged here once, but for
 * FL_ERR_STATE (the host knows best whether a chunk of no task held is worth a word). Other
 * types: FL_OK, ignored. */
fl_status flc_core_on_message(flc_core *c, const flp_msg *m);

/* 1 when a task's weights are complete and not yet trained. */
int flc_core_ready(const flc_core *c);
/* The round of the current task, or UINT64_MAX when none. */
uint64_t flc_core_round(const flc_core *c);
/* The run id of the last task (flp_task.run_id; 0: not told), for messages about it. */
uint64_t flc_core_task_run_id(const flc_core *c);

/* Trains the ready task and encodes the update. FL_ERR_STATE (not ready), the trainer's status,
 * FL_ERR_NUMERIC (the trainer reported 0 samples, more than the task's max_samples or a
 * non-finite loss, or a weight is non-finite after training), codec errors, FL_ERR_NOMEM, FL_ERR_CANCELLED (the built-in trainer saw
 * cfg.cancel, or a plug-in trainer returned it). A failure (other than FL_ERR_STATE) is logged
 * once, at error level (a cancellation, or any failure once cfg.cancel was set, at info level),
 * with what went wrong (flc_core_train_error); either way the task is not trained again. */
fl_status flc_core_train(flc_core *c);

/* After a successful flc_core_train whose update will not be sent because the host cancelled
 * the training after its trainer's last step (while the update was encoded, or before the host
 * looked at the result: libflclient's stop, a session's end, a replacing Task, a deadline): puts
 * the error-feedback residual back as it was before that training, from the rewind point
 * (flc_core_keep_rewind_point), and drops the update, so that such a training leaves the
 * residual as a training cancelled before its last step does. The task is not trained again
 * (as after a failure): flc_core_update and flc_core_update_chunk then give FL_ERR_STATE.
 * FL_OK; FL_ERR_STATE (nothing trained, the payload taken, or a top-k uplink without the rewind
 * point of this training: nothing changed then). */
fl_status flc_core_drop_update(flc_core *c);

/* Why the last flc_core_train failed, a few words for a log line or an Error message to the
 * server ("the plug-in trainer failed with status 4", "the trainer reported 0 samples", ...);
 * "" after a success or before any training. Valid until the next flc_core_train. */
const char *flc_core_train_error(const flc_core *c);

/* After a successful flc_core_train: the Update message, naming the run of its Task (pointers valid
 * until the next Task or flc_core_free). */
fl_status flc_core_update(const flc_core *c, flp_msg *out);
/* Number of chunks of the update, over all tensors, and chunk i (0-based, tensor-major order) as a
 * Chunk message (payload points into the core). */
uint32_t flc_core_update_chunks(const flc_core *c);
fl_status flc_core_update_chunk(const flc_core *c, uint32_t i, flp_msg *out);

/* After a successful flc_core_train: hands the update's payload bytes to the caller instead of
 * copying them (the chunks back to back in flc_core_update_chunk order, *len bytes in all; each
 * chunk's length is its flc_core_update_chunk payload_len, so read those first). The caller owns
 * *pay (free() it). Afterwards the core has no chunks to give (flc_core_update_chunks returns 0,
 * flc_core_update_chunk FL_ERR_STATE) until its next training. FL_OK, FL_ERR_STATE (nothing
 * trained, or already taken, or flc_core_set_own_pages on), FL_ERR_INVALID_ARG. */
fl_status flc_core_take_payload(flc_core *c, uint8_t **pay, size_t *len);

/* on: the encoded update's buffer is an fl_big_alloc one (fl_mem.h: from 1 MiB on, pages of its
 * own, unmapped by flc_core_release), for a host that releases the core's buffers between rounds
 * (libflclient); its payload cannot then be taken (flc_core_take_payload). Off (the default):
 * malloc'd, so that a host that takes one payload per client (the simulator) gets the heap's
 * reuse, not fresh pages each time (a round of bench_sim took 0.18 s instead of 0.10 with them).
 * Set it before the first Task. */
void flc_core_set_own_pages(flc_core *c, int on);

/* The built-in CPU trainer (flm_train_local on the core's data with the job's training config
 * and the batch-order stream (seed, round, client key, FL_RNG_BATCH)), reusing the core's training
 * runtime. For a plug-in trainer that wraps it (to time it, to log, ...): call it from the
 * callback with the arguments the callback got. It stops before its next batch once cfg.cancel is
 * set (FL_ERR_CANCELLED). FL_ERR_INVALID_ARG when the core has no data, else flm_train_local's
 * status. */
fl_status flc_core_builtin_train(flc_core *c, const flc_core_job *job, float *params,
                                 uint64_t *n_samples, double *loss);

/* Declares the width of the data's rows (floats of a row of x, or tokens of a row of tokens):
 * the built-in trainer then checks that the task's model fits the data before it trains (input
 * width, float or token inputs, labels below the model's classes, tokens below its vocabulary)
 * and fails with FL_ERR_DATASET_FORMAT, flc_core_train_error saying why, when it does not.
 * 0 (the default): not checked, for a host that has checked its data against the model itself
 * (the simulator). FL_OK, or FL_ERR_INVALID_ARG for c NULL. Kept across flc_core_rebind. */
fl_status flc_core_set_row_len(flc_core *c, size_t row_len);

/* Statistics of the last trained task. */
typedef struct flc_core_stats {
    uint64_t round;
    uint64_t n_samples;
    double loss;
    uint64_t bytes_down;           /* payload bytes of the task's weight chunks */
    uint64_t bytes_up;             /* payload bytes of the update's chunks */
    size_t sub_params;             /* parameters of the submodel */
    double train_flops;            /* approximate FLOPs of the local training */
} flc_core_stats;
const flc_core_stats *flc_core_last_stats(const flc_core *c);

/* The submodel weights as received (valid while a task is held), for hosts that evaluate. */
const float *flc_core_weights(const flc_core *c);

/* For an in-process host that gives many client cores the same Task and the same weight chunks
 * (a shared keep-set: the simulator): after the Task, instead of its chunks, the weights those
 * chunks decode to (the submodel's n_params floats, e.g. flc_core_weights of a core that decoded
 * them), borrowed: they must stay valid and unchanged until flc_core_train has returned. The core
 * reads them in place as the received weights (the delta's reference, FedProx's anchor), and its
 * working weights start as a copy of them: the built-in trainer's first step reads them and writes
 * the working weights (flm_train_local_from), so they are not copied at all (a plug-in trainer
 * gets a copy, unless flc_core_set_trainer_wraps_builtin): no decode and no copy per client, and the same
 * bits. bytes_down: what the chunks weighed, for the stats. The core is then ready.
 * FL_ERR_STATE without a task, or once a chunk was accepted or the task is complete. */
fl_status flc_core_set_weights_borrowed(flc_core *c, const float *w_sub, uint64_t bytes_down);
const flm_arch *flc_core_sub_arch(const flc_core *c);

/* Exchanges the core's error-feedback residual (global coordinates, *n floats, or NULL / 0) with
 * the caller's: a simulator that reuses cores across virtual clients keeps each client's residual
 * itself and swaps it in before flc_core_train and out afterwards. Ownership moves with the
 * pointer (malloc'ed; free() it). A residual whose length is not the model's is replaced by zeros
 * at the next train. */
void flc_core_swap_residual(flc_core *c, float **resid, size_t *n);

/* on: before each training with error feedback (a top-k uplink) the core keeps a copy of the
 * residual as it was (one more model-sized buffer). A Task for that same round again, which means
 * the server went back to its checkpoint and replays the round, restores the residual from it, so
 * the replay trains and encodes exactly as the first time: a server stopped or killed mid-round
 * and resumed then ends with the uninterrupted run's model, bit for bit. A Task for an earlier
 * round (the server lost several rounds) cannot be rewound: logged, and training goes on from the
 * current residual. Off by default; flc_core_rebind, flc_core_swap_residual and a Task of a new
 * server run turn the snapshot it holds invalid (it was another residual's, or another run's). The device client (libflclient) turns it on; the
 * simulator, which never replays a round, does not. */
void flc_core_keep_rewind_point(flc_core *c, int on);

#endif
