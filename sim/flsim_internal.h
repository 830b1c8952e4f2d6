/* flsim_internal.h: helpers shared by the simulator's source files (not installed). */
#ifndef FLSIM_INTERNAL_H
#define FLSIM_INTERNAL_H

#include <stddef.h>

#include "flsim.h"

/* A finite number with an optional SI suffix k, M, G, T; 1 on success. */
int flsim_parse_number(const char *s, double *out);

/* An on/off value as every boolean option takes it: 1, true or yes (*out 1), 0, false or no
 * (*out 0), spelt exactly so; 1 on success, 0 (*out untouched) for anything else. */
int flsim_parse_bool(const char *s, int *out);

/* Drops the trailing slashes of a directory's name in place ("o/" -> "o", "/" stays "/"), so that
 * "DIR/FILE" joins without a doubled slash. */
void flsim_path_trim(char *dir);

/* 1 when --keep-layers' list is no longer than the model's droppable layers (spec, n_drop); else
 * 0 with the message in err ("--keep-layers: 3 values, but the model SPEC has 2 droppable
 * layers"). flsim_run and the experiment say it alike. */
int flsim_keep_layers_fit(const flsim_config *cfg, const char *spec, int n_drop, char *err,
                          size_t errlen);
/* Whether --keep-layers keeps every unit of each of the model's n_drop droppable layers while
 * --keep is below 1 (so that --keep applies to no layer): fd and afd then train the whole model,
 * as full does. Policy aside (the caller's to weigh). When so, returns 1 and writes the warning's
 * first part to out ("--keep-layers 1,1 keeps every unit of the 2 droppable layers of SPEC (--keep
 * 0.5 applies to none)"); else 0. The case --keep 1 is not this one: fl_sim says it before the
 * model is known. */
/* The warning of clients that hold no training sample ("60 of the 100 clients hold no training
 * sample (...): they are never online, so 40 clients take part ..."), for a run of cfg over N
 * training samples in which empty (> 0) clients hold none, into buf (cap bytes). flsim_run says
 * it on its log, or, given its data (an experiment), leaves it to the caller. Pure. */
void flsim_empty_clients_say(char *buf, size_t cap, const flsim_config *cfg, uint32_t empty,
                             size_t N);
int flsim_keep_layers_whole(const flsim_config *cfg, const char *spec, int n_drop, char *out,
                            size_t cap);

/* 1 for a --dataset or --test-dataset given by name alone (fashion-mnist, mnist): the training
 * set is its train split, the test set its test split. */
int flsim_named_dataset(const char *s);

/* The run's BLAS set up (one thread: a run's GEMMs run on its own threads), and its name as
 * summary.json's "blas" has it: OpenBLAS's core (or "reference" without the library: then
 * FL_ERR_BLAS), "+FLM_NO_SKINNY" when that variable turns fedrop's AVX-512 kernels off,
 * "+AVX512" when they run beside a core that is not an AVX-512 one (Haswell on an AVX-512 CPU).
 * Two runs of one name used the same kernels. */
fl_status flsim_blas_name(char *out, size_t cap);

/* Under MPI with several ranks, whether ok holds on every rank (a collective: every rank calls
 * it at the same point); else ok. A step that can fail on one rank alone (a dataset missing on
 * one host, a memory check against that host's MemAvailable) must end on every rank, or the
 * others wait for it forever in the next exchange. */
int flsim_ranks_all_ok(int ok);

/* The whole file at path into a malloc'ed, NUL-terminated *out of *len bytes: FL_OK,
 * FL_ERR_NOT_FOUND (no such file), FL_ERR_IO, FL_ERR_NOMEM, or FL_ERR_RESULTS_FORMAT when it
 * holds more than cap bytes. */
