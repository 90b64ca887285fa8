import CBLAS
import CDNNLShim
import Foundation

/// Floats of scratch that `attentionForward` and `attentionBackward` need: 2·T·T per thread.
public func attentionScratchCount(t: Int, threads: Int) -> Int { 2 * t * t * max(1, threads) }

/// Multi-head self-attention with a key padding mask, as Hugging Face's BertSelfAttention (eager).
/// For each sequence b and head h, with Q, K, V the head's (T,HS) slices of qkv:
/// scores = Q·Kᵀ/√HS; keys with keyMask 0 get probability exactly 0 (HF adds finfo.min before the
/// softmax, which gives the same result while one key is real; a sequence with no real key gets
/// uniform probabilities, as HF does); P = softmax(scores) is cached; P' = dropout(P) with
/// probability `p`; out = P'·V, heads concatenated.
/// Shapes: out (B,T,H) with H = NH·HS; probs (B,NH,T,T); dropMask (B,NH,T,T), written when p > 0;
/// qkv (B,T,3H) = [Q | K | V], each H wide, head h at columns h·HS..<(h+1)·HS; keyMask (B,T) 1/0;
/// scratch: `attentionScratchCount(t:threads:)` floats.
/// The (b,h) pairs are split over `threads`, each running single-threaded sgemm (OpenBLAS is set to
/// one thread while they run); the results do not depend on `threads`.
/// `bf16`: nil multiplies in fp32; a backend makes the two products (Q·Kᵀ and P'·V, and the four of
/// the backward) take bf16-rounded operands with fp32 accumulation, as `gemmBF16` does. The scores,
/// the softmax, the dropout and the cached probs stay fp32.
public func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                             dropMask: UnsafeMutablePointer<UInt8>?, qkv: UnsafePointer<Float>,
                             keyMask: UnsafePointer<Int32>, b: Int, t: Int, nh: Int, hs: Int, p: Float, seed: UInt64,
                             scratch: UnsafeMutablePointer<Float>, threads: Int, bf16: BF16Backend? = nil) {
    let h = nh * hs, ld = 3 * h, tt = t * t
    let sampler = DropoutSampler(p: p, seed: seed)
    precondition(p == 0 || dropMask != nil, "attentionForward: p > 0 needs a dropMask")
    forEachHead(b: b, nh: nh, t: t, hs: hs, bf16: bf16, threads: threads) { job, bi, hd, tid, product in
        let q = qkv + bi * t * ld + hd * hs
        headForward(q: q, ldq: ld, rows: t, positions: nil, k: q + h, v: q + 2 * h, ldkv: ld, keyMask: keyMask + bi * t, t: t,
                    hs: hs, p: p, probs: probs + job * tt, dropMask: dropMask.map { $0 + job * tt }, sampler: sampler, dropBase: job * tt,
                    out: out + bi * t * h + hd * hs, ldo: h, scratch: scratch + tid * 2 * tt, product: product)
    }
}

/// Backward of `attentionForward` from the cached probs and dropMask: ACCUMULATES into dqkv (B,T,3H).
/// dout (B,T,H); the other arguments as in the forward pass.
public func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                              probs: UnsafePointer<Float>, dropMask: UnsafePointer<UInt8>?, b: Int, t: Int, nh: Int,
                              hs: Int, p: Float, scratch: UnsafeMutablePointer<Float>, threads: Int, bf16: BF16Backend? = nil) {
    let h = nh * hs, ld = 3 * h, tt = t * t
    precondition(p == 0 || dropMask != nil, "attentionBackward: p > 0 needs the forward's dropMask")
    forEachHead(b: b, nh: nh, t: t, hs: hs, bf16: bf16, threads: threads) { job, bi, hd, tid, product in
        let q = qkv + bi * t * ld + hd * hs, dq = dqkv + bi * t * ld + hd * hs
        headBackward(dq: dq, ldq: ld, dk: dq + h, dv: dq + 2 * h, ldkv: ld, dout: dout + bi * t * h + hd * hs, ldo: h, q: q,
                     k: q + h, v: q + 2 * h, probs: probs + job * tt, dropMask: dropMask.map { $0 + job * tt }, rows: t, t: t,
                     hs: hs, p: p, scratch: scratch + tid * 2 * tt, product: product)
    }
}

