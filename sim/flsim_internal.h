/* flsim_internal.h: helpers shared by the simulator's source files (not installed). */
#ifndef FLSIM_INTERNAL_H
#define FLSIM_INTERNAL_H

#include <stddef.h>

#include "flsim.h"

/* A finite number with an optional SI suffix k, M, G, T; 1 on success. */
int flsim_parse_number(const char *s, double *out);

/* 1 for a --dataset or --test-dataset given by name alone (fashion-mnist, mnist): the training
 * set is its train split, the test set its test split. */
int flsim_named_dataset(const char *s);

/* The run's BLAS set up (one thread: a run's GEMMs run on its own threads), and its name as
 * summary.json's "blas" has it: OpenBLAS's core (or "reference" without the library: then
 * FL_ERR_BLAS), "+FLM_NO_SKINNY" when that variable turns fedrop's AVX-512 kernels off. */
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

/* mkdir -p. 0 on success, and *made (made may be NULL) = the length of the prefix of path from
 * which on every directory is one this call created, 0 if path itself existed; -1 with errno
 * set and, in err (may be NULL), "PATH exists and is not a directory" (for the component at
 * fault) or "cannot create PATH: reason", having removed the directories it created. */
int flsim_mkdirs(const char *path, size_t *made, char *err, size_t errlen);

/* Undoes flsim_mkdirs(path, &made) after a failed start: removes the directories it created,
 * deepest first, each only while empty (one that holds anything stays, with those above it).
 * A directory that existed before is never touched; made = 0 does nothing. */
void flsim_rmdirs_made(const char *path, size_t made);

/* The distribution / availability as text (the canonical option value). */
void flsim_dist_format(const flsim_dist *d, char *buf, size_t cap);
void flsim_avail_format(const flsim_avail *a, char *buf, size_t cap);

/* JSON string escaping of s into buf (with the quotes). */
void flsim_json_str(char *buf, size_t cap, const char *s);

/* rounds.csv of a run into f. 0 or -1 (write error). */
#include <stdio.h>
int flsim_write_rounds_csv(FILE *f, const flsim_round_record *rec, size_t n);

/* rounds.csv's header line (no newline), and the closed_by names of fls_close_reason 0 .. 3. */
extern const char flsim_rounds_header[];
extern const char *const flsim_close_names[4];

#endif
