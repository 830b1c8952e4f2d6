/* flm_data.h: in-memory datasets, their readers (IDX, LEAF JSON), a synthetic generator, and the
 * partitioners that split a dataset over K federated clients.
 *
 * A dataset holds N samples of one per-sample shape, laid out like the model inputs of flm_arch.h:
 *   - float samples (FLM_DATA_FLOAT): x is N x (C*H*W) floats, contiguous, channel-major per
 *     sample (element (c, h, w) of sample i at x[i*C*H*W + c*H*W + h*W + w]); image pixels are
 *     normalised to [0, 1];
 *   - token samples (FLM_DATA_TOKENS): tokens is N x T int32 ids in [0, classes), T stored in H
 *     (C = W = 1, as flm_arch stores an lstm input); the label is the next token.
 * y holds N int32 labels in [0, classes). LEAF datasets also carry per-sample user ids (user[i]
 * indexes users[]) for the natural partition.
 *
 * Readers validate everything and never trust a count before the bytes behind it arrived: memory
 * grows with the data actually read, not with what a header claims. Malformed input returns
 * FL_ERR_DATASET_FORMAT, an unreadable file FL_ERR_DATASET_IO; both write a readable reason (with
 * the file name and, for JSON, the line and byte offset) into err[errlen] when err is not NULL.
 *
 * Every function here is thread-safe on distinct objects (no globals); a dataset or partition is
 * immutable after construction, so any number of threads may read one concurrently.
 */
#ifndef FLM_DATA_H
#define FLM_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "fl_rng.h"
#include "fl_status.h"

typedef enum flm_data_kind {
    FLM_DATA_FLOAT = 0,   /* x: N x (C*H*W) floats */
    FLM_DATA_TOKENS = 1,  /* tokens: N x T int32 (T = H) */
} flm_data_kind;

/* A plain struct, so that trainers index samples directly. Every array is malloc'd and owned by
 * the dataset (flm_dataset_free frees them all): code that attaches arrays by hand (a user table
 * on a synthetic set, say) must allocate them with malloc and hand them over. */
typedef struct flm_dataset {
    flm_data_kind kind;
    size_t N;              /* samples */
    int C, H, W;           /* per-sample shape; tokens: C = W = 1, H = T */
    size_t sample_len;     /* C*H*W: floats (or tokens) per sample */
    int classes;           /* labels (and token ids) lie in [0, classes) */
    float *x;              /* FLOAT: N * sample_len, else NULL */
    int32_t *tokens;       /* TOKENS: N * sample_len, else NULL */
    int32_t *y;            /* N labels */
    uint32_t *user;        /* N user indexes into users[], or NULL (no natural partition) */
    size_t n_users;
    char **users;          /* n_users NUL-terminated names (LEAF), or NULL */
} flm_dataset;

/* ---- the dataset object ------------------------------------------------------------------- */

/* Allocates a dataset of N samples of shape (C, H, W) (for TOKENS pass C = W = 1, H = T) with
 * zeroed x/tokens and y and no users. classes in [1, 2^31). Returns FL_ERR_INVALID_ARG for a bad
 * shape, FL_ERR_OVERFLOW if the sizes overflow, FL_ERR_NOMEM. The caller owns *out. */
fl_status flm_dataset_new(flm_dataset **out, flm_data_kind kind, size_t N, int C, int H, int W,
                          int classes);

/* Frees ds and everything it owns. NULL is a no-op. */
void flm_dataset_free(flm_dataset *ds);

/* A new dataset holding copies of samples idx[0..n) of ds, in that order (users carried over,
 * with the full user table). Returns FL_ERR_INVALID_ARG if an index is >= ds->N. Caller owns *out. */
fl_status flm_dataset_subset(flm_dataset **out, const flm_dataset *ds, const uint32_t *idx,
                             size_t n);

/* Keeps samples idx[0..n) of ds in place, in that order, and drops the rest: no second copy of
 * the data (a training split of LEAF's FEMNIST is gigabytes). idx must be strictly increasing
 * and below ds->N; idx NULL keeps the first n (n <= ds->N). Otherwise FL_ERR_INVALID_ARG and ds
 * is untouched. The arrays are shrunk to the n samples kept (a shrink that fails keeps the
 * larger block); the user table stays whole. */
fl_status flm_dataset_keep(flm_dataset *ds, const uint32_t *idx, size_t n);

