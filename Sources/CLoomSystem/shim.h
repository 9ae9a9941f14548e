#ifndef LOOM_CLOOMSYSTEM_SHIM_H
#define LOOM_CLOOMSYSTEM_SHIM_H
// System calls Swift's Glibc module does not show (they are GNU extensions).
#include <sys/types.h>
#include <errno.h>

#ifdef __linux__
int fallocate(int fd, int mode, off_t offset, off_t len);
#endif

// Reserves the blocks of a file's first `length` bytes. Returns 0, or an errno; EOPNOTSUPP
// where the filesystem cannot (the file then stays sparse), ENOSPC when the disk is too full.
static inline int loom_reserve_blocks(int fd, off_t length) {
#ifdef __linux__
    return fallocate(fd, 0, 0, length) == 0 ? 0 : errno;
#else
    (void)fd; (void)length;
    return EOPNOTSUPP;
#endif
}
#endif
