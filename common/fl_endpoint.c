#include "fl_endpoint.h"

#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/un.h>

int fl_tcp_split(const char *ep, const char **host, size_t *host_len, const char **port)
{
    if (!ep || strncmp(ep, "tcp://", 6) != 0)
        return 0;
    const char *h = ep + 6, *colon = strrchr(h, ':');
    if (!colon || colon == h)
        return 0;
    *host = h;
    *host_len = (size_t)(colon - h);
    *port = colon + 1;
    return 1;
}

long fl_port_number(const char *port)
{
    const size_t digits = strspn(port, "0123456789");
    if (digits == 0 || digits > 5 || port[digits])
        return -1;
    long n = 0;
    for (size_t i = 0; i < digits; i++)
        n = n * 10 + (port[i] - '0');
    return n <= 65535 ? n : -1;
}

int fl_tcp_host(const char *ep, char *host, size_t cap)
{
    const char *h, *port;
    size_t n;
    if (cap)
        host[0] = '\0';
    if (!cap || !fl_tcp_split(ep, &h, &n, &port))
        return 0;
    /* tcp://SOURCE;HOST:PORT: libzmq connects to HOST from SOURCE. SOURCE may be an IPv6
     * address with a port ("[::1]:0"), which no HOST holds: the host is what follows the last ';'.
     * Read whole, "[::1]:0;[::1]" was taken for the name "::1]:0;[::1", and the client did not set
     * ZMQ_IPV6 for an IPv6 server: libzmq then failed every attempt without a word. */
    for (size_t i = n; i > 0; i--)
        if (h[i - 1] == ';') {
            n -= i;
            h += i;
            break;
        }
    if (n == 0)
        return 0;
    if (h[0] == '[' || h[n - 1] == ']') {
        /* an IPv6 address's brackets: both or none ("tcp://[::1]", no port, splits as "[:") */
        if (n < 3 || h[0] != '[' || h[n - 1] != ']')
            return 0;
        h++;
        n -= 2;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(host, h, n);
    host[n] = '\0';
    return 1;
}

int fl_ip_literal(const char *host)
{
    char addr[INET6_ADDRSTRLEN + 64];
    snprintf(addr, sizeof addr, "%s", host);
    addr[strcspn(addr, "%")] = '\0'; /* fe80::1%eth0 */
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET6, addr, buf) == 1)
        return 6;
    return inet_pton(AF_INET, host, buf) == 1 ? 4 : 0;
}