/// `attentionForward` for selected query rows only: keys and values are every position, queries are
/// the R rows of `q`, grouped by sequence (rows rowStart[b]..<rowStart[b+1] belong to sequence b, at
/// positions `positions`). Each output row equals the full kernel's row for that position, with the
/// same dropout draws. Used for the last encoder layer, whose output is needed only at the masked
/// positions and [CLS].
/// Shapes: out (R,H); q (R,H) the queries, head h at columns h·HS..<(h+1)·HS; qkv (B,T,3H) (its K and
/// V parts are read); keyMask (B,T); rowStart (B+1,); positions (R,) in 0..<T; probs and dropMask:
/// R·NH·T, per sequence b a block (NH, r_b, T) at rowStart[b]·NH·T; scratch as `attentionForward`.
public func attentionForwardRows(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                                 dropMask: UnsafeMutablePointer<UInt8>?, q: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                                 keyMask: UnsafePointer<Int32>, rowStart: UnsafePointer<Int32>, positions: UnsafePointer<Int32>,
                                 b: Int, t: Int, nh: Int, hs: Int, p: Float, seed: UInt64,
                                 scratch: UnsafeMutablePointer<Float>, threads: Int, bf16: BF16Backend? = nil) {
    let h = nh * hs, ld = 3 * h, tt = t * t
    let sampler = DropoutSampler(p: p, seed: seed)
    precondition(p == 0 || dropMask != nil, "attentionForwardRows: p > 0 needs a dropMask")
    forEachHead(b: b, nh: nh, t: t, hs: hs, bf16: bf16, threads: threads) { job, bi, hd, tid, product in
        let r0 = Int(rowStart[bi]), rows = Int(rowStart[bi + 1]) - r0
        guard rows > 0 else { return }
        let kq = qkv + bi * t * ld + hd * hs + h
        let po = (r0 * nh + hd * rows) * t
        headForward(q: q + r0 * h + hd * hs, ldq: h, rows: rows, positions: positions + r0, k: kq, v: kq + h, ldkv: ld,
                    keyMask: keyMask + bi * t, t: t, hs: hs, p: p, probs: probs + po, dropMask: dropMask.map { $0 + po },
                    sampler: sampler, dropBase: job * tt, out: out + r0 * h + hd * hs, ldo: h, scratch: scratch + tid * 2 * tt,
                    product: product)
    }
}

/// Backward of `attentionForwardRows`: ACCUMULATES into dq (R,H) and the K and V columns of
/// dqkv (B,T,3H) (its Q columns are not touched). dout (R,H); the rest as in the forward pass.
public func attentionBackwardRows(dq: UnsafeMutablePointer<Float>, dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                  q: UnsafePointer<Float>, qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                  dropMask: UnsafePointer<UInt8>?, rowStart: UnsafePointer<Int32>, b: Int, t: Int, nh: Int,
                                  hs: Int, p: Float, scratch: UnsafeMutablePointer<Float>, threads: Int,
                                  bf16: BF16Backend? = nil) {
    let h = nh * hs, ld = 3 * h, tt = t * t
    precondition(p == 0 || dropMask != nil, "attentionBackwardRows: p > 0 needs the forward's dropMask")
    forEachHead(b: b, nh: nh, t: t, hs: hs, bf16: bf16, threads: threads) { job, bi, hd, tid, product in
        let r0 = Int(rowStart[bi]), rows = Int(rowStart[bi + 1]) - r0
        guard rows > 0 else { return }
        let kq = qkv + bi * t * ld + hd * hs + h, dk = dqkv + bi * t * ld + hd * hs + h
        let po = (r0 * nh + hd * rows) * t
        headBackward(dq: dq + r0 * h + hd * hs, ldq: h, dk: dk, dv: dk + h, ldkv: ld, dout: dout + r0 * h + hd * hs, ldo: h,
                     q: q + r0 * h + hd * hs, k: kq, v: kq + h, probs: probs + po, dropMask: dropMask.map { $0 + po },
                     rows: rows, t: t, hs: hs, p: p, scratch: scratch + tid * 2 * tt, product: product)
    }
}

