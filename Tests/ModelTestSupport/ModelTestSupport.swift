/// Model helpers shared by the model and training tests: the tiny configs, a fixed batch, parameter
/// randomisation and a Double loss for finite differences.
import BertModel
import Foundation
import Kernels
import TestSupport

/// The tiny odd-sized config of the model tests (vocab 99, hidden 32, 2 layers, 4 heads, intermediate 37,
/// 16 positions), dropout off unless asked.
public func tinyConfig(hiddenDropout: Double = 0, attentionDropout: Double = 0, act: String = "gelu") -> BertConfig {
    BertConfig(vocabSize: 99, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 37, hiddenAct: act,
               hiddenDropoutProb: hiddenDropout, attentionProbsDropoutProb: attentionDropout, maxPositionEmbeddings: 16,
               typeVocabSize: 2)
}

/// The micro config of the training tests (hidden 12, 1 layer, 3 heads, intermediate 7): small enough that
/// a trainer runs hundreds of updates in a test; dropout off unless asked.
public func microConfig(vocabSize: Int, maxPositions: Int, dropout: Double = 0) -> BertConfig {
    BertConfig(vocabSize: vocabSize, hiddenSize: 12, numHiddenLayers: 1, numAttentionHeads: 3, intermediateSize: 7,
               hiddenDropoutProb: dropout, attentionProbsDropoutProb: dropout, maxPositionEmbeddings: maxPositions)
}

/// B = 3 sequences of T = 7: the first full, the others padded (5 and 4 real tokens); five masked
/// positions listed out of order; NSP labels 0, 1, 1.
public func tinyBatch() -> PretrainingBatch {
    let ids: [Int32] = [2, 10, 11, 3, 20, 21, 3,
                        2, 30, 3, 31, 3, 0, 0,
                        2, 40, 41, 3, 0, 0, 0]
    let types: [Int32] = [0, 0, 0, 0, 1, 1, 1,
                          0, 0, 0, 1, 1, 0, 0,
                          0, 0, 0, 1, 0, 0, 0]
    let mask: [Int32] = [1, 1, 1, 1, 1, 1, 1,
                         1, 1, 1, 1, 1, 0, 0,
                         1, 1, 1, 1, 0, 0, 0]
    return PretrainingBatch(batchSize: 3, seqLength: 7, inputIds: ids, tokenTypeIds: types, attentionMask: mask,
                            maskedPositions: [9, 1, 16, 4, 15], maskedLabels: [57, 12, 98, 5, 40], nextSentenceLabels: [0, 1, 1])
}

/// Sets every parameter to a random value of a size that makes each path of the model matter:
/// weights uniform with std 0.15, biases ±0.2, LayerNorm weights 1 ± 0.3.
public func randomizeParameters(_ model: BertForPreTraining, seed: UInt64) {
    randomizeParameters(model.layout, model.parameters, seed: seed)
}

/// `randomizeParameters` for any model's layout and parameter buffer.
public func randomizeParameters(_ layout: ParameterLayout, _ parameters: UnsafeMutableBufferPointer<Float>, seed: UInt64) {
    var rng = SeededRandom(seed: seed)
    for e in layout.entries {
        for j in e.range {
            let u = Float.random(in: -1..<1, using: &rng)
            if e.name.hasSuffix("LayerNorm.weight") {
                parameters[j] = 1 + 0.3 * u
            } else if e.name.hasSuffix("bias") {
                parameters[j] = 0.2 * u
            } else {
                parameters[j] = Float(0.15 * 3.0.squareRoot()) * u
            }
        }
    }
}

/// The loss of the last forward pass recomputed in Double from the model's logits (so that finite
/// differences see no Float rounding of the cross-entropy itself).
public func doubleLoss(_ model: BertForPreTraining, _ batch: PretrainingBatch) -> Double {
    let v = model.config.vocabSize
    func ce(_ logits: UnsafeBufferPointer<Float>, _ targets: [Int32], _ width: Int) -> Double {
        var total = 0.0
        for (r, target) in targets.enumerated() {
            let row = (0..<width).map { Double(logits[r * width + $0]) }
            let m = row.max()!
            total += m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[Int(target)]
        }
        return total / Double(targets.count)
    }
    return ce(model.mlmLogits, batch.maskedLabels, v) + ce(model.nspLogits, batch.nextSentenceLabels, 2)
}
