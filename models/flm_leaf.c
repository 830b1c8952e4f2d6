/* flm_leaf.c: the LEAF JSON reader (FEMNIST, Shakespeare), streaming.
 *
 * LEAF files are hundreds of megabytes of one JSON object, so nothing here holds a whole file: a
 * pull tokenizer reads through a fixed 64 KiB buffer and a recursive-descent parser over its
 * tokens writes samples straight into the growing dataset arrays. Strings are capped (user names,
 * 80-character lines: 64 KiB is generous), numbers are capped at 64 characters, nesting at 64.
 * Every error names the file, the line and the byte offset of the offending token.
 */
#include "flm_data.h"
#include "fl_mem.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JR_BUF 65536u
#define JR_MAX_STR 65536u
#define JR_MAX_NUM 64u
#define JR_PLAIN 4096u /* the longest string lex_string copies at once */
#define JR_MAX_DEPTH 64
#define FEMNIST_PIXELS 784

enum {
    TK_EOF = 0, TK_LBRACE, TK_RBRACE, TK_LBRACK, TK_RBRACK, TK_COLON, TK_COMMA,
    TK_STRING, TK_NUMBER, TK_TRUE, TK_FALSE, TK_NULL,
};

static const char *const tk_name[] = {
    "end of input", "'{'", "'}'", "'['", "']'", "':'", "','", "a string", "a number",
    "true", "false", "null",
};

typedef struct jr {
    const char *name;
    FILE *f;                 /* file input, or NULL */
    const uint8_t *data;     /* current window: buf (file) or the whole input (memory) */
    size_t len, pos;
    uint64_t base;           /* input offset of data[0] */
    uint64_t line;           /* line of data[pos], 1-based */
    int eof;
    uint8_t *buf;
    /* the current token */
    int tok;
    uint64_t tok_off, tok_line;
    char *str;               /* TK_STRING: decoded UTF-8, NUL-terminated */
    size_t str_len, str_cap;
    double num;              /* TK_NUMBER */
    /* the first error */
    fl_status st;
    char *err;
    size_t errlen;
} jr;

static void jr_fail(jr *r, fl_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void jr_fail(jr *r, fl_status st, const char *fmt, ...)
{
    if (r->st != FL_OK)
        return;
    r->st = st;
    if (!r->err || !r->errlen)
        return;
    int n = snprintf(r->err, r->errlen, "%s: line %llu, byte %llu: ", r->name,
                     (unsigned long long)r->tok_line, (unsigned long long)r->tok_off);
    if (n < 0 || (size_t)n >= r->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Refills the window from the file; the next byte, or -1 at the end (or after a read error). */
static __attribute__((noinline)) int jr_refill(jr *r)
{
    if (!r->f || r->eof || r->st != FL_OK)
        return -1;
    r->base += r->len;
    r->len = fread(r->buf, 1, JR_BUF, r->f);
    r->pos = 0;
    if (r->len == 0) {
        r->eof = 1;
        if (ferror(r->f))
            jr_fail(r, FL_ERR_DATASET_IO, "read error: %s", strerror(errno));
        return -1;
    }
    return r->data[0];
}

/* The next input byte without consuming it, or -1 at the end. */
static inline int jr_peek(jr *r)
{
    return r->pos < r->len ? r->data[r->pos] : jr_refill(r);
}

static inline int jr_get(jr *r)
{
    const int c = jr_peek(r);
    if (c >= 0) {
        r->pos++;
        if (c == '\n')
            r->line++;
    }
    return c;
}

/* Room in r->str for need bytes (need <= JR_MAX_STR). Returns 0, or -1 with r->st set. */
static int str_reserve(jr *r, size_t need)
{
    if (need <= r->str_cap)
        return 0;
    size_t nc = r->str_cap ? r->str_cap : 256;
    while (nc < need)
        nc *= 2;
    char *ns = realloc(r->str, nc);
    if (!ns) {
        jr_fail(r, FL_ERR_NOMEM, "out of memory");
        return -1;
    }
    r->str = ns;
    r->str_cap = nc;
    return 0;
}

static int str_push(jr *r, uint8_t b)
{
    if (r->str_len + 1 >= r->str_cap) {
        if (r->str_cap >= JR_MAX_STR) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "string longer than %u bytes", JR_MAX_STR);
            return -1;
        }
        if (str_reserve(r, r->str_cap ? 2 * r->str_cap : 256) != 0)
            return -1;
    }
    r->str[r->str_len++] = (char)b;
    r->str[r->str_len] = '\0';
    return 0;
}

static int push_utf8(jr *r, uint32_t cp)
{
    if (cp < 0x80)
        return str_push(r, (uint8_t)cp);
    if (cp < 0x800)
        return str_push(r, (uint8_t)(0xc0 | cp >> 6)) || str_push(r, (uint8_t)(0x80 | (cp & 0x3f)));
    if (cp < 0x10000)
        return str_push(r, (uint8_t)(0xe0 | cp >> 12)) ||
               str_push(r, (uint8_t)(0x80 | ((cp >> 6) & 0x3f))) ||
               str_push(r, (uint8_t)(0x80 | (cp & 0x3f)));
    return str_push(r, (uint8_t)(0xf0 | cp >> 18)) ||
           str_push(r, (uint8_t)(0x80 | ((cp >> 12) & 0x3f))) ||
           str_push(r, (uint8_t)(0x80 | ((cp >> 6) & 0x3f))) ||
           str_push(r, (uint8_t)(0x80 | (cp & 0x3f)));
}

static int read_hex4(jr *r, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        const int c = jr_get(r);
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "bad \\u escape in a string");
            return -1;
        }
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* Eight bytes from p as a little-endian integer (the first byte in the low byte), which the SWAR
 * helpers below take on any machine. */
static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

/* How many bytes of the window from p on come before the closing quote of a string that needs no
 * decoding (no escape, no control character), or -1: a backslash or a control character comes
 * first, or the window ends before the quote. Eight bytes at a time: a byte is flagged when it is
 * '"' or '\\' (a zero byte of w ^ that byte) or below 0x20; a borrow can flag a byte only above a
 * flagged one, so the lowest flag is exact. */
