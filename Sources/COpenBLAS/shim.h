#ifndef LOOM_COPENBLAS_SHIM_H
#define LOOM_COPENBLAS_SHIM_H
// Loom's view of OpenBLAS: CBLAS plus the thread-count control.
#include <cblas.h>
#endif
