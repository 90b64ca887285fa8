import Foundation
import Kernels

/// BERT with the masked-LM and next-sentence heads, as Hugging Face's `BertForPreTraining`
/// (post-LayerNorm encoder, tanh pooler over [CLS], MLM decoder tied to the word embeddings).
///
/// Storage follows llm.c: one Float buffer of parameters with a named layout (Hugging Face names),
/// one of gradients with the same layout, and activations allocated once for
/// (maxBatch, maxSeqLength, maxMaskedPositions) and reused by every step. `forward` caches what
/// `backward` needs; `backward` accumulates d(loss)/d(parameters) into `gradients`.
/// Not thread-safe: one forward/backward at a time (each uses `threads` workers inside).
public final class BertForPreTraining: BertShellModel {
    /// The shared part (config, encoder, parameters, gradients); see `BertShellModel` for its accessors.
    public let shell: ModelShell
    /// Largest number of masked positions per batch (all sequences together).
    public let maxMaskedPositions: Int
    /// When true (the default), the last encoder layer computes its attention output, feed-forward
    /// block and LayerNorms only at the rows the heads read ([CLS] and the masked positions); its
    /// keys and values still cover every position. The loss and gradients are those of the full
    /// computation (the skipped rows do not reach the loss) and the work of the last layer drops by
    /// about T·B/(M + B). `sequenceOutput` is then empty; set false to get all of it.
    public var prunesLastLayer = true

    let off: Offsets
    let acts: Activations
    let grads: ActivationGradients
    let ints: IntBuffers
    /// Shape, dropout and pruning of the last forward pass; nil before the first one or after a failed one.
    var last: LastPass? { didSet { shell.lastPass = last?.pass } }

    struct LastPass {
        let pass: Encoder.Pass
        let m: Int
    }

    /// The MLM head (`cls.predictions`, H → H → V) on this model's buffers.
    var mlmHead: (head: MaskedLMHead, buffers: MaskedLMHead.Buffers, gradients: MaskedLMHead.Gradients) {
        let (h, a, d) = (config.hiddenSize, acts, grads)
        return (MaskedLMHead(dense: off.tW, denseBias: off.tB, norm: off.tLnW, normBias: off.tLnB, decoder: encoder.off.word, decoderBias: off.mlmBias,
                             inWidth: h, width: h, vocab: config.vocabSize, act: encoder.act, eps: encoder.dims.eps),
                MaskedLMHead.Buffers(input: a.mlmIn, pre: a.tPre, act: a.tAct, mean: a.tMean, rstd: a.tRstd, out: a.tOut, logits: a.logits),
                MaskedLMHead.Gradients(dlogits: d.dlogits, dOut: d.dtOut, dAct: d.dtAct, dPre: d.dtPre, dInput: d.dmlmIn))
    }

    /// Element offsets of the heads' tensors in `parameters` (and `gradients`).
    struct Offsets {
        let mlmBias, tW, tB, tLnW, tLnB, srW, srB: Int

        init(_ layout: ParameterLayout) {
            func o(_ name: String) -> Int { layout.entry(named: name)!.offset }
            mlmBias = o("cls.predictions.bias")
            tW = o("cls.predictions.transform.dense.weight")
            tB = o("cls.predictions.transform.dense.bias")
            tLnW = o("cls.predictions.transform.LayerNorm.weight")
            tLnB = o("cls.predictions.transform.LayerNorm.bias")
            srW = o("cls.seq_relationship.weight")
            srB = o("cls.seq_relationship.bias")
        }
    }