/// One (sequence, head): probs (rows,T) = masked softmax(Q·Kᵀ/√HS), out (rows,HS) = dropout(probs)·V.
/// Q rows at stride ldq; K, V (T,HS) at stride ldkv; out at stride ldo. Dropout element (i, j) draws
/// index dropBase + position(i)·T + j (position(i) = positions[i], or i when nil).
@inline(__always)
func headForward(q: UnsafePointer<Float>, ldq: Int, rows: Int, positions: UnsafePointer<Int32>?, k: UnsafePointer<Float>,
                 v: UnsafePointer<Float>, ldkv: Int, keyMask: UnsafePointer<Int32>, t: Int, hs: Int, p: Float,
                 probs: UnsafeMutablePointer<Float>, dropMask: UnsafeMutablePointer<UInt8>?, sampler: DropoutSampler,
                 dropBase: Int, out: UnsafeMutablePointer<Float>, ldo: Int, scratch: UnsafeMutablePointer<Float>,
                 product: HeadProduct) {
    let scale = 1 / Float(hs).squareRoot()
    // scores (rows,T) = scale · Q·Kᵀ
    product(transA: false, transB: true, m: rows, n: t, k: hs, alpha: scale, a: q, lda: ldq, b: k, ldb: ldkv, beta: 0, c: probs, ldc: t)
    maskedSoftmaxRows(probs, mask: keyMask, rows: rows, t: t)
    var pd = UnsafePointer(probs)
    if p > 0, let dropMask {
        for i in 0..<rows {
            let base = dropBase + (positions.map { Int($0[i]) } ?? i) * t
            for j in 0..<t {
                let keep = sampler.keep(base + j)
                dropMask[i * t + j] = keep ? 1 : 0
                scratch[i * t + j] = keep ? probs[i * t + j] * sampler.scale : 0
            }
        }
        pd = UnsafePointer(scratch)
    }
    // out (rows,HS) = P'·V
    product(transA: false, transB: false, m: rows, n: hs, k: t, alpha: 1, a: pd, lda: t, b: v, ldb: ldkv, beta: 0, c: out, ldc: ldo)
}

/// Backward of `headForward`: dq (rows,HS), dk, dv (T,HS) accumulate; dout (rows,HS).
@inline(__always)
func headBackward(dq: UnsafeMutablePointer<Float>, ldq: Int, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                  ldkv: Int, dout: UnsafePointer<Float>, ldo: Int, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                  v: UnsafePointer<Float>, probs: UnsafePointer<Float>, dropMask: UnsafePointer<UInt8>?, rows: Int, t: Int,
                  hs: Int, p: Float, scratch: UnsafeMutablePointer<Float>, product: HeadProduct) {
    let scale = 1 / Float(hs).squareRoot()
    let n = rows * t
    let pd = scratch, dp = scratch + t * t
    var pdrop = probs
    let dropScale = Float(1 / (1 - Double(p)))
    if p > 0, let dropMask {
        for i in 0..<n { pd[i] = dropMask[i] != 0 ? probs[i] * dropScale : 0 }
        pdrop = UnsafePointer(pd)
    }
    // dP' (rows,T) = dO·Vᵀ ; dV += P'ᵀ·dO
    product(transA: false, transB: true, m: rows, n: t, k: hs, alpha: 1, a: dout, lda: ldo, b: v, ldb: ldkv, beta: 0, c: dp, ldc: t)
    product(transA: true, transB: false, m: t, n: hs, k: rows, alpha: 1, a: pdrop, lda: t, b: dout, ldb: ldo, beta: 1, c: dv, ldc: ldkv)
    if p > 0, let dropMask {
        for i in 0..<n where dropMask[i] == 0 { dp[i] = 0 }
        scaleInPlace(dp, n, dropScale)
    }
    softmaxBackwardRows(dp, probs: probs, rows: rows, t: t)
    // dQ += scale·dS·K ; dK += scale·dSᵀ·Q
    product(transA: false, transB: false, m: rows, n: hs, k: t, alpha: scale, a: dp, lda: t, b: k, ldb: ldkv, beta: 1, c: dq, ldc: ldq)
    product(transA: true, transB: false, m: t, n: hs, k: rows, alpha: scale, a: dp, lda: t, b: q, ldb: ldq, beta: 1, c: dk, ldc: ldkv)
}