fl_status flsim_read_file(const char *path, size_t cap, char **out, size_t *len);
/* flsim_read_file for a file that must be a regular one (a run's own outputs): opened without
 * blocking, and anything else refused (FL_ERR_IO, errno EINVAL; EISDIR for a directory) where a
 * FIFO with no writer held the open for good. Not common's fl_file_read_regular, which opens and
 * refuses the same way but says every failure as FL_ERR_IO (its reason in text): flsim_load_outputs
 * must tell a missing summary.json (FL_ERR_NOT_FOUND: a run not finished, which an experiment
 * resumed with --fresh 0 runs) from one it cannot read and from one over cap
 * (FL_ERR_RESULTS_FORMAT: the experiment names the run's directory to remove). */
fl_status flsim_read_regular(const char *path, size_t cap, char **out, size_t *len);

/* The SHA-256 of the trace file at path as an fl_sim before 2026-12-07 (42aeef36) made it
 * (flsim_trace_sha256 of its rows, with an availability written "-0" kept as a negative zero,
 * which now reads as 0): what a resume.fls of such an fl_sim holds for that file. FL_OK, or the
 * failure reading or parsing it. */
fl_status flsim_trace_sha256_neg_zero_kept(uint8_t out[FL_SHA256_LEN], const char *path);

/* flsim_data_load; on a failure the ranks agreed on, *said (may be NULL) is set as
 * flsim_result.err_agreed is (1: this rank's own, 2: another rank's). */
fl_status flsim_data_load_said(flsim_data *d, const flsim_config *cfg, char *err, size_t errlen,
                               int *said);
/* mkdir -p. 0 on success, and *made (made may be NULL) = the length of the prefix of path from
 * which on every directory is one this call created, 0 if path itself existed; -1 with errno
 * set and, in err (may be NULL), "PATH exists and is not a directory" (for the component at
 * fault) or "cannot create PATH: reason", having removed the directories it created. */
int flsim_mkdirs(const char *path, size_t *made, char *err, size_t errlen);

/* Undoes flsim_mkdirs(path, &made) after a failed start: removes the directories it created,
 * deepest first, each only while empty (one that holds anything stays, with those above it).
 * A directory that existed before is never touched; made = 0 does nothing. */
void flsim_rmdirs_made(const char *path, size_t made);

/* The largest rate d can draw (its median x exp(sigma x the largest |z| of fl_rng_normal), or
 * its constant): +inf when such a draw would overflow, which parsing and validation refuse. */
double flsim_dist_max(const flsim_dist *d);

/* The distribution / availability as text (the canonical option value). */
void flsim_dist_format(const flsim_dist *d, char *buf, size_t cap);
void flsim_avail_format(const flsim_avail *a, char *buf, size_t cap);

/* JSON string escaping of s into buf (with the quotes). */
void flsim_json_str(char *buf, size_t cap, const char *s);

/* len bytes to path atomically (fl_atomic: a crash leaves the old file or the new one). FL_OK, or
 * FL_ERR_IO with "cannot write PATH: reason" in err (may be NULL). */
fl_status flsim_write_atomic(const char *path, const void *text, size_t len, char *err,
                             size_t errlen);

/* rounds.csv of a run into f. 0 or -1 (write error). */
#include <stdio.h>
int flsim_write_rounds_csv(FILE *f, const flsim_round_record *rec, size_t n);

/* rec[0..n) as rounds.csv holds them, in place: each real that the file keeps to fewer digits
 * than a double (vtime_s and the other reals to 9, wall times to the microsecond) replaced by
 * what the file reads back as (flsim_parse_rounds_csv), the fields it does not hold left alone.
 * What is computed from a run just trained is then what the same computation gives from its
 * saved files: the experiment's curves.csv and mean-*.dat of a fresh run are those of the run
 * read back (at 6 digits, the 0.1086805 of a file printed 0.10868, the double it was written
 * from 0.108681). FL_OK, FL_ERR_NOMEM, FL_ERR_INTERNAL (rows that do not read
 * back: not a run's). */
fl_status flsim_rounds_as_saved(flsim_round_record *rec, size_t n);

/* rounds.csv's header line (no newline), and the closed_by names of fls_close_reason 0 .. 3. */
extern const char flsim_rounds_header[];
extern const char *const flsim_close_names[4];

