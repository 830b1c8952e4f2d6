/* flp_wire.h: fedrop's wire layer. Plain C structs for every message of proto/fl.proto, an encoder,
 * a validating decoder and chunk-reassembly trackers.
 *
 * This header is the only view of the wire that other modules get: generated protobuf types never
 * leave proto/. Every decoded message has passed flp_validate() (size cap before unpacking, version,
 * type/body match, enum ranges, required fields, shapes, keep-sets, finite floats); see
 * proto/README.md for the message flow, the chunking rule and the full validation list.
 *
 * Strings in flp_msg are NUL-terminated; NULL means "" when encoding and never occurs in a decoded
 * message. Arrays are (count, pointer) pairs; pointer may be NULL when count is 0.
 *
 * Thread-safety: all functions are reentrant; an flp_msg or tracker must not be used by two threads
 * at once, and a decoded flp_msg is read-only (share it freely between readers).
 */
#ifndef FLP_WIRE_H
#define FLP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_status.h"

#define FLP_VERSION 1u  /* the Envelope version this build speaks */
#define FLP_MAX_DIMS 4  /* tensor shapes have 1..FLP_MAX_DIMS dims */
#define FLP_ERRBUF 160  /* a comfortable size for the err buffers below */
/* The largest training loss an Update may carry: fedrop's server refuses one outside
 * [0, FLP_LOSS_MAX] (fls_core.h, FLS_UPDATE_LOSS_MAX), and libflclient fails such a training
 * before it is sent. */
#define FLP_LOSS_MAX 1e40

typedef enum flp_type {
    FLP_HELLO = 1,
    FLP_TASK = 2,
    FLP_UPDATE = 3,
    FLP_CHUNK = 4,
    FLP_ACK = 5,
    FLP_ERROR = 6,
    FLP_HEARTBEAT = 7,
    FLP_BYE = 8,
} flp_type;
#define FLP_TYPE_MAX 8

typedef enum flp_backend {
    FLP_BACKEND_CPU = 1,
    FLP_BACKEND_GPU = 2,
    FLP_BACKEND_NPU = 3,
    FLP_BACKEND_OTHER = 4,
} flp_backend;

typedef enum flp_dir {
    FLP_DIR_DOWN = 1, /* server -> client: Task weights */
    FLP_DIR_UP = 2,   /* client -> server: Update deltas */
} flp_dir;

/* Caps applied by the decoder (and by the encoder, so we never send what a peer would refuse).
 * Every count that drives an allocation has a cap here. */
typedef struct flp_limits {
    size_t max_msg_bytes;     /* whole encoded Envelope; checked before anything is parsed */
    uint32_t max_tensors;     /* tensor headers in a Task or Update */
    uint32_t max_layers;      /* keep-set layers in a Task */
    uint32_t max_units;       /* full unit count of one layer (so also its keep-set length) */
    uint32_t max_chunk_elems; /* chunk_elems of a header, count of a chunk */
    uint32_t max_chunks;      /* n_chunks of one tensor (bounds numel with max_chunk_elems) */
    uint32_t max_metrics;     /* metrics in an Update */
    uint32_t max_str;         /* bytes of any string (ids, names, codec specs, messages) */
    uint32_t max_fields;      /* protobuf field occurrences in the whole message, at any depth
                               * (packed arrays count once); bounds protobuf-c's scratch memory */
} flp_limits;

/* The defaults: 16 MiB messages, 1024 tensors, 256 layers, 2^20 units per layer, 2^20 elements
 * per chunk, 2^16 chunks per tensor, 64 metrics, 1024-byte strings, 2^16 protobuf fields. */
flp_limits flp_limits_default(void);

typedef struct flp_tensor_header {
    const char *name;
    uint64_t numel;           /* == product of shape[0..ndim) */
    uint32_t chunk_elems;     /* elements per chunk, >= 1 */
    uint32_t n_chunks;        /* == ceil(numel / chunk_elems) */
    uint32_t ndim;            /* 1..FLP_MAX_DIMS */
    uint64_t shape[FLP_MAX_DIMS];
} flp_tensor_header;