/// The packing room of attention's bf16 products, one part per worker (none in fp32).
struct HeadProducts {
    let backend: BF16Backend?
    let t: Int, hs: Int
    /// `workers` parts of `HeadProduct.bytes(t:hs:)` bytes; nil in fp32.
    let room: UnsafeMutableRawPointer?

    init(_ backend: BF16Backend?, t: Int, hs: Int, threads: Int) {
        self.backend = backend
        self.t = t
        self.hs = hs
        room = backend == nil ? nil
            : .allocate(byteCount: max(1, threads) * HeadProduct.bytes(t: t, hs: hs), alignment: 64)
    }

    /// Worker `tid`'s products.
    func worker(_ tid: Int) -> HeadProduct {
        HeadProduct(backend: backend, room: room.map { $0 + tid * HeadProduct.bytes(t: t, hs: hs) }, t: t, hs: hs)
    }

    func deallocate() { room?.deallocate() }
}

/// One worker's products inside attention: single-threaded, in fp32 (OpenBLAS sgemm) or, with a bf16
/// backend, on bf16-rounded operands with fp32 accumulation, the arithmetic of `gemmBF16`. The
/// operands are rounded into the worker's room, packed with row stride = their width.
struct HeadProduct {
    let backend: BF16Backend?
    /// op(A) packed at the start (up to T·max(T,HS) elements), op(B) after it (up to T·HS).
    let room: UnsafeMutableRawPointer?
    let t: Int, hs: Int

    /// The room one worker needs: both operands at 4 bytes an element (the reference keeps the rounded
    /// values as fp32; oneDNN's bf16 needs half).
    static func bytes(t: Int, hs: Int) -> Int { 4 * (t * max(t, hs) + t * hs) }

    /// C (M,N) = alpha·op(A)·op(B) + beta·C, row-major as `gemm`; here M, N, K ≤ T or HS.
    @inline(__always)
    func callAsFunction(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard let backend, let room else {
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n),
                        Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
            return
        }
        // Stored extents: A is (M,K) or (K,M); B is (K,N) or (N,K).
        let (ar, ac) = transA ? (k, m) : (m, k), (br, bc) = transB ? (n, k) : (k, n)
        precondition(ar * ac <= t * max(t, hs) && br * bc <= t * hs, "attention product larger than its packing room")
        switch backend {
        case .reference:
            let pa = room.assumingMemoryBound(to: Float.self), pb = pa + t * max(t, hs)
            for r in 0..<ar { BFloat16.roundedFloats(a + r * lda, into: pa + r * ac, count: ac) }
            for r in 0..<br { BFloat16.roundedFloats(b + r * ldb, into: pb + r * bc, count: bc) }
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n),
                        Int32(k), alpha, pa, Int32(ac), pb, Int32(bc), beta, c, Int32(ldc))
        case .oneDNN:
            let pa = room.assumingMemoryBound(to: UInt16.self), pb = pa + t * max(t, hs)
            for r in 0..<ar { BFloat16.round(a + r * lda, into: pa + r * ac, count: ac) }
            for r in 0..<br { BFloat16.round(b + r * ldb, into: pb + r * bc, count: bc) }
            let status = bertkit_dnnl_gemm_bf16(transA ? 1 : 0, transB ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha, pa, Int64(ac),
                                                pb, Int64(bc), beta, c, Int64(ldc))
            checkOneDNN(status)
        }
    }
}

