import Foundation
import Support
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// safetensors (https://github.com/huggingface/safetensors), the format of Hugging Face checkpoints:
//
//   [8 bytes: N, little-endian UInt64] [N bytes: JSON header, UTF-8] [data buffer]
//
// The header maps each tensor name to {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
// (offsets relative to the start of the data buffer) and may hold "__metadata__": {String: String}.
// Tensors are little-endian, row-major, and together cover the data buffer exactly, without gaps
// or overlaps. The reader here enforces everything the reference (Rust) implementation enforces.

/// An element type of a safetensors tensor, by its header name.
///
/// `F8_E4M3`, `F8_E5M2` and the other exotic types of newer safetensors versions are not
/// supported: a file using them is rejected with `SafetensorsError.unknownDType`.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32", f64 = "F64", i64 = "I64", u64 = "U64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }

    /// Whether `floats` / `doubles` accept this type.
    public var isFloatingPoint: Bool { self == .f16 || self == .bf16 || self == .f32 || self == .f64 }

    /// The position of this type in the reference implementation's `Dtype` enum; its writer lays
    /// tensors out by this rank, descending, then by name (see `SafetensorsWriter`).
    var referenceRank: Int {
        switch self {
        case .bool: return 0
        case .u8: return 1
        case .i8: return 2
        // 3, 4: F8_E5M2, F8_E4M3
        case .i16: return 5
        case .u16: return 6
        case .f16: return 7
        case .bf16: return 8
        case .i32: return 9
        case .u32: return 10
        case .f32: return 11
        case .f64: return 12
        case .i64: return 13
        case .u64: return 14
        }
    }
}

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Equatable, Sendable {
    /// The tensor's name, e.g. `bert.embeddings.word_embeddings.weight`.
    public var name: String
    public var dtype: SafetensorsDType
    /// Row-major shape; `[]` is a scalar (one element).
    public var shape: [Int]
    /// Byte range in the data buffer (after the 8-byte length and the header).
    public var dataOffsets: Range<Int>
    /// The product of `shape` (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    public init(name: String, dtype: SafetensorsDType, shape: [Int], dataOffsets: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }
}

/// Errors reading or writing a safetensors file. Each names the file (and the tensor, where there
/// is one) and says what to do.
public enum SafetensorsError: Error, Equatable, CustomStringConvertible {
    /// The file could not be opened or read.
    case unreadable(path: String, reason: String)
    /// The file is shorter than the 8-byte header length.
    case truncated(path: String, size: Int)
    /// The 8-byte header length is past the end of the file or over the 100,000,000-byte limit.
    case badHeaderLength(path: String, headerLength: UInt64, fileSize: Int)
    /// The header is not UTF-8, not a JSON object, or an entry lacks or mistypes a field.
    case badHeader(path: String, reason: String)
    /// A tensor with a dtype this reader does not know.
    case unknownDType(path: String, tensor: String, dtype: String)
    /// A tensor whose shape, offsets or byte count are inconsistent in themselves.
    case badTensorEntry(path: String, tensor: String, reason: String)
    /// A tensor whose bytes lie (partly) outside the data buffer.
    case offsetsOutOfRange(path: String, tensor: String, begin: Int, end: Int, bufferSize: Int)
    /// Two tensors whose byte ranges overlap.
    case overlappingTensors(path: String, tensor: String, other: String)
    /// Bytes of the data buffer that no tensor covers (a gap, or trailing bytes after the last one).
    case uncoveredBytes(path: String, begin: Int, end: Int)
    /// `info`, `floats` … with a name the file does not hold.
    case noSuchTensor(path: String, tensor: String, available: Int)
    /// An accessor that cannot convert the tensor's dtype (e.g. `floats` on an I64 tensor).
    case wrongDType(path: String, tensor: String, dtype: SafetensorsDType, wanted: String)
    /// A destination buffer whose size differs from the tensor's element count.
    case elementCountMismatch(path: String, tensor: String, count: Int, expected: Int)
    /// A tensor given to the writer that is inconsistent (byte count, duplicate or reserved name).
    case invalidTensor(path: String, tensor: String, reason: String)
    /// The file could not be written, synced or renamed.
    case writeFailed(path: String, reason: String)