typedef struct flp_layer_keep {
    uint32_t full_units;      /* the layer's unit count in the full model, >= 1 */
    uint32_t n_units;         /* >= 1 */
    const uint32_t *units;    /* strictly increasing, each < full_units */
} flp_layer_keep;

typedef struct flp_train_config {
    uint32_t epochs;          /* >= 1 */
    uint32_t batch_size;      /* >= 1 */
    float lr;                 /* finite, > 0 */
    float momentum;           /* finite, in [0, 1) */
    float weight_decay;       /* finite, >= 0 */
    float prox_mu;            /* finite, >= 0; 0 = no FedProx term */
    uint64_t max_samples;     /* 0 = whole local dataset */
} flp_train_config;

typedef struct flp_hello {
    const char *client_id;    /* non-empty */
    flp_backend backend;
    uint64_t memory_bytes;
    double flops;             /* finite, >= 0 */
    uint64_t dataset_size;
    uint32_t min_version;     /* 1 <= min_version <= max_version */
    uint32_t max_version;
} flp_hello;

typedef struct flp_task {
    uint64_t model_version;
    const char *arch;         /* non-empty architecture id */
    uint32_t n_layers;        /* droppable layers, in architecture order; 0: nothing dropped */
    const flp_layer_keep *layers;
    flp_train_config train;
    const char *down_codec;   /* non-empty codec spec, parsed by compress/ */
    const char *up_codec;     /* non-empty */
    uint32_t deadline_ms;     /* 0 = none */
    uint32_t n_tensors;       /* >= 1; the weights follow as FLP_DIR_DOWN chunks */
    const flp_tensor_header *tensors;
    uint64_t run_id;          /* the server's run (a fresh start draws one, a resume keeps it);
                               * 0 = not told */
    uint32_t client_key;      /* the key the server knows this client by, when not
                               * fl_client_key(id) (another id holds that one); 0 = that one */
} flp_task;

typedef struct flp_metric {
    const char *name;         /* non-empty */
    double value;             /* finite */
} flp_metric;

typedef struct flp_update {
    uint64_t model_version;
    uint32_t n_tensors;       /* >= 1; the deltas follow as FLP_DIR_UP chunks */
    const flp_tensor_header *tensors;
    uint64_t n_samples;       /* >= 1 */
    double loss;              /* finite */
    uint32_t n_metrics;
    const flp_metric *metrics;
    uint64_t run_id;          /* the run_id of the Task it answers; 0 = not told */
} flp_update;

typedef struct flp_chunk {
    flp_dir dir;
    uint32_t tensor;          /* index into the Task/Update's tensors */
    uint32_t index;           /* chunk index within the tensor */
    uint64_t offset;          /* index * chunk_elems (checked by the tracker) */
    uint32_t count;           /* 1..max_chunk_elems */
    size_t payload_len;
    const uint8_t *payload;   /* codec output; in a decoded message it points into the message */
} flp_chunk;

typedef struct flp_ack {
    flp_type of_type;
    uint64_t of_round;
    int32_t status;           /* an fl_status number, >= 0; 0 = accepted */
    const char *detail;
    uint64_t memory_needed;   /* Ack of a Hello: the memory (bytes, about) a submodel of the run
                               * needs, where the Hello's memory_bytes is below it (admitted, not
                               * selected); 0 otherwise (and from a server before 0.3.2) */
} flp_ack;

typedef struct flp_error {
    uint32_t code;            /* an fl_status number, > 0 */
    const char *message;
    uint64_t run_id;          /* a client's Error about a task: the Task's run_id; 0 = not told */
} flp_error;

typedef struct flp_heartbeat {
    uint64_t seq;
    uint64_t sender_time_us;
} flp_heartbeat;

typedef struct flp_bye {
    const char *reason;
} flp_bye;

