import LoomTensor

/// A parsed `.onnx` file: its graph, initializers and identity, before any kernel is built.
///
/// Parsing never refuses a model for its operators; ``ONNXModel`` does that. This is
/// what `loom inspect` reads.
public struct ModelFile: Sendable {
    /// A graph input or output as the file declares it.
    public struct IOInfo: Sendable, Equatable {
        /// The value's name in the graph.
        public var name: String
        /// ONNX element type name ("float32", "int64", ...).
        public var elementType: String
        /// Extents; nil where the axis is symbolic (a dynamic batch, say).
        public var shape: [Int?]?
        /// The names of symbolic axes, where given.
        public var symbols: [String?]

        /// The shape as text, e.g. `[batch, 4, 100]`.
        public var shapeText: String {
            guard let shape else { return "[?]" }
            return "["
                + shape.enumerated().map { i, d in d.map(String.init) ?? (symbols.indices.contains(i) ? symbols[i] ?? "?" : "?") }.joined(separator: ", ") + "]"
        }
    }

    /// One node, as the file declares it.
    public struct NodeInfo: Sendable {
        public var name: String
        public var opType: String
        public var domain: String
        public var inputs: [String]
        public var outputs: [String]
        /// The node's `metadata_props` (the dynamo exporter records the module path and classes there).
        public var metadata: [String: String] = [:]
    }

    /// The model file's path.
    public let path: String
    /// SHA-256 of the model file and any external data files, in that order.
    public let sha256: String
    /// Total bytes hashed: the model and its external data.
    public let byteCount: Int
    /// The default-domain opset version.
    public let opset: Int
    /// The producer's name, e.g. "pytorch".
    public let producer: String
    /// The inputs the caller feeds (graph inputs that are not initializers).
    public let inputs: [IOInfo]
    /// The graph's outputs.
    public let outputs: [IOInfo]
    /// The nodes in file order.
    public let nodes: [NodeInfo]
    /// The external data files the model reads, as locations relative to its folder.
    public let externalDataFiles: [String]

    let graph: ONNXProto.GraphProto
    let constants: [String: Value]

    /// Reads and parses a model file and its external data.
    public init(path: String) throws {
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path) } catch {
            throw ONNXError(file: path, kind: .io, detail: "cannot read the model (\(error.reason))")
        }
        try self.init(bytes: bytes, path: path)
    }

    /// Parses model bytes; `path` names the file and locates external data.
    public init(bytes: [UInt8], path: String) throws {
        self.path = path
        guard !bytes.isEmpty else { throw ONNXError(file: path, kind: .corrupt, detail: "the file is empty; expected an ONNX model") }
        let model: ONNXProto.ModelProto
        do {
            model = try bytes.withUnsafeBytes { raw throws(ProtoError) in
                var reader = ProtoReader(raw)
                return try ONNXProto.ModelProto(reader: &reader)
            }
        } catch {
            throw ONNXError(file: path, kind: .corrupt, detail: "not a valid ONNX model (\(error)); re-export it with torch.onnx.export")
        }
        guard let graph = model.graph, !graph.nodes.isEmpty || !graph.outputs.isEmpty else {
            throw ONNXError(file: path, kind: .corrupt, detail: "not a valid ONNX model (no graph); re-export it with torch.onnx.export")
        }
        guard model.irVersion > 0 else { throw ONNXError(file: path, kind: .corrupt, detail: "not a valid ONNX model (no IR version)") }
        if graph.hasSparseInitializers { throw ONNXError(file: path, kind: .invalidModel, detail: "sparse initializers are not supported") }
        self.graph = graph
        self.producer = model.producer
        self.opset = Int(model.opsets[""] ?? 1)

        var decoder = TensorDecoder(file: path)
        var constants: [String: Value] = [:]
        for t in graph.initializers { constants[t.name] = try decoder.decode(t) }
        for node in graph.nodes where node.opType == "Constant" && (node.domain.isEmpty || node.domain == "ai.onnx") {
            guard let out = node.outputs.first else { continue }
            let attrs = Attributes(node.attributes, opset: Int(model.opsets[""] ?? 1))
            constants[out] = try Self.constantValue(attrs, node: node, decoder: &decoder, file: path)
        }
        self.constants = constants

        var hash = SHA256()
        hash.update(bytes)
        var total = bytes.count
        for (_, data) in decoder.externalFilesInOrder { hash.update(data); total += data.count }
        self.sha256 = hash.finalize()
        self.externalDataFiles = decoder.externalFilesInOrder.map(\.0)
        self.byteCount = total

        func info(_ v: ONNXProto.ValueInfoProto) -> IOInfo {
            let typeName: String =
                switch ONNXProto.DataType(rawValue: v.elemType) {
                case .float?: "float32"
                case .double?: "float64"
                case .int64?: "int64"
                case .int32?: "int32"
                case .float16?: "float16"
                case .bool?: "bool"
                case .uint8?: "uint8"
                case .int8?: "int8"
                default: "type \(v.elemType)"
                }
            return IOInfo(name: v.name, elementType: typeName, shape: v.dims, symbols: v.dimNames)
        }
        inputs = graph.inputs.filter { constants[$0.name] == nil }.map(info)
        outputs = graph.outputs.map(info)
        nodes = graph.nodes.enumerated().map { i, n in
            NodeInfo(
                name: n.name.isEmpty ? (n.outputs.first ?? "node \(i)") : n.name, opType: n.opType,
                domain: n.domain, inputs: n.inputs, outputs: n.outputs, metadata: n.metadata)
        }
    }

    /// The nodes whose operator Loom does not implement.
    public var unsupportedNodes: [NodeInfo] {
        nodes.filter { !OpRegistry.isSupported(opType: $0.opType, domain: $0.domain) }
    }

    private static func constantValue(_ a: Attributes, node: ONNXProto.NodeProto, decoder: inout TensorDecoder, file: String) throws -> Value {
        let name = node.name.isEmpty ? (node.outputs.first ?? "Constant") : node.name
        func fail(_ why: String) -> ONNXError { ONNXError(file: file, kind: .invalidModel, node: name, op: "Constant", detail: why) }
        switch a.values["value"] ?? a.values["value_float"] ?? a.values["value_floats"] ?? a.values["value_int"] ?? a.values["value_ints"] {
        case .tensor(let t)?: return try decoder.decode(t)
        case .float(let f)?: return .float(Tensor(shape: [], storage: [f]))
        case .floats(let f)?: return .float(Tensor(shape: [f.count], storage: f))
        case .int(let i)?: return .int64(Tensor(shape: [], storage: [i]))
        case .ints(let i)?: return .int64(Tensor(shape: [i.count], storage: i))
        default: throw fail("no value attribute Loom can read (value, value_float(s) or value_int(s))")
        }
    }
}
