import CBLAS
import Dispatch
import Foundation

/// A warning when `OPENBLAS_CORETYPE` forces OpenBLAS onto kernels older than the CPU supports (e.g.
/// Haswell's AVX2 kernels on an AVX-512 machine run matrix products at about half speed); nil otherwise.
public func forcedBLASCoreWarning() -> String? {
    guard let forced = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !forced.isEmpty else { return nil }
    let flags = cpuFlags()
    let hasAVX512 = flags.contains("avx512f") && flags.contains("avx512bw")
    let avx512Cores = ["skylakex", "cooperlake", "sapphirerapids", "zen4"]
    guard hasAVX512 && !avx512Cores.contains(forced.lowercased()) else { return nil }
    let core = openblas_get_corename().map { String(cString: $0) } ?? forced
    return "OPENBLAS_CORETYPE=\(forced) forces OpenBLAS onto \(core) kernels, but this CPU has AVX-512; matrix products run at about half speed. Unset OPENBLAS_CORETYPE (or set SkylakeX)."
}

/// CPU feature flags from /proc/cpuinfo (empty off Linux).
public func cpuFlags() -> Set<String> {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
          let colon = line.firstIndex(of: ":") else { return [] }
    return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
}

/// GFLOP/s of a size×size×size sgemm with OpenBLAS on `threads` threads (best of 6): the peak the
/// benchmark reports its executed FLOPs against. OpenBLAS is set back to one thread afterwards, as
/// the model's kernels run it inside their own workers.
public func sgemmPeakGFLOPS(threads: Int, size: Int = 1024) -> Double {
    useBLASThreads(threads)
    defer { useBLASThreads(1) }
    let a = [Float](repeating: 0.5, count: size * size), b = [Float](repeating: 0.25, count: size * size)
    var c = [Float](repeating: 0, count: size * size)
    var best = Double.infinity
    for _ in 0..<6 {
        let t0 = DispatchTime.now().uptimeNanoseconds
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(size), Int32(size), Int32(size), 1, a, Int32(size), b,
                    Int32(size), 0, &c, Int32(size))
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    return 2 * Double(size * size * size) / best / 1e9
}
