/// A reader of the protocol-buffer wire format, enough for ONNX's `ModelProto`.
///
/// Reads from a borrowed byte range; every read checks bounds and throws
/// ``ProtoError`` rather than trapping on a truncated or corrupt file.
struct ProtoReader {
    enum WireType: UInt8 { case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5 }

    let bytes: UnsafeRawBufferPointer
    var offset: Int
    let end: Int

    init(_ bytes: UnsafeRawBufferPointer, range: Range<Int>? = nil) {
        self.bytes = bytes
        self.offset = range?.lowerBound ?? 0
        self.end = range?.upperBound ?? bytes.count
    }

    var isAtEnd: Bool { offset >= end }

    mutating func readVarint() throws(ProtoError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw ProtoError.truncated(at: offset) }
            let b = bytes[offset]
            offset += 1
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift >= 64 { throw ProtoError.malformed("varint longer than 10 bytes at \(offset)") }
        }
    }

    /// Reads a field key: its number and wire type.
    mutating func readKey() throws(ProtoError) -> (field: Int, wire: WireType) {
        let key = try readVarint()
        guard let wire = WireType(rawValue: UInt8(key & 7)) else { throw ProtoError.malformed("wire type \(key & 7) at \(offset)") }
        let field = Int(key >> 3)
        guard field > 0 else { throw ProtoError.malformed("field number 0 at \(offset)") }
        return (field, wire)
    }

    /// Reads a length-delimited field and returns its byte range.
    mutating func readLengthDelimited() throws(ProtoError) -> Range<Int> {
        let length = try readVarint()
        guard length <= UInt64(end - offset) else { throw ProtoError.truncated(at: offset) }
        let start = offset
        offset += Int(length)
        return start..<offset
    }

    mutating func readFixed32() throws(ProtoError) -> UInt32 {
        guard end - offset >= 4 else { throw ProtoError.truncated(at: offset) }
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        offset += 4
        return UInt32(littleEndian: v)
    }

    mutating func readFixed64() throws(ProtoError) -> UInt64 {
        guard end - offset >= 8 else { throw ProtoError.truncated(at: offset) }
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        offset += 8
        return UInt64(littleEndian: v)
    }

    mutating func readString() throws(ProtoError) -> String {
        let r = try readLengthDelimited()
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[r]), as: UTF8.self)
    }

    mutating func readBytes() throws(ProtoError) -> [UInt8] {
        let r = try readLengthDelimited()
        return Array(bytes[r])
    }

    /// Skips a field of the given wire type.
    mutating func skip(_ wire: WireType) throws(ProtoError) {
        switch wire {
        case .varint: _ = try readVarint()
        case .fixed64: _ = try readFixed64()
        case .fixed32: _ = try readFixed32()
        case .lengthDelimited: _ = try readLengthDelimited()
        case .startGroup, .endGroup: throw ProtoError.malformed("groups are not used by ONNX")
        }
    }

    /// Reads a repeated integer field, packed or not, appending to `into`.
    mutating func readInts(_ wire: WireType, into values: inout [Int64]) throws(ProtoError) {
        if wire == .lengthDelimited {
            let r = try readLengthDelimited()
            var sub = ProtoReader(bytes, range: r)
            while !sub.isAtEnd { values.append(Int64(bitPattern: try sub.readVarint())) }
        } else {
            values.append(Int64(bitPattern: try readVarint()))
        }
    }

    /// Reads a repeated float field, packed or not, appending to `into`.
    mutating func readFloats(_ wire: WireType, into values: inout [Float]) throws(ProtoError) {
        if wire == .lengthDelimited {
            let r = try readLengthDelimited()
            var sub = ProtoReader(bytes, range: r)
            while !sub.isAtEnd { values.append(Float(bitPattern: try sub.readFixed32())) }
        } else {
            values.append(Float(bitPattern: try readFixed32()))
        }
    }

    /// Reads a repeated double field, packed or not, appending to `into`.
    mutating func readDoubles(_ wire: WireType, into values: inout [Double]) throws(ProtoError) {
        if wire == .lengthDelimited {
            let r = try readLengthDelimited()
            var sub = ProtoReader(bytes, range: r)
            while !sub.isAtEnd { values.append(Double(bitPattern: try sub.readFixed64())) }
        } else {
            values.append(Double(bitPattern: try readFixed64()))
        }
    }
}

/// A protocol-buffer decoding failure.
enum ProtoError: Error, CustomStringConvertible {
    case truncated(at: Int)
    case malformed(String)

    var description: String {
        switch self {
        case .truncated(let at): "truncated protobuf data at byte \(at)"
        case .malformed(let s): "malformed protobuf: \(s)"
        }
    }
}
