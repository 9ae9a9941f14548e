#ifndef LOOM_CZEROMQ_H
#define LOOM_CZEROMQ_H
// Loom's view of libzmq (Debian's libzmq3-dev at build time, libzmq5 at run time).
//
// The binary does not link libzmq: loader.c opens libzmq.so.5 with dlopen the first time a
// socket is needed and defines each zmq_* function Loom calls as a forward to it. A node
// without libzmq5 then gets one line naming the package, not the dynamic loader's refusal
// before main, and `loom run` / `loom inspect` in one process need no libzmq at all.
#include <zmq.h>
#include <stdlib.h>

/// Loads libzmq if it is not loaded yet. 0 on success; -1 with the reason in loom_zmq_error().
int loom_zmq_load(void);
/// Why loom_zmq_load failed: one line naming the library and the package to install.
const char *loom_zmq_error(void);

// zmq_msg_t is an opaque 64-byte struct; these helpers keep Swift away from its layout.
static inline zmq_msg_t *loom_zmq_msg_new(void) { return (zmq_msg_t *)calloc(1, sizeof(zmq_msg_t)); }
static inline void loom_zmq_msg_delete(zmq_msg_t *m) { zmq_msg_close(m); free(m); }
// The free function libzmq calls when it is done with a buffer Loom handed over (malloc'ed).
static inline void loom_zmq_free(void *data, void *hint) { (void)hint; free(data); }
static inline int loom_zmq_msg_init_owned(zmq_msg_t *m, void *data, size_t size) {
    return zmq_msg_init_data(m, data, size, loom_zmq_free, NULL);
}
#endif
