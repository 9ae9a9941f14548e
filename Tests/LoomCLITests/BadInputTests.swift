import Foundation
import LoomTensor
import LoomTestSupport
import Testing

/// A scratch copy of the fd100 pairwise case (model, X, a0, a1) to break in various ways.
struct Scratch {
    let dir = TemporaryDirectory("loom-cli")
    let source = Repository.conformanceDirectory + "/fd100_pairwise_alpha_beta"

    init() throws {
        for f in ["model.onnx", "x.npy", "a0.npy", "a1.npy"] {
            try writeFile(dir.file(f), try FileIO.readAll(source + "/" + f))
        }
    }

    var out: String { dir.file("out") }

    /// Writes bad.onnx: a model that loads but fails when run (a Reshape to 7 rows), node "bad_reshape".
    func writeBadReshapeModel() throws {
        var b = ONNXBuilder()
        b.input("X", [nil, 4, 100])
        b.output("y")
        b.initializer("s", shape: [2], ints: [7, -1])
        b.node("Reshape", ["X", "s"], ["y"], name: "bad_reshape")
        try b.write(to: dir.file("bad.onnx"))
    }

    /// Starts a long job (100,000 shards of one example) on two local workers and waits until both are up.
    func startLongRun() throws -> Process {
        try writeNpy(dir.file("many.npy"), shape: [40000, 1], (0..<40000).map { Float($0) })
        let p = try startProcess(
            Repository.loomBinary,
            [
                "run", "--mode", "product", "--model", "model.onnx", "--x", "x.npy",
                "--arg", "many.npy", "--arg", "a1.npy", "--batch-size", "1",
                "--shard-batches", "1", "--workers", "2", "--out", out, "--quiet"
            ], cwd: dir.path)
        let deadline = Date().addingTimeInterval(20)
        while processes(containing: "--parent-pid \(p.processIdentifier) ").count < 2 && Date() < deadline { usleep(20_000) }
        return p
    }

    /// `loom run` on the scratch files, with flags replaced or added.
    func run(
        mode: String = "pairwise", model: String = "model.onnx", x: String = "x.npy", args: [String] = ["a0.npy", "a1.npy"],
        extra: [String] = []
    ) throws -> ProcessResult {
        var argv = ["run", "--mode", mode, "--func", "predict", "--model", model, "--x", x]
        for a in args { argv += ["--arg", a] }
        return try runLoom(argv + ["--out", out, "--quiet"] + extra, cwd: dir.path)
    }

    func remove() { dir.remove() }
}

/// Expects a refusal: exit 1, one line on stderr that starts with "loom: error:" and says `words`, and no manifest.
func expectRefusal(_ r: ProcessResult, _ words: [String], out: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.status == 1, "exit \(r.status), stderr \(r.stderr)", sourceLocation: sourceLocation)
    #expect(!r.timedOut, sourceLocation: sourceLocation)
    let lines = r.stderr.split(separator: "\n")
    #expect(lines.count == 1, "expected one line, got: \(r.stderr)", sourceLocation: sourceLocation)
    #expect(r.stderr.hasPrefix("loom: error: "), sourceLocation: sourceLocation)
    for w in words { #expect(r.stderr.contains(w), "'\(w)' missing from: \(r.stderr)", sourceLocation: sourceLocation) }
    #expect(!FileManager.default.fileExists(atPath: out + "/manifest.json"), sourceLocation: sourceLocation)
}

@Suite("bad input: one clear line, a non-zero exit, no result")
struct BadInputTests {
    @Test("an empty X")
    func emptyX() throws {
        let s = try Scratch(); defer { s.remove() }
        try writeNpy(s.dir.file("empty.npy"), shape: [0, 4, 100], [])
        expectRefusal(try s.run(x: "empty.npy"), ["empty.npy", "empty"], out: s.out)
    }

    @Test("an empty arg")
    func emptyArg() throws {
        let s = try Scratch(); defer { s.remove() }
        try writeNpy(s.dir.file("none.npy"), shape: [0, 1], [])
        expectRefusal(try s.run(mode: "product", args: ["a0.npy", "none.npy"]), ["none.npy", "empty"], out: s.out)
    }

