/// Errors of training, fine-tuning and checkpoints. Each names the file or field and says what to do.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// A file could not be read or written.
    case io(path: String, reason: String)
    /// The run directory already holds a run, and neither resume nor overwrite was asked for.
    case runExists(directory: String)
    /// Resume was asked for, but there is no checkpoint to resume from.
    case nothingToResume(directory: String)
    /// A checkpoint that is incomplete, damaged, or does not fit the model.
    case badCheckpoint(path: String, reason: String)
    /// The data does not fit the model (vocabulary, sequence length).
    case dataMismatch(reason: String)
    /// The loss became NaN or infinite.
    case nonFiniteLoss(step: Int, lastCheckpoint: String?)
    /// A setting out of range.
    case invalidSetting(name: String, reason: String)
    /// The processes of a data-parallel run no longer hold the same parameters.
    case processesDiverged(step: Int, processes: Int)

    public var description: String {
        switch self {
        case let .io(path, reason): return "\(path): \(reason)"
        case let .runExists(directory):
            return "\(directory): already holds a training run; pass --resume to continue it or --overwrite to start again"
        case let .nothingToResume(directory): return "\(directory): no checkpoint to resume from; run without --resume"
        case let .badCheckpoint(path, reason): return "\(path): bad checkpoint (\(reason))"
        case let .dataMismatch(reason): return "the data does not fit the model: \(reason)"
        case let .nonFiniteLoss(step, last):
            return "the loss became NaN or infinite at step \(step); lower the learning rate or check the data"
                + (last.map { "; the last good checkpoint is \($0)" } ?? "; no checkpoint was written yet")
        case let .invalidSetting(name, reason): return "\(name): \(reason)"
        case let .processesDiverged(step, processes):
            return "the \(processes) processes hold different parameters after update \(step), so no checkpoint was written; "
                + "resume from the last checkpoint, and report this with the mpirun command"
        }
    }
}
