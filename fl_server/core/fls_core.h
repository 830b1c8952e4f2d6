/* fls_core.h: the IO-free round engine of the fedrop server (shared DESIGN.md, "One round, as
 * data flows"). The daemon (fl_server, ZeroMQ) and the simulator (fl_sim, in-process queue and
 * virtual clock) run this very code.
 *
 * No sockets, no clocks, no files (except the checkpoint functions' explicit path). Events come
 * in as calls (a client joined or left, a decoded message arrived, the time is now T: every entry
 * point takes `now`, in seconds on any monotonic clock the host likes); work for the host goes out
 * through an outbox of events the host polls:
 *
 *   FLS_EV_TASK       send client its Task: fls_core_task() fills the message, then
 *                     fls_core_task_chunk() encodes each weight chunk when the host pulls it
 *   FLS_EV_EVALUATE   evaluate fls_core_params() on the test set, then fls_core_report_eval();
 *                     the core writes no parameter until then, so the host may evaluate them on
 *                     another thread while it goes on calling the core from its own
 *   FLS_EV_ROUND_END  a round is over: fls_core_last_metrics() (print it, checkpoint, ...)
 *   FLS_EV_DONE       the run is over (max_rounds or target_accuracy reached)
 *
 * A round: when at least max(min_clients, 1) clients are connected and able to take its Tasks
 * (not below the memory a submodel needs: fls_core_client_memory) and no evaluation is pending,
 * the core samples ceil(overcommit * clients_per_round) of them (all if fewer) from the stream
 * (seed, round, FLS_POLICY_SHARED_CLIENT, FL_RNG_CLIENT_SAMPLE) over those keys in increasing
 * order, asks the policy for each one's keep-set and emits their Tasks. Updates are
 * validated against the client's Task (round, model version, tensor count, names and numel) and
 * their chunks against a tracker (range, duplicates), the uplink codec header (spec, element
 * count) and the codec's size bound. At an update's first chunk the core opens a staging buffer
 * of the aggregator for it if fewer than `cfg.agg.max_open` (0 = 1) updates are streaming: each
 * chunk is then decoded straight into that staging as it arrives and the update commits when its
 * last chunk lands. Beyond that many updates receiving chunks at once, an update falls back to
 * keeping its encoded chunks until it is complete, then decodes them through one more staging
 * buffer. Either way an incomplete or refused update never touches the aggregate (staging), and
 * the bits are the same whatever the chunk order. A host that bounds the number of clients sending
 * chunks at once (the daemon's server.upload_slots, which it also passes as agg.max_open) keeps
 * memory independent of the number of clients. Memory: the model, optimizer state, 1 B/param of
 * held flags (the round's delta is finalized into an idle staging buffer at close), the
 * aggregator (fls_agg.h: accumulator + max_open staging buffers), the round's shared encoded
 * chunks, and per fallback update its encoded chunks received so far (at most flz_encode_bound of
 * its submodel). A chunk that fails to decode fails its whole update at once. The round closes at
 * quorum (clients_per_round commits, or all selected if fewer were selected), at its deadline
 * (checked by fls_core_tick), or once no selected client can still report. Closing finalizes the
 * aggregate, applies the server optimizer, feeds the reported losses to the policy (the AFD rule),
 * and records the metrics. Results are bit-identical whatever the arrival order of updates and
 * chunks: aggregation is exact fixed point, and every sum over clients runs in client-key order.
 *
 * Clients are named by a uint32 key the host chooses (the simulator: the virtual client number;
 * the daemon: fls_client_key() of the id string, or one of its alternates when another id holds
 * that key). Keys are stable across reconnects and restarts (an alternate only while the daemon
 * runs): afd-multi state and every random stream are keyed by them.
 *
 * The host replies to a client from the status the message call returns: FL_OK (accepted),
 * FL_ERR_ROUND_CLOSED (an update or chunk for a round that is not open: late; also an Update or
 * Error that names another run than fls_core_run_id, about a run whose rounds are over),
 * FL_ERR_NOT_SELECTED, FL_ERR_DUPLICATE_UPDATE, FL_ERR_UNKNOWN_CLIENT, FL_ERR_WIRE_* /
 * FL_ERR_CODEC_* (refused content).
 *
 * A host's loop, in short (tests/unit/test_server_core.c, sim_rounds, is a complete one):
 *
 *     fls_core_new(&cfg, &core);             (optionally fls_core_restore_file(core, path))
 *     on a Hello / Bye / Update / Chunk:     st = fls_core_on_message(core, key, msg, now);
 *                                            if (st != FL_OK) reply with an Error carrying st
 *     when now >= fls_core_tick_due(core) (a timer armed with it, checked after each message
 *     batch and event):                     fls_core_tick(core, now);
 *     while (fls_core_poll(core, &ev)):
 *         FLS_EV_TASK:      fls_core_task(core, ev.client, &msg), send it; then for every tensor
 *                           t and chunk i: fls_core_task_chunk(core, ev.client, t, i, ...), send
 *         FLS_EV_EVALUATE:  evaluate fls_core_params(core); fls_core_report_eval(core, ev.round, ..)
 *         FLS_EV_ROUND_END: fls_round_metrics_json(fls_core_last_metrics(core), ...);
 *                           fls_core_checkpoint_write(core, path) (between rounds: before the next
 *                           fls_core_tick, which is the only call that starts a round)
 *         FLS_EV_DONE:      stop
 *
 * Thread-safety: an fls_core is not thread-safe; one thread drives it (the reactor or the
 * simulator loop). Returned pointers stay valid until the next call that takes a non-const core.
 */
