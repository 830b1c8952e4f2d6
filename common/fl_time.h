/* fl_time.h: monotonic time for the daemons and benchmarks. The IO-free cores never call this:
 * time comes into them as an argument. */
#ifndef FL_TIME_H
#define FL_TIME_H

#include <stdint.h>

/* Nanoseconds since an arbitrary fixed point (CLOCK_MONOTONIC). Thread-safe. */
uint64_t fl_time_mono_ns(void);
/* Seconds, as a double, on the same clock. */
double fl_time_mono_s(void);

#endif
