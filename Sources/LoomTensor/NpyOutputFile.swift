#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A float32 `.npy` file of fixed shape, memory-mapped, filled row by row in any order.
///
/// The file is created at full size up front; rows are copied into their place in the
/// mapping, so a result larger than memory is written through the page cache. Call
/// ``flush()`` before declaring the file complete.
public final class NpyOutputFile: @unchecked Sendable {
    /// The file's path.
    public let path: String
    /// The array's shape.
    public let shape: [Int]
    /// Elements per row, a row being one example's output.
    public let rowElements: Int
    /// Where the data starts in the file.
    public let dataOffset: Int

    private let fd: Int32
    private let mapping: UnsafeMutableRawPointer?
    private let mappedLength: Int

    /// Creates (or replaces) the file at full size and maps it.
    ///
    /// - Parameters:
    ///   - rowAxes: how many leading axes index examples; the rest form one row.
    public init(path: String, shape: [Int], rowAxes: Int, reuseExisting: Bool = false) throws {
        self.path = path
        self.shape = shape
        self.rowElements = Array(shape.dropFirst(rowAxes)).elementCount
        let header = NpyHeader.encode(dtype: .float32, shape: shape)
        self.dataOffset = header.count
        let total = header.count + shape.elementCount * 4
        if reuseExisting {
            // Resume: the file must be exactly the one this job would create.
            let existing = try FileIO.readPrefix(path, count: header.count)
            var st = stat()
            guard existing == header, stat(path, &st) == 0, Int(st.st_size) == total else {
                throw NpyError(path: path, code: .badHeader("it does not hold the shape \(shape) this job writes; remove the folder or pass --overwrite"))
            }
        }
        let fd = open(path, O_RDWR | O_CREAT | (reuseExisting ? 0 : O_TRUNC) | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw NpyError(path: path, code: .writeFailed(errno: errno)) }
        self.fd = fd
        func fail() -> NpyError {
            let e = errno
            close(fd)
            return NpyError(path: path, code: .writeFailed(errno: e))
        }
        if !reuseExisting {
            guard ftruncate(fd, off_t(total)) == 0 else { throw fail() }
            let written = header.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            guard written == header.count else { throw fail() }
        }
        self.mappedLength = total
        let p = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let p, p != MAP_FAILED else { throw fail() }
        self.mapping = p
    }

    deinit {
        if let mapping { munmap(mapping, mappedLength) }
        close(fd)
    }

    /// Copies whole rows into place, starting at row `firstRow`.
    public func write(rows values: UnsafeBufferPointer<Float>, at firstRow: Int) {
        precondition(values.count % max(rowElements, 1) == 0, "a partial row was written to \(path)")
        let byteOffset = dataOffset + firstRow * rowElements * 4
        precondition(byteOffset + values.count * 4 <= mappedLength, "rows past the end of \(path)")
        guard let mapping, let src = values.baseAddress, values.count > 0 else { return }
        (mapping + byteOffset).copyMemory(from: src, byteCount: values.count * 4)
    }

    /// Copies whole rows given as raw float32 bytes (any alignment) into place, starting at row `firstRow`.
    public func write(rawRows bytes: UnsafeRawBufferPointer, at firstRow: Int) {
        precondition(bytes.count % max(rowElements * 4, 1) == 0, "a partial row was written to \(path)")
        let byteOffset = dataOffset + firstRow * rowElements * 4
        precondition(byteOffset + bytes.count <= mappedLength, "rows past the end of \(path)")
        guard let mapping, let src = bytes.baseAddress, bytes.count > 0 else { return }
        (mapping + byteOffset).copyMemory(from: src, byteCount: bytes.count)
    }

    /// Reads rows back, for resume and for checks.
    public func read(rows count: Int, at firstRow: Int) -> [Float] {
        let n = count * rowElements
        let byteOffset = dataOffset + firstRow * rowElements * 4
        precondition(byteOffset + n * 4 <= mappedLength)
        guard let mapping else { return [] }
        return Array(UnsafeBufferPointer(start: (mapping + byteOffset).assumingMemoryBound(to: Float.self), count: n))
    }

    /// Writes every dirty page to disk (msync, then fsync).
    public func flush() throws {
        if let mapping, msync(mapping, mappedLength, MS_SYNC) != 0 {
            throw NpyError(path: path, code: .writeFailed(errno: errno))
        }
        guard fsync(fd) == 0 else { throw NpyError(path: path, code: .writeFailed(errno: errno)) }
    }
}
