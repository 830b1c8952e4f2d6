/* flz.h: the codec pipeline over float32 vectors (model updates and submodels on the wire).
 *
 * A pipeline is named by a spec string ("rot+q4+zstd", "topk0.01+q8+zstd", "f16", "none"; grammar
 * in compress/README.md), parsed once into an flz_spec. Stages always run in this order:
 *
 *   topk (sparsify, error feedback) -> rot (randomized Hadamard) -> sub (random subsample)
 *   -> values (f32 | q1/q2/q4/q8 stochastic quantisation | f16 | bf16) -> zstd (lossless)
 *
 * Every payload starts with a fixed 52-byte header that carries the whole spec, the element count,
 * and the RNG key (seed, round, client), so the receiver needs nothing but the bytes and the length
 * it expects. Large tensors are sent as chunks: encode each element range on its own, with the same
 * spec, any n in [0, FLZ_MAX_N].
 *
 * Shape (zstd's): caller-owned output buffers sized by flz_encode_bound(); an opaque flz_ctx holds
 * all scratch memory (grown on first use or up front by flz_ctx_reserve(), then reused: no
 * allocation in the hot path). A ctx is not thread-safe; use one per thread. Specs, params and
 * payloads are plain data and may be shared read-only.
 *
 * Guarantees: encode rejects non-finite input (FL_ERR_NUMERIC); decode validates every header field
 * against its buffer and against the expected length, and never writes a non-finite value (a
 * payload that would decode to one is FL_ERR_CODEC_CORRUPT). Same key, same input, same spec: the
 * same bytes, whichever instruction set (portable C, AVX2 or AVX-512) ran it.
 */
#ifndef FLZ_H
#define FLZ_H

#include <stddef.h>
#include <stdint.h>

#include "fl_log.h"
#include "fl_par.h"
#include "fl_status.h"

/* Largest element count of one payload (one chunk). */
#define FLZ_MAX_N ((size_t)1 << 28)
/* Size of the fixed payload header, in bytes. */
#define FLZ_HEADER_SIZE 52u
/* A buffer of this size always holds flz_spec_format()'s output. */
#define FLZ_SPEC_STRLEN 96u

typedef enum flz_value {
    FLZ_VALUE_F32 = 0,  /* raw little-endian float32 */
    FLZ_VALUE_Q = 1,    /* unbiased stochastic quantisation, q_bits per value, min/max per block */
    FLZ_VALUE_F16 = 2,  /* IEEE binary16, round to nearest even */
    FLZ_VALUE_BF16 = 3, /* bfloat16, round to nearest even */
} flz_value;

/* A parsed pipeline. Plain data: fill it with flz_spec_parse() (or by hand, then the encoder checks
 * it and returns FL_ERR_CODEC_SPEC when a field is out of range). */
typedef struct flz_spec {
    float topk;          /* fraction of elements kept by top-k, in [1e-7, 1]; 0: no top-k stage */
    unsigned rot_log2;   /* log2 of the Hadamard block, 1..16; 0: no rotation */
    float sub;           /* fraction kept by random subsampling, in [1e-7, 1); 0: no subsampling */
    flz_value value;     /* how the values travel */
    unsigned q_bits;     /* 1, 2, 4 or 8 when value == FLZ_VALUE_Q, else 0 */
    unsigned q_log2;     /* log2 of the quantisation block, 4..16, when value == FLZ_VALUE_Q */
    int zstd;            /* 1: final zstd stage; 0: none */
    int zstd_level;      /* -7..19 when zstd == 1 */
} flz_spec;

/* Defaults filled in when the spec string omits a parameter. */
#define FLZ_DEFAULT_ROT_LOG2 10   /* "rot" = "rot1024" */
#define FLZ_DEFAULT_Q_LOG2 8      /* "q4" = "q4b256" */
#define FLZ_DEFAULT_ZSTD_LEVEL 1  /* "zstd" = "zstd1" */

typedef struct flz_ctx flz_ctx;
typedef struct flz_residual flz_residual;

/* Per-message encode parameters. The RNG key (seed, round, client) selects the fl_rng streams of
 * purposes FL_RNG_QUANT, FL_RNG_SUBSAMPLE and FL_RNG_ROTATE and is written into the header. Give
 * each chunk of a tensor its own key (e.g. mix the chunk index into seed) or the chunks share their
 * dither and rotation signs. */
typedef struct flz_params {
    uint64_t seed;
    uint32_t round;
    uint32_t client;
    /* Error feedback: NULL for none. Otherwise a residual of exactly n elements that the caller
     * keeps per (client, tensor chunk): the encoder compresses x + residual and stores back in it
     * what the receiver will not see, (x + residual) - decode(payload). Not shared between threads. */
    flz_residual *residual;
} flz_params;

