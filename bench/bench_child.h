/* bench_child.h: a peer that runs in a child process (PyTorch under /usr/bin/python3) and takes
 * turns with the benchmark: it loads, prints "ready", then runs one repetition for each line it
 * reads on its stdin and answers with a line that starts "rep ". The benchmark runs a repetition
 * of its own, then one of the child's, and so on, so that both meet the same stretches of a
 * shared machine's load (bench_train and bench_lstm). Header-only, as bench_clock.h: each
 * benchmark is one program. The caller ignores SIGPIPE, so that a child that died is seen as a
 * failed write. */
#ifndef FEDROP_BENCH_CHILD_H
#define FEDROP_BENCH_CHILD_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_exit.h"

typedef struct bench_child {
    pid_t pid; /* 0: none running */
    FILE *cmd, *out;
} bench_child;

/* Starts `sh -c cmd` with its stdin and stdout on pipes. 0 once it said "ready"; -1 (it is
 * reaped) if it could not start or ended first. */
static inline int bench_child_start(bench_child *t, const char *cmd)
{
    int in[2], out[2];
    memset(t, 0, sizeof *t);
    if (pipe(in) != 0)
        return -1;
    if (pipe(out) != 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    fflush(stdout);
    const pid_t parent = getpid();
    t->pid = fork();
    if (t->pid < 0) {
        t->pid = 0;
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (t->pid == 0) {
        bench_in_child(parent); /* the peer ends with the benchmark, however it ends */
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    t->cmd = fdopen(in[1], "w");
    t->out = fdopen(out[0], "r");
    char line[512];
    while (t->cmd && t->out && fgets(line, sizeof line, t->out))
        if (strncmp(line, "ready", 5) == 0)
            return 0;
    if (t->cmd)
        fclose(t->cmd);
    else
        close(in[1]);
    if (t->out)
        fclose(t->out);
    else
        close(out[0]);
    waitpid(t->pid, NULL, 0);
    memset(t, 0, sizeof *t);
    return -1;
}

/* One repetition of the child: its "rep ..." line into line[cap]; 0, or -1 if it failed. */
static inline int bench_child_rep(bench_child *t, char *line, size_t cap)
{
    if (t->pid <= 0 || fputs("go\n", t->cmd) == EOF || fflush(t->cmd) != 0)
        return -1;
    while (fgets(line, (int)cap, t->out))
        if (strncmp(line, "rep ", 4) == 0)
            return 0;
    return -1;
}

/* Ends the child: closes its stdin (its signal to finish), reads what it prints until it exits,
 * the last line into last[cap], and reaps it. Its exit status (0..255), or -1 if it was killed or
 * none ran. */
static inline int bench_child_end(bench_child *t, char *last, size_t cap)
{
    if (cap)
        last[0] = '\0';
    if (t->pid <= 0)
        return -1;
    char line[512];
    fclose(t->cmd);
    while (fgets(line, sizeof line, t->out))
        snprintf(last, cap, "%s", line);
    fclose(t->out);
    int ws = 0;
    const pid_t p = waitpid(t->pid, &ws, 0);
    memset(t, 0, sizeof *t);
    return p > 0 && WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/* bench/NAME of the source tree into out[cap]: under $FEDROP_SOURCE_ROOT, else from the source
 * root or the build directory as the working directory. 0, or -1 if none is readable. */
static inline int bench_script_find(const char *name, char *out, size_t cap)
{
    const char *root = getenv("FEDROP_SOURCE_ROOT");
    char c[3][4096];
    snprintf(c[0], sizeof c[0], "%s/bench/%s", root ? root : "", name);
    snprintf(c[1], sizeof c[1], "bench/%s", name);
    snprintf(c[2], sizeof c[2], "../bench/%s", name);
    for (int i = root ? 0 : 1; i < 3; i++)
        if (access(c[i], R_OK) == 0 && (size_t)snprintf(out, cap, "%s", c[i]) < cap)
            return 0;
    return -1;
}

#endif
