import CBLAS
import Foundation

/// Warns when `OPENBLAS_CORETYPE` forces OpenBLAS onto kernels older than the CPU supports (e.g.
/// Haswell's AVX2 kernels on an AVX-512 machine run matrix products at about half speed).
func warnAboutForcedBLASCore() {
    guard let forced = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !forced.isEmpty else { return }
    let flags = cpuFlags()
    let hasAVX512 = flags.contains("avx512f") && flags.contains("avx512bw")
    let forcedLower = forced.lowercased()
    let avx512Cores = ["skylakex", "cooperlake", "sapphirerapids", "zen4"]
    if hasAVX512 && !avx512Cores.contains(forcedLower) {
        let core = openblas_get_corename().map { String(cString: $0) } ?? forced
        log("bert: warning: OPENBLAS_CORETYPE=\(forced) forces OpenBLAS onto \(core) kernels, but this CPU has AVX-512; matrix products run at about half speed. Unset OPENBLAS_CORETYPE (or set SkylakeX).")
    }
}

/// CPU feature flags from /proc/cpuinfo (empty off Linux).
func cpuFlags() -> Set<String> {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
          let colon = line.firstIndex(of: ":") else { return [] }
    return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
}