    public var description: String {
        let damaged = "the file is damaged, truncated or not a safetensors file: write it again (or re-download it)"
        switch self {
        case let .unreadable(path, reason):
            return "\(path): cannot read safetensors file (\(reason)); check the path and permissions"
        case let .truncated(path, size):
            return "\(path): \(size) bytes, shorter than the 8-byte header length; \(damaged)"
        case let .badHeaderLength(path, n, size):
            return "\(path): header length \(n) does not fit in the file of \(size) bytes (at most \(size > 8 ? size - 8 : 0) and "
                + "\(SafetensorsFile.maxHeaderLength)); \(damaged)"
        case let .badHeader(path, reason):
            return "\(path): bad safetensors header: \(reason); \(damaged)"
        case let .unknownDType(path, tensor, dtype):
            return "\(path): tensor \"\(tensor)\": unsupported dtype \"\(dtype)\" (supported: "
                + "\(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", "))); convert the checkpoint to float32 first"
        case let .badTensorEntry(path, tensor, reason):
            return "\(path): tensor \"\(tensor)\": \(reason); \(damaged)"
        case let .offsetsOutOfRange(path, tensor, begin, end, size):
            return "\(path): tensor \"\(tensor)\": data_offsets [\(begin), \(end)] outside the data buffer of \(size) bytes; \(damaged)"
        case let .overlappingTensors(path, tensor, other):
            return "\(path): tensor \"\(tensor)\" overlaps tensor \"\(other)\" in the data buffer; \(damaged)"
        case let .uncoveredBytes(path, begin, end):
            return "\(path): bytes \(begin)..<\(end) of the data buffer belong to no tensor (the format requires full coverage); \(damaged)"
        case let .noSuchTensor(path, tensor, available):
            return "\(path): no tensor named \"\(tensor)\" (the file holds \(available)); check the checkpoint's architecture and names"
        case let .wrongDType(path, tensor, dtype, wanted):
            return "\(path): tensor \"\(tensor)\" is \(dtype.rawValue), not \(wanted); read it with the accessor for its dtype"
        case let .elementCountMismatch(path, tensor, count, expected):
            return "\(path): tensor \"\(tensor)\" has \(count) elements, the destination \(expected); check the model config against the checkpoint"
        case let .invalidTensor(path, tensor, reason):
            return "\(path): cannot write tensor \"\(tensor)\": \(reason)"
        case let .writeFailed(path, reason):
            return "\(path): cannot write safetensors file (\(reason)); check free space and permissions"
        }
    }
}

/// The bytes of a file: memory-mapped read-only, or read into memory when mapping is not possible.
final class SafetensorsBytes: @unchecked Sendable {
    let base: UnsafeRawPointer
    let count: Int
    private let mapped: Bool

    init(path: String) throws(SafetensorsError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .unreadable(path: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        if size > 0, let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED {
            base = UnsafeRawPointer(p)
            count = size
            mapped = true
            return
        }
        // Not mappable (empty file, or a file system without mmap): read it.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 16)
        var done = 0
        while done < size {
            let n = read(fd, buffer + done, size - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = n == 0 ? "file shrank while being read" : String(cString: strerror(errno))
                buffer.deallocate()
                throw .unreadable(path: path, reason: reason)
            }
            done += n
        }
        base = UnsafeRawPointer(buffer)
        count = size
        mapped = false
    }

    init(data: Data) {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 16)
        data.copyBytes(to: buffer.assumingMemoryBound(to: UInt8.self), count: data.count)
        base = UnsafeRawPointer(buffer)
        count = data.count
        mapped = false
    }

    deinit {
        if mapped { munmap(UnsafeMutableRawPointer(mutating: base), count) } else { base.deallocate() }
    }
}

/// A safetensors file, validated when opened; tensors are converted on access.
///
/// ```swift
/// let file = try SafetensorsFile(path: "model.safetensors")
/// for name in file.names { print(name, try file.info(name).shape) }
/// let embeddings: [Float] = try file.floats("bert.embeddings.word_embeddings.weight")
/// ```
///
/// Opening checks everything the reference implementation checks: the header length fits the file
/// (and is at most 100,000,000 bytes), the header is a UTF-8 JSON object starting with `{`, every
/// dtype is known, every shape × dtype size equals its byte range, every range lies in the data
/// buffer, and the ranges cover the buffer exactly, without overlaps or gaps. The file is
/// memory-mapped, so opening a large checkpoint costs no copy; it must not be truncated in place
/// while open (our writers replace files by rename, which is safe).
public final class SafetensorsFile: @unchecked Sendable {
    /// The reference implementation's limit on the header length.
    public static let maxHeaderLength: UInt64 = 100_000_000

