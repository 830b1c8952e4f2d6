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

#endif
