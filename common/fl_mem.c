#include "fl_mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

fl_status fl_grow(void *pp, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap)
        return FL_OK;
    if (size == 0)
        return FL_ERR_INVALID_ARG;
    size_t nc = *cap ? *cap : (first ? first : 1);
    while (nc < need) {
        if (nc > SIZE_MAX / 2)
            return FL_ERR_NOMEM;
        nc *= 2;
    }
    if (nc > SIZE_MAX / size)
        return FL_ERR_NOMEM;
    void *old;
    memcpy(&old, pp, sizeof old);
    void *p = realloc(old, nc * size);
    if (!p)
        return FL_ERR_NOMEM;
    memcpy(pp, &p, sizeof p);
    *cap = nc;
    return FL_OK;
}

fl_status fl_index_new(uint32_t **t, size_t *mask, size_t slots)
{
    size_t cap = 64;
    while (cap < slots) {
        if (cap > SIZE_MAX / 2 / sizeof **t)
            return FL_ERR_NOMEM;
        cap *= 2;
    }
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h)
        return FL_ERR_NOMEM;
    free(*t);
    *t = h;
    *mask = cap - 1;
    return FL_OK;
}

double fl_mem_available(double *total)
{
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    const double phys = pages > 0 && page > 0 ? (double)pages * (double)page : 0.0;
    if (total)
        *total = phys;
    double have = phys;
    FILE *mi = fopen("/proc/meminfo", "r");
    if (mi) {
        char line[128];
        unsigned long long kb;
        while (fgets(line, sizeof line, mi))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                if ((double)kb * 1024.0 < have || have <= 0.0)
                    have = (double)kb * 1024.0;
                break;
            }
        fclose(mi);
    }
    return have;
}
