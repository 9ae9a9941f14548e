import CLoomVector
import Foundation
import Testing

@testable import LoomONNX

/// The vector transcendental functions against glibc's, over a sweep of their whole useful range.
@Suite("VectorMath against glibc; its C builds against each other", .serialized)
struct VectorMathTests {
    /// Every float32 step of 1/4096 over [−10, 10], and the tiny and huge values around it.
    static let points: [Float] = (-40960...40960).map { Float($0) / 4096 } + [1e-8, -1e-8, 1e-30, 3e-4, -5e-4, 50, -50, 1e6, -1e6]

    static func worst(_ f: VectorMath.Function, _ reference: (Float) -> Float) -> (relative: Float, absolute: Float) {
        var rel: Float = 0
        var abs: Float = 0
        for x in points {
            let got = VectorMath.scalar(f, x)
            let want = reference(x)
            let d = Swift.abs(got - want)
            abs = max(abs, d)
            if want != 0 { rel = max(rel, d / Swift.abs(want)) }
        }
        return (rel, abs)
    }

    @Test func tanhIsWithinAFewUlp() {
        let (rel, abs) = Self.worst(.tanh, tanhf)
        #expect(rel < 3e-7 && abs < 1.5e-7, "tanh: relative \(rel), absolute \(abs)")
        #expect(VectorMath.scalar(.tanh, 50) == 1 && VectorMath.scalar(.tanh, -50) == -1)
    }

    @Test func logAndSoftplusAreWithinAFewUlp() {
        var worst: Float = 0
        for k in 0..<200_000 {
            let x = Float(k + 1) * 0.0005 + Float(k % 7) * 1e-7
            let d = Swift.abs(VectorMath.scalar(.log, x) - logf(x))
            worst = max(worst, d / Swift.max(Swift.abs(logf(x)), 1))
        }
        for x: Float in [1e-30, 1e-10, 3.5e-5, 0.70710677, 0.7071068, 1, 2, 1e10, 3e38] {
            let d = Swift.abs(VectorMath.scalar(.log, x) - logf(x))
            worst = max(worst, d / Swift.max(Swift.abs(logf(x)), 1))
        }
        #expect(worst < 3e-7, "log: relative \(worst)")
        let s = Self.worst(.softplus) { $0 > 20 ? $0 : log1pf(expf($0)) }
        #expect(s.relative < 5e-7, "softplus: relative \(s.relative), absolute \(s.absolute)")
        #expect(VectorMath.scalar(.softplus, -50) > 0 && VectorMath.scalar(.softplus, 50) == 50)
    }

    @Test func expAndSigmoidStayWithinTheirBounds() {
        let e = Self.worst(.exp, expf)
        #expect(e.relative < 2.5e-7, "exp: relative \(e.relative)")
        let s = Self.worst(.sigmoid) { 1 / (1 + expf(-$0)) }
        #expect(s.absolute < 2e-7, "sigmoid: absolute \(s.absolute)")
    }

    @Test func erfIsCloseEverywhereAndRelativelyCloseNearZero() {
        let e = Self.worst(.erf, erff)
        #expect(e.absolute < 5e-7, "erf: absolute \(e.absolute)")
        // Relative error near 0 (where 7.1.26 had none left): tiny inputs keep their digits.
        var worst: Float = 0
        for x: Float in [1e-30, 1e-20, 1e-8, -1e-8, 3e-6, 1e-4, -2e-3, 0.05, 0.3] {
            worst = max(worst, Swift.abs(VectorMath.scalar(.erf, x) - erff(x)) / Swift.abs(erff(x)))
        }
        #expect(worst < 5e-7, "erf near 0: relative \(worst)")
        #expect(Self.points.allSatisfy { Swift.abs(VectorMath.scalar(.erf, $0)) <= 1 })
        #expect(VectorMath.scalar(.erf, 50) == 1 && VectorMath.scalar(.erf, -50) == -1 && VectorMath.scalar(.erf, 0) == 0)
    }

    @Test func theErfChainIsItsFiveOperationsRounded() {
        let (a, b, c): (Float, Float, Float) = (1.4142135, 1, 0.5)
        for x in Self.points {
            let want = ((VectorMath.scalar(.erf, x / a) + b) * x) * c
            #expect(VectorMath.scalar(.erfChain, x, a, b, c).bitPattern == want.bitPattern, "x = \(x)")
        }
    }

    /// Every function with its parameters.
    static let cases: [(VectorMath.Function, Float, Float)] = [
        (.exp, 0, 0), (.sigmoid, 0, 0), (.tanh, 0, 0), (.erf, 0, 0), (.gelu, 0, 0), (.softplus, 0, 0), (.mish, 0, 0),
        (.elu, 0.7, 0), (.selu, 1.6732632, 1.050701), (.log, 0, 0), (.erfChain, 1.4142135, 1)
    ]

    static func run(_ f: VectorMath.Function, _ a: Float, _ b: Float, level: Int32) -> [UInt32] {
        // An odd count: the tail goes through the padded vector.
        let input = Array(Self.points.prefix(81_923))
        var out = [Float](repeating: 0, count: input.count)
        _ = loom_vector_use(level)
        defer { _ = loom_vector_use(1) }
        input.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { VectorMath.apply(f, p, into: $0, a, b) } }
        return out.map(\.bitPattern)
    }

    @Test func theBaselineAndAVX2BuildsGiveTheSameBits() throws {
        let best = loom_vector_use(1)
        try #require(best == 1, "this CPU has no AVX2: only the baseline build runs here")
        for (f, a, b) in Self.cases {
            #expect(Self.run(f, a, b, level: 0) == Self.run(f, a, b, level: 1), "\(f): the two builds differ")
        }
    }

    @Test func aValueGivesTheSameBitsAloneAsInAnArray() {
        let input = Array(Self.points.prefix(81_923))
        for (f, a, b) in Self.cases {
            let alone = input.map { VectorMath.scalar(f, $0, a, b).bitPattern }
            #expect(alone == Self.run(f, a, b, level: 1), "\(f): a value alone differs from the same value in an array")
        }
    }
}
