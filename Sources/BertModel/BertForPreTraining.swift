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
public final class BertForPreTraining {
    /// The model's hyper-parameters (validated).
    public let config: BertConfig
    /// Names, shapes and offsets of the tensors in `parameters` and `gradients`.
    public let layout: ParameterLayout
    /// All parameters, (layout.count,).
    public let parameters: UnsafeMutableBufferPointer<Float>
    /// d(loss)/d(parameters), same layout; `backward` adds to it, `zeroGradients` clears it.
    public let gradients: UnsafeMutableBufferPointer<Float>
    /// Largest batch size B the activations were allocated for.
    public let maxBatch: Int
    /// Largest sequence length T the activations were allocated for.
    public let maxSeqLength: Int
    /// Largest number of masked positions per batch (all sequences together).
    public let maxMaskedPositions: Int
    /// Worker threads of every kernel (results do not depend on it).
    public let threads: Int
    /// When true (the default), the last encoder layer computes its attention output, feed-forward
    /// block and LayerNorms only at the rows the heads read ([CLS] and the masked positions); its
    /// keys and values still cover every position. The loss and gradients are those of the full
    /// computation (the skipped rows do not reach the loss) and the work of the last layer drops by
    /// about T·B/(M + B). `sequenceOutput` is then empty; set false to get all of it.
    public var prunesLastLayer = true

    let act: Activation
    let dims: Dims
    let off: Offsets
    let acts: Activations
    let grads: ActivationGradients
    let ints: IntBuffers
    let attentionScratch: UnsafeMutablePointer<Float>
    private var storage: [UnsafeMutableRawPointer] = []
    /// Shape and dropout of the last forward pass; nil before the first one or after a failed one.
    var last: LastPass?

    struct Dims {
        let v, h, i, nh, hs, layers, typeVocab, positions: Int
        let eps: Float
        let paddingId: Int32?
    }

    struct LastPass {
        let b, t, m: Int
        let hiddenP, attentionP: Float
        /// Rows kept in the last layer (R), or nil when it ran on all B·T rows.
        let keptRows: Int?
    }

    /// Element offsets of each tensor in `parameters` (and `gradients`).
    struct Offsets {
        struct Layer { let qkvW, qkvB, aoW, aoB, ln1W, ln1B, iW, iB, oW, oB, ln2W, ln2B: Int }
        let word, position, tokenType, embLnW, embLnB: Int
        let layers: [Layer]
        let poolW, poolB, mlmBias, tW, tB, tLnW, tLnB, srW, srB: Int

        init(_ layout: ParameterLayout, layers n: Int) {
            func o(_ name: String) -> Int { layout.entry(named: name)!.offset }
            word = o("bert.embeddings.word_embeddings.weight")
            position = o("bert.embeddings.position_embeddings.weight")
            tokenType = o("bert.embeddings.token_type_embeddings.weight")
            embLnW = o("bert.embeddings.LayerNorm.weight")
            embLnB = o("bert.embeddings.LayerNorm.bias")
            layers = (0..<n).map { l in
                let p = "bert.encoder.layer.\(l)."
                return Layer(qkvW: o(p + "attention.self.query.weight"), qkvB: o(p + "attention.self.query.bias"),
                             aoW: o(p + "attention.output.dense.weight"), aoB: o(p + "attention.output.dense.bias"),
                             ln1W: o(p + "attention.output.LayerNorm.weight"), ln1B: o(p + "attention.output.LayerNorm.bias"),
                             iW: o(p + "intermediate.dense.weight"), iB: o(p + "intermediate.dense.bias"),
                             oW: o(p + "output.dense.weight"), oB: o(p + "output.dense.bias"),
                             ln2W: o(p + "output.LayerNorm.weight"), ln2B: o(p + "output.LayerNorm.bias"))
            }
            poolW = o("bert.pooler.dense.weight")
            poolB = o("bert.pooler.dense.bias")
            mlmBias = o("cls.predictions.bias")
            tW = o("cls.predictions.transform.dense.weight")
            tB = o("cls.predictions.transform.dense.bias")
            tLnW = o("cls.predictions.transform.LayerNorm.weight")
            tLnB = o("cls.predictions.transform.LayerNorm.bias")
            srW = o("cls.seq_relationship.weight")
            srB = o("cls.seq_relationship.bias")
        }
    }

