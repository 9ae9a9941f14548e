// 1-D max pooling, written once; base.c and avx2.c include this after kernels.h, with
// LOOM_V_SUFFIX set. Each window takes `m = v > m ? v : m` over its taps in order, from −∞, so
// both builds (and any order of rows) give the same bits.
#include <math.h>

// Windows j0..<j1 of one row, each wholly inside it.
INLINE void FN(pool_inside)(const float *src, float *dst, long j0, long j1, long kernel, long stride, long dilation,
                              long padLeft) {
    for (long j = j0; j < j1; j++) {
        const float *w = src + (j * stride - padLeft);
        float m = -INFINITY;
        for (long t = 0; t < kernel; t++) {
            float v = w[t * dilation];
            m = v > m ? v : m;
        }
        dst[j] = m;
    }
}

// The common case, windows that tile the row (kernel = stride, no dilation), with the kernel
// known to the compiler so that it vectorizes across windows with interleaved loads.
#define LOOM_POOL_TILED(K)                                                                  \
    INLINE void FN(pool_tiled##K)(const float *src, float *dst, long j0, long j1, long pad) { \
        for (long j = j0; j < j1; j++) {                                                    \
            const float *w = src + (j * K - pad);                                            \
            float m = -INFINITY;                                                            \
            for (long t = 0; t < K; t++) {                                                  \
                float v = w[t];                                                             \
                m = v > m ? v : m;                                                          \
            }                                                                               \
            dst[j] = m;                                                                     \
        }                                                                                   \
    }
LOOM_POOL_TILED(2)
LOOM_POOL_TILED(3)
LOOM_POOL_TILED(4)
LOOM_POOL_TILED(8)
#undef LOOM_POOL_TILED

// Windows j0..<j1 of one row that may reach past its ends: taps outside the row are skipped.
INLINE void FN(pool_edge)(const float *s, float *d, long j0, long j1, long length, long kernel, long stride,
                          long dilation, long padLeft) {
    for (long j = j0; j < j1; j++) {
        float m = -INFINITY;
        for (long t = 0; t < kernel; t++) {
            long i = j * stride - padLeft + t * dilation;
            if (i >= 0 && i < length) {
                float v = s[i];
                m = v > m ? v : m;
            }
        }
        d[j] = m;
    }
}

void FN(loom_maxpool1d_)(const float *src, float *dst, long rows, long length, long outLength, long kernel,
                         long stride, long dilation, long padLeft, long firstInside, long lastInside) {
    for (long r = 0; r < rows; r++) {
        const float *s = src + r * length;
        float *d = dst + r * outLength;
        int tiled = dilation == 1 && kernel == stride;
        if (tiled && kernel == 2) FN(pool_tiled2)(s, d, firstInside, lastInside, padLeft);
        else if (tiled && kernel == 3) FN(pool_tiled3)(s, d, firstInside, lastInside, padLeft);
        else if (tiled && kernel == 4) FN(pool_tiled4)(s, d, firstInside, lastInside, padLeft);
        else if (tiled && kernel == 8) FN(pool_tiled8)(s, d, firstInside, lastInside, padLeft);
        else FN(pool_inside)(s, d, firstInside, lastInside, kernel, stride, dilation, padLeft);
        // Windows that reach into the padding skip the taps outside the row.
        FN(pool_edge)(s, d, 0, firstInside, length, kernel, stride, dilation, padLeft);
        FN(pool_edge)(s, d, lastInside, outLength, length, kernel, stride, dilation, padLeft);
    }
}

// Average pooling's windows j0..<j1 of each row, all wholly inside it: `s = 0; s += x` over the
// taps in order, then `s / divisor`, as the Swift kernel computes its edge windows.
#define LOOM_AVG_TILED(K)                                                                   \
    INLINE void FN(avg_tiled##K)(const float *src, float *dst, long j0, long j1, long pad, float divisor) { \
        for (long j = j0; j < j1; j++) {                                                    \
            const float *w = src + (j * K - pad);                                           \
            float s = 0;                                                                    \
            for (long t = 0; t < K; t++) s += w[t];                                         \
            dst[j] = s / divisor;                                                           \
        }                                                                                   \
    }
LOOM_AVG_TILED(2)
LOOM_AVG_TILED(3)
LOOM_AVG_TILED(4)
LOOM_AVG_TILED(8)
#undef LOOM_AVG_TILED

void FN(loom_avgpool1d_inside_)(const float *src, float *dst, long rows, long length, long outLength, long kernel,
                                long stride, long padLeft, long firstInside, long lastInside) {
    float divisor = (float)kernel;
    for (long r = 0; r < rows; r++) {
        const float *s = src + r * length;
        float *d = dst + r * outLength;
        int tiled = kernel == stride;
        if (tiled && kernel == 2) FN(avg_tiled2)(s, d, firstInside, lastInside, padLeft, divisor);
        else if (tiled && kernel == 3) FN(avg_tiled3)(s, d, firstInside, lastInside, padLeft, divisor);
        else if (tiled && kernel == 4) FN(avg_tiled4)(s, d, firstInside, lastInside, padLeft, divisor);
        else if (tiled && kernel == 8) FN(avg_tiled8)(s, d, firstInside, lastInside, padLeft, divisor);
        else {
            for (long j = firstInside; j < lastInside; j++) {
                const float *w = s + (j * stride - padLeft);
                float acc = 0;
                for (long t = 0; t < kernel; t++) acc += w[t];
                d[j] = acc / divisor;
            }
        }
    }
}
