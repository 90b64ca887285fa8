import Foundation
import Kernels
import Support

extension ElectraForPreTraining {
    /// Runs the generator on `batch` (its masked input), samples a token at every masked position from
    /// the generator's softmax (draw k uses `randomBits(seed: sampleSeed, counter: k)`), runs the
    /// discriminator on the input with those samples in place, and returns both losses. A position is
    /// "replaced" where the discriminator's input differs from the original token (a sample equal to the
    /// original is not a replacement). `replacements` (M,), when given, are used instead of samples (for
    /// checks against a reference). `dropoutSeed` nil = eval mode; the generator's dropout sites draw from
    /// `deriveSeed(dropoutSeed, 1)`, the discriminator's from `deriveSeed(dropoutSeed, 2)`.
    /// `nextSentenceLabels` are not used. Throws `ModelError` for a batch that does not fit.
    public func forward(_ batch: PretrainingBatch, dropoutSeed: UInt64?, sampleSeed: UInt64,
                        replacements: [Int32]? = nil) throws -> PretrainingOutput {
        last = nil
        let (b, t, m) = (batch.batchSize, batch.seqLength, batch.maskedPositions.count)
        try discriminator.checkShape(batchSize: b, seqLength: t, inputIds: batch.inputIds, tokenTypeIds: batch.tokenTypeIds,
                                     attentionMask: batch.attentionMask)
        try checkCount("maskedLabels", batch.maskedLabels, m)
        guard m > 0 else { throw ModelError.noMaskedPositions }
        guard m <= maxMaskedPositions else { throw ModelError.tooManyMaskedPositions(count: m, max: maxMaskedPositions) }
        try discriminator.checkValues(inputIds: batch.inputIds, tokenTypeIds: batch.tokenTypeIds, attentionMask: batch.attentionMask)
        let n = b * t
        try checkRange("maskedPositions", batch.maskedPositions, 0..<n)
        try checkRange("maskedLabels", batch.maskedLabels, 0..<config.vocabSize)
        if let replacements {
            try checkCount("replacements", replacements, m)
            try checkRange("replacements", replacements, 0..<config.vocabSize)
        }
        let seen = generator.ints.seen
        seen.update(repeating: 0, count: n)
        for p in batch.maskedPositions {
            if seen[Int(p)] != 0 { throw ModelError.duplicateMaskedPosition(position: p) }
            seen[Int(p)] = 1
        }

        let (h, g, v) = (config.hiddenSize, generatorConfig.hiddenSize, config.vocabSize)
        let P = parameters.baseAddress!, th = threads
        let a = acts, w = off
        copyInts(batch.maskedPositions, to: ints.maskedPositions)
        copyInts(batch.maskedLabels, to: ints.maskedLabels)

        // Generator on the masked input; its last layer only at [CLS] and the masked rows when pruning.
        generator.copyInputs(batchSize: b, seqLength: t, inputIds: batch.inputIds, tokenTypeIds: batch.tokenTypeIds,
                             attentionMask: batch.attentionMask)
        let kept = prunesGeneratorLastLayer ? generator.keepRows(b: b, t: t, reading: ints.maskedPositions, m: m, mapped: ints.maskedRow) : nil
        let genPass = Encoder.Pass(b: b, t: t, config: generatorConfig, dropoutSeed: dropoutSeed.map { deriveSeed($0, 1) }, kept: kept)
        generator.forward(P, genPass)

        // Generator head at the masked rows: dense (G → E) → gelu → LayerNorm → tied LM head (E → V) + bias
        gatherRows(out: a.genIn, inp: generator.output, index: kept == nil ? ints.maskedPositions : ints.maskedRow, m: m, c: g)
        let head = generatorHead
        head.head.forward(P, head.buffers, m: m, products: generator.products, threads: th)
        let mlm = crossEntropyForward(losses: a.mlmLosses, logsumexp: a.mlmLse, predictions: ints.mlmPred, logits: a.logits,
                                      targets: ints.maskedLabels, n: m, v: v, threads: th)

        // Samples (no gradient through them), the discriminator's input and its labels.
        if let replacements { copyInts(replacements, to: ints.sampled) } else { sample(m: m, seed: sampleSeed) }
        var ids = batch.inputIds
        ints.replaced.update(repeating: 0, count: n)
        var sampledOriginal = 0
        for k in 0..<m {
            let p = Int(ints.maskedPositions[k])
            ids[p] = ints.sampled[k]
            if ints.sampled[k] == ints.maskedLabels[k] { sampledOriginal += 1 } else { ints.replaced[p] = 1 }
        }

        // Discriminator on every row: encoder → dense (H → H) → act → dense_prediction (H → 1)
        discriminator.copyInputs(batchSize: b, seqLength: t, inputIds: ids, tokenTypeIds: batch.tokenTypeIds, attentionMask: batch.attentionMask)
        let discPass = Encoder.Pass(b: b, t: t, config: config, dropoutSeed: dropoutSeed.map { deriveSeed($0, 2) }, kept: nil)
        discriminator.forward(P, discPass)
        discriminator.products.linearForward(out: a.dPre, inp: discriminator.output, weight: P + w.dW, bias: P + w.dB, n: n, inFeatures: h,
                                             outFeatures: h, threads: th)
        activationForward(discriminatorAct, out: a.dAct, inp: a.dPre, count: n * h, threads: th)
        discriminator.products.linearForward(out: a.rtdLogits, inp: a.dAct, weight: P + w.pW, bias: P + w.pB, n: n, inFeatures: h, outFeatures: 1,
                                             threads: th)

        // Binary cross-entropy with logits, mean over the real (attention-mask 1) tokens, as transformers'.
        var lossSum = 0.0
        var active = 0, correct = 0, replaced = 0, detected = 0
        let mask = discriminator.ints.mask
        for i in 0..<n where mask[i] != 0 {
            let x = Double(a.rtdLogits[i]), y = Double(ints.replaced[i])
            lossSum += max(x, 0) - x * y + Foundation.log1p(Foundation.exp(-abs(x)))
            active += 1
            let says = x > 0
            if says == (y == 1) { correct += 1 }
            if y == 1 {
                replaced += 1
                if says { detected += 1 }
            }
        }
        let rtd = lossSum / Double(max(1, active))
        last = LastPass(discriminator: discPass, generator: genPass, m: m, active: active)
        return PretrainingOutput(loss: Float(mlm.meanLoss + Double(discriminatorWeight) * rtd), mlmLoss: Float(mlm.meanLoss), nspLoss: 0,
                                 mlmCorrect: mlm.correct, mlmCount: m, nspCorrect: 0, nspCount: 0,
                                 replacedToken: .init(loss: Float(rtd), correct: correct, count: active, replaced: replaced,
                                                      detected: detected, sampledOriginal: sampledOriginal))
    }