    /// Forward activations (shapes for the actual B, T, M of a pass; N = B·T; prefixes of the maxima).
    struct Activations {
        struct Layer {
            let qkv: UnsafeMutablePointer<Float> // (N,3H)
            let probs: UnsafeMutablePointer<Float> // (B,NH,T,T) softmax before dropout
            let probMask: UnsafeMutablePointer<UInt8>? // (B,NH,T,T) attention dropout mask
            let ctx: UnsafeMutablePointer<Float> // (N,H) attention output, heads concatenated
            let res1: UnsafeMutablePointer<Float> // (N,H) x + dropout(dense(ctx)), LayerNorm 1 input
            let aoMask: UnsafeMutablePointer<UInt8>? // (N,H)
            let mean1, rstd1: UnsafeMutablePointer<Float> // (N,)
            let ln1: UnsafeMutablePointer<Float> // (N,H)
            let inter: UnsafeMutablePointer<Float> // (N,I) intermediate dense output (activation input)
            let actOut: UnsafeMutablePointer<Float> // (N,I) activation output
            let res2: UnsafeMutablePointer<Float> // (N,H) ln1 + dropout(dense(actOut)), LayerNorm 2 input
            let ffMask: UnsafeMutablePointer<UInt8>? // (N,H)
            let mean2, rstd2: UnsafeMutablePointer<Float> // (N,)
            let out: UnsafeMutablePointer<Float> // (N,H) layer output
        }
        let embSum: UnsafeMutablePointer<Float> // (N,H) word + position + type
        let embMean, embRstd: UnsafeMutablePointer<Float> // (N,)
        let x0: UnsafeMutablePointer<Float> // (N,H) dropout(LayerNorm(embSum)), encoder input
        let embMask: UnsafeMutablePointer<UInt8>? // (N,H)
        let layers: [Layer]
        let clsIn: UnsafeMutablePointer<Float> // (B,H) h[:,0]
        let pooled: UnsafeMutablePointer<Float> // (B,H) tanh(dense(clsIn))
        let nspLogits: UnsafeMutablePointer<Float> // (B,2)
        let nspLosses, nspLse: UnsafeMutablePointer<Float> // (B,)
        let mlmIn: UnsafeMutablePointer<Float> // (M,H) gathered masked rows
        let tPre: UnsafeMutablePointer<Float> // (M,H) transform dense output
        let tAct: UnsafeMutablePointer<Float> // (M,H) activation output, LayerNorm input
        let tMean, tRstd: UnsafeMutablePointer<Float> // (M,)
        let tOut: UnsafeMutablePointer<Float> // (M,H) transform output
        let logits: UnsafeMutablePointer<Float> // (M,V)
        let mlmLosses, mlmLse: UnsafeMutablePointer<Float> // (M,)
        let qR: UnsafeMutablePointer<Float> // (R,H) last layer's queries at the kept rows
        let xR: UnsafeMutablePointer<Float> // (R,H) last layer's input at the kept rows
    }

    /// Gradients of activations: scratch reused by every layer of the backward pass.
    struct ActivationGradients {
        let dx: UnsafeMutablePointer<Float> // (N,H) d(layer output), then d(layer input)
        let dres: UnsafeMutablePointer<Float> // (N,H) d(LayerNorm input)
        let dmid: UnsafeMutablePointer<Float> // (N,H) d(dropout input)
        let dln1: UnsafeMutablePointer<Float> // (N,H)
        let dact: UnsafeMutablePointer<Float> // (N,I)
        let dinter: UnsafeMutablePointer<Float> // (N,I)
        let dctx: UnsafeMutablePointer<Float> // (N,H)
        let dqkv: UnsafeMutablePointer<Float> // (N,3H)
        let dlogits: UnsafeMutablePointer<Float> // (M,V)
        let dtOut, dtAct, dtPre, dmlmIn: UnsafeMutablePointer<Float> // (M,H)
        let dnsp: UnsafeMutablePointer<Float> // (B,2)
        let dpooled, dpooledPre, dclsIn: UnsafeMutablePointer<Float> // (B,H)
        let dqR: UnsafeMutablePointer<Float> // (R,H)
    }

    /// The batch's integer inputs, copied so that `backward` can use them after `forward` returns.
    struct IntBuffers {
        let ids, typeIds, mask: UnsafeMutablePointer<Int32> // (B,T)
        let maskedPositions, maskedLabels: UnsafeMutablePointer<Int32> // (M,)
        let nspLabels, clsIndex: UnsafeMutablePointer<Int32> // (B,); clsIndex[b] = b·T
        let mlmPred: UnsafeMutablePointer<Int32> // (M,)
        let nspPred: UnsafeMutablePointer<Int32> // (B,)
        let seen: UnsafeMutablePointer<UInt8> // (B·T,) duplicate check, then rows the heads read
        let keptRows: UnsafeMutablePointer<Int32> // (R,) flat rows b·T + t kept in the last layer, increasing
        let keptPositions: UnsafeMutablePointer<Int32> // (R,) t of each kept row
        let rowStart: UnsafeMutablePointer<Int32> // (B+1,) kept rows of sequence b: rowStart[b]..<rowStart[b+1]
        let rowOf: UnsafeMutablePointer<Int32> // (B·T,) index in keptRows of a kept flat row
        let maskedRow, clsRow: UnsafeMutablePointer<Int32> // (M,), (B,) index in keptRows
    }

