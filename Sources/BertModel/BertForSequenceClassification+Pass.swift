import Support
import Kernels

extension BertForSequenceClassification {
    /// Runs the model on `batch`: logits for every row, loss over the labelled ones. `dropoutSeed` nil =
    /// eval mode (no dropout); otherwise every dropout site draws from `deriveSeed(dropoutSeed, site)`:
    /// the encoder's sites (see `BertForPreTraining.forward`), then site 1 + 3·num_hidden_layers for
    /// the dropout before the classifier. Throws `ModelError` for a batch that does not fit the
    /// allocation or has values out of range; nothing is computed then.
    public func forward(_ batch: ClassificationBatch, dropoutSeed: UInt64?) throws -> ClassificationOutput {
        last = nil
        try check(batch)
        let (b, t) = (batch.batchSize, batch.seqLength)
        let k = copyInputs(batch)
        let pass = Encoder.Pass(b: b, t: t, config: config, dropoutSeed: dropoutSeed,
                                kept: prunesLastLayer ? encoder.keepRows(b: b, t: t) : nil)
        let cp: Float = dropoutSeed == nil ? 0 : classifierP
        let (h, l) = (config.hiddenSize, numLabels)
        let P = parameters.baseAddress!, th = threads
        let a = acts, w = off

        // Embeddings, encoder layers (the last one only at [CLS] when pruning), pooler
        encoder.forward(P, pass)

        // Classifier: logits (B,L) = classifier(dropout(pooled))
        dropoutForward(out: a.dropped, mask: a.dropMask ?? encoder.dummyMask, inp: encoder.acts.pooled, count: b * h, p: cp,
                       seed: deriveSeed(pass.seed, UInt64(encoder.siteCount)), threads: th)
        encoder.products.linearForward(out: a.logits, inp: a.dropped, weight: P + w.clsW, bias: P + w.clsB, n: b, inFeatures: h, outFeatures: l, threads: th)

        // Mean cross-entropy over the K labelled rows
        gatherRows(out: a.labelled, inp: a.logits, index: ints.rows, m: k, c: l)
        let ce = crossEntropyForward(losses: a.losses, logsumexp: a.lse, predictions: ints.predictions, logits: a.labelled,
                                     targets: ints.targets, n: k, v: l, threads: th)

        last = LastPass(pass: pass, k: k, classifierP: cp)
        return ClassificationOutput(loss: Float(ce.meanLoss), correct: ce.correct, count: k)
    }

    /// Adds d(loss)/d(parameters) of the last forward pass to `gradients` (loss = mean cross-entropy
    /// over the labelled rows). Forward upside down, one line per op (the encoder's in
    /// `Encoder.backward`). Requires a successful `forward` first; adds nothing when it had no labelled row.
    /// `scale` multiplies the loss (a data-parallel process's share of the batch's labelled rows).
    public func backward(scale lossScale: Float = 1) {
        guard let last else { preconditionFailure("BertForSequenceClassification.backward() without a successful forward()") }
        let (pass, k, cp) = (last.pass, last.k, last.classifierP)
        guard k > 0 else {  // nothing to add: every gradient stage is already complete
            for stage in shell.gradientStages.indices { shell.onGradientStageReady?(stage) }
            return
        }
        let (b, h, l) = (pass.b, config.hiddenSize, numLabels)
        let P = parameters.baseAddress!, G = gradients.baseAddress!, th = threads
        let a = acts, w = off, d = grads, dpooled = encoder.grads.dpooled

        // Cross-entropy over the labelled rows
        crossEntropyBackward(dlogits: d.dlabelled, logits: a.labelled, logsumexp: a.lse, targets: ints.targets, n: k, v: l, threads: th)
        if lossScale != 1 { scale(d.dlabelled, count: k * l, by: lossScale, threads: th) }
        zero(d.dlogits, count: b * l, threads: th)
        scatterAddRows(dinp: d.dlogits, dout: d.dlabelled, index: ints.rows, m: k, c: l)

        // Classifier
        zero(d.ddropped, count: b * h, threads: th)
        encoder.products.linearBackward(dinp: d.ddropped, dweight: G + w.clsW, dbias: G + w.clsB, dout: d.dlogits, inp: a.dropped, weight: P + w.clsW,
                       n: b, inFeatures: h, outFeatures: l, threads: th)
        zero(dpooled, count: b * h, threads: th)
        dropoutBackward(dinp: dpooled, dout: d.ddropped, mask: a.dropMask ?? encoder.dummyMask, count: b * h, p: cp, threads: th)
        shell.onGradientStageReady?(0)  // the classifier's tensors

        // Pooler, encoder layers, embeddings (the loss reads no other position of the encoder output)
        zero(encoder.grads.dx, count: pass.outputRows * h, threads: th)
        encoder.backward(P, G, pass, ready: shell.onGradientStageReady)
    }

    /// Checks every field of `batch` against the config and the allocation.
    func check(_ batch: ClassificationBatch) throws {
        try encoder.checkShape(batchSize: batch.batchSize, seqLength: batch.seqLength, inputIds: batch.inputIds,
                               tokenTypeIds: batch.tokenTypeIds, attentionMask: batch.attentionMask)
        try checkCount("labels", batch.labels, batch.batchSize)
        try encoder.checkValues(inputIds: batch.inputIds, tokenTypeIds: batch.tokenTypeIds, attentionMask: batch.attentionMask)
        try checkRange("labels", batch.labels, -1..<numLabels)
    }

    /// Copies the batch's integers into the model's buffers (read again by `backward`) and lists the
    /// labelled rows; returns their number K.
    func copyInputs(_ batch: ClassificationBatch) -> Int {
        encoder.copyInputs(batchSize: batch.batchSize, seqLength: batch.seqLength, inputIds: batch.inputIds,
                           tokenTypeIds: batch.tokenTypeIds, attentionMask: batch.attentionMask)
        var k = 0
        for (row, label) in batch.labels.enumerated() where label >= 0 {
            ints.rows[k] = Int32(row)
            ints.targets[k] = label
            k += 1
        }
        return k
    }
}
