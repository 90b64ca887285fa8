import CZstd
import Foundation

/// Errors reading input files. Each names the file.
public enum InputError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case readFailed(path: String, reason: String)
    case corruptCompressed(path: String, offset: Int, reason: String)
    case notText(path: String, offset: Int)
    case noInputs(patterns: [String])
    case lineTooLong(path: String, line: Int, limit: Int)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "\(path): cannot open (\(reason)); check the path"
        case let .readFailed(path, reason): return "\(path): read failed (\(reason))"
        case let .corruptCompressed(path, offset, reason):
            return "\(path): corrupt zstd data near compressed byte \(offset) (\(reason)); re-create or re-download the file"
        case let .notText(path, offset):
            return "\(path): looks binary (NUL-heavy data near byte \(offset)); give a UTF-8 text, .jsonl or .zst file"
        case let .noInputs(patterns): return "no input files match \(patterns.joined(separator: " ")); give files, directories or globs"
        case let .lineTooLong(path, line, limit):
            return "\(path):\(line): line longer than \(limit) bytes; split it (this mode needs whole lines)"
        }
    }
}

/// A stream of bytes: files, stdin, or zstd-decompressed versions of them.
public protocol ByteSource: AnyObject {
    /// Reads up to `buffer.count` bytes; returns 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(InputError) -> Int
    /// Name used in error messages.
    var name: String { get }
}

/// Reads a file descriptor (a file or stdin).
public final class FileDescriptorSource: ByteSource {
    public let name: String
    let fd: Int32
    let owned: Bool

    /// Opens a path for reading.
    public init(path: String) throws(InputError) {
        name = path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw .cannotOpen(path: path, reason: "is a directory")
        }
        fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        owned = true
    }

    /// Wraps an open descriptor (0 for stdin).
    public init(fd: Int32, name: String = "<stdin>") {
        self.fd = fd
        self.name = name
        owned = false
    }

    deinit { if owned { close(fd) } }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(InputError) -> Int {
        while true {
            let n = Foundation.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw .readFailed(path: name, reason: String(cString: strerror(errno)))
        }
    }
}

/// Streaming zstd decompression of another source (concatenated frames allowed).
public final class ZstdSource: ByteSource {
    public var name: String { inner.name }
    let inner: ByteSource
    let stream: OpaquePointer
    var input: UnsafeMutableRawBufferPointer
    var inputPos = 0
    var inputEnd = 0
    var consumed = 0
    var innerDone = false
    var frameOpen = false

    /// Decompresses `inner`.
    public init(_ inner: ByteSource, prefix: [UInt8] = []) {
        self.inner = inner
        stream = ZSTD_createDStream()
        ZSTD_initDStream(stream)
        let cap = max(ZSTD_DStreamInSize(), prefix.count)
        input = .allocate(byteCount: cap, alignment: 16)
        input.copyBytes(from: prefix)
        inputEnd = prefix.count
    }

    deinit {
        ZSTD_freeDStream(stream)
        input.deallocate()
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(InputError) -> Int {
        guard buffer.count > 0 else { return 0 }
        while true {
            if inputPos == inputEnd && !innerDone {
                inputEnd = try inner.read(into: input)
                inputPos = 0
                if inputEnd == 0 { innerDone = true }
            }
            if inputPos == inputEnd && innerDone {
                if frameOpen { throw .corruptCompressed(path: name, offset: consumed, reason: "truncated: the last frame is incomplete") }
                return 0
            }
            var inBuf = ZSTD_inBuffer(src: input.baseAddress! + inputPos, size: inputEnd - inputPos, pos: 0)
            var outBuf = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
            let r = ZSTD_decompressStream(stream, &outBuf, &inBuf)
            if ZSTD_isError(r) != 0 {
                throw .corruptCompressed(path: name, offset: consumed + inBuf.pos, reason: String(cString: ZSTD_getErrorName(r)))
            }
            inputPos += inBuf.pos
            consumed += inBuf.pos
            frameOpen = r != 0
            if outBuf.pos > 0 { return outBuf.pos }
        }
    }
}

/// Opens an input path: `-` is stdin; zstd data (by magic number, whatever the name) is decompressed.
public func openInput(_ path: String) throws(InputError) -> ByteSource {
    let raw: ByteSource = path == "-" ? FileDescriptorSource(fd: 0) : try FileDescriptorSource(path: path)
    var magic = [UInt8](repeating: 0, count: 4)
    var got = 0
    while got < 4 {
        let n = try readAppending(raw, into: &magic, at: got)
        if n == 0 { break }
        got += n
    }
    let prefix = Array(magic[0..<got])
    if prefix == [0x28, 0xB5, 0x2F, 0xFD] { return ZstdSource(raw, prefix: prefix) }
    return PrefixedSource(prefix: prefix, inner: raw)
}

/// A source with some bytes already read back in front.
final class PrefixedSource: ByteSource {
    var prefix: [UInt8]
    let inner: ByteSource
    var name: String { inner.name }
    init(prefix: [UInt8], inner: ByteSource) { self.prefix = prefix; self.inner = inner }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(InputError) -> Int {
        if !prefix.isEmpty {
            let n = min(prefix.count, buffer.count)
            buffer.copyBytes(from: prefix[0..<n])
            prefix.removeFirst(n)
            return n
        }
        return try inner.read(into: buffer)
    }
}

/// Expands input arguments: files as they are, directories recursively (sorted, hidden files
/// skipped), and `*`/`?` globs. The result is sorted within each argument so runs are deterministic.
public func expandInputs(_ args: [String]) throws(InputError) -> [String] {
    var out: [String] = []
    let fm = FileManager.default
    for arg in args {
        if arg == "-" { out.append(arg); continue }
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: arg, isDirectory: &isDir) {
            if isDir.boolValue {
                guard let e = fm.enumerator(atPath: arg) else { throw .cannotOpen(path: arg, reason: "unreadable directory") }
                var files: [String] = []
                while let rel = e.nextObject() as? String {
                    let full = (arg as NSString).appendingPathComponent(rel)
                    if rel.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
                    var d: ObjCBool = false
                    if fm.fileExists(atPath: full, isDirectory: &d), !d.boolValue { files.append(full) }
                }
                out += files.sorted()
            } else {
                out.append(arg)
            }
        } else if arg.contains("*") || arg.contains("?") {
            var g = glob_t()
            defer { globfree(&g) }
            if glob(arg, 0, nil, &g) == 0 {
                out += (0..<Int(g.gl_pathc)).compactMap { g.gl_pathv[$0].map { String(cString: $0) } }.sorted()
            }
        } else {
            throw .cannotOpen(path: arg, reason: "no such file or directory")
        }
    }
    guard !out.isEmpty else { throw .noInputs(patterns: args) }
    return out
}

/// Reads from `source` into `array[offset...]`; returns the byte count (0 at the end).
public func readAppending(_ source: ByteSource, into array: inout [UInt8], at offset: Int) throws(InputError) -> Int {
    let result: Result<Int, InputError> = array.withUnsafeMutableBytes { b in
        Result { () throws(InputError) -> Int in
            try source.read(into: UnsafeMutableRawBufferPointer(rebasing: b[offset...]))
        }
    }
    return try result.get()
}
