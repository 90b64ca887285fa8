import Kernels

extension BertForPreTraining {
    /// Runs the model on `batch` and returns its losses. `dropoutSeed` nil = eval mode (no dropout);
    /// otherwise every dropout site draws from `deriveSeed(dropoutSeed, site)` (site 0: embeddings;
    /// layer l: 1 + 3l attention probabilities, 2 + 3l attention output, 3 + 3l feed-forward output).
    /// Throws `ModelError` for a batch that does not fit the allocation or has values out of range;
    /// nothing is computed then, and `backward` needs a new successful forward.
    public func forward(_ batch: PretrainingBatch, dropoutSeed: UInt64?) throws -> PretrainingOutput {
        last = nil
        try check(batch)
        let (b, t, m) = (batch.batchSize, batch.seqLength, batch.maskedPositions.count)
        copyInputs(batch)
        let kept = prunesLastLayer ? encoder.keepRows(b: b, t: t, reading: ints.maskedPositions, m: m, mapped: ints.maskedRow) : nil
        let pass = Encoder.Pass(b: b, t: t, config: config, dropoutSeed: dropoutSeed, kept: kept)
        let (h, v) = (config.hiddenSize, config.vocabSize)
        let P = parameters.baseAddress!, th = threads
        let a = acts, w = off

        // Embeddings, encoder layers (the last one only at the rows the heads read when pruning), pooler
        encoder.forward(P, pass)

        // NSP head: logits (B,2) = seq_relationship(pooled)
        encoder.products.linearForward(out: a.nspLogits, inp: encoder.acts.pooled, weight: P + w.srW, bias: P + w.srB, n: b, inFeatures: h, outFeatures: 2,
                      threads: th)
        let nsp = crossEntropyForward(losses: a.nspLosses, logsumexp: a.nspLse, predictions: ints.nspPred, logits: a.nspLogits,
                                      targets: ints.nspLabels, n: b, v: 2, threads: th)

        // MLM head on the masked rows only: transform (dense → act → LayerNorm), tied decoder + bias
        gatherRows(out: a.mlmIn, inp: encoder.output, index: kept == nil ? ints.maskedPositions : ints.maskedRow, m: m, c: h)
        let head = mlmHead
        head.head.forward(P, head.buffers, m: m, products: encoder.products, threads: th)
        let mlm = crossEntropyForward(losses: a.mlmLosses, logsumexp: a.mlmLse, predictions: ints.mlmPred, logits: a.logits,
                                      targets: ints.maskedLabels, n: m, v: v, threads: th)

        last = LastPass(pass: pass, m: m)
        return PretrainingOutput(loss: Float(mlm.meanLoss + nsp.meanLoss), mlmLoss: Float(mlm.meanLoss), nspLoss: Float(nsp.meanLoss),
                                 mlmCorrect: mlm.correct, mlmCount: m, nspCorrect: nsp.correct, nspCount: b)
    }

    /// Adds d(loss)/d(parameters) of the last forward pass to `gradients`, loss = mlmScale × mean MLM
    /// + nspScale × mean NSP cross-entropy. The scales let a trainer that accumulates micro-batches
    /// weight each by its share of the whole batch's masked positions and sequences, so that the sum
    /// is the gradient of the whole batch's means. Forward upside down, one line per op (the encoder's
    /// in `Encoder.backward`). Requires a successful `forward` first.
    public func backward(mlmScale: Float = 1, nspScale: Float = 1) {
        guard let last else { preconditionFailure("BertForPreTraining.backward() without a successful forward()") }
        let (pass, m) = (last.pass, last.m)
        let (b, h, v) = (pass.b, config.hiddenSize, config.vocabSize)
        let P = parameters.baseAddress!, G = gradients.baseAddress!, th = threads
        let a = acts, w = off, d = grads, dx = encoder.grads.dx, dpooled = encoder.grads.dpooled

        // d(encoder output), (B·T,H), or (R,H) at the kept rows when the last layer was pruned
        zero(dx, count: pass.outputRows * h, threads: th)

        // MLM head
        crossEntropyBackward(dlogits: d.dlogits, logits: a.logits, logsumexp: a.mlmLse, targets: ints.maskedLabels, n: m, v: v, threads: th)
        if mlmScale != 1 { scale(d.dlogits, count: m * v, by: mlmScale, threads: th) }
        let head = mlmHead
        head.head.backward(P, G, head.buffers, head.gradients, m: m, products: encoder.products, threads: th)
        scatterAddRows(dinp: dx, dout: d.dmlmIn, index: pass.kept == nil ? ints.maskedPositions : ints.maskedRow, m: m, c: h)

        // NSP head
        crossEntropyBackward(dlogits: d.dnsp, logits: a.nspLogits, logsumexp: a.nspLse, targets: ints.nspLabels, n: b, v: 2, threads: th)
        if nspScale != 1 { scale(d.dnsp, count: b * 2, by: nspScale, threads: th) }
        zero(dpooled, count: b * h, threads: th)
        encoder.products.linearBackward(dinp: dpooled, dweight: G + w.srW, dbias: G + w.srB, dout: d.dnsp, inp: encoder.acts.pooled, weight: P + w.srW,
                       n: b, inFeatures: h, outFeatures: 2, threads: th)

        shell.onGradientStageReady?(0)  // the head's tensors (all but the tied decoder weight, an embedding)

        // Pooler, encoder layers, embeddings
        encoder.backward(P, G, pass, ready: shell.onGradientStageReady)
    }

    /// Checks every field of `batch` against the config and the allocation.
    func check(_ batch: PretrainingBatch) throws {
        let (b, t) = (batch.batchSize, batch.seqLength)
        try encoder.checkShape(batchSize: b, seqLength: t, inputIds: batch.inputIds, tokenTypeIds: batch.tokenTypeIds,
                               attentionMask: batch.attentionMask)
        let n = b * t
        try checkCount("nextSentenceLabels", batch.nextSentenceLabels, b)
        try checkCount("maskedLabels", batch.maskedLabels, batch.maskedPositions.count)
        let m = batch.maskedPositions.count
        guard m > 0 else { throw ModelError.noMaskedPositions }
        guard m <= maxMaskedPositions else { throw ModelError.tooManyMaskedPositions(count: m, max: maxMaskedPositions) }
        try encoder.checkValues(inputIds: batch.inputIds, tokenTypeIds: batch.tokenTypeIds, attentionMask: batch.attentionMask)
        try checkRange("nextSentenceLabels", batch.nextSentenceLabels, 0..<2)
        try checkRange("maskedPositions", batch.maskedPositions, 0..<n)
        try checkRange("maskedLabels", batch.maskedLabels, 0..<config.vocabSize)
        let seen = encoder.ints.seen
        seen.update(repeating: 0, count: n)
        for p in batch.maskedPositions {
            if seen[Int(p)] != 0 { throw ModelError.duplicateMaskedPosition(position: p) }
            seen[Int(p)] = 1
        }
    }

    /// Copies the batch's integers into the model's buffers (read again by `backward`).
    func copyInputs(_ batch: PretrainingBatch) {
        encoder.copyInputs(batchSize: batch.batchSize, seqLength: batch.seqLength, inputIds: batch.inputIds,
                           tokenTypeIds: batch.tokenTypeIds, attentionMask: batch.attentionMask)
        copyInts(batch.maskedPositions, to: ints.maskedPositions)
        copyInts(batch.maskedLabels, to: ints.maskedLabels)
        copyInts(batch.nextSentenceLabels, to: ints.nspLabels)
    }
}
