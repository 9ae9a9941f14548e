/// The parts of ONNX's protobuf messages that Loom uses, decoded from the wire format.
///
/// Field numbers follow onnx/onnx.proto (IR version 10). Unknown fields are skipped,
/// so files from newer exporters still load when they only add fields.
enum ONNXProto {
    /// ONNX `TensorProto.DataType` values Loom understands.
    enum DataType: Int32 {
        case float = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7, string = 8, bool = 9,
            float16 = 10, double = 11, uint32 = 12, uint64 = 13
    }

    struct TensorProto {
        var name = ""
        var dims: [Int64] = []
        var dataType: Int32 = 0
        var floatData: [Float] = []
        var int32Data: [Int64] = []
        var int64Data: [Int64] = []
        var doubleData: [Double] = []
        var rawData: [UInt8]? = nil
        var externalData: [String: String] = [:]
        var dataLocationExternal = false

        init(reader r: inout ProtoReader) throws(ProtoError) {
            while !r.isAtEnd {
                let (field, wire) = try r.readKey()
                switch field {
                case 1: try r.readInts(wire, into: &dims)
                case 2: dataType = Int32(truncatingIfNeeded: try r.readVarint())
                case 4: try r.readFloats(wire, into: &floatData)
                case 5: try r.readInts(wire, into: &int32Data)
                case 7: try r.readInts(wire, into: &int64Data)
                case 8: name = try r.readString()
                case 9: rawData = try r.readBytes()
                case 10: try r.readDoubles(wire, into: &doubleData)
                case 13:
                    let range = try r.readLengthDelimited()
                    var sub = ProtoReader(r.bytes, range: range)
                    var key = "", value = ""
                    while !sub.isAtEnd {
                        let (f, w) = try sub.readKey()
                        if f == 1 { key = try sub.readString() } else if f == 2 { value = try sub.readString() } else { try sub.skip(w) }
                    }
                    externalData[key] = value
                case 14: dataLocationExternal = try r.readVarint() == 1
                default: try r.skip(wire)
                }
            }
        }
    }

    enum AttributeValue {
        case float(Float), int(Int64), string(String), tensor(TensorProto)
        case floats([Float]), ints([Int64]), strings([String])
        case graph
    }

    struct AttributeProto {
        var name = ""
        var value: AttributeValue? = nil

        init(reader r: inout ProtoReader) throws(ProtoError) {
            var f: Float? = nil, i: Int64? = nil, s: String? = nil, t: TensorProto? = nil
            var floats: [Float] = [], ints: [Int64] = [], strings: [String] = []
            var type: Int64 = 0
            var sawGraph = false
            while !r.isAtEnd {
                let (field, wire) = try r.readKey()
                switch field {
                case 1: name = try r.readString()
                case 2: f = Float(bitPattern: try r.readFixed32())
                case 3: i = Int64(bitPattern: try r.readVarint())
                case 4: s = try r.readString()
                case 5:
                    let range = try r.readLengthDelimited()
                    var sub = ProtoReader(r.bytes, range: range)
                    t = try TensorProto(reader: &sub)
                case 6, 11: sawGraph = true; try r.skip(wire)
                case 7: try r.readFloats(wire, into: &floats)
                case 8: try r.readInts(wire, into: &ints)
                case 9: strings.append(try r.readString())
                case 20: type = Int64(bitPattern: try r.readVarint())
                default: try r.skip(wire)
                }
            }
            // AttributeProto.AttributeType: FLOAT=1 INT=2 STRING=3 TENSOR=4 GRAPH=5 FLOATS=6 INTS=7 STRINGS=8
            switch type {
            case 1: value = .float(f ?? 0)
            case 2: value = .int(i ?? 0)
            case 3: value = .string(s ?? "")
            case 4: value = t.map { .tensor($0) }
            case 5, 10: value = .graph
            case 6: value = .floats(floats)
            case 7: value = .ints(ints)
            case 8: value = .strings(strings)
            default:
                // Old files may leave the type out: infer it from the field that is set.
                if let t {
                    value = .tensor(t)
                } else if let f {
                    value = .float(f)
                } else if let i {
                    value = .int(i)
                } else if let s {
                    value = .string(s)
                } else if !floats.isEmpty {
                    value = .floats(floats)
                } else if !ints.isEmpty {
                    value = .ints(ints)
                } else if !strings.isEmpty {
                    value = .strings(strings)
                } else if sawGraph {
                    value = .graph
                }
            }
        }
    }

    struct NodeProto {
        var inputs: [String] = []
        var outputs: [String] = []
        var name = ""
        var opType = ""
        var domain = ""
        var attributes: [AttributeProto] = []
        /// `metadata_props`: what the exporter says of the node (the dynamo exporter: the module path and classes).
        var metadata: [String: String] = [:]

