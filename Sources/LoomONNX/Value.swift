import LoomTensor

/// A value flowing through an ONNX graph: a float32 tensor, or an int64 one for shapes and indices.
public enum Value: Sendable {
    case float(Tensor<Float>)
    case int64(Tensor<Int64>)

    /// The value's shape.
    public var shape: [Int] {
        switch self {
        case .float(let t): t.shape
        case .int64(let t): t.shape
        }
    }

    /// The ONNX name of the element type, for messages.
    public var typeName: String {
        switch self {
        case .float: "float32"
        case .int64: "int64"
        }
    }

    /// The float tensor, or an error naming what was found instead.
    func float(_ what: String) throws -> Tensor<Float> {
        guard case .float(let t) = self else { throw KernelError("\(what) must be float32, got \(typeName)") }
        return t
    }

    /// The int64 tensor, or an error naming what was found instead.
    func int64(_ what: String) throws -> Tensor<Int64> {
        guard case .int64(let t) = self else { throw KernelError("\(what) must be int64, got \(typeName)") }
        return t
    }

    /// The same elements under another shape.
    func reshaped(_ shape: [Int]) -> Value {
        switch self {
        case .float(let t): .float(t.reshaped(shape))
        case .int64(let t): .int64(t.reshaped(shape))
        }
    }
}

/// A failure inside one kernel; the interpreter adds the node and the model file.
public struct KernelError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Value {
    /// The given rows of the batch (first) axis, in order.
    func gatherRows(_ rows: [Int]) -> Value {
        switch self {
        case .float(let t): .float(t.gatherRows(rows))
        case .int64(let t): .int64(t.gatherRows(rows))
        }
    }
}
