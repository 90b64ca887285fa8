import CBLAS

/// C(M,N) = alpha·op(A)·op(B) + beta·C, row-major, with op(A) (M,K) and op(B) (K,N): A is stored
/// (M,K), or (K,M) when `transA`; B is stored (K,N), or (N,K) when `transB`; lda, ldb, ldc are row strides.
///
/// The output is cut into a grid of blocks (`GemmGrid`) that is a function of the shape only, never of
/// `threads`: up to 64 blocks on large products, so that a 64-core server has work for every core.
/// Each block is one single-threaded OpenBLAS sgemm over the whole inner dimension, and the blocks are
/// spread over `threads` workers. So the result is bit-identical for any thread count (OpenBLAS's own
/// threading is not: it can split the inner dimension differently).
public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                 b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int) {
    guard m > 0, n > 0 else { return }
    let grid = GemmGrid(m: m, n: n, k: k)
    useBLASThreads(1)
    let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
    Parallel.forEach(grid.count, threads: min(threads, grid.count)) { blk in
        let (rows, columns) = grid.block(blk)
        let ap = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
        let bp = transB ? b + columns.lowerBound * ldb : b + columns.lowerBound
        cblas_sgemm(CblasRowMajor, ta, tb, Int32(rows.count), Int32(columns.count), Int32(k), alpha, ap, Int32(lda), bp, Int32(ldb),
                    beta, c + rows.lowerBound * ldc + columns.lowerBound, Int32(ldc))
    }
}

/// How `gemm` cuts an (M,N,K) product: `rows` × `columns` blocks of the output, each a power of two, from
/// the shape alone. Under 8 MFLOP the product is one block. Otherwise it is cut in two, and then again
/// and again while every block keeps at least `minimumBlockFLOPs` and 64 rows and columns, up to
/// `maximumBlocks`; each cut halves the block's longer side (rows first on a tie). Powers of two
/// balance over 2, 4, 8, … threads; the whole inner dimension stays in each block, so each output
/// element is summed in the same order whatever the thread count.
public struct GemmGrid: Equatable, Sendable {
    /// Blocks along M and along N.
    public let rows: Int, columns: Int
    /// The output extent.
    public let m: Int, n: Int
    /// The most blocks a product is cut into.
    public static let maximumBlocks = 64
    /// The least work a block is left with by a cut after the first (2·m·n·k of the block).
    public static let minimumBlockFLOPs = 64_000_000.0

    /// The grid for an (M,N,K) product.
    public init(m: Int, n: Int, k: Int) {
        self.m = m
        self.n = n
        let flops = 2 * Double(m) * Double(n) * Double(k)
        var r = 1, c = 1
        if flops >= 8_000_000 {
            while r * c < Self.maximumBlocks {
                let first = r * c == 1
                guard first || flops / Double(2 * r * c) >= Self.minimumBlockFLOPs else { break }
                let bm = m / r, bn = n / c  // block sides before the cut
                if bm >= bn && bm >= 128 { r *= 2 }
                else if bn >= 128 { c *= 2 }
                else if first && bm >= 2 { r *= 2 }
                else if first && bn >= 2 { c *= 2 }
                else { break }
            }
        }
        rows = r
        columns = c
    }

    /// The number of blocks.
    public var count: Int { rows * columns }

    /// The output rows and columns of block `i` (row-major over the grid).
    public func block(_ i: Int) -> (rows: Range<Int>, columns: Range<Int>) {
        let bi = i / columns, bj = i % columns
        return (bi * m / rows..<(bi + 1) * m / rows, bj * n / columns..<(bj + 1) * n / columns)
    }
}
