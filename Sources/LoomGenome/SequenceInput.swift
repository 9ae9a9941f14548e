import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where rows come from, one column per field, so that `pandas.DataFrame(windows)` reads it.
public struct Windows: Codable, Sendable, Equatable {
    /// The record (chromosome) of each row.
    public var chrom: [String] = []
    /// The first base of each row's window, 0-based.
    public var start: [Int] = []
    /// One past its last base.
    public var end: [Int] = []
    /// The line of the BED file it came from (1-based), or the record's place in the FASTA (0-based) for `--x` records.
    public var line: [Int] = []

    public var count: Int { chrom.count }

    mutating func append(chrom: String, start: Int, end: Int, line: Int) {
        self.chrom.append(chrom)
        self.start.append(start)
        self.end.append(end)
        self.line.append(line)
    }
}

/// X read from a FASTA file, as the manifest records it: the files, the window, and where each row came from.
public struct SequenceSource: Codable, Sendable, Equatable {
    public var fasta: String
    /// The BED file the windows are centred on (nil: every record is a row).
    public var regions: String?
    public var length: Int
    public var summits: Bool
    /// The characters encoded as all zeros.
    public var ignore: String
    /// Row i of X (and of every result) is window i.
    public var windows: Windows
    /// Regions whose window falls off their chromosome, as the BED gives them: they have no row.
    public var dropped: Windows
}

/// X read from a FASTA file: one byte per position (``SequenceEncoder``'s codes), and where each row came from.
public struct SequenceInput: Sendable {
    /// `count × length` codes.
    public var codes: [UInt8]
    public var count: Int
    public var length: Int
    public var source: SequenceSource
    /// What the user should know: regions dropped, an index built.
    public var notes: [String]
}

/// How `--x FASTA` is read: tangermeme's `extract_loci` windows, from a FASTA read lazily.
public enum GenomeReader {
    /// Every record is one row: all of one length, or the centred `length`-bp window of each.
    ///
    /// The window of a record of `n` bases is extract_loci's window around the record's
    /// middle: it starts at `n/2 - length/2`. A record shorter than `length` is refused.
    public static func records(fasta: String, length: Int?, encoder: SequenceEncoder, ignore: String) throws(GenomeError) -> SequenceInput {
        var collector = RecordCollector(path: fasta, table: encoder.table)
        try FASTAScanner.scan(ByteStream(path: fasta, kind: FileKind.of(fasta)), into: &collector)
        let records = collector.records
        let w = length ?? records[0].codes.count
        for (i, r) in records.enumerated() {
            if length == nil, r.codes.count != w {
                throw GenomeError(
                    path: fasta, code: .unequalLengths(first: records[0].name, firstLength: w, record: r.name, index: i, length: r.codes.count))
            }
            if r.codes.count < w { throw GenomeError(path: fasta, code: .recordTooShort(record: r.name, index: i, length: r.codes.count, needed: w)) }
        }
        guard w > 0 else { throw GenomeError(path: fasta, code: .recordTooShort(record: records[0].name, index: 0, length: 0, needed: 1)) }
        var codes = [UInt8]()
        codes.reserveCapacity(records.count * w)
        var windows = Windows()
        for (i, r) in records.enumerated() {
            let start = r.codes.count / 2 - w / 2
            codes += r.codes[start..<(start + w)]
            windows.append(chrom: r.name, start: start, end: start + w, line: i)
        }
        return SequenceInput(
            codes: codes, count: records.count, length: w,
            source: SequenceSource(fasta: fasta, regions: nil, length: w, summits: false, ignore: ignore, windows: windows, dropped: Windows()),
            notes: [])
    }

