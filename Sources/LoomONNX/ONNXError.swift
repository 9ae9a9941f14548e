/// Why an ONNX model could not be loaded or run, naming the file and, where it applies, the node.
public struct ONNXError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure.
    public enum Kind: Sendable, Equatable {
        /// The file (or its external data) could not be read.
        case io
        /// The bytes are not a valid ONNX model.
        case corrupt
        /// The graph uses an operator Loom does not implement.
        case unsupportedOp
        /// The graph is well-formed protobuf but not a model Loom can run (bad attributes, missing values...).
        case invalidModel
        /// The inputs given do not fit the model's inputs.
        case inputMismatch
        /// A kernel failed while running (shapes that do not fit, for instance).
        case runtime
    }

    /// The model file.
    public var file: String
    /// The kind of failure.
    public var kind: Kind
    /// The node at fault, if any: its name (or its first output) and its operator.
    public var node: String?
    public var op: String?
    /// What went wrong and, where possible, what to do.
    public var detail: String

    public init(file: String, kind: Kind, node: String? = nil, op: String? = nil, detail: String) {
        self.file = file
        self.kind = kind
        self.node = node
        self.op = op
        self.detail = detail
    }

    public var description: String {
        var s = file + ": "
        if let op, let node { s += "node '\(node)' (\(op)): " } else if let op { s += "\(op): " }
        return s + detail
    }
}
