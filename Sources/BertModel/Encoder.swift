import Support
import Foundation
import Kernels

/// Owns the raw allocations of one model (activations, gradients, parameters); frees them with the model.
final class Arena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit {
        for p in blocks { p.deallocate() }
    }

    /// `n` zeroed elements (at least one, so that an empty tensor still has an address).
    func allocate<T: Numeric>(_ n: Int, of _: T.Type) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: max(1, n))
        p.initialize(repeating: 0, count: max(1, n))
        blocks.append(UnsafeMutableRawPointer(p))
        return p
    }

    func floats(_ n: Int) -> UnsafeMutablePointer<Float> { allocate(n, of: Float.self) }
    func bytes(_ n: Int) -> UnsafeMutablePointer<UInt8> { allocate(n, of: UInt8.self) }
    func int32s(_ n: Int) -> UnsafeMutablePointer<Int32> { allocate(n, of: Int32.self) }
}

/// Hugging Face's `BertModel` (embeddings, post-LayerNorm layers, tanh pooler over [CLS]) as used by
/// every BertKit model: the offsets of the "bert.*" tensors in a model's parameter buffer, the
/// activations and activation gradients for (maxBatch, maxSeqLength), and the forward and backward
/// passes. A model runs `forward`, then its heads on `output` and `acts.pooled`; its backward writes
/// d(loss)/d(output) into `grads.dx` and d(loss)/d(pooled) into `grads.dpooled`, then calls `backward`.
struct Encoder {
    /// Where an encoder's tensors are in a layout: BERT's names, or ELECTRA's (whose generator has an
    /// embedding projection and shares another encoder's embedding tables, and neither has a pooler).
    struct Names {
        /// Prefix of the embedding tables and their LayerNorm, e.g. "bert.embeddings.".
        let embeddings: String
        /// Prefix of the Linear(E → H) after the embeddings, when E ≠ H (ELECTRA's `embeddings_project`).
        let projection: String?
        /// Prefix of the layers, followed by the layer number, e.g. "bert.encoder.layer.".
        let layers: String
        /// Prefix of the tanh pooler over [CLS], or nil for an encoder without one.
        let pooler: String?

        static let bert = Names(embeddings: "bert.embeddings.", projection: nil, layers: "bert.encoder.layer.", pooler: "bert.pooler.")
    }

    struct Dims {
        /// e: the embedding width (= h unless the encoder has a projection).
        let v, e, h, i, nh, hs, layers, typeVocab, positions: Int
        let eps: Float
        let paddingId: Int32?
    }

    /// Shape, dropout and pruning of one pass (p = 0 in eval mode).
    struct Pass {
        let b, t: Int
        let hiddenP, attentionP: Float
        let seed: UInt64
        /// Rows kept in the last layer (R, listed by `keepRows`), or nil when it runs on all B·T rows.
        let kept: Int?

        /// A pass over (B,T); `dropoutSeed` nil = eval mode.
        init(b: Int, t: Int, config: BertConfig, dropoutSeed: UInt64?, kept: Int?) {
            self.b = b
            self.t = t
            hiddenP = dropoutSeed == nil ? 0 : Float(config.hiddenDropoutProb)
            attentionP = dropoutSeed == nil ? 0 : Float(config.attentionProbsDropoutProb)
            seed = dropoutSeed ?? 0
            self.kept = kept
        }

        /// Rows of the encoder output: R when the last layer was pruned, else B·T.
        var outputRows: Int { kept ?? b * t }
    }

    /// Element offsets of the encoder's tensors in `parameters` (and `gradients`).
    struct Offsets {
        struct Layer { let qkvW, qkvB, aoW, aoB, ln1W, ln1B, iW, iB, oW, oB, ln2W, ln2B: Int }
        let word, position, tokenType, embLnW, embLnB: Int
        /// The embedding projection's weight (H,E) and bias (H,), when the encoder has one.
        let projW, projB: Int?
        let layers: [Layer]
        /// The pooler's weight and bias, when the encoder has one.
        let poolW, poolB: Int?

