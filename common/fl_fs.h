/* fl_fs.h: small file-system helpers shared by the daemons and the simulator. */
#ifndef FL_FS_H
#define FL_FS_H

#include <stddef.h>

#include "fl_status.h"

/* 0 if dir is a directory in which this process can create and remove files (stat, S_ISDIR,
 * access W|X, then a probe file ".fl-probe-XXXXXX" made and removed at once, since access() lets
 * root pass where no file can be made); otherwise the errno that says why (ENOTDIR when it is
 * something else). The probe changes the directory's mtime. */
int fl_dir_writable(const char *dir);

/* The directory that holds the file `path` into dir (cap bytes): its part before the last '/',
 * "/" for a file at the root, "." without a '/'. 0, or ENAMETOOLONG when it does not fit. */
int fl_path_dir(const char *path, char *dir, size_t cap);

/* fl_dir_writable of the directory that would hold the file `path` (fl_path_dir). */
int fl_parent_writable(const char *path);

/* Reads the whole file at path (a FIFO too) into *out, a malloc'd buffer the caller frees, and its
 * size into *len. A file of more than max bytes is refused without being read to its end. FL_OK;
 * FL_ERR_IO ("PATH: reason" in err: cannot open, read error, file too large); FL_ERR_NOMEM.
 * *out and *len are written only on FL_OK. */
fl_status fl_file_read(const char *path, size_t max, char **out, size_t *len, char *err,
                       size_t errlen);

#endif
