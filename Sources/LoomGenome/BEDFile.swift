/// A region of a BED file: its line, chromosome, and 0-based half-open coordinates.
public struct Region: Sendable, Equatable {
    /// The line of the file it came from (1-based).
    public var line: Int
    public var chrom: String
    public var start: Int
    public var end: Int
    /// narrowPeak's 10th column: the summit's offset from `start` (with `summits` only).
    public var summit: Int?
}

/// Reads the regions of a BED (or narrowPeak) file, plain or gzip, as tangermeme's `_read_bed` does.
///
/// Track and browser lines, lines that start with `#`, and blank lines are skipped. Columns
/// are tab-separated; the first three are the chromosome, start and end, and with `summits`
/// the tenth is the summit's offset from the start. A line that does not have them, or whose
/// numbers are not integers, is refused with its line number.
public enum BEDFile {
    public static func read(_ path: String, summits: Bool) throws(GenomeError) -> [Region] {
        let stream = try ByteStream(path: path, kind: FileKind.of(path))
        var regions: [Region] = []
        var pending: [UInt8] = []
        var line = 0
        func take(_ bytes: ArraySlice<UInt8>) throws(GenomeError) {
            line += 1
            var text = bytes
            if text.last == 0x0d { text = text.dropLast() }
            if text.isEmpty || text.first == UInt8(ascii: "#") { return }
            let fields = text.split(separator: 0x09, omittingEmptySubsequences: false)
            let first = String(decoding: fields[0], as: UTF8.self)
            if first == "track" || first == "browser" || first.hasPrefix("track ") || first.hasPrefix("browser ") { return }
            let needed = summits ? 10 : 3
            guard fields.count >= needed else {
                let what = summits ? "10 tab-separated columns (narrowPeak, for --summits)" : "3 tab-separated columns (chromosome, start, end)"
                throw GenomeError(path: path, code: .badRegion(line: line, "a region needs \(what); this line has \(fields.count)"))
            }
            func number(_ k: Int, _ what: String) throws(GenomeError) -> Int {
                let s = String(decoding: fields[k], as: UTF8.self).trimmingSpaces
                guard let v = Int(s), v.magnitude < 1 << 50 else {
                    throw GenomeError(path: path, code: .badRegion(line: line, "its \(what) '\(s)' is not an integer"))
                }
                return v
            }
            var r = Region(line: line, chrom: first, start: try number(1, "start"), end: try number(2, "end"))
            if summits {
                let s = try number(9, "summit (column 10)")
                // tangermeme's checks, in its order.
                guard s >= 0 else { throw GenomeError(path: path, code: .badRegion(line: line, "its summit \(s) is negative, as tangermeme refuses it")) }
                guard r.start + s <= r.end else {
                    throw GenomeError(
                        path: path,
                        code: .badRegion(line: line, "its summit \(s) lies past its end (start \(r.start) + summit > end \(r.end)), as tangermeme refuses it"))
                }
                r.summit = s
            }
            regions.append(r)
        }
        while true {
            let piece = try stream.next()
            if piece.isEmpty { break }
            var from = piece.startIndex
            while let nl = piece[from...].firstIndex(of: 0x0a) {
                if pending.isEmpty {
                    try take(piece[from..<nl])
                } else {
                    pending += piece[from..<nl]
                    try take(pending[...])
                    pending.removeAll(keepingCapacity: true)
                }
                from = nl + 1
            }
            pending += piece[from...]
            guard pending.count < 1 << 20 else {
                throw GenomeError(path: path, code: .badRegion(line: line + 1, "a line longer than 1 MiB; is this a BED file?"))
            }
        }
        if !pending.isEmpty { try take(pending[...]) }
        return regions
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
