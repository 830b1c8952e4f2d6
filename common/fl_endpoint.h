/* fl_endpoint.h: the parts of a ZeroMQ "tcp://HOST:PORT" endpoint, as the server's
 * configuration, its start-up checks and the client library read them. */
#ifndef FL_ENDPOINT_H
#define FL_ENDPOINT_H

#include <stddef.h>

/* Splits ep at the last ':' after "tcp://": 1 with *host (host_len bytes, an IPv6 address's
 * brackets kept) and *port (the rest of ep, possibly empty); 0 when ep is not tcp:// or has no
 * ':' after a non-empty host. */
int fl_tcp_split(const char *ep, const char **host, size_t *host_len, const char **port);

/* The host of a tcp:// endpoint into host (cap bytes, cut to fit), an IPv6 address without its
 * brackets; of libzmq's tcp://SOURCE;HOST:PORT, the HOST connected to (what follows the last
 * ';'). 1, or 0 (host "") when ep is not tcp://HOST:PORT as fl_tcp_split reads it, or its HOST is
 * empty or has one bracket without the other ("tcp://[::1]", a port left out). */
int fl_tcp_host(const char *ep, char *host, size_t cap);

/* 4 for an IPv4 address, 6 for an IPv6 one (a "%scope" after it allowed: libzmq reads it), 0
 * for anything else (a host name, an interface name, "*"). */
int fl_ip_literal(const char *host);

/* PORT as a number: 0..65535, or -1 when it is not one (empty, a sign, a blank, another
 * character, above 65535: libzmq would take 99999 as 34463). "*" is not a number here. */
long fl_port_number(const char *port);

/* A client's endpoint as libzmq can connect to it: tcp://HOST:PORT (PORT in 1..65535, HOST not
 * a server's '*' (bare, in brackets or after a SOURCE's ';'), not empty after a SOURCE's ';', an
 * IPv6 address in both brackets, no ':' in HOST outside them: "tcp://::1:5555", "tcp://h:1:2"
 * are refused; no blank or control character in HOST; SOURCE;HOST of what libzmq's connect takes:
 * ASCII letters and digits, then also . - : % ; [ ] _ *), ipc://PATH (at most 107 bytes, what a
 * Unix socket's address holds; "@NAME" for Linux's abstract namespace, NAME not empty), or
 * inproc://NAME. 1, or 0 with why it is not (cap bytes: "is not ..." or "has host '*' ...").
 * tests/fuzz/fuzz_endpoint checks each of these rules on arbitrary strings. */
int fl_connect_endpoint_ok(const char *ep, char *why, size_t cap);

#endif
