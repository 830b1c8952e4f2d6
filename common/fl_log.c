#include "fl_log.h"

#include <stdio.h>

void fl_logv(const fl_logger *lg, fl_log_level level, const char *fmt, va_list ap)
{
    if (!lg || !lg->fn || level < lg->min_level)
        return;
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
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
