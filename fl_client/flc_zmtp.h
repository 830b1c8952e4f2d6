/* flc_zmtp.h: which security mechanism the ZeroMQ peer at an endpoint speaks, read from the
 * greeting it sends (ZMTP 3.x, rfc.zeromq.org 23 and 37), over a connection of our own.
 *
 * Why: a plain-text client meeting a CURVE server (or the other way round) is told so by libzmq
 * only when it reads the server's greeting before the server hangs up on the mismatch; libzmq's
 * server queues its greeting and closes in the same step, so the client mostly sees a bare
 * hang-up, the same as a server over its connection limit or a proxy with no server behind it.
 * A peer that is sent only the first 11 bytes of a greeting (signature and major version) sends
 * its own 64 and then waits for the rest, so its mechanism can be read before anything can fail.
 * The probe closes the connection there: the server sees a connection that ended mid-greeting,
 * which it does not log. */
#ifndef FLC_ZMTP_H
#define FLC_ZMTP_H

#include <stddef.h>
#include <stdint.h>

/* The longest mechanism name a greeting holds (20 bytes, NUL-padded). */
#define FLC_ZMTP_MECH_MAX 20
/* The greeting bytes flc_zmtp_greeting_mechanism needs: signature (10), version (2),
 * mechanism (20). */
#define FLC_ZMTP_GREETING_HEAD 32

/* Reads the security mechanism from the first len bytes a peer sent: 1 with mech set (a NUL-
 * terminated name of 1..20 characters, e.g. "NULL", "PLAIN", "CURVE"), 0 while the bytes are a
 * greeting's beginning that ends before the mechanism, -1 when they are no ZMTP 3.x greeting (the
 * signature is not 0xFF, 8 bytes, 0x7F; a major version below 3, which has no mechanism; a
 * mechanism that is not printable ASCII padded with NULs). buf is outside bytes: any len, any
 * content. mech: FLC_ZMTP_MECH_MAX + 1 bytes, "" unless 1 is returned. */
int flc_zmtp_greeting_mechanism(char *mech, const uint8_t *buf, size_t len);

/* Connects to ep (tcp://HOST:PORT, tcp://SOURCE;HOST:PORT, or ipc://PATH; HOST a name is
 * resolved here), sends the 11 bytes a greeting starts with and reads the peer's greeting: 1 with
 * mech set as flc_zmtp_greeting_mechanism does; 0 when no mechanism could be read (another
 * transport, no connection, a close, no ZMTP 3 greeting, timeout_ms passed); -1 when wake_fd (a
 * descriptor that polls readable to cut the wait short, or -1) became readable. Blocks for at most
 * timeout_ms after the name is resolved. Opens one socket and closes it before it returns;
 * thread-safe (no state). */
int flc_zmtp_probe_mechanism(char *mech, const char *ep, int wake_fd, int timeout_ms);

#endif