    @Test("pairwise args of different lengths")
    func lengths() throws {
        let s = try Scratch(); defer { s.remove() }
        try writeNpy(s.dir.file("short.npy"), shape: [3, 1], [1, 2, 3])
        expectRefusal(try s.run(args: ["a0.npy", "short.npy"]), ["same length", "short.npy"], out: s.out)
    }

    @Test("X that is not 3-D")
    func notThreeD() throws {
        let s = try Scratch(); defer { s.remove() }
        try writeNpy(s.dir.file("flat.npy"), shape: [5, 400], [Float](repeating: 0, count: 2000))
        expectRefusal(try s.run(x: "flat.npy"), ["flat.npy", "3-D"], out: s.out)
    }

    @Test("X whose alphabet axis does not match --alphabet")
    func alphabet() throws {
        let s = try Scratch(); defer { s.remove() }
        expectRefusal(try s.run(extra: ["--alphabet", "ACGTU"]), ["x.npy", "alphabet", "5"], out: s.out)
    }

    @Test("a motif longer than L, and a start out of range")
    func motif() throws {
        let s = try Scratch(); defer { s.remove() }
        let long = String(repeating: "ACGT", count: 26)
        expectRefusal(try s.run(extra: ["--func", "marginalize", "--motif", long]), ["--motif", "longer"], out: s.out)
        expectRefusal(try s.run(extra: ["--func", "marginalize", "--motif", "ACGT", "--start", "97"]), ["--start", "97"], out: s.out)
        expectRefusal(try s.run(extra: ["--func", "marginalize", "--motif", "ACGT", "--start=-1"]), ["--start"], out: s.out)
        expectRefusal(try s.run(extra: ["--func", "marginalize"]), ["--motif"], out: s.out)
    }

    @Test("timing options of no time (a zero heartbeat used to spin forever), from run, coordinator and worker")
    func timingOptions() throws {
        let s = try Scratch()
        defer { s.remove() }
        for (flag, word) in [
            ("--heartbeat=0", "--heartbeat"), ("--heartbeat=nan", "--heartbeat"), ("--lease=0", "--lease"),
            ("--deadline=-1", "--deadline"), ("--liveness=0", "--liveness"), ("--max-failures=0", "--max-failures")
        ] {
            expectRefusal(try s.run(extra: ["--workers", "1", flag]), [word], out: s.out)
        }
        let coordinator = try runLoom(
            [
                "coordinator", "--bind", "ipc://\(s.dir.file("c"))", "--mode", "pairwise", "--model", "model.onnx",
                "--x", "x.npy", "--arg", "a0.npy", "--arg", "a1.npy", "--out", s.out, "--heartbeat=0"
            ],
            cwd: s.dir.path)
        expectRefusal(coordinator, ["--heartbeat", "positive"], out: s.out)
        for flag in ["--heartbeat=0", "--liveness=0", "--credit=0"] {
            let worker = try runLoom(["worker", "--connect", "ipc://\(s.dir.file("c"))", flag], cwd: s.dir.path)
            expectRefusal(worker, [String(flag.prefix(while: { $0 != "=" }))], out: s.out)
        }
    }

    @Test("missing, truncated and corrupt .npy files")
    func badNpy() throws {
        let s = try Scratch(); defer { s.remove() }
        expectRefusal(try s.run(x: "nope.npy"), ["nope.npy", "cannot open"], out: s.out)
        let bytes = try FileIO.readAll(s.dir.file("x.npy"))
        try writeFile(s.dir.file("cut.npy"), Array(bytes.prefix(bytes.count - 10)))
        expectRefusal(try s.run(x: "cut.npy"), ["cut.npy", "truncated"], out: s.out)
        try writeFile(s.dir.file("junk.npy"), Array("definitely not an array".utf8))
        expectRefusal(try s.run(x: "junk.npy"), ["junk.npy", "not a .npy"], out: s.out)
        var header = bytes
        header[20] = UInt8(ascii: "#")
        try writeFile(s.dir.file("header.npy"), header)
        expectRefusal(try s.run(x: "header.npy"), ["header.npy"], out: s.out)
    }