typedef enum flz_isa {
    FLZ_ISA_PORTABLE = 0, /* plain C */
    FLZ_ISA_AVX2 = 1,     /* AVX2 + FMA + F16C kernels (x86-64, selected at runtime) */
    FLZ_ISA_AVX512 = 2,   /* AVX-512 F/BW/DQ/VL where it pays, AVX2 elsewhere (the default where
                           * the CPU has it) */
} flz_isa;

/* Parses spec string s into *out. Returns FL_OK, or FL_ERR_CODEC_SPEC with a readable reason
 * (NUL-terminated, truncated to errlen) in err when err != NULL and errlen > 0; FL_ERR_INVALID_ARG
 * if s or out is NULL. *out is written only on success. Thread-safe. */
fl_status flz_spec_parse(const char *s, flz_spec *out, char *err, size_t errlen);

/* Writes the canonical spec string of spec (every parameter explicit, e.g. "rot1024+q4b256+zstd1")
 * to buf (NUL-terminated, truncated to cap). Returns the length of the full string (like
 * snprintf); flz_spec_parse() of it gives back *spec. Returns 0 and writes "" if spec is invalid.
 * Thread-safe. */
size_t flz_spec_format(const flz_spec *spec, char *buf, size_t cap);

/* FL_OK if spec is a valid pipeline, else FL_ERR_CODEC_SPEC (reason in err as above). */
fl_status flz_spec_check(const flz_spec *spec, char *err, size_t errlen);

/* Largest payload flz_encode() can produce for n elements with spec: header included. 0 if spec
 * is invalid or n > FLZ_MAX_N. Thread-safe. */
size_t flz_encode_bound(const flz_spec *spec, size_t n);

/* 1 when every payload of spec for n elements has the same size, whatever the values and the RNG
 * key (rotation and the value stages are fixed-rate); 0 with zstd (the values decide), subsampling
 * (a Bernoulli number of values is kept) or top-k (the index bytes follow the gaps). */
int flz_spec_fixed_rate(const flz_spec *spec);

/* The fewest payload bytes n elements take through spec: for a fixed-rate pipeline its one
 * size (flz_encode_bound, header included; several payloads of n elements in all take at least
 * this many), else 0 (nothing certain). Thread-safe. */
size_t flz_encode_size_min(const flz_spec *spec, size_t n);

/* A codec context with no scratch memory yet. log may be NULL (the logger is copied). Returns
 * FL_OK or FL_ERR_NOMEM. Picks the AVX-512 kernels, else the AVX2 ones, when the CPU has them
 * (the same bits as the portable ones). The caller owns *out. */
fl_status flz_ctx_new(const fl_logger *log, flz_ctx **out);
/* Frees ctx and its scratch. NULL is a no-op. */
void flz_ctx_free(flz_ctx *ctx);
/* Allocates up front the scratch that encoding and decoding n elements with spec need, so that
 * later calls with sizes up to these never allocate. FL_OK, FL_ERR_NOMEM, FL_ERR_CODEC_SPEC. */
fl_status flz_ctx_reserve(flz_ctx *ctx, const flz_spec *spec, size_t n);
/* Forces the kernel set (tests, benchmarks). FL_ERR_UNSUPPORTED if this CPU or build lacks it. */
fl_status flz_ctx_set_isa(flz_ctx *ctx, flz_isa isa);
flz_isa flz_ctx_isa(const flz_ctx *ctx);

/* Encodes x[0..n) with spec into dst[0..cap); *written = payload size. Returns FL_OK;
 * FL_ERR_CODEC_SPEC (invalid spec); FL_ERR_INVALID_ARG (NULL pointers, n > FLZ_MAX_N, residual of
 * another length); FL_ERR_BUFFER_TOO_SMALL (cap < needed; cap >= flz_encode_bound() always
 * suffices); FL_ERR_NUMERIC (a non-finite input, a block whose range overflows float, a value
 * outside float16's range for f16: flz_ctx_error says which); FL_ERR_NOMEM; FL_ERR_INTERNAL (zstd
 * failed). On error dst is unspecified and the residual is unchanged. x may be NULL when n == 0.
 * Not thread-safe per ctx. */
fl_status flz_encode(flz_ctx *ctx, const flz_spec *spec, const flz_params *params,
                     const float *x, size_t n, uint8_t *dst, size_t cap, size_t *written);

