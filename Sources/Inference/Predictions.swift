import BertModel
import Checkpoints
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

extension BertForSequenceClassification {
    /// Predicts every example of `store` and writes one line per example, in store order, to `output`
    /// (atomically, streaming), or to stdout when `output` is nil.
    public func writePredictions(labels: [String], store: ExampleStore, batchSize: Int, format: PredictionFormat,
                                 output: String?) throws {
        let writer = try PredictionWriter(labels: labels, format: format, output: output)
        try predict(store: store, batchSize: batchSize) { _, p in try writer.add(p) }
        try writer.commit()
    }

    /// Confusion counts of the model on `store`; with `predictions`, each row's prediction is written there
    /// too, in store order.
    public func evaluate(store: ExampleStore, labels: [String], batchSize: Int,
                         predictions: PredictionWriter? = nil) throws -> ClassificationMetrics {
        var m = ClassificationMetrics(labels: labels)
        try predict(store: store, batchSize: batchSize) { i, probabilities in
            try predictions?.add(probabilities)
            guard !probabilities.isEmpty else { return }
            let truth = Int(store.example(i).label)
            let predicted = probabilities.indices.max { probabilities[$0] < probabilities[$1] }!
            m.add(truth: truth, predicted: predicted)
        }
        return m
    }

    /// Examples per length-sorted window of `predict`, in batches.
    public static let predictionWindowBatches = 64

    /// Class probabilities for every example of `store`, handed to `body` in store order. Each window of
    /// `predictionWindowBatches` batches is sorted by length (longest first, ties in store order) before
    /// it is cut into batches, and each batch is padded to its longest example, so the work follows the
    /// real tokens; the window's results are then handed out in store order (memory: one window). A row
    /// without tokens (a blank line of plain text) gets an empty array.
    public func predict(store: ExampleStore, batchSize: Int, _ body: (Int, [Double]) throws -> Void) throws {
        let l = numLabels
        let b = max(1, min(batchSize, maxBatch))
        let window = Self.predictionWindowBatches * b
        var start = 0
        while start < store.count {
            let end = min(store.count, start + window)
            var keyed: [(index: Int, length: Int)] = []
            for i in start..<end {
                let n = store.example(i).ids.count
                if n > 0 { keyed.append((i, n)) }
            }
            keyed.sort { $0.length != $1.length ? $0.length > $1.length : $0.index < $1.index }
            let order: [Int] = keyed.map(\.index)
            var results = [[Double]](repeating: [], count: end - start)  // (window,) probabilities per row
            var next = 0
            while next < order.count {
                let indices = order[next..<min(order.count, next + b)]
                next += b
                let batch = store.batch(indices)
                _ = try forward(ClassificationBatch(batchSize: indices.count, seqLength: batch.seqLength, inputIds: batch.ids,
                                                          tokenTypeIds: batch.types, attentionMask: batch.mask,
                                                          labels: [Int32](repeating: -1, count: indices.count)),
                                      dropoutSeed: nil)
                let logits = self.logits  // (batch, labels)
                for (row, i) in indices.enumerated() {
                    let z = (0..<l).map { Double(logits[row * l + $0]) }
                    let mx = z.max()!
                    let e = z.map { exp($0 - mx) }
                    let s = e.reduce(0, +)
                    results[i - start] = e.map { $0 / s }
                }
            }
            for i in start..<end { try body(i, results[i - start]) }
            start = end
        }
    }
}
