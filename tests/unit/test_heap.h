/* test_heap.h: heap_in_use, glibc's bytes of heap in use (mallinfo2), for the tests that hold a
 * per-object memory figure a host multiplies by its clients to what the objects really take, or
 * that see what an operation holds beside the state. The blocks malloc gave from mappings of their
 * own (those of M_MMAP_THRESHOLD or more, which glibc moves as blocks are freed) count too, or a
 * large block would be seen or not by the order the tests ran in. 0 where it cannot be read
 * (another libc, or a sanitizer's allocator, which answers 0): a test skips its check then. */
#ifndef TEST_HEAP_H
#define TEST_HEAP_H

#include <malloc.h>
#include <stddef.h>

static inline size_t heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    const struct mallinfo2 m = mallinfo2();
    return m.uordblks ? m.uordblks + m.hblkhd : 0;
#else
    return 0;
#endif
}

#endif
