import ArgumentParser
import LoomONNX

/// `loom inspect`: what a model takes, gives and uses, and whether Loom can run it.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a model's inputs, outputs and operators, and whether Loom supports each operator.")

    @Argument(help: "The .onnx file.")
    var model: String?

    @Flag(help: "Print this CPU's BLAS kernel sets and which one --kernels auto picks, then exit.")
    var kernels = false

    /// One line on the kernels: the sets this CPU has, the one auto picks, OpenBLAS's name for it.
    static func kernelLine() throws -> String {
        let best = KernelSet.best
        try BLAS.load(threads: 1, kernels: best) // (first, before a model loads OpenBLAS for itself)
        let sets = KernelSet.allCases.map { "\($0.rawValue) \($0.isSupported ? "yes" : "no")" }.joined(separator: ", ")
        return "kernels:  \(sets); --kernels auto runs \(best.rawValue) (OpenBLAS \(BLAS.coreName); \(BLAS.configuration))"
    }

    func run() throws {
        try reportingErrors {
            if kernels {
                print(try Self.kernelLine())
                return
            }
            guard let model else { throw ValidationError("pass a model (.onnx), or --kernels") }
            let kernelLine = try Self.kernelLine()
            let file = try ModelFile(path: model)
            print("model:    \(file.path)")
            print("sha256:   \(file.sha256)")
            print("producer: \(file.producer.isEmpty ? "?" : file.producer), opset \(file.opset), \(file.nodes.count) nodes")
            print("inputs:")
            for i in file.inputs { print("  \(i.name)  \(i.elementType) \(i.shapeText)") }
            print("outputs:")
            for o in file.outputs { print("  \(o.name)  \(o.elementType) \(o.shapeText)") }
            print("operators:")
            var counts: [String: Int] = [:]
            var order: [String] = []
            for n in file.nodes {
                let key = n.domain.isEmpty || n.domain == "ai.onnx" ? n.opType : "\(n.domain).\(n.opType)"
                if counts[key] == nil { order.append(key) }
                counts[key, default: 0] += 1
            }
            for key in order {
                let node = file.nodes.first { ($0.domain.isEmpty || $0.domain == "ai.onnx" ? $0.opType : "\($0.domain).\($0.opType)") == key }!
                let ok = OpRegistry.isSupported(opType: node.opType, domain: node.domain)
                print("  \(key + String(repeating: " ", count: max(0, 20 - key.count))) x\(counts[key]!)  \(ok ? "supported" : "NOT SUPPORTED")")
            }
            let bad = file.unsupportedNodes
            if bad.isEmpty {
                do {
                    let model = try ONNXModel(file: file)
                    print("Loom can run this model.")
                    print(kernelLine)
                    do {
                        try model.checkAttributable(function: "deep-lift-shap")
                        print("deep-lift-shap: every operator on X's path has a reverse rule; the output must be (batch, outputs).")
                    } catch let e as ONNXError {
                        print("deep-lift-shap: not on this model: \(e.detail)")
                    }
                } catch {
                    print("Loom cannot run this model: \(error)")
                    throw ExitCode(2)
                }
            } else {
                print("Loom cannot run this model: \(bad.count) node(s) use unsupported operators, first '\(bad[0].name)' (\(bad[0].opType)).")
                throw ExitCode(2)
            }
        }
    }
}
