/* fl_mem_internal.h: the parsers behind fl_mem_available, for its tests (not installed). */
#ifndef FL_MEM_INTERNAL_H
#define FL_MEM_INTERNAL_H

#include <stddef.h>

/* The cgroup v2 path of a process from the text of its /proc/PID/cgroup: the "0::/PATH" line's
 * /PATH, without its newline, into out (cap bytes with the NUL). 1 on success; 0 (out "") when
 * there is no such line (cgroup v1 only), it is not an absolute path, or it does not fit. */
int fl_cgroup_v2_path(const char *text, char *out, size_t cap);

/* The room a cgroup v2 leaves, from the text of its memory.max and memory.current: max - current
 * bytes (0 where current is over max) in *room, and 1; 0 when max is "max" (no limit); -1 when
 * either text is not a decimal byte count (then no limit is to be assumed). */
int fl_cgroup_room(const char *max, const char *current, double *room);

/* The cgroup v1 memory controller's path of a process from the text of its /proc/PID/cgroup: the
 * /PATH of the "ID:CONTROLLERS:/PATH" line whose comma-separated CONTROLLERS hold "memory", into
 * out (cap bytes with the NUL). 1 on success; 0 (out "") when there is no such line (cgroup v2
 * only), it is not an absolute path, or it does not fit. */
int fl_cgroup_v1_memory_path(const char *text, char *out, size_t cap);

/* The room a cgroup v1 leaves, from the text of its memory.limit_in_bytes and
 * memory.usage_in_bytes: limit - usage bytes (0 where usage is over the limit) in *room, and 1;
 * 0 when the limit is 2^62 or more (none set reads as 2^63 - 1 rounded down to the page); -1 when
 * either text is not a decimal byte count (then no limit is to be assumed). */
int fl_cgroup_v1_room(const char *limit, const char *usage, double *room);

#endif
