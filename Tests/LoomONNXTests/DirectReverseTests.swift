import LoomTensor
import Testing

@testable import LoomONNX

/// Slice, Gather and Transpose run backwards directly; ``routeBack(_:_:)`` (the forward kernel
/// run on position probes) is the reference they must match bit for bit.
@Suite("reverse rules that move elements: direct, and the same bits as routing back")
struct DirectReverseTests {
    /// A (2, 5, 6) tensor's worth of values, and a gradient for `shape` with some −0s.
    static func values(_ n: Int, seed: Int) -> [Float] {
        (0..<n).map { i in
            let v = Float((i * 37 + seed * 11) % 23) - 11
            return v == 0 ? -0.0 : v / 7
        }
    }

    static func int64(_ v: [Int]) -> Value { .int64(Tensor(shape: [v.count], storage: v.map(Int64.init))) }

    /// `bits`: the same bits; else the same values (a −0 may come back +0 from routing, which adds to +0).
    static func check(_ kernel: any ReversibleKernel, _ inputs: [Value?], bits: Bool = true) throws {
        let outputs = try kernel.run(inputs)
        let g = Tensor(shape: outputs[0].shape, storage: values(outputs[0].shape.elementCount, seed: 3))
        let step = ReverseStep(inputs: inputs, outputs: outputs, gradOutputs: [g], needs: [true] + inputs.dropFirst().map { _ in false })
        let direct = try kernel.reverse(step)
        let routed = try routeBack(kernel, step)
        let d = try #require(direct[0]), r = try #require(routed[0])
        #expect(d.shape == r.shape)
        if bits {
            #expect(d.storage.map(\.bitPattern) == r.storage.map(\.bitPattern), "\(inputs.dropFirst().map { $0.map { "\($0)" } ?? "nil" })")
        } else {
            #expect(d.storage == r.storage)
        }
    }

    static let x = Value.float(Tensor(shape: [2, 5, 6], storage: values(60, seed: 1)))

    @Test(
        "Slice: starts, ends, axes and steps, negative and clamped",
        arguments: [
            ([0], [1], [0], [1]), ([1], [4], [1], [1]), ([-1], [-7], [2], [-1]), ([0, 1], [9, 5], [2, 1], [2, 3]),
            ([4], [0], [1], [-2]), ([-100], [100], [-1], [1]), ([2], [2], [2], [1])
        ])
    func slice(_ c: ([Int], [Int], [Int], [Int])) throws {
        try Self.check(SliceKernel(), [Self.x, Self.int64(c.0), Self.int64(c.1), Self.int64(c.2), Self.int64(c.3)])
    }

    @Test("Slice without axes and steps")
    func sliceDefaults() throws {
        try Self.check(SliceKernel(), [Self.x, Self.int64([1, 0]), Self.int64([2, 3])])
    }

    @Test("Gather: every axis, repeated and negative indices, a scalar index", arguments: [0, 1, 2, -1])
    func gather(_ axis: Int) throws {
        let kernel = try GatherKernel(attributes: Attributes(values: ["axis": .int(Int64(axis))], opset: 13))
        try Self.check(kernel, [Self.x, .int64(Tensor(shape: [2, 2], storage: [1, -1, 1, 0]))])
        try Self.check(kernel, [Self.x, .int64(Tensor(shape: [], storage: [-2]))])
    }

    @Test(
        "Transpose: each permutation of three axes (the same values; it keeps a −0)",
        arguments: [[0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 2, 1], [2, 0, 1], [1, 2, 0]])
    func transpose(_ perm: [Int]) throws {
        try Self.check(TransposeKernel(attributes: Attributes(values: ["perm": .ints(perm.map(Int64.init))], opset: 13)), [Self.x], bits: false)
    }
}
