import BertModel
import Foundation
import Kernels

/// What `--precision` asks for on `bert pretrain`, `finetune`, `predict` and `evaluate`.
public enum PrecisionChoice: String, CaseIterable, Sendable {
    /// fp32 everywhere.
    case fp32
    /// Mixed precision on the CPU's bf16 units (`ModelPrecision.bf16`); an error where there are none.
    case bf16
    /// bf16 where it pays: a CPU with AMX tiles (`amx_bf16`); fp32 elsewhere, including CPUs whose only
    /// bf16 units are AVX-512 BF16, where bf16 measured slower than fp32 (0.43–0.57× our fp32 in
    /// pre-training, 0.46× in predict, and PyTorch's autocast 0.66–0.80× its fp32: docs/results, issue 12).
    case auto

    /// The environment variable that, set to 1, runs `--precision bf16` with the reference products
    /// (bf16 inputs widened to fp32 and multiplied by sgemm: the same arithmetic, slowly) on a CPU
    /// without bf16 units. For checks and tests only; it is never a silent fallback.
    public static let referenceVariable = "BERTKIT_BF16_REFERENCE"

    /// The one-line help of `--precision`.
    public static let optionHelp = "Matrix products in fp32, bf16 (the CPU's bf16 units), or auto: bf16 on CPUs with AMX tiles, else fp32 (on AVX-512 BF16 alone bf16 measured slower)."

    /// The long help of `--precision`.
    public static let help = """
        bf16 is mixed precision: the linear layers' matrix products (and the tied MLM decoder) take bf16 \
        inputs and accumulate in fp32 on the CPU's bf16 units through oneDNN; master weights, gradients, \
        optimizer moments, LayerNorm, softmax, GELU, dropout and the losses stay fp32, and checkpoints are \
        fp32. Never emulated: --precision bf16 on a CPU without bf16 units is an error (exit 2). A run \
        records its precision in training_state.json and may resume in the other one.
        """

    /// The model precision this choice means here. `.bf16` without native bf16 (and without
    /// `referenceVariable`) is an error that says why and what to pass instead.
    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws(TrainingError) -> ModelPrecision {
        switch self {
        case .fp32: return .fp32
        case .auto: return Self.autoPicksBF16(native: BF16Support.isNative, flags: BF16Support.cpuFlags) ? .bf16(.oneDNN) : .fp32
        case .bf16:
            if BF16Support.isNative { return .bf16(.oneDNN) }
            if environment[Self.referenceVariable] == "1" { return .bf16(.reference) }
            throw .invalidSetting(name: "--precision bf16", reason: "\(BF16Support.unavailableReason ?? "no native bf16"); "
                                  + "bf16 is not emulated: pass --precision fp32 (or auto, which is fp32 here)")
        }
    }

    /// `auto`'s rule: bf16 only where oneDNN multiplies bf16 natively on AMX tiles.
    public static func autoPicksBF16(native: Bool, flags: [String]) -> Bool { native && flags.contains("amx_bf16") }

    /// How the choice turned out, for the run's first line, e.g. "bf16 (oneDNN 2.6.3, avx512_bf16)" or
    /// "fp32 (auto: this CPU has no native bf16 dot products …)".
    public func summary(_ precision: ModelPrecision) -> String {
        switch precision {
        case .bf16(.oneDNN): return "bf16 (oneDNN \(BF16Support.oneDNNVersion), \(BF16Support.cpuFlags.joined(separator: ", ")))"
        case .bf16(.reference): return "bf16 with reference products (\(Self.referenceVariable)=1, for checks)"
        case .fp32:
            guard self == .auto else { return "fp32" }
            if let reason = BF16Support.unavailableReason { return "fp32 (auto: \(reason))" }
            return "fp32 (auto: this CPU's bf16 units are \(BF16Support.cpuFlags.joined(separator: ", ")) without AMX, where bf16 "
                + "measured slower than fp32; --precision bf16 uses them anyway)"
        }
    }
}

extension ModelPrecision {
    /// The name written in `training_state.json` ("bf16"); nil for fp32, so fp32 runs write the same
    /// bytes as before mixed precision existed.
    public var stateName: String? {
        if case .bf16 = self { return "bf16" }
        return nil
    }
}
