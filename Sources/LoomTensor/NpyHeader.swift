/// The header of a `.npy` file: element type, shape and where the data starts.
public struct NpyHeader: Sendable, Equatable {
    /// The element type.
    public var dtype: NpyDType
    /// The array's shape.
    public var shape: [Int]
    /// The byte offset of the first element.
    public var dataOffset: Int

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59] // \x93NUMPY

    /// Parses the header at the start of `bytes`.
    public static func parse(_ bytes: [UInt8], path: String) throws -> NpyHeader {
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw NpyError(path: path, code: .notNpy) }
        let major = bytes[6]
        let lengthStart: Int
        let headerLength: Int
        switch major {
        case 1:
            lengthStart = 8
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        case 2, 3:
            guard bytes.count >= 12 else { throw NpyError(path: path, code: .truncated(expected: 12, actual: bytes.count)) }
            lengthStart = 8
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        default:
            throw NpyError(path: path, code: .unsupportedVersion(major: major))
        }
        let headerStart = lengthStart + (major == 1 ? 2 : 4)
        let dataOffset = headerStart + headerLength
        guard dataOffset <= bytes.count else {
            throw NpyError(path: path, code: .truncated(expected: dataOffset, actual: bytes.count))
        }
        let text = String(decoding: bytes[headerStart..<dataOffset], as: UTF8.self)
        var parser = HeaderParser(text: text)
        let dict: [String: HeaderParser.Value]
        do { dict = try parser.parseDict() } catch let e as HeaderParser.Failure {
            throw NpyError(path: path, code: .badHeader(e.message))
        }
        guard case .string(let descr)? = dict["descr"] else { throw NpyError(path: path, code: .badHeader("no 'descr' entry")) }
        guard case .bool(let fortran)? = dict["fortran_order"] else { throw NpyError(path: path, code: .badHeader("no 'fortran_order' entry")) }
        guard case .tuple(let shape)? = dict["shape"] else { throw NpyError(path: path, code: .badHeader("no 'shape' entry")) }
        guard let dtype = NpyDType(descr: descr) else { throw NpyError(path: path, code: .unsupportedDType(descr)) }
        if fortran && shape.count > 1 { throw NpyError(path: path, code: .fortranOrder) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw NpyError(path: path, code: .badHeader("negative extent in shape \(shape)")) }
        var total = 1
        for d in shape {
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow, p < (1 << 48) else { throw NpyError(path: path, code: .badHeader("shape \(shape) is impossibly large")) }
            total = p
        }
        return NpyHeader(dtype: dtype, shape: shape, dataOffset: dataOffset)
    }

    /// Encodes a format-version-1 header (2 for very long ones), padded so the data starts on a 64-byte boundary.
    public static func encode(dtype: NpyDType, shape: [Int]) -> [UInt8] {
        let shapeText: String
        switch shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(shape[0]),)"
        default: shapeText = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        var dict = "{'descr': '\(dtype == .bool || dtype.byteWidth == 1 ? "|" : "<")\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        let fixed = dict.utf8.count + 1 <= 65535 - 10 ? 10 : 12
        let total = fixed + dict.utf8.count + 1
        let padded = (total + 63) / 64 * 64
        dict += String(repeating: " ", count: padded - total) + "\n"
        var out = magic
        let length = dict.utf8.count
        if fixed == 10 {
            out += [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)]
        } else {
            out += [2, 0, UInt8(length & 0xFF), UInt8((length >> 8) & 0xFF), UInt8((length >> 16) & 0xFF), UInt8(length >> 24)]
        }
        out += Array(dict.utf8)
        return out
    }
}

/// A parser for the Python dict literal in a `.npy` header.
struct HeaderParser {
    enum Value { case string(String), bool(Bool), tuple([Int]) }
    struct Failure: Error { var message: String }

    let chars: [Character]
    var i = 0

    init(text: String) { chars = Array(text) }

    mutating func skipSpace() { while i < chars.count, chars[i].isWhitespace { i += 1 } }

    mutating func expect(_ c: Character) throws {
        skipSpace()
        guard i < chars.count, chars[i] == c else { throw Failure(message: "expected '\(c)' at character \(i)") }
        i += 1
    }

    mutating func peek() -> Character? { skipSpace(); return i < chars.count ? chars[i] : nil }

    mutating func parseString() throws -> String {
        skipSpace()
        guard i < chars.count, chars[i] == "'" || chars[i] == "\"" else { throw Failure(message: "expected a string at character \(i)") }
        let quote = chars[i]
        i += 1
        var s = ""
        while i < chars.count, chars[i] != quote { s.append(chars[i]); i += 1 }
        guard i < chars.count else { throw Failure(message: "unterminated string") }
        i += 1
        return s
    }

    mutating func parseValue() throws -> Value {
        guard let c = peek() else { throw Failure(message: "unexpected end of header") }
        if c == "'" || c == "\"" { return .string(try parseString()) }
        if c == "(" {
            i += 1
            var items: [Int] = []
            while true {
                guard let p = peek() else { throw Failure(message: "unterminated shape tuple") }
                if p == ")" { i += 1; break }
                var digits = ""
                while i < chars.count, chars[i].isNumber || chars[i] == "-" { digits.append(chars[i]); i += 1 }
                if peek() == "L" { i += 1 }
                guard let v = Int(digits) else { throw Failure(message: "bad shape entry at character \(i)") }
                items.append(v)
                if peek() == "," { i += 1 }
            }
            return .tuple(items)
        }
        for (word, value) in [("True", true), ("False", false)] where chars[i...].starts(with: word) {
            i += word.count
            return .bool(value)
        }
        throw Failure(message: "unexpected '\(c)' at character \(i)")
    }

    mutating func parseDict() throws -> [String: Value] {
        try expect("{")
        var dict: [String: Value] = [:]
        while true {
            guard let c = peek() else { throw Failure(message: "unterminated dict") }
            if c == "}" { i += 1; break }
            let key = try parseString()
            try expect(":")
            dict[key] = try parseValue()
            if peek() == "," { i += 1 }
        }
        return dict
    }
}
