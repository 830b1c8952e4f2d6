#include "fl_time.h"

#include <time.h>

uint64_t fl_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double fl_time_mono_s(void)
{
    return (double)fl_time_mono_ns() * 1e-9;
}
