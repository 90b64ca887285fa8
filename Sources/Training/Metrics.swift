import Foundation

/// One logged training step, as written to `metrics.jsonl` (one JSON object per line).
public struct StepMetrics: Codable, Equatable, Sendable {
    public var step: Int
    public var epoch: Int
    public var loss: Double
    public var mlmLoss: Double?
    public var nspLoss: Double?
    public var mlmAccuracy: Double?
    public var nspAccuracy: Double?
    public var accuracy: Double?
    public var learningRate: Double
    public var gradientNorm: Double?
    public var tokensPerSecond: Double?
    public var seconds: Double?
    /// ELECTRA: the discriminator's mean binary cross-entropy over real tokens (λ not applied).
    public var rtdLoss: Double? = nil
    /// ELECTRA: the share of real tokens the discriminator classified right.
    public var rtdAccuracy: Double? = nil
    /// ELECTRA: the share of replaced tokens the discriminator called replaced.
    public var rtdRecall: Double? = nil
    /// ELECTRA: the share of masked positions where the generator sampled the original token.
    public var sampledOriginal: Double? = nil

    /// A row; optional fields are left out of the JSON when nil.
    public init(step: Int, epoch: Int, loss: Double, mlmLoss: Double? = nil, nspLoss: Double? = nil, mlmAccuracy: Double? = nil,
                nspAccuracy: Double? = nil, accuracy: Double? = nil, learningRate: Double, gradientNorm: Double? = nil,
                tokensPerSecond: Double? = nil, seconds: Double? = nil) {
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.mlmLoss = mlmLoss
        self.nspLoss = nspLoss
        self.mlmAccuracy = mlmAccuracy
        self.nspAccuracy = nspAccuracy
        self.accuracy = accuracy
        self.learningRate = learningRate
        self.gradientNorm = gradientNorm
        self.tokensPerSecond = tokensPerSecond
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
        case step, epoch, loss, accuracy, seconds
        case mlmLoss = "mlm_loss", nspLoss = "nsp_loss", mlmAccuracy = "mlm_accuracy", nspAccuracy = "nsp_accuracy"
        case learningRate = "learning_rate", gradientNorm = "gradient_norm", tokensPerSecond = "tokens_per_second"
        case rtdLoss = "rtd_loss", rtdAccuracy = "rtd_accuracy", rtdRecall = "rtd_recall", sampledOriginal = "sampled_original"
    }

    /// Scalars for TensorBoard, tagged as Hugging Face's Trainer does (train/…).
    public var scalars: [(String, Double)] {
        var out: [(String, Double)] = [("train/loss", loss), ("train/learning_rate", learningRate)]
        if let x = mlmLoss { out.append(("train/mlm_loss", x)) }
        if let x = nspLoss { out.append(("train/nsp_loss", x)) }
        if let x = mlmAccuracy { out.append(("train/mlm_accuracy", x)) }
        if let x = nspAccuracy { out.append(("train/nsp_accuracy", x)) }
        if let x = accuracy { out.append(("train/accuracy", x)) }
        if let x = rtdLoss { out.append(("train/rtd_loss", x)) }
        if let x = rtdAccuracy { out.append(("train/rtd_accuracy", x)) }
        if let x = rtdRecall { out.append(("train/rtd_recall", x)) }
        if let x = sampledOriginal { out.append(("train/sampled_original", x)) }
        if let x = gradientNorm { out.append(("train/grad_norm", x)) }
        if let x = tokensPerSecond { out.append(("train/tokens_per_second", x)) }
        return out
    }
}

/// Appends JSON lines to a file (created if missing). Each line is written with one `write` call
/// and flushed, so a crash leaves whole lines. On resume the caller truncates rows past the
/// checkpoint's step with `truncate(afterStep:)`.
public final class MetricsLog {
    public let path: String
    let handle: FileHandle

    /// Opens (or creates) `path` for appending.
    public init(path: String) throws {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw TrainingError.io(path: path, reason: "cannot create the metrics file")
            }
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    /// Appends one row.
    public func append<T: Encodable>(_ row: T) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        var data = try e.encode(row)
        data.append(0x0A)
        try handle.write(contentsOf: data)
    }

    /// Keeps only rows whose "step" is at most `step` (rows past a checkpoint are replayed on resume).
    public static func truncate(path: String, afterStep step: Int) throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        var kept = Data()
        for line in data.split(separator: 0x0A) {
            if let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], let s = obj["step"] as? Int, s > step {
                continue
            }
            kept.append(contentsOf: line)
            kept.append(0x0A)
        }
        try kept.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
