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

/* A fresh, zeroed index for an open-addressing hash table of uint32 entries (0 = empty): the
 * smallest power of two of at least `slots` entries, and at least 64. It replaces *t (freed) and
 * *mask (its size - 1). FL_OK, or FL_ERR_NOMEM with *t and *mask unchanged. */
fl_status fl_index_new(uint32_t **t, size_t *mask, size_t slots);

/* The memory this machine can give now, in bytes: /proc/meminfo's MemAvailable (free memory and
 * the caches it can drop), at most the physical memory; the physical memory where MemAvailable is
 * not to be read; 0 when neither is known. *total (may be NULL) gets the physical memory (0 when
 * unknown). */
double fl_mem_available(double *total);

#endif
