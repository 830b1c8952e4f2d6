/* fls_internal.h: what the parts of libflserver share (not public: include/fls.h is the API).
 *
 *   fls_options (fls_config.c)  the parsed settings, converted to the core's fls_config here
 *   keys and allow-lists (fls_keys.c)
 *   the reactor (fls_server.c)
 *
 * Thread-safety: as fls.h: one thread per object; the functions here are reentrant.
 */
#ifndef FLS_INTERNAL_H
#define FLS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fl_keyfile.h"
#include "fl_log.h"
#include "fl_status.h"
#include "fls.h"
#include "fls_round.h"

#define FLS_MAX_ENDPOINTS 8
#define FLS_ENDPOINT_MAX 256
#define FLS_PATH_MAX 1024
#define FLS_Z85_LEN FL_KEY_Z85_LEN /* a CURVE key in Z85 text */
#define FLS_CONFIG_MAX_BYTES (1u << 20)
/* How long a --config FIFO or pipe is waited for: its first bytes, each next ones, its end. */
#define FLS_CONFIG_FIFO_WAIT_S 10.0
#define FLS_N_KEYS 65                /* rows of the key table (fls_config.c checks it) */
#define FLS_ORIGIN_MAX 192           /* "fl.yaml:7", "--arch x": longer ones are shortened */

struct fls_options {
    fls_config core;               /* arch, seed, policy, agg, rounds, train, codecs, ... */
    /* values given in policy.keep_layers: a 0 among them means "policy.keep" for its layer, so
     * the count, not a 0, ends the list */
    uint32_t n_keep_layers;
    /* optimizer: the kind's defaults apply to every field left unset (NaN) */
    double opt_lr, opt_momentum, opt_beta1, opt_beta2, opt_tau, opt_v0;
    /* network */
    char endpoints[FLS_MAX_ENDPOINTS][FLS_ENDPOINT_MAX];
    uint32_t n_endpoints;
    int insecure;
    char secret_key_file[FLS_PATH_MAX];
    char allow_list[FLS_PATH_MAX];
    uint32_t heartbeat_ms, liveness_ms, credit, sndhwm, max_clients;
    uint32_t id_idle_s;            /* an id without a session this long may be forgotten (0: never) */
    uint32_t ids_per_key;          /* ids one CURVE key may hold (0: no limit) */
    uint32_t idle_conn_s;          /* a connection without a session this long is closed (0: never) */
    uint32_t backlog;              /* ZMQ_BACKLOG of the ROUTER's listeners */
    uint32_t done_linger_s;        /* up this long after the run is done, telling Bye("done") */
    uint32_t upload_slots;         /* clients sending update chunks at once (the others queue) */
    uint64_t max_msg_bytes;
    /* evaluation */
    int eval_dataset;              /* FLS_EVAL_* */
    char eval_dir[FLS_PATH_MAX];
    int eval_split;                /* 0 test, 1 train */
    uint64_t eval_max_samples;     /* 0: all */
    uint32_t eval_batch;
    uint64_t eval_synth_samples;
    /* run */
    char ckpt_path[FLS_PATH_MAX];
    uint32_t ckpt_every;
    int resume;
    char metrics_path[FLS_PATH_MAX];
    int log_level;                 /* fl_log_level */
    /* the file fls_options_load_file read last ("" if none, or if its path is too long): the
     * server never writes it (a checkpoint or metrics file at its path would destroy it) */
    char config_path[FLS_PATH_MAX];
    /* SHA-256 of the bytes read from config_path (config_digest_set: a regular file). A reload
     * reads only the allow-list and run.metrics; it compares the file with this digest, so that
     * an edit it does not apply (systemctl reload after changing fl.yaml) is said, not ignored
     * in silence. */
    uint8_t config_digest[32];
    int config_digest_set;
    /* where each key's last value came from, by key table row: "fl.yaml:7" (file and line of the
     * key), the flag as given ("--set model.arch=x", "--arch x"), or "" for a default or a value
     * from fls_options_set. Checks across keys put it before their message. */
    char origin[FLS_N_KEYS][FLS_ORIGIN_MAX];
};

enum { FLS_EVAL_NONE = 0, FLS_EVAL_SYNTHETIC = 1, FLS_EVAL_MNIST = 2, FLS_EVAL_FASHION = 3 };

/* The seconds a connection without a session is kept that the server applies: 0 (never), or
 * server.idle_connection_s raised to twice server.liveness_ms (rounded up) when below it. The
 * one place of that rule (the reactor, fls_options_get_effective). */
uint32_t fls_options_idle_conn_s(const fls_options *o);

/* Tests: the passes the reactor made over its session table to remove the sessions that ended
 * (fls_server.c, sess_compact). */
uint64_t fls_server_compactions(const fls_server *s);

/* The core's configuration of o (optimizer defaults of its kind filled in), logger left zeroed. */
fls_config fls_options_core_config(const fls_options *o);

/* Where key's value came from (see fls_options.origin): "" for a default, an unknown key, or a
 * value set without an origin. Points into o. */
const char *fls_options_origin(const fls_options *o, const char *key);

/* Each setting given (a flag or a file line: an origin) at other than its default that the other
 * settings make inert, such as policy.keep under policy.kind full: the server accepts it, but
 * whoever wrote it expected it to matter. say(u, key, origin, why) for each, in key order. */
void fls_options_inert(const fls_options *o,
                       void (*say)(void *u, const char *key, const char *origin, const char *why),
                       void *u);

/* An error about key's value, found once every file and flag is in: writes the message into err,
 * after "ORIGIN: " when the value came from a file or a flag ("fl.yaml:7: model.arch: ..."), and
 * returns st. other (NULL: none) is a key the value was checked against: its origin stands
 * first when key has none (a default), and is added as "; OTHER from ORIGIN" when both came
 * from different places. */