/* ---- resuming a run (flsim_resume.c) ---------------------------------------------------------
 * DIR/resume.fls, written atomically between rounds (every --checkpoint-every rounds, at the end,
 * and when the run is stopped), little-endian:
 *   magic "FLSIMRS\0" | u32 version (3; 1 and 2 are read too) | u32 n (rounds finished)
 *   | u64 json_len | the run's settings (flsim_config_json) | f64 virtual time | u64 bytes down
 *   | u64 bytes up | f64 FLOPs | f64 wall seconds so far | u32 ranks of residual files R (not in
 *   version 1; 0: none) | R x 32 bytes: each rank's residual file's SHA-256 | u32 traces T (not
 *   in versions 1 and 2; 0: the run has no trace, else 1) | T x 32 bytes: the trace's
 *   flsim_trace_sha256 as the run loaded it | n round records (each field, in
 *   flsim_round_record's order: u32 / u64 / f64 by type, int as u32) | u64 ckpt_len | the server
 *   core's checkpoint (fls_ckpt_serialize: model, optimizer, policy state, next round = n)
 *   | SHA-256 of all before. */
#include "fls_ckpt.h"

#define FLSIM_RESUME_FILE "resume.fls"

typedef struct flsim_resume_state {
    double vt;                  /* virtual time after the last round finished */
    uint64_t cum_down, cum_up;  /* bytes so far */
    double cum_flops;           /* training FLOPs so far */
    double wall_s;              /* wall time so far, over every process that ran the rounds */
    uint32_t resid_ranks;       /* top-k uplinks: the MPI ranks that each wrote a residual file
                                 * for this round (flsim_resid_write); 0: none */
    uint8_t *resid_sha;         /* (resid_ranks x 32) each rank's file's SHA-256, by rank: the
                                 * caller's when writing; malloc'ed by flsim_resume_parse (freed
                                 * by flsim_resume_free) */
    int has_trace_sha;          /* the run has a trace: trace_sha is its rows' digest
                                 * (flsim_trace_sha256); 0 in a file of version 1 or 2 */
    uint8_t trace_sha[FL_SHA256_LEN];
} flsim_resume_state;

typedef struct flsim_resume_file {
    char *config_json;          /* NUL-terminated */
    flsim_round_record *records;
    size_t n_records;
    flsim_resume_state state;
    fls_ckpt ckpt;
} flsim_resume_file;

/* Writes DIR/resume.fls atomically (a crash leaves the old file or the new one). FL_OK, or
 * FL_ERR_IO / FL_ERR_NOMEM / a checkpoint's serialize error with the reason in err. */
fl_status flsim_resume_write(const char *dir, const flsim_config *cfg, const fls_ckpt *k,
                             const flsim_resume_state *s, const flsim_round_record *recs,
                             size_t n, char *err, size_t errlen);
/* Parses a resume file's bytes (outside input: checked whole, checksum first) into *out (free it
 * with flsim_resume_free, also after an error: it is zeroed then). FL_OK, FL_ERR_RESULTS_FORMAT
 * with what is wrong in err, FL_ERR_NOMEM. The settings are not compared here
 * (flsim_config_matches). */
fl_status flsim_resume_parse(const uint8_t *buf, size_t len, flsim_resume_file *out, char *err,
                             size_t errlen);
void flsim_resume_free(flsim_resume_file *f);
/* flsim_resume_parse of the file at path, never held whole: its checksum is found reading it in
 * pieces, its head parsed from a mapping of it (only the head's pages touched), its checkpoint
 * read from it into what the parse keeps (fls_ckpt_read_fd), so a resume holds the checkpoint's
 * parse and not the file's bytes as well. FL_ERR_NOT_FOUND (no file), FL_ERR_IO (errno says why:
 * EISDIR, a directory; 0, the file ended early), else as flsim_resume_parse. */
fl_status flsim_resume_read(const char *path, flsim_resume_file *out, char *err, size_t errlen);

