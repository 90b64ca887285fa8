import BertModel
import Foundation
import Kernels
import ModelTestSupport
import TestSupport
import XCTest

/// Whole-model gradients against finite differences of the loss.
///
/// The model runs in Float, so the loss of a perturbed model carries rounding noise of about 1e-7
/// relative. A fourth-order central difference, (−f(2ε) + 8f(ε) − 8f(−ε) + f(−2ε))/(12ε), with
/// ε = 2e-2 keeps that noise near 1e-5 while its truncation error (ε⁴) stays below it. The loss is
/// recomputed in Double from the logits. For each tensor the sampled entries are its two largest
/// analytic gradients plus three random ones, and the error is max |fd − analytic| over them divided
/// by the tensor's largest |analytic| gradient: it must be below 2e-3 (observed ≤ 2e-4; a gradient
/// 1% off or taken from the neighbouring entry fails, see `testWrongGradientsFail`).
final class GradientTests: XCTestCase {
    let eps: Float = 2e-2
    let tolerance = 2e-3

    struct Report {
        var errors: [String: Double] = [:]
        var analytic: [String: [(index: Int, value: Double)]] = [:]
        var numeric: [String: [Double]] = [:]
        var scale: [String: Double] = [:]
    }

    /// Analytic gradients of the model, and finite differences at sampled entries of every tensor.
    func check(_ model: BertForPreTraining, _ batch: PretrainingBatch, dropoutSeed: UInt64?, randomPerTensor: Int, seed: UInt64) throws -> Report {
        model.zeroGradients()
        _ = try model.forward(batch, dropoutSeed: dropoutSeed)
        model.backward()
        var rng = SeededRandom(seed: seed)
        var report = Report()
        for e in model.layout.entries {
            let g = (0..<e.count).map { Double(model.gradients[e.offset + $0]) }
            let order = g.indices.sorted { abs(g[$0]) > abs(g[$1]) }
            var picks = Array(order.prefix(2))
            for _ in 0..<randomPerTensor { picks.append(Int.random(in: 0..<e.count, using: &rng)) }
            let scale = max(abs(g[order[0]]), 1e-12)
            var worst = 0.0
            var numeric: [Double] = []
            for k in picks {
                let j = e.offset + k
                let saved = model.parameters[j]
                func loss(_ delta: Float) throws -> Double {
                    model.parameters[j] = saved + delta
                    _ = try model.forward(batch, dropoutSeed: dropoutSeed)
                    return doubleLoss(model, batch)
                }
                let fd = (-(try loss(2 * eps)) + 8 * (try loss(eps)) - 8 * (try loss(-eps)) + (try loss(-2 * eps))) / (12 * Double(eps))
                model.parameters[j] = saved
                numeric.append(fd)
                worst = max(worst, abs(fd - g[k]) / scale)
            }
            report.errors[e.name] = worst
            report.analytic[e.name] = picks.map { ($0, g[$0]) }
            report.numeric[e.name] = numeric
            report.scale[e.name] = scale
        }
        return report
    }

    func testEveryTensorMatchesFiniteDifferences() throws {
        let model = try BertForPreTraining(config: tinyConfig(), maxBatch: 3, maxSeqLength: 7, maxMaskedPositions: 5, threads: 2)
        randomizeParameters(model, seed: 101)
        let report = try check(model, tinyBatch(), dropoutSeed: nil, randomPerTensor: 3, seed: 7)
        XCTAssertEqual(report.errors.count, model.layout.entries.count)
        for e in model.layout.entries where !isKeyBias(e.name) {
            XCTAssertLessThan(report.errors[e.name]!, tolerance, e.name)
            XCTAssertGreaterThan(report.scale[e.name]!, 1e-2, "\(e.name): gradient too small to test")
        }
        assertKeyBiasHasNoGradient(model, report)
    }

    func testWithDropoutAndTanhGelu() throws {
        // Dropout masks are fixed by the seed, so the loss is still a smooth function of the parameters.
        let config = tinyConfig(hiddenDropout: 0.1, attentionDropout: 0.1, act: "gelu_new")
        let model = try BertForPreTraining(config: config, maxBatch: 3, maxSeqLength: 7, maxMaskedPositions: 5, threads: 2)
        randomizeParameters(model, seed: 102)
        let report = try check(model, tinyBatch(), dropoutSeed: 4242, randomPerTensor: 1, seed: 8)
        for e in model.layout.entries where !isKeyBias(e.name) { XCTAssertLessThan(report.errors[e.name]!, tolerance, e.name) }
        assertKeyBiasHasNoGradient(model, report)
    }

    /// The key bias adds q·b_k to every score of a row, which the softmax ignores: its true gradient
    /// is 0, so the relative check does not apply; analytic and numeric values must both be ~0.
    func isKeyBias(_ name: String) -> Bool { name.hasSuffix("attention.self.key.bias") }

    func assertKeyBiasHasNoGradient(_ model: BertForPreTraining, _ report: Report) {
        for e in model.layout.entries where isKeyBias(e.name) {
            XCTAssertLessThan(report.scale[e.name]!, 1e-6, e.name)
            XCTAssertLessThan(report.numeric[e.name]!.map(abs).max()!, 1e-4, e.name)
        }
    }

    /// The check must fail when the gradient is wrong: 1% too large, or taken from the neighbouring
    /// entry, are caught on every tensor.
    func testWrongGradientsFail() throws {
        let model = try BertForPreTraining(config: tinyConfig(), maxBatch: 3, maxSeqLength: 7, maxMaskedPositions: 5, threads: 2)
        randomizeParameters(model, seed: 101)
        let report = try check(model, tinyBatch(), dropoutSeed: nil, randomPerTensor: 0, seed: 7)
        for e in model.layout.entries where !isKeyBias(e.name) {
            let an = report.analytic[e.name]!, fd = report.numeric[e.name]!, scale = report.scale[e.name]!
            let scaled = zip(an, fd).map { abs($0.value * 1.01 - $1) / scale }.max()!
            XCTAssertGreaterThan(scaled, tolerance, "\(e.name): a 1% error would pass")
            // The gradient of the next entry in place of this one.
            let shifted = zip(an, fd).map { a, f in abs(Double(model.gradients[e.offset + (a.index + 1) % e.count]) - f) / scale }.max()!
            XCTAssertGreaterThan(shifted, tolerance, "\(e.name): a shifted gradient would pass")
        }
    }
}
