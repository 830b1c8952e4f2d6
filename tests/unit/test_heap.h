/* test_heap.h: heap_in_use, glibc's bytes of heap in use (mallinfo2), for the tests that hold a
 * per-object memory figure a host multiplies by its clients to what the objects really take. 0
 * where it cannot be read (another libc, or a sanitizer's allocator, which answers 0): a test
 * skips its check then. */
#ifndef TEST_HEAP_H
#define TEST_HEAP_H

#include <malloc.h>
#include <stddef.h>

static inline size_t heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

#endif
