import CLoomVector

/// Element-wise transcendental functions eight lanes at a time, for the activations that
/// dominate a model's time when computed one glibc call per element (GELU's erf, sigmoid).
///
/// Each function is the same arithmetic in every lane, and an array's tail is computed in a
/// padded vector, so an element's result does not depend on its position: a row gives the same
/// bits whether it runs in a batch of distinct sequences or of every example.
enum VectorMath {
    typealias V = SIMD8<Float>

    typealias Bits = SIMD8<UInt32>

    /// e^x, Cephes' single-precision method: relative error under 1.2e-7 (checked against expf).
    ///
    /// Written with the operations Swift lowers to vector instructions (min, max, multiply, add,
    /// integer shifts on the bit pattern): `rounded(_:)`, conversions and `replacing(with:where:)`
    /// go lane by lane and made this eight times slower than glibc's expf.
    @inline(__always)
    static func exp(_ v: V) -> V {
        var x = clamp(v, -87.3, 88.3)
        // x·log2(e) rounded to the nearest integer by adding 1.5·2^23 (its low bits then hold it).
        let magic = V(repeating: 12582912)
        let r = x * 1.44269504088896341 + magic
        let n = r - magic
        x = x - n * 0.693359375 - n * -2.12194440e-4
        let z = x * x
        var y = V(repeating: 1.9875691500e-4)
        y = y * x + 1.3981999507e-3
        y = y * x + 8.3334519073e-3
        y = y * x + 4.1665795894e-2
        y = y * x + 1.6666665459e-1
        y = y * x + 5.0000001201e-1
        y = y * z + x + 1
        let exponent = (unsafeBitCast(r, to: Bits.self) &- unsafeBitCast(magic, to: Bits.self) &+ 127) &<< 23
        return y * unsafeBitCast(exponent, to: V.self)
    }

