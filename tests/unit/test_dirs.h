/* test_dirs.h: directory helpers shared by the unit tests (include after cmocka.h). */
#ifndef TEST_DIRS_H
#define TEST_DIRS_H

#include <dirent.h>
#include <string.h>

/* Entries in dir, "." and ".." aside. */
static inline int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

#endif
