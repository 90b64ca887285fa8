import Kernels

/// The masked-LM head of BERT (`cls.predictions`) and of ELECTRA's generator (`generator_predictions` and
/// `generator_lm_head`) at M gathered rows: dense (I → O) → activation → LayerNorm → a decoder tied to the
/// word table (O → V) + bias. The models own the buffers and the gathering; this is the one copy of the
/// head's arithmetic, forward and backward.
struct MaskedLMHead {
    /// Offsets in the parameter (and gradient) buffer.
    let dense, denseBias, norm, normBias, decoder, decoderBias: Int
    /// I (the encoder's width), O (the word table's width), V.
    let inWidth, width, vocab: Int
    let act: Activation
    let eps: Float

    /// Forward buffers.
    struct Buffers {
        let input: UnsafeMutablePointer<Float>  // (M,I) the encoder's rows at the masked positions
        let pre, act: UnsafeMutablePointer<Float>  // (M,O) dense output, activation output
        let mean, rstd: UnsafeMutablePointer<Float>  // (M,)
        let out: UnsafeMutablePointer<Float>  // (M,O) LayerNorm output, the decoder's input
        let logits: UnsafeMutablePointer<Float>  // (M,V)
    }

    /// Backward buffers: `dlogits` is read; `dInput` is written (the rows to scatter into the encoder's dx).
    struct Gradients {
        let dlogits: UnsafeMutablePointer<Float>  // (M,V)
        let dOut, dAct, dPre: UnsafeMutablePointer<Float>  // (M,O)
        let dInput: UnsafeMutablePointer<Float>  // (M,I)
    }

    /// logits = decoder(LayerNorm(act(dense(input)))) at `m` rows.
    func forward(_ P: UnsafeMutablePointer<Float>, _ a: Buffers, m: Int, products: MatrixProducts, threads th: Int) {
        products.linearForward(out: a.pre, inp: a.input, weight: P + dense, bias: P + denseBias, n: m, inFeatures: inWidth, outFeatures: width,
                               threads: th)
        activationForward(act, out: a.act, inp: a.pre, count: m * width, threads: th)
        layerNormForward(out: a.out, mean: a.mean, rstd: a.rstd, inp: a.act, weight: P + norm, bias: P + normBias, n: m, c: width, eps: eps,
                         threads: th)
        products.linearForward(out: a.logits, inp: a.out, weight: P + decoder, bias: P + decoderBias, n: m, inFeatures: width, outFeatures: vocab,
                               threads: th)
    }

    /// Adds the head's parameter gradients to `G` and writes d(input) from d(logits).
    func backward(_ P: UnsafeMutablePointer<Float>, _ G: UnsafeMutablePointer<Float>, _ a: Buffers, _ d: Gradients, m: Int,
                  products: MatrixProducts, threads th: Int) {
        zero(d.dOut, count: m * width, threads: th)
        products.linearBackward(dinp: d.dOut, dweight: G + decoder, dbias: G + decoderBias, dout: d.dlogits, inp: a.out, weight: P + decoder,
                                n: m, inFeatures: width, outFeatures: vocab, threads: th)
        zero(d.dAct, count: m * width, threads: th)
        layerNormBackward(dinp: d.dAct, dweight: G + norm, dbias: G + normBias, dout: d.dOut, inp: a.act, weight: P + norm,
                          mean: a.mean, rstd: a.rstd, n: m, c: width, threads: th)
        zero(d.dPre, count: m * width, threads: th)
        activationBackward(act, dinp: d.dPre, dout: d.dAct, inp: a.pre, count: m * width, threads: th)
        zero(d.dInput, count: m * inWidth, threads: th)
        products.linearBackward(dinp: d.dInput, dweight: G + dense, dbias: G + denseBias, dout: d.dPre, inp: a.input, weight: P + dense,
                                n: m, inFeatures: inWidth, outFeatures: width, threads: th)
    }
}