/* Sample i's features (FLOAT) or tokens (TOKENS); NULL if i is out of range or the kind differs. */
const float *flm_dataset_x(const flm_dataset *ds, size_t i);
const int32_t *flm_dataset_tokens(const flm_dataset *ds, size_t i);

/* Counts labels: counts[c] = samples of class c, c in [0, ds->classes). */
void flm_dataset_label_counts(const flm_dataset *ds, size_t *counts);

/* ---- synthetic data (tests, smoke runs), seeded by fl_rng streams of purpose FL_RNG_DATA ------ */

/* Which samples a synthetic set holds. Both splits pose the same task (the seed's class centres,
 * its successor table) with disjoint samples: a test or evaluation set drawn HELDOUT never
 * repeats a training sample of the same seed, whatever the two sizes. Other datasets ignore it. */
typedef enum flm_split {
    FLM_SPLIT_TRAIN = 0,
    FLM_SPLIT_HELDOUT = 1,
} flm_split;

/* Gaussian class clusters: class c has a centre drawn uniformly in [0.2, 0.8]^(C*H*W); sample i
 * has label i % classes and features centre + sigma * N(0, 1), clamped to [0, 1]. Learnable
 * (nearest centre is Bayes-optimal) and balanced. Sample i depends only on (seed, split, i): the
 * first n samples are the same whatever N. Caller owns *out. */
fl_status flm_dataset_synth_images(flm_dataset **out, size_t N, int C, int H, int W, int classes,
                                   float sigma, uint64_t seed, flm_split split);

/* Token sequences for next-token prediction over a vocabulary of `vocab` ids: a hidden successor
 * table succ[] (drawn from the seed) drives each sequence, t_{j+1} = succ[t_j] with probability
 * 1 - noise and a uniform id otherwise; the label follows the same rule from the last token.
 * T tokens per sample (H = T); sample i depends only on (seed, split, i). Caller owns *out. */
fl_status flm_dataset_synth_tokens(flm_dataset **out, size_t N, int T, int vocab, float noise,
                                   uint64_t seed, flm_split split);

/* ---- IDX (MNIST, Fashion-MNIST) ----------------------------------------------------------- */

/* Loads an image file (IDX magic 0x00000803: N x rows x cols unsigned bytes) and its label file
 * (0x00000801: N unsigned bytes), each gzipped or not (detected from the content). Pixels become
 * floats p / 255 in [0, 1]; shape (1, rows, cols). Labels must be < classes (1..256).
 * Returns FL_OK, FL_ERR_DATASET_IO (cannot open or read: when neither file opens, err names
 * both, the images first), FL_ERR_DATASET_FORMAT (bad magic, bad
 * dims, counts differ, truncated, trailing bytes, label out of range, a damaged or cut gzip
 * stream), FL_ERR_INVALID_ARG, FL_ERR_NOMEM. Bytes after the end of a gzip member that are not
 * another member are ignored (zlib's gzread behaviour). Caller owns *out. */
fl_status flm_idx_load(flm_dataset **out, const char *images_path, const char *labels_path,
                       int classes, char *err, size_t errlen);

/* The same from memory buffers (each gzipped or not: a buffer starting 1f 8b is inflated; only
 * its first member is read); a buffer is only read, never kept. */
fl_status flm_idx_load_mem(flm_dataset **out, const uint8_t *images, size_t images_len,
                           const uint8_t *labels, size_t labels_len, int classes, char *err,
                           size_t errlen);

/* Loads a known dataset by name: "fashion-mnist" or "mnist", split "train" or "test", from the
 * files {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. Directory: dir/<name> or dir (the
 * first that holds both files) if dir is not NULL, else $FEDROP_DATA_DIR/<name> or
 * $FEDROP_DATA_DIR when that variable is set, else /usr/share/datasets/<name> (Debian's
 * dataset-fashion-mnist): DIR may be the parent of the datasets' directories or the dataset's own. Returns FL_ERR_NOT_FOUND for an
 * unknown name or split, FL_ERR_DATASET_IO when the files are not there or one found is not a
 * regular file ("PATH: a FIFO, not a regular file": a FIFO would block the read for good), else
 * as flm_idx_load. */
fl_status flm_dataset_load_named(flm_dataset **out, const char *name, const char *split,
                                 const char *dir, char *err, size_t errlen);