/* Why the last flz_encode or flz_encode_diff on ctx returned FL_ERR_NUMERIC, in words that name
 * the value and the limit it passed, e.g. "element 3 is 100000, outside float16's range (its
 * largest finite value is 65504): f16 cannot carry it; bf16 (float32's range) or float32 values
 * can"; "" after any other outcome, or for a NULL ctx. Valid until the next call on ctx. For the
 * caller's message: FL_ERR_NUMERIC's own text (fl_strerror) says only "non-finite value", where
 * the input may be finite and only beyond what the spec's stages carry. Not thread-safe per ctx. */
const char *flz_ctx_error(const flz_ctx *ctx);

/* flz_encode of the difference a[i] - b[i] (a model delta: trained minus received weights), the
 * same bytes as forming it first and calling flz_encode. For plain float32 the difference is
 * written straight into dst in one pass (no float[n] intermediate); other pipelines form it in the
 * context's scratch. Same returns as flz_encode. Not thread-safe per ctx. */
fl_status flz_encode_diff(flz_ctx *ctx, const flz_spec *spec, const flz_params *params,
                          const float *a, const float *b, size_t n, uint8_t *dst, size_t cap,
                          size_t *written);

/* Decodes payload src[0..len) into out[0..n_expected). Returns FL_OK; FL_ERR_CODEC_HEADER (header
 * malformed, checksum wrong, or its lengths disagree with len: truncated or trailing bytes);
 * FL_ERR_CODEC_LENGTH (a valid header for another element count); FL_ERR_CODEC_CORRUPT (the body
 * does not decode: zstd error or checksum, bad index list, bad block range, non-finite result);
 * FL_ERR_NOMEM. On error out[] may have been overwritten (use flz_decode_axpy to keep a target
 * intact). Not thread-safe per ctx. On x86 it runs with subnormals flushed to zero (MXCSR FTZ and
 * DAZ, the caller's MXCSR restored before it returns): a value the decoder computes (a quantised,
 * f16, rotated or subsampled one) below FLT_MIN in magnitude is 0, so that no payload can steer
 * the arithmetic into the CPU's slow path for subnormals; float32 and bfloat16 values, moved as
 * bits with no arithmetic, keep a subnormal as sent. */
fl_status flz_decode(flz_ctx *ctx, const uint8_t *src, size_t len, float *out, size_t n_expected);

/* flz_decode, with the dense work of a quantised payload (dequantisation and the inverse
 * rotation; no top-k, no subsampling) split over a lent parallel-for (fl_par.h) in pieces of
 * whole quantisation and rotation blocks: the same status and, on success, the same bits as
 * flz_decode. Payloads below par->min_elems elements (0: 16384), other pipelines, and par NULL or
 * of fewer than 2 parts decode as flz_decode does. Not thread-safe per ctx; the pieces run on the
 * lender's threads, each in the floating-point mode flz_decode runs in, whatever mode those
 * threads are in: the caller's rounding mode (on x86 its MXCSR), subnormals flushed. */
fl_status flz_decode_par(flz_ctx *ctx, const uint8_t *src, size_t len, float *out,
                         size_t n_expected, const fl_par *par);

/* out[i] += alpha * decoded[i] for the payload, all or nothing: on any error out[] is untouched.
 * For top-k payloads only the k kept coordinates are read and written (no dense pass). Same
 * returns as flz_decode; FL_ERR_INVALID_ARG for a non-finite alpha. Not thread-safe per ctx.
 * The decoding flushes subnormals as flz_decode does (the same decoded values); the axpy itself
 * runs in the caller's floating-point mode. */
fl_status flz_decode_axpy(flz_ctx *ctx, const uint8_t *src, size_t len, float alpha, float *out,
                          size_t n_expected);

/* What a payload header says, after full header validation (no body decoding). */
typedef struct flz_info {
    flz_spec spec;
    size_t n;
    uint64_t seed;
    uint32_t round, client;
    size_t body_len;     /* bytes after the header */
    size_t body_raw_len; /* body bytes before the zstd stage */
} flz_info;
/* FL_OK or FL_ERR_CODEC_HEADER. Thread-safe. */
fl_status flz_peek(const uint8_t *src, size_t len, flz_info *info);

/* Error-feedback state for one (client, tensor chunk) of n elements, zero-initialised. The caller
 * owns *out. FL_OK, FL_ERR_NOMEM, FL_ERR_INVALID_ARG (n > FLZ_MAX_N). A residual is used by one
 * thread at a time (the one encoding with it); distinct residuals are independent. */
fl_status flz_residual_new(size_t n, flz_residual **out);
void flz_residual_free(flz_residual *r);             /* NULL is a no-op */
void flz_residual_reset(flz_residual *r);            /* back to zeros */
size_t flz_residual_len(const flz_residual *r);
const float *flz_residual_data(const flz_residual *r); /* n floats, valid until the next encode */

#endif