    /// The path given when opening (or the name given to `init(data:name:)`); used in errors.
    public let path: String
    /// The `__metadata__` map; empty when the file has none.
    public let metadata: [String: String]
    /// Every tensor's entry, by name.
    public let tensors: [String: SafetensorsTensorInfo]
    /// The header's bytes as stored (JSON plus any padding), for diagnostics.
    public var headerLength: Int { dataStart - 8 }

    private let bytes: SafetensorsBytes
    private let dataStart: Int

    /// Opens and validates the file at `path`.
    public convenience init(path: String) throws(SafetensorsError) {
        try self.init(bytes: SafetensorsBytes(path: path), path: path)
    }

    /// Parses and validates a whole file's bytes held in memory; `name` stands for the path in errors.
    public convenience init(data: Data, name: String = "<memory>") throws(SafetensorsError) {
        try self.init(bytes: SafetensorsBytes(data: data), path: name)
    }

    private init(bytes: SafetensorsBytes, path: String) throws(SafetensorsError) {
        self.bytes = bytes
        self.path = path
        let size = bytes.count
        guard size >= 8 else { throw .truncated(path: path, size: size) }
        let n = UInt64(littleEndian: bytes.base.loadUnaligned(as: UInt64.self))
        guard n <= Self.maxHeaderLength, n <= UInt64(size - 8) else {
            throw .badHeaderLength(path: path, headerLength: n, fileSize: size)
        }
        dataStart = 8 + Int(n)
        let header = UnsafeRawBufferPointer(start: bytes.base + 8, count: Int(n))
        let (metadata, entries) = try Self.parseHeader(header, path: path)
        self.metadata = metadata
        tensors = try Self.validate(entries, bufferSize: size - dataStart, path: path)
    }

    /// Tensor names, sorted (as Python's `safe_open(...).keys()`).
    public var names: [String] { tensors.keys.sorted() }

