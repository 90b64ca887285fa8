import Foundation

/// Softmax cross-entropy over the rows of logits (N,V) with integer targets (N,) in 0..<V.
/// Writes losses (N,) = logsumexp(row) − row[target], logsumexp (N,) (cached for the backward pass)
/// and predictions (N,) = first index of the row's maximum. Returns the mean loss over the N rows
/// (summed in Double, in row order) and the number of rows whose prediction equals the target.
/// Rows are split over `threads`; results do not depend on the split.
@discardableResult
public func crossEntropyForward(losses: UnsafeMutablePointer<Float>, logsumexp: UnsafeMutablePointer<Float>,
                                predictions: UnsafeMutablePointer<Int32>, logits: UnsafePointer<Float>,
                                targets: UnsafePointer<Int32>, n: Int, v: Int, threads: Int)
    -> (meanLoss: Double, correct: Int) {
    guard n > 0 else { return (0, 0) }
    Parallel.forEach(n, threads: n * v < 16_384 ? 1 : threads) { i in
        let row = logits + i * v
        // Row max and the first index where it occurs: each lane keeps its max and where it first saw it.
        var mx = F16(repeating: -.infinity)
        var at = SIMD16<Int32>(repeating: Int32.max)
        var idx = SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        var j = 0
        while j + 16 <= v {
            let x = load16(row + j)
            let greater = mx .< x
            mx.replace(with: x, where: greater)
            at.replace(with: idx, where: greater)
            idx &+= 16
            j += 16
        }
        var m = mx.max()
        var arg = Int(Int32.max)
        for lane in 0..<16 where mx[lane] == m { arg = Swift.min(arg, Int(at[lane])) }
        while j < v {
            if row[j] > m || (row[j] == m && j < arg) { m = row[j]; arg = j }
            j += 1
        }
        if arg == Int(Int32.max) { arg = 0 }  // an all-NaN row: any valid index (the loss is NaN anyway)
        let mv = F16(repeating: m)
        var acc = F16(repeating: 0)
        j = 0
        while j + 16 <= v { acc += exp16(load16(row + j) - mv); j += 16 }
        var sum = acc.sum()
        while j < v { sum += exp1(row[j] - m); j += 1 }
        let lse = m + Foundation.log(sum)
        logsumexp[i] = lse
        losses[i] = lse - row[Int(targets[i])]
        predictions[i] = Int32(arg)
    }
    var total = 0.0, correct = 0
    for i in 0..<n {
        total += Double(losses[i])
        if predictions[i] == targets[i] { correct += 1 }
    }
    return (total / Double(n), correct)
}

/// Backward of the mean loss of `crossEntropyForward`, scaled: WRITES (does not accumulate)
/// dlogits (N,V) = (softmax(row) − onehot(target))·scale/N, from the cached logsumexp (N,).
/// `dlogits` may be `logits` (in place).
public func crossEntropyBackward(dlogits: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
                                 logsumexp: UnsafePointer<Float>, targets: UnsafePointer<Int32>, n: Int, v: Int,
                                 scale: Float = 1, threads: Int) {
    guard n > 0 else { return }
    let s = scale / Float(n)
    let sv = F16(repeating: s)
    Parallel.forEach(n, threads: n * v < 16_384 ? 1 : threads) { i in
        let row = logits + i * v, d = dlogits + i * v
        let lv = F16(repeating: logsumexp[i])
        var j = 0
        while j + 16 <= v { store16(exp16(load16(row + j) - lv) * sv, d + j); j += 16 }
        while j < v { d[j] = exp1(row[j] - logsumexp[i]) * s; j += 1 }
        d[Int(targets[i])] -= s
    }
}

extension Naive {
    /// Reference for `crossEntropyForward`: (mean loss, per-row losses, correct count).
    public static func crossEntropyForward<T: BinaryFloatingPoint>(logits: [T], targets: [Int32], n: Int, v: Int)
        -> (meanLoss: T, losses: [T], correct: Int) {
        var losses = [T](repeating: 0, count: n)
        var correct = 0
        for i in 0..<n {
            let row = Array(logits[(i * v)..<((i + 1) * v)])
            let m = row.max()!
            var sum = 0.0
            for x in row { sum += Foundation.exp(Double(x - m)) }
            losses[i] = m + T(Foundation.log(sum)) - row[Int(targets[i])]
            if row.firstIndex(of: m)! == Int(targets[i]) { correct += 1 }
        }
        return (losses.reduce(0, +) / T(n), losses, correct)
    }

    /// Reference for `crossEntropyBackward`: returns dlogits = (softmax − onehot)·scale/N.
    public static func crossEntropyBackward<T: BinaryFloatingPoint>(logits: [T], targets: [Int32], n: Int, v: Int,
                                                                      scale: T = 1) -> [T] {
        var d = [T](repeating: 0, count: n * v)
        for i in 0..<n {
            let row = Array(logits[(i * v)..<((i + 1) * v)])
            let m = row.max()!
            var sum = 0.0
            for x in row { sum += Foundation.exp(Double(x - m)) }
            for j in 0..<v {
                let pj = T(Foundation.exp(Double(row[j] - m)) / sum)
                d[i * v + j] = (pj - (j == Int(targets[i]) ? 1 : 0)) * scale / T(n)
            }
        }
        return d
    }
}