        init(_ layout: ParameterLayout, names: Names, layers n: Int) {
            func o(_ name: String) -> Int {
                guard let e = layout.entry(named: name) else { preconditionFailure("the layout has no tensor \(name)") }
                return e.offset
            }
            let emb = names.embeddings
            word = o(emb + "word_embeddings.weight")
            position = o(emb + "position_embeddings.weight")
            tokenType = o(emb + "token_type_embeddings.weight")
            embLnW = o(emb + "LayerNorm.weight")
            embLnB = o(emb + "LayerNorm.bias")
            projW = names.projection.map { o($0 + "weight") }
            projB = names.projection.map { o($0 + "bias") }
            layers = (0..<n).map { l in
                let p = names.layers + "\(l)."
                return Layer(qkvW: o(p + "attention.self.query.weight"), qkvB: o(p + "attention.self.query.bias"),
                             aoW: o(p + "attention.output.dense.weight"), aoB: o(p + "attention.output.dense.bias"),
                             ln1W: o(p + "attention.output.LayerNorm.weight"), ln1B: o(p + "attention.output.LayerNorm.bias"),
                             iW: o(p + "intermediate.dense.weight"), iB: o(p + "intermediate.dense.bias"),
                             oW: o(p + "output.dense.weight"), oB: o(p + "output.dense.bias"),
                             ln2W: o(p + "output.LayerNorm.weight"), ln2B: o(p + "output.LayerNorm.bias"))
            }
            poolW = names.pooler.map { o($0 + "dense.weight") }
            poolB = names.pooler.map { o($0 + "dense.bias") }
        }
    }