#ifndef FLS_CORE_H
#define FLS_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "fl_status.h"
#include "flp_wire.h"
#include "fls_ckpt.h"
#include "fls_round.h"

typedef enum fls_event_kind {
    FLS_EV_TASK = 1,
    FLS_EV_EVALUATE = 2,
    FLS_EV_ROUND_END = 3,
    FLS_EV_DONE = 4,
} fls_event_kind;

typedef struct fls_event {
    fls_event_kind kind;
    uint32_t client;   /* FLS_EV_TASK: the client */
    uint64_t round;    /* the round the event belongs to */
} fls_event;

typedef struct fls_core fls_core; /* opaque */

/* The largest training loss an Update may report. A loss outside [0, FLS_UPDATE_LOSS_MAX] is
 * refused with FL_ERR_WIRE_FIELD at the Update header, before any chunk, and that client's update
 * counts as failed. Losses are cross-entropies (>= 0), and a float32 model's finite loss is below
 * 2 x FLT_MAX (about 6.8e38), so no honest client's loss is refused, a diverged one's included;
 * any sum of n_samples x loss over a round (at most 2^32 samples) stays far from overflowing. */
#define FLS_UPDATE_LOSS_MAX FLP_LOSS_MAX

/* The most samples (the aggregation weight) one Update may claim. An Update whose n_samples is
 * above the smallest of: FLS_UPDATE_SAMPLES_MAX; the aggregator's round weight cap (fls_agg.h,
 * 2^24 with the default options) divided by clients_per_round, so that a whole round of updates
 * fits it; train.max_samples when set; the client's Hello dataset_size when it gave one (not 0),
 * is refused with FL_ERR_WIRE_LIMIT at the Update header, before any chunk, and that client's
 * update counts as failed. */
#define FLS_UPDATE_SAMPLES_MAX (UINT64_C(1) << 20)

/* That smallest bound for a client (one that never joined: without a dataset_size), the one the
 * Update header is held to; *from (may be NULL): which bound it is ("its Hello's dataset_size",
 * "train.max_samples" or "the per-update weight cap"), for a refusal's message. */
uint64_t fls_core_update_samples_max(const fls_core *core, uint32_t client, const char **from);

/* A stable 32-bit key for a client id string (the first 4 bytes of its SHA-256, little-endian).
 * Thread-safe. */
uint32_t fls_client_key(const char *id);

/* Validates cfg (fls_config_validate), copies it, allocates the model (initialised from the
 * stream (seed, 0, 0, FL_RNG_INIT) with PyTorch's default initialisation), the aggregator, the
 * server optimizer and the policy. Returns FL_OK, FL_ERR_CONFIG (reason logged), FL_ERR_NOMEM.
 * The caller owns *out. */
fl_status fls_core_new(const fls_config *cfg, fls_core **out);
void fls_core_free(fls_core *core); /* NULL is a no-op */

