#ifndef LOOM_COPENBLAS_H
#define LOOM_COPENBLAS_H
// Loom's view of OpenBLAS: the two CBLAS routines it uses, and the thread-count controls.
//
// OpenBLAS is loaded at run time (dlopen), not linked. It starts its thread pool while it
// loads, sized by OPENBLAS_NUM_THREADS, and idle pool threads spin; a linked library loads
// before main, so the only way to choose the count was to set the variable and re-execute
// the process. Loaded on demand, the process picks the count first (loom_blas_load).

#ifdef __cplusplus
extern "C" {
#endif

// The standard CBLAS values.
typedef enum { CblasRowMajor = 101, CblasColMajor = 102 } CBLAS_ORDER;
typedef enum { CblasNoTrans = 111, CblasTrans = 112 } CBLAS_TRANSPOSE;

// Loads OpenBLAS (once per process) with `threads` threads, unless OPENBLAS_NUM_THREADS is
// already set, which is then honoured. Returns 0, or -1 with the reason in loom_blas_error().
// Later calls return the first call's outcome. $LOOM_OPENBLAS names the library to load
// (default: libopenblas.so.0, then libopenblas.so). The first call sets OPENBLAS_NUM_THREADS
// for the moment of loading: make it before the process starts other threads.
int loom_blas_load(int threads);

// The same, with OpenBLAS's kernels chosen: `coretype` (an OPENBLAS_CORETYPE name such as
// "Haswell") is set in the environment for the moment of loading; NULL lets OpenBLAS detect.
// Only the first load chooses; loom_blas_corename() says what it chose.
int loom_blas_load_core(int threads, const char *coretype);

// The kernel set OpenBLAS runs ("Haswell", "SkylakeX", "Prescott", ...), after loading.
const char *loom_blas_corename(void);

// Without loading it: -1 (reason in loom_blas_error()) if $LOOM_OPENBLAS names a file that is not there.
int loom_blas_check(void);

// Whether OpenBLAS is loaded (without loading it).
int loom_blas_is_loaded(void);

// Whether this CPU has an instruction-set feature, from cpuid ("sse3", "avx2", "fma",
// "avx512f", "avx512bw", "avx512vl", "avx512dq"); 0 for names it does not know.
int loom_cpu_supports(const char *feature);

// Why loading failed; empty if it did not.
const char *loom_blas_error(void);

// cblas_sgemm and cblas_sgemv. OpenBLAS is loaded with one thread on first use if
// loom_blas_load was not called; if it cannot be, the process exits with a message.
void loom_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE transA, CBLAS_TRANSPOSE transB, int m, int n, int k,
                float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
void loom_sgemv(CBLAS_ORDER order, CBLAS_TRANSPOSE trans, int m, int n, float alpha, const float *a, int lda,
                const float *x, int incx, float beta, float *y, int incy);

// openblas_set_num_threads and openblas_get_config (after loading).
void loom_blas_set_threads(int threads);
const char *loom_blas_config(void);

#ifdef __cplusplus
}
#endif
#endif
