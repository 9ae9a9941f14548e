// Loads libcrypto at run time for SHA-256; see include/COpenSSL.h.
#include "COpenSSL.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int load_state;   // 0: not tried, 1: loaded, -1: failed (under load_lock)
static int loaded;       // 1 once every pointer is set (acquire/release)
static char load_error[1024];
static int (*p_init)(SHA256_CTX *);
static int (*p_update)(SHA256_CTX *, const void *, size_t);
static int (*p_final)(unsigned char *, SHA256_CTX *);

int loom_crypto_load(void) {
    if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE)) return 0;
    pthread_mutex_lock(&load_lock);
    if (load_state == 0) {
        const char *chosen = getenv("LOOM_LIBCRYPTO");
        const char *path = (chosen != NULL && chosen[0] != 0) ? chosen : "libcrypto.so.3";
        void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (library == NULL) {
            snprintf(load_error, sizeof load_error,
                     "cannot load libcrypto (%s); install it (Debian: apt-get install libssl3; scripts/lib/setup.sh does) or name it with LOOM_LIBCRYPTO",
                     dlerror());
            load_state = -1;
        } else {
            p_init = (int (*)(SHA256_CTX *))dlsym(library, "SHA256_Init");
            p_update = (int (*)(SHA256_CTX *, const void *, size_t))dlsym(library, "SHA256_Update");
            p_final = (int (*)(unsigned char *, SHA256_CTX *))dlsym(library, "SHA256_Final");
            if (p_init && p_update && p_final) {
                load_state = 1;
                __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
            } else {
                snprintf(load_error, sizeof load_error, "%s has no SHA256_Init/Update/Final: it is not OpenSSL's libcrypto 1.1 or 3", path);
                load_state = -1;
            }
        }
    }
    int state = load_state;
    pthread_mutex_unlock(&load_lock);
    return state == 1 ? 0 : -1;
}

const char *loom_crypto_error(void) { return load_error; }

static void ensure_loaded(void) {
    if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE)) return;
    if (loom_crypto_load() != 0) {
        fprintf(stderr, "loom: error: %s\n", load_error);
        exit(127);
    }
}

void loom_sha256_init(SHA256_CTX *c) { ensure_loaded(); p_init(c); }
void loom_sha256_update(SHA256_CTX *c, const void *data, size_t n) { ensure_loaded(); p_update(c, data, n); }
void loom_sha256_final(SHA256_CTX *c, unsigned char *digest) { ensure_loaded(); p_final(digest, c); }