static inline long plain_string_len(const uint8_t *p, const uint8_t *end)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    const uint8_t *q = p;
    for (; end - q >= 8; q += 8) {
        const uint64_t w = load_le64(q);
        const uint64_t qt = w ^ (ones * '"'), bs = w ^ (ones * '\\');
        const uint64_t hit =
            (((qt - ones) & ~qt) | ((bs - ones) & ~bs) | ((w - ones * 0x20) & ~w)) & high;
        if (hit) {
            q += __builtin_ctzll(hit) / 8;
            return *q == '"' ? (long)(q - p) : -1;
        }
    }
    for (; q < end; q++)
        if (*q == '"' || *q == '\\' || *q < 0x20)
            return *q == '"' ? (long)(q - p) : -1;
    return -1;
}

/* After the opening quote: decodes escapes into UTF-8 in r->str. Raw bytes are copied as they are
 * (UTF-8 is validated where characters matter, in the Shakespeare decoder). */
static int lex_string(jr *r)
{
    /* most strings (user names, Shakespeare's lines) need no decoding: copied at once when the
     * window holds their closing quote within JR_PLAIN bytes; anything else takes the byte loop
     * from the start */
    const size_t room = r->len - r->pos;
    const long plain = plain_string_len(r->data + r->pos,
                                        r->data + r->pos + (room < JR_PLAIN ? room : JR_PLAIN));
    if (plain >= 0) {
        if (str_reserve(r, (size_t)plain + 1) != 0)
            return -1;
        memcpy(r->str, r->data + r->pos, (size_t)plain);
        r->str[plain] = '\0';
        r->str_len = (size_t)plain;
        r->pos += (size_t)plain + 1;
        return 0;
    }
    if (str_reserve(r, 1) != 0)
        return -1;
    r->str_len = 0;
    r->str[0] = '\0';
    for (;;) {
        int c = jr_get(r);
        if (c < 0) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "unterminated string");
            return -1;
        }
        if (c == '"')
            return 0;
        if (c < 0x20) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "control character 0x%02x in a string", c);
            return -1;
        }
        if (c != '\\') {
            if (str_push(r, (uint8_t)c) != 0)
                return -1;
            continue;
        }
        c = jr_get(r);
        uint32_t cp;
        switch (c) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (read_hex4(r, &cp) != 0)
                return -1;
            if (cp >= 0xd800 && cp < 0xdc00) {
                uint32_t lo;
                if (jr_get(r) != '\\' || jr_get(r) != 'u' || read_hex4(r, &lo) != 0 ||
                    lo < 0xdc00 || lo >= 0xe000) {
                    jr_fail(r, FL_ERR_DATASET_FORMAT, "unpaired UTF-16 surrogate in a string");
                    return -1;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                jr_fail(r, FL_ERR_DATASET_FORMAT, "unpaired UTF-16 surrogate in a string");
                return -1;
            } else if (cp == 0) { /* strings end at a NUL here: "A\u0000x" would read as "A" */
                jr_fail(r, FL_ERR_DATASET_FORMAT, "\\u0000 (NUL) in a string: no LEAF "
                        "field holds one");
                return -1;
            }
            break;
        default:
            jr_fail(r, FL_ERR_DATASET_FORMAT, "bad escape in a string");
            return -1;
        }
        if (push_utf8(r, cp) != 0)
            return -1;
    }
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* JSON numbers: the grammar checked strictly, then the value. Clinger's fast path first: a
 * decimal of at most 15 significant digits m and a power of ten |e| <= 22 is exactly m * 10^e or
 * m / 10^-e, both operands exact doubles, so one IEEE operation gives the correctly rounded
 * result, the same bits strtod gives. The digits LEAF writes (Python's repr of k / 255) mostly
 * need 16 or 17 (0.9882352941176471, 0.011764705882352941): those take flm_decimal_exact below,
 * an integer division. strtod takes the rest. */
static const double pow10_exact[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* The normal double mant * 2^e, mant in [2^52, 2^53], from its bits. */
static inline double make_double(uint64_t mant, int e)
{
    if (mant >> 53) {
        mant >>= 1;
        e++;
    }
    const uint64_t u = ((uint64_t)(e + 52 + 1023) << 52) | (mant & ((1ull << 52) - 1));
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Rounds q * 2^e2 to the nearest double, ties to even, for q of 54 to 64 bits, with sticky set
 * when the exact value lies above q * 2^e2 by less than 2^e2. The result must be a normal double
 * (the callers' are, by far: 1e-19 to 2^128). */
static inline double round_u64(uint64_t q, int e2, int sticky)
{
    const int shift = 64 - __builtin_clzll(q) - 53; /* 1 .. 11 */
    const uint64_t rest = q & ((1ull << shift) - 1), half = 1ull << (shift - 1);
    uint64_t mant = q >> shift;
    if (rest > half || (rest == half && (sticky || (mant & 1))))
        mant++;
    return make_double(mant, e2 + shift);
}

/* (hi:lo) / d and its remainder, for hi < d (the quotient fits 64 bits): one DIV on x86-64,
 * where the compiler's 128-bit division would call __udivti3. */
static inline uint64_t div_128_64(uint64_t hi, uint64_t lo, uint64_t d, uint64_t *rem)
{
#if defined(__x86_64__) && defined(__GNUC__)
    uint64_t q, r;
    __asm__("divq %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(d) : "cc");
    *rem = r;
    return q;
#else
    const unsigned __int128 n = ((unsigned __int128)hi << 64) | lo;
    const uint64_t q = (uint64_t)(n / d);
    *rem = (uint64_t)(n - (unsigned __int128)q * d);
    return q;
#endif
}

static const uint64_t p10_u64[20] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
    100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
    10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
    100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
};

/* flm_decimal_exact for 1 <= k <= 19 and m > 0: the double nearest m / 10^k. (k = 0 would shift
 * by 64 and trap the DIV: integers take the multiplication in flm_decimal_exact.) */
static inline double decimal_div(uint64_t m, int k)
{
    /* m shifted to the top of 64 bits, then by sh more, 2^sh <= d < 2^(sh+1), so that the
     * quotient (m << z) 2^sh / d lies in [2^62, 2^64): 10 or more bits beyond the 53 kept, one
     * DIV, and the remainder is the sticky. */
    const uint64_t d = p10_u64[k];
    const int z = __builtin_clzll(m), sh = 63 - __builtin_clzll(d); /* sh >= 3 */
    const uint64_t mz = m << z;
    uint64_t rem;
    const uint64_t q = div_128_64(mz >> (64 - sh), mz << sh, d, &rem);
    return round_u64(q, -z - sh, rem != 0);
}

int flm_decimal_exact(uint64_t m, int e10, double *out)
{
    if (e10 < -19 || e10 > 19)
        return 0;
    if (m == 0) {
        *out = 0.0;
        return 1;
    }
    if (e10 < 0) {
        *out = decimal_div(m, -e10);
        return 1;
    }
    /* an integer m 10^e10 below 2^128 (m < 2^64, 10^19 < 2^64), rounded to 53 bits */
    const unsigned __int128 v = (unsigned __int128)m * p10_u64[e10];
    const uint64_t hi = (uint64_t)(v >> 64), lo = (uint64_t)v;
    if (!hi) {
        *out = (double)lo; /* the conversion rounds to nearest, ties to even */
        return 1;
    }
    /* the top 64 bits and whether any below them is set */
    const int s = 64 - __builtin_clzll(hi); /* 1 .. 64 */
    const uint64_t top = s == 64 ? hi : (hi << (64 - s)) | (lo >> s);
    const int sticky = s == 64 ? lo != 0 : (lo << (64 - s)) != 0;
    *out = round_u64(top, s, sticky);
    return 1;
}

/* The value of the decimal m * 10^e10, m holding its sig significant digits (at most 19 of them
 * accumulated): Clinger's one operation, else flm_decimal_exact. 0 when neither applies (more
 * digits than m holds, or |e10| too large): strtod's case. */
static inline int decimal_value(uint64_t m, int sig, int e10, double *v)
{
    if (sig <= 15 && e10 >= -22 && e10 <= 22) {
        *v = e10 < 0 ? (double)m / pow10_exact[-e10] : (double)m * pow10_exact[e10];
        return 1;
    }
    return sig <= 19 && flm_decimal_exact(m, e10, v);
}

/* JSON number grammar, checked strictly. */
static int lex_number_slow(jr *r, int first)
{
    char t[JR_MAX_NUM + 1];
    size_t n = 0;
    int c = first;
    uint64_t m = 0;       /* significant digits, while sig <= 19 (below 10^19 < 2^64) */
    int sig = 0, frac = 0, ex = 0, exneg = 0;
#define NUM_PUSH(ch) do { if (n >= JR_MAX_NUM) goto too_long; t[n++] = (char)(ch); } while (0)
#define SIG_DIGIT(ch) do { if (m || (ch) != '0') { if (++sig <= 19) m = m * 10 + (uint64_t)((ch) - '0'); } } while (0)
    NUM_PUSH(c);
    const int neg = c == '-';
    if (neg) {
        c = jr_get(r);
        if (!is_digit(c))
            goto bad;
        NUM_PUSH(c);
    }
    SIG_DIGIT(c);
    if (c != '0')
        while (is_digit(jr_peek(r))) {
            c = jr_get(r);
            NUM_PUSH(c);
            SIG_DIGIT(c);
        }
    if (jr_peek(r) == '.') {
        NUM_PUSH(jr_get(r));
        if (!is_digit(jr_peek(r)))
            goto bad;
        while (is_digit(jr_peek(r))) {
            c = jr_get(r);
            NUM_PUSH(c);
            SIG_DIGIT(c);
            frac++;
        }
    }
    if (jr_peek(r) == 'e' || jr_peek(r) == 'E') {
        NUM_PUSH(jr_get(r));
        if (jr_peek(r) == '+' || jr_peek(r) == '-') {
            exneg = jr_peek(r) == '-';
            NUM_PUSH(jr_get(r));
        }
        if (!is_digit(jr_peek(r)))
            goto bad;
        while (is_digit(jr_peek(r))) {
            c = jr_get(r);
            NUM_PUSH(c);
            if (ex < 100000)
                ex = ex * 10 + (c - '0');
        }
    }
#undef SIG_DIGIT
#undef NUM_PUSH
    double v;
    if (decimal_value(m, sig, (exneg ? -ex : ex) - frac, &v)) {
        r->num = neg ? -v : v;
        return 0;
    }
    t[n] = '\0';
    r->num = strtod(t, NULL);
    return 0;
bad:
    jr_fail(r, FL_ERR_DATASET_FORMAT, "malformed number");
    return -1;
too_long:
    jr_fail(r, FL_ERR_DATASET_FORMAT, "number longer than %u characters", JR_MAX_NUM);
    return -1;
}

static int lex_word(jr *r, const char *rest, int tok)
{
    for (const char *p = rest; *p; p++)
        if (jr_get(r) != *p) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "invalid literal");
            return -1;
        }
    r->tok = tok;
    return 0;
}

/* Eight ASCII bytes w (the first in the low byte): 9 when any is not a digit, else how many
 * '0' digits lead (8 for "00000000"). */
static inline uint64_t leading_zero_digits(uint64_t w)
{
    const uint64_t hi = w & 0xF0F0F0F0F0F0F0F0ull;
    const uint64_t up = (w + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull;
    if (hi != 0x3030303030303030ull || up != 0x3030303030303030ull)
        return 9;
    const uint64_t nz = w ^ 0x3030303030303030ull; /* the digits' values; a zero byte is a '0' */
    return nz ? (uint64_t)__builtin_ctzll(nz) / 8 : 8;
}

/* The value of eight ASCII digits w, the first the most significant (three multiplies). */
static inline uint64_t eight_digits(uint64_t w)
{
    w -= 0x3030303030303030ull;
    w = w * 10 + (w >> 8); /* pairs in the even bytes */
    w = (((w & 0x000000FF000000FFull) * (100 + (1000000ull << 32))) +
         (((w >> 16) & 0x000000FF000000FFull) * (1 + (10000ull << 32)))) >> 32;
    return w;
}

/* A number of the common shape, -?(0|[1-9][0-9]*)(.[0-9]+)? with at most 19 significant digits
 * and 19 decimals, read straight from the window when the window holds more than the longest
 * number (no refill or line count can fall inside it); anything else (an exponent, a longer or
 * malformed number) goes back to its first byte and takes lex_number_slow, which gives the same
 * value or the error. */
static int lex_number(jr *r, int first)
{
    if (r->len - r->pos <= JR_MAX_NUM)
        return lex_number_slow(r, first);
    const uint8_t *const start = r->data + r->pos - 1, *const end = start + JR_MAX_NUM;
    const uint8_t *p = start + (first == '-');
    uint64_t m = 0;
    int sig = 0, frac = 0;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (p < end && is_digit(*p)) {
            if (++sig <= 19)
                m = m * 10 + (uint64_t)(*p - '0');
            p++;
        }
    else
        return lex_number_slow(r, first);
    if (p < end && *p == '.') {
        p++;
        if (p == end || !is_digit(*p))
            return lex_number_slow(r, first);
        /* eight digits at a time while they fit m (the decimals LEAF writes run 16 or 17) */
        while (end - p >= 8 && frac + 8 <= 19) {
            const uint64_t w = load_le64(p);
            const uint64_t lead = leading_zero_digits(w);
            if (lead > 8 || (m && sig + 8 > 19) || (!m && sig + 8 - (int)lead > 19))
                break; /* not eight digits, or more than m holds: the loop below */
            m = m * 100000000u + eight_digits(w);
            sig += m ? 8 - (int)(sig ? 0 : lead) : 0;
            frac += 8;
            p += 8;
        }
        while (p < end && is_digit(*p)) {
            if (m || *p != '0') {
                if (++sig <= 19)
                    m = m * 10 + (uint64_t)(*p - '0');
            }
            frac++;
            p++;
        }
    }
    if (p == end || *p == 'e' || *p == 'E' || sig > 19 || frac > 19)
        return lex_number_slow(r, first);
    double v;
    (void)decimal_value(m, sig, -frac, &v); /* taken: sig <= 19, frac <= 19 */
    r->num = first == '-' ? -v : v;
    r->pos = (size_t)(p - r->data);
    return 0;
}

/* Advances to the next token (r->tok). Returns 0, or -1 with r->st set. */
static int jr_next(jr *r)
{
    int c;
    for (;;) {
        c = jr_peek(r);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            jr_get(r);
        else
            break;
    }
    r->tok_off = r->base + r->pos;
    r->tok_line = r->line;
    if (r->st != FL_OK)
        return -1;
    c = jr_get(r);
    switch (c) {
    case -1: r->tok = TK_EOF; return r->st == FL_OK ? 0 : -1;
    case '{': r->tok = TK_LBRACE; return 0;
    case '}': r->tok = TK_RBRACE; return 0;
    case '[': r->tok = TK_LBRACK; return 0;
    case ']': r->tok = TK_RBRACK; return 0;
    case ':': r->tok = TK_COLON; return 0;
    case ',': r->tok = TK_COMMA; return 0;
    case '"': r->tok = TK_STRING; return lex_string(r);
    case 't': return lex_word(r, "rue", TK_TRUE);
    case 'f': return lex_word(r, "alse", TK_FALSE);
    case 'n': return lex_word(r, "ull", TK_NULL);
    default:
        if (c == '-' || is_digit(c)) {
            r->tok = TK_NUMBER;
            return lex_number(r, c);
        }
        /* the first byte of a file that is not JSON as it stands */
        jr_fail(r, FL_ERR_DATASET_FORMAT, "unexpected character 0x%02x%s", c,
                r->tok_off != 0 ? ""
                : c == 0xef ? " (a UTF-8 byte-order mark: save the file without it)"
                : c == 0x1f ? " (a gzip file: LEAF JSON is read uncompressed, gunzip it)"
                            : "");
        return -1;
    }
}

static int jr_expect(jr *r, int tok, const char *where)
{
    if (jr_next(r) != 0)
        return -1;
    if (r->tok != tok) {
        jr_fail(r, FL_ERR_DATASET_FORMAT, "expected %s %s, found %s", tk_name[tok], where,
                tk_name[r->tok]);
        return -1;
    }
    return 0;
}

/* After '[' or '{' was read: 1 if the container is empty (its closer consumed), 0 if the first
 * element's token is now current, -1 on error. */
static int jr_first(jr *r, int closer)
{
    if (jr_next(r) != 0)
        return -1;
    return r->tok == closer ? 1 : 0;
}

/* After an element: 1 if the container closed, 0 if a ',' was read and the next element's token is
 * current, -1 on error. */
static int jr_more(jr *r, int closer, const char *where)
{
    if (jr_next(r) != 0)
        return -1;
    if (r->tok == closer)
        return 1;
    if (r->tok != TK_COMMA) {
        jr_fail(r, FL_ERR_DATASET_FORMAT, "expected ',' or %s %s, found %s", tk_name[closer], where,
                tk_name[r->tok]);
        return -1;
    }
    return jr_next(r) != 0 ? -1 : 0;
}

/* Skips the value whose first token is current. */
static int jr_skip(jr *r, int depth)
{
    if (depth > JR_MAX_DEPTH) {
        jr_fail(r, FL_ERR_DATASET_FORMAT, "nesting deeper than %d", JR_MAX_DEPTH);
        return -1;
    }
    switch (r->tok) {
    case TK_STRING: case TK_NUMBER: case TK_TRUE: case TK_FALSE: case TK_NULL:
        return 0;
    case TK_LBRACK: {
        int k = jr_first(r, TK_RBRACK);
        while (k == 0) {
            if (jr_skip(r, depth + 1) != 0)
                return -1;
            k = jr_more(r, TK_RBRACK, "in an array");
        }
        return k < 0 ? -1 : 0;
    }
    case TK_LBRACE: {
        int k = jr_first(r, TK_RBRACE);
        while (k == 0) {
            if (r->tok != TK_STRING) {
                jr_fail(r, FL_ERR_DATASET_FORMAT, "expected a key, found %s", tk_name[r->tok]);
                return -1;
            }
            if (jr_expect(r, TK_COLON, "after a key") != 0 || jr_next(r) != 0 ||
                jr_skip(r, depth + 1) != 0)
                return -1;
            k = jr_more(r, TK_RBRACE, "in an object");
        }
        return k < 0 ? -1 : 0;
    }
    default:
        jr_fail(r, FL_ERR_DATASET_FORMAT, "expected a value, found %s", tk_name[r->tok]);
        return -1;
    }
}

/* ---- the LEAF structure --------------------------------------------------------------------- */

int32_t flm_leaf_char_token(uint32_t cp)
{
    static const char alphabet[] = FLM_LEAF_ALPHABET;
    if (cp == 0 || cp >= 128)
        return FLM_LEAF_UNKNOWN_TOKEN;
    const char *p = memchr(alphabet, (int)cp, sizeof alphabet - 1);
    return p ? (int32_t)(p - alphabet) : FLM_LEAF_UNKNOWN_TOKEN;
}

/* Decodes UTF-8 s[0..n) into tokens (ascii_tok: flm_leaf_char_token of each ASCII code point);
 * returns the number of code points (may exceed cap: then only cap tokens were written), or -1 on
 * invalid UTF-8. */
static long utf8_tokens(const uint8_t *s, size_t n, int32_t *out, size_t cap,
                        const int32_t ascii_tok[128])
{
    /* the leading ASCII run (all of a line as LEAF writes Shakespeare): one table lookup each */
    const size_t lim = n < cap ? n : cap;
    size_t i = 0;
    while (i < lim && s[i] < 0x80) {
        out[i] = ascii_tok[s[i]];
        i++;
    }
    long count = (long)i;
    while (i < n) {
        uint32_t cp;
        const uint8_t b = s[i];
        size_t k;
        if (b < 0x80) {
            if ((size_t)count < cap)
                out[count] = ascii_tok[b];
            count++;
            i++;
            continue;
        }
        if ((b & 0xe0) == 0xc0) {
            cp = b & 0x1fu;
            k = 2;
        } else if ((b & 0xf0) == 0xe0) {
            cp = b & 0x0fu;
            k = 3;
        } else if ((b & 0xf8) == 0xf0) {
            cp = b & 0x07u;
            k = 4;
        } else {
            return -1;
        }
        if (i + k > n)
            return -1;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return -1;
            cp = cp << 6 | (s[i + j] & 0x3fu);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000}; /* by k: 2 .. 4 */
        if (cp < min_cp[k] || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
            return -1;
        if ((size_t)count < cap)
            out[count] = flm_leaf_char_token(cp);
        count++;
        i += k;
    }
    return count;
}

/* What all files contribute to: growing sample arrays and the user table. */
typedef struct leaf_acc {
    flm_leaf_kind kind;
    size_t L;               /* values per sample */
    size_t nx, ny;          /* samples whose x / y have been read */
    size_t cap_x, cap_y;    /* in samples */
    float *x;
    int32_t *tokens;
    int32_t *y;
    uint32_t *user;         /* cap_y entries: written alongside y */
    size_t n_users, cap_users;
    char **names;
    size_t *count;          /* samples per user */
    uint32_t *hash;         /* open addressing: user id + 1, 0 empty */
    size_t hash_cap;
    int32_t ascii_tok[128]; /* flm_leaf_char_token of each ASCII code point */
} leaf_acc;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Id of user name, or -1. */
static long user_find(const leaf_acc *a, const char *name)
{
    if (!a->hash_cap)
        return -1;
    for (size_t i = fnv1a(name) & (a->hash_cap - 1);; i = (i + 1) & (a->hash_cap - 1)) {
        if (!a->hash[i])
            return -1;
        if (strcmp(a->names[a->hash[i] - 1], name) == 0)
            return (long)a->hash[i] - 1;
    }
}

static int user_add(jr *r, leaf_acc *a, const char *name)
{
    if (a->n_users >= UINT32_MAX - 1) {
        jr_fail(r, FL_ERR_DATASET_FORMAT, "too many users");
        return -1;
    }
    if (a->n_users == a->cap_users) {
        const size_t nc = a->cap_users ? 2 * a->cap_users : 64;
        char **nn = realloc(a->names, nc * sizeof *nn);
        if (nn)
            a->names = nn;
        size_t *ncnt = realloc(a->count, nc * sizeof *ncnt);
        if (ncnt)
            a->count = ncnt;
        if (!nn || !ncnt) {
            jr_fail(r, FL_ERR_NOMEM, "out of memory");
            return -1;
        }
        a->cap_users = nc;
    }
    if (2 * (a->n_users + 1) > a->hash_cap) {
        const size_t nc = a->hash_cap ? 2 * a->hash_cap : 128;
        uint32_t *nh = calloc(nc, sizeof *nh);
        if (!nh) {
            jr_fail(r, FL_ERR_NOMEM, "out of memory");
            return -1;
        }
        for (size_t u = 0; u < a->n_users; u++) {
            size_t i = fnv1a(a->names[u]) & (nc - 1);
            while (nh[i])
                i = (i + 1) & (nc - 1);
            nh[i] = (uint32_t)u + 1;
        }
        free(a->hash);
        a->hash = nh;
        a->hash_cap = nc;
    }
    char *copy = strdup(name);
    if (!copy) {
        jr_fail(r, FL_ERR_NOMEM, "out of memory");
        return -1;
    }
    const size_t u = a->n_users++;
    a->names[u] = copy;
    a->count[u] = 0;
    size_t i = fnv1a(name) & (a->hash_cap - 1);
    while (a->hash[i])
        i = (i + 1) & (a->hash_cap - 1);
    a->hash[i] = (uint32_t)u + 1;
    return 0;
}

/* Room for one more sample's x (which == 0) or y (which == 1). Growth 1.5x keeps the peak low. */
static int acc_grow(jr *r, leaf_acc *a, int which)
{
    size_t *cap = which ? &a->cap_y : &a->cap_x;
    const size_t have = which ? a->ny : a->nx;
    if (have < *cap)
        return 0;
    size_t nc = *cap ? *cap + *cap / 2 : 256;
    if (nc > UINT32_MAX)
        nc = UINT32_MAX;
    if (have >= nc || nc > SIZE_MAX / sizeof(float) / a->L) {
        jr_fail(r, FL_ERR_DATASET_FORMAT, "too many samples");
        return -1;
    }
    if (which) {
        int32_t *ny = realloc(a->y, nc * sizeof *ny);
        if (ny)
            a->y = ny;
        uint32_t *nu = realloc(a->user, nc * sizeof *nu);
        if (nu)
            a->user = nu;
        if (!ny || !nu)
            goto nomem;
    } else if (a->kind == FLM_LEAF_FEMNIST) {
        float *nx = realloc(a->x, nc * a->L * sizeof *nx);
        if (!nx)
            goto nomem;
        a->x = nx;
        fl_advise_huge(nx, nc * a->L * sizeof *nx);
    } else {
        int32_t *nt = realloc(a->tokens, nc * a->L * sizeof *nt);
        if (!nt)
            goto nomem;
        a->tokens = nt;
        fl_advise_huge(nt, nc * a->L * sizeof *nt);
    }
    *cap = nc;
    return 0;
nomem:
    jr_fail(r, FL_ERR_NOMEM, "out of memory");
    return -1;
}

/* One x element, its first token current. */
static int parse_x_elem(jr *r, leaf_acc *a)
{
    if (acc_grow(r, a, 0) != 0)
        return -1;
    if (a->kind == FLM_LEAF_FEMNIST) {
        if (r->tok != TK_LBRACK) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "x: expected a list of %d floats, found %s",
                    FEMNIST_PIXELS, tk_name[r->tok]);
            return -1;
        }
        float *dst = a->x + a->nx * a->L;
        size_t n = 0;
        int k = jr_first(r, TK_RBRACK);
        while (k == 0) {
            if (r->tok != TK_NUMBER) {
                jr_fail(r, FL_ERR_DATASET_FORMAT, "x: expected a pixel value, found %s",
                        tk_name[r->tok]);
                return -1;
            }
            if (!(r->num >= 0.0 && r->num <= 1.0)) {
                jr_fail(r, FL_ERR_DATASET_FORMAT, "x: pixel value %g outside [0, 1]", r->num);
                return -1;
            }
            if (n == FEMNIST_PIXELS) {
                jr_fail(r, FL_ERR_DATASET_FORMAT, "x: sample has more than %d values",
                        FEMNIST_PIXELS);
                return -1;
            }
            dst[n++] = (float)r->num;
            k = jr_more(r, TK_RBRACK, "in a sample");
        }
        if (k < 0)
            return -1;
        if (n != FEMNIST_PIXELS) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "x: sample has %zu values, want %d", n,
                    FEMNIST_PIXELS);
            return -1;
        }
    } else {
        if (r->tok != TK_STRING) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "x: expected a string of %d characters, found %s",
                    FLM_LEAF_SEQ_LEN, tk_name[r->tok]);
            return -1;
        }
        const long n = utf8_tokens((const uint8_t *)r->str, r->str_len,
                                   a->tokens + a->nx * a->L, a->L, a->ascii_tok);
        if (n < 0) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "x: invalid UTF-8");
            return -1;
        }
        if ((size_t)n != a->L) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "x: string has %ld characters, want %d", n,
                    FLM_LEAF_SEQ_LEN);
            return -1;
        }
    }
    a->nx++;
    return 0;
}

