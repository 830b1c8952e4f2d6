/* fuzz_trace: the simulator's parsers of outside bytes (sim/flsim.h): the device / availability
 * trace CSV (flsim_trace_parse) and the YAML run configuration (flsim_config_parse_yaml); every
 * input goes to both. Trace: FL_OK with a well-formed trace (ids 0..n-1, finite rates of at least
 * FLSIM_RATE_MIN, availability in [0, 1], some client's above 0) or FL_ERR_TRACE_FORMAT with a reason that names a
 * line, a missing client, or says that no client is ever available. YAML: FL_OK with a configuration that still renders (and passes flsim_config_validate or fails it with a reason), or an error with a reason; read
 * from a file too (flsim_config_load_yaml, through a memfd), which rewrites the relative paths it
 * names beside the file. Never a crash, a leak or an unbounded allocation. */
#define _GNU_SOURCE /* memfd_create */
#include <math.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flsim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    flsim_trace *t = NULL;
    char err[256];
    const fl_status st = flsim_trace_parse(&t, (const char *)data, size, err, sizeof err);
    if (st == FL_OK) {
        if (!t || t->n == 0 || t->n > FLSIM_MAX_CLIENTS)
            abort();
        int some_on = 0;
        for (size_t i = 0; i < t->n; i++) {
            const flsim_trace_row *r = &t->rows[i];
            some_on |= r->availability > 0;
            if (!(r->flops >= FLSIM_RATE_MIN) || !(r->down_bps >= FLSIM_RATE_MIN) ||
                !(r->up_bps >= FLSIM_RATE_MIN) || !isfinite(r->flops) ||
                !isfinite(r->down_bps) || !isfinite(r->up_bps) || !(r->availability >= 0) ||
                !(r->availability <= 1))
                abort();
        }
        if (!some_on)
            abort();
        flsim_trace_free(t);
    } else {
        if (t)
            abort();
        if (st == FL_ERR_TRACE_FORMAT && strncmp(err, "line ", 5) != 0 && !strstr(err, "missing") &&
            !strstr(err, "availability is 0"))
            abort();
        if (st != FL_ERR_TRACE_FORMAT && st != FL_ERR_NOMEM)
            abort();
    }
    flsim_config c = flsim_config_default();
    err[0] = '\0';
    const fl_status ys = flsim_config_parse_yaml(&c, (const char *)data, size, "fuzz", err, sizeof err);
    if (ys != FL_OK && ys != FL_ERR_UNSUPPORTED && !err[0])
        abort();
    /* The checks made before anything loads (the dataset specs parsed dry among them): a
     * configuration error with a reason, or none; they read no file. */
    if (ys == FL_OK) {
        err[0] = '\0';
        const fl_status vs = flsim_config_validate(&c, err, sizeof err);
        if (vs != FL_OK && (vs != FL_ERR_CONFIG || !err[0]))
            abort();
    }
    char js[16384];
    if (flsim_config_json(&c, js, sizeof js) == 0)
        abort();
    /* The same bytes as a file, whose directory (/proc/self/fd) relative paths are joined to. */
    static int fd = -2;
    if (fd == -2)
        fd = memfd_create("fuzz.yaml", 0);
    if (fd >= 0 && ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        flsim_config f = flsim_config_default();
        err[0] = '\0';
        const fl_status fs = flsim_config_load_yaml(&f, path, err, sizeof err);
        if (fs != FL_OK && fs != FL_ERR_UNSUPPORTED && !err[0])
            abort();
        if (fs == FL_OK && (strlen(f.dataset) >= sizeof f.dataset ||
                            strlen(f.test_dataset) >= sizeof f.test_dataset))
            abort();
        if (flsim_config_json(&f, js, sizeof js) == 0)
            abort();
    }
    return 0;
}
