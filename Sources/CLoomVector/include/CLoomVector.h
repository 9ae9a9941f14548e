// Loom's element-wise transcendental functions, eight lanes at a time, in C so that the same
// source compiles twice: for the x86-64 baseline (SSE2) and for AVX2, chosen at run time.
// Neither build contracts a multiply and an add into an FMA, so both give the same bits:
// results do not depend on which CPU computed them (the tests compare the two builds).
#ifndef LOOM_VECTOR_H
#define LOOM_VECTOR_H

enum {
    LOOM_V_EXP = 0,
    LOOM_V_SIGMOID = 1,
    LOOM_V_TANH = 2,
    LOOM_V_ERF = 3,
    LOOM_V_GELU = 4,      // 0.5·x·(1 + erf(x/√2)), the exact GELU
    LOOM_V_SOFTPLUS = 5,  // PyTorch's softplus (x beyond 20)
    LOOM_V_MISH = 6,      // x·tanh(softplus(x))
    LOOM_V_ELU = 7,       // x > 0 ? x : a·(eˣ − 1)
    LOOM_V_SELU = 8,      // b·(x > 0 ? x : a·(eˣ − 1))
    LOOM_V_LOG = 9,       // the natural logarithm, for positive finite x
    LOOM_V_ERF_CHAIN = 10, // ((erf(x / a) + b)·x)·c, each step rounded: the classic export's GELU
};

/// Applies function `f` (a LOOM_V_ value; `a`, `b` and `c` its parameters, 0 where it has fewer)
/// to `n` floats of `src` into `dst`, which may be the same memory. A lane's result does not
/// depend on its position.
void loom_vmap(int f, const float *src, float *dst, long n, float a, float b, float c);

/// 1-D max pooling of `rows` rows of `length` floats into rows of `outLength`: window j takes
/// the largest of taps `j·stride − padLeft + t·dilation` (t < kernel) inside the row, by
/// `m = v > m ? v : m` from −∞ in tap order. Windows firstInside..<lastInside must lie wholly
/// inside the row; the others are bounds-checked.
void loom_maxpool1d(const float *src, float *dst, long rows, long length, long outLength, long kernel, long stride,
                    long dilation, long padLeft, long firstInside, long lastInside);

/// 1-D average pooling's windows firstInside..<lastInside of each of `rows` rows, each wholly
/// inside its row: the sum of its `kernel` taps from 0 in order, divided by `kernel`. The caller
/// computes the windows that reach into the padding.
void loom_avgpool1d_inside(const float *src, float *dst, long rows, long length, long outLength, long kernel, long stride,
                           long padLeft, long firstInside, long lastInside);

/// The build in use: 0 the baseline, 1 AVX2.
int loom_vector_level(void);

/// Uses the given build from now on (for tests; 1 is refused where the CPU lacks AVX2). Returns the level in use.
int loom_vector_use(int level);

#endif
