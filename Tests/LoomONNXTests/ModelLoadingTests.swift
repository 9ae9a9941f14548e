import Foundation
import LoomONNX
import LoomTensor
import LoomTestSupport
import Testing

@Suite("model loading")
struct ModelLoadingTests {
    @Test("an unsupported operator is refused at load time, naming the op and the node")
    func unsupportedOp() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var b = ONNXBuilder()
        b.input("x", [nil, 4])
        b.output("y")
        b.node("Relu", ["x"], ["r"])
        b.node("NonMaxSuppression", ["r"], ["y"], name: "detector/nms")
        try b.write(to: dir.file("m.onnx"))
        do {
            _ = try ONNXModel(path: dir.file("m.onnx"))
            Issue.record("NonMaxSuppression should be refused")
        } catch let e as ONNXError {
            #expect(e.kind == .unsupportedOp)
            #expect(e.op == "NonMaxSuppression")
            #expect(e.node == "detector/nms")
            #expect(e.description.contains("m.onnx") && e.description.contains("NonMaxSuppression") && e.description.contains("detector/nms"))
        }
        // The file still parses for `loom inspect`.
        let file = try ModelFile(path: dir.file("m.onnx"))
        #expect(file.unsupportedNodes.map(\.opType) == ["NonMaxSuppression"])
    }

    @Test("an operator from another domain is refused")
    func otherDomain() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var b = ONNXBuilder()
        b.input("x", [nil, 4])
        b.output("y")
        b.node("Relu", ["x"], ["y"], domain: "com.microsoft")
        try b.write(to: dir.file("m.onnx"))
        #expect(throws: ONNXError.self) { try ONNXModel(path: dir.file("m.onnx")) }
    }

    @Test("a bad attribute is refused at load time with the node named")
    func badAttribute() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var b = ONNXBuilder()
        b.input("x", [nil, 4, 10])
        b.output("y")
        b.node("Conv", ["x", "w"], ["y"], name: "conv3d", [.ints("strides", [1, 1, 1])])
        b.initializer("w", shape: [1, 4, 3], values: [Float](repeating: 0, count: 12))
        try b.write(to: dir.file("m.onnx"))
        do {
            _ = try ONNXModel(path: dir.file("m.onnx"))
            Issue.record("3-D strides should be refused")
        } catch let e as ONNXError {
            #expect(e.kind == .invalidModel)
            #expect(e.node == "conv3d")
        }
    }

    @Test("missing, empty, truncated and corrupt files give one clear error each")
    func corrupt() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        func kind(_ bytes: [UInt8]?) -> ONNXError.Kind? {
            let path = dir.file("bad.onnx")
            if let bytes { try? writeFile(path, bytes) } else { FileIO.remove(path) }
            do { _ = try ONNXModel(path: path); return nil } catch let e as ONNXError {
                #expect(e.description.hasPrefix(path))
                return e.kind
            } catch { return nil }
        }
        #expect(kind(nil) == .io)
        #expect(kind([]) == .corrupt)
        #expect(kind(Array("this is not a model at all".utf8)) == .corrupt)
        var b = ONNXBuilder()
        b.input("x", [nil, 4])
        b.output("y")
        b.node("Relu", ["x"], ["y"])
        b.initializer("w", shape: [100], values: [Float](repeating: 1, count: 100))
        let good = b.bytes()
        #expect(kind(Array(good.prefix(good.count / 2))) == .corrupt)
        #expect(kind(Array(good.prefix(good.count - 3))) == .corrupt)
    }

    @Test("a value used before it is produced is refused")
    func topology() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var b = ONNXBuilder()
        b.input("x", [nil, 4])
        b.output("y")
        b.node("Relu", ["h"], ["y"])
        b.node("Relu", ["x"], ["h"])
        try b.write(to: dir.file("m.onnx"))
        #expect(throws: ONNXError.self) { try ONNXModel(path: dir.file("m.onnx")) }
    }

    @Test("a wrong number of inputs at run time is an input mismatch")
    func inputCount() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var b = ONNXBuilder()
        b.input("x", [nil, 2])
        b.input("a", [nil, 1])
        b.output("y")
        b.node("Add", ["x", "a"], ["y"])
        try b.write(to: dir.file("m.onnx"))
        let m = try ONNXModel(path: dir.file("m.onnx"))
        #expect(m.inputs.map(\.name) == ["x", "a"])
        #expect(m.inputs[0].shapeText == "[batch, 2]")
        do {
            _ = try m.run([Tensor(shape: [1, 2], storage: [1, 2])])
            Issue.record("one input for two")
        } catch let e as ONNXError { #expect(e.kind == .inputMismatch) }
    }

    @Test("the dynamo exporter's BPNet loads its weights from the external data file")
    func externalData() throws {
        let path = Repository.conformanceDirectory + "/bpnet_product_predict_control_tracks/model.onnx"
        let m = try ONNXModel(path: path)
        #expect(m.file.opset == 20)
        #expect(m.inputs.map(\.name) == ["X", "a0"])
        #expect(m.outputs.count == 2)
        let y = try m.run([Tensor(shape: [2, 4, 160], repeating: 0.25), Tensor(shape: [2, 2, 160], repeating: 1)])
        #expect(y[0].shape == [2, 2, 38])
        #expect(y[1].shape == [2, 1])
        // Without the data file beside it, the load fails and names the missing file.
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try writeFile(dir.file("model.onnx"), try FileIO.readAll(path))
        do {
            _ = try ONNXModel(path: dir.file("model.onnx"))
            Issue.record("missing external data should fail")
        } catch let e as ONNXError {
            #expect(e.kind == .io)
            #expect(e.description.contains("model.onnx.data"))
        }
        // A truncated data file is corrupt.
        let data = try FileIO.readAll(path + ".data")
        try writeFile(dir.file("model.onnx.data"), Array(data.prefix(100)))
        #expect(throws: ONNXError.self) { try ONNXModel(path: dir.file("model.onnx")) }
    }

    @Test("external data outside the model's folder is refused")
    func externalEscape() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var b = ONNXBuilder()
        b.input("x", [nil, 4])
        b.output("y")
        b.node("Add", ["x", "w"], ["y"])
        b.externalInitializer("w", shape: [4], location: "../../etc/passwd", offset: 0, length: 16)
        let bytes = b.bytes()
        try writeFile(dir.file("m.onnx"), bytes)
        do {
            _ = try ONNXModel(path: dir.file("m.onnx"))
            Issue.record("should refuse")
        } catch let e as ONNXError {
            #expect(e.kind == .invalidModel)
            #expect(e.description.contains("outside"))
        }
    }

    @Test("crafted files: dims whose product overflows, an offset near Int.max, a symlink out of the folder: one error each, never a trap")
    func craftedSizes() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        func refused(_ b: ONNXBuilder, _ text: String) throws {
            try writeFile(dir.file("m.onnx"), b.bytes())
            do {
                _ = try ONNXModel(path: dir.file("m.onnx"))
                Issue.record("accepted: \(text)")
            } catch let e as ONNXError {
                #expect(e.description.contains(text), "\(e)")
            }
        }
        func model(_ w: (inout ONNXBuilder) -> Void) -> ONNXBuilder {
            var b = ONNXBuilder()
            b.input("x", [nil, 4])
            b.output("y")
            b.node("Add", ["x", "w"], ["y"])
            w(&b)
            return b
        }
        try refused(model { $0.externalInitializer("w", shape: [1 << 39, 1 << 39], location: "d.bin", offset: 0, length: 16) }, "impossibly large")
        try writeFile(dir.file("d.bin"), [UInt8](repeating: 0, count: 64))
        try refused(model { $0.externalInitializer("w", shape: [4], location: "d.bin", offset: Int.max - 4, length: 16) }, "from offset")
        try refused(model { $0.externalInitializer("w", shape: [4], location: "d.bin", offset: 16, length: Int.max - 8) }, "from offset")
        // A symbolic link beside the model that points out of its folder.
        let outside = TemporaryDirectory()
        defer { outside.remove() }
        try writeFile(outside.file("secret"), [UInt8](repeating: 7, count: 16))
        try FileManager.default.createSymbolicLink(atPath: dir.file("link.bin"), withDestinationPath: outside.file("secret"))
        try refused(model { $0.externalInitializer("w", shape: [4], location: "link.bin", offset: 0, length: 16) }, "outside the model's folder")
    }

    @Test("a Reshape or Expand target near Int64.max fails the run with an error, never a trap")
    func hugeShapes() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        for (op, target) in [("Reshape", [Int64(1) << 62, 4]), ("Reshape", [-1, Int64(1) << 62, Int64(1) << 3]), ("Expand", [Int64(1) << 40, Int64(1) << 40])] {
            var b = ONNXBuilder()
            b.input("x", [1, 4])
            b.output("y")
            b.initializer("s", shape: [target.count], ints: target)
            b.node(op, ["x", "s"], ["y"])
            try writeFile(dir.file("m.onnx"), b.bytes())
            let model = try ONNXModel(path: dir.file("m.onnx"))
            #expect(throws: (any Error).self, "\(op) \(target)") { _ = try model.run([Tensor(shape: [1, 4], storage: [1, 2, 3, 4])]) }
        }
    }
}
