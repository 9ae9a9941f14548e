import Foundation
import LoomTensor
import LoomTestSupport
import Testing

/// `--x FASTA`, `--regions`, `--length`, `--summits` through real `loom run` processes, with a model
/// that returns X itself (Flatten), so that the result is the one-hot windows as Loom read them.
@Suite("FASTA and BED inputs (real processes)")
struct GenomeCLITests {
    static let genome = Repository.fixture("genome")

    /// A folder with the identity model for windows of `length` bases.
    struct Scratch {
        let dir = TemporaryDirectory("loom-genome-cli")
        var out: String { dir.file("out") }

        init(length: Int) throws {
            var b = ONNXBuilder()
            b.input("X", [nil, 4, length])
            b.input("a", [nil, 1])
            b.node("Flatten", ["X"], ["y"], [.int("axis", 1)])
            b.output("y")
            try b.write(to: dir.file("identity.onnx"))
            try writeNpy(dir.file("one.npy"), shape: [1, 1], [0])
        }

        func run(_ extra: [String], out: String? = nil) throws -> ProcessResult {
            try runLoom(
                ["run", "--mode", "product", "--model", dir.file("identity.onnx"), "--arg", dir.file("one.npy"), "--out", out ?? self.out] + extra,
                cwd: dir.path)
        }

        func remove() { dir.remove() }
    }

    /// tangermeme's windows for a case, flattened as the identity model returns them: (n, 4·L).
    static func expected(_ name: String) throws -> [Float] {
        try NpyArray.read(path: genome + "/\(name).npy").floatTensor().storage
    }

    @Test("--regions: the windows extract_loci cuts, bitwise, in process and on 2 workers; the manifest maps rows to loci")
    func regionsEndToEnd() throws {
        let s = try Scratch(length: 101)
        defer { s.remove() }
        let args = ["--x", Self.genome + "/genome.fa.bgz", "--regions", Self.genome + "/regions.bed", "--length", "101", "--batch-size", "2"]
        let local = try s.run(args)
        #expect(local.status == 0, "\(local.stderr)")
        #expect(local.stderr.contains("3 of 9 regions") && local.stderr.contains("dropped"), "the log says which regions were dropped: \(local.stderr)")
        let y = try NpyArray.read(path: s.out + "/y.npy").floatTensor()
        #expect(y.shape == [6, 1, 404])
        #expect(y.storage == (try Self.expected("regions-101")), "the windows differ from extract_loci's")
        let m = try readJSON(s.out + "/manifest.json")
        let seq = try #require(m["sequences"] as? [String: Any], "the manifest records the windows")
        let windows = try #require(seq["windows"] as? [String: Any])
        #expect(windows["chrom"] as? [String] == ["chr1", "chr2", "3", "chr1", "chr2", "chr1"])
        #expect(windows["line"] as? [Int] == [4, 6, 7, 9, 11, 12])
        #expect(windows["start"] as? [Int] == [100, 70, 260, 410, 75, 551])
        let dropped = try #require(seq["dropped"] as? [String: Any])
        #expect(dropped["line"] as? [Int] == [5, 8, 10] && dropped["chrom"] as? [String] == ["chr1", "chr1", "chrM"])
        #expect((m["inputs"] as? [[String: Any]])?.first?["dtype"] as? String == "fasta")
        let show = try runLoom(["show", s.out, "--limit", "1"])
        #expect(show.stdout.contains("row 0 = chr1:100-201, row 1 = chr2:70-171") && show.stdout.contains("3 regions dropped"), "\(show.stdout)")

        let two = try s.run(args + ["--workers", "2"], out: s.dir.file("out2"))
        #expect(two.status == 0, "\(two.stderr)")
        #expect(try FileIO.readAll(s.dir.file("out2/y.npy")) == (try FileIO.readAll(s.out + "/y.npy")), "2 workers give the in-process bytes")
        let m2 = try readJSON(s.dir.file("out2/manifest.json"))
        func canonical(_ o: Any?) throws -> Data { try JSONSerialization.data(withJSONObject: o ?? [:], options: .sortedKeys) }
        #expect(try canonical(m2["sequences"]) == canonical(seq), "the collector's manifest records the same windows")
    }

    @Test("--summits, gzip FASTA, and records as rows (with and without --length)")
    func summitsAndRecords() throws {
        let s = try Scratch(length: 64)
        defer { s.remove() }
        let summits = try s.run(["--x", Self.genome + "/genome.fa.gz", "--regions", Self.genome + "/peaks.narrowPeak", "--length", "64", "--summits"])
        #expect(summits.status == 0, "\(summits.stderr)")
        #expect(try NpyArray.read(path: s.out + "/y.npy").floatTensor().storage == (try Self.expected("summits-64")))

        let r = try Scratch(length: 48)
        defer { r.remove() }
        let records = try r.run(["--x", Self.genome + "/seqs.fa"])
        #expect(records.status == 0, "\(records.stderr)")
        #expect(try NpyArray.read(path: r.out + "/y.npy").floatTensor().storage == (try Self.expected("seqs-48")))
        let w = try Scratch(length: 40)
        defer { w.remove() }
        let windowed = try w.run(["--x", Self.genome + "/ragged.fa", "--length", "40"])
        #expect(windowed.status == 0, "\(windowed.stderr)")
        #expect(try NpyArray.read(path: w.out + "/y.npy").floatTensor().storage == (try Self.expected("ragged-40")))
    }