/* The configuration's digest (fls_config_digest) and the parsed architecture. */
const uint8_t *fls_core_config_digest(const fls_core *core);
const flm_arch *fls_core_arch(const fls_core *core);

/* The global model (arch n_params floats), owned by the core. set_params replaces it (only
 * between rounds: FL_ERR_STATE otherwise; FL_ERR_INVALID_ARG for a wrong n or a non-finite value). */
const float *fls_core_params(const fls_core *core);
fl_status fls_core_set_params(fls_core *core, const float *params, size_t n);

/* The round to run next (or running), the model version (server steps taken so far), and whether
 * a round is open. */
uint64_t fls_core_round(const fls_core *core);
uint64_t fls_core_model_version(const fls_core *core);
int fls_core_round_open(const fls_core *core);
/* The open round's deadline (the `now` at which fls_core_tick closes it), or INFINITY when no
 * round is open. */
double fls_core_deadline(const fls_core *core);
/* The earliest `now` at which fls_core_tick has something to do: the open round's deadline;
 * -INFINITY when it would start a round or end the run at once (enough clients are able, or
 * max_rounds is reached), or close the open round at once (a close at quorum or once no selected
 * client could still report that failed for memory: fls_core_tick retries it); INFINITY when
 * only an event can give it work (a client joining, an evaluation's report). O(1): a host may ask
 * at every step of its loop. Nothing else in the core waits on time, so a host that calls
 * fls_core_tick whenever this is at or before its clock (after the messages and events that may
 * have changed it) starts and closes every round as soon as the engine would; the daemon's
 * 50 ms timer sweep alone made both up to 50 ms late (until 2026-12-07). INFINITY for NULL. */
double fls_core_tick_due(const fls_core *core);
/* 1 once the run is over (FLS_EV_DONE was emitted). */
int fls_core_done(const fls_core *core);
/* 1 once the run ended because an evaluation reached cfg.target_accuracy. */
int fls_core_target_reached(const fls_core *core);

/* The run's id, sent in every Task (flp_task.run_id) so that clients can tell a new run from the
 * same one resumed: a client drops its per-run state (the error-feedback residual) when it
 * changes. The host draws one for a fresh start (0: none, the default); it goes into checkpoints,
 * and a restored checkpoint that holds one replaces it. A parsed checkpoint without one (a file
 * written before runs had ids) restored into a host that has one replaces it with the first 8
 * bytes of the file's SHA-256 (fls_ckpt.sha256), so that every resume of that file names the same
 * run. It has no effect on any result. */
void fls_core_set_run_id(fls_core *core, uint64_t id);
uint64_t fls_core_run_id(const fls_core *core);

/* A client connected (or reconnected). dataset_size is informational. Starts nothing (rounds
 * start in fls_core_tick; fls_core_tick_due says when one can).
 * FL_OK, FL_ERR_NOMEM. */
fl_status fls_core_client_join(fls_core *core, uint32_t client, uint64_t dataset_size, double now);
/* The memory a client announced (Hello.memory_bytes; 0: not said, the default). A client that
 * announced less than a submodel of this run needs (fls_core_train_memory) is not selected, and
 * does not count towards the clients a round waits for: its Task would be refused on the device.
 * Kept across reconnects until set again. FL_OK, FL_ERR_UNKNOWN_CLIENT (it never joined). */
fl_status fls_core_client_memory(fls_core *core, uint32_t client, uint64_t bytes);
/* Forgets a client that is not connected (its host will not hear of it again, or as a new one):
 * its record goes at once, and its policy state (afd-multi: scores and keep-set) too, or, if the
 * round under way selected it, when that round closes. A key that joins again, even before then,
 * is a client seen for the first time. The round engine otherwise keeps a record of every key it
 * ever saw. FL_OK; FL_ERR_STATE while it is connected; FL_ERR_UNKNOWN_CLIENT. */
fl_status fls_core_client_forget(fls_core *core, uint32_t client);
/* Drops the policy state (afd-multi) of every client that has no record in the engine (it has
 * not joined since the engine was made or restored) and for which known(user, client) is 0: a
 * host that restored a checkpoint and then learnt which clients it still knows (fl_server: its
 * table of client ids) forgets the states of the others, as fls_core_client_forget would have.
 * Only between rounds: FL_ERR_STATE while one is open. *dropped (may be NULL): how many. */
