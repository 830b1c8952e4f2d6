/* fl_sha256.h: SHA-256 digests (OpenSSL's EVP) for model fingerprints and checkpoints. */
#ifndef FL_SHA256_H
#define FL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "fl_status.h"

#define FL_SHA256_LEN 32

/* Streaming context; opaque. */
typedef struct fl_sha256 fl_sha256;

fl_status fl_sha256_new(fl_sha256 **out);
void fl_sha256_free(fl_sha256 *h); /* NULL is a no-op */
fl_status fl_sha256_update(fl_sha256 *h, const void *data, size_t n);
/* Writes the digest and resets h for reuse. */
fl_status fl_sha256_final(fl_sha256 *h, uint8_t out[FL_SHA256_LEN]);

/* One-shot digest of data[0..n). */
fl_status fl_sha256_digest(uint8_t out[FL_SHA256_LEN], const void *data, size_t n);
/* A client id's 32-bit keys. Key 0 (j = 0), the derived key: the first 4 bytes of the id's
 * SHA-256, little-endian; server and client derive the same key from the same id. Key j >= 1, the
 * server's alternates for an id whose derived key another id holds: the first 4 bytes,
 * little-endian, of the SHA-256 of the id's bytes, a NUL and the byte j. A client learns its
 * alternate from its Task (Task.client_key); it never derives one. FL_ERR_INVALID_ARG for a NULL
 * id or j > 255; an OpenSSL failure (out of memory) is returned, never a key. Thread-safe. */
fl_status fl_client_key_of(const char *id, unsigned j, uint32_t *key);
/* fl_client_key_of(id, 0) and (id, j), 0 on any failure: for callers that can treat a failure as
 * the key 0 (tests, the simulator's hosts); the daemon and the client library check the status. */
uint32_t fl_client_key(const char *id);
uint32_t fl_client_key_alt(const char *id, unsigned j);

/* Lower-case hex of a digest into hex (65 bytes with the NUL). */
void fl_sha256_hex(char hex[2 * FL_SHA256_LEN + 1], const uint8_t digest[FL_SHA256_LEN]);

#endif
