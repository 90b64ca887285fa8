/// Errors of reading a model directory (a checkpoint, a fine-tuned classifier, a public BERT). Each names
/// the file or setting and says what to do.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    /// A directory or file that is missing, damaged, or does not fit the model.
    case badCheckpoint(path: String, reason: String)
    /// A setting that does not fit (a vocabulary that does not exist, a from-scratch shape without a vocabulary).
    case invalidSetting(name: String, reason: String)

    public var description: String {
        switch self {
        case let .badCheckpoint(path, reason): return "\(path): bad checkpoint (\(reason))"
        case let .invalidSetting(name, reason): return "\(name): \(reason)"
        }
    }
}
