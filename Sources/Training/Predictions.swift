import BertModel
import Foundation
import PretrainingData
import Support

/// How `bert predict` writes its rows.
public enum PredictionFormat: String, Sendable {
    /// A header (`label`, then `p_LABEL` per label), then per row the predicted label and every
    /// probability with 6 decimals, tab-separated.
    case tsv
    /// Per row one JSON object with sorted keys: `label` and `probabilities` (label → probability).
    case jsonl
}

extension FineTuner {
    /// Predicts every example of `store` with `model` and writes one line per example to `output`
    /// (atomically, streaming: memory does not grow with the file), or to stdout when `output` is nil.
    public static func writePredictions(model: BertForSequenceClassification, labels: [String], store: ExampleStore,
                                        batchSize: Int, format: PredictionFormat, output: String?) throws {
        let file = try output.map { path throws(OutputError) in try AtomicFileWriter(path: path) }
        let stdout = FileDescriptorWriter()
        func emit(_ line: String) throws {
            let bytes = Array(line.utf8)
            if let file { try file.write(bytes) } else { try stdout.write(bytes) }
        }
        if format == .tsv { try emit((["label"] + labels.map { "p_" + $0 }).joined(separator: "\t") + "\n") }
        try predict(model: model, store: store, batchSize: batchSize) { _, p in
            let best = p.indices.max { p[$0] < p[$1] }!
            switch format {
            case .jsonl:
                let obj: [String: Any] = ["label": labels[best], "probabilities": Dictionary(uniqueKeysWithValues: zip(labels, p))]
                try emit(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self) + "\n")
            case .tsv:
                try emit(([labels[best]] + p.map { String(format: "%.6f", $0) }).joined(separator: "\t") + "\n")
            }
        }
        try file?.commit()
    }
}
