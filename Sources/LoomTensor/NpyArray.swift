#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The contents of one `.npy` file: its element type, its shape and its raw little-endian bytes.
public struct NpyArray: Sendable {
    /// The element type.
    public var dtype: NpyDType
    /// The shape; `[]` for a scalar.
    public var shape: [Int]
    /// The data, `shape.elementCount * dtype.byteWidth` bytes in C order.
    public var data: [UInt8]

    public init(dtype: NpyDType, shape: [Int], data: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    /// Reads and validates a `.npy` file (format versions 1, 2 and 3).
    ///
    /// The header is read first and the data straight into ``data``: one copy of the data, so
    /// that reading an input costs about its size in memory, not two or three times it.
    public static func read(path: String) throws -> NpyArray {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NpyError(path: path, code: .cannotOpen(errno: errno)) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw NpyError(path: path, code: .cannotOpen(errno: errno)) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw NpyError(path: path, code: .cannotOpen(errno: EISDIR)) }
        let size = Int(st.st_size)
        func readAt(_ offset: Int, _ count: Int) throws -> [UInt8] {
            do { return try FileIO.read(fd, count: count, at: offset) } catch { throw NpyError(path: path, code: .readFailed(errno: error.code)) }
        }
        // Headers are a few hundred bytes; a longer one (version 2 or 3) is read whole on a second try.
        var prefix = try readAt(0, min(size, 4096))
        var header: NpyHeader
        do { header = try NpyHeader.parse(prefix, path: path) } catch let e as NpyError {
            guard case .truncated(let wanted, _) = e.code, wanted > prefix.count else { throw e }
            guard wanted <= size else { throw NpyError(path: path, code: .truncated(expected: wanted, actual: size)) }
            prefix = try readAt(0, wanted)
            header = try NpyHeader.parse(prefix, path: path)
        }
        let expected = header.shape.elementCount * header.dtype.byteWidth
        let available = size - header.dataOffset
        guard available >= expected else {
            throw NpyError(path: path, code: .truncated(expected: expected, actual: max(available, 0)))
        }
        if available > expected {
            throw NpyError(path: path, code: .badHeader("\(available - expected) bytes follow the data that the shape \(header.shape) does not account for"))
        }
        let data = try readAt(header.dataOffset, expected)
        guard data.count == expected else { throw NpyError(path: path, code: .truncated(expected: expected, actual: data.count)) }
        return NpyArray(dtype: header.dtype, shape: header.shape, data: data)
    }

    /// Parses the bytes of a `.npy` file; `path` only names the file in errors.
    public static func parse(_ bytes: [UInt8], path: String) throws -> NpyArray {
        let header = try NpyHeader.parse(bytes, path: path)
        let expected = header.shape.elementCount * header.dtype.byteWidth
        let available = bytes.count - header.dataOffset
        guard available >= expected else {
            throw NpyError(path: path, code: .truncated(expected: expected, actual: max(available, 0)))
        }
        if available > expected {
            throw NpyError(path: path, code: .badHeader("\(available - expected) bytes follow the data that the shape \(header.shape) does not account for"))
        }
        return NpyArray(
            dtype: header.dtype, shape: header.shape,
            data: Array(bytes[header.dataOffset..<(header.dataOffset + expected)]))
    }

    /// The elements converted to float32 (bool and integers to 0/1 and their values).
    public func floatTensor() -> Tensor<Float> {
        let n = shape.elementCount
        return Tensor(shape: shape) { out in
            data.withUnsafeBytes { raw in
                switch dtype {
                case .float32:
                    #if _endian(little)
                        UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<(n * 4)]))
                    #else
                        for i in 0..<n { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
                    #endif
                case .float64:
                    for i in 0..<n { out[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))) }
                case .int8:
                    for i in 0..<n { out[i] = Float(Int8(bitPattern: raw[i])) }
                case .uint8:
                    for i in 0..<n { out[i] = Float(raw[i]) }
                case .bool:
                    for i in 0..<n { out[i] = raw[i] != 0 ? 1 : 0 }
                }
            }
        }
    }

    /// Encodes a float32 tensor as a complete `.npy` file (format version 1).
    public static func encode(_ tensor: Tensor<Float>) -> [UInt8] {
        var bytes = NpyHeader.encode(dtype: .float32, shape: tensor.shape)
        bytes.reserveCapacity(bytes.count + tensor.count * 4)
        for v in tensor.storage {
            withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    /// Writes a float32 tensor as a `.npy` file.
    public static func write(_ tensor: Tensor<Float>, to path: String) throws {
        do { try FileIO.writeAtomically(encode(tensor), to: path) } catch {
            throw NpyError(path: path, code: .writeFailed(errno: error.errno))
        }
    }
}
