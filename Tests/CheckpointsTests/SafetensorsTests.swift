import BertModel
import Foundation
import TestSupport
import XCTest
import Checkpoints

final class SafetensorsTests: XCTestCase {
    var dir: URL!

    override func setUp() { dir = Fixtures.temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    // MARK: Round trips

    func testRoundTripOfEveryWritableDType() throws {
        let floats: [Float] = [1.5, -2.25, .greatestFiniteMagnitude, -.leastNonzeroMagnitude, 0, -0.0, .infinity, 0.1]
        let doubles: [Double] = [.pi, -1e300, .leastNonzeroMagnitude, -0.0, .nan]
        let int64s: [Int64] = [0, -1, .max, .min, 42, 101]
        let int32s: [Int32] = [.max, .min, 7]
        let tensors = [
            SafetensorsTensor(name: "a.floats", shape: [2, 4], floats: floats),
            SafetensorsTensor(name: "b.doubles", shape: [5], doubles: doubles),
            SafetensorsTensor(name: "c.int64s", shape: [3, 2], int64s: int64s),
            SafetensorsTensor(name: "d.int32s", shape: [3], int32s: int32s),
            SafetensorsTensor(name: "e.scalar", shape: [], doubles: [2.5]),
            SafetensorsTensor(name: "f.empty", shape: [0, 7], floats: []),
        ]
        let p = path("round.safetensors")
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt", "note": "a \"quoted\"\nvalue"], to: p)
        let f = try SafetensorsFile(path: p)
        XCTAssertEqual(f.names, ["a.floats", "b.doubles", "c.int64s", "d.int32s", "e.scalar", "f.empty"])
        XCTAssertEqual(f.metadata, ["format": "pt", "note": "a \"quoted\"\nvalue"])
        XCTAssertEqual(try f.floats("a.floats").map(\.bitPattern), floats.map(\.bitPattern))
        XCTAssertEqual(try f.doubles("b.doubles").map(\.bitPattern), doubles.map(\.bitPattern))
        XCTAssertEqual(try f.int64s("c.int64s"), int64s)
        XCTAssertEqual(try f.int32s("d.int32s"), int32s)
        XCTAssertEqual(try f.int64s("d.int32s"), int32s.map(Int64.init))
        XCTAssertEqual(try f.doubles("e.scalar"), [2.5])
        XCTAssertEqual(try f.info("e.scalar").shape, [])
        // Layout by dtype then name: c.int64s (48 bytes), b.doubles + e.scalar (48), a.floats (32), then f.empty.
        XCTAssertEqual(try f.info("f.empty"), SafetensorsTensorInfo(name: "f.empty", dtype: .f32, shape: [0, 7], dataOffsets: 128..<128))
        XCTAssertEqual(try f.floats("f.empty"), [])
        XCTAssertEqual(try f.info("c.int64s").dtype, .i64)
        XCTAssertEqual(try f.info("a.floats").shape, [2, 4])
        // F64 narrows to Float by rounding; floats into a caller's buffer.
        XCTAssertEqual(try f.floats("b.doubles").prefix(2), [Float(Double.pi), -.infinity])  // Float.pi is rounded down; conversion rounds to nearest
        var buffer = [Float](repeating: 0, count: 8)
        try buffer.withUnsafeMutableBufferPointer { try f.copyFloats("a.floats", into: $0) }
        XCTAssertEqual(buffer.map(\.bitPattern), floats.map(\.bitPattern))
        // The header is padded with spaces to a multiple of 8 and no temporary file is left behind.
        XCTAssertEqual(f.headerLength % 8, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["round.safetensors"])
        // In-memory serialisation gives the same bytes as the file.
        let again = try SafetensorsWriter.serialize(tensors, metadata: ["format": "pt", "note": "a \"quoted\"\nvalue"])
        XCTAssertEqual(again, try Data(contentsOf: URL(fileURLWithPath: p)))
    }

    func testWriteReplacesAnExistingFileAndRejectsBadTensors() throws {
        let p = path("w.safetensors")
        try SafetensorsWriter.write([SafetensorsTensor(name: "x", shape: [1], floats: [1])], to: p)
        try SafetensorsWriter.write([SafetensorsTensor(name: "y", shape: [2], int64s: [1, 2])], to: p)
        XCTAssertEqual(try SafetensorsFile(path: p).names, ["y"])

        func rejects(_ tensors: [SafetensorsTensor], _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try SafetensorsWriter.write(tensors, to: p), line: line) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(p) && text.contains(fragment), text, line: line)
            }
        }
        rejects([SafetensorsTensor(name: "x", shape: [3], floats: [1, 2])], "needs 12 bytes, got 8")
        rejects([SafetensorsTensor(name: "x", shape: [1], floats: [1]), SafetensorsTensor(name: "x", shape: [1], floats: [1])], "twice")
        rejects([SafetensorsTensor(name: "__metadata__", shape: [1], floats: [1])], "reserved")
        rejects([SafetensorsTensor(name: "x", shape: [-1], floats: [])], "negative")
        // The failed writes left the previous file alone.
        XCTAssertEqual(try SafetensorsFile(path: p).names, ["y"])
        XCTAssertThrowsError(try SafetensorsWriter.write([], to: dir.appendingPathComponent("missing/dir/x.safetensors").path)) {
            XCTAssertTrue("\($0)".contains("missing/dir/x.safetensors"), "\($0)")
        }
    }

    func testEmptyFileListRoundTrips() throws {
        let p = path("empty.safetensors")
        try SafetensorsWriter.write([], metadata: nil, to: p)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: p))
        // {} padded to 8: the Python library writes the same 16 bytes for save({}).
        XCTAssertEqual(Array(bytes), [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
        XCTAssertEqual(try SafetensorsFile(path: p).names, [])
    }

    // MARK: Files written by the Python library

    /// `Tests/Fixtures/safetensors/python_mixed.safetensors` was written by
    /// `Tests/Scripts/fixtures/make_safetensors_fixtures.py` (safetensors 0.8.0, torch 2.15.0):
    /// `safetensors.torch.save_file(mixed(), path, metadata={"format": "pt"})`; the values below are
    /// the script's literals.
    func testReadsEveryDTypeFromAFileWrittenByPython() throws {
        let f = try SafetensorsFile(path: Fixtures.path("safetensors/python_mixed.safetensors"))
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(f.names.count, 12)
        XCTAssertEqual(try f.info("f32.matrix").shape, [2, 3])
        XCTAssertEqual(try f.floats("f32.matrix").map(\.bitPattern), ([1.5, -2.25, 3.0, 0.1, 1e-30, -0.0] as [Float]).map(\.bitPattern))
        XCTAssertEqual(try f.info("f32.scalar").shape, [])
        XCTAssertEqual(try f.floats("f32.scalar"), [7.25])
        XCTAssertEqual(try f.info("f32.empty").shape, [0, 3])
        XCTAssertEqual(try f.floats("f32.empty"), [])
        XCTAssertEqual(try f.doubles("f64.vector"), [.pi, -1e300, .leastNonzeroMagnitude])
        XCTAssertEqual(try f.info("f16.vector").dtype, .f16)
        XCTAssertEqual(try f.floats("f16.vector"), [1.0, -0.5, 0x1p-24, 65504.0, .infinity, 0.333251953125])
        XCTAssertEqual(try f.doubles("f16.vector")[2], 5.960464477539063e-08)
        XCTAssertEqual(try f.info("bf16.vector").dtype, .bf16)
        XCTAssertEqual(try f.floats("bf16.vector"), [1.0, -3.140625, Float(9.969209968386869e+37), -.infinity])
        XCTAssertEqual(try f.int64s("i64.matrix"), [0, -1, 1 << 62, .min])
        XCTAssertEqual(try f.int32s("i32.vector"), [.max, .min, 5, -100])
        XCTAssertEqual(try f.int32s("i16.vector"), [-32768, 32767])
        XCTAssertEqual(try f.int64s("i8.vector"), [-128, 127, 0])
        XCTAssertEqual(try f.int64s("u8.vector"), [0, 255, 17])
        XCTAssertEqual(try f.bools("bool.vector"), [true, false, true])
        XCTAssertEqual(try f.int32s("bool.vector"), [1, 0, 1])
    }

    func testHalfPrecisionConversionIsExactForEveryBitPattern() {
        // Every F16 value is a Float; compare with the platform's Float16 where it exists.
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        for bits in UInt16.min...UInt16.max {
            let expected = Float(Float16(bitPattern: bits))
            let got = SafetensorsFile.floatFromHalfBits(bits)
            if expected.isNaN { XCTAssertTrue(got.isNaN); continue }
            XCTAssertEqual(got.bitPattern, expected.bitPattern, "F16 bits \(String(bits, radix: 16))")
        }
        #endif
    }

    /// Our writer gives the bytes the Python library wrote for the same tensors: the whole mixed
    /// file (dtype order U64 I64 F64 F32 U32 I32 BF16 F16 U16 I16 I8 U8 BOOL, then names; header
    /// `__metadata__` first, compact JSON, space padding) and the plain file with no metadata.
    func testWritesTheSameBytesAsPython() throws {
        for (file, metadata) in [("python_mixed.safetensors", ["format": "pt"] as [String: String]?), ("python_plain.safetensors", nil)] {
            let p = Fixtures.path("safetensors/\(file)")
            let f = try SafetensorsFile(path: p)
            // Reversed so that the writer's own ordering is what is tested.
            let tensors = try f.names.reversed().map { name in
                let info = try f.info(name)
                return SafetensorsTensor(name: name, dtype: info.dtype, shape: info.shape, data: try f.rawBytes(name))
            }
            let ours = try SafetensorsWriter.serialize(tensors, metadata: metadata)
            let theirs = try Data(contentsOf: URL(fileURLWithPath: p))
            XCTAssertEqual(ours, theirs, file)
            if ours != theirs {
                print(String(decoding: ours.prefix(400), as: UTF8.self), "\n", String(decoding: theirs.prefix(400), as: UTF8.self))
            }
        }
        // The plain file again, from typed values rather than raw bytes.
        let typed = [
            SafetensorsTensor(name: "weight", shape: [3, 4], floats: (0..<12).map { Float($0) / 8 }),
            SafetensorsTensor(name: "bias", shape: [3], doubles: [0.5, -0.25, 1e-3]),
            SafetensorsTensor(name: "ids", shape: [2, 3], int64s: [101, 2023, 102, 101, 0, 102]),
            SafetensorsTensor(name: "count", shape: [1], int32s: [3]),
        ]
        let p = path("plain.safetensors")
        try SafetensorsWriter.write(typed, metadata: nil, to: p)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: p)),
                       try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("safetensors/python_plain.safetensors"))))
    }

    // MARK: Accessor errors

    func testAccessorErrorsNameFileAndTensor() throws {
        let p = Fixtures.path("safetensors/python_mixed.safetensors")
        let f = try SafetensorsFile(path: p)
        func check(_ body: () throws -> Void, _ expected: SafetensorsError, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { error in
                XCTAssertEqual(error as? SafetensorsError, expected, line: line)
                XCTAssertTrue("\(error)".contains(p), "\(error)", line: line)
            }
        }
        check({ _ = try f.floats("nope") }, .noSuchTensor(path: p, tensor: "nope", available: 12))
        check({ _ = try f.floats("i64.matrix") }, .wrongDType(path: p, tensor: "i64.matrix", dtype: .i64, wanted: "a floating-point type (F32, F64, F16, BF16)"))
        check({ _ = try f.int64s("f32.matrix") }, .wrongDType(path: p, tensor: "f32.matrix", dtype: .f32, wanted: "I64 or a narrower integer type"))
        check({ _ = try f.int32s("i64.matrix") }, .wrongDType(path: p, tensor: "i64.matrix", dtype: .i64, wanted: "I32 or a narrower integer type"))
        var small = [Float](repeating: 0, count: 5)
        check({ try small.withUnsafeMutableBufferPointer { try f.copyFloats("f32.matrix", into: $0) } },
              .elementCountMismatch(path: p, tensor: "f32.matrix", count: 6, expected: 5))
    }

    // MARK: Corrupt files

    /// A valid two-tensor file to damage: "a" F32 [2] at [0, 8], "b" I64 [1] at [8, 16].
    func header(_ json: String) -> Data {
        var bytes = Data(json.utf8)
        bytes.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - bytes.count % 8) % 8))
        var out = Data()
        withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { out.append(contentsOf: $0) }
        return out + bytes
    }

    let goodHeader = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}"#

    func expectCorrupt(_ bytes: Data, _ fragment: String, file: StaticString = #filePath, line: UInt = #line,
                       _ match: (SafetensorsError) -> Bool) throws {
        let p = path("corrupt-\(line).safetensors")
        try bytes.write(to: URL(fileURLWithPath: p))
        XCTAssertThrowsError(try SafetensorsFile(path: p), file: file, line: line) { error in
            guard let e = error as? SafetensorsError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertTrue(match(e), "\(e)", file: file, line: line)
            let text = e.description
            XCTAssertTrue(text.hasPrefix(p + ":"), "message does not name the file: \(text)", file: file, line: line)
            XCTAssertTrue(text.contains(fragment), "\(text) lacks \(fragment)", file: file, line: line)
        }
    }

    func testTheUndamagedFileReads() throws {
        let p = path("good.safetensors")
        try (header(goodHeader) + Data(repeating: 0, count: 16)).write(to: URL(fileURLWithPath: p))
        let f = try SafetensorsFile(path: p)
        XCTAssertEqual(f.names, ["a", "b"])
        XCTAssertEqual(f.metadata, [:])
        XCTAssertEqual(try f.int64s("b"), [0])
    }

    func testCorruptFilesAreRejectedWithTheFileNamed() throws {
        let data = Data(repeating: 0, count: 16)
        let good = header(goodHeader) + data
        // Truncated: shorter than the length field; cut inside the data buffer.
        try expectCorrupt(good.prefix(5), "shorter than the 8-byte") { if case .truncated(_, 5) = $0 { true } else { false } }
        try expectCorrupt(Data(), "0 bytes") { if case .truncated(_, 0) = $0 { true } else { false } }
        try expectCorrupt(good.prefix(good.count - 3), "\"b\"") {
            if case .offsetsOutOfRange(_, "b", 8, 16, 13) = $0 { true } else { false }
        }
        // Header length past the end of the file, and absurdly large.
        var longer = good
        longer[0] = 0xFF
        try expectCorrupt(longer, "header length 255") { if case .badHeaderLength = $0 { true } else { false } }
        var huge = good
        huge.replaceSubrange(0..<8, with: [0, 0, 0, 0, 0, 0, 0, 0x80])
        try expectCorrupt(huge, "does not fit") { if case .badHeaderLength = $0 { true } else { false } }
        // Overlapping offsets.
        try expectCorrupt(header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#) + data.prefix(12),
                          "overlaps") { if case .overlappingTensors(_, "b", "a") = $0 { true } else { false } }
        // Wrong byte count for the shape.
        try expectCorrupt(header(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}"#) + data,
                          "needs 12 bytes") { if case .badTensorEntry(_, "a", _) = $0 { true } else { false } }
        // Unknown dtype.
        try expectCorrupt(header(#"{"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}"#) + data,
                          "F8_E4M3") { if case .unknownDType(_, "a", "F8_E4M3") = $0 { true } else { false } }
        // Not JSON, not starting with '{', not UTF-8, a field of the wrong type, a missing field.
        try expectCorrupt(header(#"{"a": {"dtype": "F32", "#) + data, "not valid JSON") { if case .badHeader = $0 { true } else { false } }
        try expectCorrupt(header("[1, 2]") + data, "does not start with '{'") { if case .badHeader = $0 { true } else { false } }
        try expectCorrupt(header("{\"\u{FF}\":1}").map { $0 == 0xC3 ? 0xFF : $0 } + data, "UTF-8") { if case .badHeader = $0 { true } else { false } }
        try expectCorrupt(header(#"{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#) + data.prefix(8), "\"shape\"") {
            if case .badHeader = $0 { true } else { false }
        }
        try expectCorrupt(header(#"{"a":{"dtype":"F32","shape":[2]}}"#) + data.prefix(8), "data_offsets") { if case .badHeader = $0 { true } else { false } }
        try expectCorrupt(header(#"{"__metadata__":{"format":1}}"#), "__metadata__") { if case .badHeader = $0 { true } else { false } }
        // Holes: a gap between tensors, bytes after the last one.
        try expectCorrupt(header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[12,20]}}"#) + data + data.prefix(4),
                          "bytes 8..<12") { if case .uncoveredBytes(_, 8, 12) = $0 { true } else { false } }
        try expectCorrupt(good + Data([1, 2, 3]), "bytes 16..<19") { if case .uncoveredBytes(_, 16, 19) = $0 { true } else { false } }
        // Offsets reversed, negative dimension.
        try expectCorrupt(header(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#) + data.prefix(8), "ascending") {
            if case .badTensorEntry(_, "a", _) = $0 { true } else { false }
        }
        try expectCorrupt(header(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#) + data.prefix(8), "negative") {
            if case .badTensorEntry(_, "a", _) = $0 { true } else { false }
        }
    }

    func testMissingFileIsNamed() {
        let p = path("absent.safetensors")
        XCTAssertThrowsError(try SafetensorsFile(path: p)) { error in
            XCTAssertTrue("\(error)".hasPrefix(p + ": cannot read"), "\(error)")
        }
    }
}
