#include "fl_endpoint.h"

#include <string.h>

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
