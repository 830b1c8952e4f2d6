/* fl_log.h: logging through a callback the caller installs.
 *
 * Libraries never print. Each long-lived object holds an fl_logger (by value) copied from its
 * config; a zeroed fl_logger (fn == NULL) discards everything. The callback may be called from
 * any thread that calls into the object; it must not call back into the object.
 */
#ifndef FL_LOG_H
#define FL_LOG_H

#include <stdarg.h>

typedef enum fl_log_level {
    FL_LOG_DEBUG = 0,
    FL_LOG_INFO = 1,
    FL_LOG_WARN = 2,
    FL_LOG_ERROR = 3,
} fl_log_level;

/* msg is a NUL-terminated line without a trailing newline, valid only during the call. */
typedef void (*fl_log_fn)(void *user, fl_log_level level, const char *msg);

typedef struct fl_logger {
    fl_log_fn fn;          /* NULL: discard */
    void *user;            /* passed back to fn */
    fl_log_level min_level;/* messages below this level are not formatted */
} fl_logger;

/* Formats and delivers one message. A message of more than 4095 bytes is cut to at most 4095,
 * before a UTF-8 character (never inside one), and ends in "...". lg may be NULL. */
void fl_log(const fl_logger *lg, fl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void fl_logv(const fl_logger *lg, fl_log_level level, const char *fmt, va_list ap);

/* "debug", "info", "warn", "error". */
const char *fl_log_level_name(fl_log_level level);

/* A ready-made callback for programs (not libraries): writes "LEVEL message\n" to the FILE*
 * passed as user (stderr when user is NULL). */
void fl_log_to_file(void *user, fl_log_level level, const char *msg);

#endif