    /// erf, as PyTorch's vectorized CPU kernels compute it (Abramowitz and Stegun 7.1.26: absolute error under 1.5e-7).
    @inline(__always)
    static func erf(_ x: V) -> V {
        let bits = unsafeBitCast(x, to: Bits.self)
        let sign = bits & 0x8000_0000
        let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: V.self)
        let t = 1 / (1 + 0.3275911 * a)
        var poly = V(repeating: 1.061405429)
        poly = poly * t - 1.453152027
        poly = poly * t + 1.421413741
        poly = poly * t - 0.284496736
        poly = poly * t + 0.254829592
        let r = 1 - poly * t * exp(-(a * a))
        return unsafeBitCast(unsafeBitCast(r, to: Bits.self) | sign, to: V.self)
    }

    /// The natural logarithm, Cephes' single-precision method (relative error under 2e-7 for
    /// positive normal x; checked in VectorMathTests). x ≤ 0, infinities and NaNs are not its domain:
    /// callers pass positive finite values.
    @inline(__always)
    static func log(_ v: V) -> V {
        let bits = unsafeBitCast(v, to: Bits.self)
        // x = m · 2^e with m in [0.5, 1).
        var e = unsafeBitCast((bits &>> 23) & 0xFF, to: SIMD8<Int32>.self) &- 126
        var m = unsafeBitCast((bits & 0x807F_FFFF) | 0x3F00_0000, to: V.self)
        // Below √½, take 2m − 1 and e − 1; else m − 1: all ones where m < √½.
        let low = unsafeBitCast(m - V(repeating: 0.707106781186547524), to: SIMD8<Int32>.self) &>> 31
        e = e &+ low
        let lowBits = unsafeBitCast(low, to: Bits.self)
        m = m - 1 + unsafeBitCast(unsafeBitCast(m, to: Bits.self) & lowBits, to: V.self)
        // e as a float, by the 2^23 trick (conversions go lane by lane): e + 128 is in [0, 256).
        let fe = unsafeBitCast(unsafeBitCast(e &+ 128, to: Bits.self) | 0x4B00_0000, to: V.self) - (8_388_608 + 128)
        let z = m * m
        var y = V(repeating: 7.0376836292e-2)
        y = y * m - 1.1514610310e-1
        y = y * m + 1.1676998740e-1
        y = y * m - 1.2420140846e-1
        y = y * m + 1.4249322787e-1
        y = y * m - 1.6668057665e-1
        y = y * m + 2.0000714765e-1
        y = y * m - 2.4999993993e-1
        y = y * m + 3.3333331174e-1
        y = y * m * z
        y = y + fe * -2.12194440e-4
        y = y - 0.5 * z
        return m + y + fe * 0.693359375
    }

    /// log(1 + e^x), as PyTorch's softplus (x itself beyond 20): max(x, 0) + log1p(e^−|x|), with
    /// log1p(y) = log(1 + y) · y / ((1 + y) − 1), which keeps the digits that 1 + y rounds away
    /// (y itself once 1 + y rounds to 1).
    @inline(__always)
    static func softplus(_ x: V) -> V {
        let bits = unsafeBitCast(x, to: Bits.self)
        let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: V.self)
        let y = exp(-a)
        let u = 1 + y
        let d = u - 1
        // All ones where 1 + y rounded to 1 (d is +0): then log1p(y) is y.
        let exact = unsafeBitCast(unsafeBitCast(d, to: SIMD8<Int32>.self) &- 1, to: SIMD8<Int32>.self) &>> 31
        let safeD = unsafeBitCast(
            (unsafeBitCast(V(repeating: 1), to: Bits.self) & unsafeBitCast(exact, to: Bits.self))
                | (unsafeBitCast(d, to: Bits.self) & ~unsafeBitCast(exact, to: Bits.self)), to: V.self)
        let viaLog = log(u) * y / safeD
        let l1p = unsafeBitCast(
            (unsafeBitCast(y, to: Bits.self) & unsafeBitCast(exact, to: Bits.self))
                | (unsafeBitCast(viaLog, to: Bits.self) & ~unsafeBitCast(exact, to: Bits.self)), to: V.self)
        // max(x, 0): x where its sign bit is clear.
        let positive = unsafeBitCast(unsafeBitCast(x, to: SIMD8<Int32>.self) &>> 31, to: Bits.self)
        let xPlus = unsafeBitCast(bits & ~positive, to: V.self)
        return xPlus + l1p
    }

    /// `v` clamped to [lo, hi] by bit selects (the stdlib's `pointwiseMin`/`Max` were not inlined).
    /// A NaN lane stays NaN.
    @inline(__always)
    static func clamp(_ v: V, _ lo: Float, _ hi: Float) -> V {
        // All ones where v > hi (hi − v negative), then where v < lo.
        let above = unsafeBitCast(unsafeBitCast(V(repeating: hi) - v, to: SIMD8<Int32>.self) &>> 31, to: Bits.self)
        let capped = (unsafeBitCast(V(repeating: hi), to: Bits.self) & above) | (unsafeBitCast(v, to: Bits.self) & ~above)
        let c = unsafeBitCast(capped, to: V.self)
        let below = unsafeBitCast(unsafeBitCast(c - V(repeating: lo), to: SIMD8<Int32>.self) &>> 31, to: Bits.self)
        return unsafeBitCast((unsafeBitCast(V(repeating: lo), to: Bits.self) & below) | (capped & ~below), to: V.self)
    }

    /// 1 / (1 + e^−x).
    @inline(__always)
    static func sigmoid(_ x: V) -> V { 1 / (1 + exp(-x)) }

    /// tanh: 1 − 2/(e^{2|x|} + 1), signed, where |x| ≥ 0.625; below, where that form cancels, Eigen's
    /// 13/6 rational approximation (its vectorized `ptanh`). Within 4 ulp and 1.2e-7 of glibc's
    /// tanhf over [−10, 10], and ±1 beyond 9 (checked in VectorMathTests), six times faster.
    @inline(__always)
    static func tanh(_ v: V) -> V {
        let bits = unsafeBitCast(v, to: Bits.self)
        let sign = bits & 0x8000_0000
        let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: V.self)
        let large = unsafeBitCast(unsafeBitCast(1 - 2 / (exp(2 * a) + 1), to: Bits.self) | sign, to: V.self)
        let x = clamp(a, 0, 0.625)
        let x2 = x * x
        var p = V(repeating: -2.76076847742355e-16)
        p = p * x2 + 2.00018790482477e-13
        p = p * x2 - 8.60467152213735e-11
        p = p * x2 + 5.12229709037114e-08
        p = p * x2 + 1.48572235717979e-05
        p = p * x2 + 6.37261928875436e-04
        p = p * x2 + 4.89352455891786e-03
        var q = V(repeating: 1.19825839466702e-06)
        q = q * x2 + 1.18534705686654e-04
        q = q * x2 + 2.26843463243900e-03
        q = q * x2 + 4.89352518554385e-03
        let small = unsafeBitCast(unsafeBitCast(p * x / q, to: Bits.self) | sign, to: V.self)
        // All ones where |x| ≥ 0.625: the sign of 0.625 − |x|, spread by an arithmetic shift (a
        // blend by bits, where `replacing(with:where:)` would go lane by lane).
        let useLarge = unsafeBitCast(unsafeBitCast(V(repeating: 0.625) - a, to: SIMD8<Int32>.self) &>> 31, to: Bits.self)
        return unsafeBitCast((unsafeBitCast(large, to: Bits.self) & useLarge) | (unsafeBitCast(small, to: Bits.self) & ~useLarge), to: V.self)
    }

    /// The functions the C kernels run (``apply(_:_:into:_:_:)``).
    enum Function: Int32 {
        case exp = 0, sigmoid, tanh, erf, gelu, softplus, mish, elu, selu
    }

    /// Applies `f` (with its parameters `a`, `b`) to every element of `p` into `out` (which may be the same memory).
    ///
    /// The work runs in `CLoomVector`: the same operations as this file's functions, in C, built
    /// for the x86-64 baseline and for AVX2 and chosen by the CPU (AVX2 does each eight-lane
    /// operation in one instruction where Swift's `SIMD8`, built for the baseline, takes two).
    /// Neither build fuses multiply-adds, so both give the same bits (VectorMathTests).
    @inline(__always)
    static func apply(_ f: Function, _ p: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>, _ a: Float = 0, _ b: Float = 0) {
        guard let src = p.baseAddress, let dst = out.baseAddress else { return }
        loom_vmap(f.rawValue, src, dst, out.count, a, b)
    }

    /// Applies `f` to every element of `p` into `out` (which may be the same memory), eight at a time.
    @inline(__always)
    static func map(_ p: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>, _ f: (V) -> V) {
        let n = out.count
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(p.baseAddress! + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(out.baseAddress! + i).storeBytes(of: f(v), as: V.self)
            i += 8
        }
        guard i < n else { return }
        var tail = V()
        for k in 0..<(n - i) { tail[k] = p[i + k] }
        let r = f(tail)
        for k in 0..<(n - i) { out[i + k] = r[k] }
    }

    /// One element through the same lanes (for derivatives and other single values).
    @inline(__always)
    static func scalar(_ x: Float, _ f: (V) -> V) -> Float { f(V(repeating: x))[0] }
}
