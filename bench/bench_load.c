/* bench_load: how long fedrop takes to load an IDX dataset (Fashion-MNIST's training set by
 * default: 60,000 gzipped 28x28 images, 26 MB of gzip for 47 MB of pixels and 188 MB of floats),
 * beside the bare inflate of the same two files in the same run.
 *
 *   bench_load [--images FILE --labels FILE] [--reps R]
 *
 * Ours: flm_idx_load (what fl_sim, fl_client and fl_server's evaluation set go through): inflate,
 * check, and the pixels turned into floats p / 255 in an array that grows as they arrive.
 * Peer: zlib's gzread of both files into a 64 KB buffer, nothing kept: the floor of any reader of
 * these gzip streams (one stream each, so one core). The two alternate R times (ours, the peer,
 * ours, ...) after one untimed load of each, so that both meet the same stretches of a shared
 * machine's load and the files are in the page cache for both. Figures: medians of wall time
 * (least and greatest beside), and the minor page faults a load takes (getrusage): on a
 * paravirtualised host each fault of a fresh 4 KiB page costs far more than writing it, which is
 * why the loader asks for huge pages (fl_advise_huge: one fault per 2 MiB, which this count
 * shows) and prefaults each chunk in one call (fl_prefault_write: its pages still count here, as
 * faults taken inside that call).
 * LAST line: load_s=<median> inflate_s=<median> ratio=<load / inflate> minflt=<median faults a load>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>

#include "bench_stat.h"
#include "flm_data.h"
#include "fl_time.h"

static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* The bytes a gzip (or plain) file inflates to, read and dropped; -1 when it cannot be read. */
static long long inflate_file(const char *path, unsigned char *buf, unsigned cap)
{
    gzFile g = gzopen(path, "rb");
    if (!g)
        return -1;
    gzbuffer(g, 65536);
    long long total = 0;
    int r;
    while ((r = gzread(g, buf, cap)) > 0)
        total += r;
    gzclose(g);
    return r < 0 ? -1 : total;
}

int main(int argc, char **argv)
{
    const char *dir = getenv("FEDROP_DATA_DIR");
    char ipath[4096], lpath[4096];
    snprintf(ipath, sizeof ipath, "%s/train-images-idx3-ubyte.gz",
             dir && *dir ? dir : "/usr/share/datasets/fashion-mnist");
    snprintf(lpath, sizeof lpath, "%s/train-labels-idx1-ubyte.gz",
             dir && *dir ? dir : "/usr/share/datasets/fashion-mnist");
    int reps = 7;
    static const char usage[] =
        "usage: bench_load [--images FILE --labels FILE] [--reps R (7)]\n"
        "Loads an IDX dataset (default: Fashion-MNIST's training set, from\n"
        "$FEDROP_DATA_DIR or /usr/share/datasets/fashion-mnist) with flm_idx_load,\n"
        "alternated with the bare inflate of the same files (the peer). Last line:\n"
        "load_s=<median> inflate_s=<median> ratio=<f> minflt=<median>\n";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--images") == 0 && i + 1 < argc)
            snprintf(ipath, sizeof ipath, "%s", argv[++i]);
        else if (strcmp(argv[i], "--labels") == 0 && i + 1 < argc)
            snprintf(lpath, sizeof lpath, "%s", argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (reps < 1 || reps > 1000) {
        fprintf(stderr, "bench_load: --reps must be 1 .. 1000\n");
        return 2;
    }
    unsigned char *buf = malloc(65536);
    double *t_load = calloc((size_t)reps, sizeof *t_load);
    double *t_peer = calloc((size_t)reps, sizeof *t_peer);
    double *f_load = calloc((size_t)reps, sizeof *f_load);
    if (!buf || !t_load || !t_peer || !f_load) {
        fprintf(stderr, "bench_load: out of memory\n");
        return 1;
    }
    char err[512];
    size_t n = 0, len = 0;
    for (int r = -1; r < reps; r++) { /* r = -1: untimed, warms the page cache */
        flm_dataset *ds = NULL;
        const long f0 = minflt();
        const double t0 = fl_time_mono_s();
        const fl_status st = flm_idx_load(&ds, ipath, lpath, 10, err, sizeof err);
        const double t1 = fl_time_mono_s();
        const long f1 = minflt();
        if (st != FL_OK) {
            fprintf(stderr, "bench_load: %s\n", err);
            return 1;
        }
        n = ds->N;
        len = ds->sample_len;
        flm_dataset_free(ds);
        const double t2 = fl_time_mono_s();
        const long long bi = inflate_file(ipath, buf, 65536);
        const long long bl = inflate_file(lpath, buf, 65536);
        const double t3 = fl_time_mono_s();
        if (bi < 0 || bl < 0) {
            fprintf(stderr, "bench_load: the peer could not read %s\n", bi < 0 ? ipath : lpath);
            return 1;
        }
        if (r < 0)
            continue;
        t_load[r] = t1 - t0;
        t_peer[r] = t3 - t2;
        f_load[r] = (double)(f1 - f0);
        printf("rep %d: load %.3f s (%ld minor faults), inflate %.3f s\n", r + 1, t1 - t0,
               f1 - f0, t3 - t2);
    }
    const bench_stat L = bench_stat_of(t_load, reps), P = bench_stat_of(t_peer, reps),
                     F = bench_stat_of(f_load, reps);
    printf("%zu samples of %zu floats (%.0f MB as floats) from %s\n", n, len,
           (double)n * (double)len * 4 / 1e6, ipath);
    printf("ours (flm_idx_load): median %.3f s (%.3f-%.3f), %.0f minor faults a load\n", L.med,
           L.lo, L.hi, F.med);
    printf("peer (gzread of both files, nothing kept): median %.3f s (%.3f-%.3f)\n", P.med, P.lo,
           P.hi);
    printf("load_s=%.4f inflate_s=%.4f ratio=%.3f minflt=%.0f\n", L.med, P.med, L.med / P.med,
           F.med);
    free(buf);
    free(t_load);
    free(t_peer);
    free(f_load);
    return 0;
}
