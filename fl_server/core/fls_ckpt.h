/* fls_ckpt.h: server checkpoints, a versioned binary format, written atomically.
 *
 * A checkpoint holds everything the round engine needs to resume a run exactly: the global model,
 * the server optimizer's state arrays and step counter, the selection policy's exported state
 * (AFD score maps, l_prev, keep-sets; fls_policy_export bytes), the next round number, the model
 * version and the SHA-256 digest of the configuration that produced it.
 *
 * RNG position: none is stored because none exists. Every random draw in fedrop comes from a
 * counter-based stream keyed by (seed, round, client, purpose) (common/fl_rng.h); the seed is part
 * of the configuration (and so of its digest) and the round counter is stored, which fixes every
 * later draw.
 *
 * File layout (all integers little-endian, floats IEEE-754 binary32/64 bits little-endian):
 *   magic "FLSCKPT\0" (8) | u32 format version (1) | u32 flags (0) | u64 body_len | body
 *   | SHA-256 (32) of every preceding byte
 * body = sections, each: u32 tag | u64 len | len bytes; tags 1-4 exactly once, in this order,
 * then the optional ones (each at most once, in tag order; a file without them reads as "not
 * reached" and "no id"):
 *   1 META    config digest (32) | u64 round | u64 model_version | u32 arch_len | arch (<= 63)
 *   2 MODEL   u64 n | n x f32 (finite)
 *   3 OPT     u32 kind | u64 steps | u32 n_arrays (<= FLS_CKPT_MAX_OPT)
 *             | per array: u32 name_len | name (<= 31) | u64 n | n x f32 (finite)
 *   4 POLICY  opaque bytes (validated by fls_policy_import)
 *   5 TARGET  f64 accuracy in [0, 1]: the run ended when an evaluation reached it
 *   6 RUN     u64 run id (nonzero)
 *   7 CONFIG  the configuration's canonical text (fls_config_canon: "name=value\n" lines,
 *             printable ASCII, at most FLS_CKPT_CONFIG_MAX bytes) whose SHA-256 is META's
 *             digest: a refused resume names the settings that changed. Files of fedrop before
 *             2026-11-29 have none (then only the digest can be compared).
 *
 * Thread-safety: functions are reentrant; an fls_ckpt value belongs to one thread at a time.
 */
#ifndef FLS_CKPT_H
#define FLS_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "fl_log.h"
#include "fl_sha256.h"
#include "fl_status.h"

#define FLS_CKPT_VERSION 1u
#define FLS_CKPT_MAX_OPT 4
#define FLS_CKPT_NAME_MAX 32
#define FLS_CKPT_ARCH_MAX 64
#define FLS_CKPT_CONFIG_MAX 4095 /* bytes of the CONFIG section's text */

typedef struct fls_ckpt_array {
    char name[FLS_CKPT_NAME_MAX]; /* NUL-terminated, 1..31 bytes */
    size_t n;
    float *data;                  /* n floats; owned by the fls_ckpt */
} fls_ckpt_array;

/* A checkpoint in memory. Every pointer is owned by the value (fls_ckpt_clear frees them). A
 * writer may also fill one with borrowed pointers and never clear it (the writer only reads). */
typedef struct fls_ckpt {
    uint8_t config_digest[FL_SHA256_LEN];
    uint64_t round;               /* the next round to run */
    uint64_t model_version;
    char arch[FLS_CKPT_ARCH_MAX]; /* architecture spec string */
    size_t n_params;
    float *params;
    uint32_t opt_kind;            /* fls_opt_kind */
    uint64_t opt_steps;
    size_t n_opt;
    fls_ckpt_array opt[FLS_CKPT_MAX_OPT];
    size_t policy_len;
    uint8_t *policy;
    int target_reached;           /* the run ended when an evaluation reached its target: */
    double target_acc;            /* that accuracy (a resume with a target at most this ends) */
    uint64_t run_id;              /* the run's id (fls_core_set_run_id); 0: none recorded */
    char *config;                 /* the configuration's canonical text (not NUL-terminated), */
    size_t config_len;            /*   config_len bytes; NULL / 0: not recorded */
    uint8_t sha256[FL_SHA256_LEN]; /* fls_ckpt_parse: the file's checksum (its last 32 bytes);
                                    * zeros for a checkpoint made in memory */
} fls_ckpt;

/* Frees what c owns and zeroes it. NULL is a no-op. */
void fls_ckpt_clear(fls_ckpt *c);

