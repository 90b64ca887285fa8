import BertModel
import Foundation
import ClassificationData
import PretrainingData
import Support
import TextNormalization
import WordPiece

/// MLM and NSP loss and accuracy of a model over shards, in evaluation mode (no dropout).
public struct PretrainingEvaluation: Codable, Equatable, Sendable {
    public var instances: Int
    public var maskedPositions: Int
    public var mlmLoss: Double
    public var mlmAccuracy: Double
    public var nspLoss: Double
    public var nspAccuracy: Double
    /// MLM accuracy of always predicting the most frequent masked token of this data (a floor).
    public var majorityTokenAccuracy: Double

    enum CodingKeys: String, CodingKey {
        case instances
        case maskedPositions = "masked_positions", mlmLoss = "mlm_loss", mlmAccuracy = "mlm_accuracy"
        case nspLoss = "nsp_loss", nspAccuracy = "nsp_accuracy", majorityTokenAccuracy = "majority_token_accuracy"
    }

    /// Evaluates `model` on every instance `loader` gives in epoch 0 (static masks as stored; dynamic
    /// masks as epoch 0 draws them). `limit`: stop after this many instances.
    public static func run(model: BertForPreTraining, loader: ShardLoader, limit: Int? = nil) throws -> PretrainingEvaluation {
        var instances = 0, masked = 0, mlmCorrect = 0, nspCorrect = 0
        var mlmLossSum = 0.0, nspLossSum = 0.0
        var labelCounts = [Int](repeating: 0, count: model.config.vocabSize)
        let batches = try loader.batches(epoch: 0)
        while let b = try batches.next() {
            for l in b.maskedLabels { labelCounts[Int(l)] += 1 }
            let out = try model.forward(PretrainingBatch(b), dropoutSeed: nil)
            instances += b.size
            masked += out.mlmCount
            mlmCorrect += out.mlmCorrect
            nspCorrect += out.nspCorrect
            mlmLossSum += Double(out.mlmLoss) * Double(out.mlmCount)
            nspLossSum += Double(out.nspLoss) * Double(out.nspCount)
            if let limit, instances >= limit { break }
        }
        return PretrainingEvaluation(
            instances: instances, maskedPositions: masked, mlmLoss: mlmLossSum / Double(max(1, masked)),
            mlmAccuracy: Double(mlmCorrect) / Double(max(1, masked)), nspLoss: nspLossSum / Double(max(1, instances)),
            nspAccuracy: Double(nspCorrect) / Double(max(1, instances)),
            majorityTokenAccuracy: Double(labelCounts.max() ?? 0) / Double(max(1, masked)))
    }
}

extension PretrainingEvaluation {
    /// MLM and NSP of the pre-trained checkpoint in `checkpoint` on the shards in `shards` (at most `limit`
    /// instances). The shards must have been built with the checkpoint's vocabulary; dynamic shards are
    /// masked as the loader masks them for epoch 0.
    public static func run(checkpoint: String, shards: String, batchSize: Int, limit: Int?, threads: Int,
                           precision: ModelPrecision = .fp32) throws -> PretrainingEvaluation {
        let source = try PretrainedSource(directory: checkpoint)
        let set = try ShardSet(directory: shards)
        let vocabData = try Data(contentsOf: URL(fileURLWithPath: source.vocabularyPath))
        try set.index.requireVocabulary(sha256: SHA256.hex(SHA256.hash(Array(vocabData))), reportingPath: shards + "/index.json")
        let p = set.index.parameters
        let vocabulary = try Vocabulary.parse(vocabData, source: source.vocabularyPath)
        let loader = try ShardLoader(set: set, options: .init(batchSize: batchSize, seed: 0),
                                     masker: Masker.forLoading(vocabulary: vocabulary, parameters: p))
        let model = try BertForPreTraining(config: source.config, maxBatch: batchSize, maxSeqLength: p.maxSeqLength,
                                           maxMaskedPositions: batchSize * p.maxPredictionsPerSeq, threads: threads)
        try Checkpoint.loadParameters(from: source.weights!, layout: model.layout, into: model.parameters)  // a directory always has weights
        model.precision = precision
        return try run(model: model, loader: loader, limit: limit)
    }
}
