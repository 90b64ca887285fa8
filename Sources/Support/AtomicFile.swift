import Foundation

// The one file-safety layer of BertKit. Every output that a later run or reader may take for whole (shards,
// checkpoints, safetensors, classifiers, predictions, pipeline stamps and reports) is written through it:
// - a single file: `AtomicFileWriter` / `writeFileAtomically` (a temporary name beside it, fsync, rename,
//   fsync of the directory);
// - a directory of files (a checkpoint): each file with `writeSynced` inside a temporary directory, then
//   `syncDirectory`, one rename of the directory, and `syncDirectory` of its parent;
// - a file grown in pieces before it is renamed (a shard builder's buckets): `appendToFile`.
// Errors are `OutputError.writeFailed` naming the destination and the system's reason (e.g. "No space left
// on device"); callers wrap them in their own typed errors.

/// A file that never exists half-written: bytes go to a temporary file in the destination's directory,
/// and `commit()` fsyncs it, renames it over the destination and fsyncs the directory. A writer dropped
/// without `commit()` removes its temporary file. For outputs written in pieces (predictions, safetensors);
/// use `writeFileAtomically` for a whole `Data`.
public final class AtomicFileWriter {
    public let path: String
    let temporary: String
    let fd: Int32
    let writer: FileDescriptorWriter
    var done = false

    /// Creates the temporary file next to `path` (a name no other writer of `path` uses at the same time).
    public init(path: String) throws(OutputError) {
        let url = URL(fileURLWithPath: path)
        self.path = path
        temporary = (url.deletingLastPathComponent().path as NSString)
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o644)
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

    /// Appends bytes.
    public func write(_ data: Data) throws(OutputError) {
        let written: Result<Void, OutputError> = data.withUnsafeBytes { b in Result { () throws(OutputError) in try writer.write(b) } }
        try written.get()
    }

    /// Makes the file appear at `path` with everything written, or throws and leaves `path` as it was.
    public func commit() throws(OutputError) {
        done = true
        if fsync(fd) != 0 {
            let e = errno; close(fd); unlink(temporary)
            throw .writeFailed(path: path, reason: "fsync: " + String(cString: strerror(e)))
        }
        close(fd)
        if rename(temporary, path) != 0 {
            let e = errno; unlink(temporary)
            throw .writeFailed(path: path, reason: "rename: " + String(cString: strerror(e)))
        }
        syncDirectory(URL(fileURLWithPath: path).deletingLastPathComponent().path)
    }
}

/// Writes a file so that it never exists half-written: a temporary file in the same directory,
/// fsync, rename over the destination, fsync of the directory.
public func writeFileAtomically(_ data: Data, to path: String) throws(OutputError) {
    let file = try AtomicFileWriter(path: path)
    try file.write(data)
    try file.commit()
}

/// Writes `data` to `path` (created or truncated) and fsyncs it, with no rename: for a file inside a
/// temporary directory that is itself renamed into place once complete.
public func writeSynced(_ data: Data, to path: String) throws(OutputError) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    let written: Result<Void, OutputError> = data.withUnsafeBytes { b in
        Result { () throws(OutputError) in try FileDescriptorWriter(fd: fd, name: path).write(b) }
    }
    try written.get()
    guard fsync(fd) == 0 else { throw .writeFailed(path: path, reason: "fsync: " + String(cString: strerror(errno))) }
}

/// Appends bytes to a file, creating it (not synced: for pieces of a file that is synced before its rename).
public func appendToFile(_ path: String, _ bytes: [UInt8]) throws(OutputError) {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    try FileDescriptorWriter(fd: fd, name: path).write(bytes)
}

/// fsyncs a directory (or a file) by path, so that renames and removals in it are durable; best effort,
/// since not every file system supports it. An empty path is the current directory.
public func syncDirectory(_ path: String) {
    let fd = open(path.isEmpty ? "." : path, O_RDONLY)
    if fd >= 0 { fsync(fd); close(fd) }
}