fl_status fls_core_forget_unknown(fls_core *core, int (*known)(void *user, uint32_t client),
                                  void *user, size_t *dropped);
/* Clients the engine keeps a record of (joined and not forgotten). */
size_t fls_core_clients_known(const fls_core *core);
/* What a client needs to train this run's submodel: flm_train_memory_need of the policy's keep
 * counts (the same for every Task) with the up codec's residual. */
uint64_t fls_core_train_memory(const fls_core *core);
/* The most memory, in bytes, the engine's model-size buffers may hold at a round's peak: the
 * model, the mask of the coordinates a round held, the server optimizer's state, a chunk's
 * scratch, the aggregator's (fls_agg_memory_bytes of the options the engine made it with:
 * the accumulator, or in the robust modes the updates it keeps, and every staging buffer it may
 * allocate: one per stream slot (fls_config.agg.max_open) and the one for committing an update
 * buffered encoded; the round's delta is computed in an idle one), the Task cache of a shared
 * keep-set (its encoded chunks, at most flz_encode_bound each; none under a plain float32
 * downlink) and what each of a round's selected clients holds (its record in the round, its Task
 * when keep-sets are per client, and the policy's state of it expanded). Not counted: the state
 * of the clients between rounds (fls_core_client_bytes each), updates buffered encoded. *state
 * (may be NULL): the model's and the optimizer state's bytes alone, what fls_core_checkpoint
 * copies of them. */
size_t fls_core_memory_bytes(const fls_core *core, size_t *state);
/* What the engine keeps, about, for each client it knows between rounds: its record and the
 * policy's state of it (fls_policy_client_bytes: afd-multi's keep-set and score map). A host
 * that bounds the clients it knows (fl_server's server.max_clients) multiplies. */
size_t fls_core_client_bytes(const fls_core *core);
/* A client disconnected: its unfinished update this round (if any) is dropped and counted as
 * failed; if no selected client can still report, the round closes. FL_OK or
 * FL_ERR_UNKNOWN_CLIENT. */
fl_status fls_core_client_leave(fls_core *core, uint32_t client, double now);
/* Number of connected clients. */
uint32_t fls_core_connected(const fls_core *core);

/* Time passes. If the open round's deadline is reached (or a close that failed is due), closes
 * it and returns (a later tick
 * starts the next round, so the host can checkpoint in between). Otherwise, when no round is
 * open, no evaluation is pending, the run is not over and at least max(min_clients or
 * clients_per_round, 1) clients are connected and able (fls_core_client_memory), starts a round; at max_rounds emits FLS_EV_DONE
 * instead. FL_OK or an internal failure (FL_ERR_NOMEM).
 *
 * A start or close that fails (FL_ERR_NOMEM, here or from the close a message or a leave brings
 * about) is undone: every allocation comes before the first change. A failed start leaves no
 * round open; a failed close leaves the round open with the model, the optimizer state, the
 * policy state, the metrics and the events as they were (only the uploads still under way are
 * dropped, as the close would have dropped them: their clients may send their updates anew). The
 * next tick does the whole close once (a close at quorum, or once nobody can still report, at
 * once; one at the deadline at or after it): a host may keep ticking after a failure and get the
 * run it would have had without it. */
fl_status fls_core_tick(fls_core *core, double now);

/* A decoded, validated message (flp_decode) from client. Hello joins the client (as
 * fls_core_client_join, then fls_core_client_memory with its memory_bytes), Bye leaves it, Update and Chunk are processed as described above,
 * Heartbeat is accepted. An Error with the open round's number from a selected client whose
 * update is still due says its training failed: the update is counted as failed (as when the
 * client leaves) and the round may close, but the client stays connected; an Error about
 * another round or naming another run (flp_error.run_id nonzero and not fls_core_run_id: a task
 * of a server run that is over), or from a client with nothing due, changes nothing
 * (FL_ERR_ROUND_CLOSED, FL_ERR_NOT_SELECTED, FL_ERR_STATE; not counted as a rejected message
 * either). A message that comes after the open round's deadline (now > fls_core_deadline)
 * first closes that round, as fls_core_tick would have: an update then is late, whenever the
 * host's timer runs. Returns the status to reply with (see the header comment), or the closing's
 * internal failure (FL_ERR_NOMEM). The message is not retained. */
