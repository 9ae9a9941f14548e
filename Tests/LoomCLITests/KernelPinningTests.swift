import Foundation
import LoomTensor
import LoomTestSupport
import Testing

/// `--kernels`: every process of a job runs the BLAS kernels the job pins.
@Suite("BLAS kernels pinned per job (real processes)", .serialized)
struct KernelPinningTests {
    let caseDirectory = Repository.conformanceDirectory + "/zoo_basset_classic_predict"
    let flags = ["--mode", "product", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy", "--quiet"]

    func kernels(_ out: String) throws -> [String: Any] { try readJSON(out + "/manifest.json")["kernels"] as? [String: Any] ?? [:] }

    @Test("the manifest names the set and OpenBLAS's kernels; workers run the job's set, bitwise equal to the run in process")
    func pinned() throws {
        let s = TemporaryDirectory(); defer { s.remove() }
        for set in ["sse3", "avx2"] {
            let r = try runLoom(["run"] + flags + ["--kernels", set, "--out", s.file(set)], cwd: caseDirectory)
            #expect(r.status == 0, "\(r.stderr)")
            let k = try kernels(s.file(set))
            #expect(k["set"] as? String == set)
            #expect(k["openblas"] as? String == (set == "sse3" ? "Prescott" : "Haswell"))
        }
        let w = try runLoom(["run"] + flags + ["--kernels", "sse3", "--workers", "2", "--out", s.file("w")], cwd: caseDirectory)
        #expect(w.status == 0, "\(w.stderr)")
        #expect(try FileIO.readAll(s.file("w/y.npy")) == FileIO.readAll(s.file("sse3/y.npy")))
        #expect(try kernels(s.file("w"))["set"] as? String == "sse3")
        #expect(try ConformanceCase(directory: caseDirectory).compare(out: s.file("sse3")).isEmpty, "and either set matches tangermeme")
        let auto = try runLoom(["run"] + flags + ["--out", s.file("auto")], cwd: caseDirectory)
        #expect(auto.status == 0)
        let inspect = try runLoom(["inspect", "--kernels"])
        #expect(inspect.stdout.contains("--kernels auto runs \(try kernels(s.file("auto"))["set"] as? String ?? "?")"), "\(inspect.stdout)")
    }

    @Test("a set the CPU lacks, or no set at all, is one line and exit 1")
    func refused() throws {
        let s = TemporaryDirectory(); defer { s.remove() }
        let bogus = try runLoom(["run"] + flags + ["--kernels", "avx9", "--out", s.file("a")], cwd: caseDirectory)
        expectRefusal(bogus, ["--kernels avx9", "auto, sse3, avx2, avx512"], out: s.file("a"))
        let inspect = try runLoom(["inspect", "--kernels"])
        if inspect.stdout.contains("avx512 no") {
            let r = try runLoom(["run"] + flags + ["--kernels", "avx512", "--out", s.file("b")], cwd: caseDirectory)
            expectRefusal(r, ["--kernels avx512", "this CPU lacks avx512f"], out: s.file("b"))
        }
    }

    @Test("a worker whose CPU lacks the job's kernels refuses to join, naming the set; the job goes on with the others")
    func workerRefuses() throws {
        let s = TemporaryDirectory(); defer { s.remove() }
        let reference = try runLoom(["run"] + flags + ["--kernels", "sse3", "--out", s.file("reference")], cwd: caseDirectory)
        #expect(reference.status == 0)
        let endpoint = "ipc://\(s.file("c"))"
        let coordinator = try startProcess(
            Repository.loomBinary, ["coordinator", "--bind", endpoint, "--kernels", "sse3", "--out", s.file("out")] + flags,
            cwd: caseDirectory, stderrPath: s.file("coordinator.log"))
        // Debug builds only: this worker's CPU is made to lack sse3 and avx2.
        let lacking = try runProcess(Repository.loomBinary, ["worker", "--connect", endpoint], environment: ["LOOM_TEST_CPU_LACKS": "sse3,avx2"], timeout: 60)
        #expect(lacking.status == 1)
        #expect(lacking.stderr.contains("cannot join job") && lacking.stderr.contains("sse3"), "\(lacking.stderr)")
        let good = try runProcess(Repository.loomBinary, ["worker", "--connect", endpoint], timeout: 60)
        #expect(good.status == 0, "\(good.stderr)")
        #expect(waitOrKill(coordinator, timeout: 60))
        #expect(coordinator.terminationStatus == 0)
        #expect(try FileIO.readAll(s.file("out/y.npy")) == FileIO.readAll(s.file("reference/y.npy")))
    }

    @Test("--kernels auto resumes a job with the kernels it started with")
    func resumeKeepsKernels() throws {
        let s = TemporaryDirectory(); defer { s.remove() }
        let first = try runLoom(["run"] + flags + ["--kernels", "sse3", "--out", s.file("o")], cwd: caseDirectory)
        #expect(first.status == 0)
        let again = try runLoom(["run"] + flags + ["--out", s.file("o")], cwd: caseDirectory)
        #expect(again.status == 0, "the same job, resumed with auto: \(again.stderr)")
        #expect(try kernels(s.file("o"))["set"] as? String == "sse3")
    }
}
