import CBLAS

/// C(M,N) = alpha·op(A)·op(B) + beta·C, row-major, with op(A) (M,K) and op(B) (K,N): A is stored
/// (M,K), or (K,M) when `transA`; B is stored (K,N), or (N,K) when `transB`; lda, ldb, ldc are row strides.
///
/// The output is split into blocks along its larger dimension; the number of blocks is a function of
/// the shape only (`gemmBlockCount`: 1, 2, 4 or 8 blocks), never of
/// `threads`. Each block is one single-threaded OpenBLAS sgemm, and the blocks are spread over
/// `threads` workers. So the result is bit-identical for any thread count (OpenBLAS's own threading is
/// not: it can split the inner dimension differently), and measured as fast as OpenBLAS's threading
/// on the shapes of BERT's layers.
public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                 b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int) {
    guard m > 0, n > 0 else { return }
    let blocks = gemmBlockCount(m: m, n: n, k: k)
    useBLASThreads(1)
    let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
    Parallel.forEach(blocks, threads: min(threads, blocks)) { blk in
        if m >= n {
            let m0 = blk * m / blocks, m1 = (blk + 1) * m / blocks
            let ap = transA ? a + m0 : a + m0 * lda
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(m1 - m0), Int32(n), Int32(k), alpha, ap, Int32(lda), b, Int32(ldb),
                        beta, c + m0 * ldc, Int32(ldc))
        } else {
            let n0 = blk * n / blocks, n1 = (blk + 1) * n / blocks
            let bp = transB ? b + n0 * ldb : b + n0
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n1 - n0), Int32(k), alpha, a, Int32(lda), bp, Int32(ldb),
                        beta, c + n0, Int32(ldc))
        }
    }
}

/// Blocks `gemm` splits an (M,N,K) product into: 1 under 8 MFLOP, else the largest power of two
/// ≤ ⌈max(M,N)/512⌉, clamped to 2...8 (powers of two balance over 2, 4 or 8 threads).
public func gemmBlockCount(m: Int, n: Int, k: Int) -> Int {
    if 2 * m * n * k < 8_000_000 { return 1 }
    let target = min(8, max(2, (max(m, n) + 511) / 512))
    var blocks = 1
    while blocks * 2 <= target { blocks *= 2 }
    return blocks
}
