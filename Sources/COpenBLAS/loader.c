// Loads OpenBLAS at run time; see include/COpenBLAS.h for why.
#include "COpenBLAS.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*set_threads_fn)(int);
typedef char *(*get_config_fn)(void);
typedef char *(*get_corename_fn)(void);

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int load_state;          // 0: not tried, 1: loaded, -1: failed (under load_lock)
static char load_error[1024];
static sgemm_fn p_sgemm;        // published with release order once everything is resolved
static sgemv_fn p_sgemv;
static set_threads_fn p_set_threads;
static get_config_fn p_get_config;
static get_corename_fn p_get_corename;

static void *resolve(void *library, const char *name, const char *path) {
    void *symbol = dlsym(library, name);
    if (symbol == NULL && load_error[0] == 0) {
        snprintf(load_error, sizeof load_error, "%s has no %s: it is not OpenBLAS, or too old an OpenBLAS", path, name);
    }
    return symbol;
}

int loom_blas_load(int threads) { return loom_blas_load_core(threads, NULL); }

int loom_blas_load_core(int threads, const char *coretype) {
    pthread_mutex_lock(&load_lock);
    if (load_state == 0) {
        // The kernels, likewise, for the moment of loading (a job pins them: every worker the same).
        char saved_core[64] = "";
        int had_core = 0, set_core = coretype != NULL && coretype[0] != 0;
        if (set_core) {
            const char *previous = getenv("OPENBLAS_CORETYPE");
            if (previous != NULL) { had_core = 1; snprintf(saved_core, sizeof saved_core, "%s", previous); }
            setenv("OPENBLAS_CORETYPE", coretype, 1);
        }
        // OpenBLAS reads the count from the environment as it loads; set only for that
        // moment, so that child processes (local workers) choose their own.
        int set_count = threads > 0 && getenv("OPENBLAS_NUM_THREADS") == NULL;
        if (set_count) {
            char count[16];
            snprintf(count, sizeof count, "%d", threads);
            setenv("OPENBLAS_NUM_THREADS", count, 1);
        }
        const char *chosen = getenv("LOOM_OPENBLAS");
        const char *candidates[] = {chosen, "libopenblas.so.0", "libopenblas.so"};
        void *library = NULL;
        const char *path = NULL;
        char first_error[512] = "";
        for (size_t i = (chosen != NULL && chosen[0] != 0) ? 0 : 1; i < sizeof candidates / sizeof *candidates; i++) {
            library = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
            if (library != NULL) { path = candidates[i]; break; }
            if (first_error[0] == 0) snprintf(first_error, sizeof first_error, "%s", dlerror());
            if (i == 0) break;   // a library named by $LOOM_OPENBLAS is the only one tried
        }
        if (set_count) unsetenv("OPENBLAS_NUM_THREADS");
        if (set_core) { if (had_core) setenv("OPENBLAS_CORETYPE", saved_core, 1); else unsetenv("OPENBLAS_CORETYPE"); }
        if (library == NULL) {
            snprintf(load_error, sizeof load_error,
                     "cannot load OpenBLAS (%s); install it (Debian: apt-get install libopenblas0-pthread; scripts/lib/setup.sh does) or name it with LOOM_OPENBLAS",
                     first_error);
            load_state = -1;
        } else {
            sgemm_fn sgemm = (sgemm_fn)resolve(library, "cblas_sgemm", path);
            sgemv_fn sgemv = (sgemv_fn)resolve(library, "cblas_sgemv", path);
            set_threads_fn set_threads = (set_threads_fn)resolve(library, "openblas_set_num_threads", path);
            get_config_fn get_config = (get_config_fn)resolve(library, "openblas_get_config", path);
            p_get_corename = (get_corename_fn)dlsym(library, "openblas_get_corename");
            if (sgemm && sgemv && set_threads && get_config) {
                p_sgemv = sgemv;
                p_set_threads = set_threads;
                p_get_config = get_config;
                __atomic_store_n(&p_sgemm, sgemm, __ATOMIC_RELEASE);
                load_state = 1;
            } else {
                load_state = -1;
            }
        }
    }
    int state = load_state;
    pthread_mutex_unlock(&load_lock);
    return state == 1 ? 0 : -1;
}

const char *loom_blas_error(void) { return load_error; }

// On first use without loom_blas_load: load with one thread, or stop with the reason.
static void ensure_loaded(void) {
    if (__atomic_load_n(&p_sgemm, __ATOMIC_ACQUIRE) != NULL) return;
    if (loom_blas_load(1) != 0) {
        fprintf(stderr, "loom: %s\n", load_error);
        exit(70);
    }
}

void loom_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE transA, CBLAS_TRANSPOSE transB, int m, int n, int k,
                float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    ensure_loaded();
    p_sgemm(order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void loom_sgemv(CBLAS_ORDER order, CBLAS_TRANSPOSE trans, int m, int n, float alpha, const float *a, int lda,
                const float *x, int incx, float beta, float *y, int incy) {
    ensure_loaded();
    p_sgemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

void loom_blas_set_threads(int threads) {
    ensure_loaded();
    p_set_threads(threads);
}

const char *loom_blas_config(void) {
    ensure_loaded();
    return p_get_config();
}

const char *loom_blas_corename(void) {
    ensure_loaded();
    return p_get_corename != NULL ? p_get_corename() : "unknown";
}

int loom_blas_check(void) {
    const char *chosen = getenv("LOOM_OPENBLAS");
    if (chosen == NULL || chosen[0] == 0 || strchr(chosen, '/') == NULL || access(chosen, R_OK) == 0) return 0;
    snprintf(load_error, sizeof load_error,
             "cannot load OpenBLAS (%s: no such file); install it (Debian: apt-get install libopenblas0-pthread; scripts/lib/setup.sh does) or name it with LOOM_OPENBLAS",
             chosen);
    return -1;
}

int loom_blas_is_loaded(void) { return __atomic_load_n(&p_sgemm, __ATOMIC_ACQUIRE) != NULL; }

int loom_cpu_supports(const char *feature) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (strcmp(feature, "sse3") == 0) return __builtin_cpu_supports("sse3") != 0;
    if (strcmp(feature, "avx2") == 0) return __builtin_cpu_supports("avx2") != 0;
    if (strcmp(feature, "fma") == 0) return __builtin_cpu_supports("fma") != 0;
    if (strcmp(feature, "avx512f") == 0) return __builtin_cpu_supports("avx512f") != 0;
    if (strcmp(feature, "avx512bw") == 0) return __builtin_cpu_supports("avx512bw") != 0;
    if (strcmp(feature, "avx512vl") == 0) return __builtin_cpu_supports("avx512vl") != 0;
    if (strcmp(feature, "avx512dq") == 0) return __builtin_cpu_supports("avx512dq") != 0;
#endif
    (void)feature;
    return 0;
}