/* ---- LEAF JSON (FEMNIST, Shakespeare) ----------------------------------------------------- */

typedef enum flm_leaf_kind {
    FLM_LEAF_FEMNIST = 1,      /* x: lists of 784 floats in [0, 1] -> (1, 28, 28); y: int < 62 */
    FLM_LEAF_SHAKESPEARE = 2,  /* x: 80-character strings -> 80 tokens; y: 1-character string */
} flm_leaf_kind;

#define FLM_LEAF_FEMNIST_CLASSES 62
#define FLM_LEAF_SEQ_LEN 80
/* LEAF's language_utils ALL_LETTERS (80 characters, '\n' first). A character outside it maps to
 * FLM_LEAF_UNKNOWN_TOKEN (79, '}'): what LEAF's own Python does with str.find() == -1 used as an
 * index. JSON escapes and UTF-8 are decoded first; one code point is one character. */
#define FLM_LEAF_ALPHABET \
    "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
#define FLM_LEAF_VOCAB 80
#define FLM_LEAF_UNKNOWN_TOKEN 79

/* The token of one Unicode code point under the LEAF alphabet. */
int32_t flm_leaf_char_token(uint32_t codepoint);

/* Loads and concatenates n_paths LEAF JSON files ({"users": [...], "num_samples": [...],
 * "user_data": {user: {"x": [...], "y": [...]}}}, other top-level keys skipped), streaming each
 * through a fixed read buffer: memory is the decoded samples plus O(users). Users keep their file
 * order; every sample gets its user id. "users" and "num_samples", when present, must agree with
 * user_data. A user name may appear only once over all files. Errors as for IDX, with
 * "file:line:byte" in err. Caller owns *out. */
fl_status flm_leaf_load(flm_dataset **out, flm_leaf_kind kind, const char *const *paths,
                        size_t n_paths, char *err, size_t errlen);

/* The same for one JSON document in memory. */
fl_status flm_leaf_load_mem(flm_dataset **out, flm_leaf_kind kind, const uint8_t *json,
                            size_t len, char *err, size_t errlen);

/* ---- one entry point for programs ---------------------------------------------------------- */

/* Loads a dataset from a spec string, the form the client CLI and the simulator take:
 *   fashion-mnist:train|test, mnist:train|test   flm_dataset_load_named (directory lookup as there)
 *   idx:IMAGES,LABELS                            an IDX pair, 10 classes
 *   femnist:PATH[,PATH...]                       LEAF FEMNIST JSON files; a PATH that is a
 *   shakespeare:PATH[,PATH...]                   directory stands for its *.json files, sorted
 *   synth-images:N:CxHxW:CLASSES[:SIGMA]         flm_dataset_synth_images, SIGMA default 0.3
 *   synth-tokens:N:T:VOCAB[:NOISE]               flm_dataset_synth_tokens, NOISE default 0.1
 * Paths cannot contain ','. seed and split are used by synth-* only (a test set: FLM_SPLIT_HELDOUT).
 * Returns FL_ERR_INVALID_ARG with a reason in err for a spec that does not parse, else what the
 * loader returns. Caller owns *out. */
fl_status flm_dataset_load_spec(flm_dataset **out, const char *spec, uint64_t seed, flm_split split,
                                char *err, size_t errlen);

/* The parse of flm_dataset_load_spec alone, reading nothing: FL_OK, or FL_ERR_INVALID_ARG with
 * the same reason in err, for a spec that does not parse (the split of a named set, too). A spec
 * that parses may still fail to load (a missing file, a synth-* size the generator refuses). */
fl_status flm_dataset_spec_check(const char *spec, char *err, size_t errlen);

/* ---- partitioners --------------------------------------------------------------------------- */

typedef enum flm_part_kind {
    FLM_PART_IID = 1,        /* uniform random permutation, sizes differ by at most one */
    FLM_PART_DIRICHLET = 2,  /* label skew: class c's samples split by p_c ~ Dir(alpha * 1_K) */
    FLM_PART_SHARDS = 3,     /* McMahan et al.: sort by label, K*s shards, s per client */
    FLM_PART_NATURAL = 4,    /* LEAF users: each client gets whole users */
} flm_part_kind;

