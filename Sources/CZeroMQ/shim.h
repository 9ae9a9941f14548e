#ifndef LOOM_CZEROMQ_SHIM_H
#define LOOM_CZEROMQ_SHIM_H
// Loom's view of libzmq (Debian's libzmq3-dev, 4.3).
#include <zmq.h>
#include <stdlib.h>

// zmq_msg_t is an opaque 64-byte struct; these helpers keep Swift away from its layout.
static inline zmq_msg_t *loom_zmq_msg_new(void) { return (zmq_msg_t *)calloc(1, sizeof(zmq_msg_t)); }
static inline void loom_zmq_msg_delete(zmq_msg_t *m) { zmq_msg_close(m); free(m); }
// The free function libzmq calls when it is done with a buffer Loom handed over (malloc'ed).
static inline void loom_zmq_free(void *data, void *hint) { (void)hint; free(data); }
static inline int loom_zmq_msg_init_owned(zmq_msg_t *m, void *data, size_t size) {
    return zmq_msg_init_data(m, data, size, loom_zmq_free, NULL);
}
#endif
