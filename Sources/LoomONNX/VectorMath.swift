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
        case exp = 0, sigmoid, tanh, erf, gelu, softplus, mish, elu, selu, log
    }

    /// Applies `f` (with its parameters `a`, `b`) to every element of `p` into `out` (which may be the same memory).
    @inline(__always)
    static func apply(_ f: Function, _ p: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>, _ a: Float = 0, _ b: Float = 0) {
        guard let src = p.baseAddress, let dst = out.baseAddress else { return }
        loom_vmap(f.rawValue, src, dst, out.count, a, b)
    }

    /// `f` of one value, through the same lanes as ``apply(_:_:into:_:_:)`` (for derivatives and other single values).
    @inline(__always)
    static func scalar(_ f: Function, _ x: Float, _ a: Float = 0, _ b: Float = 0) -> Float {
        var input = x
        var output: Float = 0
        loom_vmap(f.rawValue, &input, &output, 1, a, b)
        return output
    }
}
