// The x86-64 baseline build of kernels.h (SSE2).
#define LOOM_V_SUFFIX _base
#include "kernels.h"
#include "pool.h"
