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
/* A stable 32-bit key for a client id string: the first 4 bytes of its SHA-256, little-endian
 * (0 if id is NULL). Server and client derive the same key from the same id. Thread-safe. */
uint32_t fl_client_key(const char *id);
/* The server's alternate keys for an id whose derived key another id holds: alt 0 is
 * fl_client_key(id); alt j >= 1 the first 4 bytes, little-endian, of the SHA-256 of the id's
 * bytes, a NUL and the byte j (0 if id is NULL or j > 255). A client learns its alternate from its
 * Task (Task.client_key); it never derives one. Thread-safe. */
uint32_t fl_client_key_alt(const char *id, unsigned j);

/* Lower-case hex of a digest into hex (65 bytes with the NUL). */
void fl_sha256_hex(char hex[2 * FL_SHA256_LEN + 1], const uint8_t digest[FL_SHA256_LEN]);

#endif
