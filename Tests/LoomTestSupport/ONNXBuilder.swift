/// Writes small ONNX models byte by byte, so tests can build real `.onnx` files for hand-checked cases.
///
/// Encodes the protobuf wire format directly (the fields Loom reads), independent of
/// Loom's own decoder, so a decoder bug is not mirrored by the encoder.
public struct ONNXBuilder {
    /// A node attribute.
    public enum Attribute {
        case int(String, Int)
        case ints(String, [Int])
        case float(String, Float)
        case string(String, String)
        case floatTensor(String, shape: [Int], values: [Float])
        case intTensor(String, shape: [Int], values: [Int64])
    }

    var nodes: [[UInt8]] = []
    var initializers: [[UInt8]] = []
    var inputs: [[UInt8]] = []
    var outputs: [[UInt8]] = []
    /// The default-domain opset.
    public var opset: Int

    public init(opset: Int = 17) { self.opset = opset }

    /// Declares a float32 graph input; nil extents are symbolic ("batch").
    public mutating func input(_ name: String, _ dims: [Int?], elemType: Int = 1) {
        inputs.append(Self.valueInfo(name, dims: dims, elemType: elemType))
    }

    /// Declares a graph output of unknown shape.
    public mutating func output(_ name: String) {
        outputs.append(Self.valueInfo(name, dims: nil, elemType: 1))
    }

    /// Adds a float32 initializer (raw_data encoding unless `asFloatData`).
    public mutating func initializer(_ name: String, shape: [Int], values: [Float], asFloatData: Bool = false) {
        initializers.append(Self.floatTensor(name, shape: shape, values: values, asFloatData: asFloatData))
    }

    /// Adds a float32 initializer whose bytes live in an external data file.
    public mutating func externalInitializer(_ name: String, shape: [Int], location: String, offset: Int, length: Int) {
        var t = ProtoWriter()
        t.packedVarints(1, shape.map { UInt64($0) })
        t.varint(2, 1)
        t.string(8, name)
        for (k, v) in [("location", location), ("offset", "\(offset)"), ("length", "\(length)")] {
            var entry = ProtoWriter()
            entry.string(1, k)
            entry.string(2, v)
            t.message(13, entry.bytes)
        }
        t.varint(14, 1)
        initializers.append(t.bytes)
    }

    /// Adds an int64 initializer.
    public mutating func initializer(_ name: String, shape: [Int], ints: [Int64]) {
        initializers.append(Self.intTensor(name, shape: shape, values: ints))
    }

    /// Adds a node.
    public mutating func node(
        _ op: String, _ inputs: [String], _ outputs: [String], name: String? = nil,
        domain: String? = nil, metadata: [(String, String)] = [], _ attributes: [Attribute] = []
    ) {
        var m = ProtoWriter()
        for i in inputs { m.string(1, i) }
        for o in outputs { m.string(2, o) }
        m.string(3, name ?? "\(op)_\(nodes.count)")
        m.string(4, op)
        for a in attributes { m.message(5, Self.attribute(a)) }
        if let domain { m.string(7, domain) }
        for (key, value) in metadata {
            var entry = ProtoWriter()
            entry.string(1, key)
            entry.string(2, value)
            m.message(9, entry.bytes)
        }
        nodes.append(m.bytes)
    }

    /// The model file's bytes.
    public func bytes() -> [UInt8] {
        var g = ProtoWriter()
        for n in nodes { g.message(1, n) }
        g.string(2, "test")
        for t in initializers { g.message(5, t) }
        for i in inputs { g.message(11, i) }
        for o in outputs { g.message(12, o) }
        var opsetId = ProtoWriter()
        opsetId.string(1, "")
        opsetId.varint(2, UInt64(opset))
        var m = ProtoWriter()
        m.varint(1, 8)
        m.string(2, "loom-tests")
        m.message(7, g.bytes)
        m.message(8, opsetId.bytes)
        return m.bytes
    }

    /// Writes the model to a file.
    public func write(to path: String) throws {
        try writeFile(path, bytes())
    }

    static func valueInfo(_ name: String, dims: [Int?]?, elemType: Int) -> [UInt8] {
        var tensor = ProtoWriter()
        tensor.varint(1, UInt64(elemType))
        if let dims {
            var shape = ProtoWriter()
            for d in dims {
                var dim = ProtoWriter()
                if let d { dim.varint(1, UInt64(d)) } else { dim.string(2, "batch") }
                shape.message(1, dim.bytes)
            }
            tensor.message(2, shape.bytes)
        }
        var type = ProtoWriter()
        type.message(1, tensor.bytes)
        var v = ProtoWriter()
        v.string(1, name)
        v.message(2, type.bytes)
        return v.bytes
    }

    static func floatTensor(_ name: String, shape: [Int], values: [Float], asFloatData: Bool = false) -> [UInt8] {
        var t = ProtoWriter()
        t.packedVarints(1, shape.map { UInt64($0) })
        t.varint(2, 1)
        if asFloatData {
            var packed: [UInt8] = []
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { packed += $0 } }
            t.lengthDelimited(4, packed)
        }
        if !name.isEmpty { t.string(8, name) }
        if !asFloatData {
            var raw: [UInt8] = []
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw += $0 } }
            t.lengthDelimited(9, raw)
        }
        return t.bytes
    }

    static func intTensor(_ name: String, shape: [Int], values: [Int64]) -> [UInt8] {
        var t = ProtoWriter()
        t.packedVarints(1, shape.map { UInt64($0) })
        t.varint(2, 7)
        t.packedVarints(7, values.map { UInt64(bitPattern: $0) })
        if !name.isEmpty { t.string(8, name) }
        return t.bytes
    }

    static func attribute(_ a: Attribute) -> [UInt8] {
        var m = ProtoWriter()
        switch a {
        case .int(let n, let v): m.string(1, n); m.varint(3, UInt64(bitPattern: Int64(v))); m.varint(20, 2)
        case .ints(let n, let v): m.string(1, n); m.packedVarints(8, v.map { UInt64(bitPattern: Int64($0)) }); m.varint(20, 7)
        case .float(let n, let v): m.string(1, n); m.fixed32(2, v.bitPattern); m.varint(20, 1)
        case .string(let n, let v): m.string(1, n); m.string(4, v); m.varint(20, 3)
        case .floatTensor(let n, let shape, let values): m.string(1, n); m.message(5, floatTensor("", shape: shape, values: values)); m.varint(20, 4)
        case .intTensor(let n, let shape, let values): m.string(1, n); m.message(5, intTensor("", shape: shape, values: values)); m.varint(20, 4)
        }
        return m.bytes
    }
}

/// A protobuf wire-format writer.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func rawVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func key(_ field: Int, _ wire: UInt64) { rawVarint(UInt64(field) << 3 | wire) }
    mutating func varint(_ field: Int, _ v: UInt64) { key(field, 0); rawVarint(v) }
    mutating func fixed32(_ field: Int, _ v: UInt32) { key(field, 5); withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func lengthDelimited(_ field: Int, _ payload: [UInt8]) { key(field, 2); rawVarint(UInt64(payload.count)); bytes += payload }
    mutating func string(_ field: Int, _ s: String) { lengthDelimited(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ m: [UInt8]) { lengthDelimited(field, m) }
    mutating func packedVarints(_ field: Int, _ values: [UInt64]) {
        var w = ProtoWriter()
        for v in values { w.rawVarint(v) }
        lengthDelimited(field, w.bytes)
    }
}
