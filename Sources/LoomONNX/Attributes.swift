import LoomTensor

/// A node's attributes, with typed accessors that throw on a wrong type.
struct Attributes {
    let values: [String: ONNXProto.AttributeValue]
    let opset: Int
    /// How many outputs the node names (Split without sizes splits into that many parts).
    let outputCount: Int

    init(_ list: [ONNXProto.AttributeProto], opset: Int, outputCount: Int = 1) {
        var d: [String: ONNXProto.AttributeValue] = [:]
        for a in list { if let v = a.value { d[a.name] = v } }
        values = d
        self.opset = opset
        self.outputCount = outputCount
    }

    init(values: [String: ONNXProto.AttributeValue], opset: Int, outputCount: Int = 1) {
        self.values = values
        self.opset = opset
        self.outputCount = outputCount
    }

    func has(_ name: String) -> Bool { values[name] != nil }

    func int(_ name: String, default value: Int? = nil) throws -> Int {
        switch values[name] {
        case .int(let i)?: return Int(i)
        case nil:
            if let value { return value }
            throw KernelError("required attribute '\(name)' is missing")
        default: throw KernelError("attribute '\(name)' must be an integer")
        }
    }

    func float(_ name: String, default value: Float) throws -> Float {
        switch values[name] {
        case .float(let f)?: return f
        case .int(let i)?: return Float(i)
        case nil: return value
        default: throw KernelError("attribute '\(name)' must be a float")
        }
    }

    func ints(_ name: String) throws -> [Int]? {
        switch values[name] {
        case .ints(let v)?: return v.map { Int($0) }
        case .int(let i)?: return [Int(i)]
        case nil: return nil
        default: throw KernelError("attribute '\(name)' must be a list of integers")
        }
    }

    func string(_ name: String, default value: String) throws -> String {
        switch values[name] {
        case .string(let s)?: return s
        case nil: return value
        default: throw KernelError("attribute '\(name)' must be a string")
        }
    }
}
