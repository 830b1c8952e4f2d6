#include "fl_status.h"

#include <stdarg.h>
#include <stdio.h>

#define FL_STATUS_TABLE(X) \
    X(FL_OK, "success") \
    X(FL_ERR_NOMEM, "out of memory") \
    X(FL_ERR_INVALID_ARG, "invalid argument") \
    X(FL_ERR_IO, "input/output error") \
    X(FL_ERR_INTERNAL, "internal error (a bug in fedrop)") \
    X(FL_ERR_UNSUPPORTED, "not supported by this build") \
    X(FL_ERR_BUFFER_TOO_SMALL, "output buffer too small") \
    X(FL_ERR_NOT_FOUND, "not found") \
    X(FL_ERR_STATE, "operation not allowed in the current state") \
    X(FL_ERR_OVERFLOW, "size overflow") \
    X(FL_ERR_IO_TRANSIENT, "input/output error that may pass (a full disk?)") \
    X(FL_ERR_WIRE_TOO_LARGE, "message larger than the size cap") \
    X(FL_ERR_WIRE_DECODE, "message is not a valid protobuf envelope") \
    X(FL_ERR_WIRE_VERSION, "unsupported protocol version") \
    X(FL_ERR_WIRE_TYPE, "unknown message type or body does not match type") \
    X(FL_ERR_WIRE_ENUM, "enum value out of range") \
    X(FL_ERR_WIRE_SHAPE, "inconsistent lengths or shapes") \
    X(FL_ERR_WIRE_FIELD, "required field missing or out of bounds") \
    X(FL_ERR_WIRE_CHUNK_RANGE, "chunk index or offset out of range") \
    X(FL_ERR_WIRE_CHUNK_DUP, "duplicate chunk") \
    X(FL_ERR_WIRE_CHUNK_MISSING, "tensor incomplete: chunks missing") \
    X(FL_ERR_WIRE_LIMIT, "count above its limit") \
    X(FL_ERR_WIRE_KEEPSET, "invalid keep-set in a message") \
    X(FL_ERR_WIRE_NONFINITE, "non-finite float in a message") \
    X(FL_ERR_CODEC_SPEC, "invalid codec pipeline spec") \
    X(FL_ERR_CODEC_HEADER, "malformed codec payload header") \
    X(FL_ERR_CODEC_CORRUPT, "corrupt codec payload") \
    X(FL_ERR_CODEC_LENGTH, "codec payload has an unexpected length") \
    X(FL_ERR_MODEL_SPEC, "invalid model architecture spec") \
    X(FL_ERR_MODEL_SHAPE, "tensor shape does not fit the architecture") \
    X(FL_ERR_KEEPSET, "invalid keep-set") \
    X(FL_ERR_DATASET_FORMAT, "malformed dataset file") \
    X(FL_ERR_DATASET_IO, "cannot read dataset file") \
    X(FL_ERR_BLAS, "BLAS library unavailable") \
    X(FL_ERR_NUMERIC, "non-finite value") \
    X(FL_ERR_ROUND_CLOSED, "update for a round that is not open") \
    X(FL_ERR_UNKNOWN_CLIENT, "unknown client") \
    X(FL_ERR_DUPLICATE_UPDATE, "duplicate update from client in this round") \
    X(FL_ERR_NOT_SELECTED, "client not selected for this round") \
    X(FL_ERR_CHECKPOINT_FORMAT, "damaged or truncated checkpoint") \
    X(FL_ERR_CHECKPOINT_MISMATCH, "checkpoint belongs to another configuration") \
    X(FL_ERR_CHECKPOINT_CHECKSUM, "checkpoint checksum mismatch") \
    X(FL_ERR_CONFIG, "invalid configuration") \
    X(FL_ERR_AGG_RANGE, "update value outside the aggregation range") \
    X(FL_ERR_CHECKPOINT_NEWER, "written by a newer fedrop") \
    X(FL_ERR_TIMEOUT, "timed out") \
    X(FL_ERR_TRANSPORT, "transport error") \
    X(FL_ERR_AUTH, "authentication refused") \
    X(FL_ERR_REMOTE, "peer reported an error") \
    X(FL_ERR_CANCELLED, "cancelled") \
    X(FL_ERR_TRACE_FORMAT, "malformed trace file row") \
    X(FL_ERR_RESULTS_FORMAT, "malformed saved run outputs") \
    X(FL_ERR_RESULTS_MISMATCH, "saved run has other settings")

const char *fl_strerror(fl_status s)
{
    switch (s) {
#define X(code, text) case code: return text;
    FL_STATUS_TABLE(X)
#undef X
    }
    return "unknown status";
}

const char *fl_status_name(fl_status s)
{
    switch (s) {
#define X(code, text) case code: return #code;
    FL_STATUS_TABLE(X)
#undef X
    }
    return "FL_ERR_UNKNOWN";
}

fl_status (fl_errf)(char *err, size_t errlen, fl_status st, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}
