import Foundation

/// Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix of a classifier, as
/// scikit-learn's `classification_report` computes them (a class with no predictions has precision
/// 0, one with no examples recall 0; F1 is 0 when precision + recall is 0).
public struct ClassificationMetrics: Codable, Equatable, Sendable {
    /// Label names, by id.
    public var labels: [String]
    /// confusion[true][predicted] counts. // (L, L)
    public var confusion: [[Int]]

    /// Empty counts for `labels`.
    public init(labels: [String]) {
        self.labels = labels
        confusion = Array(repeating: Array(repeating: 0, count: labels.count), count: labels.count)
    }

    /// Counts one prediction.
    public mutating func add(truth: Int, predicted: Int) { confusion[truth][predicted] += 1 }

    public var total: Int { confusion.reduce(0) { $0 + $1.reduce(0, +) } }
    public var correct: Int { labels.indices.reduce(0) { $0 + confusion[$1][$1] } }
    public var accuracy: Double { Double(correct) / Double(max(1, total)) }

    /// Examples of class `c`.
    public func support(_ c: Int) -> Int { confusion[c].reduce(0, +) }
    public func precision(_ c: Int) -> Double {
        let predicted = labels.indices.reduce(0) { $0 + confusion[$1][c] }
        return predicted == 0 ? 0 : Double(confusion[c][c]) / Double(predicted)
    }
    public func recall(_ c: Int) -> Double {
        let s = support(c)
        return s == 0 ? 0 : Double(confusion[c][c]) / Double(s)
    }
    public func f1(_ c: Int) -> Double {
        let p = precision(c), r = recall(c)
        return p + r == 0 ? 0 : 2 * p * r / (p + r)
    }
    /// Unweighted mean of the per-class F1 over every label.
    public var macroF1: Double { labels.isEmpty ? 0 : labels.indices.reduce(0) { $0 + f1($1) } / Double(labels.count) }

    /// One JSON object: accuracy, macro_f1, per_class {label: {precision, recall, f1, support}}, confusion_matrix, labels.
    public func jsonObject() -> [String: Any] {
        var perClass: [String: Any] = [:]
        for (c, name) in labels.enumerated() {
            perClass[name] = ["precision": precision(c), "recall": recall(c), "f1": f1(c), "support": support(c)]
        }
        return ["accuracy": accuracy, "macro_f1": macroF1, "examples": total, "per_class": perClass,
                "confusion_matrix": confusion, "labels": labels]
    }

    /// A plain-text report: a per-class table and the confusion matrix (rows: truth, columns: predicted).
    public func table() -> String {
        let width = max(12, (labels.map(\.count).max() ?? 0) + 2)
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        var out = pad("", width) + pad("precision", 11) + pad("recall", 9) + pad("f1", 9) + pad("support", 9) + "\n"
        for (c, name) in labels.enumerated() {
            out += pad(name, width) + pad(String(format: "%.4f", precision(c)), 11) + pad(String(format: "%.4f", recall(c)), 9)
                + pad(String(format: "%.4f", f1(c)), 9) + pad(String(support(c)), 9) + "\n"
        }
        out += "\n" + pad("accuracy", width) + pad(String(format: "%.4f", accuracy), 29) + pad(String(total), 9) + "\n"
        out += pad("macro f1", width) + pad(String(format: "%.4f", macroF1), 29) + "\n\nconfusion (rows: true, columns: predicted)\n"
        out += pad("", width) + labels.map { pad($0, max(8, $0.count + 1)) }.joined() + "\n"
        for (c, name) in labels.enumerated() {
            out += pad(name, width) + labels.indices.map { pad(String(confusion[c][$0]), max(8, labels[$0].count + 1)) }.joined() + "\n"
        }
        return out
    }
}