    /// Tensor entries in file order (by data offset).
    public var tensorsInFileOrder: [SafetensorsTensorInfo] {
        tensors.values.sorted { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name) }
    }

    /// The entry of tensor `name`: dtype, shape, byte range.
    public func info(_ name: String) throws(SafetensorsError) -> SafetensorsTensorInfo {
        guard let info = tensors[name] else { throw .noSuchTensor(path: path, tensor: name, available: tensors.count) }
        return info
    }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    /// The tensor's raw little-endian bytes.
    public func rawBytes(_ name: String) throws(SafetensorsError) -> Data {
        let info = try info(name)
        return Data(bytes: bytes.base + dataStart + info.dataOffsets.lowerBound, count: info.dataOffsets.count)
    }

    /// The tensor as `Float`s in row-major order, from F32, F16, BF16 (exact) or F64 (rounded to nearest).
    public func floats(_ name: String) throws(SafetensorsError) -> [Float] {
        let info = try info(name)
        return try [Float](unsafeUninitializedCapacity: info.elementCount) { buffer, initialized throws(SafetensorsError) in
            try copyFloats(info, into: UnsafeMutableBufferPointer(rebasing: buffer[...]))
            initialized = info.elementCount
        }
    }

    /// Converts tensor `name` into `destination`, whose count must equal the tensor's element count
    /// (for loading parameters straight into a model's buffer).
    public func copyFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws(SafetensorsError) {
        try copyFloats(try info(name), into: destination)
    }

    private func copyFloats(_ info: SafetensorsTensorInfo, into out: UnsafeMutableBufferPointer<Float>) throws(SafetensorsError) {
        let count = info.elementCount
        guard out.count == count else {
            throw .elementCountMismatch(path: path, tensor: info.name, count: count, expected: out.count)
        }
        guard count > 0, let dst = out.baseAddress else { return }
        let src = bytes.base + dataStart + info.dataOffsets.lowerBound
        switch info.dtype {
        case .f32:
            #if _endian(little)
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
            #else
            for i in 0..<count { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            #endif
        case .f64:
            for i in 0..<count { dst[i] = Float(Self.double(src, i)) }
        case .f16:
            for i in 0..<count { dst[i] = Self.floatFromHalfBits(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16:
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
            }
        default:
            throw .wrongDType(path: path, tensor: info.name, dtype: info.dtype, wanted: "a floating-point type (F32, F64, F16, BF16)")
        }
    }

    /// The tensor as `Double`s, from F64, or exactly from F32, F16 or BF16.
    public func doubles(_ name: String) throws(SafetensorsError) -> [Double] {
        let info = try info(name)
        let src = bytes.base + dataStart + info.dataOffsets.lowerBound
        switch info.dtype {
        case .f64: return (0..<info.elementCount).map { Self.double(src, $0) }
        case .f32, .f16, .bf16: return try floats(name).map(Double.init)
        default:
            throw .wrongDType(path: path, tensor: name, dtype: info.dtype, wanted: "a floating-point type (F32, F64, F16, BF16)")
        }
    }

    /// The tensor as `Int64`s, from I64 or (widening) I32, I16, I8, U32, U16, U8, BOOL.
    public func int64s(_ name: String) throws(SafetensorsError) -> [Int64] {
        let info = try info(name)
        let src = bytes.base + dataStart + info.dataOffsets.lowerBound
        let n = info.elementCount
        func load<T: FixedWidthInteger>(_: T.Type) -> [Int64] {
            (0..<n).map { Int64(T(littleEndian: src.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))) }
        }
        switch info.dtype {
        case .i64: return load(Int64.self)
        case .i32: return load(Int32.self)
        case .u32: return load(UInt32.self)
        case .i16: return load(Int16.self)
        case .u16: return load(UInt16.self)
        case .i8: return load(Int8.self)
        case .u8, .bool: return load(UInt8.self)
        default: throw .wrongDType(path: path, tensor: name, dtype: info.dtype, wanted: "I64 or a narrower integer type")
        }
    }

    /// The tensor as `Int32`s, from I32 or (widening) I16, I8, U16, U8, BOOL.
    public func int32s(_ name: String) throws(SafetensorsError) -> [Int32] {
        let info = try info(name)
        switch info.dtype {
        case .i32, .i16, .i8, .u16, .u8, .bool: return try int64s(name).map { Int32(truncatingIfNeeded: $0) }
        default: throw .wrongDType(path: path, tensor: name, dtype: info.dtype, wanted: "I32 or a narrower integer type")
        }
    }

    /// A BOOL (or U8) tensor as `Bool`s: non-zero is true.
    public func bools(_ name: String) throws(SafetensorsError) -> [Bool] {
        let info = try info(name)
        guard info.dtype == .bool || info.dtype == .u8 else {
            throw .wrongDType(path: path, tensor: name, dtype: info.dtype, wanted: "BOOL or U8")
        }
        let src = bytes.base + dataStart + info.dataOffsets.lowerBound
        return (0..<info.elementCount).map { src.load(fromByteOffset: $0, as: UInt8.self) != 0 }
    }

    @inline(__always)
    private static func double(_ src: UnsafeRawPointer, _ i: Int) -> Double {
        Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
    }

    /// IEEE 754 binary16 → binary32, exactly (subnormals, infinities and NaN payloads included).
    public static func floatFromHalfBits(_ h: UInt16) -> Float {
        let sign: UInt32 = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        switch exponent {
        case 0:
            let magnitude = Float(mantissa) * 0x1p-24  // zero or subnormal: exact in Float
            return sign != 0 ? -magnitude : magnitude
        case 0x1F:
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        default:
            return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
        }
    }

    // MARK: Header

    private struct RawEntry: Decodable {
        var dtype: String
        var shape: [Int]
        var dataOffsets: [Int]
        enum CodingKeys: String, CodingKey { case dtype, shape, dataOffsets = "data_offsets" }
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private struct RawHeader: Decodable {
        var metadata: [String: String] = [:]
        var entries: [(String, RawEntry)] = []
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: Key.self)
            for key in c.allKeys {
                if key.stringValue == "__metadata__" {
                    metadata = try c.decode([String: String].self, forKey: key)
                } else {
                    entries.append((key.stringValue, try c.decode(RawEntry.self, forKey: key)))
                }
            }
        }
    }

    private static func parseHeader(_ header: UnsafeRawBufferPointer, path: String) throws(SafetensorsError) -> ([String: String], [(String, RawEntry)]) {
        guard header.first == UInt8(ascii: "{") else {
            throw .badHeader(path: path, reason: header.isEmpty ? "empty header" : "does not start with '{'")
        }
        guard String(validating: header, as: UTF8.self) != nil else { throw .badHeader(path: path, reason: "not valid UTF-8") }
        do {
            let raw = try JSONDecoder().decode(RawHeader.self, from: Data(header))
            return (raw.metadata, raw.entries)
        } catch let error as DecodingError {
            throw .badHeader(path: path, reason: describe(error))
        } catch {
            throw .badHeader(path: path, reason: "\(error)")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func where_(_ path: [CodingKey]) -> String {
            path.isEmpty ? "" : " at " + path.map { $0.intValue.map { "[\($0)]" } ?? "\"\($0.stringValue)\"" }.joined(separator: ".")
        }
        switch error {
        case let .dataCorrupted(ctx):
            if ctx.codingPath.isEmpty { return "not valid JSON (\(ctx.underlyingError.map { "\($0)" } ?? ctx.debugDescription))" }
            return "\(ctx.debugDescription)\(where_(ctx.codingPath))"
        case let .keyNotFound(key, ctx): return "missing field \"\(key.stringValue)\"\(where_(ctx.codingPath))"
        case let .typeMismatch(_, ctx), let .valueNotFound(_, ctx):
            return "wrong type\(where_(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    private static func validate(_ entries: [(String, RawEntry)], bufferSize: Int, path: String) throws(SafetensorsError) -> [String: SafetensorsTensorInfo] {
        var infos: [String: SafetensorsTensorInfo] = [:]
        for (name, raw) in entries.sorted(by: { $0.0 < $1.0 }) {
            guard let dtype = SafetensorsDType(rawValue: raw.dtype) else {
                throw .unknownDType(path: path, tensor: name, dtype: raw.dtype)
            }
            guard raw.shape.allSatisfy({ $0 >= 0 }) else {
                throw .badTensorEntry(path: path, tensor: name, reason: "negative dimension in shape \(raw.shape)")
            }
            guard raw.dataOffsets.count == 2 else {
                throw .badTensorEntry(path: path, tensor: name, reason: "data_offsets \(raw.dataOffsets) is not [begin, end]")
            }
            let (begin, end) = (raw.dataOffsets[0], raw.dataOffsets[1])
            guard begin >= 0, begin <= end else {
                throw .badTensorEntry(path: path, tensor: name, reason: "data_offsets [\(begin), \(end)] is not an ascending pair of byte offsets")
            }
            guard end <= bufferSize else {
                throw .offsetsOutOfRange(path: path, tensor: name, begin: begin, end: end, bufferSize: bufferSize)
            }
            var bytes = dtype.size
            for d in raw.shape {
                let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
                guard !overflow else { throw .badTensorEntry(path: path, tensor: name, reason: "shape \(raw.shape) overflows") }
                bytes = p
            }
            guard bytes == end - begin else {
                throw .badTensorEntry(path: path, tensor: name, reason: "shape \(raw.shape) of \(dtype.rawValue) needs \(bytes) bytes, "
                                      + "data_offsets [\(begin), \(end)] hold \(end - begin)")
            }
            infos[name] = SafetensorsTensorInfo(name: name, dtype: dtype, shape: raw.shape, dataOffsets: begin..<end)
        }
        let ordered = infos.values.sorted {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name)
        }
        var covered = 0
        var previous: String? = nil
        for info in ordered {
            let begin = info.dataOffsets.lowerBound
            if begin < covered, let previous {
                throw .overlappingTensors(path: path, tensor: info.name, other: previous)
            }
            if begin > covered { throw .uncoveredBytes(path: path, begin: covered, end: begin) }
            covered = info.dataOffsets.upperBound
            previous = info.name
        }
        if covered != bufferSize { throw .uncoveredBytes(path: path, begin: covered, end: bufferSize) }
        return infos
    }
}

