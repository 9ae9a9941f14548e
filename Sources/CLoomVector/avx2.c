// The AVX2 build of kernels.h: every function in it compiled for AVX2 (no FMA: see CLoomVector.h).
#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#define LOOM_V_SUFFIX _avx2
#include "kernels.h"
#include "pool.h"
#pragma clang attribute pop
#endif
