import BertModel
import Checkpoints
import Foundation
import ClassificationData
import PretrainingData
import Support
import TextNormalization
import WordPiece

/// MLM and NSP (or, for ELECTRA, the generator's MLM and the discriminator's replaced-token detection)
/// loss and accuracy of a model over shards, in evaluation mode (no dropout).
public struct PretrainingEvaluation: Codable, Equatable, Sendable {
    public var instances: Int
    public var maskedPositions: Int
    /// Masked LM (ELECTRA: the generator's).
    public var mlmLoss: Double
    public var mlmAccuracy: Double
    /// Next-sentence prediction; nil for ELECTRA.
    public var nspLoss: Double?
    public var nspAccuracy: Double?
    /// MLM accuracy of always predicting the most frequent masked token of this data (a floor).
    public var majorityTokenAccuracy: Double
    /// ELECTRA: the discriminator's mean binary cross-entropy over real tokens, its accuracy there, its
    /// recall on replaced tokens, and the share of masked positions where the generator sampled the
    /// original (those count as not replaced). nil for BERT.
    public var rtdLoss: Double?
    public var rtdAccuracy: Double?
    public var rtdRecall: Double?
    public var sampledOriginal: Double?

    enum CodingKeys: String, CodingKey {
        case instances
        case maskedPositions = "masked_positions", mlmLoss = "mlm_loss", mlmAccuracy = "mlm_accuracy"
        case nspLoss = "nsp_loss", nspAccuracy = "nsp_accuracy", majorityTokenAccuracy = "majority_token_accuracy"
        case rtdLoss = "rtd_loss", rtdAccuracy = "rtd_accuracy", rtdRecall = "rtd_recall", sampledOriginal = "sampled_original"
    }

    /// Evaluates `model` on every instance `loader` gives in epoch 0 (static masks as stored; dynamic
    /// masks as epoch 0 draws them; ELECTRA's samples from `deriveSeed(0, batch)`). `limit`: stop after
    /// this many instances.
    public static func run(model: any PretrainingModel, loader: ShardLoader, limit: Int? = nil) throws -> PretrainingEvaluation {
        var instances = 0, masked = 0, mlmCorrect = 0, nspCorrect = 0
        var mlmLossSum = 0.0, nspLossSum = 0.0
        var rtd = (lossSum: 0.0, correct: 0, count: 0, replaced: 0, detected: 0, sampledOriginal: 0)
        var labelCounts = [Int](repeating: 0, count: model.config.vocabSize)
        let batches = try loader.batches(epoch: 0)
        var index: UInt64 = 0
        while let b = try batches.next() {
            for l in b.maskedLabels { labelCounts[Int(l)] += 1 }
            let out = try model.forward(PretrainingBatch(b), dropoutSeed: nil, sampleSeed: deriveSeed(0, index))
            index += 1
            instances += b.size
            masked += out.mlmCount
            mlmCorrect += out.mlmCorrect
            nspCorrect += out.nspCorrect
            mlmLossSum += Double(out.mlmLoss) * Double(out.mlmCount)
            nspLossSum += Double(out.nspLoss) * Double(out.nspCount)
            if let r = out.replacedToken {
                rtd.lossSum += Double(r.loss) * Double(r.count)
                (rtd.correct, rtd.count, rtd.replaced) = (rtd.correct + r.correct, rtd.count + r.count, rtd.replaced + r.replaced)
                (rtd.detected, rtd.sampledOriginal) = (rtd.detected + r.detected, rtd.sampledOriginal + r.sampledOriginal)
            }
            if let limit, instances >= limit { break }
        }
        let electra = model is ElectraForPreTraining
        func ratio(_ a: Int, _ b: Int) -> Double { Double(a) / Double(max(1, b)) }
        return PretrainingEvaluation(
            instances: instances, maskedPositions: masked, mlmLoss: mlmLossSum / Double(max(1, masked)), mlmAccuracy: ratio(mlmCorrect, masked),
            nspLoss: electra ? nil : nspLossSum / Double(max(1, instances)), nspAccuracy: electra ? nil : ratio(nspCorrect, instances),
            majorityTokenAccuracy: ratio(labelCounts.max() ?? 0, masked),
            rtdLoss: electra ? rtd.lossSum / Double(max(1, rtd.count)) : nil, rtdAccuracy: electra ? ratio(rtd.correct, rtd.count) : nil,
            rtdRecall: electra ? ratio(rtd.detected, rtd.replaced) : nil, sampledOriginal: electra ? ratio(rtd.sampledOriginal, masked) : nil)
    }
}

extension PretrainingEvaluation {
    /// MLM and NSP (or ELECTRA's figures) of the pre-trained checkpoint in `checkpoint` on the shards in `shards` (at most `limit`
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
        let maxMasked = batchSize * p.maxPredictionsPerSeq
        let model: any PretrainingModel
        if Checkpoint.isElectra(checkpoint) {  // the generator and the discriminator
            let generator = try Checkpoint.electraGeneratorConfig(directory: checkpoint, discriminator: source.config)
            let electra = try ElectraForPreTraining(config: source.config, generator: generator, maxBatch: batchSize, maxSeqLength: p.maxSeqLength,
                                                    maxMaskedPositions: maxMasked, threads: threads)
            try Checkpoint.loadElectraParameters(directory: checkpoint, layout: electra.layout, into: electra.parameters)
            model = electra
        } else {
            let bert = try BertForPreTraining(config: source.config, maxBatch: batchSize, maxSeqLength: p.maxSeqLength,
                                              maxMaskedPositions: maxMasked, threads: threads)
            try Checkpoint.loadParameters(from: source.weights!, layout: bert.layout, into: bert.parameters)  // a directory always has weights
            model = bert
        }
        model.precision = precision
        model.parametersDidChange()
        return try run(model: model, loader: loader, limit: limit)
    }
}

extension PretrainingBatch {
    /// The loader's batch as the model's (the one conversion between the data and model modules).
    public init(_ b: InstanceBatch) {
        self.init(batchSize: b.size, seqLength: b.seqLength, inputIds: b.inputIds, tokenTypeIds: b.segmentIds,
                  attentionMask: b.attentionMask, maskedPositions: b.maskedPositions, maskedLabels: b.maskedLabels,
                  nextSentenceLabels: b.nextSentenceLabels)
    }
}
