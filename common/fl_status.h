/* fl_status.h: the one status enum of fedrop's internal libraries.
 *
 * Codes are only ever appended, never renumbered or reused, so a number in a log or on the wire
 * (Error messages carry it) keeps its meaning across versions. FL_OK is zero; every error is
 * positive. fl_strerror() never returns NULL.
 */
#ifndef FL_STATUS_H
#define FL_STATUS_H

#include <stddef.h>

typedef enum fl_status {
    FL_OK = 0,
    /* generic */
    FL_ERR_NOMEM = 1,          /* an allocation failed */
    FL_ERR_INVALID_ARG = 2,    /* a caller passed an argument outside the documented domain */
    FL_ERR_IO = 3,             /* a read, write, open, fsync or rename failed */
    FL_ERR_INTERNAL = 4,       /* an invariant did not hold: a bug in fedrop */
    FL_ERR_UNSUPPORTED = 5,    /* valid but not implemented in this build */
    FL_ERR_BUFFER_TOO_SMALL = 6, /* a caller-owned output buffer is too small */
    FL_ERR_NOT_FOUND = 7,      /* a named thing does not exist */
    FL_ERR_STATE = 8,          /* the call is not allowed in the object's current state */
    FL_ERR_OVERFLOW = 9,       /* a size computation would overflow */
    FL_ERR_IO_TRANSIENT = 10,  /* a write failed for a cause that may pass without anyone's help
                                * (a full disk, a quota, a device error: ENOSPC, EDQUOT, EIO):
                                * the same call may succeed later */
    /* wire (proto/) */
    FL_ERR_WIRE_TOO_LARGE = 20,     /* message above the size cap, rejected before unpacking */
    FL_ERR_WIRE_DECODE = 21,        /* bytes are not a valid protobuf Envelope */
    FL_ERR_WIRE_VERSION = 22,       /* protocol version not supported */
    FL_ERR_WIRE_TYPE = 23,          /* message type unknown or body does not match it */
    FL_ERR_WIRE_ENUM = 24,          /* an enum field holds a value outside its range */
    FL_ERR_WIRE_SHAPE = 25,         /* lengths or shapes inconsistent with each other */
    FL_ERR_WIRE_FIELD = 26,         /* a required field is missing or out of its bounds */
    FL_ERR_WIRE_CHUNK_RANGE = 27,   /* chunk index or offset outside the tensor */
    FL_ERR_WIRE_CHUNK_DUP = 28,     /* the same chunk arrived twice */
    FL_ERR_WIRE_CHUNK_MISSING = 29, /* a tensor was finished with chunks missing */
    FL_ERR_WIRE_LIMIT = 30,         /* a count (tensors, layers, units, chunks) above its cap */
    FL_ERR_WIRE_KEEPSET = 31,       /* a Task keep-set is unsorted, duplicated, out of range or empty */
    FL_ERR_WIRE_NONFINITE = 32,     /* a float field (loss, lr, metric, ...) is NaN or infinite */
    /* compress/ */
    FL_ERR_CODEC_SPEC = 40,     /* a codec pipeline spec string does not parse */
    FL_ERR_CODEC_HEADER = 41,   /* a payload header is malformed or disagrees with its buffer */
    FL_ERR_CODEC_CORRUPT = 42,  /* a payload body is damaged (zstd error, bad lengths) */
    FL_ERR_CODEC_LENGTH = 43,   /* a payload decodes to a length other than expected */
    /* models/ */
    FL_ERR_MODEL_SPEC = 60,     /* an architecture spec is invalid */
    FL_ERR_MODEL_SHAPE = 61,    /* tensor shapes do not fit the architecture */
    FL_ERR_KEEPSET = 62,        /* a keep-set is unsorted, duplicated, out of range or empty */
    FL_ERR_DATASET_FORMAT = 63, /* a dataset file is malformed */
    FL_ERR_DATASET_IO = 64,     /* a dataset file cannot be read */
    FL_ERR_BLAS = 65,           /* the BLAS library could not be loaded */
    FL_ERR_NUMERIC = 66,        /* a non-finite value where a finite one is required */
    /* server core */
    FL_ERR_ROUND_CLOSED = 80,   /* an update for a round that is not open */
    FL_ERR_UNKNOWN_CLIENT = 81, /* a message from a client the server does not know */
    FL_ERR_DUPLICATE_UPDATE = 82, /* a second update from the same client in one round */
    FL_ERR_NOT_SELECTED = 83,   /* an update from a client not selected for this round */
    FL_ERR_CHECKPOINT_FORMAT = 84,   /* a checkpoint file is damaged or truncated */
    FL_ERR_CHECKPOINT_MISMATCH = 85, /* a checkpoint belongs to another configuration */
    FL_ERR_CHECKPOINT_CHECKSUM = 86, /* a checkpoint's SHA-256 does not match its contents */
    FL_ERR_CONFIG = 87,         /* a configuration file or flag is invalid */
    FL_ERR_AGG_RANGE = 88,      /* an update value is outside the aggregator's fixed-point range */
    FL_ERR_CHECKPOINT_NEWER = 89, /* a checkpoint or state file of a newer fedrop's format */
    /* transport */
    FL_ERR_TIMEOUT = 100,       /* an operation did not complete before its deadline */
    FL_ERR_TRANSPORT = 101,     /* a ZeroMQ call failed */
    FL_ERR_AUTH = 102,          /* authentication refused */
    FL_ERR_REMOTE = 103,        /* the peer answered with an Error message */
    FL_ERR_CANCELLED = 104,     /* the operation was stopped by its caller */
    /* simulator */
    FL_ERR_TRACE_FORMAT = 120,  /* a device / availability trace file has a bad row */
    FL_ERR_RESULTS_FORMAT = 121,   /* a saved run's rounds.csv or summary.json is malformed */
    FL_ERR_RESULTS_MISMATCH = 122, /* a saved run was made with other settings */
} fl_status;

/* A short, static, human-readable description of s. Never NULL; unknown codes give
 * "unknown status". Thread-safe. */
const char *fl_strerror(fl_status s);

/* Writes a formatted reason into err (NUL-terminated, truncated to errlen; nothing when err is
 * NULL or errlen is 0) and returns st, so that a parser can say
 * `return fl_errf(err, errlen, FL_ERR_CONFIG, "line %d: ...", line);`. Thread-safe. */
fl_status fl_errf(char *err, size_t errlen, fl_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#ifdef __clang_analyzer__
/* For the static analyzer (scripts/lint), which does not see into fl_status.c: the call's value
 * is its st. Without this it takes `return fl_errf(...)` for a path that may return FL_OK and
 * reports the caller's use of outputs that the error path never wrote. */
#define fl_errf(err, errlen, st, ...) (fl_errf((err), (errlen), (st), __VA_ARGS__), (st))
#endif

/* The symbolic name of s ("FL_ERR_WIRE_VERSION"), for logs and tests. Never NULL. */
const char *fl_status_name(fl_status s);

#endif
