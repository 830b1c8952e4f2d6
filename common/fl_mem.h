/* fl_mem.h: growing an array by doubling. Every plain "append, doubling the capacity" site calls
 * this; loops with a twist keep their own (a ring buffer that unwraps as it grows, paired arrays
 * grown together, growth capped at a known total or a format's limit, hash tables rebuilt: their
 * index comes from fl_index_new). */
#ifndef FL_MEM_H
#define FL_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "fl_status.h"

/* Makes room for at least `need` elements of `size` bytes in the array *pp (a pointer to a T *)
 * of capacity *cap elements: the capacity doubles from `first` until it holds `need`; realloc
 * keeps the contents. FL_OK (nothing done when need <= *cap), or FL_ERR_NOMEM (also when the size
 * would overflow) with *pp and *cap unchanged. */
fl_status fl_grow(void *pp, size_t *cap, size_t need, size_t size, size_t first);

/* A large buffer that goes back to the system when freed, whatever the process's malloc does:
 * glibc keeps a freed block below its mmap threshold in its heap, and that threshold rises (up to
 * 32 MB) with each large block freed, so from the second round on a client's freed buffers of a
 * few MB stayed in the process (a library must not change the host's malloc settings, mallopt,
 * or trim its heap, malloc_trim). At least FL_BIG_MAP bytes come from an anonymous mmap (their
 * own pages, unmapped by fl_big_free); less from malloc. n bytes, zeroed, 64-byte aligned;
 * NULL when n is 0 or memory is short. */
#define FL_BIG_MAP ((size_t)1 << 20)
/* From FL_BIG_HUGE bytes on, the mapping starts on a 2 MiB boundary and asks for transparent huge
 * pages (madvise MADV_HUGEPAGE; a system without them gives ordinary pages). */
#define FL_BIG_HUGE ((size_t)4 << 20)
void *fl_big_alloc(size_t n);
/* Frees a buffer of fl_big_alloc (only those); NULL is a no-op. */
void fl_big_free(void *p);
/* Makes *pp (from fl_big_alloc, or NULL) hold at least need elements of size bytes, *cap
 * counting them: a fresh buffer when it does not (contents not kept: for buffers filled anew
 * each time). FL_OK, or FL_ERR_NOMEM with *pp and *cap unchanged. */
fl_status fl_big_room(void *pp, size_t *cap, size_t need, size_t size);

/* Two hints for a large array that malloc/realloc gave and that is about to be written once (a
 * dataset's samples): on a paravirtualised host a fault on a fresh 4 KiB page costs far more
 * than writing it, and Fashion-MNIST's 188 MB of floats took 46,000 of them (bench_load: 0.62-0.77
 * s a load, against 0.15-0.17 s for the inflate alone; 0.20-0.22 s with both hints). Neither changes the
 * contents, and where the kernel lacks the feature, or refuses it, nothing happens.
 *
 * fl_advise_huge offers the block [p, p + n) to transparent huge pages (madvise MADV_HUGEPAGE;
 * where THP is in "madvise" mode, Debian's default, only such ranges get them): every whole page
 * the block touches, so the block stays one mapping, and glibc's realloc of a large block can
 * still move it with mremap rather than copy it (an advice over the 2 MiB pages inside the block
 * alone split its mapping in three). The few bytes of the block's first and last pages that are
 * not its own take the advice too: a hint, harmless to them. Call it again after each realloc.
 * A block that holds no whole 2 MiB-aligned huge page is left alone: it could get none, and the
 * advice over a piece of malloc's heap would only split the heap's mapping.
 *
 * fl_prefault_write makes the whole pages inside [p, p + n) present and writable in one system
 * call (madvise MADV_POPULATE_WRITE, Linux 5.14 on) rather than a fault each as they are first
 * written; the pages at the two ends, which other data may share, are left to fault. */
void fl_advise_huge(void *p, size_t n);
void fl_prefault_write(void *p, size_t n);

/* A fresh, zeroed index for an open-addressing hash table of uint32 entries (0 = empty): the
 * smallest power of two of at least `slots` entries, and at least 64. It replaces *t (freed) and
 * *mask (its size - 1). FL_OK, or FL_ERR_NOMEM with *t and *mask unchanged. */
fl_status fl_index_new(uint32_t **t, size_t *mask, size_t slots);

/* The memory this machine can give now, in bytes: /proc/meminfo's MemAvailable (free memory and
 * the caches it can drop), at most the physical memory; the physical memory where MemAvailable is
 * not to be read; 0 when neither is known. Where this process's cgroup v2 (/proc/self/cgroup's
 * "0::" line, under /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host) or one of its
 * ancestors has a memory.max, or its cgroup v1 memory controller's cgroup (the line naming
 * "memory", under /sys/fs/cgroup/memory) or one of its ancestors has a memory.limit_in_bytes or,
 * with swap accounted, a memory.memsw.limit_in_bytes (memory and swap together), the least room
 * they leave (memory.max - memory.current, memory.limit_in_bytes - memory.usage_in_bytes,
 * memory.memsw.limit_in_bytes - memory.memsw.usage_in_bytes) when smaller: a container's, a
 * systemd slice's or a Slurm job's limit; a cgroup file that cannot be read or parsed counts as
 * no limit. *total (may be NULL) gets the physical memory (0 when unknown). */
double fl_mem_available(double *total);

#endif