    @Test("an unsupported dtype")
    func dtype() throws {
        let s = try Scratch(); defer { s.remove() }
        var header = "{'descr': '<i4', 'fortran_order': False, 'shape': (5, 1), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8) + [UInt8](repeating: 0, count: 20)
        try writeFile(s.dir.file("ints.npy"), bytes)
        expectRefusal(try s.run(args: ["a0.npy", "ints.npy"]), ["ints.npy", "unsupported dtype", "<i4"], out: s.out)
    }

    @Test("missing, truncated and corrupt .onnx files")
    func badModel() throws {
        let s = try Scratch(); defer { s.remove() }
        expectRefusal(try s.run(model: "gone.onnx"), ["gone.onnx", "cannot read"], out: s.out)
        let bytes = try FileIO.readAll(s.dir.file("model.onnx"))
        try writeFile(s.dir.file("cut.onnx"), Array(bytes.prefix(bytes.count / 2)))
        expectRefusal(try s.run(model: "cut.onnx"), ["cut.onnx", "not a valid ONNX model"], out: s.out)
        try writeFile(s.dir.file("junk.onnx"), Array("garbage garbage garbage".utf8))
        expectRefusal(try s.run(model: "junk.onnx"), ["junk.onnx"], out: s.out)
    }

    @Test("a model whose inputs do not fit the args")
    func inputsDoNotFit() throws {
        let s = try Scratch(); defer { s.remove() }
        expectRefusal(try s.run(args: ["a0.npy"]), ["model.onnx", "3 inputs", "X, a0, a1"], out: s.out)
        expectRefusal(try s.run(mode: "pairwise", args: ["a0.npy", "a1.npy", "a1.npy"]), ["model.onnx", "3 inputs"], out: s.out)
        try writeNpy(s.dir.file("wide.npy"), shape: [5, 2], [Float](repeating: 0, count: 10))
        // The FlattenDense model's a0 is [batch, 1]; rows of 2 do not fit.
        expectRefusal(try s.run(args: ["wide.npy", "a1.npy"]), ["model.onnx", "a0", "wide.npy"], out: s.out)
        // X of the wrong length for the model's X input.
        try writeNpy(s.dir.file("short.npy"), shape: [2, 4, 10], [Float](repeating: 0, count: 80))
        expectRefusal(try s.run(x: "short.npy"), ["model.onnx", "X", "short.npy"], out: s.out)
    }

    @Test("marginalize refuses X that is not one-hot, naming the sequence")
    func notOneHot() throws {
        let s = try Scratch(); defer { s.remove() }
        var x = try NpyArray.read(path: s.dir.file("x.npy")).floatTensor()
        x.storage[3 * 400 + 7] = 0.5
        try NpyArray.write(x, to: s.dir.file("soft.npy"))
        expectRefusal(try s.run(x: "soft.npy", extra: ["--func", "marginalize", "--motif", "ACG"]), ["X[3]", "one-hot"], out: s.out)
        // predict takes any float X.
        #expect(try s.run(x: "soft.npy").status == 0)
    }

    @Test("a lowercase motif is read as uppercase, to the same bits, and said so (tangermeme 1.6 refuses it); an uppercase one says nothing")
    func lowercaseMotif() throws {
        let s = try Scratch(); defer { s.remove() }
        let lower = try s.run(extra: ["--func", "marginalize", "--motif", "acgN", "--out", s.dir.file("lower")])
        #expect(lower.status == 0, "\(lower.stderr)")
        #expect(lower.stderr.contains("--motif acgN is read as ACGN") && lower.stderr.contains("tangermeme 1.6 refuses them"), "\(lower.stderr)")
        let upper = try s.run(extra: ["--func", "marginalize", "--motif", "ACGN", "--out", s.dir.file("upper")])
        #expect(upper.status == 0 && upper.stderr.isEmpty, "\(upper.stderr)")
        #expect(try resultBytes(s.dir.file("lower")) == resultBytes(s.dir.file("upper")))
    }