fl_status fls_core_on_message(fls_core *core, uint32_t client, const flp_msg *m, double now);

/* fls_core_on_message for an in-process host that keeps a Chunk's payload bytes valid and
 * unchanged while the sender's update is receiving (until fls_core_update_state no longer says
 * FLS_UPDATE_RECEIVING: the call that completes or refuses it, fls_core_update_abort, the round's
 * close) and until fls_core_free. The core may then aggregate a plain float32 payload (codec
 * "none") straight from those bytes, with them as its undo log, instead of decoding them into a
 * staging buffer (fls_agg_update_add_borrowed). The results are the same bits; a non-finite value
 * in such a payload is refused at the update's last chunk (FL_ERR_NUMERIC) rather than at its own
 * (FL_ERR_CODEC_CORRUPT). Other messages and payloads: exactly fls_core_on_message. */
fl_status fls_core_on_message_borrowed(fls_core *core, uint32_t client, const flp_msg *m,
                                       double now);

/* Where client's update of `round` stands: FLS_UPDATE_NONE (no round open, another round, not
 * selected, no Update header accepted yet), RECEIVING (header accepted, chunks still missing),
 * COMMITTED (folded into the aggregate), FAILED (refused, or the client left). A host answers the
 * client's Update from it (the daemon: Ack(of UPDATE) once COMMITTED or FAILED). */
typedef enum fls_update_state {
    FLS_UPDATE_NONE = 0,
    FLS_UPDATE_RECEIVING = 1,
    FLS_UPDATE_COMMITTED = 2,
    FLS_UPDATE_FAILED = 3,
} fls_update_state;
fls_update_state fls_core_update_state(const fls_core *c, uint32_t client, uint64_t round);
/* Ends client's update that is still receiving chunks as refused (the host saw it break the
 * protocol, or gave up on it): its staging or encoded chunks are released, nothing reaches the
 * aggregate, it counts as failed, and the round closes if no selected client can still report.
 * FL_OK, FL_ERR_STATE (no update of the open round receiving). */
fl_status fls_core_update_abort(fls_core *c, uint32_t client, double now);

/* Pops the oldest event into *ev: 1 if there was one, 0 if the outbox is empty. */
int fls_core_poll(fls_core *core, fls_event *ev);

/* Fills *out with client's Task of the open round (type FLP_TASK, round, model version, arch,
 * keep-set, training config, codec specs, deadline, tensor headers). Every pointer in *out points
 * into the core and stays valid until the round closes. FL_OK, FL_ERR_NOT_SELECTED,
 * FL_ERR_ROUND_CLOSED (no round open). */
fl_status fls_core_task(const fls_core *core, uint32_t client, flp_msg *out);

/* Largest payload fls_core_task_chunk can produce (size dst with it). */
size_t fls_core_task_chunk_bound(const fls_core *core);

/* Encodes chunk `index` of tensor `tensor` of client's Task weights with the downlink codec into
 * dst[0..cap), and fills *chunk (may be NULL) as the Chunk message body (dir DOWN, tensor, index,
 * offset, count, payload = dst, payload_len). The submodel's weights are gathered from the global
 * model only for that chunk's range (no per-client model copy); for shared keep-sets (full, fd
 * shared, afd-single) each chunk is encoded once per round and the same bytes are copied out to
 * every client (except with the plain float32 codec "none", which is encoded on each call: the
 * same bytes, without holding a second copy of the model). FL_OK, FL_ERR_NOT_SELECTED, FL_ERR_ROUND_CLOSED, FL_ERR_WIRE_CHUNK_RANGE,
 * FL_ERR_BUFFER_TOO_SMALL, codec errors. */
fl_status fls_core_task_chunk(fls_core *core, uint32_t client, uint32_t tensor, uint32_t index,
                              uint8_t *dst, size_t cap, size_t *len, flp_chunk *chunk);

/* Right after an fls_core_task_chunk that returned FL_ERR_NUMERIC: why, in the down codec's
 * words (flz_ctx_error: the weight and the limit it passed, e.g. float16's 65504), which the
 * core also logs (FL_LOG_ERROR); the status's own text, "non-finite value", is wrong where every
 * weight is finite. Valid until the next call that takes a non-const core. */
