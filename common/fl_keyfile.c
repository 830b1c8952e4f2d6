/* fl_keyfile.c: CURVE key files (see fl_keyfile.h). Strict: the first line that is not blank or a
 * comment must be the key, and the only such line, so a damaged file is refused with its line
 * number rather than read as "no key" or as another key. */
#include "fl_keyfile.h"

#include <stdlib.h>
#include <string.h>

#include "fl_fs.h"

/* The Z85 digit of c (0..84), -1 if c is not one. */
static int z85_digit(char c)
{
    static const char alpha[] =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    const char *p = c ? strchr(alpha, c) : NULL;
    return p ? (int)(p - alpha) : -1;
}

int fl_z85_key_decode(uint8_t out[32], const char *s, size_t len)
{
    if (!s || len != FL_KEY_Z85_LEN)
        return 0;
    for (size_t g = 0; g < FL_KEY_Z85_LEN / 5; g++) {
        uint64_t v = 0;
        for (size_t i = 0; i < 5; i++) {
            const int d = z85_digit(s[5 * g + i]);
            if (d < 0)
                return 0;
            v = v * 85 + (uint64_t)d;
        }
        /* 5 digits reach 85^5 - 1 > 2^32 - 1: such a group is no encoding of 4 bytes */
        if (v > UINT32_MAX)
            return 0;
        for (size_t i = 0; i < 4; i++)
            out[4 * g + i] = (uint8_t)(v >> (24 - 8 * i));
    }
    return 1;
}

size_t fl_key_text_start(const char *text, size_t len)
{
    return text && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

int fl_key_next_line(const char *text, size_t len, size_t *pos, size_t *a, size_t *b)
{
    if (*pos >= len)
        return 0;
    size_t s = *pos, e = s;
    while (e < len && text[e] != '\n')
        e++;
    *pos = e + 1;
    /* '#' is also a Z85 character: a comment starts the line or follows a blank. A key never
     * starts with '#' (Z85 digit 84 cannot lead a group: 84 * 85^4 > 2^32 - 1) and holds no
     * blank, so no key is ever mistaken for a comment. */
    size_t hash = s;
    while (hash < e && !(text[hash] == '#' &&
                         (hash == s || text[hash - 1] == ' ' || text[hash - 1] == '\t')))
        hash++;
    e = hash;
    while (s < e && (text[s] == ' ' || text[s] == '\t' || text[s] == '\r'))
        s++;
    while (e > s && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r'))
        e--;
    *a = s;
    *b = e;
    return 1;
}

fl_key_kind fl_key_header_kind(const char *line, size_t len)
{
    /* keygen's header only: "# fedrop CURVE public key ..." after any blanks. A comment of one's
     * own that mentions a public key ("its CURVE public key is in x.pub") says nothing. */
    static const char pub[] = "# fedrop CURVE public key", sec[] = "# fedrop CURVE secret key";
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    line += i;
    len -= i;
    if (len >= sizeof pub - 1 && memcmp(line, pub, sizeof pub - 1) == 0)
        return FL_KEY_PUBLIC;
    if (len >= sizeof sec - 1 && memcmp(line, sec, sizeof sec - 1) == 0)
        return FL_KEY_SECRET;
    return FL_KEY_ANY;
}

const char *fl_key_kind_name(fl_key_kind k)
{
    return k == FL_KEY_PUBLIC ? "public" : k == FL_KEY_SECRET ? "secret" : "any";
}

fl_status fl_key_text_parse(const char *text, size_t len, const char *name, fl_key_kind want,
                            char z85[FL_KEY_Z85_LEN + 1], fl_key_kind *said, char *err,
                            size_t errlen)
{
    if (said)
        *said = FL_KEY_ANY;
    if (!z85 || (!text && len))
        return FL_ERR_INVALID_ARG;
    if (!text)
        text = ""; /* len is 0: no key in it */
    if (!name)
        name = "key file";
    size_t pos = fl_key_text_start(text, len), a, b, line = 0;
    fl_key_kind header = FL_KEY_ANY;
    fl_status st = fl_errf(err, errlen, FL_ERR_AUTH, "%s: no key in the file", name);
    for (size_t start = pos; fl_key_next_line(text, len, &pos, &a, &b); start = pos) {
        line++;
        if (a == b) {
            const fl_key_kind k = fl_key_header_kind(text + start, (pos < len ? pos : len) - start);
            if (k != FL_KEY_ANY)
                header = k;
            continue;
        }
        uint8_t raw[32];
        const int decoded = fl_z85_key_decode(raw, text + a, b - a);
        explicit_bzero(raw, sizeof raw); /* decoded to be checked only: a secret key's bytes */
        if (!decoded) {
            st = fl_errf(err, errlen, FL_ERR_AUTH, "%s:%zu: not a 40-character Z85 key", name,
                         line);
        } else if (want != FL_KEY_ANY && header != FL_KEY_ANY && header != want) {
            /* Any 32 bytes are a valid secret key: a public key taken for one would start a
             * server with another identity that no client can authenticate. */
            st = fl_errf(err, errlen, FL_ERR_AUTH, "%s: a %s key file (its header says so), where "
                         "a %s key is needed", name, fl_key_kind_name(header),
                         fl_key_kind_name(want));
        } else {
            /* The key must be the file's only one: a second (two key files joined, an
             * allow-list given as a key file, an old key left above a new one) was ignored, and
             * the first, maybe the wrong one, taken without a word. Comments may follow. */
            const size_t key = a;
            st = FL_OK;
            while (fl_key_next_line(text, len, &pos, &a, &b)) {
                line++;
                if (a != b) {
                    st = fl_errf(err, errlen, FL_ERR_AUTH, "%s:%zu: a line after the key (a key "
                                 "file holds one key: two files joined, or an allow-list?)",
                                 name, line);
                    break;
                }
            }
            if (st == FL_OK) {
                memcpy(z85, text + key, FL_KEY_Z85_LEN);
                z85[FL_KEY_Z85_LEN] = 0;
            }
        }
        break;
    }
    if (said)
        *said = header;
    return st;
}

fl_status fl_key_file_read(const char *path, fl_key_kind want, char z85[FL_KEY_Z85_LEN + 1],
                           fl_key_kind *said, char *err, size_t errlen)
{
    if (said)
        *said = FL_KEY_ANY;
    if (!path || !z85)
        return FL_ERR_INVALID_ARG;
    char *text = NULL;
    size_t len = 0;
    fl_status st = fl_file_read_regular(path, FL_KEYFILE_MAX_BYTES, &text, &len, err, errlen);
    if (st != FL_OK)
        return st;
    st = fl_key_text_parse(text, len, path, want, z85, said, err, errlen);
    explicit_bzero(text, len); /* it may hold a secret key */
    free(text);
    return st;
}
