import Foundation
import LoomTensor
import LoomTestSupport
import Testing

@Suite("result integrity: checksummed journal, manifest sha256, loom verify (real processes)", .serialized)
struct IntegrityTests {
    @Test("a row changed after the job: verify names it; resuming recomputes only that shard, to the same bits", arguments: [0, 2])
    func corruptedShard(workers: Int) throws {
        var c = try ConformanceCase(directory: Repository.conformanceDirectory + "/fd100_product_marginalize")
        c.argv[c.argv.firstIndex(of: "--batch-size")! + 1] = "4"
        c.argv += ["--shard-batches", "1"]
        let (out, r) = try runCase(c, workers: workers)
        defer { out.remove() }
        #expect(r.status == 0, "\(r.stderr)")
        let clean = try resultBytes(out.path)
        let ok = try runLoom(["verify", out.path])
        #expect(ok.status == 0 && ok.stdout.contains("match the journal"), "\(ok.stdout)\(ok.stderr)")
        // Change one float of the 10th example's row in the first result file, as a disk or a hand might.
        let manifest = try readJSON(out.path + "/manifest.json")
        let file = ((manifest["outputs"] as! [[String: Any]])[0]["file"] as! String)
        let path = out.file(file)
        var bytes = try FileIO.readAll(path)
        let header = Int(bytes[8]) | Int(bytes[9]) << 8 + 10
        let rowBytes = (bytes.count - header) / (manifest["examples"] as! Int)
        bytes[header + 9 * rowBytes + 1] ^= 0x40
        try writeFile(path, bytes)
        let bad = try runLoom(["verify", out.path])
        #expect(bad.status != 0, "\(bad.stdout)")
        #expect(bad.stderr.contains("\(file) does not match its sha256") && bad.stderr.contains("shard 2 (examples 8..<12)"), "\(bad.stderr)")
        #expect(bad.stderr.split(separator: "\n").count == 1, "one line: \(bad.stderr)")
        // As if the job had been interrupted: the same command resumes, checks what the journal holds, and redoes shard 2 only.
        try FileManager.default.removeItem(atPath: out.file("manifest.json"))
        let again = try runLoom(["run"] + c.argv + ["--workers", "\(workers)", "--out", out.path], cwd: c.directory, timeout: 120)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(
            again.stderr.contains("failed their checksum") || again.stderr.contains("failed its checksum") || again.stderr.contains("computing them again"),
            "\(again.stderr)")
        #expect(try resultBytes(out.path) == clean)
        #expect(try runLoom(["verify", out.path]).status == 0)
    }
}
