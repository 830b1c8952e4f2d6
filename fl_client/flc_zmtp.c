#include "flc_zmtp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "fl_endpoint.h"
#include "fl_time.h"

/* rfc.zeromq.org/spec/23: mechanism = 20mechanism-char; mechanism-char = "A"-"Z" | DIGIT | "-" |
 * "_" | "." | "+" | %x0 (the name, then NULs to fill). */
static int mech_char(uint8_t ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
           ch == '.' || ch == '+';
}

int flc_zmtp_greeting_mechanism(char *mech, const uint8_t *buf, size_t len)
{
    mech[0] = '\0';
    /* signature: %xFF 8OCTET %x7F; then the major version, 3 or above for a mechanism */
    if ((len >= 1 && buf[0] != 0xff) || (len >= 10 && buf[9] != 0x7f) ||
        (len >= 11 && buf[10] < 3))
        return -1;
    if (len < FLC_ZMTP_GREETING_HEAD)
        return 0;
    const uint8_t *m = buf + 12;
    size_t n = 0;
    while (n < FLC_ZMTP_MECH_MAX && m[n])
        if (!mech_char(m[n++]))
            return -1;
    if (n == 0)
        return -1;
    for (size_t i = n; i < FLC_ZMTP_MECH_MAX; i++)
        if (m[i])
            return -1;
    memcpy(mech, m, n);
    mech[n] = '\0';
    return 1;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out (or a poll error), -1 wake_fd
 * readable. */
static int wait_fd(int fd, short events, int wake_fd, uint64_t deadline_ns)
{
    for (;;) {
        const uint64_t now = fl_time_mono_ns();
        if (now >= deadline_ns)
            return 0;
        struct pollfd p[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
        const int rc = poll(p, wake_fd >= 0 ? 2 : 1, (int)((deadline_ns - now + 999999) / 1000000));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return 0;
        if (wake_fd >= 0 && (p[1].revents & POLLIN))
            return -1;
        if (p[0].revents)
            return 1;
    }
}

/* A non-blocking connect to addr, completed within the deadline: the socket, or -1 (with *woken
 * set when wake_fd cut it short). */
static int connect_by(int family, const struct sockaddr *addr, socklen_t alen, int wake_fd,
                      uint64_t deadline_ns, int *woken)
{
    const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, addr, alen) == 0)
        return fd;
    if (errno == EINPROGRESS) {
        const int w = wait_fd(fd, POLLOUT, wake_fd, deadline_ns);
        int err = 0;
        socklen_t elen = sizeof err;
        if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)
            return fd;
        if (w < 0)
            *woken = 1;
    }
    close(fd);
    return -1;
}

/* A connected socket to ep within the deadline, or -1 (*woken set when wake_fd cut it short). */
static int connect_endpoint(const char *ep, int wake_fd, uint64_t deadline_ns, int *woken)
{
    if (strncmp(ep, "ipc://", 6) == 0) {
        struct sockaddr_un un;
        memset(&un, 0, sizeof un);
        un.sun_family = AF_UNIX;
        const char *path = ep + 6;
        const size_t n = strlen(path);
        if (n == 0 || n >= sizeof un.sun_path)
            return -1;
        memcpy(un.sun_path, path, n);
        socklen_t alen = (socklen_t)sizeof un;
        if (path[0] == '@') { /* Linux's abstract namespace, as libzmq reads "ipc://@name" */
            un.sun_path[0] = '\0';
            alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        }
        return connect_by(AF_UNIX, (const struct sockaddr *)&un, alen, wake_fd, deadline_ns,
                          woken);
    }
    /* tcp://[SOURCE;]HOST:PORT: the probe connects from wherever the system picks */
    const char *semi = strrchr(ep, ';');
    char dest[300];
    if (semi)
        snprintf(dest, sizeof dest, "tcp://%s", semi + 1);
    else
        snprintf(dest, sizeof dest, "%s", ep);
    char host[256];
    const char *h, *port;
    size_t hn;
    if (!fl_tcp_split(dest, &h, &hn, &port) || fl_port_number(port) < 1 ||
        !fl_tcp_host(dest, host, sizeof host))
        return -1;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return -1;
    int fd = -1;
    for (const struct addrinfo *a = res; a && fd < 0 && !*woken; a = a->ai_next)
        fd = connect_by(a->ai_family, a->ai_addr, a->ai_addrlen, wake_fd, deadline_ns, woken);
    freeaddrinfo(res);
    return fd;
}

int flc_zmtp_probe_mechanism(char *mech, const char *ep, int wake_fd, int timeout_ms)
{
    mech[0] = '\0';
    if (strncmp(ep, "tcp://", 6) != 0 && strncmp(ep, "ipc://", 6) != 0)
        return 0;
    const uint64_t deadline = fl_time_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) *
                                                       1000000ull;
    int woken = 0;
    const int fd = connect_endpoint(ep, wake_fd, deadline, &woken);
    if (fd < 0)
        return woken ? -1 : 0;
    /* our signature and major version 3: the peer answers with the rest of its greeting */
    static const uint8_t head[11] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3};
    uint8_t buf[FLC_ZMTP_GREETING_HEAD];
    size_t sent = 0, got = 0;
    int rc = 0;
    for (;;) {
        const int want_out = sent < sizeof head;
        const int w = wait_fd(fd, want_out ? (POLLIN | POLLOUT) : POLLIN, wake_fd, deadline);
        if (w <= 0) {
            rc = w; /* -1 woken, 0 timed out */
            break;
        }
        if (want_out) {
            const ssize_t k = send(fd, head + sent, sizeof head - sent, MSG_NOSIGNAL);
            if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                break;
            if (k > 0)
                sent += (size_t)k;
        }
        const ssize_t k = recv(fd, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            break;
        if (k > 0) {
            got += (size_t)k;
            const int v = flc_zmtp_greeting_mechanism(mech, buf, got);
            if (v != 0) {
                rc = v == 1;
                break;
            }
        }
    }
    close(fd);
    return rc;
}
