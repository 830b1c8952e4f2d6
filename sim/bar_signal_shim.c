/* bar_signal_shim.c: an LD_PRELOAD shim for sim/interrupt_test.sh (never installed). fl_sim draws
 * its progress bar with fprintf(stderr, "\r...") and marks the bar's line open for its signal
 * handler, which then starts its message on a line of its own. A signal caught between the two
 * put the message on the bar's line; 60cdf13 marks the line open first. The shim raises SIGINT
 * once, inside the first such fprintf, after its text went out: the signal comes in that window
 * every time, where a real Ctrl-C hits it now and then. kill(), not raise(): raise() sends it to
 * the calling thread, which has it blocked (fl_sim takes its signals on a thread of its own,
 * common/fl_sig.h), where it would wait for good. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static void after(FILE *f, const char *fmt)
{
    static int done;
    if (!done && f == stderr && fmt[0] == '\r') {
        done = 1;
        kill(getpid(), SIGINT);
    }
}

int fprintf(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int r = vfprintf(f, fmt, ap);
    va_end(ap);
    after(f, fmt);
    return r;
}

/* fprintf under _FORTIFY_SOURCE */
int __fprintf_chk(FILE *f, int flag, const char *fmt, ...);
int __fprintf_chk(FILE *f, int flag, const char *fmt, ...)
{
    (void)flag;
    va_list ap;
    va_start(ap, fmt);
    const int r = vfprintf(f, fmt, ap);
    va_end(ap);
    after(f, fmt);
    return r;
}
