import CLoomSystem

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A float32 `.npy` file of fixed shape, filled row by row in any order.
///
/// The file is created at full size up front, its blocks reserved (so a full disk is
/// reported when the job starts, not hours into it), and rows are written in place with
/// `pwrite` through the page cache, so a result larger than memory is fine. Writing with
/// `pwrite` rather than into a shared mapping means an I/O error or a full disk is an error
/// value naming the file, never a SIGBUS, and costs no page fault per 4 KB page. Call
/// ``flush()`` before declaring rows complete.
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
    private let length: Int

    /// Creates (or replaces) the file at full size.
    ///
    /// - Parameters:
    ///   - rowAxes: how many leading axes index examples; the rest form one row.
    ///   - reuseExisting: open the file of an interrupted run of the same job instead (resume).
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
        self.length = total
        func fail(_ e: Int32 = errno) -> NpyError {
            close(fd)
            return NpyError(path: path, code: .writeFailed(errno: e))
        }
        if !reuseExisting {
            guard ftruncate(fd, off_t(total)) == 0 else { throw fail() }
            // Reserve the blocks now. Filesystems that cannot (EOPNOTSUPP) keep a sparse file.
            if loom_reserve_blocks(fd, off_t(total)) == ENOSPC { throw fail(ENOSPC) }
            let written = header.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            guard written == header.count else { throw fail() }
        }
    }

    deinit { close(fd) }

    /// Writes whole rows in place, starting at row `firstRow`.
    public func write(rows values: UnsafeBufferPointer<Float>, at firstRow: Int) throws {
        try write(rawRows: UnsafeRawBufferPointer(values), at: firstRow)
    }

    /// Writes whole rows given as raw float32 bytes (any alignment) in place, starting at row `firstRow`.
    public func write(rawRows bytes: UnsafeRawBufferPointer, at firstRow: Int) throws {
        precondition(bytes.count % max(rowElements * 4, 1) == 0, "a partial row was written to \(path)")
        let byteOffset = dataOffset + firstRow * rowElements * 4
        precondition(byteOffset + bytes.count <= length, "rows past the end of \(path)")
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, base + done, bytes.count - done, off_t(byteOffset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw NpyError(path: path, code: .writeFailed(errno: errno))
            }
            done += n
        }
    }

    /// Reads rows back as bytes, as they are in the file (for checksums).
    public func readRaw(rows count: Int, at firstRow: Int) throws -> [UInt8] {
        let n = count * rowElements * 4
        let byteOffset = dataOffset + firstRow * rowElements * 4
        guard byteOffset + n <= length else { throw NpyError(path: path, code: .truncated(expected: byteOffset + n, actual: length)) }
        let bytes: [UInt8]
        do { bytes = try FileIO.read(fd, count: n, at: byteOffset) } catch { throw NpyError(path: path, code: .readFailed(errno: error.code)) }
        guard bytes.count == n else { throw NpyError(path: path, code: .truncated(expected: length, actual: byteOffset + bytes.count)) }
        return bytes
    }

    /// Reads rows back (for checks).
    public func read(rows count: Int, at firstRow: Int) throws -> [Float] {
        let n = count * rowElements
        let byteOffset = dataOffset + firstRow * rowElements * 4
        precondition(byteOffset + n * 4 <= length)
        let bytes: [UInt8]
        do { bytes = try FileIO.read(fd, count: n * 4, at: byteOffset) } catch { throw NpyError(path: path, code: .readFailed(errno: error.code)) }
        guard bytes.count == n * 4 else { throw NpyError(path: path, code: .truncated(expected: length, actual: byteOffset + bytes.count)) }
        return [Float](unsafeUninitializedCapacity: n) { out, count in
            bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(out).copyMemory(from: $0) }
            count = n
        }
    }

    /// Makes every row written so far durable (fdatasync).
    public func flush() throws {
        while fdatasync(fd) != 0 {
            if errno == EINTR { continue }
            throw NpyError(path: path, code: .writeFailed(errno: errno))
        }
    }
}
