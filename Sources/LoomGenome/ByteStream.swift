import CZlib
import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a file's bytes are stored.
public enum FileKind: Sendable, Equatable {
    case plain
    /// gzip: read from the start only.
    case gzip
    /// BGZF (bgzip): gzip members that a `.gzi` index can seek to.
    case bgzf

    /// Sniffs the first bytes of `path`: the gzip magic, and BGZF's `BC` extra field.
    public static func of(_ path: String) throws(GenomeError) -> FileKind {
        let head: [UInt8]
        do { head = try FileIO.readPrefix(path, count: 18) } catch { throw GenomeError(error) }
        guard head.count >= 3, head[0] == 0x1f, head[1] == 0x8b else { return .plain }
        if head.count >= 16, head[3] & 4 != 0, head[12] == UInt8(ascii: "B"), head[13] == UInt8(ascii: "C") { return .bgzf }
        return .gzip
    }
}

/// A file's bytes from a given offset to its end, in pieces, inflated on the way when the file is gzip or BGZF.
///
/// A gzip file may hold several members (BGZF always does): each is inflated in turn.
/// Memory stays at two buffers, whatever the file's size.
final class ByteStream {
    let path: String
    private let fd: Int32
    private var offset: Int
    private let inflating: Bool
    private var z = z_stream()
    private var zOpen = false
    private let input: UnsafeMutablePointer<UInt8>
    private var inputAtEOF = false
    private var memberDone = false
    private var finished = false
    static let pieceSize = 1 << 20

    /// Opens `path` at byte `offset` of the file as stored (for BGZF, the start of a block).
    init(path: String, kind: FileKind, at offset: Int = 0) throws(GenomeError) {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GenomeError(path: path, code: .io(operation: "open", errno: errno)) }
        self.offset = offset
        inflating = kind != .plain
        input = .allocate(capacity: Self.pieceSize)
        if inflating {
            guard inflateInit2_(&z, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                close(fd)
                input.deallocate()
                throw GenomeError(path: path, code: .corrupt("zlib could not start"))
            }
            zOpen = true
        }
    }

    deinit {
        if zOpen { inflateEnd(&z) }
        input.deallocate()
        close(fd)
    }

    /// The next bytes of the content, or an empty array at its end.
    func next() throws(GenomeError) -> [UInt8] {
        if finished { return [] }
        if !inflating {
            let piece: [UInt8]
            do { piece = try FileIO.read(fd, count: Self.pieceSize, at: offset) } catch {
                throw GenomeError(path: path, code: .io(operation: "read", errno: error.code))
            }
            offset += piece.count
            if piece.isEmpty { finished = true }
            return piece
        }
        return try inflateNext()
    }

    private func refill() throws(GenomeError) {
        let got: Int
        do {
            let piece = try FileIO.read(fd, count: Self.pieceSize, at: offset)
            got = piece.count
            piece.withUnsafeBufferPointer { input.update(from: $0.baseAddress!, count: got) }
        } catch { throw GenomeError(path: path, code: .io(operation: "read", errno: error.code)) }
        offset += got
        z.next_in = input
        z.avail_in = uInt(got)
        if got == 0 { inputAtEOF = true }
    }

    private func inflateNext() throws(GenomeError) -> [UInt8] {
        let capacity = Self.pieceSize
        var failure: GenomeError?
        let out = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, produced in
            produced = 0
            while produced < capacity && failure == nil {
                if z.avail_in == 0 && !inputAtEOF {
                    do { try refill() } catch {
                        failure = error as? GenomeError ?? GenomeError(path: path, code: .corrupt("\(error)"))
                        break
                    }
                }
                if memberDone {
                    // Between members: the rest must be another gzip member, or nothing.
                    if z.avail_in == 0 && inputAtEOF {
                        finished = true
                        break
                    }
                    if z.next_in[0] != 0x1f {
                        failure = GenomeError(path: path, code: .corrupt("bytes after the last gzip member are not gzip"))
                        break
                    }
                    inflateReset(&z)
                    memberDone = false
                }
                if z.avail_in == 0 && inputAtEOF {
                    failure = GenomeError(path: path, code: .corrupt("truncated: the file ends inside a gzip member"))
                    break
                }
                z.next_out = buffer.baseAddress! + produced
                z.avail_out = uInt(capacity - produced)
                let status = inflate(&z, Z_NO_FLUSH)
                produced = capacity - Int(z.avail_out)
                switch status {
                case Z_OK, Z_BUF_ERROR: continue
                case Z_STREAM_END: memberDone = true
                default:
                    let message = z.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    failure = GenomeError(path: path, code: .corrupt(message))
                }
            }
        }
        if let failure { throw failure }
        return out
    }
}
