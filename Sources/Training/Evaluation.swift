import BertModel
import Foundation
import PretrainingData
import Support
import WordPiece

/// A fine-tuned classifier loaded from its directory, with its label names.
public struct LoadedClassifier {
    public let model: BertForSequenceClassification
    /// Label names by id (config.json's id2label; `LABEL_k` where one is missing).
    public let labels: [String]

    /// Loads a classifier directory (config.json with id2label, model.safetensors), for batches of at most
    /// `maxBatch` × `maxSeqLength` (capped at the model's positions).
    public init(directory: String, maxBatch: Int, maxSeqLength: Int, threads: Int, precision: ModelPrecision = .fp32) throws {
        let source = try PretrainedSource(directory: directory)
        guard let id2label = source.config.id2label, !id2label.isEmpty else { throw TrainingError.notAClassifier(directory: directory) }
        labels = (0..<id2label.count).map { id2label[String($0)] ?? "LABEL_\($0)" }
        model = try BertForSequenceClassification(config: source.config, numLabels: labels.count, maxBatch: maxBatch,
                                                  maxSeqLength: min(maxSeqLength, source.config.maxPositionEmbeddings), threads: threads)
        try Checkpoint.loadParameters(from: source.weights!, layout: model.layout, into: model.parameters)  // a directory always has weights
        model.precision = precision
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