    /// Draws one token per masked row from softmax(logits) by inverting its distribution at a uniform:
    /// the first token whose cumulative probability exceeds u. Rows run in parallel; each draw depends
    /// only on its row and counter, so the samples do not depend on the thread count.
    func sample(m: Int, seed: UInt64) {
        let v = config.vocabSize
        let logits = acts.logits, lse = acts.mlmLse, sampled = ints.sampled
        Parallel.forEach(m, threads: m * v < 65_536 ? 1 : threads) { k in
            let row = logits + k * v
            let shift = lse[k]
            let u = Float(Double(randomBits(seed: seed, counter: UInt64(k)) >> 11) * 0x1p-53)  // [0, 1)
            var cumulative: Float = 0
            for j in 0..<v {
                cumulative += Foundation.exp(row[j] - shift)
                if cumulative > u {
                    sampled[k] = Int32(j)
                    return
                }
            }
            // Rounding left the total below u: the likeliest token.
            var best = 0
            for j in 1..<v where row[j] > row[best] { best = j }
            sampled[k] = Int32(best)
        }
    }

    /// Adds d(loss)/d(parameters) of the last forward pass to `gradients`, loss = mlmScale × mean MLM +
    /// rtdScale × λ × mean RTD (the scales as in `BertForPreTraining.backward`, for accumulation). The
    /// discriminator's backward runs first, then the generator's; both add to the shared embedding tables.
    public func backward(mlmScale: Float = 1, rtdScale: Float = 1) {
        guard let last else { preconditionFailure("ElectraForPreTraining.backward() without a successful forward()") }
        let (discPass, genPass, m) = (last.discriminator, last.generator, last.m)
        let n = discPass.b * discPass.t
        let (h, g, v) = (config.hiddenSize, generatorConfig.hiddenSize, config.vocabSize)
        let P = parameters.baseAddress!, G = gradients.baseAddress!, th = threads
        let a = acts, w = off, d = grads

        // Discriminator head: d(mean BCE)/d(logit) = (σ(x) − y) / active at real tokens, 0 at padding.
        let s = rtdScale * discriminatorWeight / Float(max(1, last.active))
        let mask = discriminator.ints.mask
        for i in 0..<n {
            let x = a.rtdLogits[i]
            d.drtd[i] = mask[i] == 0 ? 0 : (1 / (1 + Foundation.exp(-x)) - Float(ints.replaced[i])) * s
        }
        zero(d.ddAct, count: n * h, threads: th)
        discriminator.products.linearBackward(dinp: d.ddAct, dweight: G + w.pW, dbias: G + w.pB, dout: d.drtd, inp: a.dAct, weight: P + w.pW,
                                              n: n, inFeatures: h, outFeatures: 1, threads: th)
        zero(d.ddPre, count: n * h, threads: th)
        activationBackward(discriminatorAct, dinp: d.ddPre, dout: d.ddAct, inp: a.dPre, count: n * h, threads: th)
        let dx = discriminator.grads.dx
        zero(dx, count: n * h, threads: th)
        discriminator.products.linearBackward(dinp: dx, dweight: G + w.dW, dbias: G + w.dB, dout: d.ddPre, inp: discriminator.output,
                                              weight: P + w.dW, n: n, inFeatures: h, outFeatures: h, threads: th)
        discriminator.backward(P, G, discPass, ready: nil)

        // Generator head, then the generator (its embedding backward completes the shared tables).
        crossEntropyBackward(dlogits: d.dlogits, logits: a.logits, logsumexp: a.mlmLse, targets: ints.maskedLabels, n: m, v: v,
                             scale: mlmScale, threads: th)
        let head = generatorHead
        head.head.backward(P, G, head.buffers, head.gradients, m: m, products: generator.products, threads: th)
        let gdx = generator.grads.dx
        zero(gdx, count: genPass.outputRows * g, threads: th)
        scatterAddRows(dinp: gdx, dout: d.dgenIn, index: genPass.kept == nil ? ints.maskedPositions : ints.maskedRow, m: m, c: g)
        generator.backward(P, G, genPass, ready: nil)
        onGradientStageReady?(0)
    }
}
