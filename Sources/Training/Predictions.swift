import BertModel
import Foundation
import ClassificationData
import PretrainingData
import Support

/// How `bert predict` writes its rows.
public enum PredictionFormat: String, Sendable {
    /// A header (`label`, then `p_LABEL` per label), then per row the predicted label and every
    /// probability with 6 decimals, tab-separated (empty fields for a row without text).
    case tsv
    /// Per row one JSON object with sorted keys: `label` and `probabilities` (label → probability).
    /// A row without text has both null.
    case jsonl
}

/// Writes predictions, one line per row, to a file (atomically: a temporary name renamed by `commit`)
/// or to stdout, streaming: memory does not grow with the rows.
public final class PredictionWriter {
    public let labels: [String]
    public let format: PredictionFormat
    let file: AtomicFileWriter?
    let stdout = FileDescriptorWriter()

    /// Starts the output (`output` nil: stdout) and writes the TSV header.
    public init(labels: [String], format: PredictionFormat, output: String?) throws {
        self.labels = labels
        self.format = format
        file = try output.map { path throws(OutputError) in try AtomicFileWriter(path: path) }
        if format == .tsv { try emit((["label"] + labels.map { "p_" + $0 }).joined(separator: "\t") + "\n") }
    }

    func emit(_ line: String) throws {
        let bytes = Array(line.utf8)
        if let file { try file.write(bytes) } else { try stdout.write(bytes) }
    }

    /// One row: the most probable label and every probability; an empty `probabilities` (a row without
    /// text) gives an empty row (TSV: empty fields; JSONL: `label` and `probabilities` null), so rows stay
    /// aligned with the input.
    public func add(_ probabilities: [Double]) throws {
        let p = probabilities
        guard !p.isEmpty else {
            switch format {
            case .jsonl: try emit("{\"label\":null,\"probabilities\":null}\n")
            case .tsv: try emit(String(repeating: "\t", count: labels.count) + "\n")
            }
            return
        }
        let best = p.indices.max { p[$0] < p[$1] }!
        switch format {
        case .jsonl:
            let obj: [String: Any] = ["label": labels[best], "probabilities": Dictionary(uniqueKeysWithValues: zip(labels, p))]
            try emit(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self) + "\n")
        case .tsv:
            try emit(([labels[best]] + p.map { String(format: "%.6f", $0) }).joined(separator: "\t") + "\n")
        }
    }

    /// Finishes a file output (renames it into place); nothing for stdout.
    public func commit() throws { try file?.commit() }
}

extension FineTuner {
    /// Predicts every example of `store` with `model` and writes one line per example, in store order,
    /// to `output` (atomically, streaming), or to stdout when `output` is nil.
    public static func writePredictions(model: BertForSequenceClassification, labels: [String], store: ExampleStore,
                                        batchSize: Int, format: PredictionFormat, output: String?) throws {
        let writer = try PredictionWriter(labels: labels, format: format, output: output)
        try predict(model: model, store: store, batchSize: batchSize) { _, p in try writer.add(p) }
        try writer.commit()
    }
}