static int parse_y_elem(jr *r, leaf_acc *a, uint32_t uid)
{
    if (acc_grow(r, a, 1) != 0)
        return -1;
    int32_t v;
    if (a->kind == FLM_LEAF_FEMNIST) {
        if (r->tok != TK_NUMBER || !(r->num >= 0.0 && r->num < FLM_LEAF_FEMNIST_CLASSES) ||
            r->num != floor(r->num)) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "y: expected an integer class in 0..%d",
                    FLM_LEAF_FEMNIST_CLASSES - 1);
            return -1;
        }
        v = (int32_t)r->num;
    } else {
        int32_t t[2];
        const long n = r->tok == TK_STRING
                           ? utf8_tokens((const uint8_t *)r->str, r->str_len, t, 2,
                                         a->ascii_tok)
                           : -2;
        if (n != 1) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "y: expected a 1-character string");
            return -1;
        }
        v = t[0];
    }
    a->y[a->ny] = v;
    a->user[a->ny] = uid;
    a->ny++;
    return 0;
}

/* The value of user_data[name], its '{' current. */
static int parse_user(jr *r, leaf_acc *a, uint32_t uid)
{
    const size_t start = a->nx;
    const uint64_t off = r->tok_off, line = r->tok_line;
    if (r->tok != TK_LBRACE) {
        jr_fail(r, FL_ERR_DATASET_FORMAT, "user \"%s\": expected an object, found %s",
                a->names[uid], tk_name[r->tok]);
        return -1;
    }
    int seen_x = 0, seen_y = 0;
    int k = jr_first(r, TK_RBRACE);
    while (k == 0) {
        if (r->tok != TK_STRING) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "expected a key, found %s", tk_name[r->tok]);
            return -1;
        }
        const int is_x = strcmp(r->str, "x") == 0, is_y = strcmp(r->str, "y") == 0;
        if ((is_x && seen_x) || (is_y && seen_y)) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "user \"%s\": duplicate key \"%s\"", a->names[uid],
                    r->str);
            return -1;
        }
        if (jr_expect(r, TK_COLON, "after a key") != 0 || jr_next(r) != 0)
            return -1;
        if (is_x || is_y) {
            if (r->tok != TK_LBRACK) {
                jr_fail(r, FL_ERR_DATASET_FORMAT, "user \"%s\": %s must be a list",
                        a->names[uid], is_x ? "x" : "y");
                return -1;
            }
            int e = jr_first(r, TK_RBRACK);
            while (e == 0) {
                if ((is_x ? parse_x_elem(r, a) : parse_y_elem(r, a, uid)) != 0)
                    return -1;
                e = jr_more(r, TK_RBRACK, "in a list");
            }
            if (e < 0)
                return -1;
            seen_x |= is_x;
            seen_y |= is_y;
        } else if (jr_skip(r, 3) != 0) {
            return -1;
        }
        k = jr_more(r, TK_RBRACE, "in a user object");
    }
    if (k < 0)
        return -1;
    if (a->nx != a->ny) {
        r->tok_off = off;
        r->tok_line = line;
        jr_fail(r, FL_ERR_DATASET_FORMAT, "user \"%s\": %zu x samples but %zu y labels",
                a->names[uid], a->nx - start, a->ny - start);
        return -1;
    }
    a->count[uid] = a->nx - start;
    return 0;
}

