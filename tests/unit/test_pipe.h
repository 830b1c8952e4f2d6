/* test_pipe.h: a program run with one of its standard streams a pipe whose reader is gone before
 * it starts (`PROG --help | grep -q usage`, grep gone first), for the CLI tests of fl_client,
 * fl_server and fl_sim. Include after cmocka.h. */
#ifndef TEST_PIPE_H
#define TEST_PIPE_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* exe ARGS (at most 14) with fd `closed` (1 or 2) the write end of a pipe whose read end is
 * closed, and the other of the two a pipe read into said (cap bytes); SIGPIPE at its default, as
 * a shell starts it. Its exit status, -1 when a signal ended it. */
static inline int closed_pipe_run(const char *exe, const char *const *args, int closed,
                                  char *said, size_t cap)
{
    int gone[2], kept[2];
    assert_int_equal(pipe(gone), 0);
    assert_int_equal(pipe(kept), 0);
    close(gone[0]);
    const pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        close(kept[0]);
        dup2(gone[1], closed);
        dup2(kept[1], closed == 1 ? 2 : 1);
        char *argv[16] = {(char *)exe};
        for (int i = 0; args[i] && i < 14; i++)
            argv[i + 1] = (char *)args[i];
        signal(SIGPIPE, SIG_DFL);
        execv(exe, argv);
        _exit(127);
    }
    close(gone[1]);
    close(kept[1]);
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(kept[0], said + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    said[n] = '\0';
    close(kept[0]);
    int ws;
    assert_int_equal(waitpid(p, &ws, 0), p);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

#endif
