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
}
