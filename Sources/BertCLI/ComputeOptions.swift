import ArgumentParser
import Support
import Training

/// `--threads`, declared and checked once for every command that works in parallel.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads (default: every CPU this process may run on, as `nproc` counts them).") var threads: Int?

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    }

    /// The number of threads to run: `--threads`, else the CPUs this process may run on.
    var count: Int { threads ?? availableCores() }
}

/// `--threads` and `--precision`, for the commands that run the model (pretrain, finetune, predict, evaluate).
struct ComputeOptions: ParsableArguments {
    @Option(help: ArgumentHelp(PrecisionChoice.optionHelp, discussion: PrecisionChoice.help))
    var precision: PrecisionChoice = .auto
    @OptionGroup var threading: ThreadOptions

    /// The number of threads to run.
    var threads: Int { threading.count }
}
extension PrecisionChoice: ExpressibleByArgument {}
