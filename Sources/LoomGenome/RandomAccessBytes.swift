import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file's content, read by offset: the bases of a FASTA file that an index places.
protocol RandomAccessBytes: AnyObject {
    /// `count` bytes of the content from `offset` (fewer at its end).
    func read(offset: Int, count: Int) throws(GenomeError) -> [UInt8]
}

/// A plain file, read with `pread`.
final class PlainFileBytes: RandomAccessBytes {
    let path: String
    let fd: Int32
    let size: Int

    init(path: String) throws(GenomeError) {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GenomeError(path: path, code: .io(operation: "open", errno: errno)) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            throw GenomeError(path: path, code: .io(operation: "stat", errno: e))
        }
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    func read(offset: Int, count: Int) throws(GenomeError) -> [UInt8] {
        do { return try FileIO.read(fd, count: count, at: offset) } catch { throw GenomeError(path: path, code: .io(operation: "read", errno: error.code)) }
    }
}

/// A gzip or BGZF file's content, read by offset.
///
/// The content is inflated forward from the nearest block at or before the offset
/// (BGZF with its `.gzi`: every block; gzip: only the file's start), and what was
/// inflated from the last offset read onwards is kept, so reads in increasing order
/// (windows sorted by position, as ``FASTAWindowReader`` asks for them) inflate each
/// block about once.
final class CompressedBytes: RandomAccessBytes {
    let path: String
    let kind: FileKind
    /// (offset in the file, offset in the content) of each block start, sorted; (0, 0) first.
    let blocks: [(stored: Int, content: Int)]
    private var stream: ByteStream?
    /// Inflated bytes from content offset `base`.
    private var buffer: [UInt8] = []
    private var base = 0
    /// A jump forward further than this re-opens the stream at a block instead of inflating through.
    static let seekDistance = 4 << 20

    init(path: String, kind: FileKind, blocks: [(stored: Int, content: Int)] = []) {
        self.path = path
        self.kind = kind
        self.blocks = [(0, 0)] + blocks
    }

    /// Reads a `.gzi` index: a little-endian count, then (compressed, uncompressed) offset pairs of every block after the first.
    static func readGZI(_ path: String) throws(GenomeError) -> [(stored: Int, content: Int)] {
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path) } catch { throw GenomeError(error) }
        func word(_ i: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[i + $1]) << (8 * $1) } }
        guard bytes.count >= 8 else { throw GenomeError(path: path, code: .badIndex(line: 1, "a .gzi index is at least 8 bytes; this one has \(bytes.count)")) }
        let count = word(0)
        guard count <= UInt64((bytes.count - 8) / 16), bytes.count == 8 + Int(count) * 16 else {
            throw GenomeError(path: path, code: .badIndex(line: 1, "it promises \(count) blocks but holds \(bytes.count) bytes"))
        }
        var out: [(stored: Int, content: Int)] = []
        var last: (UInt64, UInt64) = (0, 0)
        for k in 0..<Int(count) {
            let (c, u) = (word(8 + 16 * k), word(16 + 16 * k))
            guard c > last.0, u > last.1, c < UInt64(Int.max), u < UInt64(Int.max) else {
                throw GenomeError(path: path, code: .badIndex(line: k + 1, "block \(k + 1)'s offsets (\(c), \(u)) do not increase"))
            }
            last = (c, u)
            out.append((Int(c), Int(u)))
        }
        return out
    }

    func read(offset: Int, count: Int) throws(GenomeError) -> [UInt8] {
        let end = offset + count
        if stream == nil || offset < base {
            try seek(to: offset)
        } else if offset > base + buffer.count + Self.seekDistance, blocks[block(before: offset)].content > base + buffer.count {
            // Far ahead, past a block the index can jump to.
            try seek(to: offset)
        }
        // Keep only what is at or after `offset`; the buffer is compacted when most of it is behind.
        let drop = offset - base
        if drop > 0 {
            if drop >= buffer.count {
                base += buffer.count
                buffer.removeAll(keepingCapacity: true)
                try skip(to: offset)
            } else if drop > buffer.count / 2 {
                buffer.removeFirst(drop)
                base = offset
            }
        }
        while base + buffer.count < end {
            let piece = try stream!.next()
            if piece.isEmpty { break }
            buffer += piece
        }
        let from = offset - base
        let to = min(buffer.count, end - base)
        return from < to ? Array(buffer[from..<to]) : []
    }

    private func seek(to offset: Int) throws(GenomeError) {
        let lo = block(before: offset)
        stream = try ByteStream(path: path, kind: kind, at: blocks[lo].stored)
        base = blocks[lo].content
        buffer.removeAll(keepingCapacity: true)
        try skip(to: offset)
    }

    /// The last block that starts at or before content offset `offset`.
    private func block(before offset: Int) -> Int {
        var lo = 0
        var hi = blocks.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if blocks[mid].content <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// Inflates up to content offset `offset`, dropping what comes before it (the buffer is empty, at `base`).
    private func skip(to offset: Int) throws(GenomeError) {
        while base + buffer.count < offset {
            let piece = try stream!.next()
            if piece.isEmpty { break }
            buffer += piece
            if base + buffer.count <= offset {
                base += buffer.count
                buffer.removeAll(keepingCapacity: true)
            }
        }
    }
}