// MARK: - Writing

/// A tensor to write: name, dtype, shape and its little-endian bytes.
public struct SafetensorsTensor: Sendable {
    public var name: String
    public var dtype: SafetensorsDType
    public var shape: [Int]
    /// Row-major little-endian bytes; `count` must be the shape's element count × `dtype.size`.
    public var data: Data

    public init(name: String, dtype: SafetensorsDType, shape: [Int], data: Data) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    /// An F32 tensor.
    public init(name: String, shape: [Int], floats: [Float]) {
        self.init(name: name, dtype: .f32, shape: shape, data: Self.littleEndianBytes(floats.map(\.bitPattern)))
    }

    /// An F64 tensor.
    public init(name: String, shape: [Int], doubles: [Double]) {
        self.init(name: name, dtype: .f64, shape: shape, data: Self.littleEndianBytes(doubles.map(\.bitPattern)))
    }

    /// An I64 tensor.
    public init(name: String, shape: [Int], int64s: [Int64]) {
        self.init(name: name, dtype: .i64, shape: shape, data: Self.littleEndianBytes(int64s))
    }

    /// An I32 tensor.
    public init(name: String, shape: [Int], int32s: [Int32]) {
        self.init(name: name, dtype: .i32, shape: shape, data: Self.littleEndianBytes(int32s))
    }

