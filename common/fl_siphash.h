/* fl_siphash.h: SipHash-2-4 (Aumasson and Bernstein, 2012), a keyed 64-bit hash for the hash
 * tables indexed by what peers choose (a ZeroMQ routing id, which a peer may set): with a secret
 * random key, inputs that collide cannot be found from outside, so no peer can pile its entries
 * into one bucket and make every lookup walk them. */
#ifndef FL_SIPHASH_H
#define FL_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of data[0..len) under the 16-byte key; the reference's 8 output bytes read as a
 * little-endian integer. */
uint64_t fl_siphash24(const uint8_t key[16], const void *data, size_t len);

#endif