/* One LEAF document. */
static int parse_doc(jr *r, leaf_acc *a)
{
    const size_t first_user = a->n_users;
    char **list = NULL;          /* "users" of this file */
    size_t n_list = 0, cap_list = 0;
    int64_t *ns = NULL;          /* "num_samples" of this file */
    size_t n_ns = 0, cap_ns = 0;
    int have_users = 0, have_ns = 0, have_data = 0, rc = -1;
    uint64_t users_off = 0, users_line = 0, ns_off = 0, ns_line = 0;

    if (jr_expect(r, TK_LBRACE, "at the start of a LEAF file") != 0)
        goto out;
    int k = jr_first(r, TK_RBRACE);
    while (k == 0) {
        if (r->tok != TK_STRING) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "expected a key, found %s", tk_name[r->tok]);
            goto out;
        }
        const int which = strcmp(r->str, "users") == 0 ? 1
                          : strcmp(r->str, "num_samples") == 0 ? 2
                          : strcmp(r->str, "user_data") == 0 ? 3 : 0;
        if ((which == 1 && have_users) || (which == 2 && have_ns) || (which == 3 && have_data)) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "duplicate key \"%s\"", r->str);
            goto out;
        }
        if (jr_expect(r, TK_COLON, "after a key") != 0 || jr_next(r) != 0)
            goto out;
        if (which == 0) {
            if (jr_skip(r, 1) != 0)
                goto out;
        } else if (which == 1 || which == 2) {
            if (which == 1) {
                users_off = r->tok_off;
                users_line = r->tok_line;
            } else {
                ns_off = r->tok_off;
                ns_line = r->tok_line;
            }
            if (r->tok != TK_LBRACK) {
                jr_fail(r, FL_ERR_DATASET_FORMAT, "\"%s\" must be a list",
                        which == 1 ? "users" : "num_samples");
                goto out;
            }
            int e = jr_first(r, TK_RBRACK);
            while (e == 0) {
                if (which == 1) {
                    if (r->tok != TK_STRING) {
                        jr_fail(r, FL_ERR_DATASET_FORMAT, "users: expected a string, found %s",
                                tk_name[r->tok]);
                        goto out;
                    }
                    if (n_list == cap_list) {
                        cap_list = cap_list ? 2 * cap_list : 64;
                        char **nl = realloc(list, cap_list * sizeof *nl);
                        if (!nl) {
                            jr_fail(r, FL_ERR_NOMEM, "out of memory");
                            goto out;
                        }
                        list = nl;
                    }
                    if (!(list[n_list] = strdup(r->str))) {
                        jr_fail(r, FL_ERR_NOMEM, "out of memory");
                        goto out;
                    }
                    n_list++;
                } else {
                    if (r->tok != TK_NUMBER || !(r->num >= 0.0 && r->num <= 4294967295.0) ||
                        r->num != floor(r->num)) {
                        jr_fail(r, FL_ERR_DATASET_FORMAT,
                                "num_samples: expected a non-negative integer");
                        goto out;
                    }
                    if (n_ns == cap_ns) {
                        cap_ns = cap_ns ? 2 * cap_ns : 64;
                        int64_t *nn = realloc(ns, cap_ns * sizeof *nn);
                        if (!nn) {
                            jr_fail(r, FL_ERR_NOMEM, "out of memory");
                            goto out;
                        }
                        ns = nn;
                    }
                    ns[n_ns++] = (int64_t)r->num;
                }
                e = jr_more(r, TK_RBRACK, "in a list");
            }
            if (e < 0)
                goto out;
            if (which == 1)
                have_users = 1;
            else
                have_ns = 1;
        } else {
            if (r->tok != TK_LBRACE) {
                jr_fail(r, FL_ERR_DATASET_FORMAT, "\"user_data\" must be an object");
                goto out;
            }
            int e = jr_first(r, TK_RBRACE);
            while (e == 0) {
                if (r->tok != TK_STRING) {
                    jr_fail(r, FL_ERR_DATASET_FORMAT, "expected a user name, found %s",
                            tk_name[r->tok]);
                    goto out;
                }
                if (user_find(a, r->str) >= 0) {
                    jr_fail(r, FL_ERR_DATASET_FORMAT, "user \"%s\" appears twice", r->str);
                    goto out;
                }
                if (user_add(r, a, r->str) != 0)
                    goto out;
                if (jr_expect(r, TK_COLON, "after a user name") != 0 || jr_next(r) != 0 ||
                    parse_user(r, a, (uint32_t)(a->n_users - 1)) != 0)
                    goto out;
                e = jr_more(r, TK_RBRACE, "in user_data");
            }
            if (e < 0)
                goto out;
            have_data = 1;
        }
        k = jr_more(r, TK_RBRACE, "in the top-level object");
    }
    if (k < 0)
        goto out;
    if (jr_next(r) != 0)
        goto out;
    if (r->tok != TK_EOF) {
        jr_fail(r, FL_ERR_DATASET_FORMAT, "data after the top-level object");
        goto out;
    }
    if (!have_data) {
        jr_fail(r, FL_ERR_DATASET_FORMAT, "no \"user_data\" object");
        goto out;
    }
    /* Cross-checks, reported at the list they concern. */
    const size_t n_file = a->n_users - first_user;
    if (have_users) {
        r->tok_off = users_off;
        r->tok_line = users_line;
        if (n_list != n_file) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "users lists %zu users but user_data has %zu",
                    n_list, n_file);
            goto out;
        }
        uint8_t *seen = calloc(n_file ? n_file : 1, 1);
        if (!seen) {
            jr_fail(r, FL_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n_list; i++) {
            const long u = user_find(a, list[i]);
            const char *why = u < (long)first_user ? "listed but not in user_data"
                              : seen[u - (long)first_user] ? "listed twice" : NULL;
            if (why) {
                jr_fail(r, FL_ERR_DATASET_FORMAT, "user \"%s\" %s", list[i], why);
                free(seen);
                goto out;
            }
            seen[u - (long)first_user] = 1;
        }
        free(seen);
    }
    if (have_ns) {
        r->tok_off = ns_off;
        r->tok_line = ns_line;
        if (n_ns != n_file) {
            jr_fail(r, FL_ERR_DATASET_FORMAT, "num_samples has %zu entries for %zu users", n_ns,
                    n_file);
            goto out;
        }
        for (size_t i = 0; i < n_ns; i++) {
            /* Matched by name through "users" when present, else by user_data order. */
            const size_t u = have_users ? (size_t)user_find(a, list[i]) : first_user + i;
            if ((uint64_t)ns[i] != a->count[u]) {
                jr_fail(r, FL_ERR_DATASET_FORMAT,
                        "num_samples says %lld for user \"%s\" but it has %zu samples",
                        (long long)ns[i], a->names[u], a->count[u]);
                goto out;
            }
        }
    }
    rc = 0;
