/// Errors of using a trained model. Each names the directory or setting and says what to do.
public enum InferenceError: Error, Equatable, CustomStringConvertible {
    /// A setting out of range for the model (a sequence length longer than its position table, say).
    case invalidSetting(name: String, reason: String)
    /// A checkpoint without a classifier's label names (config.json's id2label).
    case notAClassifier(directory: String)

    public var description: String {
        switch self {
        case let .invalidSetting(name, reason): return "\(name): \(reason)"
        case let .notAClassifier(directory):
            return "\(directory)/config.json: no id2label; give a directory written by bert finetune (or a transformers classifier)"
        }
    }
}
