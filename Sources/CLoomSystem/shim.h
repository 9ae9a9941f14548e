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

#ifdef __GLIBC__
#include <malloc.h>
#endif

// Keeps buffers up to 1 GiB on glibc's heap (no fresh mmap for each large tensor) and freed
// memory in the process (no trimming). Returns 1 if both were accepted (always 0 off glibc).
static inline int loom_keep_heap(void) {
#ifdef __GLIBC__
    return mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
#else
    return 0;
#endif
}

#include <spawn.h>
#include <pthread.h>
#ifdef __linux__
int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
int pthread_setname_np(pthread_t thread, const char *name);
#endif

// Has a spawned child close every descriptor from `from` up (glibc 2.34's closefrom action).
// Returns 0, or an errno (ENOSYS off Linux).
static inline int loom_spawn_close_from(posix_spawn_file_actions_t *actions, int from) {
#ifdef __linux__
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
#else
    (void)actions; (void)from;
    return ENOSYS;
#endif
}

// Names the calling thread (at most 15 bytes show), for ps, top and debuggers.
static inline void loom_name_thread(const char *name) {
#ifdef __linux__
    pthread_setname_np(pthread_self(), name);
#else
    (void)name;
#endif
}
#endif