    /// The `length`-bp window centred on each region of `bed`, as `extract_loci(bed, fasta, in_window: length, summits:)` cuts them.
    ///
    /// A region's middle is `start + (end - start) // 2` (with `summits`, `start + summit`),
    /// and its window `[middle - length/2, middle - length/2 + length)`. A window that falls
    /// off its chromosome is dropped, and said so; a region on a chromosome the FASTA lacks
    /// is an error, as in tangermeme. The FASTA is read through its `.fai` (and a bgzip
    /// file's `.gzi`) when they are there, one window at a time in file order, so a genome
    /// is never held in memory; without a `.fai` it is indexed first, by one pass.
    public static func regions(
        fasta: String, bed: String, length: Int, summits: Bool, encoder: SequenceEncoder, ignore: String
    ) throws(GenomeError) -> SequenceInput {
        let regions = try BEDFile.read(bed, summits: summits)
        let genome = try IndexedFASTA(fasta)
        var notes = genome.note.map { [$0] } ?? []
        let missing = Set(regions.map(\.chrom)).subtracting(genome.index.byName.keys).sorted()
        guard missing.isEmpty else { throw GenomeError(path: bed, code: .missingChromosomes(missing)) }

        let left = length / 2
        let right = length / 2 + length % 2
        var kept: [(region: Int, record: Int, start: Int)] = []
        var dropped = Windows()
        for (i, r) in regions.enumerated() {
            let record = genome.index.byName[r.chrom]!
            let mid = r.summit.map { r.start + $0 } ?? r.start + floorDivide(r.end - r.start, 2)
            if mid - left >= 0 && mid + right <= genome.index.records[record].length {
                kept.append((i, record, mid - left))
            } else {
                dropped.append(chrom: r.chrom, start: r.start, end: r.end, line: r.line)
            }
        }
        guard !kept.isEmpty else { throw GenomeError(path: bed, code: .noRegions(regions: regions.count, length: length)) }
        if dropped.count > 0 {
            let lines = dropped.line.prefix(8).map(String.init).joined(separator: ", ") + (dropped.count > 8 ? ", …" : "")
            notes.append(
                "\(dropped.count) of \(regions.count) regions of \(bed) dropped: their \(length)-bp windows fall off their chromosome, as extract_loci drops them (line\(dropped.count == 1 ? "" : "s") \(lines); all are listed in manifest.json)"
            )
        }

        // Read in file order, so that a compressed genome is inflated once, front to back.
        var codes = [UInt8](repeating: 0, count: kept.count * length)
        let order = kept.indices.sorted { (kept[$0].record, kept[$0].start) < (kept[$1].record, kept[$1].start) }
        try codes.withUnsafeMutableBufferPointer { (out: inout UnsafeMutableBufferPointer<UInt8>) throws(GenomeError) in
            for row in order {
                let k = kept[row]
                let r = regions[k.region]
                try genome.window(
                    record: k.record, start: k.start, length: length, table: encoder.table, into: out.baseAddress! + row * length,
                    region: "line \(r.line) of \(bed), \(r.chrom):\(r.start)-\(r.end)")
            }
        }
        var windows = Windows()
        for k in kept { windows.append(chrom: regions[k.region].chrom, start: k.start, end: k.start + length, line: regions[k.region].line) }
        return SequenceInput(
            codes: codes, count: kept.count, length: length,
            source: SequenceSource(fasta: fasta, regions: bed, length: length, summits: summits, ignore: ignore, windows: windows, dropped: dropped),
            notes: notes)
    }

    /// Python's `//`: rounds toward minus infinity.
    static func floorDivide(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}

/// A FASTA file opened for reading windows: its index, and its content by offset.
struct IndexedFASTA {
    let path: String
    let index: FASTAIndex
    let bytes: any RandomAccessBytes
    /// Said once: how the file is read, when it costs a pass.
    let note: String?

    init(_ path: String) throws(GenomeError) {
        self.path = path
        let kind = try FileKind.of(path)
        let fai = path + ".fai"
        if access(fai, F_OK) == 0 {
            index = try FASTAIndex.read(fai: fai)
            note = nil
        } else {
            index = try FASTAIndex.build(ByteStream(path: path, kind: kind))
            note =
                "\(path) has no .fai index: read it once to index it (samtools faidx \(path) writes one\(kind == .gzip ? " after bgzip recompresses it" : ""), and saves that pass)"
        }
        switch kind {
        case .plain:
            let file = try PlainFileBytes(path: path)
            for r in index.records where r.length > 0 && r.byteOffset(of: r.length - 1) >= file.size {
                throw GenomeError(path: fai, code: .staleIndex("record \(r.name) ends past the end of \(path) (\(file.size) bytes)"))
            }
            bytes = file
        case .bgzf:
            let gzi = path + ".gzi"
            bytes = CompressedBytes(path: path, kind: kind, blocks: access(gzi, F_OK) == 0 ? try CompressedBytes.readGZI(gzi) : [])
        case .gzip:
            bytes = CompressedBytes(path: path, kind: kind)
        }
    }

    /// Encodes `length` bases of record `record` from `start` into `out`.
    func window(record: Int, start: Int, length: Int, table: [UInt8], into out: UnsafeMutablePointer<UInt8>, region: String) throws(GenomeError) {
        let r = index.records[record]
        let first = r.byteOffset(of: start)
        let last = r.byteOffset(of: start + length - 1)
        let raw = try bytes.read(offset: first, count: last - first + 1)
        var k = 0
        for b in raw {
            if b == 0x0a || b == 0x0d { continue }
            let code = table[Int(b)]
            guard b != UInt8(ascii: ">"), k < length else { break }
            guard code != SequenceEncoder.invalid else {
                throw GenomeError(path: path, code: .badCharacter(record: r.name, position: start + k, character: b, region: region))
            }
            out[k] = code
            k += 1
        }
        guard k == length else {
            throw GenomeError(
                path: path + ".fai", code: .staleIndex("record \(r.name)'s bases \(start)..<\(start + length) are not where the index places them"))
        }
    }
}

/// The pass that reads every record's bases, encoded.
struct RecordCollector: FASTAScanHandler {
    let path: String
    let table: [UInt8]
    var records: [(name: String, codes: [UInt8])] = []

    init(path: String, table: [UInt8]) {
        self.path = path
        self.table = table
    }

    mutating func header(name: String, line: Int, sequenceOffset: Int) throws(GenomeError) {
        records.append((name, []))
    }

    mutating func bases(_ bytes: UnsafeBufferPointer<UInt8>) throws(GenomeError) {
        let i = records.count - 1
        for b in bytes {
            let code = table[Int(b)]
            if code == SequenceEncoder.skip { continue }
            guard code != SequenceEncoder.invalid else {
                throw GenomeError(path: path, code: .badCharacter(record: records[i].name, position: records[i].codes.count, character: b, region: nil))
            }
            records[i].codes.append(code)
        }
    }

    mutating func lineEnd(bases: Int, terminator: Int, line: Int) throws(GenomeError) {}
}
