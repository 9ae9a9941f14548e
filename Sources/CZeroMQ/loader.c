// Loads libzmq at run time and forwards Loom's zmq_* calls to it; see include/CZeroMQ.h.
#include "CZeroMQ.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

// Every libzmq function Loom calls: return type, name, parameters, arguments.
#define LOOM_ZMQ_FUNCTIONS(X)                                                                           \
    X(void *, zmq_ctx_new, (void), ())                                                                  \
    X(int, zmq_ctx_term, (void *c), (c))                                                                \
    X(int, zmq_errno, (void), ())                                                                       \
    X(const char *, zmq_strerror, (int e), (e))                                                         \
    X(int, zmq_has, (const char *c), (c))                                                               \
    X(void *, zmq_socket, (void *c, int t), (c, t))                                                     \
    X(int, zmq_close, (void *s), (s))                                                                   \
    X(int, zmq_setsockopt, (void *s, int o, const void *v, size_t n), (s, o, v, n))                     \
    X(int, zmq_getsockopt, (void *s, int o, void *v, size_t *n), (s, o, v, n))                          \
    X(int, zmq_bind, (void *s, const char *a), (s, a))                                                  \
    X(int, zmq_connect, (void *s, const char *a), (s, a))                                               \
    X(int, zmq_socket_monitor, (void *s, const char *a, int e), (s, a, e))                              \
    X(int, zmq_poll, (zmq_pollitem_t *i, int n, long t), (i, n, t))                                     \
    X(int, zmq_msg_init, (zmq_msg_t *m), (m))                                                           \
    X(int, zmq_msg_init_size, (zmq_msg_t *m, size_t n), (m, n))                                         \
    X(int, zmq_msg_init_data, (zmq_msg_t *m, void *d, size_t n, zmq_free_fn *f, void *h), (m, d, n, f, h)) \
    X(int, zmq_msg_send, (zmq_msg_t *m, void *s, int f), (m, s, f))                                     \
    X(int, zmq_msg_recv, (zmq_msg_t *m, void *s, int f), (m, s, f))                                     \
    X(int, zmq_msg_close, (zmq_msg_t *m), (m))                                                          \
    X(void *, zmq_msg_data, (zmq_msg_t *m), (m))                                                        \
    X(size_t, zmq_msg_size, (const zmq_msg_t *m), (m))                                                  \
    X(int, zmq_msg_more, (const zmq_msg_t *m), (m))                                                     \
    X(const char *, zmq_msg_gets, (const zmq_msg_t *m, const char *p), (m, p))                          \
    X(char *, zmq_z85_encode, (char *d, const uint8_t *s, size_t n), (d, s, n))                         \
    X(uint8_t *, zmq_z85_decode, (uint8_t *d, const char *s), (d, s))                                   \
    X(int, zmq_curve_keypair, (char *p, char *s), (p, s))                                               \
    X(int, zmq_curve_public, (char *p, const char *s), (p, s))

#define LOOM_ZMQ_POINTER(R, NAME, PARAMS, ARGS) static R(*p_##NAME) PARAMS;
LOOM_ZMQ_FUNCTIONS(LOOM_ZMQ_POINTER)
static void (*p_zmq_version)(int *, int *, int *);   // void: forwarded by hand below

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int load_state;   // 0: not tried, 1: loaded, -1: failed (under load_lock; 1 published below)
static int loaded;       // 1 once every pointer is set (acquire/release)
static char load_error[1024];

int loom_zmq_load(void) {
    if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE)) return 0;
    pthread_mutex_lock(&load_lock);
    if (load_state == 0) {
        const char *chosen = getenv("LOOM_LIBZMQ");
        const char *path = (chosen != NULL && chosen[0] != 0) ? chosen : "libzmq.so.5";
        void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (library == NULL) {
            snprintf(load_error, sizeof load_error,
                     "cannot load libzmq (%s); install it (Debian: apt-get install libzmq5; scripts/lib/setup.sh does) or name it with LOOM_LIBZMQ",
                     dlerror());
            load_state = -1;
        } else {
            load_state = 1;
#define LOOM_ZMQ_RESOLVE(R, NAME, PARAMS, ARGS)                                                          \
            p_##NAME = (R(*) PARAMS)dlsym(library, #NAME);                                              \
            if (p_##NAME == NULL && load_state == 1) {                                                  \
                snprintf(load_error, sizeof load_error, "%s has no %s: Loom needs libzmq 4.3 or later", path, #NAME); \
                load_state = -1;                                                                        \
            }
            LOOM_ZMQ_FUNCTIONS(LOOM_ZMQ_RESOLVE)
            LOOM_ZMQ_RESOLVE(void, zmq_version, (int *, int *, int *), ())
            if (load_state == 1) __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
        }
    }
    int state = load_state;
    pthread_mutex_unlock(&load_lock);
    return state == 1 ? 0 : -1;
}

const char *loom_zmq_error(void) { return load_error; }

// A call before a successful loom_zmq_load loads now, or stops the process with the reason.
static void ensure_loaded(void) {
    if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE)) return;
    if (loom_zmq_load() != 0) {
        fprintf(stderr, "loom: error: %s\n", load_error);
        exit(127);
    }
}

#define LOOM_ZMQ_FORWARD(R, NAME, PARAMS, ARGS) R NAME PARAMS { ensure_loaded(); return p_##NAME ARGS; }
LOOM_ZMQ_FUNCTIONS(LOOM_ZMQ_FORWARD)

void zmq_version(int *major, int *minor, int *patch) {
    ensure_loaded();
    p_zmq_version(major, minor, patch);
}
