import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The number of CPUs this process may run on: the CPUs in its affinity mask (what `nproc` prints,
/// and what `taskset` or a container's cpuset restricts), or, where that mask cannot be read,
/// `ProcessInfo.activeProcessorCount` (which counts every online CPU). The default thread count of
/// every command: two jobs pinned to one core each then run one thread each instead of two threads
/// contending for one core.
public func availableCores() -> Int {
    let online = ProcessInfo.processInfo.activeProcessorCount
    #if os(Linux)
    // sched_getaffinity is a GNU extension that Glibc's module does not import; look it up by name.
    typealias GetAffinity = @convention(c) (pid_t, Int, UnsafeMutableRawPointer) -> Int32
    guard let symbol = dlsym(nil, "sched_getaffinity") else { return online }
    let getAffinity = unsafeBitCast(symbol, to: GetAffinity.self)
    var mask = [UInt8](repeating: 0, count: 1024)  // room for 8,192 CPUs
    let rc = mask.withUnsafeMutableBytes { getAffinity(0, $0.count, $0.baseAddress!) }
    guard rc == 0 else { return online }
    let count = mask.reduce(0) { $0 + $1.nonzeroBitCount }
    return count > 0 ? count : online
    #else
    return online
    #endif
}
