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
        let hp: Float = dropoutSeed == nil ? 0 : Float(config.hiddenDropoutProb)
        let ap: Float = dropoutSeed == nil ? 0 : Float(config.attentionProbsDropoutProb)
        let seed = dropoutSeed ?? 0
        let (n, h, v) = (b * t, dims.h, dims.v)
        let P = parameters.baseAddress!, th = threads
        let a = acts, w = off

        // Embeddings → LayerNorm → dropout
        embeddingsForward(out: a.embSum, ids: ints.ids, typeIds: ints.typeIds, word: P + w.word, position: P + w.position,
                          tokenType: P + w.tokenType, b: b, t: t, h: h, threads: th)
        layerNormForward(out: a.x0, mean: a.embMean, rstd: a.embRstd, inp: a.embSum, weight: P + w.embLnW, bias: P + w.embLnB,
                         n: n, c: h, eps: dims.eps, threads: th)
        dropoutForward(out: a.x0, mask: a.embMask ?? dummyMask, inp: a.x0, count: n * h, p: hp, seed: deriveSeed(seed, 0), threads: th)

        // Encoder layers (post-LayerNorm); the last one only at the rows the heads read when pruning.
        let kept = prunesLastLayer ? keepRowsForHeads(b: b, t: t, m: m) : nil
        for l in 0..<dims.layers {
            layerForward(l, b: b, t: t, kept: l == dims.layers - 1 ? kept : nil, hp: hp, ap: ap, seed: seed)
        }
        let x = UnsafePointer(dims.layers > 0 ? a.layers[dims.layers - 1].out : a.x0)
        let (maskedRows, clsRows) = kept == nil ? (ints.maskedPositions, ints.clsIndex) : (ints.maskedRow, ints.clsRow)

        // Pooler and NSP head: logits (B,2) = seq_relationship(tanh(dense(h[:,0])))
        gatherRows(out: a.clsIn, inp: x, index: clsRows, m: b, c: h)
        linearForward(out: a.pooled, inp: a.clsIn, weight: P + w.poolW, bias: P + w.poolB, n: b, inFeatures: h, outFeatures: h, threads: th)
        tanhForward(out: a.pooled, inp: a.pooled, count: b * h)
        linearForward(out: a.nspLogits, inp: a.pooled, weight: P + w.srW, bias: P + w.srB, n: b, inFeatures: h, outFeatures: 2, threads: th)
        let nsp = crossEntropyForward(losses: a.nspLosses, logsumexp: a.nspLse, predictions: ints.nspPred, logits: a.nspLogits,
                                      targets: ints.nspLabels, n: b, v: 2, threads: th)

        // MLM head on the masked rows only: transform (dense → act → LayerNorm), tied decoder + bias
        gatherRows(out: a.mlmIn, inp: x, index: maskedRows, m: m, c: h)
        linearForward(out: a.tPre, inp: a.mlmIn, weight: P + w.tW, bias: P + w.tB, n: m, inFeatures: h, outFeatures: h, threads: th)
        activationForward(act, out: a.tAct, inp: a.tPre, count: m * h, threads: th)
        layerNormForward(out: a.tOut, mean: a.tMean, rstd: a.tRstd, inp: a.tAct, weight: P + w.tLnW, bias: P + w.tLnB, n: m, c: h,
                         eps: dims.eps, threads: th)
        linearForward(out: a.logits, inp: a.tOut, weight: P + w.word, bias: P + w.mlmBias, n: m, inFeatures: h, outFeatures: v, threads: th)
        let mlm = crossEntropyForward(losses: a.mlmLosses, logsumexp: a.mlmLse, predictions: ints.mlmPred, logits: a.logits,
                                      targets: ints.maskedLabels, n: m, v: v, threads: th)

        last = LastPass(b: b, t: t, m: m, hiddenP: hp, attentionP: ap, keptRows: kept)
        return PretrainingOutput(loss: Float(mlm.meanLoss + nsp.meanLoss), mlmLoss: Float(mlm.meanLoss), nspLoss: Float(nsp.meanLoss),
                                 mlmCorrect: mlm.correct, mlmCount: m, nspCorrect: nsp.correct, nspCount: b)
    }

    /// Adds d(loss)/d(parameters) of the last forward pass to `gradients` (loss = mean MLM + mean NSP
    /// cross-entropy). Forward upside down, one line per op. Requires a successful `forward` first.
    public func backward() {
        guard let pass = last else { preconditionFailure("BertForPreTraining.backward() without a successful forward()") }
        let (b, t, m, hp, ap, kept) = (pass.b, pass.t, pass.m, pass.hiddenP, pass.attentionP, pass.keptRows)
        let (n, h, v) = (b * t, dims.h, dims.v)
        let P = parameters.baseAddress!, G = gradients.baseAddress!, th = threads
        let a = acts, w = off, d = grads
        let (maskedRows, clsRows) = kept == nil ? (ints.maskedPositions, ints.clsIndex) : (ints.maskedRow, ints.clsRow)

        // d(encoder output), (B·T,H), or (R,H) at the kept rows when the last layer was pruned
        zero(d.dx, count: (kept ?? n) * h, threads: th)

        // MLM head
        crossEntropyBackward(dlogits: d.dlogits, logits: a.logits, logsumexp: a.mlmLse, targets: ints.maskedLabels, n: m, v: v, threads: th)
        zero(d.dtOut, count: m * h, threads: th)
        linearBackward(dinp: d.dtOut, dweight: G + w.word, dbias: G + w.mlmBias, dout: d.dlogits, inp: a.tOut, weight: P + w.word,
                       n: m, inFeatures: h, outFeatures: v, threads: th)
        zero(d.dtAct, count: m * h, threads: th)
        layerNormBackward(dinp: d.dtAct, dweight: G + w.tLnW, dbias: G + w.tLnB, dout: d.dtOut, inp: a.tAct, weight: P + w.tLnW,
                          mean: a.tMean, rstd: a.tRstd, n: m, c: h, threads: th)
        zero(d.dtPre, count: m * h, threads: th)
        activationBackward(act, dinp: d.dtPre, dout: d.dtAct, inp: a.tPre, count: m * h, threads: th)
        zero(d.dmlmIn, count: m * h, threads: th)
        linearBackward(dinp: d.dmlmIn, dweight: G + w.tW, dbias: G + w.tB, dout: d.dtPre, inp: a.mlmIn, weight: P + w.tW,
                       n: m, inFeatures: h, outFeatures: h, threads: th)
        scatterAddRows(dinp: d.dx, dout: d.dmlmIn, index: maskedRows, m: m, c: h)

        // NSP head and pooler
        crossEntropyBackward(dlogits: d.dnsp, logits: a.nspLogits, logsumexp: a.nspLse, targets: ints.nspLabels, n: b, v: 2, threads: th)
        zero(d.dpooled, count: b * h, threads: th)
        linearBackward(dinp: d.dpooled, dweight: G + w.srW, dbias: G + w.srB, dout: d.dnsp, inp: a.pooled, weight: P + w.srW,
                       n: b, inFeatures: h, outFeatures: 2, threads: th)
        zero(d.dpooledPre, count: b * h, threads: th)
        tanhBackward(dinp: d.dpooledPre, dout: d.dpooled, out: a.pooled, count: b * h)
        zero(d.dclsIn, count: b * h, threads: th)
        linearBackward(dinp: d.dclsIn, dweight: G + w.poolW, dbias: G + w.poolB, dout: d.dpooledPre, inp: a.clsIn, weight: P + w.poolW,
                       n: b, inFeatures: h, outFeatures: h, threads: th)
        scatterAddRows(dinp: d.dx, dout: d.dclsIn, index: clsRows, m: b, c: h)

        // Encoder layers, last first; d.dx holds d(layer output) on entry and d(layer input) on exit.
        for l in stride(from: dims.layers - 1, through: 0, by: -1) {
            layerBackward(l, b: b, t: t, kept: l == dims.layers - 1 ? kept : nil, hp: hp, ap: ap)
        }

        // Embeddings
        let demb = dropoutBackwardOrPass(d.dx, mask: a.embMask, count: n * h, p: hp)
        zero(d.dres, count: n * h, threads: th)
        layerNormBackward(dinp: d.dres, dweight: G + w.embLnW, dbias: G + w.embLnB, dout: demb, inp: a.embSum, weight: P + w.embLnW,
                          mean: a.embMean, rstd: a.embRstd, n: n, c: h, threads: th)
        embeddingsBackward(dword: G + w.word, dposition: G + w.position, dtokenType: G + w.tokenType, dout: d.dres, ids: ints.ids,
                           typeIds: ints.typeIds, paddingId: dims.paddingId, b: b, t: t, h: h, threads: th)
    }

    /// One encoder layer: x (B·T,H) → out. With `kept` = R, everything after the keys and values runs
    /// on the R rows listed in ints.keptRows, and out, ctx, res1, ln1, inter, actOut, res2 are (R,·).
    private func layerForward(_ l: Int, b: Int, t: Int, kept: Int?, hp: Float, ap: Float, seed: UInt64) {
        let (n, h, i) = (b * t, dims.h, dims.i)
        let r = kept ?? n
        let P = parameters.baseAddress!, th = threads
        let a = acts, la = acts.layers[l], lw = off.layers[l]
        let x = UnsafePointer(l == 0 ? a.x0 : a.layers[l - 1].out)
        let siteSeed = { (k: Int) in deriveSeed(seed, UInt64(k + 3 * l)) }
        linearForward(out: la.qkv, inp: x, weight: P + lw.qkvW, bias: P + lw.qkvB, n: n, inFeatures: h, outFeatures: 3 * h, threads: th)
        var residual = x
        if kept != nil {
            for k in 0..<r { (a.qR + k * h).update(from: la.qkv + Int(ints.keptRows[k]) * 3 * h, count: h) }
            attentionForwardRows(out: la.ctx, probs: la.probs, dropMask: la.probMask, q: a.qR, qkv: la.qkv, keyMask: ints.mask,
                                 rowStart: ints.rowStart, positions: ints.keptPositions, b: b, t: t, nh: dims.nh, hs: dims.hs, p: ap,
                                 seed: siteSeed(1), scratch: attentionScratch, threads: th)
            gatherRows(out: a.xR, inp: x, index: ints.keptRows, m: r, c: h)
            residual = UnsafePointer(a.xR)
        } else {
            attentionForward(out: la.ctx, probs: la.probs, dropMask: la.probMask, qkv: la.qkv, keyMask: ints.mask, b: b, t: t,
                             nh: dims.nh, hs: dims.hs, p: ap, seed: siteSeed(1), scratch: attentionScratch, threads: th)
        }
        linearForward(out: la.res1, inp: la.ctx, weight: P + lw.aoW, bias: P + lw.aoB, n: r, inFeatures: h, outFeatures: h, threads: th)
        hiddenDropout(la.res1, mask: la.aoMask, rows: r, kept: kept != nil, p: hp, seed: siteSeed(2))
        residualForward(out: la.res1, a: la.res1, b: residual, count: r * h, threads: th)
        layerNormForward(out: la.ln1, mean: la.mean1, rstd: la.rstd1, inp: la.res1, weight: P + lw.ln1W, bias: P + lw.ln1B,
                         n: r, c: h, eps: dims.eps, threads: th)
        linearForward(out: la.inter, inp: la.ln1, weight: P + lw.iW, bias: P + lw.iB, n: r, inFeatures: h, outFeatures: i, threads: th)
        activationForward(act, out: la.actOut, inp: la.inter, count: r * i, threads: th)
        linearForward(out: la.res2, inp: la.actOut, weight: P + lw.oW, bias: P + lw.oB, n: r, inFeatures: i, outFeatures: h, threads: th)
        hiddenDropout(la.res2, mask: la.ffMask, rows: r, kept: kept != nil, p: hp, seed: siteSeed(3))
        residualForward(out: la.res2, a: la.res2, b: la.ln1, count: r * h, threads: th)
        layerNormForward(out: la.out, mean: la.mean2, rstd: la.rstd2, inp: la.res2, weight: P + lw.ln2W, bias: P + lw.ln2B,
                         n: r, c: h, eps: dims.eps, threads: th)
    }

    /// Backward of `layerForward`: d.dx holds d(out) on entry ((R,H) when kept) and d(x) (B·T,H) on exit.
    private func layerBackward(_ l: Int, b: Int, t: Int, kept: Int?, hp: Float, ap: Float) {
        let (n, h, i) = (b * t, dims.h, dims.i)
        let r = kept ?? n
        let P = parameters.baseAddress!, G = gradients.baseAddress!, th = threads
        let a = acts, la = acts.layers[l], lw = off.layers[l], d = grads
        let x = UnsafePointer(l == 0 ? a.x0 : a.layers[l - 1].out)
        zero(d.dres, count: r * h, threads: th)
        layerNormBackward(dinp: d.dres, dweight: G + lw.ln2W, dbias: G + lw.ln2B, dout: d.dx, inp: la.res2, weight: P + lw.ln2W,
                          mean: la.mean2, rstd: la.rstd2, n: r, c: h, threads: th)
        d.dln1.update(from: d.dres, count: r * h)
        let dff = dropoutBackwardOrPass(d.dres, mask: la.ffMask, count: r * h, p: hp)
        zero(d.dact, count: r * i, threads: th)
        linearBackward(dinp: d.dact, dweight: G + lw.oW, dbias: G + lw.oB, dout: dff, inp: la.actOut, weight: P + lw.oW,
                       n: r, inFeatures: i, outFeatures: h, threads: th)
        zero(d.dinter, count: r * i, threads: th)
        activationBackward(act, dinp: d.dinter, dout: d.dact, inp: la.inter, count: r * i, threads: th)
        linearBackward(dinp: d.dln1, dweight: G + lw.iW, dbias: G + lw.iB, dout: d.dinter, inp: la.ln1, weight: P + lw.iW,
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
        linearBackward(dinp: d.dctx, dweight: G + lw.aoW, dbias: G + lw.aoB, dout: dao, inp: la.ctx, weight: P + lw.aoW,
                       n: r, inFeatures: h, outFeatures: h, threads: th)
        zero(d.dqkv, count: n * 3 * h, threads: th)
        if kept != nil {
            zero(d.dqR, count: r * h, threads: th)
            attentionBackwardRows(dq: d.dqR, dqkv: d.dqkv, dout: d.dctx, q: a.qR, qkv: la.qkv, probs: la.probs, dropMask: la.probMask,
                                  rowStart: ints.rowStart, b: b, t: t, nh: dims.nh, hs: dims.hs, p: ap, scratch: attentionScratch,
                                  threads: th)
            for k in 0..<r { accumulate(d.dqkv + Int(ints.keptRows[k]) * 3 * h, d.dqR + k * h, count: h, threads: 1) }
        } else {
            attentionBackward(dqkv: d.dqkv, dout: d.dctx, qkv: la.qkv, probs: la.probs, dropMask: la.probMask, b: b, t: t,
                              nh: dims.nh, hs: dims.hs, p: ap, scratch: attentionScratch, threads: th)
        }
        linearBackward(dinp: d.dx, dweight: G + lw.qkvW, dbias: G + lw.qkvB, dout: d.dqkv, inp: x, weight: P + lw.qkvW,
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

    /// Marks the rows the heads read ([CLS] and masked positions), lists them (increasing) in
    /// ints.keptRows with per-sequence starts, and maps the heads' indices to them. Returns R, or nil
    /// when every row is needed (no saving).
    private func keepRowsForHeads(b: Int, t: Int, m: Int) -> Int? {
        let n = b * t
        let seen = ints.seen
        seen.update(repeating: 0, count: n)
        for k in 0..<m { seen[Int(ints.maskedPositions[k])] = 1 }
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
        for k in 0..<m { ints.maskedRow[k] = ints.rowOf[Int(ints.maskedPositions[k])] }
        for bi in 0..<b { ints.clsRow[bi] = ints.rowOf[bi * t] }
        return r
    }

    /// d(dropout input) from d(dropout output): `dout` itself when p = 0, else computed into grads.dmid.
    private func dropoutBackwardOrPass(_ dout: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>?, count: Int,
                                       p: Float) -> UnsafeMutablePointer<Float> {
        guard p > 0, let mask else { return dout }
        zero(grads.dmid, count: count, threads: threads)
        dropoutBackward(dinp: grads.dmid, dout: dout, mask: mask, count: count, p: p, threads: threads)
        return grads.dmid
    }

    /// A mask pointer for dropout calls with p = 0 (never read or written then).
    private var dummyMask: UnsafeMutablePointer<UInt8> { ints.seen }

    /// Checks every field of `batch` against the config and the allocation.
    func check(_ batch: PretrainingBatch) throws {
        let (b, t) = (batch.batchSize, batch.seqLength)
        guard b > 0 else { throw ModelError.wrongCount(field: "batchSize", expected: 1, actual: b) }
        guard b <= maxBatch else { throw ModelError.batchTooLarge(batchSize: b, max: maxBatch) }
        guard t > 0, t <= maxSeqLength else { throw ModelError.sequenceTooLong(seqLength: t, max: maxSeqLength) }
        let n = b * t
        func count(_ name: String, _ a: [Int32], _ expected: Int) throws {
            guard a.count == expected else { throw ModelError.wrongCount(field: name, expected: expected, actual: a.count) }
        }
        func range(_ name: String, _ a: [Int32], _ r: Range<Int>) throws {
            for (k, x) in a.enumerated() where !r.contains(Int(x)) {
                throw ModelError.outOfRange(field: name, index: k, value: x, range: r)
            }
        }
        try count("inputIds", batch.inputIds, n)
        try count("tokenTypeIds", batch.tokenTypeIds, n)
        try count("attentionMask", batch.attentionMask, n)
        try count("nextSentenceLabels", batch.nextSentenceLabels, b)
        try count("maskedLabels", batch.maskedLabels, batch.maskedPositions.count)
        let m = batch.maskedPositions.count
        guard m > 0 else { throw ModelError.noMaskedPositions }
        guard m <= maxMaskedPositions else { throw ModelError.tooManyMaskedPositions(count: m, max: maxMaskedPositions) }
        try range("inputIds", batch.inputIds, 0..<dims.v)
        try range("tokenTypeIds", batch.tokenTypeIds, 0..<dims.typeVocab)
        try range("attentionMask", batch.attentionMask, 0..<2)
        try range("nextSentenceLabels", batch.nextSentenceLabels, 0..<2)
        try range("maskedPositions", batch.maskedPositions, 0..<n)
        try range("maskedLabels", batch.maskedLabels, 0..<dims.v)
        ints.seen.update(repeating: 0, count: n)
        for p in batch.maskedPositions {
            if ints.seen[Int(p)] != 0 { throw ModelError.duplicateMaskedPosition(position: p) }
            ints.seen[Int(p)] = 1
        }
    }

    /// Copies the batch's integers into the model's buffers (read again by `backward`).
    func copyInputs(_ batch: PretrainingBatch) {
        func copy(_ a: [Int32], _ dst: UnsafeMutablePointer<Int32>) {
            a.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: a.count) }
        }
        copy(batch.inputIds, ints.ids)
        copy(batch.tokenTypeIds, ints.typeIds)
        copy(batch.attentionMask, ints.mask)
        copy(batch.maskedPositions, ints.maskedPositions)
        copy(batch.maskedLabels, ints.maskedLabels)
        copy(batch.nextSentenceLabels, ints.nspLabels)
        for k in 0..<batch.batchSize { ints.clsIndex[k] = Int32(k * batch.seqLength) }
    }
}
