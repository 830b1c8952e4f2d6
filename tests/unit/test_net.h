/* test_net.h: network helpers shared by the unit tests. */
#ifndef TEST_NET_H
#define TEST_NET_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* 1 if this machine has the IPv6 loopback (::1): a TCP socket binds there. */
static inline int have_ipv6_loopback(void)
{
    const int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    const int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

#endif