/// Runs `body(job, bi, hd, tid, product)` for every (sequence bi, head hd) of B × NH, job = bi·NH + hd,
/// on up to `threads` threads (contiguous blocks of jobs), with OpenBLAS on one thread so that each
/// worker's sgemm runs in the worker. Worker `tid` has its own `HeadProduct` (its bf16 room).
@inline(__always)
func forEachHead(b: Int, nh: Int, t: Int, hs: Int, bf16: BF16Backend?, threads: Int,
                 _ body: (_ job: Int, _ bi: Int, _ hd: Int, _ tid: Int, _ product: HeadProduct) -> Void) {
    let products = HeadProducts(bf16, t: t, hs: hs, threads: threads)
    defer { products.deallocate() }
    let count = b * nh
    let n = min(max(1, threads), count)
    useBLASThreads(1)
    Parallel.forEach(n, threads: n) { tid in
        let product = products.worker(tid)
        for job in (tid * count / n)..<((tid + 1) * count / n) { body(job, job / nh, job % nh, tid, product) }
    }
}

/// In place on s (rows,T): row-wise softmax over the keys with mask[j] = 1; masked keys get exactly 0.
/// With no real key at all, every key gets 1/T.
@inline(__always)
func maskedSoftmaxRows(_ s: UnsafeMutablePointer<Float>, mask: UnsafePointer<Int32>, rows: Int, t: Int) {
    var real = 0
    for j in 0..<t where mask[j] != 0 { real += 1 }
    if real == 0 {
        s.update(repeating: 1 / Float(t), count: rows * t)
        return
    }
    let ninf = -Float.infinity
    for i in 0..<rows {
        let row = s + i * t
        if real < t { for j in 0..<t where mask[j] == 0 { row[j] = ninf } }
        var mx = F16(repeating: ninf)
        var j = 0
        while j + 16 <= t { mx = vmax(mx, load16(row + j)); j += 16 }
        var m = mx.max()
        while j < t { m = Swift.max(m, row[j]); j += 1 }
        let mv = F16(repeating: m)
        var acc = F16(repeating: 0)
        j = 0
        while j + 16 <= t { let e = exp16(load16(row + j) - mv); store16(e, row + j); acc += e; j += 16 }
        var sum = acc.sum()
        while j < t { let e = exp1(row[j] - m); row[j] = e; sum += e; j += 1 }
        scaleInPlace(row, t, 1 / sum)
    }
}

/// In place on d (rows,T) holding dP: dS_ij = P_ij·(dP_ij − Σ_k P_ik·dP_ik).
@inline(__always)
func softmaxBackwardRows(_ d: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>, rows: Int, t: Int) {
    for i in 0..<rows {
        let row = d + i * t, pr = probs + i * t
        var acc = F16(repeating: 0)
        var j = 0
        while j + 16 <= t { acc += load16(row + j) * load16(pr + j); j += 16 }
        var dot = acc.sum()
        while j < t { dot += row[j] * pr[j]; j += 1 }
        let dv = F16(repeating: dot)
        j = 0
        while j + 16 <= t { store16(load16(pr + j) * (load16(row + j) - dv), row + j); j += 16 }
        while j < t { row[j] = pr[j] * (row[j] - dot); j += 1 }
    }
}

@inline(__always)
func scaleInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ a: Float) {
    let av = F16(repeating: a)
    var j = 0
    while j + 16 <= n { store16(load16(x + j) * av, x + j); j += 16 }
    while j < n { x[j] *= a; j += 1 }
}

