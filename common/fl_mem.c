#include "fl_mem.h"
#include "fl_fs.h"
#include "fl_mem_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

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

/* The system's page size (4096 where sysconf cannot tell). */
static size_t page_size(void)
{
    const long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096;
}

/* What precedes a buffer of fl_big_alloc: the block's size and whether it is mapped, in 64 bytes
 * so that the buffer keeps the block's alignment. */
typedef struct big_head {
    size_t total;
    int mapped;
    unsigned char pad[64 - sizeof(size_t) - sizeof(int)];
} big_head;

/* A mapping of total bytes that starts on a 2 MiB boundary, offered to transparent huge pages
 * (MADV_HUGEPAGE: where THP is in "madvise" mode, Debian's default, only such ranges get them).
 * Each whole 2 MiB range inside it is then one page fault instead of 512: a client maps its
 * weights and update afresh every round (they leave between rounds), and on a paravirtualised
 * host a 4 KiB fault cost about as much as the bytes' own encoding (bench_server, 2026-12-04).
 * The kernel gives a huge page only to a 2 MiB range wholly inside the mapping, so the
 * resident size stays that of the pages touched, rounded to 2 MiB at most within the buffer.
 * NULL when the system has no room; a refused madvise (no THP) leaves ordinary pages. */
static void *map_huge(size_t total)
{
    /* munmap of the slack takes page-aligned ends */
    const size_t huge = (size_t)2 << 20, page = page_size();
    const size_t len = (total + page - 1) / page * page;
    if (len > SIZE_MAX - huge)
        return NULL;
    uint8_t *p = mmap(NULL, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                      0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *a = (uint8_t *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (p + len + huge > a + len)
        munmap(a + len, (size_t)(p + len + huge - (a + len)));
#ifdef MADV_HUGEPAGE
    (void)madvise(a, len, MADV_HUGEPAGE);
#endif
    return a;
}

void *fl_big_alloc(size_t n)
{
    if (n == 0 || n > SIZE_MAX - sizeof(big_head) - 4096)
        return NULL;
    const size_t total = n + sizeof(big_head);
    big_head *h;
    int mapped = 0;
    if (n >= FL_BIG_HUGE) {
        h = map_huge(total);
        if (!h)
            return NULL;
        mapped = 1;
    } else if (n >= FL_BIG_MAP) {
        void *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        h = p;
        mapped = 1;
    } else {
        void *p = NULL;
        if (posix_memalign(&p, 64, total) != 0)
            return NULL;
        memset(p, 0, total); /* a mapping's pages come zeroed */
        h = p;
    }
    h->total = total;
    h->mapped = mapped;
    return h + 1;
}

void fl_big_free(void *p)
{
    if (!p)
        return;
    big_head *h = (big_head *)p - 1;
    if (h->mapped)
        munmap(h, h->total);
    else
        free(h);
}

fl_status fl_big_room(void *pp, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return FL_OK;
    if (size == 0 || need > SIZE_MAX / size)
        return FL_ERR_NOMEM;
    void *p = fl_big_alloc(need * size);
    if (!p)
        return FL_ERR_NOMEM;
    void *old;
    memcpy(&old, pp, sizeof old);
    fl_big_free(old);
    memcpy(pp, &p, sizeof p);
    *cap = need;
    return FL_OK;
}

void fl_advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t pg = page_size(), huge = (uintptr_t)2 << 20;
    const uintptr_t a = (uintptr_t)p & ~(pg - 1);
    const uintptr_t e = ((uintptr_t)p + n + pg - 1) & ~(pg - 1);
    /* only a block that holds a whole 2 MiB-aligned huge page: a smaller one could get none, and
     * advising it (a piece of malloc's heap, say) would only split its mapping */
    if (p && n && ((a + huge - 1) & ~(huge - 1)) + huge <= e)
        (void)madvise((void *)a, (size_t)(e - a), MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

void fl_prefault_write(void *p, size_t n)
{
#ifdef MADV_POPULATE_WRITE
    const uintptr_t pg = page_size();
    const uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1);
    const uintptr_t e = ((uintptr_t)p + n) & ~(pg - 1);
    if (p && n && e > a)
        (void)madvise((void *)a, (size_t)(e - a), MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)n;
#endif
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

/* A decimal byte count, alone on its line (the kernel's "%llu\n"); 1 on success. */
static int parse_bytes(const char *s, double *out)
{
    if (*s < '0' || *s > '9')
        return 0;
    char *end;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || (*end != '\0' && strcmp(end, "\n") != 0))
        return 0;
    *out = (double)v;
    return 1;
}

int fl_cgroup_room(const char *max, const char *current, double *room)
{
    if (strcmp(max, "max") == 0 || strcmp(max, "max\n") == 0)
        return 0;
    double m, c;
    if (!parse_bytes(max, &m) || !parse_bytes(current, &c))
        return -1;
    *room = m > c ? m - c : 0.0;
    return 1;
}

/* The path of the first line of /proc/self/cgroup's text, "ID:CONTROLLERS:/PATH", that is the
 * v2 hierarchy's ("0::", no controllers) or, with v1, the one whose comma-separated
 * CONTROLLERS list memory. 1 with the path in out; 0 (out empty) when no line is, or the path does
 * not start with '/' or fit cap. */
static int cgroup_path(const char *text, int v1, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    for (const char *l = text; l && *l;) {
        const size_t len = strcspn(l, "\n");
        const char *c = memchr(l, ':', len);
        const char *p = c ? memchr(c + 1, ':', len - (size_t)(c + 1 - l)) : NULL;
        int match = 0;
        if (p && !v1)
            match = c == l + 1 && l[0] == '0' && p == c + 1;
        else if (p)
            for (const char *w = c + 1; w < p;) {
                const size_t n = strcspn(w, ",:");
                match |= n == 6 && strncmp(w, "memory", 6) == 0;
                w += n + (w[n] == ',');
            }
        if (match) {
            const size_t n = len - (size_t)(p + 1 - l);
            if (p[1] != '/' || n >= cap)
                return 0;
            memcpy(out, p + 1, n);
            out[n] = '\0';
            return 1;
        }
        l += len;
        if (*l)
            l++;
    }
    return 0;
}

int fl_cgroup_v2_path(const char *text, char *out, size_t cap)
{
    return cgroup_path(text, 0, out, cap);
}

int fl_cgroup_v1_memory_path(const char *text, char *out, size_t cap)
{
    return cgroup_path(text, 1, out, cap);
}

int fl_cgroup_v1_room(const char *limit, const char *usage, double *room)
{
    double m, c;
    if (!parse_bytes(limit, &m) || !parse_bytes(usage, &c))
        return -1;
    /* no limit reads as LONG_MAX rounded down to the page (9223372036854771712 with 4 KiB pages,
     * less with 64 KiB ones); no memory is that large, so anything from 2^62 up means none */
    if (m >= 4611686018427387904.0)
        return 0;
    *room = m > c ? m - c : 0.0;
    return 1;
}

/* The least room that cgroup path cg (changed: it is walked up to "/") and its ancestors under
 * root leave, each level's limit from its file lim and usage from its file use and room parsing
 * them as fl_cgroup_room does; each limit applies: a job's slice may hold the limit, the scope
 * inside it none. 1 with *room when some level has a limit, 0 when none does or none can be read.
 * With v1 (hier set) an ancestor whose memory.use_hierarchy reads 0 does not count this
 * process's memory, nor do those above it, and the walk ends there. */
static int cgroup_walk(const char *root, char *cg, const char *lim, const char *use,
                       int (*roomf)(const char *, const char *, double *), int hier,
                       double *room)
{
    char path[1200], max[64], cur[64];
    int limited = 0;
    for (int own = 1;; own = 0) {
        const char *sep = strcmp(cg, "/") == 0 ? "" : cg; /* the root: /sys/fs/cgroup/memory.max */
        double r;
        if (hier && !own) {
            snprintf(path, sizeof path, "%s%s/memory.use_hierarchy", root, sep);
            if (fl_read_small(path, cur, sizeof cur, NULL) > 0 && strcmp(cur, "0\n") == 0)
                break;
        }
        snprintf(path, sizeof path, "%s%s/%s", root, sep, lim);
        if (fl_read_small(path, max, sizeof max, NULL) > 0) {
            snprintf(path, sizeof path, "%s%s/%s", root, sep, use);
            if (fl_read_small(path, cur, sizeof cur, NULL) > 0 && roomf(max, cur, &r) == 1 &&
                (!limited || r < *room)) {
                *room = r;
                limited = 1;
            }
        }
        char *slash = strrchr(cg, '/');
        if (slash == cg && cg[1] == '\0')
            break;
        slash[slash == cg] = '\0'; /* "/a/b" -> "/a" -> "/" */
    }
    return limited;
}

/* The least room that this process's memory cgroups leave, each for the process's own cgroup and
 * its ancestors:
 * - cgroup v2's memory.max - memory.current, under /sys/fs/cgroup where that is the v2 hierarchy
 *   (its root's cgroup.controllers is there), else under /sys/fs/cgroup/unified: a hybrid host
 *   mounts v2 there, with the controllers that no v1 hierarchy took (the memory controller where
 *   v1's was left unmounted, cgroup_no_v1=memory); under /sys/fs/cgroup a hybrid host has no
 *   cgroup of that path. Swap does not count against memory.max (memory.swap.max is a limit of
 *   its own), so swap leaves memory.max's room as it is.
 * - cgroup v1's memory.limit_in_bytes - memory.usage_in_bytes under /sys/fs/cgroup/memory (a
 *   hybrid system, or an older one, keeps the memory controller in v1), and, where swap is
 *   accounted, memory.memsw.limit_in_bytes - memory.memsw.usage_in_bytes: memsw limits memory
 *   and swap together, so once the cgroup has more in swap than the two limits differ by (a
 *   Slurm job's ConstrainSwapSpace sets them equal) its memsw room is the smaller one, and an
 *   allocation beyond it cannot be swapped out of the way: the OOM killer ends the process.
 * 1 with *room when some level has a limit; 0 when none does or the hierarchies cannot be read. */
static int cgroup_room_least(double *room)
{
    char text[4096], cg[1024], probe[8];
    if (fl_read_small("/proc/self/cgroup", text, sizeof text, NULL) <= 0)
        return 0;
    int limited = 0;
    double r;
    const char *v2 = fl_read_small("/sys/fs/cgroup/cgroup.controllers", probe, sizeof probe,
                                   NULL) >= 0 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
    if (fl_cgroup_v2_path(text, cg, sizeof cg) &&
        cgroup_walk(v2, cg, "memory.max", "memory.current", fl_cgroup_room, 0, &r)) {
        *room = r;
        limited = 1;
    }
    static const char *const v1[2][2] = {
        {"memory.limit_in_bytes", "memory.usage_in_bytes"},
        {"memory.memsw.limit_in_bytes", "memory.memsw.usage_in_bytes"},
    };
    for (int k = 0; k < 2; k++)
        if (fl_cgroup_v1_memory_path(text, cg, sizeof cg) && /* the walk changes cg */
            cgroup_walk("/sys/fs/cgroup/memory", cg, v1[k][0], v1[k][1], fl_cgroup_v1_room, 1,
                        &r) &&
            (!limited || r < *room)) {
            *room = r;
            limited = 1;
        }
    return limited;
}

double fl_mem_available(double *total)
{
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    const double phys = pages > 0 && page > 0 ? (double)pages * (double)page : 0.0;
    if (total)
        *total = phys;
    double have = phys;
    FILE *mi = fopen("/proc/meminfo", "re"); /* close-on-exec, as every descriptor here */
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
    /* In a container, a systemd slice or a Slurm job the cgroup's limit is the one that counts:
     * the machine's MemAvailable may be many times what this process may take. */
    double room;
    if (cgroup_room_least(&room) && (room < have || have <= 0.0))
        have = room;
    return have;
}
