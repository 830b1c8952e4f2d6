/* bench_exit.h: a benchmark that ends early leaves nothing behind. Its temporary files and
 * directories (bench_tmp_add) are removed however it ends: returning from main, exit() (its die()
 * paths), or SIGINT, SIGTERM or SIGHUP (Ctrl-C, kill, a closed terminal), after which the signal
 * ends it as it would have without the handler (exit status 128 + the signal). Its child processes
 * (bench_in_child, in each right after fork) end with it, even when it is SIGKILLed, instead of
 * running on as orphans. Header-only, as bench_clock.h: each benchmark is one program.
 * bench_ids, whose servers' directory holds files of names only known at run time, does its own
 * (a signal handler that only notes the signal; the main thread cleans up). */
#ifndef FEDROP_BENCH_EXIT_H
#define FEDROP_BENCH_EXIT_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define BENCH_TMP_MAX 8

static char bench_tmp_path[BENCH_TMP_MAX][4096];
static volatile sig_atomic_t bench_tmp_n; /* registered paths: [0, n) */

/* Removes the registered paths, the last first (a directory is registered before the files in
 * it): unlink, or rmdir for a directory. Async-signal-safe. */
static void bench_tmp_remove(void)
{
    for (int i = (int)bench_tmp_n - 1; i >= 0; i--)
        if (unlink(bench_tmp_path[i]) != 0)
            rmdir(bench_tmp_path[i]);
    bench_tmp_n = 0;
}

static void bench_tmp_on_signal(int sig)
{
    bench_tmp_remove();
    signal(sig, SIG_DFL); /* blocked while this runs: delivered, to end the process, on return */
    raise(sig);
}

/* Registers path (a file or an empty directory that this program made) for removal however the
 * program ends; the first call installs the handlers. Call it right after making the path. */
static inline void bench_tmp_add(const char *path)
{
    if (bench_tmp_n == 0) {
        static int installed;
        if (!installed) {
            installed = 1;
            atexit(bench_tmp_remove);
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = bench_tmp_on_signal;
            sigemptyset(&sa.sa_mask);
            sigaddset(&sa.sa_mask, SIGINT); /* one handler at a time */
            sigaddset(&sa.sa_mask, SIGTERM);
            sigaddset(&sa.sa_mask, SIGHUP);
            sigaction(SIGINT, &sa, NULL);
            sigaction(SIGTERM, &sa, NULL);
            sigaction(SIGHUP, &sa, NULL);
        }
    }
    if (bench_tmp_n >= BENCH_TMP_MAX || strlen(path) >= sizeof bench_tmp_path[0]) {
        fprintf(stderr, "bench: %s will not be removed if the run ends early\n", path);
        return;
    }
    memcpy(bench_tmp_path[bench_tmp_n], path, strlen(path) + 1);
    bench_tmp_n = bench_tmp_n + 1; /* after the path is whole: a signal sees it complete */
}

/* In a child, right after fork (before exec, if any): it ends (SIGKILL) when the parent does,
 * and it removes none of the parent's paths nor runs its handlers. parent: getpid() of the
 * parent before the fork. */
static inline void bench_in_child(pid_t parent)
{
    bench_tmp_n = 0;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent ended before prctl */
        _exit(1);
}

#endif
