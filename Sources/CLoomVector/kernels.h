// The functions, written once; base.c and avx2.c include this with LOOM_V_SUFFIX set.
// exp and log are Cephes' single-precision methods, erf Eigen's rational approximation, tanh
// Eigen's rational approximation below 0.625 and 1 − 2/(e^{2|x|} + 1) above; accuracy against
// glibc is checked in Tests/LoomONNXTests/VectorMathTests.swift.
#include <stdint.h>
#include <string.h>
#include "CLoomVector.h"

#pragma clang fp contract(off)

typedef float v8 __attribute__((vector_size(32), aligned(4)));
typedef uint32_t u8 __attribute__((vector_size(32), aligned(4)));
typedef int32_t i8 __attribute__((vector_size(32), aligned(4)));

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, LOOM_V_SUFFIX)
#define SPLAT(x) ((v8){x, x, x, x, x, x, x, x})
#define INLINE static inline __attribute__((always_inline))

// Bit selects: all-ones lanes of `m` take `a`.
INLINE v8 FN(select)(u8 m, v8 a, v8 b) { return (v8)((m & (u8)a) | (~m & (u8)b)); }
// All ones where the float `x` is negative (its sign bit), by an arithmetic shift.
INLINE u8 FN(negative)(v8 x) { return (u8)((i8)x >> 31); }

// `hi < v ? hi : v`, then `c < lo ? lo : c`: one minps and one maxps, NaN passing through.
INLINE v8 FN(clamp)(v8 v, float lo, float hi) {
    v8 c = FN(select)((u8)(v > SPLAT(hi)), SPLAT(hi), v);
    return FN(select)((u8)(c < SPLAT(lo)), SPLAT(lo), c);
}

INLINE v8 FN(exp)(v8 v) {
    v8 x = FN(clamp)(v, -87.3f, 88.3f);
    v8 magic = SPLAT(12582912.0f);
    v8 r = x * 1.44269504088896341f + magic;
    v8 n = r - magic;
    x = x - n * 0.693359375f - n * -2.12194440e-4f;
    v8 z = x * x;
    v8 y = SPLAT(1.9875691500e-4f);
    y = y * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f;
    y = y * x + 4.1665795894e-2f;
    y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * z + x + 1;
    u8 e = (((u8)r - (u8)magic) + 127) << 23;
    return y * (v8)e;
}

INLINE v8 FN(sigmoid)(v8 x) { return 1 / (1 + FN(exp)(-x)); }

// erf(x) = x·P(x²)/Q(x²) on [−4, 4] (Eigen's generic_fast_erf_float; beyond 4 it is ±1 in
// float32), the result held to [−1, 1]: within 4.5e-7 of the true value everywhere, and
// relatively accurate near 0, where Abramowitz and Stegun's 7.1.26 (PyTorch's) loses every
// digit. One division and no exponential: half the work of 7.1.26.
INLINE v8 FN(erf)(v8 v) {
    v8 x = FN(clamp)(v, -4.0f, 4.0f);
    v8 x2 = x * x;
    v8 p = SPLAT(-2.72614225801306e-10f);
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    p = p * x;
    v8 q = SPLAT(-1.45660718464996e-05f);
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return FN(clamp)(p / q, -1.0f, 1.0f);
}

INLINE v8 FN(tanh)(v8 v) {
    u8 bits = (u8)v;
    u8 sign = bits & 0x80000000u;
    v8 a = (v8)(bits & 0x7FFFFFFFu);
    v8 large = (v8)((u8)(1 - 2 / (FN(exp)(2 * a) + 1)) | sign);
    v8 x = FN(clamp)(a, 0, 0.625f);
    v8 x2 = x * x;
    v8 p = SPLAT(-2.76076847742355e-16f);
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    v8 q = SPLAT(1.19825839466702e-06f);
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    v8 small = (v8)((u8)(p * x / q) | sign);
    return FN(select)(FN(negative)(SPLAT(0.625f) - a), large, small);
}