extension Naive {
    /// Reference for `attentionForward`; returns out (B,T,H), probs (B,NH,T,T) before dropout and the
    /// dropout mask (B,NH,T,T) (all ones when p = 0), with the same draws as the fast kernel.
    /// `round` (identity by default) is applied to every operand of the two products, as the bf16
    /// kernels round them: Q and K before the scores, the dropped-out probabilities and V before the output.
    public static func attentionForward<T: BinaryFloatingPoint>(qkv: [T], keyMask: [Int32], b: Int, t: Int, nh: Int,
                                                                  hs: Int, p: Float, seed: UInt64, round: (T) -> T = { $0 })
        -> (out: [T], probs: [T], dropMask: [UInt8]) {
        let h = nh * hs
        var out = [T](repeating: 0, count: b * t * h)
        var probs = [T](repeating: 0, count: b * nh * t * t)
        var dropMask = [UInt8](repeating: 1, count: b * nh * t * t)
        let sampler = DropoutSampler(p: p, seed: seed)
        let scale = 1 / T(hs).squareRoot()
        for bi in 0..<b {
            let real = (0..<t).filter { keyMask[bi * t + $0] != 0 }
            for hd in 0..<nh {
                for i in 0..<t {
                    let base = ((bi * nh + hd) * t + i) * t
                    if real.isEmpty {
                        for j in 0..<t { probs[base + j] = 1 / T(t) }
                    } else {
                        var s = [T](repeating: 0, count: t)
                        for j in real {
                            var d: T = 0
                            for c in 0..<hs {
                                d += round(qkv[(bi * t + i) * 3 * h + hd * hs + c]) * round(qkv[(bi * t + j) * 3 * h + h + hd * hs + c])
                            }
                            s[j] = d * scale
                        }
                        let m = real.map { s[$0] }.max()!
                        var sum: T = 0
                        for j in real { s[j] = T(Foundation.exp(Double(s[j] - m))); sum += s[j] }
                        for j in real { probs[base + j] = s[j] / sum }
                    }
                    for j in 0..<t {
                        var pj = probs[base + j]
                        if p > 0 {
                            dropMask[base + j] = sampler.keep(base + j) ? 1 : 0
                            pj = dropMask[base + j] == 1 ? pj * T(sampler.scale) : 0
                        }
                        pj = round(pj)
                        for c in 0..<hs { out[(bi * t + i) * h + hd * hs + c] += pj * round(qkv[(bi * t + j) * 3 * h + 2 * h + hd * hs + c]) }
                    }
                }
            }
        }
        return (out, probs, dropMask)
    }

    /// Reference for `attentionBackward`; accumulates into dqkv (B,T,3H). `round` is applied to every
    /// operand of the four products as the bf16 kernels round them (dO, V, the dropped-out
    /// probabilities, the score gradient before its 1/√HS, Q and K).
    public static func attentionBackward<T: BinaryFloatingPoint>(dqkv: inout [T], dout: [T], qkv: [T], probs: [T],
                                                                   dropMask: [UInt8], b: Int, t: Int, nh: Int, hs: Int,
                                                                   p: Float, round: (T) -> T = { $0 }) {
        let h = nh * hs
        let scale = 1 / T(hs).squareRoot()
        let dropScale: T = p > 0 ? T(Float(1 / (1 - Double(p)))) : 1
        func qi(_ bi: Int, _ i: Int, _ part: Int, _ hd: Int, _ c: Int) -> Int { (bi * t + i) * 3 * h + part * h + hd * hs + c }
        for bi in 0..<b {
            for hd in 0..<nh {
                for i in 0..<t {
                    let base = ((bi * nh + hd) * t + i) * t
                    var dp = [T](repeating: 0, count: t)
                    for j in 0..<t {
                        let keep: T = p > 0 ? (dropMask[base + j] == 1 ? dropScale : 0) : 1
                        var d: T = 0
                        let pj = round(probs[base + j] * keep)
                        for c in 0..<hs {
                            let g = round(dout[(bi * t + i) * h + hd * hs + c])
                            d += g * round(qkv[qi(bi, j, 2, hd, c)])
                            dqkv[qi(bi, j, 2, hd, c)] += pj * g
                        }
                        dp[j] = d * keep
                    }
                    var dot: T = 0
                    for j in 0..<t { dot += probs[base + j] * dp[j] }
                    for j in 0..<t {
                        let ds = round(probs[base + j] * (dp[j] - dot)) * scale
                        for c in 0..<hs {
                            dqkv[qi(bi, i, 0, hd, c)] += ds * round(qkv[qi(bi, j, 1, hd, c)])
                            dqkv[qi(bi, j, 1, hd, c)] += ds * round(qkv[qi(bi, i, 0, hd, c)])
                        }
                    }
                }
            }
        }
    }
}