    /// Allocates parameters, gradients and activations for batches up to the given sizes.
    /// Parameters start at zero; call `initialize(seed:)` or load a checkpoint into `parameters`.
    public init(config: BertConfig, maxBatch: Int, maxSeqLength: Int, maxMaskedPositions: Int, threads: Int) throws {
        try config.validate()
        guard let act = Activation(huggingFaceName: config.hiddenAct) else {
            throw ModelError.invalidSize(what: "hidden_act \"\(config.hiddenAct)\" is not supported")
        }
        guard maxBatch > 0, maxSeqLength > 0, maxMaskedPositions > 0, threads > 0 else {
            throw ModelError.invalidSize(what: "maxBatch, maxSeqLength, maxMaskedPositions and threads must be positive")
        }
        guard maxSeqLength <= config.maxPositionEmbeddings else {
            throw ModelError.invalidSize(what: "maxSeqLength \(maxSeqLength) exceeds max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        guard maxMaskedPositions <= maxBatch * maxSeqLength else {
            throw ModelError.invalidSize(what: "maxMaskedPositions \(maxMaskedPositions) exceeds maxBatch·maxSeqLength")
        }
        self.config = config
        self.act = act
        self.maxBatch = maxBatch
        self.maxSeqLength = maxSeqLength
        self.maxMaskedPositions = maxMaskedPositions
        self.threads = threads
        let d = Dims(v: config.vocabSize, h: config.hiddenSize, i: config.intermediateSize, nh: config.numAttentionHeads,
                     hs: config.headSize, layers: config.numHiddenLayers, typeVocab: config.typeVocabSize,
                     positions: config.maxPositionEmbeddings, eps: Float(config.layerNormEps),
                     paddingId: (0..<config.vocabSize).contains(config.padTokenId) ? Int32(config.padTokenId) : nil)
        dims = d
        layout = ParameterLayout.bertForPreTraining(config)
        off = Offsets(layout, layers: d.layers)

        var storage: [UnsafeMutableRawPointer] = []
        func floats(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
            p.initialize(repeating: 0, count: max(1, n))
            storage.append(UnsafeMutableRawPointer(p))
            return p
        }
        func bytes(_ n: Int) -> UnsafeMutablePointer<UInt8> {
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, n))
            p.initialize(repeating: 0, count: max(1, n))
            storage.append(UnsafeMutableRawPointer(p))
            return p
        }
        func int32s(_ n: Int) -> UnsafeMutablePointer<Int32> {
            let p = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, n))
            p.initialize(repeating: 0, count: max(1, n))
            storage.append(UnsafeMutableRawPointer(p))
            return p
        }
        parameters = UnsafeMutableBufferPointer(start: floats(layout.count), count: layout.count)
        gradients = UnsafeMutableBufferPointer(start: floats(layout.count), count: layout.count)

        let (b, n, m, h, i, nh) = (maxBatch, maxBatch * maxSeqLength, maxMaskedPositions, d.h, d.i, d.nh)
        let rMax = min(n, m + b)
        let tt = maxSeqLength * maxSeqLength
        let hiddenDrop = config.hiddenDropoutProb > 0, attnDrop = config.attentionProbsDropoutProb > 0
        let layers = (0..<d.layers).map { _ in
            Activations.Layer(qkv: floats(n * 3 * h), probs: floats(b * nh * tt), probMask: attnDrop ? bytes(b * nh * tt) : nil,
                              ctx: floats(n * h), res1: floats(n * h), aoMask: hiddenDrop ? bytes(n * h) : nil,
                              mean1: floats(n), rstd1: floats(n), ln1: floats(n * h), inter: floats(n * i), actOut: floats(n * i),
                              res2: floats(n * h), ffMask: hiddenDrop ? bytes(n * h) : nil, mean2: floats(n), rstd2: floats(n),
                              out: floats(n * h))
        }
        acts = Activations(embSum: floats(n * h), embMean: floats(n), embRstd: floats(n), x0: floats(n * h),
                           embMask: hiddenDrop ? bytes(n * h) : nil, layers: layers, clsIn: floats(b * h), pooled: floats(b * h),
                           nspLogits: floats(b * 2), nspLosses: floats(b), nspLse: floats(b), mlmIn: floats(m * h),
                           tPre: floats(m * h), tAct: floats(m * h), tMean: floats(m), tRstd: floats(m), tOut: floats(m * h),
                           logits: floats(m * d.v), mlmLosses: floats(m), mlmLse: floats(m), qR: floats(rMax * h),
                           xR: floats(rMax * h))
        grads = ActivationGradients(dx: floats(n * h), dres: floats(n * h), dmid: floats(n * h), dln1: floats(n * h),
                                    dact: floats(n * i), dinter: floats(n * i), dctx: floats(n * h), dqkv: floats(n * 3 * h),
                                    dlogits: floats(m * d.v), dtOut: floats(m * h), dtAct: floats(m * h), dtPre: floats(m * h),
                                    dmlmIn: floats(m * h), dnsp: floats(b * 2), dpooled: floats(b * h), dpooledPre: floats(b * h),
                                    dclsIn: floats(b * h), dqR: floats(rMax * h))
        ints = IntBuffers(ids: int32s(n), typeIds: int32s(n), mask: int32s(n), maskedPositions: int32s(m),
                          maskedLabels: int32s(m), nspLabels: int32s(b), clsIndex: int32s(b), mlmPred: int32s(m),
                          nspPred: int32s(b), seen: bytes(n), keptRows: int32s(rMax), keptPositions: int32s(rMax),
                          rowStart: int32s(b + 1), rowOf: int32s(n), maskedRow: int32s(m), clsRow: int32s(b))
        attentionScratch = floats(attentionScratchCount(t: maxSeqLength, threads: threads))
        self.storage = storage
    }

    deinit {
        for p in storage { p.deallocate() }
    }

    /// Sets every gradient to zero.
    public func zeroGradients() {
        zero(gradients.baseAddress!, count: gradients.count, threads: threads)
    }

    /// Hugging Face's `_init_weights`: normal(0, initializer_range) for linear weights and the three
    /// embedding tables (the padding id's word-embedding row then zeroed, as for `padding_idx`), zero
    /// biases (cls.predictions.bias included), LayerNorm weight 1 and bias 0. Deterministic: entry k
    /// draws from the SplitMix64 stream `deriveSeed(seed, k)` through Box–Muller.
    public func initialize(seed: UInt64) {
        let std = config.initializerRange
        let p = parameters.baseAddress!
        for (k, e) in layout.entries.enumerated() {
            let dst = p + e.offset
            if e.name.hasSuffix("LayerNorm.weight") {
                dst.update(repeating: 1, count: e.count)
            } else if e.name.hasSuffix("bias") {
                dst.update(repeating: 0, count: e.count)
            } else {
                var rng = NormalGenerator(seed: deriveSeed(seed, UInt64(k)))
                for j in 0..<e.count { dst[j] = Float(rng.next() * std) }
            }
        }
        if let pad = dims.paddingId { (p + off.word + Int(pad) * dims.h).update(repeating: 0, count: dims.h) }
    }

    /// The MLM logits of the last forward pass, (M,V): row k is masked position batch.maskedPositions[k].
    /// Valid until the next forward pass; empty before the first.
    public var mlmLogits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: acts.logits, count: last.map { $0.m * dims.v } ?? 0)
    }

    /// The NSP logits of the last forward pass, (B,2). Valid until the next forward pass.
    public var nspLogits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: acts.nspLogits, count: last.map { $0.b * 2 } ?? 0)
    }

    /// The encoder output of the last forward pass (last_hidden_state), (B,T,H); empty when that
    /// pass pruned the last layer (see `prunesLastLayer`).
    public var sequenceOutput: UnsafeBufferPointer<Float> {
        let x = dims.layers > 0 ? acts.layers[dims.layers - 1].out : acts.x0
        let count = last.map { $0.keptRows == nil ? $0.b * $0.t * dims.h : 0 } ?? 0
        return UnsafeBufferPointer(start: x, count: count)
    }

    /// The pooler output of the last forward pass, tanh(dense(h[:,0])), (B,H).
    public var pooledOutput: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: acts.pooled, count: last.map { $0.b * dims.h } ?? 0)
    }
}

/// Standard normal draws: SplitMix64 uniforms through Box–Muller (both values of each pair used).
struct NormalGenerator {
    var counter: UInt64 = 0
    let seed: UInt64
    var spare: Double?

    init(seed: UInt64) { self.seed = seed }

    mutating func uniform() -> Double {
        counter += 1
        return Double(randomBits(seed: seed, counter: counter) >> 11) * 0x1p-53
    }

    mutating func next() -> Double {
        if let s = spare {
            spare = nil
            return s
        }
        let u1 = 1 - uniform() // (0, 1]
        let u2 = uniform()
        let r = (-2 * Foundation.log(u1)).squareRoot()
        spare = r * Foundation.sin(2 * Double.pi * u2)
        return r * Foundation.cos(2 * Double.pi * u2)
    }
}
