/// BERT's input embeddings: out[b,t,:] = word[ids[b,t]] + position[t] + tokenType[typeIds[b,t]].
/// Shapes: out (B,T,H); ids, typeIds (B,T); word (V,H); position (P,H) with P ≥ T; tokenType (TV,H).
/// Ids must be in range (the caller validates them). Rows are split over `threads`.
public func embeddingsForward(out: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, typeIds: UnsafePointer<Int32>,
                              word: UnsafePointer<Float>, position: UnsafePointer<Float>,
                              tokenType: UnsafePointer<Float>, b: Int, t: Int, h: Int, threads: Int) {
    let n = b * t
    Parallel.forEach(n, threads: n * h < 16_384 ? 1 : threads) { i in
        let w = word + Int(ids[i]) * h, p = position + (i % t) * h, ty = tokenType + Int(typeIds[i]) * h
        let y = out + i * h
        var j = 0
        while j + 16 <= h { store16(load16(w + j) + load16(p + j) + load16(ty + j), y + j); j += 16 }
        while j < h { y[j] = w[j] + p[j] + ty[j]; j += 1 }
    }
}

/// Backward of `embeddingsForward`: scatter-adds dout (B,T,H) into dword (V,H), dposition (P,H) and
/// dtokenType (TV,H), ACCUMULATING. Tokens whose id equals `paddingId` add nothing to `dword` (as
/// `nn.Embedding(padding_idx:)` in Hugging Face's BertEmbeddings); pass nil for no such id.
/// Split over blocks of columns; each entry adds tokens in order, so the result does not depend on
/// `threads`.
public func embeddingsBackward(dword: UnsafeMutablePointer<Float>, dposition: UnsafeMutablePointer<Float>,
                               dtokenType: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                               ids: UnsafePointer<Int32>, typeIds: UnsafePointer<Int32>, paddingId: Int32?,
                               b: Int, t: Int, h: Int, threads: Int) {
    let blocks = (h + 15) / 16
    let nb = b * t * h < 16_384 ? 1 : min(threads, blocks)
    let pad = paddingId ?? -1
    Parallel.forEach(nb, threads: nb) { k in
        let c0 = k * blocks / nb * 16, c1 = min(h, (k + 1) * blocks / nb * 16)
        for i in 0..<(b * t) {
            let dy = dout + i * h
            let dp = dposition + (i % t) * h, dt = dtokenType + Int(typeIds[i]) * h
            let id = ids[i]
            let dw = dword + Int(id) * h
            for j in c0..<c1 {
                let g = dy[j]
                dp[j] += g
                dt[j] += g
                if id != pad { dw[j] += g }
            }
        }
    }
}

extension Naive {
    /// Reference for `embeddingsForward`.
    public static func embeddingsForward<T: BinaryFloatingPoint>(ids: [Int32], typeIds: [Int32], word: [T], position: [T],
                                                                   tokenType: [T], b: Int, t: Int, h: Int) -> [T] {
        var out = [T](repeating: 0, count: b * t * h)
        for i in 0..<(b * t) {
            for j in 0..<h {
                out[i * h + j] = word[Int(ids[i]) * h + j] + position[(i % t) * h + j] + tokenType[Int(typeIds[i]) * h + j]
            }
        }
        return out
    }

    /// Reference for `embeddingsBackward`; accumulates.
    public static func embeddingsBackward<T: BinaryFloatingPoint>(dword: inout [T], dposition: inout [T],
                                                                    dtokenType: inout [T], dout: [T], ids: [Int32],
                                                                    typeIds: [Int32], paddingId: Int32?, b: Int, t: Int,
                                                                    h: Int) {
        for i in 0..<(b * t) {
            for j in 0..<h {
                if ids[i] != paddingId { dword[Int(ids[i]) * h + j] += dout[i * h + j] }
                dposition[(i % t) * h + j] += dout[i * h + j]
                dtokenType[Int(typeIds[i]) * h + j] += dout[i * h + j]
            }
        }
    }
}