fl_status fls_options_errf(const fls_options *o, char *err, size_t errlen, fl_status st,
                           const char *key, const char *other, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* fl_status -> fls_status: the numbers are the same, but for the internal codes that fls.h folds
 * into a listed one (a dataset file unreadable is FLS_ERR_DATASET, a checkpoint failing its
 * checksum FLS_ERR_CHECKPOINT, a tensor shape the architecture refuses FLS_ERR_MODEL); other
 * internal codes map to themselves. */
static inline fls_status fls_status_of(fl_status s)
{
    switch (s) {
    case FL_ERR_DATASET_IO:
        return FLS_ERR_DATASET;
    case FL_ERR_CHECKPOINT_FORMAT:
    case FL_ERR_CHECKPOINT_CHECKSUM:
    case FL_ERR_CHECKPOINT_NEWER:
        return FLS_ERR_CHECKPOINT;
    case FL_ERR_MODEL_SHAPE:
        return FLS_ERR_MODEL;
    default:
        return (fls_status)s;
    }
}

/* ---- keys (fls_keys.c) ---------------------------------------------------------------------- */

/* Key files are read by common's fl_key_file_read (fl_keyfile.h), as fl_client reads them. */

/* A sorted set of 32-byte CURVE public keys. */
typedef struct fls_allow {
    uint8_t (*keys)[32];
    size_t n;
    int blank; /* the text held nothing but blanks: no key, not even a comment (an empty file) */
} fls_allow;

/* Parses an allow-list: one Z85 public key per line; blank lines and '#' comments (a whole line,
 * or after the key and a blank: '#' is also a Z85 character) ignored. Duplicates are merged. name
 * labels errors ("allow.txt:3: ..."). Into *out (owned by the caller: fls_allow_clear), which is
 * untouched on error; out->blank says the text was empty or blanks only. FL_OK, FL_ERR_AUTH (a
 * bad line), FL_ERR_NOMEM. */
fl_status fls_allow_parse(fls_allow *out, const char *text, size_t len, const char *name,
                          char *err, size_t errlen);
/* Reads the file (at most 64 MiB; a regular file: a FIFO, a device or a directory is refused at
 * once, "PATH: a FIFO, not a regular file") and parses it. FL_ERR_IO when it cannot be read. */
fl_status fls_allow_load(fls_allow *out, const char *path, char *err, size_t errlen);
/* 1 if key (32 bytes) is in a. */
int fls_allow_has(const fls_allow *a, const uint8_t key[32]);
void fls_allow_clear(fls_allow *a);

/* ---- the client-id journal (fls_ids.c; README.md "Client ids across restarts") ------------- */

/* The bindings of client ids survive a restart in CHECKPOINT.ids: a first line FLS_IDS_MAGIC,
 * then records, one a line, each with a checksum (the format: fls_ids.c). */
#define FLS_IDS_MAGIC "fedrop client ids 1"
#define FLS_IDS_SUFFIX ".ids"
#define FLS_IDS_ID_MAX 1024        /* an id's bytes at most (the wire's limit for strings) */
#define FLS_IDS_LINE_MAX 1200      /* a record's bytes at most, its '\n' included */
#define FLS_IDS_KEYS 4             /* an id's keys: derived (0) and alternates 1-3 */

/* One binding: the id, its engine key (key number j of the id: fl_client_key_of), and under
 * CURVE the public key that owns it. */
typedef struct fls_ids_rec {
    char *id;
    uint32_t key;
    uint8_t j;
    int has_pub;
    uint8_t pub[32];
} fls_ids_rec;

/* A journal read back: its live bindings, oldest first (the idle order). */
typedef struct fls_ids {
    fls_ids_rec *r;
    size_t n;
    size_t records;                /* complete records read (the first line not counted) */
    size_t torn_bytes;             /* bytes after the last '\n': a write cut short, ignored */
} fls_ids;

/* Replays the journal in buf[0..len) into *out (owned by the caller: fls_ids_clear). A last line
 * without its '\n' is a torn write: left out and counted in out->torn_bytes (not an error; a
 * file without a complete first line, the empty file included, is damaged: the server writes
 * that line only by renaming a whole, synced file). Any other fault (a first line that is not
 * FLS_IDS_MAGIC, a checksum that does not match, a record that does not parse, a key that is
 * not the id's, an id or key bound twice, a forget of a binding that is not there) is
 * FL_ERR_CHECKPOINT_FORMAT with "NAME:LINE: reason" in err; a first line of a later version
 * ("fedrop client ids 2") is FL_ERR_CHECKPOINT_NEWER. Also FL_ERR_NOMEM, FL_ERR_INVALID_ARG
 * and a digest's failure. On error *out holds no binding (torn_bytes is set). Reentrant. */
fl_status fls_ids_parse(fls_ids *out, const uint8_t *buf, size_t len, const char *name, char *err,
                        size_t errlen);
void fls_ids_clear(fls_ids *t);    /* NULL is a no-op */
/* One record's line (its '\n' included, no NUL) into dst[0..cap): "b" binds id to key (its key
 * number j; pub NULL: no owner), "f" forgets it. Returns its length; 0 when id is not a valid id
 * (see fls_ids_parse), j is out of range, cap is too small or the digest failed. */
size_t fls_ids_format_bind(char *dst, size_t cap, const char *id, uint32_t key, unsigned j,
                           const uint8_t *pub);
size_t fls_ids_format_forget(char *dst, size_t cap, const char *id, uint32_t key);

#endif
