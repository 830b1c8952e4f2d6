/* fuzz_keyfile: the CURVE key-file reader of common/ (fl_keyfile.h) on arbitrary bytes, from
 * memory (fl_key_text_parse) and from a file (fl_key_file_read, through a memfd), for each kind
 * wanted. Never a crash or a leak; a refusal comes with a message; a key read is 40 Z85
 * characters that stand in the input, on its only line that is not blank or a comment, that
 * libzmq's own decoder accepts, and that the file reader reads the same. fl_z85_key_decode is
 * also checked against zmq_z85_decode. */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_keyfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fl_z85_key_decode and libzmq agree on every 40 bytes without a NUL. */
static void check_decode(const uint8_t *s)
{
    char z[FL_KEY_Z85_LEN + 1];
    memcpy(z, s, FL_KEY_Z85_LEN);
    z[FL_KEY_Z85_LEN] = 0;
    if (strlen(z) != FL_KEY_Z85_LEN)
        return;
    uint8_t mine[32], theirs[32];
    const int ok = fl_z85_key_decode(mine, z, FL_KEY_Z85_LEN);
    if (ok != (zmq_z85_decode(theirs, z) != NULL))
        abort();
    if (ok && memcmp(mine, theirs, 32) != 0)
        abort();
}

/* The lines of text that are neither blank nor a comment, as the reader splits them. */
static size_t key_lines(const char *text, size_t len)
{
    size_t pos = fl_key_text_start(text, len), a, b, n = 0;
    while (fl_key_next_line(text, len, &pos, &a, &b))
        n += a != b;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    if (size >= FL_KEY_Z85_LEN)
        check_decode(data);
    static int fd = -2;
    if (fd == -2)
        fd = memfd_create("fuzz.key", 0);
    const int as_file = fd >= 0 && ftruncate(fd, 0) == 0 &&
                        pwrite(fd, data, size, 0) == (ssize_t)size;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    for (int w = FL_KEY_ANY; w <= FL_KEY_SECRET; w++) {
        const fl_key_kind want = (fl_key_kind)w;
        char z[FL_KEY_Z85_LEN + 1], err[512];
        fl_key_kind said = (fl_key_kind)7;
        memset(err, 'x', sizeof err);
        const fl_status st = fl_key_text_parse(text, size, "fuzz", want, z, &said, err, sizeof err);
        if (!memchr(err, 0, sizeof err))
            abort(); /* the message is always terminated */
        if (said != FL_KEY_ANY && said != FL_KEY_PUBLIC && said != FL_KEY_SECRET)
            abort();
        if (st == FL_OK) {
            uint8_t raw[32], zraw[32];
            if (strlen(z) != FL_KEY_Z85_LEN || !fl_z85_key_decode(raw, z, FL_KEY_Z85_LEN) ||
                !zmq_z85_decode(zraw, z) || memcmp(raw, zraw, 32) != 0)
                abort();
            if (!memmem(data, size, z, FL_KEY_Z85_LEN))
                abort();
            if (want != FL_KEY_ANY && said != FL_KEY_ANY && said != want)
                abort(); /* the wrong kind was let through */
            if (key_lines(text, size) != 1)
                abort(); /* a key file holds one key line: a second was ignored */
        } else if (st != FL_ERR_AUTH || strncmp(err, "fuzz:", 5) != 0) {
            abort();
        }
        if (!as_file || size > FL_KEYFILE_MAX_BYTES)
            continue;
        char fz[FL_KEY_Z85_LEN + 1], ferr[512];
        fl_key_kind fsaid = FL_KEY_ANY;
        const fl_status fst = fl_key_file_read(path, want, fz, &fsaid, ferr, sizeof ferr);
        if (fst != st || fsaid != said || (st == FL_OK && strcmp(fz, z) != 0))
            abort();
        if (fst != FL_OK && strncmp(ferr, path, strlen(path)) != 0)
            abort(); /* the message names the file */
    }
    return 0;
}
