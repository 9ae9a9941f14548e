/// Why an `.npy` file could not be read or written.
public struct NpyError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, in categories a caller can act on.
    public enum Code: Sendable, Equatable {
        case cannotOpen(errno: Int32)
        case notNpy
        case unsupportedVersion(major: UInt8)
        case badHeader(String)
        case unsupportedDType(String)
        case fortranOrder
        case truncated(expected: Int, actual: Int)
        case writeFailed(errno: Int32)
        case readFailed(errno: Int32)
    }

    /// The file at fault.
    public var path: String
    /// What went wrong.
    public var code: Code

    public init(path: String, code: Code) {
        self.path = path
        self.code = code
    }

    public var description: String {
        let why: String
        switch code {
        case .cannotOpen(let e): why = "cannot open (\(String(cString: strerrorCompat(e))))"
        case .notNpy: why = "not a .npy file (the magic string \\x93NUMPY is missing)"
        case .unsupportedVersion(let v): why = "unsupported .npy format version \(v) (1, 2 and 3 are read)"
        case .badHeader(let s): why = "corrupt .npy header: \(s)"
        case .unsupportedDType(let d):
            why = "unsupported dtype '\(d)': use little-endian float32, float64, int8, uint8 or bool"
        case .fortranOrder: why = "Fortran-ordered arrays are not read; save it with numpy.ascontiguousarray"
        case .truncated(let expected, let actual):
            why = "truncated: the header promises \(expected) bytes of data, the file has \(actual)"
        case .writeFailed(let e): why = "cannot write (\(String(cString: strerrorCompat(e))))"
        case .readFailed(let e): why = "cannot read (\(String(cString: strerrorCompat(e))))"
        }
        return "\(path): \(why)"
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@usableFromInline func strerrorCompat(_ e: Int32) -> UnsafeMutablePointer<CChar> { strerror(e) }