    /// The heads' forward activations (M = masked positions of the pass).
    struct Activations {
        let nspLogits: UnsafeMutablePointer<Float> // (B,2)
        let nspLosses, nspLse: UnsafeMutablePointer<Float> // (B,)
        let mlmIn: UnsafeMutablePointer<Float> // (M,H) gathered masked rows
        let tPre: UnsafeMutablePointer<Float> // (M,H) transform dense output
        let tAct: UnsafeMutablePointer<Float> // (M,H) activation output, LayerNorm input
        let tMean, tRstd: UnsafeMutablePointer<Float> // (M,)
        let tOut: UnsafeMutablePointer<Float> // (M,H) transform output
        let logits: UnsafeMutablePointer<Float> // (M,V)
        let mlmLosses, mlmLse: UnsafeMutablePointer<Float> // (M,)
    }

    /// Gradients of the heads' activations.
    struct ActivationGradients {
        let dlogits: UnsafeMutablePointer<Float> // (M,V)
        let dtOut, dtAct, dtPre, dmlmIn: UnsafeMutablePointer<Float> // (M,H)
        let dnsp: UnsafeMutablePointer<Float> // (B,2)
    }

    /// The heads' integer inputs and outputs (the encoder keeps ids, types, mask).
    struct IntBuffers {
        let maskedPositions, maskedLabels: UnsafeMutablePointer<Int32> // (M,)
        let nspLabels: UnsafeMutablePointer<Int32> // (B,)
        let mlmPred: UnsafeMutablePointer<Int32> // (M,)
        let nspPred: UnsafeMutablePointer<Int32> // (B,)
        let maskedRow: UnsafeMutablePointer<Int32> // (M,) index of each masked position among the kept rows
    }

    /// Allocates parameters, gradients and activations for batches up to the given sizes.
    /// Parameters start at zero; call `initialize(seed:)` or load a checkpoint into `parameters`.
    public init(config: BertConfig, maxBatch: Int, maxSeqLength: Int, maxMaskedPositions: Int, threads: Int) throws {
        shell = try ModelShell(config: config, maxBatch: maxBatch, maxSeqLength: maxSeqLength, maxHeadRows: maxMaskedPositions,
                               threads: threads, layout: ParameterLayout.bertForPreTraining)
        guard maxMaskedPositions > 0 else { throw ModelError.invalidSize(what: "maxMaskedPositions must be positive") }
        guard maxMaskedPositions <= maxBatch * maxSeqLength else {
            throw ModelError.invalidSize(what: "maxMaskedPositions \(maxMaskedPositions) exceeds maxBatch·maxSeqLength")
        }
        self.maxMaskedPositions = maxMaskedPositions
        off = Offsets(shell.layout)
        let arena = shell.arena

        let (b, m, h, v) = (maxBatch, maxMaskedPositions, config.hiddenSize, config.vocabSize)
        let floats = arena.floats, int32s = arena.int32s
        acts = Activations(nspLogits: floats(b * 2), nspLosses: floats(b), nspLse: floats(b), mlmIn: floats(m * h),
                           tPre: floats(m * h), tAct: floats(m * h), tMean: floats(m), tRstd: floats(m), tOut: floats(m * h),
                           logits: floats(m * v), mlmLosses: floats(m), mlmLse: floats(m))
        grads = ActivationGradients(dlogits: floats(m * v), dtOut: floats(m * h), dtAct: floats(m * h), dtPre: floats(m * h),
                                    dmlmIn: floats(m * h), dnsp: floats(b * 2))
        ints = IntBuffers(maskedPositions: int32s(m), maskedLabels: int32s(m), nspLabels: int32s(b), mlmPred: int32s(m),
                          nspPred: int32s(b), maskedRow: int32s(m))
    }

    /// The MLM logits of the last forward pass, (M,V): row k is masked position batch.maskedPositions[k].
    /// Valid until the next forward pass; empty before the first.
    public var mlmLogits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: acts.logits, count: last.map { $0.m * config.vocabSize } ?? 0)
    }

    /// The NSP logits of the last forward pass, (B,2). Valid until the next forward pass.
    public var nspLogits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: acts.nspLogits, count: last.map { $0.pass.b * 2 } ?? 0)
    }
}
