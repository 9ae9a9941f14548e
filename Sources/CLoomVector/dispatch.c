// Chooses the build of the vector kernels once, from the CPU's flags.
#include "CLoomVector.h"

void loom_vmap__base(int f, const float *src, float *dst, long n, float a, float b, float c);
void loom_maxpool1d__base(const float *, float *, long, long, long, long, long, long, long, long, long);
void loom_avgpool1d_inside__base(const float *, float *, long, long, long, long, long, long, long, long);
#if defined(__x86_64__)
void loom_vmap__avx2(int f, const float *src, float *dst, long n, float a, float b, float c);
void loom_maxpool1d__avx2(const float *, float *, long, long, long, long, long, long, long, long, long);
void loom_avgpool1d_inside__avx2(const float *, float *, long, long, long, long, long, long, long, long);
#endif

static int level = -1; // written once (a benign race: every writer writes the same value)

static int detect(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

int loom_vector_level(void) {
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (l < 0) {
        l = detect();
        __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    }
    return l;
}

int loom_vector_use(int wanted) {
    int best = detect();
    int l = wanted > best ? best : (wanted < 0 ? 0 : wanted);
    __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    return l;
}

void loom_vmap(int f, const float *src, float *dst, long n, float a, float b, float c) {
    if (n <= 0) return;
#if defined(__x86_64__)
    if (loom_vector_level() == 1) {
        loom_vmap__avx2(f, src, dst, n, a, b, c);
        return;
    }
#endif
    loom_vmap__base(f, src, dst, n, a, b, c);
}

void loom_maxpool1d(const float *src, float *dst, long rows, long length, long outLength, long kernel, long stride,
                    long dilation, long padLeft, long firstInside, long lastInside) {
#if defined(__x86_64__)
    if (loom_vector_level() == 1) {
        loom_maxpool1d__avx2(src, dst, rows, length, outLength, kernel, stride, dilation, padLeft, firstInside, lastInside);
        return;
    }
#endif
    loom_maxpool1d__base(src, dst, rows, length, outLength, kernel, stride, dilation, padLeft, firstInside, lastInside);
}

void loom_avgpool1d_inside(const float *src, float *dst, long rows, long length, long outLength, long kernel, long stride,
                           long padLeft, long firstInside, long lastInside) {
#if defined(__x86_64__)
    if (loom_vector_level() == 1) {
        loom_avgpool1d_inside__avx2(src, dst, rows, length, outLength, kernel, stride, padLeft, firstInside, lastInside);
        return;
    }
#endif
    loom_avgpool1d_inside__base(src, dst, rows, length, outLength, kernel, stride, padLeft, firstInside, lastInside);
}
