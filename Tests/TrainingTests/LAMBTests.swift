import BertModel
import Foundation
import TestSupport
import XCTest

@testable import Training
import Checkpoints

/// LAMB against NVIDIA's BERT optimizer (apex FusedLAMB), from a float64 PyTorch fixture whose written-out
/// code was checked against torch_optimizer.Lamb (Tests/Fixtures/optimizer/README.md).
final class LAMBTests: XCTestCase {
    /// Six steps on four tensors: parameters after every step, the trust ratios and the final moments
    /// match the reference to Float precision (errors relative to each tensor's scale).
    func testMatchesNVIDIAsLAMBFromThePyTorchFixture() throws {
        let f = try SafetensorsFile(path: Fixtures.path("optimizer/lamb.safetensors"))
        let decay = try f.doubles("decay").map { $0 != 0 }
        let sizes = try (0..<4).map { try f.doubles("init.\($0)").count }
        var offsets = [0]
        for s in sizes { offsets.append(offsets.last! + s) }
        let count = offsets.last!
        let tensors = (0..<4).map { LAMB.Tensor(range: offsets[$0]..<offsets[$0 + 1], decay: decay[$0]) }
        let lamb = LAMB(count: count, tensors: tensors, threads: 2)
        XCTAssertTrue(lamb.hyper.biasCorrection, "NVIDIA's LAMB corrects the bias")
        var p = try (0..<4).flatMap { try f.doubles("init.\($0)") }.float
        let lrs = try f.doubles("lr")
        for k in 0..<lrs.count {
            let g = try (0..<4).flatMap { try f.doubles("grad.\(k).\($0)") }.float
            p.withUnsafeMutableBufferPointer { pb in
                g.withUnsafeBufferPointer { lamb.step(parameters: pb.baseAddress!, gradients: $0.baseAddress!, lr: lrs[k]) }
            }
            for i in 0..<4 {
                let expected = try f.doubles("param.\(k).\(i)")
                let error = Numerics.relativeError(Array(p[tensors[i].range]), expected)
                XCTAssertLessThan(error, 2e-6, "step \(k + 1), tensor \(i)")
            }
            let ratios = try f.doubles("ratio.\(k)")
            for i in 0..<4 { XCTAssertEqual(lamb.lastTrustRatios[i], ratios[i], accuracy: 1e-5 * ratios[i], "ratio of tensor \(i) at step \(k + 1)") }
        }
        XCTAssertEqual(lamb.lastTrustRatios[2], 1, "no trust ratio on a no-decay tensor")
        for i in 0..<4 {
            XCTAssertLessThan(Numerics.relativeError(Array(lamb.m[tensors[i].range]), try f.doubles("exp_avg.\(i)")), 1e-6)
            XCTAssertLessThan(Numerics.relativeError(Array(lamb.v[tensors[i].range]), try f.doubles("exp_avg_sq.\(i)")), 1e-6)
        }
    }

    /// On tensors without weight decay LAMB is Adam with bias correction (OptimizerTests' Double
    /// formula, to Float precision). And the result does not depend on the thread count, with
    /// tensors larger than one work block (the trust-ratio norms are summed over blocks in order).
    func testNoDecayIsAdamAndThreadsDoNotMatter() {
        var rng = SeededRandom(seed: 5)
        let n = 150_001
        let p0 = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
        let grads = (0..<3).map { _ in (0..<n).map { _ in Float.random(in: -0.1...0.1, using: &rng) } }
        func run(_ make: () -> MomentOptimizer) -> [Float] {
            let opt = make()
            var p = p0
            for (k, g) in grads.enumerated() {
                p.withUnsafeMutableBufferPointer { pb in
                    g.withUnsafeBufferPointer { opt.step(parameters: pb.baseAddress!, gradients: $0.baseAddress!, lr: 1e-3 * Double(k + 1)) }
                }
            }
            return p
        }
        let plain = [LAMB.Tensor(range: 0..<70_000, decay: false), LAMB.Tensor(range: 70_000..<n, decay: false)]
        let lamb = run { LAMB(count: n, tensors: plain, threads: 3) }
        var p = p0.double
        var m = [Double](repeating: 0, count: n), v = m
        for (k, g) in grads.enumerated() {
            OptimizerTests.reference(&p, &m, &v, g.double, decay: [Bool](repeating: false, count: n), lr: 1e-3 * Double(k + 1), t: k + 1,
                                       biasCorrection: true)
        }
        XCTAssertLessThan(Numerics.relativeError(lamb, p), 1e-6)
        let layered = [LAMB.Tensor(range: 0..<100_000, decay: true), LAMB.Tensor(range: 100_000..<100_300, decay: false),
                       LAMB.Tensor(range: 100_300..<n, decay: true)]
        let one = run { LAMB(count: n, tensors: layered, threads: 1) }
        let four = run { LAMB(count: n, tensors: layered, threads: 4) }
        XCTAssertTrue(Numerics.bitIdentical(one, four))
        XCTAssertFalse(Numerics.bitIdentical(one, lamb), "the trust ratio changes the update")
    }
}
