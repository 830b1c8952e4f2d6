/* fl_text.c: the scans of configuration text that need more than a few lines (see fl_text.h). */
#include "fl_text.h"

#include <string.h>

/* Line l (0-based) of buf[0..len): its first byte and length (without the '\n'); 0 past the end
 * (the empty "line" after a final '\n' included). */
static int text_line(const char *buf, size_t len, size_t l, const char **at, size_t *n)
{
    size_t i = 0;
    for (size_t k = 0; k < l; k++) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (!nl)
            return 0;
        i = (size_t)(nl - buf) + 1;
    }
    if (i > len || (i == len && l > 0))
        return 0;
    const char *nl = memchr(buf + i, '\n', len - i);
    *at = buf + i;
    *n = nl ? (size_t)(nl - *at) : len - i;
    return 1;
}

/* The indent of a line (leading spaces), or -1 for one without content (blank, a comment). */
static long text_indent(const char *at, size_t n)
{
    size_t i = 0;
    while (i < n && at[i] == ' ')
        i++;
    if (i == n || at[i] == '#' || at[i] == '\r')
        return -1;
    return (long)i;
}

int fl_text_yaml_overindent(fl_text_overindent *out, const char *buf, size_t len, size_t l)
{
    const char *at;
    size_t n;
    if (!out || !buf || !text_line(buf, len, l, &at, &n))
        return 0;
    const long ind = text_indent(at, n);
    if (ind <= 0)
        return 0;
    /* back over the lines indented as deep or deeper (the value's continuation) and those
     * without content, to the line above them (line by line from l's start: one pass over
     * the text, whatever its length) */
    size_t j = l, f = l;
    long pin = -1, fcol = ind;
    while (j > 0) {
        j--;
        const char *prev = at - 1; /* the '\n' that ends line j */
        at = prev;
        while (at > buf && at[-1] != '\n')
            at--;
        n = (size_t)(prev - at);
        pin = text_indent(at, n);
        if (pin < 0)
            continue;
        if (pin < ind)
            break;
        f = j;
        fcol = pin;
        pin = -1;
    }
    if (pin < 0)
        return 0;
    const char *c = at + pin, *end = at + n;
    const char *v;
    int item = 0;
    const char *key = c;
    size_t klen = 0;
    if (end - c >= 2 && c[0] == '-' && c[1] == ' ') { /* "- VALUE" */
        item = 1;
        v = c + 2;
    } else {
        /* "KEY: VALUE": a plain key, the first ": " */
        const char *colon = NULL;
        for (const char *q = c; q + 1 < end && !colon; q++)
            if (q[0] == ':' && q[1] == ' ')
                colon = q;
        if (!colon || colon == c || strchr("\"'[{?&!*#-", *c))
            return 0;
        klen = (size_t)(colon - c);
        v = colon + 2;
    }
    while (v < end && *v == ' ')
        v++;
    const char *ve = v;
    while (ve < end && !(*ve == '#' && ve[-1] == ' ') && *ve != '\r')
        ve++;
    while (ve > v && ve[-1] == ' ')
        ve--;
    /* nothing (a mapping under it), a block scalar's '|' or '>', a flow collection that may
     * span lines, an anchor or a tag before what comes under it: no value there */
    if (ve == v || strchr("|>[{&!", *v))
        return 0;
    out->line = f;
    out->col = (size_t)fcol;
    out->owner = j;
    out->item = item;
    snprintf(out->key, sizeof out->key, "%.*s", (int)(klen < 60 ? klen : 60), key);
    snprintf(out->value, sizeof out->value, "%.*s", (int)(ve - v < 60 ? ve - v : 60), v);
    return 1;
}
