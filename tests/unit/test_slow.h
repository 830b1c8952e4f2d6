/* test_slow.h: TS, the factor on the wall-time windows of the tests whose outcome rests on this
 * thread answering within one (a session kept alive by beats it sends, under a liveness of a few
 * hundred ms, so that the tests run fast; a retry due after 300 ms unanswered). Under the
 * sanitizers, on a loaded 2-core host, a thread can stall longer than such a window, and the
 * other side then acts rightly on the silence. The ratios the tests check stay the same. */
#ifndef TEST_SLOW_H
#define TEST_SLOW_H

/* gcc says which sanitizer with __SANITIZE_*__; clang (before 16 for TSan) with __has_feature */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) && !defined(__SANITIZE_THREAD__)
#define __SANITIZE_THREAD__ 1
#endif
#if __has_feature(address_sanitizer) && !defined(__SANITIZE_ADDRESS__)
#define __SANITIZE_ADDRESS__ 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define TS 3
#elif defined(__SANITIZE_ADDRESS__)
#define TS 2
#else
#define TS 1
#endif

#endif
