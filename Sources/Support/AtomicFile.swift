import Foundation

/// A file that never exists half-written: bytes go to a temporary file in the destination's directory,
/// and `commit()` fsyncs it, renames it over the destination and fsyncs the directory. A writer dropped
/// without `commit()` removes its temporary file. For outputs written in pieces (predictions); use
/// `writeFileAtomically` for a whole `Data`.
public final class AtomicFileWriter {
    public let path: String
    let temporary: String
    let fd: Int32
    let writer: FileDescriptorWriter
    var done = false

    /// Creates the temporary file next to `path`.
    public init(path: String) throws(OutputError) {
        let url = URL(fileURLWithPath: path)
        self.path = path
        temporary = (url.deletingLastPathComponent().path as NSString).appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
        writer = FileDescriptorWriter(fd: fd, name: path)
    }

    deinit {
        if !done { close(fd); unlink(temporary) }
    }

    /// Appends bytes.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(OutputError) { try writer.write(bytes) }

    /// Appends bytes.
    public func write(_ bytes: [UInt8]) throws(OutputError) { try writer.write(bytes) }

    /// Makes the file appear at `path` with everything written, or throws and leaves `path` as it was.
    public func commit() throws(OutputError) {
        done = true
        if fsync(fd) != 0 { let e = errno; close(fd); unlink(temporary); throw .writeFailed(path: path, reason: String(cString: strerror(e))) }
        close(fd)
        if rename(temporary, path) != 0 { let e = errno; unlink(temporary); throw .writeFailed(path: path, reason: String(cString: strerror(e))) }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}

/// Writes a file so that it never exists half-written: a temporary file in the same directory,
/// fsync, rename over the destination, fsync of the directory.
public func writeFileAtomically(_ data: Data, to path: String) throws(OutputError) {
    let file = try AtomicFileWriter(path: path)
    let written: Result<Void, OutputError> = data.withUnsafeBytes { b in Result { () throws(OutputError) in try file.write(b) } }
    try written.get()
    try file.commit()
}