int fl_connect_endpoint_ok(const char *ep, char *why, size_t cap)
{
    if (strncmp(ep, "tcp://", 6) == 0) {
        /* libzmq takes port 99999 as 34463 (mod 2^16) and would try that one for ever */
        const char *host, *port;
        size_t host_len;
        const int split = fl_tcp_split(ep, &host, &host_len, &port);
        size_t skip = split ? host_len : 0; /* the HOST is what follows a SOURCE's ';' */
        while (skip > 0 && host[skip - 1] != ';')
            skip--;
        const size_t n = split ? host_len - skip : 0;
        /* A server's bind address copied into a client: libzmq's connect says only "Invalid
         * argument" to it. After a SOURCE ("tcp://eth0;*:5555") libzmq's connect takes it, and
         * the client retried a host '*' that never resolves, for ever, as it did "tcp://[*]:5555"
         * (until 2026-12-08 only a bare '*' without a SOURCE was looked at). */
        const int star = (n == 1 && host[skip] == '*') ||
                         (n == 3 && memcmp(host + skip, "[*]", 3) == 0);
        if (split && star) {
            snprintf(why, cap, "has host '*', which a server binds (every interface): give the "
                     "server's address, e.g. tcp://127.0.0.1:%s", port);
            return 0;
        }
        /* A HOST with one bracket of an IPv6 address's pair ("tcp://[::1:5555"), or none after
         * a source's ';' ("tcp://eth0;:5555"): libzmq's connect takes it, and its resolution
         * fails at every attempt, which the client said as "is a server running there?" for
         * ever. */
        char h[256];
        if (split && fl_port_number(port) >= 1 && !fl_tcp_host(ep, h, sizeof h)) {
            snprintf(why, cap, "is not tcp://HOST:PORT: its HOST '%.*s' is empty or has one "
                     "bracket without the other (an IPv6 address is written [ADDR])",
                     (int)(n < 200 ? n : 200), host + skip);
            return 0;
        }
        /* A blank or a control character in the HOST: a value copied with a tab, a line
         * pasted with a space or a CR (a Windows-edited script). libzmq's connect refused a tab
         * ("Invalid argument", exit 4 once the dataset had loaded) and retried a space as a host
         * name that never resolves, for ever. Said by position and code: the byte itself would
         * not show. */
        for (size_t i = 0; split && fl_port_number(port) >= 1 && i < n; i++) {
            const unsigned char b = (unsigned char)host[skip + i];
            if (b <= 0x20 || b == 0x7f) {
                snprintf(why, cap, "is not tcp://HOST:PORT: its HOST has a %s at byte %zu "
                         "(0x%02x)", b == 0x20 ? "blank" : "control character", i, b);
                return 0;
            }
        }
        /* A ':' in a HOST outside brackets: an IPv6 address written bare ("tcp://::1:5555"),
         * or a second port ("tcp://h:1:2"). libzmq splits at the last ':' and takes the rest as
         * the host, so the first connected to ::1 without a word about the form flc.h documents,
         * and the second retried a host "h:1" that never resolves, said as "is a server running
         * there?" for ever. */
        if (split && fl_port_number(port) >= 1 && host[skip] != '[' &&
            memchr(host + skip, ':', n)) {
            snprintf(why, cap, "is not tcp://HOST:PORT: its HOST '%.*s' has a ':' (an IPv6 "
                     "address is written [ADDR])", (int)(n < 200 ? n : 200), host + skip);
            return 0;
        }
        /* Any other character libzmq's connect refuses in SOURCE;HOST ('!', ',', '/', a byte
         * above 0x7f of a UTF-8 name) or to begin it ('-', '.', '_', an empty SOURCE's ';'): it
         * said "Invalid argument", and fl_client exited 4, a transport error, once its dataset
         * had loaded. libzmq 4.3 takes ASCII letters and digits, then also . - : % ; [ ] _ *. */
        for (size_t i = 0; split && fl_port_number(port) >= 1 && i < host_len; i++) {
            const unsigned char b = (unsigned char)host[i];
            const int alnum = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') ||
                              (b >= 'A' && b <= 'Z');
            if (alnum || b == '[' || (i > 0 && strchr(".-:%;]_*", b) && b))
                continue;
            const int in_host = i >= skip;
            char shown[8];
            snprintf(shown, sizeof shown, b > 0x20 && b < 0x7f ? "'%c'" : "0x%02x", b);
            if (i == 0) /* why[] of 128 bytes (fl_client's) holds each line whole */
                snprintf(why, cap, "is not tcp://HOST:PORT: its %s begins with %s, which "
                         "libzmq's connect refuses (a letter or a digit first)",
                         in_host ? "HOST" : "SOURCE", shown);
            else
                snprintf(why, cap, "is not tcp://HOST:PORT: its %s has %s at byte %zu, which "
                         "libzmq's connect refuses (a name takes letters, digits, . - _)",
                         in_host ? "HOST" : "SOURCE", shown, in_host ? i - skip : i);
            return 0;
        }
        if (split && fl_port_number(port) >= 1)
            return 1;
        snprintf(why, cap, "is not tcp://HOST:PORT with a PORT in 1..65535");
        return 0;
    }
    if (strncmp(ep, "ipc://", 6) == 0 && ep[6]) {
        /* libzmq's connect refuses a path that a Unix socket's sun_path cannot hold
         * (ENAMETOOLONG), and "@" (an abstract name with nothing after it): the client said so
         * only once its dataset had loaded */
        const size_t n = strlen(ep + 6), most = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
        if (n > most) {
            snprintf(why, cap, "is not ipc://PATH with a PATH of at most %zu bytes (a Unix "
                     "socket's; this one has %zu)", most, n);
            return 0;
        }
        if (strcmp(ep + 6, "@") != 0)
            return 1;
    }
    if (strncmp(ep, "inproc://", 9) == 0 && ep[9])
        return 1;
    snprintf(why, cap, "is not tcp://HOST:PORT, ipc://PATH or inproc://NAME (for example "
             "tcp://127.0.0.1:5555)");
    return 0;
}
