import LoomTensor

/// Why a FASTA, BED or index file could not be read, or its regions could not be cut: the file, the line or record, and what to do.
public struct GenomeError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, in categories a caller can act on.
    public enum Code: Sendable, Equatable {
        /// A system call failed.
        case io(operation: String, errno: Int32)
        /// The file is neither FASTA nor gzip/BGZF-compressed FASTA.
        case notFASTA(String)
        /// The compressed stream is corrupt or truncated.
        case corrupt(String)
        /// A line of a `.fai` or the `.gzi` cannot be read.
        case badIndex(line: Int, String)
        /// The index does not describe the file (stale, or for another file).
        case staleIndex(String)
        /// The FASTA's lines are not laid out as an index needs (every line of a record but its last one the same length).
        case raggedLines(record: String, line: Int)
        /// Two records have one name.
        case duplicateRecord(String)
        /// A BED line cannot be read.
        case badRegion(line: Int, String)
        /// Regions name chromosomes the FASTA does not have.
        case missingChromosomes([String])
        /// A base is neither in the alphabet nor ignored.
        case badCharacter(record: String, position: Int, character: UInt8, region: String?)
        /// No region's window fits on its chromosome.
        case noRegions(regions: Int, length: Int)
        /// A record is shorter than `--length`.
        case recordTooShort(record: String, index: Int, length: Int, needed: Int)
        /// Records of different lengths without `--length`.
        case unequalLengths(first: String, firstLength: Int, record: String, index: Int, length: Int)
        /// The file holds no records.
        case empty
    }

    /// The file at fault.
    public var path: String
    /// What went wrong.
    public var code: Code

    public init(path: String, code: Code) {
        self.path = path
        self.code = code
    }

    init(_ error: FileError) {
        self.init(path: error.path, code: .io(operation: error.operation, errno: error.errno))
    }

    public var description: String {
        let why: String
        switch code {
        case .io(let operation, let e):
            why = "cannot \(operation) (\(FileError(path: path, operation: operation, errno: e).reason))"
        case .notFASTA(let s): why = "not a FASTA file (\(s)); --x takes a .npy file, or a FASTA file, plain, gzip or bgzip"
        case .corrupt(let s): why = "corrupt compressed data (\(s)); check the file with gzip -t"
        case .badIndex(let line, let s): why = "line \(line): \(s); delete the index to have Loom read the FASTA without it, or rebuild it with samtools faidx"
        case .staleIndex(let s): why = "\(s): the index is stale or for another file; rebuild it with samtools faidx (or delete it)"
        case .raggedLines(let record, let line):
            why =
                "record \(record): line \(line) has a different length from the record's earlier lines, so its bases cannot be indexed (as samtools and pyfaidx refuse it); rewrap it, e.g. with seqkit seq -w 60"
        case .duplicateRecord(let name): why = "two records are named \(name); regions could not tell them apart"
        case .badRegion(let line, let s): why = "line \(line): \(s)"
        case .missingChromosomes(let names):
            let shown = names.prefix(10).joined(separator: ", ") + (names.count > 10 ? ", … (\(names.count) in all)" : "")
            why = "regions are on chromosomes the FASTA does not have: \(shown); check that the names match (chr1 or 1), or remove those regions"
        case .badCharacter(let record, let position, let c, let region):
            let shown = c >= 0x21 && c < 0x7f ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x\(String(c, radix: 16))"
            let place = region.map { " (the window of \($0))" } ?? ""
            why =
                "record \(record), position \(position)\(place): \(shown) is neither in the alphabet nor ignored, as tangermeme refuses it; add it to --ignore to encode it as all zeros"
        case .noRegions(let regions, let length):
            why = "none of its \(regions) region\(regions == 1 ? "" : "s") has a \(length)-bp window that fits on its chromosome; nothing to compute"
        case .recordTooShort(let record, let index, let length, let needed):
            why = "record \(index) (\(record)) has \(length) bases, fewer than --length \(needed)"
        case .unequalLengths(let first, let firstLength, let record, let index, let length):
            why =
                "record \(index) (\(record)) has \(length) bases, but record 0 (\(first)) has \(firstLength); the sequences of X share one length: pass --length to take a centred window of each"
        case .empty: why = "it holds no FASTA records"
        }
        return "\(path): \(why)"
    }
}
