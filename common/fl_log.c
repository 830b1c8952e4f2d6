#include "fl_log.h"

#include <stdio.h>
#include <string.h>

void fl_logv(const fl_logger *lg, fl_log_level level, const char *fmt, va_list ap)
{
    if (!lg || !lg->fn || level < lg->min_level)
        return;
    /* room for the longest ids (1024 bytes on the wire) and paths a line names; a longer line is
     * cut at a character boundary (never inside a UTF-8 sequence) and ends in "..." */
    char buf[4096];
    const int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n >= (int)sizeof buf) {
        size_t end = sizeof buf - 4;
        while (end > 0 && ((unsigned char)buf[end] & 0xC0) == 0x80)
            end--; /* buf[end] starts a character: cut before it */
        memcpy(buf + end, "...", 4);
    }
    lg->fn(lg->user, level, buf);
}

void fl_log(const fl_logger *lg, fl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fl_logv(lg, level, fmt, ap);
    va_end(ap);
}

const char *fl_log_level_name(fl_log_level level)
{
    switch (level) {
    case FL_LOG_DEBUG: return "debug";
    case FL_LOG_INFO: return "info";
    case FL_LOG_WARN: return "warn";
    case FL_LOG_ERROR: return "error";
    }
    return "?";
}

void fl_log_to_file(void *user, fl_log_level level, const char *msg)
{
    FILE *f = user ? (FILE *)user : stderr;
    fprintf(f, "%-5s %s\n", fl_log_level_name(level), msg);
    fflush(f);
}
