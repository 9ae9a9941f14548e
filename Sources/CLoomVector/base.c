// The x86-64 baseline build of kernels.h (SSE2).
#define LOOM_V_SUFFIX _base
// The eight-lane values never cross a call boundary (every function taking one is inlined), so
// the ABI clang warns about for 32-byte vectors without AVX does not arise.
#pragma clang diagnostic ignored "-Wpsabi"
#include "kernels.h"
#include "pool.h"
