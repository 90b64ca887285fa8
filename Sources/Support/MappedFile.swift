import Foundation

/// A read-only memory map of a file.
public final class MappedFile: @unchecked Sendable {
    public let pointer: UnsafeRawPointer?
    public let count: Int

    /// Maps the file; with `populate`, all its pages at once (MAP_POPULATE) rather than one page
    /// fault at a time, for files that will be read whole.
    public init(path: String, populate: Bool = false) throws(InputError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .readFailed(path: path, reason: String(cString: strerror(errno))) }
        count = Int(st.st_size)
        if count == 0 { pointer = nil; return }
        guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0), p != MAP_FAILED else {
            throw .readFailed(path: path, reason: String(cString: strerror(errno)))
        }
        pointer = UnsafeRawPointer(p)
    }

    deinit { if let p = pointer { munmap(UnsafeMutableRawPointer(mutating: p), count) } }

    /// The file as a typed buffer (the file length must be a multiple of the element size).
    public func buffer<T>(of type: T.Type) -> UnsafeBufferPointer<T> {
        guard let p = pointer else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: p.assumingMemoryBound(to: T.self), count: count / MemoryLayout<T>.stride)
    }
}
