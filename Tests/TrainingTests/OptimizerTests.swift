import Foundation
import TestSupport
import XCTest

@testable import Training

final class OptimizerTests: XCTestCase {
    /// google-research/bert's AdamWeightDecayOptimizer written out in Double, one parameter at a time.
    static func reference(_ p: inout [Double], _ m: inout [Double], _ v: inout [Double], _ g: [Double], decay: [Bool], lr: Double,
                   t: Int, biasCorrection: Bool) {
        for j in p.indices {
            m[j] = 0.9 * m[j] + 0.1 * g[j]
            v[j] = 0.999 * v[j] + 0.001 * g[j] * g[j]
            let mh = biasCorrection ? m[j] / (1 - pow(0.9, Double(t))) : m[j]
            let vh = biasCorrection ? v[j] / (1 - pow(0.999, Double(t))) : v[j]
            var u = mh / (vh.squareRoot() + 1e-6)
            if decay[j] { u += 0.01 * p[j] }
            p[j] -= lr * u
        }
    }

    func testAdamWMatchesTheFormulaWithDecayMask() {
        for biasCorrection in [false, true] {
            var rng = SeededRandom(seed: 3)
            let n = 70_001  // several work blocks, odd size
            let decayRanges = [5..<1000, 1003..<70_000]
            let decay = (0..<n).map { j in decayRanges.contains { $0.contains(j) } }
            var p = (0..<n).map { _ in Double(Float.random(in: -1...1, using: &rng)) }
            var m = [Double](repeating: 0, count: n), v = m
            let opt = AdamW(count: n, decayRanges: decayRanges, hyper: .init(biasCorrection: biasCorrection), threads: 3)
            // The same updates without any decay range: what the mask changes.
            let plain = AdamW(count: n, decayRanges: [], hyper: .init(biasCorrection: biasCorrection), threads: 3)
            var pf = p.map { Float($0) }, pn = pf
            var pull = [Double](repeating: 0, count: n)  // Σ lr·p over the updates, p before each (reference)
            for t in 1...5 {
                let g = (0..<n).map { _ in Double(Float.random(in: -0.1...0.1, using: &rng)) }
                let gf = g.map { Float($0) }
                let lr = 1e-3 * Double(t)
                for j in 0..<n { pull[j] += lr * p[j] }
                Self.reference(&p, &m, &v, g, decay: decay, lr: lr, t: t, biasCorrection: biasCorrection)
                gf.withUnsafeBufferPointer { gp in
                    pf.withUnsafeMutableBufferPointer { opt.step(parameters: $0.baseAddress!, gradients: gp.baseAddress!, lr: lr) }
                    pn.withUnsafeMutableBufferPointer { plain.step(parameters: $0.baseAddress!, gradients: gp.baseAddress!, lr: lr) }
                }
            }
            var worst = 0.0
            for j in 0..<n { worst = max(worst, abs(Double(pf[j]) - p[j])) }
            XCTAssertLessThan(worst, 2e-6, "bias correction \(biasCorrection)")
            // Decay matters, and only inside the ranges. Outside them the update is the plain Adam one,
            // bit for bit. Inside, the decoupled decay is the only difference (m and v do not depend on
            // p), so the decayed run ends exactly λ·Σ lr·p (p before each update) below the plain one:
            // about 1.5e-4·|p|, against float rounding of a few 1e-7.
            var outside: [Int] = [], differing: [Int] = [], worstDecay = 0.0, worstAt = 0
            for j in 0..<n {
                if decay[j] {
                    let e = abs((Double(pf[j]) - Double(pn[j])) - (-0.01 * pull[j]))
                    if e > worstDecay { (worstDecay, worstAt) = (e, j) }
                } else {
                    outside.append(j)
                    if pf[j].bitPattern != pn[j].bitPattern { differing.append(j) }
                }
            }
            XCTAssertEqual(outside, [0, 1, 2, 3, 4, 1000, 1001, 1002, 70_000])
            XCTAssertEqual(differing, [], "undecayed parameters that differ from plain Adam")
            XCTAssertLessThan(worstDecay, 1e-6, "parameter \(worstAt): decayed − plain = \(pf[worstAt] - pn[worstAt]), expected \(-0.01 * pull[worstAt])")
        }
    }

