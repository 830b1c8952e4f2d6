/* test_slow.h: TS, the factor on the wall-time windows of the tests whose outcome rests on this
 * thread answering within one (a session kept alive by beats it sends, under a liveness of a few
 * hundred ms, so that the tests run fast; a retry due after 300 ms unanswered). Under the
 * sanitizers, on a loaded 2-core host, a thread can stall longer than such a window, and the
 * other side then acts rightly on the silence. The ratios the tests check stay the same. */
#ifndef TEST_SLOW_H
#define TEST_SLOW_H

#if defined(__SANITIZE_THREAD__)
#define TS 3
#elif defined(__SANITIZE_ADDRESS__)
#define TS 2
#else
#define TS 1
#endif

#endif
