#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a pass over a FASTA file reports, line by line.
protocol FASTAScanHandler {
    /// A `>` line: the record's name (the header up to its first space or tab), and the content offset of its first base line.
    mutating func header(name: String, line: Int, sequenceOffset: Int) throws(GenomeError)
    /// Bytes of a base line (a line may come in several pieces; a `\r` before its `\n` is included).
    mutating func bases(_ bytes: UnsafeBufferPointer<UInt8>) throws(GenomeError)
    /// The end of a base line: its bases (without `\r`) and the bytes of its line end (0 at the end of the file).
    mutating func lineEnd(bases: Int, terminator: Int, line: Int) throws(GenomeError)
}

/// One pass over a FASTA file's content, from start to end, in constant memory.
enum FASTAScanner {
    /// The longest header kept; the name is its first word, so more is never needed.
    static let maxHeader = 1 << 16

    static func scan<H: FASTAScanHandler>(_ stream: ByteStream, into handler: inout H) throws(GenomeError) {
        var atLineStart = true
        var inHeader = false
        var header: [UInt8] = []
        var lineBases = 0
        var lastByte: UInt8 = 0
        var line = 1
        var offset = 0
        var sawHeader = false

        func endLine(terminator: Int, handler: inout H) throws(GenomeError) {
            if inHeader {
                if header.last == UInt8(ascii: "\r") { header.removeLast() }
                let name = header.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 }).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
                try handler.header(name: name, line: line, sequenceOffset: offset)
                sawHeader = true
            } else {
                let cr = lineBases > 0 && lastByte == UInt8(ascii: "\r")
                let bases = lineBases - (cr ? 1 : 0)
                try handler.lineEnd(bases: bases, terminator: terminator + (cr ? 1 : 0), line: line)
            }
            lineBases = 0
            line += 1
        }

        while true {
            let piece = try stream.next()
            if piece.isEmpty { break }
            try piece.withUnsafeBufferPointer { (p: UnsafeBufferPointer<UInt8>) throws(GenomeError) in
                let base = p.baseAddress!
                var i = 0
                while i < p.count {
                    if atLineStart {
                        atLineStart = false
                        inHeader = base[i] == UInt8(ascii: ">")
                        if inHeader {
                            header.removeAll(keepingCapacity: true)
                            i += 1
                            offset += 1
                            continue
                        }
                    }
                    let found = memchr(base + i, 0x0a, p.count - i)
                    let end = found.map { UnsafeRawPointer($0) - UnsafeRawPointer(base) } ?? p.count
                    if inHeader {
                        if header.count < maxHeader {
                            header.append(contentsOf: UnsafeBufferPointer(start: base + i, count: min(end - i, maxHeader - header.count)))
                        }
                    } else if end > i {
                        guard sawHeader || (end - i == 1 && base[i] == 0x0d) else {
                            throw GenomeError(path: stream.path, code: .notFASTA("line \(line) comes before the first '>' header"))
                        }
                        try handler.bases(UnsafeBufferPointer(start: base + i, count: end - i))
                        lineBases += end - i
                        lastByte = base[end - 1]
                    }
                    offset += end - i
                    if found != nil {
                        offset += 1
                        try endLine(terminator: 1, handler: &handler)
                        atLineStart = true
                        i = end + 1
                    } else {
                        i = end
                    }
                }
            }
        }
        if !atLineStart { try endLine(terminator: 0, handler: &handler) }
        guard sawHeader else { throw GenomeError(path: stream.path, code: .empty) }
    }
}
