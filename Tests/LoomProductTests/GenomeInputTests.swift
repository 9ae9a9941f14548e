import Foundation
import LoomGenome
import LoomTensor
import LoomTestSupport
import Testing

/// FASTA and BED inputs against tangermeme 1.6's `extract_loci` (Tests/Fixtures/genome, made by
/// scripts/conformance/make_genome_cases), through every way a FASTA file is stored.
@Suite struct GenomeInputTests {
    struct Case: Decodable {
        var name: String
        var fasta: String
        var bed: String
        var length: Int
        var summits: Bool
        var error: String?
    }

    static let folder = Repository.fixture("genome")
    static let cases: [Case] = {
        (try? JSONDecoder().decode([Case].self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/cases.json")))) ?? []
    }()
    static let encoder = SequenceEncoder(alphabet: Array("ACGT".utf8), ignore: Array("N".utf8))

    /// The genome as each storage: plain with and without its .fai, gzip, bgzip with and without its .gzi.
    static func storages(_ dir: TemporaryDirectory) throws -> [(String, String)] {
        let fm = FileManager.default
        func copy(_ name: String, as target: String) throws {
            try fm.copyItem(atPath: folder + "/" + name, toPath: dir.file(target))
        }
        try copy("genome.fa", as: "indexed.fa")
        try copy("genome.fa.fai", as: "indexed.fa.fai")
        try copy("genome.fa", as: "unindexed.fa")
        try copy("genome.fa.gz", as: "genome.fa.gz")
        try copy("genome.fa.bgz", as: "genome.fa.bgz")
        try copy("genome.fa.bgz.gzi", as: "genome.fa.bgz.gzi")
        try copy("genome.fa.bgz.fai", as: "genome.fa.bgz.fai")
        try copy("genome.fa.bgz", as: "nogzi.fa.bgz")
        return [
            ("plain with .fai", dir.file("indexed.fa")), ("plain, no .fai", dir.file("unindexed.fa")), ("gzip", dir.file("genome.fa.gz")),
            ("bgzip with .gzi and .fai", dir.file("genome.fa.bgz")), ("bgzip, no index", dir.file("nogzi.fa.bgz"))
        ]
    }

    /// tangermeme's (n, 4, L) int8 one-hot windows as codes (255: all zero).
    static func expectedCodes(_ name: String) throws -> (codes: [UInt8], shape: [Int]) {
        let a = try NpyArray.read(path: folder + "/\(name).npy")
        let t = a.floatTensor()
        let (n, c, l) = (t.shape[0], t.shape[1], t.shape[2])
        var codes = [UInt8](repeating: 255, count: n * l)
        for i in 0..<n {
            for pos in 0..<l {
                for k in 0..<c where t.storage[(i * c + k) * l + pos] == 1 { codes[i * l + pos] = UInt8(k) }
            }
        }
        return (codes, t.shape)
    }

    /// The BED lines of the regions tangermeme kept (its mask over the regions, in file order).
    static func keptLines(_ c: Case) throws -> [Int] {
        let mask = try NpyArray.read(path: folder + "/\(c.name).mask.npy").floatTensor().storage
        let regions = try BEDFile.read(folder + "/" + c.bed, summits: c.summits)
        return zip(regions, mask).compactMap { $1 != 0 ? $0.line : nil }
    }

    @Test func theFixturesAreThere() {
        #expect(Self.cases.count >= 12, "Tests/Fixtures/genome/cases.json is missing or short")
    }

    @Test(arguments: cases.filter { $0.error == nil && $0.fasta == "genome.fa" }.map(\.name))
    func regionWindowsMatchExtractLoci(name: String) throws {
        let c = try #require(Self.cases.first { $0.name == name })
        let dir = TemporaryDirectory("loom-genome")
        defer { dir.remove() }
        let expected = try Self.expectedCodes(name)
        let lines = try Self.keptLines(c)
        for (storage, path) in try Self.storages(dir) {
            let input = try GenomeReader.regions(
                fasta: path, bed: Self.folder + "/" + c.bed, length: c.length, summits: c.summits, encoder: Self.encoder, ignore: "N")
            #expect(input.count == expected.shape[0] && input.length == expected.shape[2], "\(name), \(storage): shape")
            #expect(input.codes == expected.codes, "\(name), \(storage): the windows differ from extract_loci's")
            #expect(input.source.windows.line == lines, "\(name), \(storage): kept regions")
            #expect(input.source.windows.end.enumerated().allSatisfy { $1 - input.source.windows.start[$0] == c.length })
            #expect(input.source.dropped.count + input.count == (try BEDFile.read(Self.folder + "/" + c.bed, summits: c.summits)).count)
            #expect((input.source.dropped.count > 0) == input.notes.contains { $0.contains("dropped") }, "\(name), \(storage): the note on dropped regions")
            #expect(storage.contains("no") == input.notes.contains { $0.contains("no .fai") } || storage == "gzip", "\(name), \(storage): the note on indexing")
        }
    }

    @Test(arguments: cases.filter { $0.error == nil && $0.fasta != "genome.fa" }.map(\.name))
    func recordWindowsMatchExtractLoci(name: String) throws {
        let c = try #require(Self.cases.first { $0.name == name })
        let expected = try Self.expectedCodes(name)
        let path = Self.folder + "/" + c.fasta
        let input = try GenomeReader.records(fasta: path, length: c.length, encoder: Self.encoder, ignore: "N")
        #expect(input.codes == expected.codes, "\(name): the records' windows differ from extract_loci's")
        #expect(input.source.windows.line == Array(0..<input.count))
        if c.name == "seqs-48" {
            // Records of one length need no --length.
            let whole = try GenomeReader.records(fasta: path, length: nil, encoder: Self.encoder, ignore: "N")
            #expect(whole.codes == expected.codes)
        }
    }

    @Test func refusalsMatchTangermeme() throws {
        let dir = TemporaryDirectory("loom-genome")
        defer { dir.remove() }
        for (storage, path) in try Self.storages(dir) {
            func code(_ name: String) throws -> GenomeError.Code? {
                let c = try #require(Self.cases.first { $0.name == name })
                #expect(c.error != nil, "tangermeme refused \(name)")
                do {
                    _ = try GenomeReader.regions(
                        fasta: path, bed: Self.folder + "/" + c.bed, length: c.length, summits: c.summits, encoder: Self.encoder, ignore: "N")
                    return nil
                } catch { return error.code }
            }
            guard case .badCharacter(let record, let position, let character, _) = try code("iupac") else {
                Issue.record("\(storage): an IUPAC R is refused")
                return
            }
            #expect(record == "chr2" && position == 230 && character == UInt8(ascii: "R"))
            #expect(try code("missing") == .missingChromosomes(["chrX", "chrY"]), "\(storage)")
            #expect(try code("none-fit") == .noRegions(regions: 2, length: 40), "\(storage)")
            guard case .badRegion(line: 1, _) = try code("bad-summit") else {
                Issue.record("\(storage): a summit past the end is refused")
                return
            }
        }
        // With R ignored, the IUPAC window is read, with R as all zeros.
        let ignoring = SequenceEncoder(alphabet: Array("ACGT".utf8), ignore: Array("NR".utf8))
        let input = try GenomeReader.regions(
            fasta: Self.folder + "/genome.fa", bed: Self.folder + "/iupac.bed", length: 40, summits: false, encoder: ignoring, ignore: "NR")
        #expect(input.count == 1 && input.codes[230 - input.source.windows.start[0]] == SequenceEncoder.unknown)
    }

    @Test func recordsOfDifferentLengthsNeedLengthAndNoneShorter() throws {
        let path = Self.folder + "/ragged.fa"
        #expect {
            _ = try GenomeReader.records(fasta: path, length: nil, encoder: Self.encoder, ignore: "N")
        } throws: { ($0 as? GenomeError)?.code == .unequalLengths(first: "r0", firstLength: 40, record: "r1", index: 1, length: 55) }
        #expect {
            _ = try GenomeReader.records(fasta: path, length: 50, encoder: Self.encoder, ignore: "N")
        } throws: { ($0 as? GenomeError)?.code == .recordTooShort(record: "r0", index: 0, length: 40, needed: 50) }
        #expect(
            String(describing: GenomeError(path: path, code: .unequalLengths(first: "r0", firstLength: 40, record: "r1", index: 1, length: 55))).contains(
                "--length"))
    }

    @Test func brokenFilesAreRefusedInOneLine() throws {
        let dir = TemporaryDirectory("loom-genome")
        defer { dir.remove() }
        let genome = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.folder + "/genome.fa")))
        let bed = Self.folder + "/regions.bed"
        func refusal(_ fasta: String) -> GenomeError? {
            do {
                _ = try GenomeReader.regions(fasta: fasta, bed: bed, length: 21, summits: false, encoder: Self.encoder, ignore: "N")
                return nil
            } catch { return error }
        }
        // A stale .fai: the file was rewrapped after indexing.
        try writeFile(dir.file("stale.fa"), Array(String(decoding: genome, as: UTF8.self).replacingOccurrences(of: "\n", with: "\n\n").utf8))
        try FileManager.default.copyItem(atPath: Self.folder + "/genome.fa.fai", toPath: dir.file("stale.fa.fai"))
        guard case .staleIndex = refusal(dir.file("stale.fa"))?.code else {
            Issue.record("a stale .fai is refused")
            return
        }
        // Ragged lines cannot be indexed.
        try writeFile(dir.file("ragged.fa"), Array(">a\nACGTACGT\nACG\nACGTACGT\n".utf8))
        #expect(refusal(dir.file("ragged.fa"))?.code == .raggedLines(record: "a", line: 4))
        // A truncated gzip file and a corrupt one.
        let gz = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.folder + "/genome.fa.gz")))
        try writeFile(dir.file("cut.fa.gz"), Array(gz.prefix(gz.count / 2)))
        guard case .corrupt = refusal(dir.file("cut.fa.gz"))?.code else {
            Issue.record("a truncated gzip file is refused")
            return
        }
        var flipped = gz
        flipped[40] ^= 0xff
        flipped[41] ^= 0xff
        try writeFile(dir.file("flipped.fa.gz"), flipped)
        guard case .corrupt = refusal(dir.file("flipped.fa.gz"))?.code else {
            Issue.record("a corrupt gzip file is refused")
            return
        }
        // Not FASTA at all, and an empty file.
        try writeFile(dir.file("text.fa"), Array("hello\nworld\n".utf8))
        guard case .notFASTA = refusal(dir.file("text.fa"))?.code else {
            Issue.record("a text file is refused")
            return
        }
        try writeFile(dir.file("empty.fa"), [])
        #expect(refusal(dir.file("empty.fa"))?.code == .empty)
        // A .gzi that promises more than it holds.
        try FileManager.default.copyItem(atPath: Self.folder + "/genome.fa.bgz", toPath: dir.file("badgzi.fa.bgz"))
        try writeFile(dir.file("badgzi.fa.bgz.gzi"), [9, 0, 0, 0, 0, 0, 0, 0])
        guard case .badIndex = refusal(dir.file("badgzi.fa.bgz"))?.code else {
            Issue.record("a broken .gzi is refused")
            return
        }
        // Windows line ends read as Unix ones.
        try writeFile(dir.file("crlf.fa"), Array(String(decoding: genome, as: UTF8.self).replacingOccurrences(of: "\n", with: "\r\n").utf8))
        let crlf = try GenomeReader.regions(fasta: dir.file("crlf.fa"), bed: bed, length: 21, summits: false, encoder: Self.encoder, ignore: "N")
        #expect(crlf.codes == (try Self.expectedCodes("regions-21")).codes)
    }

    @Test func badRegionLinesAreNamed() throws {
        let dir = TemporaryDirectory("loom-genome")
        defer { dir.remove() }
        try writeFile(dir.file("short.bed"), Array("chr1\t1\t5\nchr1\t7\n".utf8))
        try writeFile(dir.file("words.bed"), Array("# header\nchr1\tten\t20\n".utf8))
        #expect { _ = try BEDFile.read(dir.file("short.bed"), summits: false) } throws: {
            guard case .badRegion(line: 2, _) = ($0 as? GenomeError)?.code else { return false }
            return true
        }
        #expect { _ = try BEDFile.read(dir.file("words.bed"), summits: false) } throws: {
            ($0 as? GenomeError).map { "\($0)" }?.contains("line 2: its start 'ten' is not an integer") ?? false
        }
        #expect { _ = try BEDFile.read(dir.file("short.bed"), summits: true) } throws: { "\($0)".contains("10 tab-separated columns") }
    }
}
