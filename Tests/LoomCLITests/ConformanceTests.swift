import Foundation
import LoomTestSupport
import Testing

/// Every conformance case (the shared ones and Loom's own `loom_*` ones).
func caseNames() -> [String] {
    ((try? ConformanceCase.all()) ?? []).map(\.name)
}

@Suite("conformance with tangermeme 1.6 (real loom processes)")
struct ConformanceTests {
    @Test(
        "every case matches the reference within tolerance; error cases are refused",
        arguments: caseNames())
    func matches(name: String) throws {
        let c = try ConformanceCase(directory: Repository.conformanceDirectory + "/" + name)
        let out = TemporaryDirectory()
        defer { out.remove() }
        let r = try runLoom(["run"] + c.argv + ["--workers", "0", "--out", out.path, "--quiet"], cwd: c.directory)
        #expect(!r.timedOut)
        if let expected = c.expectError {
            #expect(r.status != 0)
            #expect(r.stderr.lowercased().contains(expected.lowercased()), "stderr: \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out.file("manifest.json")))
            return
        }
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let problems = try c.compare(out: out.path)
        #expect(problems.isEmpty, "\(problems)")
        // The same job without sharing X-only work across a batch's repeated sequences.
        let plain = TemporaryDirectory()
        defer { plain.remove() }
        let q = try runLoom(["run"] + c.argv + ["--workers", "0", "--out", plain.path, "--quiet", "--no-share-rows"], cwd: c.directory)
        #expect(q.status == 0, "stderr: \(q.stderr)")
        #expect(try c.compare(out: plain.path).isEmpty)
    }

    @Test("the same job at batch sizes 1, 5 and 64 gives the same values")
    func batchSizes() throws {
        let c = try ConformanceCase(directory: Repository.conformanceDirectory + "/fd100_product_marginalize")
        for b in ["1", "5", "64"] {
            let out = TemporaryDirectory()
            defer { out.remove() }
            var argv = c.argv
            argv[argv.firstIndex(of: "--batch-size")! + 1] = b
            let r = try runLoom(["run"] + argv + ["--out", out.path, "--quiet"], cwd: c.directory)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try c.compare(out: out.path).isEmpty)
        }
    }
}
