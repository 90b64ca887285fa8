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

/// The `OPENBLAS_CORETYPE` this process should run with when OpenBLAS did not recognise the CPU and
/// fell back to kernels far older than it supports; nil when its choice fits (or the user chose, by
/// setting `OPENBLAS_CORETYPE`). Debian's OpenBLAS 0.3.21 takes CPUs newer than it knows for a
/// Prescott (SSE3): on a 5th-generation Xeon (model 207, AVX-512) its sgemm then ran a MiniLM
/// classifier's predictions 3.3 times slower than with its SkylakeX kernels. The kernels are chosen when
/// libopenblas loads, before any code of ours runs, so the fix is to run again with the variable set
/// (`correctBLASCoreByReexec`).
public func blasCoreCorrection(environment: [String: String] = ProcessInfo.processInfo.environment,
                               flags: Set<String> = cpuFlags(), core: String = Parallel.blasCoreName) -> String? {
    guard (environment["OPENBLAS_CORETYPE"] ?? "").isEmpty else { return nil }
    let core = core.lowercased()
    let avx512 = flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"])
    let avx2 = flags.isSuperset(of: ["avx2", "fma"])
    let avx512Cores: Set = ["skylakex", "cooperlake", "sapphirerapids", "zen"]  // zen: AMD's own choice, kept
    let avx2Cores: Set = avx512Cores.union(["haswell", "excavator"])
    if avx512 { return avx512Cores.contains(core) ? nil : "SkylakeX" }
    if avx2 { return avx2Cores.contains(core) ? nil : "Haswell" }
    return nil
}

/// Runs this program again with `OPENBLAS_CORETYPE` set to `blasCoreCorrection()` when there is one
/// (the same arguments, environment and process id: execv); returns only when there is none or the
/// exec failed. Call first thing in `main`.
public func correctBLASCoreByReexec() {
    guard let core = blasCoreCorrection() else { return }
    setenv("OPENBLAS_CORETYPE", core, 1)
    let args = CommandLine.arguments.map { strdup($0) } + [nil]
    execv("/proc/self/exe", args)
    unsetenv("OPENBLAS_CORETYPE")  // exec failed: carry on with OpenBLAS's own choice
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