/* Encodes c into a new buffer *buf of *len bytes (caller frees with free()), allocated once at
 * its exact size (the state's bytes and a few hundred more). Returns FL_OK,
 * FL_ERR_INVALID_ARG (a name or arch too long, an empty one, too many arrays, NULL data with
 * n > 0, a reached target accuracy outside [0, 1], a config text too long, with other than
 * printable ASCII and newlines, or not config_digest's),
 * FL_ERR_NUMERIC (a non-finite parameter or state value), FL_ERR_NOMEM. */
fl_status fls_ckpt_serialize(const fls_ckpt *c, uint8_t **buf, size_t *len);

/* Parses and validates buf[0..len) (outside bytes: never trusted) into *out (owned by the caller,
 * fls_ckpt_clear). Allocation never exceeds len bytes. Returns FL_OK; FL_ERR_CHECKPOINT_FORMAT
 * (not a checkpoint, truncated, another format version whose digest does not match, a malformed
 * section); FL_ERR_CHECKPOINT_CHECKSUM (the SHA-256 does not match); FL_ERR_CHECKPOINT_NEWER (a
 * whole file, its digest matching, of a later format version or with a later optional section:
 * a later fedrop's, not damage); FL_ERR_NOMEM. On error *out is zeroed and err (may be NULL)
 * says what is wrong. */
fl_status fls_ckpt_parse(const uint8_t *buf, size_t len, fls_ckpt *out, char *err, size_t errlen);

/* FL_OK if c was written by the configuration with this digest, else
 * FL_ERR_CHECKPOINT_MISMATCH. */
fl_status fls_ckpt_check_digest(const fls_ckpt *c, const uint8_t digest[FL_SHA256_LEN]);

/* Writes c to path atomically (fl_atomic: a temporary file in the same directory, write, fsync,
 * rename over path, fsync of the directory). A crash leaves either the old file or the new one,
 * never a mix. The bytes are fls_ckpt_serialize's, streamed: written from c's arrays through a
 * 16 KiB buffer on the stack and hashed on the way, so no copy of the state is made. Its two
 * descriptors (the temporary file, the directory) are opened before anything is encoded. Returns
 * FL_OK, FL_ERR_NOMEM, FL_ERR_IO (with errno's text logged through log, which may be NULL, and
 * errno left as the failed call set it: EMFILE when the process is out of descriptors), or a
 * serialize error. */
fl_status fls_ckpt_write(const char *path, const fls_ckpt *c, const fl_logger *log);

/* The bytes of c's file (fls_ckpt_serialize's length), for a c that fls_ckpt_stream accepts;
 * computed from the sizes alone. 0 for NULL. */
uint64_t fls_ckpt_size(const fls_ckpt *c);

/* Gives c's file bytes (fls_ckpt_serialize's, fls_ckpt_size of them) to sink in order, in pieces:
 * the small ones gathered in a 16 KiB buffer on the stack, the model's and the optimizer's arrays
 * from where they lie, so that no copy of the state is made (a caller that frames the bytes in a
 * file of its own writes them as they come). sink returns 0, or an errno that ends the stream.
 * Returns FL_OK; FL_ERR_IO (sink failed: errno is what it returned); a serialize error, before
 * any byte is given; FL_ERR_NOMEM. */
fl_status fls_ckpt_stream(const fls_ckpt *c, int (*sink)(void *user, const void *p, size_t n),
                          void *user);

/* Reads and parses the file at path (at most max_bytes; 0 = any size, as any checkpoint that
 * fls_ckpt_write makes can be read back), once, in order, through a
 * 16 KiB buffer on the stack: the file is never held whole, and what is allocated is what *out
 * keeps (the state's bytes). FL_ERR_IO if it cannot be read (or ends early), else as
 * fls_ckpt_parse, with the same status and message for the same bytes. */
fl_status fls_ckpt_read(const char *path, size_t max_bytes, fls_ckpt *out, char *err,
                        size_t errlen);

/* fls_ckpt_read of the len bytes at offset off of the open file fd (a checkpoint framed in a
 * file of another format: fl_sim's resume.fls), read from there in order. FL_ERR_IO if they
 * cannot be read (errno: why; 0 when the file ended early), else as fls_ckpt_parse. */
fl_status fls_ckpt_read_fd(int fd, uint64_t off, uint64_t len, fls_ckpt *out, char *err,
                           size_t errlen);

#endif
