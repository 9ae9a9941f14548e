/// The element types Loom reads from `.npy` files.
public enum NpyDType: String, Sendable, CaseIterable {
    case float32 = "f4"
    case float64 = "f8"
    case int8 = "i1"
    case uint8 = "u1"
    case bool = "b1"

    /// The size of one element in bytes.
    public var byteWidth: Int {
        switch self {
        case .float32: 4
        case .float64: 8
        case .int8, .uint8, .bool: 1
        }
    }

    /// numpy's name for the type, for messages.
    public var numpyName: String {
        switch self {
        case .float32: "float32"
        case .float64: "float64"
        case .int8: "int8"
        case .uint8: "uint8"
        case .bool: "bool"
        }
    }

    /// Parses a numpy `descr` string such as `<f4` or `|u1`.
    ///
    /// Returns nil for big-endian data or any type outside the supported set.
    public init?(descr: String) {
        guard let first = descr.first, "<|=".contains(first) else { return nil }
        let code = String(descr.dropFirst())
        guard let type = NpyDType(rawValue: code) else { return nil }
        // A one-byte type may be written with either '|' or '<'; wider ones must be little-endian.
        if type.byteWidth > 1 && first == "|" { return nil }
        self = type
    }
}