        init(reader r: inout ProtoReader) throws(ProtoError) {
            while !r.isAtEnd {
                let (field, wire) = try r.readKey()
                switch field {
                case 1: inputs.append(try r.readString())
                case 2: outputs.append(try r.readString())
                case 3: name = try r.readString()
                case 4: opType = try r.readString()
                case 5:
                    let range = try r.readLengthDelimited()
                    var sub = ProtoReader(r.bytes, range: range)
                    attributes.append(try AttributeProto(reader: &sub))
                case 7: domain = try r.readString()
                case 9:
                    // StringStringEntryProto: key = 1, value = 2.
                    let range = try r.readLengthDelimited()
                    var sub = ProtoReader(r.bytes, range: range)
                    var key = "", value = ""
                    while !sub.isAtEnd {
                        let (f, w) = try sub.readKey()
                        switch f {
                        case 1: key = try sub.readString()
                        case 2: value = try sub.readString()
                        default: try sub.skip(w)
                        }
                    }
                    metadata[key] = value
                default: try r.skip(wire)
                }
            }
        }
    }

    /// A graph input or output: name, element type and shape (nil extents are symbolic).
    struct ValueInfoProto {
        var name = ""
        var elemType: Int32 = 0
        var dims: [Int?]? = nil
        var dimNames: [String?] = []

        init(reader r: inout ProtoReader) throws(ProtoError) {
            while !r.isAtEnd {
                let (field, wire) = try r.readKey()
                switch field {
                case 1: name = try r.readString()
                case 2:
                    // TypeProto { tensor_type = 1: Tensor { elem_type = 1, shape = 2 } }
                    let range = try r.readLengthDelimited()
                    var type = ProtoReader(r.bytes, range: range)
                    while !type.isAtEnd {
                        let (tf, tw) = try type.readKey()
                        guard tf == 1 else { try type.skip(tw); continue }
                        var tensor = ProtoReader(r.bytes, range: try type.readLengthDelimited())
                        while !tensor.isAtEnd {
                            let (f, w) = try tensor.readKey()
                            if f == 1 {
                                elemType = Int32(truncatingIfNeeded: try tensor.readVarint())
                            } else if f == 2 {
                                var shape = ProtoReader(r.bytes, range: try tensor.readLengthDelimited())
                                var dims: [Int?] = []
                                while !shape.isAtEnd {
                                    let (sf, sw) = try shape.readKey()
                                    guard sf == 1 else { try shape.skip(sw); continue }
                                    var dim = ProtoReader(r.bytes, range: try shape.readLengthDelimited())
                                    var value: Int? = nil
                                    var param: String? = nil
                                    while !dim.isAtEnd {
                                        let (df, dw) = try dim.readKey()
                                        if df == 1 {
                                            value = Int(truncatingIfNeeded: Int64(bitPattern: try dim.readVarint()))
                                        } else if df == 2 {
                                            param = try dim.readString()
                                        } else {
                                            try dim.skip(dw)
                                        }
                                    }
                                    dims.append(value)
                                    dimNames.append(param)
                                }
                                self.dims = dims
                            } else {
                                try tensor.skip(w)
                            }
                        }
                    }
                default: try r.skip(wire)
                }
            }
        }
    }

    struct GraphProto {
        var nodes: [NodeProto] = []
        var initializers: [TensorProto] = []
        var inputs: [ValueInfoProto] = []
        var outputs: [ValueInfoProto] = []
        var name = ""
        var hasSparseInitializers = false

        init(reader r: inout ProtoReader) throws(ProtoError) {
            while !r.isAtEnd {
                let (field, wire) = try r.readKey()
                switch field {
                case 1:
                    var sub = ProtoReader(r.bytes, range: try r.readLengthDelimited())
                    nodes.append(try NodeProto(reader: &sub))
                case 2: name = try r.readString()
                case 5:
                    var sub = ProtoReader(r.bytes, range: try r.readLengthDelimited())
                    initializers.append(try TensorProto(reader: &sub))
                case 11:
                    var sub = ProtoReader(r.bytes, range: try r.readLengthDelimited())
                    inputs.append(try ValueInfoProto(reader: &sub))
                case 12:
                    var sub = ProtoReader(r.bytes, range: try r.readLengthDelimited())
                    outputs.append(try ValueInfoProto(reader: &sub))
                case 15: hasSparseInitializers = true; try r.skip(wire)
                default: try r.skip(wire)
                }
            }
        }
    }

    struct ModelProto {
        var irVersion: Int64 = 0
        var opsets: [String: Int64] = [:]
        var producer = ""
        var graph: GraphProto? = nil
        var hasFunctions = false

        init(reader r: inout ProtoReader) throws(ProtoError) {
            while !r.isAtEnd {
                let (field, wire) = try r.readKey()
                switch field {
                case 1: irVersion = Int64(bitPattern: try r.readVarint())
                case 2: producer = try r.readString()
                case 7:
                    var sub = ProtoReader(r.bytes, range: try r.readLengthDelimited())
                    graph = try GraphProto(reader: &sub)
                case 8:
                    var sub = ProtoReader(r.bytes, range: try r.readLengthDelimited())
                    var domain = "", version: Int64 = 0
                    while !sub.isAtEnd {
                        let (f, w) = try sub.readKey()
                        if f == 1 {
                            domain = try sub.readString()
                        } else if f == 2 {
                            version = Int64(bitPattern: try sub.readVarint())
                        } else {
                            try sub.skip(w)
                        }
                    }
                    opsets[domain == "ai.onnx" ? "" : domain] = version
                case 25: hasFunctions = true; try r.skip(wire)
                default: try r.skip(wire)
                }
            }
        }
    }
}