    @Test(
        "a full disk: one line naming the result file and ENOSPC, at the start, not a crash (in process and on 2 workers)",
        .enabled(if: TinyFilesystem.available, "needs to mount a tmpfs (root in this container)"))
    func diskFull() throws {
        let s = try Scratch(); defer { s.remove() }
        try writeNpy(s.dir.file("many.npy"), shape: [4000, 1], (0..<4000).map { Float($0) })
        for workers in [0, 2] {
            let fs = try TinyFilesystem(at: s.dir.file("full\(workers)"), kilobytes: 64)
            defer { fs.unmount() }
            let out = fs.path + "/out"
            let r = try runLoom(
                [
                    "run", "--mode", "product", "--model", "model.onnx", "--x", "x.npy", "--arg", "many.npy",
                    "--arg", "a1.npy", "--out", out, "--workers", "\(workers)", "--quiet"
                ], cwd: s.dir.path, timeout: 60)
            // 5 x 4,000 x 5 examples x 3 floats: 1.2 MB of results on a 64 KB disk.
            #expect(r.status == 1, "exit \(r.status): \(r.stderr)")
            #expect(!r.timedOut)
            #expect(r.stderr.contains(out + "/y.npy") && r.stderr.contains("No space left on device"), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out + "/manifest.json"))
            if workers == 0 { #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)") }
        }
        #expect(orphanedWorkers().isEmpty)
    }

    @Test(
        "--dry-run: the shards, the result's size against the free space, a time estimate; nothing written",
        .enabled(if: TinyFilesystem.available, "needs to mount a tmpfs (root in this container)"))
    func dryRun() throws {
        let s = try Scratch(); defer { s.remove() }
        try writeNpy(s.dir.file("many.npy"), shape: [4000, 1], (0..<4000).map { Float($0) })
        let fs = try TinyFilesystem(at: s.dir.file("small"), kilobytes: 64)
        defer { fs.unmount() }
        let argv = ["run", "--mode", "product", "--model", "model.onnx", "--x", "x.npy", "--arg", "many.npy", "--arg", "a1.npy", "--dry-run"]
        for (out, fits) in [(s.out, true), (fs.path + "/out", false)] {
            let r = try runLoom(argv + ["--out", out, "--workers", "2"], cwd: s.dir.path)
            #expect(r.status == 0, "\(r.stderr)")
            let lines = r.stdout.split(separator: "\n").map(String.init)
            #expect(lines.count == 3, "\(r.stdout)")
            #expect(lines.first?.contains("100000 examples in") == true, "\(r.stdout)")
            // 5 × 4,000 × 5 examples × 3 floats.
            #expect(lines.count > 1 && lines[1].contains("y.npy [5, 4000, 5, 3]: 1.2 MB"), "\(r.stdout)")
            #expect(lines.count > 1 && lines[1].contains(fits ? "fits" : "does NOT fit"), "\(r.stdout)")
            #expect(lines.count > 2 && lines[2].contains("on 2 workers"), "\(r.stdout)")
            #expect(!FileManager.default.fileExists(atPath: out), "a dry run writes nothing")
        }
    }

    @Test("without OpenBLAS: one line naming the library and the package to install, from run, worker and coordinator")
    func missingBLAS() throws {
        let s = try Scratch(); defer { s.remove() }
        let env = ["LOOM_OPENBLAS": "/nonexistent/libopenblas.so.0"]
        let argv = ["--mode", "pairwise", "--func", "predict", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy", "--arg", "a1.npy"]
        let run = try runProcess(Repository.loomBinary, ["run"] + argv + ["--out", s.out, "--quiet"], cwd: s.dir.path, environment: env)
        expectRefusal(run, ["cannot load OpenBLAS", "/nonexistent/libopenblas.so.0", "libopenblas0-pthread"], out: s.out)
        let worker = try runProcess(Repository.loomBinary, ["worker", "--connect", "ipc://\(s.dir.file("nobody"))"], environment: env, timeout: 20)
        expectRefusal(worker, ["cannot load OpenBLAS"], out: s.out)
        // The coordinator loads it for the model's cost estimate.
        let coordinator = try runProcess(
            Repository.loomBinary, ["coordinator", "--bind", "ipc://\(s.dir.file("c"))"] + argv + ["--out", s.out, "--quiet"],
            cwd: s.dir.path, environment: env, timeout: 20)
        expectRefusal(coordinator, ["cannot load OpenBLAS"], out: s.out)
    }

    @Test("without libzmq or libcrypto: one line naming the package; a run in one process needs no libzmq")
    func missingRuntimeLibraries() throws {
        let s = try Scratch(); defer { s.remove() }
        let noZMQ = ["LOOM_LIBZMQ": "/nonexistent/libzmq.so.5"]
        let argv = ["--mode", "pairwise", "--func", "predict", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy", "--arg", "a1.npy"]
        let worker = try runProcess(Repository.loomBinary, ["worker", "--connect", "ipc://\(s.dir.file("nobody"))"], environment: noZMQ, timeout: 20)
        expectRefusal(worker, ["cannot load libzmq", "/nonexistent/libzmq.so.5", "apt-get install libzmq5"], out: s.out)
        let coordinator = try runProcess(
            Repository.loomBinary, ["coordinator", "--bind", "ipc://\(s.dir.file("c"))"] + argv + ["--out", s.out, "--quiet"],
            cwd: s.dir.path, environment: noZMQ, timeout: 20)
        expectRefusal(coordinator, ["cannot load libzmq"], out: s.out)
        let distributed = try runProcess(
            Repository.loomBinary, ["run"] + argv + ["--out", s.out, "--workers", "2", "--quiet"],
            cwd: s.dir.path, environment: noZMQ, timeout: 20)
        expectRefusal(distributed, ["cannot load libzmq"], out: s.out)
        // In one process there is no socket, so no libzmq: the run completes.
        let local = try runProcess(Repository.loomBinary, ["run"] + argv + ["--out", s.out, "--quiet"], cwd: s.dir.path, environment: noZMQ)
        #expect(local.status == 0, "\(local.stderr)")
        #expect(FileManager.default.fileExists(atPath: s.out + "/manifest.json"))
        // libcrypto hashes the model at load: every command that reads one needs it.
        let noCrypto = ["LOOM_LIBCRYPTO": "/nonexistent/libcrypto.so.3"]
        let inspect = try runProcess(Repository.loomBinary, ["inspect", "model.onnx"], cwd: s.dir.path, environment: noCrypto)
        #expect(inspect.status == 127, "exit \(inspect.status): \(inspect.stderr)")
        #expect(inspect.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(inspect.stderr)")
        #expect(inspect.stderr.contains("cannot load libcrypto") && inspect.stderr.contains("apt-get install libssl3"), "\(inspect.stderr)")
    }

    @Test("a bad flag value gets a usage error, not a crash")
    func flags() throws {
        let s = try Scratch(); defer { s.remove() }
        let r = try s.run(extra: ["--batch-size", "0"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("batch-size"))
        // Negative numbers are values, not flags: one line, as with --workers=-1.
        for (flag, words) in [("--workers", "--workers must be 0 or more"), ("--batch-size", "--batch-size must be at least 1")] {
            let r = try s.run(extra: [flag, "-3"])
            expectRefusal(r, [words], out: s.out)
        }
        let m = try runLoom(["run", "--mode", "sideways", "--model", "m", "--x", "x", "--out", s.out], cwd: s.dir.path)
        #expect(m.status != 0)
        #expect(m.stderr.contains("sideways"))
    }
}

/// A tmpfs of a few kilobytes mounted for a test (needs root, as in CI's container).
struct TinyFilesystem {
    let path: String

    /// Whether this process may mount one.
    static let available: Bool = {
        guard getuid() == 0 else { return false }
        let probe = TemporaryDirectory("loom-mount-probe")
        defer { probe.remove() }
        guard let fs = try? TinyFilesystem(at: probe.file("m"), kilobytes: 16) else { return false }
        fs.unmount()
        return true
    }()

    init(at path: String, kilobytes: Int) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let r = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", path], timeout: 10)
        guard r.status == 0 else { throw TestFailure("mount failed: \(r.stderr)") }
    }

    func unmount() { _ = try? runProcess("/bin/umount", [path], timeout: 10) }
}

/// A test's own set-up failed (not Loom).
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
