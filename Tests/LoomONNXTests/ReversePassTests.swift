import Foundation
import LoomONNX
import LoomTensor
import LoomTestSupport
import Testing

/// Builds a model from `build` (input X (batch, C, L), output y), loads it and returns it with its folder.
func loadModel(channels: Int, length: Int, extraInputs: [(String, [Int?])] = [], _ build: (inout ONNXBuilder) -> Void) throws -> ONNXModel {
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    var b = ONNXBuilder()
    b.input("X", [nil, channels, length])
    for (name, dims) in extraInputs { b.input(name, dims) }
    b.output("y")
    build(&b)
    try b.write(to: dir.file("m.onnx"))
    return try ONNXModel(path: dir.file("m.onnx"))
}

/// A deterministic pseudo-random vector.
func noise(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var s = seed &* 6_364_136_223_846_793_005 &+ 1
    return (0..<n).map { _ in
        s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return (Float(s >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
}

/// Runs DeepLIFT on one example over one reference and returns (multipliers, Δy, Σ Δx·m).
func deepLiftOnce(_ model: ONNXModel, x: [Float], ref: [Float], shape: [Int], others: [Tensor<Float>] = [], target: Int = 0) throws
    -> (m: [Float], deltaY: Float, deltaSum: Float)
{
    let stacked = Tensor<Float>(shape: [2] + shape, storage: x + ref)
    let pass = try model.deepLift(x: stacked, others: others, target: target)
    let m = pass.multipliers.storage
    var sum: Float = 0
    for i in 0..<x.count { sum += (x[i] - ref[i]) * m[i] }
    return (m, pass.outputs[0] - pass.outputs[1], sum)
}

@Suite("the reverse pass: DeepLIFT's rules on hand-built graphs")
struct ReversePassTests {
    @Test("ReLU's rescale rule: Δout/Δin where the input moves, the plain gradient where |Δin| < 1e-6")
    func reluRescale() throws {
        let model = try loadModel(channels: 1, length: 4) { b in
            b.node("Relu", ["X"], ["r"])
            b.initializer("axes", shape: [2], ints: [1, 2])
            b.node("ReduceSum", ["r", "axes"], ["y"], [.int("keepdims", 1)])
        }
        let x: [Float] = [2, -1, 3, 0.5], ref: [Float] = [-2, -3, 1, 0.5]
        let (m, dy, sum) = try deepLiftOnce(model, x: x, ref: ref, shape: [1, 4])
        // (2 - 0)/(2 - -2) = 0.5; both negative: 0/2 = 0; (3 - 1)/2 = 1; unchanged positive: plain gradient 1.
        #expect(m == [0.5, 0, 1, 1])
        #expect(abs(dy - sum) < 1e-6)
        // The plain gradient where the input does not move but is negative: 0.
        let (m2, _, _) = try deepLiftOnce(model, x: [-1, 1, 1, 1], ref: [-1, 1, 1, 1], shape: [1, 4])
        #expect(m2 == [0, 1, 1, 1])
    }

    @Test("Sigmoid and Tanh: the secant slope, which makes contributions sum to the output difference")
    func smoothActivations() throws {
        for op in ["Sigmoid", "Tanh", "Softplus"] {
            let model = try loadModel(channels: 2, length: 3) { b in
                b.node(op, ["X"], ["r"])
                b.initializer("axes", shape: [2], ints: [1, 2])
                b.node("ReduceSum", ["r", "axes"], ["y"], [.int("keepdims", 1)])
            }
            let x = noise(6, seed: 1, scale: 3), ref = noise(6, seed: 2, scale: 3)
            let (m, dy, sum) = try deepLiftOnce(model, x: x, ref: ref, shape: [2, 3])
            #expect(abs(dy - sum) < 1e-5, "\(op)")
            // The plain derivative would not sum to Δy; the secant differs from it.
            let plainSigmoid = x.map { v -> Float in
                let s = 1 / (1 + expf(-v)); return s * (1 - s)
            }
            if op == "Sigmoid" { #expect(!zip(m, plainSigmoid).allSatisfy { abs($0 - $1) < 1e-4 }) }
        }
    }

    @Test("a linear graph (Conv, Gemm, Add, Mul, Slice, Concat, Transpose) gets its exact gradient")
    func linearGradient() throws {
        let (c, l) = (3, 8)
        let w = noise(4 * c * 3, seed: 3), g = noise(64, seed: 4)
        let model = try loadModel(channels: c, length: l, extraInputs: [("s", [nil, 1])]) { b in
            b.initializer("w", shape: [4, c, 3], values: w)
            b.node("Conv", ["X", "w"], ["h"], [.ints("dilations", [2]), .ints("pads", [1, 1])]) // (4, 6)
            b.initializer("starts", shape: [1], ints: [1]); b.initializer("ends", shape: [1], ints: [5]); b.initializer("ax", shape: [1], ints: [2])
            b.node("Slice", ["h", "starts", "ends", "ax"], ["hs"]) // (4, 4)
            b.node("Transpose", ["hs"], ["ht"], [.ints("perm", [0, 2, 1])]) // (4, 4)
            b.node("Concat", ["ht", "ht"], ["hc"], [.int("axis", 1)]) // (8, 4)
            b.initializer("shape", shape: [2], ints: [0, -1])
            b.node("Reshape", ["hc", "shape"], ["flat"]) // 32
            b.initializer("g", shape: [2, 32], values: Array(g.prefix(64)))
            b.node("Gemm", ["flat", "g"], ["o"], [.int("transB", 1)])
            b.node("Mul", ["o", "s"], ["y"])
        }
        let x = noise(c * l, seed: 5), ref = noise(c * l, seed: 6)
        let s = Tensor<Float>(shape: [2, 1], storage: [1.5, 1.5])
        for target in [0, 1] {
            let (m, dy, sum) = try deepLiftOnce(model, x: x, ref: ref, shape: [c, l], others: [s], target: target)
            #expect(abs(dy - sum) < 1e-4)
            // Finite differences of a linear function are exact up to rounding.
            for i in [0, 5, 11, 23] {
                var xp = x
                xp[i] += 1
                let y1 = try model.run([Tensor(shape: [1, c, l], storage: xp), Tensor(shape: [1, 1], storage: [1.5])])[0].storage[target]
                let y0 = try model.run([Tensor(shape: [1, c, l], storage: x), Tensor(shape: [1, 1], storage: [1.5])])[0].storage[target]
                #expect(abs((y1 - y0) - m[i]) < 1e-4, "position \(i)")
            }
        }
    }

    @Test("MaxPool's rule (overlapping and disjoint windows) and a ReLU keep contributions summing to Δy")
    func maxPoolConvergence() throws {
        for (kernel, stride) in [(2, 2), (4, 2), (3, 1)] {
            let model = try loadModel(channels: 2, length: 12) { b in
                b.initializer("w", shape: [3, 2, 3], values: noise(18, seed: 7))
                b.node("Conv", ["X", "w"], ["h"], [.ints("pads", [1, 1])])
                b.node("Relu", ["h"], ["r"])
                b.node("MaxPool", ["r"], ["p"], [.ints("kernel_shape", [kernel]), .ints("strides", [stride])])
                b.initializer("axes", shape: [2], ints: [1, 2])
                b.node("ReduceSum", ["p", "axes"], ["s"], [.int("keepdims", 1)])
                b.initializer("two", shape: [1], values: [2])
                b.node("Mul", ["s", "two"], ["y"])
            }
            for seed in 0..<5 as Range<UInt64> {
                let x = noise(24, seed: 10 + seed, scale: 2), ref = noise(24, seed: 20 + seed, scale: 2)
                let (_, dy, sum) = try deepLiftOnce(model, x: x, ref: ref, shape: [2, 12])
                #expect(abs(dy - sum) < 1e-4, "kernel \(kernel) stride \(stride): Δy \(dy), Σ \(sum)")
            }
        }
    }

    @Test("the softmax rule keeps contributions summing to the change of the attributed probability")
    func softmaxConvergence() throws {
        let model = try loadModel(channels: 1, length: 5) { b in
            b.initializer("shape", shape: [2], ints: [0, -1])
            b.node("Reshape", ["X", "shape"], ["flat"])
            b.initializer("w", shape: [5, 4], values: noise(20, seed: 30))
            b.node("MatMul", ["flat", "w"], ["z"])
            b.node("Softmax", ["z"], ["y"], [.int("axis", -1)])
        }
        for target in 0..<4 {
            let x = noise(5, seed: 40 + UInt64(target), scale: 2), ref = noise(5, seed: 50 + UInt64(target), scale: 2)
            let (_, dy, sum) = try deepLiftOnce(model, x: x, ref: ref, shape: [1, 5], target: target)
            #expect(abs(dy - sum) < 1e-4, "target \(target): Δy \(dy), Σ \(sum)")
        }
    }

    @Test("a model with two outputs is refused for attributions, naming them")
    func twoOutputsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var b = ONNXBuilder()
        b.input("X", [nil, 1, 2])
        b.output("y"); b.output("z")
        b.node("Relu", ["X"], ["y"])
        b.node("Neg", ["X"], ["z"])
        try b.write(to: dir.file("m.onnx"))
        let model = try ONNXModel(path: dir.file("m.onnx"))
        #expect(model.nodeWithoutReverseRule == nil, "every operator Loom runs has a reverse rule")
        #expect(throws: ONNXError.self) { try model.checkAttributable(function: "deep-lift-shap") }
        do { try model.checkAttributable(function: "deep-lift-shap") } catch {
            #expect("\(error)".contains("y, z"))
        }
    }

    @Test("an output with extra axes is refused at run time, with what it returns")
    func outputShapeRefused() throws {
        let model = try loadModel(channels: 2, length: 3) { b in b.node("Relu", ["X"], ["y"]) }
        let stacked = Tensor<Float>(shape: [2, 2, 3], repeating: 1)
        #expect(throws: ONNXError.self) { try model.deepLift(x: stacked, others: [], target: 0) }
    }
}