    private static func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> Data {
        #if _endian(little)
        return values.withUnsafeBytes { Data($0) }
        #else
        return values.map(\.littleEndian).withUnsafeBytes { Data($0) }
        #endif
    }
}

/// Writes safetensors files byte-identical to the Python `safetensors` library's
/// (`safetensors.torch.save_file` / `save_pretrained`) for the same tensors and a metadata map of at
/// most one key:
///
/// - data laid out by dtype, in the reference implementation's order (U64, I64, F64, F32, U32, I32,
///   BF16, F16, U16, I16, I8, U8, BOOL), then by name (byte order); with one dtype, simply sorted by name;
/// - the header is compact JSON (serde_json's escaping): `__metadata__` first, then the tensors in
///   layout order, each `{"dtype":…,"shape":[…],"data_offsets":[begin,end]}`;
/// - the header is padded with spaces to a multiple of 8 bytes.
///
/// With several metadata keys the Python library writes them in hash-map order, which varies from
/// run to run; this writer sorts them.
public enum SafetensorsWriter {
    /// What transformers' `save_pretrained` writes, and what it expects when loading.
    public static let defaultMetadata: [String: String] = ["format": "pt"]

    /// The whole file's bytes. `path` only names the destination in errors.
    public static func serialize(_ tensors: [SafetensorsTensor], metadata: [String: String]? = defaultMetadata,
                                 path: String = "<memory>") throws(SafetensorsError) -> Data {
        let (header, ordered) = try prepare(tensors, metadata: metadata, path: path)
        var out = Data(capacity: header.count + ordered.reduce(0) { $0 + $1.data.count })
        out.append(header)
        for t in ordered { out.append(t.data) }
        return out
    }

    /// Writes the file atomically: a temporary file in the same directory, fsync, rename over
    /// `path`, fsync of the directory. A crash leaves either the old file or the new one.
    public static func write(_ tensors: [SafetensorsTensor], metadata: [String: String]? = defaultMetadata,
                             to path: String) throws(SafetensorsError) {
        let (header, ordered) = try prepare(tensors, metadata: metadata, path: path)
        do {
            let file = try AtomicFileWriter(path: path)
            try file.write(header)
            for t in ordered { try file.write(t.data) }
            try file.commit()
        } catch {
            throw .writeFailed(path: path, reason: error.reason)
        }
    }

    /// The 8-byte length plus the padded header, and the tensors in layout order.
    static func prepare(_ tensors: [SafetensorsTensor], metadata: [String: String]?,
                        path: String) throws(SafetensorsError) -> (Data, [SafetensorsTensor]) {
        var seen = Set<String>()
        for t in tensors {
            guard t.name != "__metadata__" else { throw .invalidTensor(path: path, tensor: t.name, reason: "the name is reserved") }
            guard seen.insert(t.name).inserted else { throw .invalidTensor(path: path, tensor: t.name, reason: "the name appears twice") }
            guard t.shape.allSatisfy({ $0 >= 0 }) else {
                throw .invalidTensor(path: path, tensor: t.name, reason: "negative dimension in shape \(t.shape)")
            }
            var expected = t.dtype.size
            for d in t.shape {
                let (p, overflow) = expected.multipliedReportingOverflow(by: d)
                guard !overflow else { throw .invalidTensor(path: path, tensor: t.name, reason: "shape \(t.shape) overflows") }
                expected = p
            }
            guard t.data.count == expected else {
                throw .invalidTensor(path: path, tensor: t.name, reason: "shape \(t.shape) of \(t.dtype.rawValue) needs \(expected) bytes, "
                                     + "got \(t.data.count)")
            }
        }
        let ordered = tensors.sorted {
            $0.dtype.referenceRank != $1.dtype.referenceRank
                ? $0.dtype.referenceRank > $1.dtype.referenceRank
                : $0.name.utf8.lexicographicallyPrecedes($1.name.utf8)
        }
        var json = "{"
        var first = true
        if let metadata {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
                .map { jsonString($0) + ":" + jsonString(metadata[$0]!) }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for t in ordered {
            if !first { json += "," }
            first = false
            json += jsonString(t.name) + ":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":["
                + t.shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(offset + t.data.count)]}"
            offset += t.data.count
        }
        json += "}"
        var headerBytes = Data(json.utf8)
        headerBytes.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8))
        var out = Data()
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(headerBytes)
        return (out, ordered)
    }

    /// A JSON string literal escaped as serde_json escapes it.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
