/* fl_text.h: positions in text read from outside (configuration files), and a YAML line indented
 * under a value by mistake, which fl_server's and fl_sim's configurations both say so; numbers as
 * people read them. */
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

/* A line indented under one that already holds a value (fl_text_yaml_overindent): all 0-based. */
typedef struct fl_text_overindent {
    size_t line;    /* the first line indented so */
    size_t col;     /* its indent (leading spaces): the column of its first character */
    size_t owner;   /* the line above it that holds a key (or list item) and its value */
    int item;       /* 1: that line is a list item ("- VALUE"); 0: a key ("KEY: VALUE") */
    char key[64];   /* the key as written (its first 60 bytes); "" for a list item */
    char value[64]; /* the value as written on its line (its first 60 bytes), no comment */
} fl_text_overindent;

/* A line of YAML text buf[0..len) indented under one that already holds a value: "rounds: 2"
 * and then "    seed: 3" (a typo'd indent), which YAML reads as more of the value "2": libyaml
 * then says "mapping values are not allowed in this context", or, after a comment or a quoted
 * value, "did not find expected key", and a line without a ':' becomes part of the value ("2
 * seed"). Line l (0-based) is the one a parser stopped at, or one a plain value runs on into;
 * the scan goes back from it over the lines indented as deep or deeper and those without
 * content (blank, a comment) to the line above them, which must be "KEY: VALUE" (a plain key)
 * or "- VALUE" with a value on it (not a block scalar's '|' or '>', a flow collection, an
 * anchor or a tag). 1 with *out filled; 0 when the text is not so (out untouched). Reads the
 * text only (no parser: a caller's libyaml says where it stopped); buf need not end in a NUL.
 * Thread-safe. */
int fl_text_yaml_overindent(fl_text_overindent *out, const char *buf, size_t len, size_t l);

#endif