/* ---- the clients' error-feedback residuals (top-k uplinks) -----------------------------------
 * Each MPI rank (one without MPI) keeps the residuals of its clients (key % ranks == rank) and
 * writes them beside resume.fls at each checkpoint, before rank 0 writes resume.fls, which names
 * their count of ranks; the files of a round are removed only once a later resume.fls is in
 * place, so a crash at any point leaves a resume.fls whose residual files are there.
 * DIR/resume-resid.rank<R>-of-<N>.round<r>.fls, little-endian:
 *   magic "FLSIMRR\0" | u32 version (1) | u32 round | u32 rank | u32 ranks | u32 clients
 *   | u64 n_params | u32 count | count x (u32 key, ascending | n_params f32) | SHA-256 of all before.
 * A resumed run must have as many ranks as the one that wrote them. */
#define FLSIM_RESID_FMT "resume-resid.rank%u-of-%u.round%u.fls"
#define FLSIM_RESID_SCAN "resume-resid.rank%u-of-%u.round%u.fls"

void flsim_resid_path(char *out, size_t cap, const char *dir, uint32_t rank, uint32_t ranks,
                      uint32_t round);
/* Writes this rank's residuals (resid[k] of resid_n[k] == n_params floats; the others are not
 * written: the client core takes them as zeros) atomically, streamed (never a second copy in
 * memory); sha (may be NULL): the file's SHA-256 (its last 32 bytes), for resume.fls to name.
 * FL_OK, FL_ERR_IO / FL_ERR_NOMEM with the reason in err. */
fl_status flsim_resid_write(const char *dir, uint32_t round, uint32_t rank, uint32_t ranks,
                            float *const *resid, const size_t *resid_n, uint32_t clients,
                            size_t n_params, uint8_t sha[32], char *err, size_t errlen);
/* Parses a residual file's bytes (outside input: checksum first, which must be want_sha unless
 * that is NULL, then every field against what is expected) into resid / resid_n (clients
 * entries, those it fills NULL before: malloc'ed arrays the caller frees). All or nothing: after
 * an error none is filled. FL_OK, FL_ERR_RESULTS_FORMAT with what is wrong in err,
 * FL_ERR_NOMEM, FL_ERR_INVALID_ARG (ranks 0, rank >= ranks, NULL arrays). */
fl_status flsim_resid_parse(const uint8_t *buf, size_t len, uint32_t round, uint32_t rank,
                            uint32_t ranks, uint32_t clients, size_t n_params,
                            const uint8_t *want_sha, float **resid, size_t *resid_n, char *err,
                            size_t errlen);
/* The file of (round, rank, ranks) in dir, mapped and parsed. FL_OK, FL_ERR_NOT_FOUND, FL_ERR_IO,
 * or flsim_resid_parse's errors; err names the file. */
fl_status flsim_resid_read(const char *dir, uint32_t round, uint32_t rank, uint32_t ranks,
                           uint32_t clients, size_t n_params, const uint8_t *want_sha,
                           float **resid, size_t *resid_n, char *err, size_t errlen);
/* Removes residual files in dir of the ranks r with r % ranks == rank (all with ranks 0):
 * FLSIM_SWEEP_TMP the temporaries a crash left; FLSIM_SWEEP_BUT those and every file but this
 * rank's own of round; FLSIM_SWEEP_ALL all. Only for the one process that owns dir (another
 * writer's temporary would go). The number removed. */
enum { FLSIM_SWEEP_TMP = 0, FLSIM_SWEEP_BUT = 1, FLSIM_SWEEP_ALL = 2 };
size_t flsim_resid_sweep(const char *dir, uint32_t rank, uint32_t ranks, int what, uint32_t round);

/* Whether saved settings (a run's config JSON) are those of want, as flsim_load_outputs compares
 * them (threads and fold_threads left out; with any_rounds, rounds too: a resumed run may run
 * more or fewer; the model as written may differ where saved_arch and want_arch, the canonical
 * specs, both given, are the same). FL_OK, FL_ERR_RESULTS_MISMATCH naming the setting,
 * FL_ERR_RESULTS_FORMAT, FL_ERR_UNSUPPORTED without jansson. */
fl_status flsim_config_matches(const char *json, const char *saved_arch, const flsim_config *want,
                               const char *want_arch, int any_rounds, char *err, size_t errlen);

#endif