INLINE v8 FN(log)(v8 v) {
    u8 bits = (u8)v;
    i8 e = (i8)((bits >> 23) & 0xFFu) - 126;
    v8 m = (v8)((bits & 0x807FFFFFu) | 0x3F000000u);
    i8 low = (i8)(m - 0.707106781186547524f) >> 31;
    e = e + low;
    m = m - 1 + (v8)((u8)m & (u8)low);
    v8 fe = (v8)((u8)(e + 128) | 0x4B000000u) - (8388608.0f + 128.0f);
    v8 z = m * m;
    v8 y = SPLAT(7.0376836292e-2f);
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y = y + fe * -2.12194440e-4f;
    y = y - 0.5f * z;
    return m + y + fe * 0.693359375f;
}

INLINE v8 FN(softplus)(v8 x) {
    u8 bits = (u8)x;
    v8 a = (v8)(bits & 0x7FFFFFFFu);
    v8 y = FN(exp)(-a);
    v8 u = 1 + y;
    v8 d = u - 1;
    u8 exact = (u8)(((i8)d - 1) >> 31);
    v8 safeD = FN(select)(exact, SPLAT(1.0f), d);
    v8 viaLog = FN(log)(u) * y / safeD;
    v8 l1p = FN(select)(exact, y, viaLog);
    v8 xPlus = (v8)(bits & ~FN(negative)(x));
    return xPlus + l1p;
}

// x where its sign bit is clear, else `negative`.
INLINE v8 FN(positiveOr)(v8 x, v8 negative) { return FN(select)(FN(negative)(x), negative, x); }

INLINE v8 FN(apply)(int f, v8 x, float a, float b, float c) {
    switch (f) {
    case LOOM_V_EXP: return FN(exp)(x);
    case LOOM_V_SIGMOID: return FN(sigmoid)(x);
    case LOOM_V_TANH: return FN(tanh)(x);
    case LOOM_V_ERF: return FN(erf)(x);
    case LOOM_V_GELU: return 0.5f * x * (1 + FN(erf)(x * 0.7071067811865476f));
    case LOOM_V_SOFTPLUS: return FN(softplus)(x);
    case LOOM_V_MISH: return x * FN(tanh)(FN(softplus)(x));
    case LOOM_V_ELU: return FN(positiveOr)(x, a * (FN(exp)(x) - 1));
    case LOOM_V_SELU: return b * FN(positiveOr)(x, a * (FN(exp)(x) - 1));
    case LOOM_V_LOG: return FN(log)(x);
    case LOOM_V_ERF_CHAIN: return ((FN(erf)(x / a) + b) * x) * c;
    default: return x;
    }
}

// One loop per function, so that the switch is outside it.
#define LOOP(f)                                                                          \
    for (; i + 8 <= n; i += 8) {                                                         \
        v8 v;                                                                            \
        memcpy(&v, src + i, sizeof v);                                                   \
        v = FN(apply)(f, v, a, b, c);                                                    \
        memcpy(dst + i, &v, sizeof v);                                                   \
    }

void FN(loom_vmap_)(int f, const float *src, float *dst, long n, float a, float b, float c) {
    long i = 0;
    switch (f) {
    case LOOM_V_EXP: LOOP(LOOM_V_EXP) break;
    case LOOM_V_SIGMOID: LOOP(LOOM_V_SIGMOID) break;
    case LOOM_V_TANH: LOOP(LOOM_V_TANH) break;
    case LOOM_V_ERF: LOOP(LOOM_V_ERF) break;
    case LOOM_V_GELU: LOOP(LOOM_V_GELU) break;
    case LOOM_V_SOFTPLUS: LOOP(LOOM_V_SOFTPLUS) break;
    case LOOM_V_MISH: LOOP(LOOM_V_MISH) break;
    case LOOM_V_ELU: LOOP(LOOM_V_ELU) break;
    case LOOM_V_SELU: LOOP(LOOM_V_SELU) break;
    case LOOM_V_LOG: LOOP(LOOM_V_LOG) break;
    case LOOM_V_ERF_CHAIN: LOOP(LOOM_V_ERF_CHAIN) break;
    default: break;
    }
    if (i < n) {
        // The tail in a padded vector: the same lanes as everywhere else.
        float tail[8] = {0};
        memcpy(tail, src + i, (size_t)(n - i) * sizeof(float));
        v8 v;
        memcpy(&v, tail, sizeof v);
        v = FN(apply)(f, v, a, b, c);
        memcpy(tail, &v, sizeof v);
        memcpy(dst + i, tail, (size_t)(n - i) * sizeof(float));
    }
}
