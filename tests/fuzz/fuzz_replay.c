/* fuzz_replay.c: runs a libFuzzer target without libFuzzer, so that every corpus entry (seeds and
 * past findings) is re-checked by plain `meson test`, under any compiler and sanitizer.
 *
 *   replay_<name> DIR_OR_FILE... [--mutations N]
 *
 * Each file is fed as is, then N deterministic mutations of it (bit flips, byte overwrites,
 * truncations, extensions, splices of interesting values) drawn from a fixed-seed counter-based
 * stream: the same inputs on every run, so a failure here always reproduces. Exits non-zero if
 * no input was found (a test that checks nothing must not pass).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fl_rng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long g_inputs;
static long g_mutations = 0;

static void mutate_and_run(const uint8_t *data, size_t n, uint32_t file_no)
{
    const size_t cap = n + 64;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf)
        return;
    static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x10, 0x12, 0x1a, 0x22};
    for (long m = 0; m < g_mutations; m++) {
        fl_rng r = fl_rng_stream(0xF0220u, file_no, (uint32_t)m, FL_RNG_TEST);
        size_t len = n;
        if (n)
            memcpy(buf, data, n);
        const unsigned edits = 1 + fl_rng_below(&r, 4);
        for (unsigned e = 0; e < edits; e++) {
            switch (fl_rng_below(&r, 6)) {
            case 0: /* flip a bit */
                if (len)
                    buf[fl_rng_below(&r, (uint32_t)len)] ^= (uint8_t)(1u << fl_rng_below(&r, 8));
                break;
            case 1: /* overwrite a byte with a random one */
                if (len)
                    buf[fl_rng_below(&r, (uint32_t)len)] = (uint8_t)fl_rng_u32(&r);
                break;
            case 2: /* overwrite a byte with an interesting one */
                if (len)
                    buf[fl_rng_below(&r, (uint32_t)len)] =
                        interesting[fl_rng_below(&r, sizeof interesting)];
                break;
            case 3: /* truncate */
                if (len)
                    len = fl_rng_below(&r, (uint32_t)len);
                break;
            case 4: /* append random bytes */
                while (len < cap && fl_rng_below(&r, 8) != 0)
                    buf[len++] = (uint8_t)fl_rng_u32(&r);
                break;
            case 5: /* copy a block within the input */
                if (len > 2) {
                    const size_t a = fl_rng_below(&r, (uint32_t)len);
                    const size_t b = fl_rng_below(&r, (uint32_t)len);
                    size_t k = 1 + fl_rng_below(&r, 16);
                    if (a + k > len) k = len - a;
                    if (b + k > len) k = len - b;
                    memmove(buf + b, buf + a, k);
                }
                break;
            }
        }
        LLVMFuzzerTestOneInput(buf, len);
        g_inputs++;
    }
    free(buf);
}

static int run_file(const char *path, uint32_t file_no)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(n > 0 ? (size_t)n : 1);
    if (!data || (n > 0 && fread(data, 1, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, (size_t)n);
    g_inputs++;
    mutate_and_run(data, (size_t)n, file_no);
    free(data);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path, uint32_t *file_no)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: no such file or directory: %s\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path, (*file_no)++);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    char **names = NULL;
    size_t count = 0, capn = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (count == capn) {
            capn = capn ? 2 * capn : 64;
            char **nn = realloc(names, capn * sizeof *names);
            if (!nn)
                break;
            names = nn;
        }
        names[count++] = strdup(e->d_name);
    }
    closedir(d);
    /* Sorted, so that mutation streams are tied to the same files on every machine. */
    qsort(names, count, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, names[i]);
        if (run_path(full, file_no) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;
    uint32_t file_no = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mutations") == 0 && i + 1 < argc) {
            g_mutations = atol(argv[++i]);
            continue;
        }
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mutations") == 0) {
            i++;
            continue;
        }
        if (run_path(argv[i], &file_no) != 0)
            rc = 1;
    }
    printf("replayed %ld inputs from %u files\n", g_inputs, file_no);
    if (file_no == 0) {
        fprintf(stderr, "replay: no corpus files found\n");
        return 1;
    }
    return rc;
}
