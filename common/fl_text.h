/* fl_text.h: positions in text read from outside (configuration files). */
#ifndef FL_TEXT_H
#define FL_TEXT_H

#include <stddef.h>

/* The 0-based line and column (in UTF-8 characters) of byte offset off of buf[0..len): for a
 * parser that reports only an offset (libyaml's reader errors: a control character, invalid
 * UTF-8). An offset past len is taken as len. */
static inline void fl_text_line_col(const char *buf, size_t len, size_t off, size_t *line,
                                    size_t *col)
{
    size_t l = 0, c = 0;
    for (size_t i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            l++;
            c = 0;
        } else if (((unsigned char)buf[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

#endif
