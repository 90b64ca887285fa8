import Foundation

/// Writes a file so that it never exists half-written: a temporary file in the same directory,
/// fsync, rename over the destination, fsync of the directory.
public func writeFileAtomically(_ data: Data, to path: String) throws(OutputError) {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    let tmp = (dir as NSString).appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
    let writer = FileDescriptorWriter(fd: fd, name: path)
    let written: Result<Void, OutputError> = data.withUnsafeBytes { b in Result { () throws(OutputError) in try writer.write(b) } }
    if case .failure(let error) = written {
        close(fd); unlink(tmp)
        throw error
    }
    if fsync(fd) != 0 { let e = errno; close(fd); unlink(tmp); throw .writeFailed(path: path, reason: String(cString: strerror(e))) }
    close(fd)
    if rename(tmp, path) != 0 { let e = errno; unlink(tmp); throw .writeFailed(path: path, reason: String(cString: strerror(e))) }
    let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}
