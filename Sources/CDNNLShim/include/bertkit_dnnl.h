#ifndef BERTKIT_DNNL_H
#define BERTKIT_DNNL_H

#include <stdint.h>

// The bf16 matrix products BertKit takes from oneDNN: C (M,N) f32 = alpha·op(A)·op(B) + beta·C with A
// and B in bfloat16 (the upper 16 bits of an IEEE float), row-major with row strides, op = transpose
// when trans is nonzero. oneDNN runs single-threaded inside the caller's thread, as OpenBLAS does in
// Kernels.gemm, so that the caller's fixed blocks decide the result, not the thread count.

// 1 when oneDNN can make a bf16 × bf16 → f32 matmul on this CPU (native bf16 dot products: AVX-512
// BF16 or AMX), else 0. oneDNN 2.x has no bf16 matmul without them: it never emulates.
int bertkit_dnnl_bf16_matmul_available(void);

// The product above; 0 on success, else oneDNN's status (dnnl_status_t).
int bertkit_dnnl_gemm_bf16(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb, float beta,
                           float *c, int64_t ldc);

// The same product with A and B in fp32, through the same code (descriptors, strides, scales, post-ops,
// cache): it runs on every CPU, so tests check the shim's plumbing against OpenBLAS even where the bf16
// kernel itself cannot run. BertKit's own products never take this path.
int bertkit_dnnl_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                          float *c, int64_t ldc);

// How many shapes have a cached primitive, and the most that will (beyond it, primitives are made per
// call and destroyed after it).
int bertkit_dnnl_cached_shapes(void);
int bertkit_dnnl_cache_limit(void);

// oneDNN's version, e.g. "2.6.3".
const char *bertkit_dnnl_version(void);

#endif
