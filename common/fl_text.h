/* fl_text.h: positions in text read from outside (configuration files); numbers as people read
 * them. */
#ifndef FL_TEXT_H
#define FL_TEXT_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

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

/* v into out[cap] in the fewest significant digits that read back as v (0.05, not %.17g's
 * 0.050000000000000003 nor %g's 0.75 for 0.7500001); with f32, as the float32 it is (0.05, not
 * 0.0500000007). A whole number below 10^15 is written whole (60, not %.1g's 6e+01). Returns
 * out. */
static inline const char *fl_text_shortest(char *out, size_t cap, double v, int f32)
{
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) { /* (NaN fails the range) */
        snprintf(out, cap, "%lld", (long long)v);
        return out;
    }
    for (int digits = 1; digits <= (f32 ? 9 : 17); digits++) {
        snprintf(out, cap, "%.*g", digits, v);
        const double back = strtod(out, NULL);
        if (f32 ? (float)back == (float)v : back == v)
            break;
    }
    return out;
}

#endif
