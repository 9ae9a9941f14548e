#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LoomTensor

/// The durable record of completed shards, beside the result files: what makes a job resumable.
///
/// A shard is recorded only after its rows are on disk (the result files are msync'ed
/// first), and the record is fsync'ed before the shard is acknowledged, so after a crash at
/// any instant every shard in the journal is complete in the files. Rows written but not yet
/// recorded are simply computed again, with the same bits.
///
/// Format: `LOOMJRNL`, the 64-character job id, then 8-byte records (u32 shard, u32 shard
/// XOR 0xA5A5A5A5), little-endian. A torn or corrupt tail is ignored.
public final class Journal {
    public static let fileName = "journal.loom"
    static let magic = Array("LOOMJRNL".utf8)

    public let path: String
    private let fd: Int32
    /// The shards recorded, including those found when the journal was opened.
    public private(set) var recorded: Set<Int>
    /// The shards found when the journal was opened (a resumed job).
    public let resumed: [Int]

    /// Opens (or creates) the journal of job `jobID` in `directory`.
    ///
    /// A journal of another job is an error (the folder's claim should have prevented it).
    public init(directory: String, jobID: String, layout: [(index: [Int], exampleShape: [Int])]? = nil) throws {
        path = directory + "/" + Self.fileName
        let existing = (try? FileIO.readAll(path)) ?? []
        let header = Self.magic + Array(jobID.utf8)
        var shards: [Int] = []
        var keep = 0
        if existing.count >= header.count && Array(existing[0..<header.count]) == header {
            var offset = header.count
            while offset + 8 <= existing.count {
                let a = existing[offset..<offset + 4].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
                let b = existing[offset + 4..<offset + 8].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
                guard a ^ 0xA5A5_A5A5 == b else { break }
                shards.append(Int(a))
                offset += 8
            }
            keep = offset
        } else if !existing.isEmpty {
            throw FileError(path: path, operation: "resume from (it belongs to another job)", errno: EINVAL)
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
        self.fd = fd
        if keep == 0 {
            guard ftruncate(fd, 0) == 0, header.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, 0) }) == header.count,
                  fsync(fd) == 0 else { throw FileError(path: path, operation: "write", errno: errno) }
            FileIO.syncDirectory(of: path)
        } else if keep < existing.count {
            _ = ftruncate(fd, off_t(keep))   // drop a torn tail
        }
        lseek(fd, 0, SEEK_END)
        recorded = Set(shards)
        resumed = shards
    }

    deinit { close(fd) }

    /// Appends shards and fsyncs. Call only once their rows are durable.
    public func record(_ shards: [Int]) throws {
        let fresh = shards.filter { !recorded.contains($0) }
        guard !fresh.isEmpty else { return }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(fresh.count * 8)
        for s in fresh {
            let a = UInt32(s), b = UInt32(s) ^ 0xA5A5_A5A5
            for v in [a, b] { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 { if errno == EINTR { continue }; throw FileError(path: path, operation: "append to", errno: errno) }
            offset += n
        }
        guard fsync(fd) == 0 else { throw FileError(path: path, operation: "fsync", errno: errno) }
        recorded.formUnion(fresh)
    }

    /// The leaves' layout, kept beside the journal so a resumed job can reopen the result files.
    public struct Layout: Codable, Sendable, Equatable {
        public var leaves: [Leaf]
        public struct Leaf: Codable, Sendable, Equatable {
            public var index: [Int]
            public var exampleShape: [Int]
        }
    }

    public static let layoutFile = "layout.json"

    /// Writes the layout (once, when the result files are created).
    public static func writeLayout(_ layout: Layout, directory: String) throws {
        try FileIO.writeAtomically(Array(try JSONEncoder().encode(layout)), to: directory + "/" + layoutFile)
    }

    /// Reads the layout of a folder being resumed.
    public static func readLayout(directory: String) -> Layout? {
        guard let bytes = try? FileIO.readAll(directory + "/" + layoutFile) else { return nil }
        return try? JSONDecoder().decode(Layout.self, from: Data(bytes))
    }
}
