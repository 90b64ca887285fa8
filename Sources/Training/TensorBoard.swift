import Foundation

/// Writes TensorBoard event files (`events.out.tfevents.<time>.<host>`): TFRecord framing (length,
/// masked CRC32C of the length, the Event protobuf, masked CRC32C of the data) around hand-encoded
/// `Event` messages with scalar summaries. Only what TensorBoard's scalar dashboard reads is written:
/// Event { wall_time = 1 (double), step = 2 (int64), file_version = 3 (string), summary = 5 }
/// Summary { value = 1 (repeated) }, Summary.Value { tag = 1 (string), simple_value = 2 (float) }.
public final class TensorBoardWriter {
    /// The event file.
    public let path: String
    let handle: FileHandle

    /// Creates a new event file in `directory`.
    public init(directory: String, wallTime: Double = Date().timeIntervalSince1970) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName
        var name = "events.out.tfevents.\(Int(wallTime)).\(host)"
        var n = 0
        while FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(name)) {
            n += 1
            name = "events.out.tfevents.\(Int(wallTime)).\(host).\(n)"
        }
        path = (directory as NSString).appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw TrainingError.io(path: path, reason: "cannot create the TensorBoard event file")
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        var event = Protobuf()
        event.double(1, wallTime)
        event.bytes(3, Array("brain.Event:2".utf8))
        try write(record: event.data)
    }

    deinit { try? handle.close() }

    /// Writes scalars for one step.
    public func add(step: Int, scalars: [(String, Double)], wallTime: Double = Date().timeIntervalSince1970) throws {
        var summary = Protobuf()
        for (tag, value) in scalars {
            var v = Protobuf()
            v.bytes(1, Array(tag.utf8))
            v.float(2, Float(value))
            summary.bytes(1, v.data)
        }
        var event = Protobuf()
        event.double(1, wallTime)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.bytes(5, summary.data)
        try write(record: event.data)
    }

    func write(record: [UInt8]) throws {
        var out: [UInt8] = []
        var length = UInt64(record.count).littleEndian
        let lengthBytes = withUnsafeBytes(of: &length) { Array($0) }
        out += lengthBytes
        out += le32(maskedCRC32C(lengthBytes))
        out += record
        out += le32(maskedCRC32C(record))
        try handle.write(contentsOf: Data(out))
    }

    func le32(_ x: UInt32) -> [UInt8] { [UInt8(x & 0xFF), UInt8(x >> 8 & 0xFF), UInt8(x >> 16 & 0xFF), UInt8(x >> 24)] }
}

/// TFRecord's masked CRC32C: rotate right by 15 and add 0xa282ead8.
func maskedCRC32C(_ bytes: [UInt8]) -> UInt32 {
    let c = crc32c(bytes)
    return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
func crc32c(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes { crc = crc32cTable[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
    return crc ^ 0xFFFF_FFFF
}

let crc32cTable: [UInt32] = (0..<256).map { i -> UInt32 in
    var c = UInt32(i)
    for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
    return c
}

/// A minimal protobuf encoder (wire types 0, 1, 2, 5).
struct Protobuf {
    var data: [UInt8] = []

    mutating func raw(_ x: UInt64) {
        var x = x
        while x >= 0x80 {
            data.append(UInt8(x & 0x7F) | 0x80)
            x >>= 7
        }
        data.append(UInt8(x))
    }

    mutating func varint(_ field: Int, _ x: UInt64) {
        raw(UInt64(field << 3 | 0))
        raw(x)
    }

    mutating func double(_ field: Int, _ x: Double) {
        raw(UInt64(field << 3 | 1))
        var bits = x.bitPattern.littleEndian
        withUnsafeBytes(of: &bits) { data += $0 }
    }

    mutating func bytes(_ field: Int, _ b: [UInt8]) {
        raw(UInt64(field << 3 | 2))
        raw(UInt64(b.count))
        data += b
    }

    mutating func float(_ field: Int, _ x: Float) {
        raw(UInt64(field << 3 | 5))
        var bits = x.bitPattern.littleEndian
        withUnsafeBytes(of: &bits) { data += $0 }
    }
}