const char *fls_core_chunk_error(const fls_core *core);

/* Right after an fls_core_on_message that refused an update for a value (FL_ERR_AGG_RANGE,
 * FL_ERR_NUMERIC at its commit): where the value is and the bound it passed, one line ("tensor
 * fc1.w element 1234 is 2000, beyond the bound 1024 (|w - w0| at most)"), which the core also
 * logs with the refusal; "" after any other message or refusal. Valid until the next call that
 * takes a non-const core. */
const char *fls_core_update_error(const fls_core *core);

/* The host's evaluation of the model after round `round` (the one FLS_EV_EVALUATE named):
 * accuracy in [0, 1] and loss (NaN if unknown). Completes that round's metrics, emits
 * FLS_EV_ROUND_END (and FLS_EV_DONE when the target is reached) and lets the next round start.
 * FL_OK, FL_ERR_STATE (no evaluation pending for that round), FL_ERR_INVALID_ARG. */
fl_status fls_core_report_eval(fls_core *core, uint64_t round, double accuracy, double loss,
                               double now);

/* The metrics of the last finished round (NULL before the first). */
const fls_round_metrics *fls_core_last_metrics(const fls_core *core);

/* Builds a checkpoint of the state between rounds (model, optimizer state, policy state, next
 * round, model version, config digest and text, target reached, run id) into *out (owned by the caller: fls_ckpt_clear).
 * FL_ERR_STATE while a round is open or an evaluation is pending; FL_ERR_NOMEM; FL_ERR_NUMERIC
 * (logged; *out empty) when the policy state could not be read back (fls_policy_export). */
fl_status fls_core_checkpoint(const fls_core *core, fls_ckpt *out);
/* fls_core_checkpoint into k, a checkpoint of this engine that fls_core_checkpoint (or an earlier
 * call of this one) made, reusing its arrays: the model and the optimizer's state are copied over
 * the old ones, so that no second copy of them is held at any moment (a host keeping a snapshot
 * for its next checkpoint would otherwise hold the old one and the new one at once). A k of other
 * sizes, or zeroed, is made anew by fls_core_checkpoint and the old freed. Errors as
 * fls_core_checkpoint's; on any error k is unchanged (still the older, valid state). */
fl_status fls_core_checkpoint_update(const fls_core *core, fls_ckpt *k);
/* fls_core_checkpoint, but the model, the optimizer's state and the configuration text are
 * borrowed from the engine, not copied: *out is valid until the engine next changes (a round
 * opens, a restore), for a writer that reads it at once (fls_ckpt_write, fls_ckpt_stream) with
 * no copy of the state made. It owns only the policy's exported bytes: release it with
 * fls_core_checkpoint_view_free, never fls_ckpt_clear. Errors as fls_core_checkpoint's (on error
 * *out holds nothing). */
fl_status fls_core_checkpoint_view(const fls_core *core, fls_ckpt *out);
/* Frees what a view owns and zeroes it; NULL is a no-op. */
void fls_core_checkpoint_view_free(fls_ckpt *v);
/* fls_core_checkpoint_view, then fls_ckpt_write(path) (atomic). On any error nothing is written (a
 * previous file at path stays as it was). */
fl_status fls_core_checkpoint_write(const fls_core *core, const char *path);

/* Restores the state of a checkpoint (which must come from a configuration with the same digest:
 * FL_ERR_CHECKPOINT_MISMATCH otherwise, and for another architecture, parameter count, optimizer
 * kind or state shape, or policy kind). All or nothing: on error the core is unchanged. Only
 * between rounds (FL_ERR_STATE). Errors: FL_ERR_CHECKPOINT_FORMAT (policy state damaged, or an
 * adaptive optimizer's v negative). A
 * digest mismatch is logged with the settings that changed (fls_config_canon_diff) when the
 * checkpoint holds its configuration's text, else with the list of the settings that enter the
 * digest. */
fl_status fls_core_restore(fls_core *core, const fls_ckpt *c);
/* fls_ckpt_read(path), then fls_core_restore. The reason of a failure is logged. */
fl_status fls_core_restore_file(fls_core *core, const char *path);

#endif
