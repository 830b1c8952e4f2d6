/* fl_fs.h: small file-system checks shared by the daemons and the simulator. */
#ifndef FL_FS_H
#define FL_FS_H

/* 0 if dir is a directory in which this process can create files (stat, S_ISDIR, access W|X,
 * then a probe file made and removed at once, since access() lets root pass where no file can be
 * made); otherwise the errno that says why (ENOTDIR when it is something else). */
int fl_dir_writable(const char *dir);

/* fl_dir_writable of the directory that would hold the file `path` ("." without a '/'). */
int fl_parent_writable(const char *path);

#endif
