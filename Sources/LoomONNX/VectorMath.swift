import CLoomVector

/// Element-wise transcendental functions eight lanes at a time, for the activations that
/// dominate a model's time when computed one glibc call per element (GELU's erf, tanh, softplus).
///
/// The work runs in `CLoomVector`: C built for the x86-64 baseline and for AVX2, chosen by the
/// CPU (AVX2 does each eight-lane operation in one instruction). Neither build fuses
/// multiply-adds, so both give the same bits (VectorMathTests). Each function is the same
/// arithmetic in every lane, and an array's tail is computed in a padded vector, so an element's
/// result does not depend on its position: a row gives the same bits whether it runs in a batch
/// of distinct sequences or of every example.
enum VectorMath {
    /// The functions the C kernels run (`LOOM_V_` in CLoomVector.h).
    enum Function: Int32 {
        case exp = 0, sigmoid, tanh, erf, gelu, softplus, mish, elu, selu, log, erfChain
    }

    /// Applies `f` (with its parameters `a`, `b`, `c`) to every element of `p` into `out` (which may be the same memory).
    @inline(__always)
    static func apply(
        _ f: Function, _ p: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>, _ a: Float = 0, _ b: Float = 0, _ c: Float = 0
    ) {
        guard let src = p.baseAddress, let dst = out.baseAddress else { return }
        loom_vmap(f.rawValue, src, dst, out.count, a, b, c)
    }

    /// `f` of one value, through the same lanes as ``apply(_:_:into:_:_:_:)`` (for derivatives and other single values).
    @inline(__always)
    static func scalar(_ f: Function, _ x: Float, _ a: Float = 0, _ b: Float = 0, _ c: Float = 0) -> Float {
        var input = x
        var output: Float = 0
        loom_vmap(f.rawValue, &input, &output, 1, a, b, c)
        return output
    }
}

extension VectorMath {
    /// The sum of `n` floats in eight independent lanes, added pairwise at the end.
    ///
    /// One running sum waits on each add in turn; eight lanes do not. The order of the adds
    /// depends on `n` alone, so a row gives the same bits wherever it lies in a batch.
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        reduceLanes(p, n, 0, +) { $0 + $1 }
    }

    /// The sum of `(x − mean)²` over `n` floats, in eight lanes as ``sum(_:_:)``.
    @inline(__always)
    static func squaredDeviations(_ p: UnsafePointer<Float>, _ n: Int, from mean: Float) -> Float {
        let m = SIMD8<Float>(repeating: mean)
        return reduceLanes(
            p, n, 0,
            { a, v in
                let d = v - m; return a + d * d
            },
            { a, v in
                let d = v - mean; return a + d * d
            })
    }

    /// The largest of `n` floats (`v > m ? v : m` from −∞, lane by lane).
    @inline(__always)
    static func maximum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: -.infinity)
        var j = 0
        let raw = UnsafeRawPointer(p)
        while j + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self)
            acc.replace(with: v, where: v .> acc)
            j += 8
        }
        var m = -Float.infinity
        for lane in 0..<8 { m = acc[lane] > m ? acc[lane] : m }
        while j < n {
            m = p[j] > m ? p[j] : m
            j += 1
        }
        return m
    }

    /// Folds `n` floats into eight lanes with `lanes`, the tail with `scalar`, then adds the lanes pairwise.
    @inline(__always)
    static func reduceLanes(
        _ p: UnsafePointer<Float>, _ n: Int, _ initial: Float,
        _ lanes: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>, _ scalar: (Float, Float) -> Float
    ) -> Float {
        var acc = SIMD8<Float>(repeating: initial)
        var j = 0
        let raw = UnsafeRawPointer(p)
        while j + 8 <= n {
            acc = lanes(acc, raw.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self))
            j += 8
        }
        var tail = initial
        while j < n {
            tail = scalar(tail, p[j])
            j += 1
        }
        let low = (acc[0] + acc[1]) + (acc[2] + acc[3]), high = (acc[4] + acc[5]) + (acc[6] + acc[7])
        return (low + high) + tail
    }
}
