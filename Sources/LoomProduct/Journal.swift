import FoundationEssentials
import LoomTensor

#if canImport(Glibc)
    import Glibc
#endif

/// The durable record of completed shards, beside the result files: what makes a job resumable.
///
/// A shard is recorded only after its rows are on disk (the result files are synced first), and
/// the record is fsync'ed before the shard is acknowledged, so after a crash at any instant every
/// shard in the journal is complete in the files. Rows written but not yet recorded are simply
/// computed again, with the same bits.
///
/// Format (version 2): `LOOMJRN2`, the 64-character job id, then 40-byte records: u32 shard,
/// u32 shard XOR 0xA5A5A5A5 (a torn record fails it), and the 32-byte SHA-256 of the shard's
/// rows in the result files, bound to the job id (``ResultWriter/digest(rows:job:)``). On resume
/// each journaled shard's rows are read back and checked against it; a shard that fails is
/// computed again. A record whose digest is all zeros revokes the shard's earlier records (its rows
/// came from a quarantined worker, `--verify`): it is computed again. A torn or corrupt tail is ignored. A version-1 journal (`LOOMJRNL`, no
/// digests) is not trusted: the job starts over.
public final class Journal {
    public static let fileName = "journal.loom"
    static let magic = Array("LOOMJRN2".utf8)
    static let legacyMagic = Array("LOOMJRNL".utf8)
    static let recordSize = 40
    /// The digest of a revocation record.
    static let revoked = [UInt8](repeating: 0, count: 32)

    public let path: String
    private let fd: Int32
    /// The shards recorded, including those found when the journal was opened.
    public private(set) var recorded: Set<Int>
    /// The shards found when the journal was opened (a resumed job), in order, with their digests (the last record of a shard wins).
    public let found: [(shard: Int, digest: [UInt8])]
    /// Whether the journal found was a version-1 journal, set aside.
    public let discardedLegacy: Bool

    /// The shards found when the journal was opened.
    public var resumed: [Int] { found.map(\.shard) }

    /// Opens (or creates) the journal of job `jobID` in `directory`.
    ///
    /// A journal of another job is an error (the folder's claim should have prevented it).
    public init(directory: String, jobID: String) throws {
        path = directory + "/" + Self.fileName
        let existing = (try? FileIO.readAll(path)) ?? []
        let header = Self.magic + Array(jobID.utf8)
        var entries: [Int: [UInt8]] = [:]
        var order: [Int] = []
        var keep = 0
        var legacy = false
        if existing.count >= header.count && Array(existing[0..<header.count]) == header {
            var offset = header.count
            while offset + Self.recordSize <= existing.count {
                let a = existing[offset..<offset + 4].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
                let b = existing[offset + 4..<offset + 8].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
                guard a ^ 0xA5A5_A5A5 == b else { break }
                if entries[Int(a)] == nil { order.append(Int(a)) }
                entries[Int(a)] = Array(existing[offset + 8..<offset + Self.recordSize])
                offset += Self.recordSize
            }
            keep = offset
            for (s, digest) in entries where digest == Self.revoked { entries[s] = nil }
            order.removeAll { entries[$0] == nil }
        } else if existing.count >= Self.legacyMagic.count && Array(existing[0..<Self.legacyMagic.count]) == Self.legacyMagic {
            legacy = true
        } else if !existing.isEmpty {
            throw FileError(path: path, operation: "resume from (it belongs to another job)", errno: EINVAL)
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
        self.fd = fd
        if keep == 0 {
            guard ftruncate(fd, 0) == 0, header.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, 0) }) == header.count,
                fsync(fd) == 0
            else { throw FileError(path: path, operation: "write", errno: errno) }
            FileIO.syncDirectory(of: path)
        } else if keep < existing.count {
            _ = ftruncate(fd, off_t(keep)) // drop a torn tail
        }
        lseek(fd, 0, SEEK_END)
        found = order.map { ($0, entries[$0]!) }
        recorded = Set(order)
        discardedLegacy = legacy
    }

    deinit { close(fd) }

    /// The records of the journal in `directory` for job `jobID`, read only (for `loom verify`);
    /// nil if there is no version-2 journal of that job.
    public static func records(directory: String, jobID: String) -> [(shard: Int, digest: [UInt8])]? {
        guard let existing = try? FileIO.readAll(directory + "/" + fileName) else { return nil }
        let header = magic + Array(jobID.utf8)
        guard existing.count >= header.count, Array(existing[0..<header.count]) == header else { return nil }
        var out: [(Int, [UInt8])] = []
        var offset = header.count
        while offset + recordSize <= existing.count {
            let a = existing[offset..<offset + 4].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            let b = existing[offset + 4..<offset + 8].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            guard a ^ 0xA5A5_A5A5 == b else { break }
            let digest = Array(existing[offset + 8..<offset + recordSize])
            if digest == revoked { out.removeAll { $0.0 == Int(a) } } else { out.append((Int(a), digest)) }
            offset += recordSize
        }
        return out
    }

    /// Forgets shards found on resume whose rows failed their check: they will be recorded again.
    public func forget(_ shards: [Int]) { recorded.subtract(shards) }

    /// Revokes recorded shards, durably: they are to be written and recorded again.
    public func revoke(_ shards: [Int]) throws {
        let known = shards.filter { recorded.contains($0) }
        guard !known.isEmpty else { return }
        try append(known.map { ($0, Self.revoked) })
        recorded.subtract(known)
    }

    /// Appends shards with their digests and fsyncs. Call only once their rows are durable.
    public func record(_ entries: [(shard: Int, digest: [UInt8])]) throws {
        let fresh = entries.filter { !recorded.contains($0.shard) }
        guard !fresh.isEmpty else { return }
        try append(fresh)
        recorded.formUnion(fresh.map(\.shard))
    }

    private func append(_ fresh: [(shard: Int, digest: [UInt8])]) throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(fresh.count * Self.recordSize)
        for (s, digest) in fresh {
            precondition(digest.count == 32, "a shard's digest is 32 bytes")
            let a = UInt32(s), b = UInt32(s) ^ 0xA5A5_A5A5
            for v in [a, b] { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
            bytes.append(contentsOf: digest)
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 { if errno == EINTR { continue }; throw FileError(path: path, operation: "append to", errno: errno) }
            offset += n
        }
        guard fsync(fd) == 0 else { throw FileError(path: path, operation: "fsync", errno: errno) }
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
