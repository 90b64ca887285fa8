import Support
import CBLAS
import Dispatch

/// Threading helpers for the kernels. Kernels split their own loops with `forEach`/`forRanges`; matrix
/// products (`gemm`, attention) run OpenBLAS single-threaded inside those workers, on blocks fixed by
/// the shape, so that results never depend on the thread count and OpenBLAS's threads never compete
/// with ours.
public enum Parallel {
    /// Runs `body(i)` for i in 0..<count on up to `threads` threads, in contiguous blocks: thread t
    /// gets indices [t·count/n, (t+1)·count/n). Each index must touch memory no other index writes.
    @inlinable
    public static func forEach(_ count: Int, threads: Int, _ body: (Int) -> Void) {
        let n = min(max(1, threads), count)
        if n <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: n) { t in
                let lo = t * count / n, hi = (t + 1) * count / n
                for i in lo..<hi { shared.value(i) }
            }
        }
    }

    /// Sets the number of threads OpenBLAS uses for each matrix product.
    public static func setBLASThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
    }

    /// The number of threads OpenBLAS uses.
    public static var blasThreads: Int { Int(openblas_get_num_threads()) }

    /// The kernels OpenBLAS chose for this CPU (or that `OPENBLAS_CORETYPE` forced), e.g. "Haswell",
    /// "SkylakeX". Kernels for different cores round differently in the last bits.
    public static var blasCoreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }
}

/// Sets OpenBLAS's thread count when it differs (the setting is process-wide).
@inlinable
public func useBLASThreads(_ threads: Int) {
    let t = max(1, threads)
    if Parallel.blasThreads != t { Parallel.setBLASThreads(t) }
}

