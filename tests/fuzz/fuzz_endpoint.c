/* fuzz_endpoint: a client's endpoint check (fl_connect_endpoint_ok, common/fl_endpoint.h: what
 * fl_client's --server and flc_config.server_endpoint go through) and the tcp:// readers under it
 * (fl_tcp_split, fl_tcp_host, fl_port_number, fl_ip_literal), on the input as a NUL-terminated
 * string (cut at its first NUL, as a command line or a C string would be). Never a crash; the
 * message is terminated, and said ("is not ..." or "has host '*' ...") exactly when the check
 * refuses; what it takes is what its header promises: a tcp:// endpoint has a PORT in 1..65535
 * and a HOST that fl_tcp_host reads, not '*', without a blank, a control character or a ':'
 * outside an IPv6 address's brackets, and SOURCE;HOST of the characters libzmq's connect takes;
 * an ipc:// PATH of 1..107 bytes other than "@"; an inproc:// NAME not empty. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fl_endpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The tcp:// endpoint ep, taken by the check, as its header says it must be. */
static void check_tcp_taken(const char *ep)
{
    const char *host, *port;
    size_t host_len;
    if (!fl_tcp_split(ep, &host, &host_len, &port))
        abort();
    const long p = fl_port_number(port);
    if (p < 1 || p > 65535)
        abort();
    char h[256];
    if (!fl_tcp_host(ep, h, sizeof h) || !h[0] || strcmp(h, "*") == 0)
        abort();
    size_t skip = host_len; /* the HOST follows a SOURCE's last ';' */
    while (skip > 0 && host[skip - 1] != ';')
        skip--;
    const char *hh = host + skip;
    const size_t n = host_len - skip;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)hh[i] <= 0x20 || (unsigned char)hh[i] == 0x7f)
            abort();
    if (hh[0] != '[' && memchr(hh, ':', n))
        abort();
    if (hh[0] == '[' && (n < 3 || hh[n - 1] != ']'))
        abort();
    for (size_t i = 0; i < host_len; i++) { /* what libzmq 4.3's connect takes in SOURCE;HOST */
        const unsigned char b = (unsigned char)host[i];
        if (!((b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
              b == '[' || (i > 0 && b && strchr(".-:%;]_*", b))))
            abort();
    }
    fl_ip_literal(h); /* any host: no crash */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *ep = malloc(size + 1); /* exact size: ASan sees a read past the string's end */
    if (!ep)
        abort();
    memcpy(ep, data, size);
    ep[size] = '\0';
    char why[512];
    memset(why, 'x', sizeof why);
    const int ok = fl_connect_endpoint_ok(ep, why, sizeof why);
    if (!memchr(why, 0, sizeof why) && !ok)
        abort(); /* a refusal's message is always terminated */
    if (!ok) {
        if (strncmp(why, "is not ", 7) != 0 && strncmp(why, "has host '*'", 12) != 0)
            abort();
    } else if (strncmp(ep, "tcp://", 6) == 0) {
        check_tcp_taken(ep);
    } else if (strncmp(ep, "ipc://", 6) == 0) {
        const size_t n = strlen(ep + 6);
        if (n == 0 || n > 107 || strcmp(ep + 6, "@") == 0)
            abort();
    } else if (strncmp(ep, "inproc://", 9) != 0 || !ep[9]) {
        abort();
    }
    /* the readers on their own, whatever the check said */
    const char *host, *port;
    size_t host_len;
    if (fl_tcp_split(ep, &host, &host_len, &port) &&
        (host_len == 0 || host < ep + 6 || port != host + host_len + 1 || port[-1] != ':'))
        abort();
    char small[4];
    if (fl_tcp_host(ep, small, sizeof small) && strlen(small) >= sizeof small)
        abort();
    const long p = fl_port_number(ep);
    if (p < -1 || p > 65535)
        abort();
    fl_ip_literal(ep);
    free(ep);
    return 0;
}