    /// Forward activations (shapes for the actual B, T of a pass; N = B·T; prefixes of the maxima).
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
        let embSum: UnsafeMutablePointer<Float> // (N,E) word + position + type
        let embMean, embRstd: UnsafeMutablePointer<Float> // (N,)
        let embOut: UnsafeMutablePointer<Float> // (N,E) dropout(LayerNorm(embSum)); x0 itself without a projection
        let x0: UnsafeMutablePointer<Float> // (N,H) encoder input: embOut, or projection(embOut)
        let embMask: UnsafeMutablePointer<UInt8>? // (N,E)
        let layers: [Layer]
        let clsIn: UnsafeMutablePointer<Float> // (B,H) h[:,0]
        let pooled: UnsafeMutablePointer<Float> // (B,H) tanh(dense(clsIn))
        let qR: UnsafeMutablePointer<Float> // (R,H) last layer's queries at the kept rows
        let xR: UnsafeMutablePointer<Float> // (R,H) last layer's input at the kept rows
    }

    /// Gradients of activations: scratch reused by every layer of the backward pass.
    struct Gradients {
        let dx: UnsafeMutablePointer<Float> // (N,H) d(encoder output) from the heads, then d(layer input)
        let dres: UnsafeMutablePointer<Float> // (N,max(H,E)) d(LayerNorm input)
        let dmid: UnsafeMutablePointer<Float> // (N,max(H,E)) d(dropout input)
        let dembOut: UnsafeMutablePointer<Float> // (N,E) d(embOut) with a projection (else unused)
        let dln1: UnsafeMutablePointer<Float> // (N,H)
        let dact: UnsafeMutablePointer<Float> // (N,I)
        let dinter: UnsafeMutablePointer<Float> // (N,I)
        let dctx: UnsafeMutablePointer<Float> // (N,H)
        let dqkv: UnsafeMutablePointer<Float> // (N,3H)
        let dpooled: UnsafeMutablePointer<Float> // (B,H) d(pooled) from the heads
        let dpooledPre, dclsIn: UnsafeMutablePointer<Float> // (B,H)
        let dqR: UnsafeMutablePointer<Float> // (R,H)
    }

    /// The batch's integer inputs, copied so that `backward` can use them after `forward` returns.
    struct Inputs {
        let ids, typeIds, mask: UnsafeMutablePointer<Int32> // (B,T)
        let clsIndex: UnsafeMutablePointer<Int32> // (B,); clsIndex[b] = b·T
        let seen: UnsafeMutablePointer<UInt8> // (B·T,) scratch: the heads' duplicate checks, rows the heads read
        let keptRows: UnsafeMutablePointer<Int32> // (R,) flat rows b·T + t kept in the last layer, increasing
        let keptPositions: UnsafeMutablePointer<Int32> // (R,) t of each kept row
        let rowStart: UnsafeMutablePointer<Int32> // (B+1,) kept rows of sequence b: rowStart[b]..<rowStart[b+1]
        let rowOf: UnsafeMutablePointer<Int32> // (B·T,) index in keptRows of a kept flat row
        let clsRow: UnsafeMutablePointer<Int32> // (B,) index in keptRows of each [CLS] row
    }

    let act: Activation
    let dims: Dims
    /// Every matrix product of the encoder and the heads goes through this one seam.
    let products = MatrixProducts()
    let layout: ParameterLayout
    let off: Offsets
    let acts: Activations
    let grads: Gradients
    let ints: Inputs
    let attentionScratch: UnsafeMutablePointer<Float>
    /// A mask pointer for dropout calls with p = 0 (never read or written then).
    let dummyMask: UnsafeMutablePointer<UInt8>
    let maxBatch, maxSeqLength, threads: Int

    /// Checks the config and sizes, finds the encoder's tensors in `layout` under `names` and allocates
    /// the encoder's buffers from `arena`. `embeddingSize`: the width E of the embedding tables (the
    /// config's hidden size unless `names` has a projection). `maxHeadRows`: the most rows besides [CLS]
    /// that the heads read from the output (for pruning).
    init(config: BertConfig, layout: ParameterLayout, names: Names = .bert, embeddingSize: Int? = nil, maxBatch: Int, maxSeqLength: Int,
         maxHeadRows: Int, threads: Int, arena: Arena) throws {
        try config.validate()
        guard let act = Activation(huggingFaceName: config.hiddenAct) else {
            throw ModelError.unsupportedActivation(name: config.hiddenAct)
        }
        guard maxBatch > 0, maxSeqLength > 0, threads > 0 else {
            throw ModelError.invalidSize(what: "maxBatch, maxSeqLength and threads must be positive")
        }
        guard maxSeqLength <= config.maxPositionEmbeddings else {
            throw ModelError.invalidSize(what: "maxSeqLength \(maxSeqLength) exceeds max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        self.act = act
        self.maxBatch = maxBatch
        self.maxSeqLength = maxSeqLength
        self.threads = threads
        let e = embeddingSize ?? config.hiddenSize
        guard e > 0, names.projection != nil || e == config.hiddenSize else {
            throw ModelError.invalidSize(what: "embedding width \(e) differs from hidden_size \(config.hiddenSize) without a projection")
        }
        let d = Dims(v: config.vocabSize, e: e, h: config.hiddenSize, i: config.intermediateSize, nh: config.numAttentionHeads,
                     hs: config.headSize, layers: config.numHiddenLayers, typeVocab: config.typeVocabSize,
                     positions: config.maxPositionEmbeddings, eps: Float(config.layerNormEps),
                     paddingId: (0..<config.vocabSize).contains(config.padTokenId) ? Int32(config.padTokenId) : nil)
        dims = d
        self.layout = layout
        off = Offsets(layout, names: names, layers: d.layers)

        let (b, n, h, i, nh) = (maxBatch, maxBatch * maxSeqLength, d.h, d.i, d.nh)
        let rMax = min(n, maxHeadRows + b)
        let tt = maxSeqLength * maxSeqLength
        let hiddenDrop = config.hiddenDropoutProb > 0, attnDrop = config.attentionProbsDropoutProb > 0
        let floats = arena.floats, bytes = arena.bytes, int32s = arena.int32s
        let layers = (0..<d.layers).map { _ in
            Activations.Layer(qkv: floats(n * 3 * h), probs: floats(b * nh * tt), probMask: attnDrop ? bytes(b * nh * tt) : nil,
                              ctx: floats(n * h), res1: floats(n * h), aoMask: hiddenDrop ? bytes(n * h) : nil,
                              mean1: floats(n), rstd1: floats(n), ln1: floats(n * h), inter: floats(n * i), actOut: floats(n * i),
                              res2: floats(n * h), ffMask: hiddenDrop ? bytes(n * h) : nil, mean2: floats(n), rstd2: floats(n),
                              out: floats(n * h))
        }
        let x0 = floats(n * h)
        let projects = off.projW != nil
        acts = Activations(embSum: floats(n * d.e), embMean: floats(n), embRstd: floats(n), embOut: projects ? floats(n * d.e) : x0, x0: x0,
                           embMask: hiddenDrop ? bytes(n * d.e) : nil, layers: layers, clsIn: floats(b * h), pooled: floats(b * h),
                           qR: floats(rMax * h), xR: floats(rMax * h))
        grads = Gradients(dx: floats(n * h), dres: floats(n * max(h, d.e)), dmid: floats(n * max(h, d.e)),
                          dembOut: floats(projects ? n * d.e : 1), dln1: floats(n * h),
                          dact: floats(n * i), dinter: floats(n * i), dctx: floats(n * h), dqkv: floats(n * 3 * h),
                          dpooled: floats(b * h), dpooledPre: floats(b * h), dclsIn: floats(b * h), dqR: floats(rMax * h))
        ints = Inputs(ids: int32s(n), typeIds: int32s(n), mask: int32s(n), clsIndex: int32s(b), seen: bytes(n),
                      keptRows: int32s(rMax), keptPositions: int32s(rMax), rowStart: int32s(b + 1), rowOf: int32s(n),
                      clsRow: int32s(b))
        attentionScratch = floats(attentionScratchCount(t: maxSeqLength, threads: threads))
        dummyMask = bytes(1)
    }

    /// The encoder output of the last pass (last_hidden_state): (B·T,H), or (R,H) at ints.keptRows when pruned.
    var output: UnsafeMutablePointer<Float> { dims.layers > 0 ? acts.layers[dims.layers - 1].out : acts.x0 }

    /// Hugging Face's `_init_weights` over every entry of `layout` (heads included): normal(0,
    /// initializer_range) for linear weights and the three embedding tables (the padding id's
    /// word-embedding row then zeroed, as for `padding_idx`), zero biases, LayerNorm weight 1 and bias 0.
    /// Deterministic: entry k draws from the SplitMix64 stream `deriveSeed(seed, k)` through Box–Muller.
    func initialize(_ p: UnsafeMutablePointer<Float>, std: Double, seed: UInt64) {
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
        if let pad = dims.paddingId { (p + off.word + Int(pad) * dims.e).update(repeating: 0, count: dims.e) }
    }

    /// Overwrites the position embeddings, (P,H), with the Transformer's sinusoids (Vaswani et al.
    /// 2017): row t is [sin(t·ω_0), cos(t·ω_0), sin(t·ω_1), …] with ω_k = 10000^(−2k/H), scaled so
    /// their standard deviation is `std`. Nearby positions start similar and a fixed offset is a
    /// rotation, so attention by relative position is easy to learn from the first updates; the
    /// tensor stays an ordinary learned one (what transformers' BertModel loads).
    func sinusoidalPositions(_ p: UnsafeMutablePointer<Float>, std: Double) {
        let h = dims.e
        let scale = std * 2.0.squareRoot()  // sin and cos have variance 1/2
        for t in 0..<dims.positions {
            for k in 0..<(h / 2) {
                let angle = Double(t) * pow(10000, -2 * Double(k) / Double(h))
                p[off.position + t * h + 2 * k] = Float(sin(angle) * scale)
                p[off.position + t * h + 2 * k + 1] = Float(cos(angle) * scale)
            }
            if h % 2 == 1 { p[off.position + t * h + h - 1] = 0 }
        }
    }

    /// Checks the batch's shape and the counts of its (B,T) arrays against the allocation.
    func checkShape(batchSize b: Int, seqLength t: Int, inputIds: [Int32], tokenTypeIds: [Int32], attentionMask: [Int32]) throws {
        guard b > 0 else { throw ModelError.wrongCount(field: "batchSize", expected: 1, actual: b) }
        guard b <= maxBatch else { throw ModelError.batchTooLarge(batchSize: b, max: maxBatch) }
        guard t > 0, t <= maxSeqLength else { throw ModelError.sequenceTooLong(seqLength: t, max: maxSeqLength) }
        try checkCount("inputIds", inputIds, b * t)
        try checkCount("tokenTypeIds", tokenTypeIds, b * t)
        try checkCount("attentionMask", attentionMask, b * t)
    }

    /// Checks the values of the (B,T) arrays against the config.
    func checkValues(inputIds: [Int32], tokenTypeIds: [Int32], attentionMask: [Int32]) throws {
        try checkRange("inputIds", inputIds, 0..<dims.v)
        try checkRange("tokenTypeIds", tokenTypeIds, 0..<dims.typeVocab)
        try checkRange("attentionMask", attentionMask, 0..<2)
    }

    /// Copies the (checked) integer inputs into `ints` (read again by `backward`).
    func copyInputs(batchSize b: Int, seqLength t: Int, inputIds: [Int32], tokenTypeIds: [Int32], attentionMask: [Int32]) {
        copyInts(inputIds, to: ints.ids)
        copyInts(tokenTypeIds, to: ints.typeIds)
        copyInts(attentionMask, to: ints.mask)
        for k in 0..<b { ints.clsIndex[k] = Int32(k * t) }
    }

    /// Selects the rows the last layer computes when pruned: [CLS] of every sequence and `rows` (M flat
    /// indices b·T + t, distinct). Lists them (increasing) in ints.keptRows with per-sequence starts,
    /// maps [CLS] to ints.clsRow and each of `rows` to its index in the list in `mapped` (M,). Returns
    /// R, or nil when every row is needed (no saving; nothing mapped).
    func keepRows(b: Int, t: Int, reading rows: UnsafePointer<Int32>? = nil, m: Int = 0,
                  mapped: UnsafeMutablePointer<Int32>? = nil) -> Int? {
        let n = b * t
        let seen = ints.seen
        seen.update(repeating: 0, count: n)
        for k in 0..<m { seen[Int(rows![k])] = 1 }
        for bi in 0..<b { seen[bi * t] = 1 }
        var r = 0
        ints.rowStart[0] = 0
        for bi in 0..<b {
            for tt in 0..<t where seen[bi * t + tt] != 0 {
                ints.keptRows[r] = Int32(bi * t + tt)
                ints.keptPositions[r] = Int32(tt)
                ints.rowOf[bi * t + tt] = Int32(r)
                r += 1
            }
            ints.rowStart[bi + 1] = Int32(r)
        }
        if r == n { return nil }
        for k in 0..<m { mapped![k] = ints.rowOf[Int(rows![k])] }
        for bi in 0..<b { ints.clsRow[bi] = ints.rowOf[bi * t] }
        return r
    }

    /// Embeddings, layers and pooler on the inputs of `copyInputs`: fills `acts` up to `output`
    /// ((B·T,H), or (R,H) at ints.keptRows when `pass.kept`) and `acts.pooled` (B,H). Dropout sites:
    /// 0 embeddings; layer l: 1 + 3l attention probabilities, 2 + 3l attention output, 3 + 3l
    /// feed-forward output (`siteCount` sites in all).
    func forward(_ P: UnsafeMutablePointer<Float>, _ pass: Pass) {
        products.prepare(threads: threads)
        let (b, t, hp, seed) = (pass.b, pass.t, pass.hiddenP, pass.seed)
        let (n, h, e) = (b * t, dims.h, dims.e)
        let th = threads
        let a = acts, w = off

        // Embeddings → LayerNorm → dropout (→ projection to H)
        embeddingsForward(out: a.embSum, ids: ints.ids, typeIds: ints.typeIds, word: P + w.word, position: P + w.position,
                          tokenType: P + w.tokenType, b: b, t: t, h: e, threads: th)
        layerNormForward(out: a.embOut, mean: a.embMean, rstd: a.embRstd, inp: a.embSum, weight: P + w.embLnW, bias: P + w.embLnB,
                         n: n, c: e, eps: dims.eps, threads: th)
        dropoutForward(out: a.embOut, mask: a.embMask ?? dummyMask, inp: a.embOut, count: n * e, p: hp, seed: deriveSeed(seed, 0), threads: th)
        if let projW = w.projW, let projB = w.projB {
            products.linearForward(out: a.x0, inp: a.embOut, weight: P + projW, bias: P + projB, n: n, inFeatures: e, outFeatures: h, threads: th)
        }

        // Encoder layers (post-LayerNorm); the last one only at the kept rows when pruning.
        for l in 0..<dims.layers {
            layerForward(P, l, pass, kept: l == dims.layers - 1 ? pass.kept : nil)
        }

        // Pooler: pooled (B,H) = tanh(dense(h[:,0]))
        guard let poolW = w.poolW, let poolB = w.poolB else { return }
        gatherRows(out: a.clsIn, inp: output, index: pass.kept == nil ? ints.clsIndex : ints.clsRow, m: b, c: h)
        products.linearForward(out: a.pooled, inp: a.clsIn, weight: P + poolW, bias: P + poolB, n: b, inFeatures: h, outFeatures: h, threads: th)
        tanhForward(out: a.pooled, inp: a.pooled, count: b * h)
    }

    /// The number of dropout sites `forward` uses (0..<siteCount); heads number theirs from here.
    var siteCount: Int { 1 + 3 * dims.layers }

    /// Adds d(loss)/d(encoder parameters) to `G`, given d(loss)/d(output) ((pass.outputRows, H)) in
    /// `grads.dx` and d(loss)/d(pooled) (B,H) in `grads.dpooled`. Forward upside down, one line per
    /// op; `grads.dx` is overwritten.
    /// `ready(k)` is called as `ModelShell.gradientStages[k]` completes: 1 after the pooler, 2… after
    /// each layer from the last, and the last stage after the embeddings (0, the head, is the model's).
    func backward(_ P: UnsafeMutablePointer<Float>, _ G: UnsafeMutablePointer<Float>, _ pass: Pass, ready: ((Int) -> Void)?) {
        let (b, t, hp) = (pass.b, pass.t, pass.hiddenP)
        let (n, h, e) = (b * t, dims.h, dims.e)
        let th = threads
        let a = acts, w = off, d = grads

        // Pooler (d.dpooled is not read by an encoder without one)
        if let poolW = w.poolW, let poolB = w.poolB {
            zero(d.dpooledPre, count: b * h, threads: th)
            tanhBackward(dinp: d.dpooledPre, dout: d.dpooled, out: a.pooled, count: b * h)
            zero(d.dclsIn, count: b * h, threads: th)
            products.linearBackward(dinp: d.dclsIn, dweight: G + poolW, dbias: G + poolB, dout: d.dpooledPre, inp: a.clsIn, weight: P + poolW,
                           n: b, inFeatures: h, outFeatures: h, threads: th)
            scatterAddRows(dinp: d.dx, dout: d.dclsIn, index: pass.kept == nil ? ints.clsIndex : ints.clsRow, m: b, c: h)
        }
        ready?(1)

        // Encoder layers, last first; d.dx holds d(layer output) on entry and d(layer input) on exit.
        for l in stride(from: dims.layers - 1, through: 0, by: -1) {
            layerBackward(P, G, l, pass, kept: l == dims.layers - 1 ? pass.kept : nil)
            ready?(2 + (dims.layers - 1 - l))
        }

        // (Projection,) embeddings
        var dembOut = d.dx
        if let projW = w.projW, let projB = w.projB {
            zero(d.dembOut, count: n * e, threads: th)
            products.linearBackward(dinp: d.dembOut, dweight: G + projW, dbias: G + projB, dout: d.dx, inp: a.embOut, weight: P + projW,
                                    n: n, inFeatures: e, outFeatures: h, threads: th)
            dembOut = d.dembOut
        }
        let demb = dropoutBackwardOrPass(dembOut, mask: a.embMask, count: n * e, p: hp)
        zero(d.dres, count: n * e, threads: th)
        layerNormBackward(dinp: d.dres, dweight: G + w.embLnW, dbias: G + w.embLnB, dout: demb, inp: a.embSum, weight: P + w.embLnW,
                          mean: a.embMean, rstd: a.embRstd, n: n, c: e, threads: th)
        embeddingsBackward(dword: G + w.word, dposition: G + w.position, dtokenType: G + w.tokenType, dout: d.dres, ids: ints.ids,
                           typeIds: ints.typeIds, paddingId: dims.paddingId, b: b, t: t, h: e, threads: th)
        ready?(2 + dims.layers)
    }

    /// One encoder layer: x (B·T,H) → out. With `kept` = R, everything after the keys and values runs
    /// on the R rows listed in ints.keptRows, and out, ctx, res1, ln1, inter, actOut, res2 are (R,·).
    private func layerForward(_ P: UnsafeMutablePointer<Float>, _ l: Int, _ pass: Pass, kept: Int?) {
        let (b, t, hp, ap) = (pass.b, pass.t, pass.hiddenP, pass.attentionP)
        let (n, h, i) = (b * t, dims.h, dims.i)
        let r = kept ?? n
        let th = threads
        let a = acts, la = acts.layers[l], lw = off.layers[l]
        let x = UnsafePointer(l == 0 ? a.x0 : a.layers[l - 1].out)
        let siteSeed = { (k: Int) in deriveSeed(pass.seed, UInt64(k + 3 * l)) }
        products.linearForward(out: la.qkv, inp: x, weight: P + lw.qkvW, bias: P + lw.qkvB, n: n, inFeatures: h, outFeatures: 3 * h, threads: th)
        var residual = x
        if kept != nil {
            for k in 0..<r { (a.qR + k * h).update(from: la.qkv + Int(ints.keptRows[k]) * 3 * h, count: h) }
            products.attentionForwardRows(out: la.ctx, probs: la.probs, dropMask: la.probMask, q: a.qR, qkv: la.qkv, keyMask: ints.mask,
                                 rowStart: ints.rowStart, positions: ints.keptPositions, b: b, t: t, nh: dims.nh, hs: dims.hs, p: ap,
                                 seed: siteSeed(1), scratch: attentionScratch, threads: th)
            gatherRows(out: a.xR, inp: x, index: ints.keptRows, m: r, c: h)
            residual = UnsafePointer(a.xR)
        } else {
            products.attentionForward(out: la.ctx, probs: la.probs, dropMask: la.probMask, qkv: la.qkv, keyMask: ints.mask, b: b, t: t,
                             nh: dims.nh, hs: dims.hs, p: ap, seed: siteSeed(1), scratch: attentionScratch, threads: th)
        }
        products.linearForward(out: la.res1, inp: la.ctx, weight: P + lw.aoW, bias: P + lw.aoB, n: r, inFeatures: h, outFeatures: h, threads: th)
        hiddenDropout(la.res1, mask: la.aoMask, rows: r, kept: kept != nil, p: hp, seed: siteSeed(2))
        residualForward(out: la.res1, a: la.res1, b: residual, count: r * h, threads: th)
        layerNormForward(out: la.ln1, mean: la.mean1, rstd: la.rstd1, inp: la.res1, weight: P + lw.ln1W, bias: P + lw.ln1B,
                         n: r, c: h, eps: dims.eps, threads: th)
        products.linearForward(out: la.inter, inp: la.ln1, weight: P + lw.iW, bias: P + lw.iB, n: r, inFeatures: h, outFeatures: i, threads: th)
        activationForward(act, out: la.actOut, inp: la.inter, count: r * i, threads: th)
        products.linearForward(out: la.res2, inp: la.actOut, weight: P + lw.oW, bias: P + lw.oB, n: r, inFeatures: i, outFeatures: h, threads: th)
        hiddenDropout(la.res2, mask: la.ffMask, rows: r, kept: kept != nil, p: hp, seed: siteSeed(3))
        residualForward(out: la.res2, a: la.res2, b: la.ln1, count: r * h, threads: th)
        layerNormForward(out: la.out, mean: la.mean2, rstd: la.rstd2, inp: la.res2, weight: P + lw.ln2W, bias: P + lw.ln2B,
                         n: r, c: h, eps: dims.eps, threads: th)
    }

    /// Backward of `layerForward`: d.dx holds d(out) on entry ((R,H) when kept) and d(x) (B·T,H) on exit.
    private func layerBackward(_ P: UnsafeMutablePointer<Float>, _ G: UnsafeMutablePointer<Float>, _ l: Int, _ pass: Pass,
                               kept: Int?) {
        let (b, t, hp, ap) = (pass.b, pass.t, pass.hiddenP, pass.attentionP)
        let (n, h, i) = (b * t, dims.h, dims.i)
        let r = kept ?? n
        let th = threads
        let a = acts, la = acts.layers[l], lw = off.layers[l], d = grads
        let x = UnsafePointer(l == 0 ? a.x0 : a.layers[l - 1].out)
        zero(d.dres, count: r * h, threads: th)
        layerNormBackward(dinp: d.dres, dweight: G + lw.ln2W, dbias: G + lw.ln2B, dout: d.dx, inp: la.res2, weight: P + lw.ln2W,
                          mean: la.mean2, rstd: la.rstd2, n: r, c: h, threads: th)
        d.dln1.update(from: d.dres, count: r * h)
        let dff = dropoutBackwardOrPass(d.dres, mask: la.ffMask, count: r * h, p: hp)
        zero(d.dact, count: r * i, threads: th)
        products.linearBackward(dinp: d.dact, dweight: G + lw.oW, dbias: G + lw.oB, dout: dff, inp: la.actOut, weight: P + lw.oW,
                       n: r, inFeatures: i, outFeatures: h, threads: th)
        zero(d.dinter, count: r * i, threads: th)
        activationBackward(act, dinp: d.dinter, dout: d.dact, inp: la.inter, count: r * i, threads: th)
        products.linearBackward(dinp: d.dln1, dweight: G + lw.iW, dbias: G + lw.iB, dout: d.dinter, inp: la.ln1, weight: P + lw.iW,
                       n: r, inFeatures: h, outFeatures: i, threads: th)
        zero(d.dres, count: r * h, threads: th)
        layerNormBackward(dinp: d.dres, dweight: G + lw.ln1W, dbias: G + lw.ln1B, dout: d.dln1, inp: la.res1, weight: P + lw.ln1W,
                          mean: la.mean1, rstd: la.rstd1, n: r, c: h, threads: th)
        if kept != nil {
            zero(d.dx, count: n * h, threads: th)
            scatterAddRows(dinp: d.dx, dout: d.dres, index: ints.keptRows, m: r, c: h)
        } else {
            d.dx.update(from: d.dres, count: n * h)
        }
        let dao = dropoutBackwardOrPass(d.dres, mask: la.aoMask, count: r * h, p: hp)
        zero(d.dctx, count: r * h, threads: th)
        products.linearBackward(dinp: d.dctx, dweight: G + lw.aoW, dbias: G + lw.aoB, dout: dao, inp: la.ctx, weight: P + lw.aoW,
                       n: r, inFeatures: h, outFeatures: h, threads: th)
        zero(d.dqkv, count: n * 3 * h, threads: th)
        if kept != nil {
            zero(d.dqR, count: r * h, threads: th)
            products.attentionBackwardRows(dq: d.dqR, dqkv: d.dqkv, dout: d.dctx, q: a.qR, qkv: la.qkv, probs: la.probs, dropMask: la.probMask,
                                  rowStart: ints.rowStart, b: b, t: t, nh: dims.nh, hs: dims.hs, p: ap, scratch: attentionScratch,
                                  threads: th)
            for k in 0..<r { accumulate(d.dqkv + Int(ints.keptRows[k]) * 3 * h, d.dqR + k * h, count: h, threads: 1) }
        } else {
            products.attentionBackward(dqkv: d.dqkv, dout: d.dctx, qkv: la.qkv, probs: la.probs, dropMask: la.probMask, b: b, t: t,
                              nh: dims.nh, hs: dims.hs, p: ap, scratch: attentionScratch, threads: th)
        }
        products.linearBackward(dinp: d.dx, dweight: G + lw.qkvW, dbias: G + lw.qkvB, dout: d.dqkv, inp: x, weight: P + lw.qkvW,
                       n: n, inFeatures: h, outFeatures: 3 * h, threads: th)
    }

    /// Hidden dropout in place on rows × H: all rows, or the kept rows drawing as in the full tensor.
    private func hiddenDropout(_ x: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>?, rows: Int, kept: Bool,
                               p: Float, seed: UInt64) {
        guard p > 0, let mask else { return }
        if kept {
            dropoutForwardRows(out: x, mask: mask, inp: x, index: ints.keptRows, m: rows, c: dims.h, p: p, seed: seed, threads: threads)
        } else {
            dropoutForward(out: x, mask: mask, inp: x, count: rows * dims.h, p: p, seed: seed, threads: threads)
        }
    }

    /// d(dropout input) from d(dropout output): `dout` itself when p = 0, else computed into grads.dmid.
    private func dropoutBackwardOrPass(_ dout: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>?, count: Int,
                                       p: Float) -> UnsafeMutablePointer<Float> {
        guard p > 0, let mask else { return dout }
        zero(grads.dmid, count: count, threads: threads)
        dropoutBackward(dinp: grads.dmid, dout: dout, mask: mask, count: count, p: p, threads: threads)
        return grads.dmid
    }
}

/// Throws `ModelError.wrongCount` unless `a` has `expected` elements.
func checkCount(_ field: String, _ a: [Int32], _ expected: Int) throws {
    guard a.count == expected else { throw ModelError.wrongCount(field: field, expected: expected, actual: a.count) }
}

/// Throws `ModelError.outOfRange` at the first element of `a` outside `r`.
func checkRange(_ field: String, _ a: [Int32], _ r: Range<Int>) throws {
    for (k, x) in a.enumerated() where !r.contains(Int(x)) {
        throw ModelError.outOfRange(field: field, index: k, value: x, range: r)
    }
}

/// Copies `a` to `dst` (which has room for it).
func copyInts(_ a: [Int32], to dst: UnsafeMutablePointer<Int32>) {
    a.withUnsafeBufferPointer { if let p = $0.baseAddress { dst.update(from: p, count: a.count) } }
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