/* One Envelope. `type` selects the member of the union. */
typedef struct flp_msg {
    uint32_t version;         /* FLP_VERSION */
    flp_type type;
    uint64_t round;           /* the round of a Task, Update or Chunk */
    const char *sender;       /* client id; "" from the server */
    union {
        flp_hello hello;
        flp_task task;
        flp_update update;
        flp_chunk chunk;
        flp_ack ack;
        flp_error error;
        flp_heartbeat heartbeat;
        flp_bye bye;
    };
} flp_msg;

/* Checks m against every rule of the wire (the same checks the decoder applies) under lim
 * (NULL: flp_limits_default()). Returns FL_OK or the FL_ERR_WIRE_* code of the first violation,
 * with a message naming the field in err (NUL-terminated, truncated to errcap; err may be NULL).
 * Thread-safe. */
fl_status flp_validate(const flp_msg *m, const flp_limits *lim, char *err, size_t errcap);

/* Makes free text (an error message, a reason) fit the rule for string fields in place: each
 * byte that does not start a valid UTF-8 sequence becomes '?', and so does each byte of a control
 * character (C0 and DEL: one byte; C1: two, "??"). The length does not change. Returns the number
 * of bytes replaced; NULL is 0. flp_decode applies it to Ack.detail, Error.message and
 * Bye.reason, which it fixes rather than refuses. */
size_t flp_str_fix(char *s);

/* The exact encoded size of m in *bound. Returns the flp_validate() status of m (under default
 * limits) or FL_OK. Thread-safe. */
fl_status flp_encode_bound(size_t *bound, const flp_msg *m);

/* Validates m under lim (NULL: default) and encodes it into the caller-owned dst[0..cap). On FL_OK
 * *written holds the size. FL_ERR_BUFFER_TOO_SMALL if cap < flp_encode_bound(); FL_ERR_NOMEM.
 * Nothing of m is retained. Thread-safe. */
fl_status flp_encode(uint8_t *dst, size_t cap, size_t *written, const flp_msg *m,
                     const flp_limits *lim, char *err, size_t errcap);

/* As flp_encode, into a buffer malloc'ed for the caller (*out, *len; free() it). On error *out is
 * NULL and *len 0. Thread-safe. */
fl_status flp_encode_alloc(uint8_t **out, size_t *len, const flp_msg *m, const flp_limits *lim,
                           char *err, size_t errcap);

/* Decodes and validates src[0..len) under lim (NULL: default). Messages above lim->max_msg_bytes,
 * or whose top-level structure or repeated counts break the limits, are refused before protobuf
 * unpacking. On FL_OK *out is a new message owned by the caller (flp_msg_free); its strings, arrays
 * and chunk payload live inside it (src may be freed at once). On error *out is NULL and err names
 * the field. Allocation is bounded by a small multiple of len. Thread-safe. */
fl_status flp_decode(flp_msg **out, const uint8_t *src, size_t len, const flp_limits *lim,
                     char *err, size_t errcap);

/* Frees a message returned by flp_decode. NULL is a no-op. Never pass a caller-built flp_msg. */
void flp_msg_free(flp_msg *m);

/* A message to send: this build's version, type, round and sender (NULL: ""), every other field
 * zero for the caller to fill. */
flp_msg flp_msg_header(flp_type type, uint64_t round, const char *sender);

/* True when a and b hold the same message: every field, string, array element and payload byte
 * (floats compared by value). Thread-safe. */
bool flp_msg_equal(const flp_msg *a, const flp_msg *b);

/* "hello", "task", ... ; "unknown" outside the enum. Never NULL. */
const char *flp_type_name(flp_type t);

/* Fills h->numel, n_chunks from ndim/shape/chunk_elems (a convenience for senders).
 * FL_ERR_WIRE_SHAPE if ndim/shape/chunk_elems are invalid, FL_ERR_OVERFLOW if numel overflows. */
fl_status flp_tensor_header_fill(flp_tensor_header *h);

