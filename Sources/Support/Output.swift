import Foundation

/// Errors writing output.
public enum OutputError: Error, CustomStringConvertible {
    case writeFailed(path: String, reason: String)
    case closedPipe

    public var description: String {
        switch self {
        case let .writeFailed(path, reason): return "\(path): write failed (\(reason)); check free space and permissions"
        case .closedPipe: return "output closed by the reader"
        }
    }

    /// What failed, without the path: the system's reason, for errors of other types that name the path.
    public var reason: String {
        switch self {
        case let .writeFailed(_, reason): return reason
        case .closedPipe: return "output closed by the reader"
        }
    }
}

/// Writes bytes to a file descriptor (stdout by default), all or an error.
public final class FileDescriptorWriter {
    let fd: Int32
    let name: String

    public init(fd: Int32 = 1, name: String = "<stdout>") {
        self.fd = fd
        self.name = name
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(OutputError) {
        var off = 0
        while off < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { throw .closedPipe }
                throw .writeFailed(path: name, reason: String(cString: strerror(errno)))
            }
            off += n
        }
    }

    public func write(_ bytes: [UInt8]) throws(OutputError) {
        let result: Result<Void, OutputError> = bytes.withUnsafeBytes { b in
            Result { () throws(OutputError) in try write(b) }
        }
        try result.get()
    }
}
