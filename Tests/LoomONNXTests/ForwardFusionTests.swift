import Foundation
import LoomTensor
import LoomTestSupport
import Testing

@testable import LoomONNX

/// The forward steps fuse a Conv with the Relu that alone reads it; the result is bit for bit the unfused one.
@Suite("forward fusion")
struct ForwardFusionTests {
    /// Conv → Relu → Conv; with `exposeConv` the first Conv's output is also a graph output, so nothing may fuse.
    static func model(exposeConv: Bool, dir: TemporaryDirectory) throws -> ONNXModel {
        func values(_ n: Int, _ seed: Float) -> [Float] { (0..<n).map { Float(sin(Double(Float($0) * 0.37 + seed))) } }
        var b = ONNXBuilder()
        b.input("X", [nil, 4, 50])
        b.initializer("w", shape: [6, 4, 5], values: values(120, 1))
        b.initializer("bias", shape: [6], values: values(6, 2))
        b.initializer("w2", shape: [3, 6, 3], values: values(54, 3))
        b.node("Conv", ["X", "w", "bias"], ["c"], [.ints("pads", [2, 2])])
        b.node("Relu", ["c"], ["r"])
        b.node("Conv", ["r", "w2"], ["y"])
        b.output("y")
        if exposeConv { b.output("c") }
        let path = dir.file(exposeConv ? "exposed.onnx" : "fused.onnx")
        try b.write(to: path)
        return try ONNXModel(path: path)
    }

    @Test func convThenReluIsOneForwardStepWithTheSameBits() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let fused = try Self.model(exposeConv: false, dir: dir)
        #expect(fused.forwardSteps.count == 2, "the Conv and its Relu are one forward step")
        #expect(fused.steps.map(\.op) == ["Conv", "Relu", "Conv"], "the reverse pass keeps every node")
        let exposed = try Self.model(exposeConv: true, dir: dir)
        #expect(exposed.forwardSteps.count == 3, "a Conv output the graph returns is not fused away")
        let x = Tensor<Float>(shape: [3, 4, 50], storage: (0..<600).map { Float(sin(Double($0) * 1.3)) * 2 })
        let y = try fused.run([x])[0]
        let reference = try exposed.run([x])[0]
        #expect(y.shape == reference.shape && y.storage.map(\.bitPattern) == reference.storage.map(\.bitPattern))
        #expect(y.storage.contains { $0 != 0 }, "a result that is not all zeros")
    }

    /// `Where(Greater(x, t), x, Softplus(x))` as the dynamo exporter writes `nn.Softplus`; with
    /// `exposeMask` the mask is also a graph output, so nothing may fuse.
    static func softplusModel(threshold: Float, exposeMask: Bool, dir: TemporaryDirectory) throws -> ONNXModel {
        var b = ONNXBuilder()
        b.input("X", [nil, 3, 40])
        b.initializer("t", shape: [], values: [threshold])
        b.node("Softplus", ["X"], ["s"])
        b.node("Greater", ["X", "t"], ["mask"])
        b.node("Where", ["mask", "X", "s"], ["y"])
        b.output("y")
        if exposeMask { b.output("mask") }
        let path = dir.file("softplus-\(threshold)-\(exposeMask).onnx")
        try b.write(to: path)
        return try ONNXModel(path: path)
    }

    @Test func thresholdedSoftplusIsOneSoftplusWithTheSameBits() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let fused = try Self.softplusModel(threshold: 20, exposeMask: false, dir: dir)
        #expect(fused.forwardSteps.map(\.op) == ["Softplus"])
        #expect(fused.steps.map(\.op) == ["Softplus", "Greater", "Where"], "the reverse pass keeps every node")
        let exposed = try Self.softplusModel(threshold: 20, exposeMask: true, dir: dir)
        #expect(exposed.forwardSteps.count == 3, "a mask the graph returns is not fused away")
        #expect(try Self.softplusModel(threshold: 10, exposeMask: false, dir: dir).forwardSteps.count == 3, "below 16 Softplus is not x")
        // Around the threshold, across Softplus's whole range, and at float32's extremes.
        var values: [Float] = (0..<300).map { Float($0) * 0.25 - 37.5 }
        values += (0..<60).map { 19.5 + Float($0) * 0.017 } + [20, 20.000002, 19.999998, 16, 15.999999, 88, 89, 1e30, -1e30, .infinity]
        values += [Float](repeating: 0, count: (120 - values.count % 120) % 120)
        let x = Tensor<Float>(shape: [values.count / 120, 3, 40], storage: values)
        let y = try fused.run([x])[0]
        let reference = try exposed.run([x])[0]
        #expect(y.storage.map(\.bitPattern) == reference.storage.map(\.bitPattern))
        // Softplus alone is x itself from 16 on, which is what makes the fusion exact for any threshold from there.
        let big = Tensor<Float>(shape: [1, 3, 40], storage: (0..<120).map { 16 * powf(1.9, Float($0) / 2) })
        let plain = try Self.softplusModel(threshold: 1e38, exposeMask: true, dir: dir).run([big])[0]
        #expect(plain.storage.map(\.bitPattern) == big.storage.map(\.bitPattern))
    }

    /// The classic export of `nn.GELU`, operands in the exporter's order or swapped; with
    /// `exposeErf` the Erf's output is also a graph output, so nothing may fuse.
    static func erfChainModel(swapped: Bool, exposeErf: Bool, dir: TemporaryDirectory) throws -> ONNXModel {
        var b = ONNXBuilder()
        b.input("X", [nil, 3, 40])
        b.initializer("a", shape: [], values: [1.4142135])
        b.initializer("b", shape: [], values: [1])
        b.initializer("c", shape: [], values: [0.5])
        b.node("Div", ["X", "a"], ["d"])
        b.node("Erf", ["d"], ["e"])
        b.node("Add", swapped ? ["b", "e"] : ["e", "b"], ["s"])
        b.node("Mul", swapped ? ["s", "X"] : ["X", "s"], ["m"])
        b.node("Mul", swapped ? ["c", "m"] : ["m", "c"], ["y"])
        b.output("y")
        if exposeErf { b.output("e") }
        let path = dir.file("gelu-\(swapped)-\(exposeErf).onnx")
        try b.write(to: path)
        return try ONNXModel(path: path)
    }

    @Test(arguments: [false, true])
    func erfChainIsOneStepWithTheSameBits(swapped: Bool) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let fused = try Self.erfChainModel(swapped: swapped, exposeErf: false, dir: dir)
        #expect(fused.forwardSteps.map(\.op) == ["Gelu"])
        #expect(fused.steps.count == 5, "the reverse pass keeps every node")
        let exposed = try Self.erfChainModel(swapped: swapped, exposeErf: true, dir: dir)
        #expect(exposed.forwardSteps.count == 5, "an Erf output the graph returns is not fused away")
        // 3,000 rows of 120: longer than one block of the fused pass, values across GELU's range.
        let count = 3_000 * 120
        let x = Tensor<Float>(shape: [3_000, 3, 40], storage: (0..<count).map { Float(sin(Double($0) * 0.731)) * 9 + Float($0 % 7) * 1e-3 })
        let y = try fused.run([x])[0]
        let reference = try exposed.run([x])[0]
        #expect(y.storage.map(\.bitPattern) == reference.storage.map(\.bitPattern))
    }
}
