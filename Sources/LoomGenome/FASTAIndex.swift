import LoomTensor

/// Where each record's bases lie in a FASTA file's content: a `.fai` index, read or built.
public struct FASTAIndex: Sendable, Equatable {
    /// One record: its name, length, the content offset of its first base, and its line layout.
    public struct Record: Sendable, Equatable {
        public var name: String
        public var length: Int
        public var offset: Int
        /// Bases per full line.
        public var lineBases: Int
        /// Bytes per full line, its line end included.
        public var lineBytes: Int

        /// The content offset of base `position`.
        func byteOffset(of position: Int) -> Int {
            lineBases == 0 ? offset : offset + (position / lineBases) * lineBytes + position % lineBases
        }
    }

    public var records: [Record]
    /// Each record's place in `records`, by name.
    public var byName: [String: Int]

    init(records: [Record], path: String) throws(GenomeError) {
        self.records = records
        byName = [:]
        for (i, r) in records.enumerated() {
            guard byName.updateValue(i, forKey: r.name) == nil else { throw GenomeError(path: path, code: .duplicateRecord(r.name)) }
        }
    }

    /// Reads a `.fai` file (name, length, offset, line bases, line bytes, tab-separated), checking every field.
    public static func read(fai path: String) throws(GenomeError) -> FASTAIndex {
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path) } catch { throw GenomeError(error) }
        var records: [Record] = []
        for (k, line) in bytes.split(separator: 0x0a, omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let fields = line.split(separator: 0x09, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            guard fields.count >= 5 else {
                throw GenomeError(path: path, code: .badIndex(line: k + 1, "a .fai line has 5 tab-separated fields, this one has \(fields.count)"))
            }
            var numbers: [Int] = []
            for (field, what) in zip(fields[1...4], ["length", "offset", "line bases", "line bytes"]) {
                guard let v = Int(field), v >= 0, v < 1 << 50 else {
                    throw GenomeError(path: path, code: .badIndex(line: k + 1, "its \(what) '\(field)' is not a count"))
                }
                numbers.append(v)
            }
            let r = Record(name: fields[0], length: numbers[0], offset: numbers[1], lineBases: numbers[2], lineBytes: numbers[3])
            guard r.lineBytes > r.lineBases || (r.lineBases == 0 && r.length == 0), r.lineBases > 0 || r.length == 0 else {
                throw GenomeError(path: path, code: .badIndex(line: k + 1, "\(r.lineBases) bases in \(r.lineBytes)-byte lines"))
            }
            records.append(r)
        }
        return try FASTAIndex(records: records, path: path)
    }

    /// Builds the index with one pass over the file's content, as `samtools faidx` does.
    static func build(_ stream: ByteStream) throws(GenomeError) -> FASTAIndex {
        var builder = Builder(path: stream.path)
        try FASTAScanner.scan(stream, into: &builder)
        builder.finish()
        return try FASTAIndex(records: builder.records, path: stream.path)
    }

    /// The pass that builds an index: record offsets and line layouts, refusing lines an index cannot describe.
    struct Builder: FASTAScanHandler {
        let path: String
        var records: [Record] = []
        var current: Record?
        /// A line shorter than the record's first was seen: only empty lines may follow.
        var shortSeen = false
        var firstLine = 0

        init(path: String) { self.path = path }

        mutating func finish() {
            if let current { records.append(current) }
            current = nil
        }

        mutating func header(name: String, line: Int, sequenceOffset: Int) throws(GenomeError) {
            finish()
            current = Record(name: name, length: 0, offset: sequenceOffset, lineBases: 0, lineBytes: 0)
            shortSeen = false
        }

        mutating func bases(_ bytes: UnsafeBufferPointer<UInt8>) throws(GenomeError) {}

        mutating func lineEnd(bases: Int, terminator: Int, line: Int) throws(GenomeError) {
            guard var r = current else { return }
            if bases == 0 {
                if r.length > 0 { shortSeen = true }
                return
            }
            if r.lineBases == 0 {
                r.lineBases = bases
                r.lineBytes = bases + max(terminator, 1)
            } else if shortSeen || bases > r.lineBases {
                throw GenomeError(path: path, code: .raggedLines(record: r.name, line: line))
            } else if bases < r.lineBases {
                shortSeen = true
            }
            r.length += bases
            current = r
        }
    }
}