typedef struct flm_partition_spec {
    flm_part_kind kind;
    double alpha;            /* DIRICHLET concentration, in [1e-300, 1e6] */
    int shards;              /* SHARDS per client, >= 1 */
} flm_partition_spec;

/* Parses "iid", "dirichlet:ALPHA" (ALPHA > 0, finite), "shards:S" (1 <= S <= 1024; "shards" means
 * 2), "natural". Returns FL_ERR_INVALID_ARG with a reason in err. */
fl_status flm_partition_spec_parse(const char *s, flm_partition_spec *out, char *err,
                                   size_t errlen);

/* All K clients' sample lists in one compact form: client k holds index[offset[k] ..
 * offset[k+1]) (sample indexes into the dataset). Memory: 4 bytes per sample + 8 per client.
 * Every sample appears exactly once over all clients. */
typedef struct flm_partition {
    size_t K;
    size_t N;
    uint32_t *index;         /* N sample indexes, grouped by client */
    size_t *offset;          /* K + 1 */
} flm_partition;

/* Partitions ds over K clients, deterministically from the stream (seed, 0, 0, FL_RNG_PARTITION):
 * the same (ds, spec, K, seed) gives the same partition on every machine.
 *   IID: a Fisher-Yates permutation cut into K near-equal runs.
 *   DIRICHLET: per class, proportions from K Gamma(alpha) draws (Marsaglia-Tsang, in log space so
 *     tiny alpha does not underflow); clients may end up empty for small alpha or large K.
 *   SHARDS: samples shuffled then stably sorted by label, cut into K*s near-equal shards dealt
 *     at random, s per client. A client sees at most s labels when shard boundaries fall on class
 *     boundaries (each class count a multiple of N/(K*s), as in McMahan's 60000 / 200); otherwise a
 *     shard may straddle two labels.
 *   NATURAL: needs ds->user; K == 0 or K == n_users gives one client per user in user order;
 *     K < n_users deals shuffled users into K near-equal groups.
 * IID and DIRICHLET accept K > N (some clients then hold no sample).
 * Returns FL_ERR_INVALID_ARG (K == 0 except for NATURAL, SHARDS with K*s > N, a label outside
 * [0, classes) for DIRICHLET/SHARDS, a DIRICHLET alpha outside [1e-300, 1e6], NATURAL without
 * users or with K > n_users, N >= 2^32),
 * FL_ERR_NOMEM. Caller owns *out. */
fl_status flm_partition_make(flm_partition **out, const flm_dataset *ds,
                             const flm_partition_spec *spec, size_t K, uint64_t seed);

/* The same, and for FL_ERR_INVALID_ARG the limit that was hit in err (when not NULL), for the
 * programs to show after naming the spec and K in their own terms, e.g. "natural: the dataset
 * has no per-user split (LEAF datasets have one: femnist, shakespeare)", "natural: 20 users
 * cannot fill 21 shards (a shard takes whole users, at least one)", "shards:2: 100 samples cannot
 * fill 2 shards for each of 60 clients (...)". err is "" on FL_OK and FL_ERR_NOMEM. Thread-safe. */
fl_status flm_partition_make_err(flm_partition **out, const flm_dataset *ds,
                                 const flm_partition_spec *spec, size_t K, uint64_t seed,
                                 char *err, size_t errlen);

/* Client k's samples: *idx points into p (valid while p lives), *n their count. Returns
 * FL_ERR_INVALID_ARG if k >= p->K. O(1), thread-safe. */
fl_status flm_partition_client(const flm_partition *p, size_t k, const uint32_t **idx, size_t *n);

/* Frees p. NULL is a no-op. */
void flm_partition_free(flm_partition *p);

/* ---- numerics exposed for tests ----------------------------------------------------------- */

/* log of a Gamma(shape, 1) draw (Marsaglia-Tsang; shape < 1 by the boost
 * Gamma(a) = Gamma(a + 1) * U^(1/a), kept in log space). shape > 0. */
double flm_log_gamma_sample(fl_rng *rng, double shape);

/* The double nearest m * 10^e10 (ties to even: the bits strtod gives), exactly, by one 128-bit
 * integer division; for the LEAF reader's numbers of 16 to 19 significant digits. Returns 1 with
 * *out set when -19 <= e10 <= 19 (any m), else 0 and *out untouched. */
int flm_decimal_exact(uint64_t m, int e10, double *out);

#endif
