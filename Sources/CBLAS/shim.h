// OpenBLAS: cblas_sgemm and the openblas_* controls (thread count, core name).
#include <cblas.h>