    @Test("bad genomic input: one line naming the file, the line or the record, and what to do")
    func refusals() throws {
        let s = try Scratch(length: 40)
        defer { s.remove() }
        let g = Self.genome
        let cases: [([String], [String])] = [
            (["--x", g + "/genome.fa", "--regions", g + "/missing.bed", "--length", "40"], ["missing.bed", "chrX, chrY", "does not have"]),
            (["--x", g + "/genome.fa", "--regions", g + "/iupac.bed", "--length", "40"], ["record chr2, position 230", "'R'", "--ignore"]),
            (["--x", g + "/genome.fa", "--regions", g + "/none-fit.bed", "--length", "40"], ["none-fit.bed", "none of its 2 regions"]),
            (["--x", g + "/genome.fa", "--regions", g + "/bad-summit.narrowPeak", "--length", "40", "--summits"], ["line 1", "summit 250"]),
            (["--x", g + "/genome.fa", "--regions", g + "/regions.bed"], ["--regions needs --length"]),
            (["--x", g + "/ragged.fa"], ["record 1 (r1) has 55 bases", "--length"]),
            (["--x", g + "/ragged.fa", "--length", "50"], ["record 0 (r0) has 40 bases, fewer than --length 50"]),
            (["--x", g + "/ragged-40.npy", "--length", "40"], ["this X is a .npy file"]),
            (["--x", g + "/seqs.fa", "--summits"], ["--summits", "give --regions"]),
            (["--x", g + "/seqs.fa", "--ignore", "NA"], ["'A' is in the alphabet"]),
            (["--x", g + "/seqs.fa", "--length", "0"], ["--length must be at least 1"]),
            (["--x", g + "/regions.bed"], ["not a FASTA file"])
        ]
        for (args, words) in cases {
            let r = try s.run(args)
            expectRefusal(r, words, out: s.out)
        }
    }

    /// A genome of two 96 Mb records, plain (with and without .fai) and gzip; the bases at position p
    /// are `pattern[p % pattern.count]`, so that every window's expected bases are known.
    @Test("a genome larger than the memory a run may use is read lazily: plain with .fai, plain without, gzip")
    func largeGenomeIsReadLazily() throws {
        let s = try Scratch(length: 100)
        defer { s.remove() }
        var rng = SystemRandomNumberGenerator()
        let pattern = (0..<999_983).map { _ in Array("ACGT".utf8)[Int(rng.next() % 4)] }
        let recordLength = 96 << 20
        let path = s.dir.file("big.fa")
        try #require(FileManager.default.createFile(atPath: path, contents: nil), "cannot create \(path)")
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        var fai = ""
        var offset = 0
        for name in ["chrA", "chrB"] {
            let header = Array(">\(name) a large record\n".utf8)
            h.write(Data(header))
            offset += header.count
            fai += "\(name)\t\(recordLength)\t\(offset)\t60\t61\n"
            var p = 0
            var chunk = [UInt8]()
            chunk.reserveCapacity(1 << 22)
            while p < recordLength {
                let n = min(60, recordLength - p)
                for k in 0..<n { chunk.append(pattern[(p + k) % pattern.count]) }
                chunk.append(0x0a)
                offset += n + 1
                p += n
                if chunk.count >= 1 << 22 {
                    h.write(Data(chunk))
                    chunk.removeAll(keepingCapacity: true)
                }
            }
            h.write(Data(chunk))
        }
        try h.close()
        var bed = ""
        var starts: [Int] = []
        for k in 0..<40 {
            let start = 1000 + k * (recordLength / 41)
            bed += "\(k % 2 == 0 ? "chrA" : "chrB")\t\(start)\t\(start + 100)\n"
            starts.append(start)
        }
        try writeFile(s.dir.file("big.bed"), Array(bed.utf8))
        var expected = [Float](repeating: 0, count: 40 * 400)
        for (row, start) in starts.enumerated() {
            for pos in 0..<100 {
                let code = Array("ACGT".utf8).firstIndex(of: pattern[(start + pos) % pattern.count])!
                expected[row * 400 + code * 100 + pos] = 1
            }
        }
        let gz = try runProcess("/bin/sh", ["-c", "gzip -1 -c big.fa > big.fa.gz"], cwd: s.dir.path, timeout: 300)
        #expect(gz.status == 0, "\(gz.stderr)")

        var peaks: [String: Int] = [:]
        for (label, fasta, makeIndex) in [("plain, no .fai", "big.fa", false), ("plain with .fai", "big.fa", true), ("gzip", "big.fa.gz", false)] {
            if makeIndex { try writeFile(s.dir.file("big.fa.fai"), Array(fai.utf8)) }
            let out = s.dir.file("out-\(peaks.count)")
            // The peak resident memory of loom alone: python3 runs it and reads its children's rusage.
            let r = try runProcess(
                "/usr/bin/python3",
                [
                    "-c",
                    "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)",
                    Repository.loomBinary, "run", "--mode", "product", "--model", "identity.onnx", "--arg", "one.npy", "--x", fasta, "--regions", "big.bed",
                    "--length", "100", "--out", out, "--quiet"
                ], cwd: s.dir.path, timeout: 300)
            #expect(r.status == 0, "\(label): \(r.stderr)")
            #expect(try NpyArray.read(path: out + "/y.npy").floatTensor().storage == expected, "\(label): the windows")
            let kib = Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? Int.max
            peaks[label] = kib / 1024
        }
        // The genome is 194 MB; a run that held it would peak above that.
        for (label, mib) in peaks { #expect(mib < 120, "\(label): loom peaked at \(mib) MiB for a 194 MB genome") }
    }
}