out:
    for (size_t i = 0; i < n_list; i++)
        free(list[i]);
    free(list);
    free(ns);
    return rc;
}

static void acc_free(leaf_acc *a)
{
    free(a->x);
    free(a->tokens);
    free(a->y);
    free(a->user);
    for (size_t u = 0; u < a->n_users; u++)
        free(a->names[u]);
    free(a->names);
    free(a->count);
    free(a->hash);
}

/* Moves the accumulated samples into a dataset (arrays shrunk to size). */
static fl_status acc_finish(leaf_acc *a, flm_dataset **out)
{
    flm_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return FL_ERR_NOMEM;
    if (a->kind == FLM_LEAF_FEMNIST) {
        ds->kind = FLM_DATA_FLOAT;
        ds->C = 1;
        ds->H = ds->W = 28;
        ds->classes = FLM_LEAF_FEMNIST_CLASSES;
    } else {
        ds->kind = FLM_DATA_TOKENS;
        ds->C = ds->W = 1;
        ds->H = FLM_LEAF_SEQ_LEN;
        ds->classes = FLM_LEAF_VOCAB;
    }
    /* the grown arrays handed over, then shrunk to the samples read (an empty set gets blocks of
     * one sample, as flm_dataset_new gives) */
    ds->x = a->x;
    ds->tokens = a->tokens;
    ds->y = a->y;
    ds->user = a->user;
    ds->N = a->ny;
    ds->sample_len = a->L;
    ds->users = a->names;
    ds->n_users = a->n_users;
    a->x = NULL;
    a->tokens = NULL;
    a->y = NULL;
    a->user = NULL;
    a->names = NULL;
    a->n_users = 0;
    (void)flm_dataset_keep(ds, NULL, ds->N); /* cannot fail: the first N of N */
    if ((!ds->x && !ds->tokens) || !ds->y || !ds->user || !ds->users) {
        flm_dataset_free(ds);
        return FL_ERR_NOMEM;
    }
    *out = ds;
    return FL_OK;
}