/* The element range of chunk `index` of h: *offset = index*chunk_elems and *count =
 * min(chunk_elems, numel - offset), what a sender puts in the Chunk. FL_ERR_WIRE_CHUNK_RANGE if
 * index >= n_chunks; FL_ERR_INVALID_ARG for NULL pointers or chunk_elems 0. Thread-safe. */
fl_status flp_chunk_span(uint64_t *offset, uint32_t *count, const flp_tensor_header *h,
                         uint32_t index);

/* ---- Chunk reassembly tracking -------------------------------------------------------------- */

/* One tensor: a bitset of the chunks received. It stores no payload; the consumer decodes each
 * chunk as it arrives. Not thread-safe (one owner). */
typedef struct flp_tensor_tracker flp_tensor_tracker;

/* A tracker for header h (which must pass flp_validate rules: check it with the message first).
 * FL_ERR_INVALID_ARG if h is inconsistent, FL_ERR_NOMEM. *out owned by the caller. */
fl_status flp_tensor_tracker_new(flp_tensor_tracker **out, const flp_tensor_header *h);
void flp_tensor_tracker_free(flp_tensor_tracker *t); /* NULL is a no-op */

/* Records chunk (index, offset, count). FL_ERR_WIRE_CHUNK_RANGE if index >= n_chunks, offset !=
 * index*chunk_elems or count != min(chunk_elems, numel - offset); FL_ERR_WIRE_CHUNK_DUP if that
 * chunk was already recorded. The tracker is unchanged on error. */
fl_status flp_tensor_tracker_accept(flp_tensor_tracker *t, uint32_t index, uint64_t offset,
                                    uint32_t count, char *err, size_t errcap);

/* FL_OK when every chunk was recorded, else FL_ERR_WIRE_CHUNK_MISSING naming the first missing
 * chunk. Does not change the tracker. */
fl_status flp_tensor_tracker_finish(const flp_tensor_tracker *t, char *err, size_t errcap);

/* Chunks recorded so far. */
uint32_t flp_tensor_tracker_received(const flp_tensor_tracker *t);

/* All tensors of one Task (dir FLP_DIR_DOWN) or Update (FLP_DIR_UP). Not thread-safe. */
typedef struct flp_msg_tracker flp_msg_tracker;

/* A tracker for the n tensor headers hdrs (copied; hdrs need not outlive it) expecting chunks of
 * direction dir. FL_ERR_INVALID_ARG for an invalid header or dir, FL_ERR_NOMEM. */
fl_status flp_msg_tracker_new(flp_msg_tracker **out, const flp_tensor_header *hdrs, uint32_t n,
                              flp_dir dir);
void flp_msg_tracker_free(flp_msg_tracker *t); /* NULL is a no-op */

/* Records chunk c: FL_ERR_WIRE_FIELD if c->dir is not the tracker's direction,
 * FL_ERR_WIRE_CHUNK_RANGE if c->tensor >= n or the chunk is out of its tensor's range,
 * FL_ERR_WIRE_CHUNK_DUP for a repeat. Matching the Envelope round is the caller's business. */
fl_status flp_msg_tracker_accept(flp_msg_tracker *t, const flp_chunk *c, char *err, size_t errcap);

/* True when every chunk of tensor i (< n) has been recorded. */
bool flp_msg_tracker_tensor_complete(const flp_msg_tracker *t, uint32_t i);

/* True when every chunk of every tensor has been recorded. */
bool flp_msg_tracker_complete(const flp_msg_tracker *t);

/* True when c is the one chunk still missing: of t's direction and range, not yet recorded, and
 * every other chunk recorded, so that flp_msg_tracker_accept(t, c) would complete t. Does not
 * change t. For a consumer that records only the chunks it took, to tell whether a chunk it
 * refused was the last one missing. False for t or c NULL. */
bool flp_msg_tracker_completes(const flp_msg_tracker *t, const flp_chunk *c);

/* FL_OK when complete, else FL_ERR_WIRE_CHUNK_MISSING naming the first missing tensor/chunk. */
fl_status flp_msg_tracker_finish(const flp_msg_tracker *t, char *err, size_t errcap);

#endif