    func testLinearScheduleAsHuggingFace() {
        let s = LinearSchedule(base: 1e-2, warmupSteps: 2, totalSteps: 10)
        let decay: [Double] = [8, 7, 6, 5, 4, 3, 2, 1, 0, 0]  // eighths of the base from step 2
        let expected: [Double] = [0, 0.005] + decay.map { 0.01 * $0 / 8 }
        for (k, e) in expected.enumerated() { XCTAssertEqual(s.rate(at: k), e, accuracy: 1e-15, "step \(k)") }
        XCTAssertEqual(LinearSchedule(base: 1, warmupSteps: 0, totalSteps: 4).rate(at: 0), 1)
    }

    func testClipGlobalNorm() {
        var g: [Float] = (0..<10_000).map { Float($0 % 7) - 3 }
        let norm = (g.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
        let returned = g.withUnsafeMutableBufferPointer { clipGlobalNorm($0.baseAddress!, count: $0.count, maxNorm: 1.0) }
        XCTAssertEqual(returned, norm, accuracy: norm * 1e-6)
        let after = (g.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
        XCTAssertEqual(after, 1.0, accuracy: 1e-5)
        var small: [Float] = [0.3, 0.4]
        small.withUnsafeMutableBufferPointer { _ = clipGlobalNorm($0.baseAddress!, count: 2, maxNorm: 1.0) }
        XCTAssertEqual(small, [0.3, 0.4], "below the threshold nothing changes")
    }
}

final class LogTests: XCTestCase {
    func testCRC32CVectors() {
        // RFC 3720 B.4 and the classic check value.
        XCTAssertEqual(crc32c(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(crc32c([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(crc32c([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
    }

    /// Reads the records back with the framing checks TensorBoard applies, and decodes the scalars.
    func testTensorBoardRecordsAreFramedAndDecode() throws {
        let dir = Fixtures.temporaryDirectory().path
        let w = try TensorBoardWriter(directory: dir, wallTime: 1000)
        try w.add(step: 7, scalars: [("train/loss", 2.5), ("train/learning_rate", 1e-4)], wallTime: 1001)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: w.path)))
        var records: [[UInt8]] = []
        var at = 0
        while at < bytes.count {
            let lenBytes = Array(bytes[at..<(at + 8)])
            let len = lenBytes.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let lenCRC = bytes[(at + 8)..<(at + 12)].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
            XCTAssertEqual(lenCRC, maskedCRC32C(lenBytes))
            let data = Array(bytes[(at + 12)..<(at + 12 + len)])
            let dataCRC = bytes[(at + 12 + len)..<(at + 16 + len)].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
            XCTAssertEqual(dataCRC, maskedCRC32C(data))
            records.append(data)
            at += 16 + len
        }
        XCTAssertEqual(records.count, 2)
        XCTAssertTrue(String(decoding: records[0], as: UTF8.self).contains("brain.Event:2"))
        // Event: 09 <double> 10 07 2a <len> (0a <len> (0a <tag> 15 <float>))...
        let e = records[1]
        XCTAssertEqual(e[0], 0x09)
        XCTAssertEqual(e[9], 0x10); XCTAssertEqual(e[10], 7)
        XCTAssertEqual(e[11], 0x2A)
        let text = String(decoding: e, as: UTF8.self)
        XCTAssertTrue(text.contains("train/loss") && text.contains("train/learning_rate"))
        let tagEnd = try XCTUnwrap(e.firstIndex(of: UInt8(ascii: "s"), after: "train/los"))
        XCTAssertEqual(e[tagEnd + 1], 0x15)
        let f = Float(bitPattern: e[(tagEnd + 2)..<(tagEnd + 6)].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) })
        XCTAssertEqual(f, 2.5)
    }

    func testMetricsLogAppendsAndTruncatesOnResume() throws {
        let path = Fixtures.temporaryDirectory().appendingPathComponent("metrics.jsonl").path
        let log = try MetricsLog(path: path)
        for s in 1...5 { try log.append(StepMetrics(step: s, epoch: 0, loss: Double(s), learningRate: 0.1)) }
        try MetricsLog.truncate(path: path, afterStep: 3)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        let last = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[2].utf8)) as? [String: Any])
        XCTAssertEqual(last["step"] as? Int, 3)
        XCTAssertEqual(last["learning_rate"] as? Double, 0.1)
        XCTAssertNil(last["mlm_loss"], "nil fields are left out")
    }
}

extension Array where Element == UInt8 {
    /// The index of the last byte of the first occurrence of `prefix` + `last`.
    func firstIndex(of last: UInt8, after prefix: String) -> Int? {
        let needle = Array(prefix.utf8) + [last]
        guard count >= needle.count else { return nil }
        for i in 0...(count - needle.count) where Array(self[i..<(i + needle.count)]) == needle { return i + needle.count - 1 }
        return nil
    }
}