static void acc_init(leaf_acc *a, flm_leaf_kind kind)
{
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->L = kind == FLM_LEAF_FEMNIST ? FEMNIST_PIXELS : FLM_LEAF_SEQ_LEN;
    for (uint32_t c = 0; c < 128; c++)
        a->ascii_tok[c] = flm_leaf_char_token(c);
}

/* Runs parse_doc, and makes sure a dataset with no users still owns a (0-entry) user table. */
static fl_status leaf_run(jr *r, leaf_acc *a)
{
    if (parse_doc(r, a) != 0)
        return r->st != FL_OK ? r->st : FL_ERR_INTERNAL;
    return FL_OK;
}

static fl_status leaf_done(leaf_acc *a, flm_dataset **out, char *err, size_t errlen)
{
    if (!a->names) {
        a->names = calloc(1, sizeof *a->names);
        if (!a->names)
            return FL_ERR_NOMEM;
    }
    const fl_status st = acc_finish(a, out);
    if (st != FL_OK && err && errlen)
        snprintf(err, errlen, "out of memory");
    return st;
}

fl_status flm_leaf_load(flm_dataset **out, flm_leaf_kind kind, const char *const *paths,
                        size_t n_paths, char *err, size_t errlen)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if ((kind != FLM_LEAF_FEMNIST && kind != FLM_LEAF_SHAKESPEARE) || !paths || n_paths == 0)
        return FL_ERR_INVALID_ARG;
    leaf_acc a;
    acc_init(&a, kind);
    uint8_t *buf = malloc(JR_BUF);
    if (!buf)
        return FL_ERR_NOMEM;
    fl_status st = FL_OK;
    for (size_t i = 0; i < n_paths && st == FL_OK; i++) {
        if (!paths[i]) {
            st = FL_ERR_INVALID_ARG;
            break;
        }
        jr r;
        memset(&r, 0, sizeof r);
        r.name = paths[i];
        r.line = r.tok_line = 1;
        r.buf = buf;
        r.data = buf;
        r.err = err;
        r.errlen = errlen;
        errno = 0;
        r.f = fopen(paths[i], "rb");
        if (!r.f) {
            if (err && errlen)
                snprintf(err, errlen, "%s: cannot open: %s", paths[i], strerror(errno));
            st = FL_ERR_DATASET_IO;
            break;
        }
        st = leaf_run(&r, &a);
        fclose(r.f);
        free(r.str);
    }
    free(buf);
    if (st == FL_OK)
        st = leaf_done(&a, out, err, errlen);
    acc_free(&a);
    return st;
}

fl_status flm_leaf_load_mem(flm_dataset **out, flm_leaf_kind kind, const uint8_t *json,
                            size_t len, char *err, size_t errlen)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if ((kind != FLM_LEAF_FEMNIST && kind != FLM_LEAF_SHAKESPEARE) || (!json && len))
        return FL_ERR_INVALID_ARG;
    leaf_acc a;
    acc_init(&a, kind);
    jr r;
    memset(&r, 0, sizeof r);
    r.name = "json";
    r.line = r.tok_line = 1;
    r.data = json;
    r.len = len;
    r.err = err;
    r.errlen = errlen;
    fl_status st = leaf_run(&r, &a);
    free(r.str);
    if (st == FL_OK)
        st = leaf_done(&a, out, err, errlen);
    acc_free(&a);
    return st;
}
