import Foundation
import LoomTensor
import LoomTestSupport
import Testing

/// `loom run` with a conformance case's files, in the case's folder.
func runCaseFiles(_ name: String, _ argv: [String], out: String, workers: Int = 0) throws -> ProcessResult {
    try runLoom(["run"] + argv + ["--workers", "\(workers)", "--out", out, "--quiet"], cwd: Repository.conformanceDirectory + "/" + name)
}

let dlsArgv = [
    "--mode", "pairwise", "--func", "deep-lift-shap", "--model", "model.onnx", "--x", "x.npy",
    "--arg", "a0.npy", "--arg", "a1.npy", "--batch-size", "4"
]
let ablateArgv = ["--mode", "product", "--func", "ablate", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy"]

@Suite("attribution functions through the CLI (real loom processes)")
struct AttributionCLITests {
    @Test("--inner-func: its help lists exactly the functions it takes, and anything else is refused with that list")
    func innerFunctionValues() throws {
        let help = try runLoom(["run", "--help"]).stdout.replacingOccurrences(of: "\n", with: " ").split(separator: " ").joined(separator: " ")
        let listed = try #require(help.range(of: "--target, --hypothetical). (values: ").map { help[$0.upperBound...] }, "\(help)")
        #expect(listed.hasPrefix("predict, deep-lift-shap, saturation-mutagenesis)"), "\(listed.prefix(80))")
        let out = TemporaryDirectory("loom-inner")
        defer { out.remove() }
        let refused = try runCaseFiles(
            "fd100_product_ablate", ablateArgv + ["--start", "1", "--end", "5", "--inner-func", "marginalize"], out: out.path)
        #expect(refused.status != 0 && refused.stderr.contains("'predict', 'deep-lift-shap' or 'saturation-mutagenesis'"), "\(refused.stderr)")
    }

    @Test("bad options and inputs get one-line refusals naming the flag or file, and no manifest")
    func refusals() throws {
        let out = TemporaryDirectory()
        defer { out.remove() }
        let two = ["--mode", "pairwise", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy"]
        let cases: [(String, [String], [String])] = [
            ("fd100_product_ablate", ablateArgv + ["--end", "20"], ["--start", "ablate needs the region"]),
            ("fd100_product_ablate", ablateArgv + ["--start", "90", "--end", "120"], ["--end:", "falls off", "100"]),
            ("fd100_product_ablate", ablateArgv + ["--start", "-5", "--end", "10"], ["--start:", "falls off"]),
            ("fd100_product_ablate", ablateArgv + ["--batch-size", "-3", "--start", "1", "--end", "5"], ["--batch-size must be at least 1"]),
            ("fd100_product_ablate", ablateArgv + ["--start", "20", "--end", "10"], ["must come after its start"]),
            ("fd100_product_ablate", ablateArgv + ["--start", "1", "--end", "5", "--n", "0"], ["--n", "at least one shuffle"]),
            ("convdense_pairwise_two_outputs", two + ["--func", "saturation-mutagenesis"], ["one output", "y0, y1"]),
            ("convdense_pairwise_two_outputs", two + ["--func", "deep-lift-shap", "--random-state", "0"], ["one output", "y0, y1"]),
            ("tutorial_pairwise_deep_lift_shap", dlsArgv + ["--random-state", "0", "--target", "3"], ["--target 3 is out of range", "1 output"]),
            ("tutorial_pairwise_deep_lift_shap", dlsArgv + ["--random-state", "0", "--n-shuffles", "0"], ["--n-shuffles"]),
            ("tutorial_pairwise_deep_lift_shap", dlsArgv + ["--inner-func", "predict"], ["--inner-func", "only marginalize and ablate"]),
            (
                "fd100_product_ablate", ablateArgv + ["--start", "1", "--end", "5", "--references", "x.npy"],
                ["--references", "only applies to --func deep-lift-shap"]
            ),
            ("tutorial_pairwise_deep_lift_shap", dlsArgv + ["--references", "x.npy"], ["--references", "x.npy", "(5, S, 4, 10)"]),
            ("tutorial_pairwise_deep_lift_shap", dlsArgv + ["--random-state", "0", "--nonlinear", "Conv"], ["--nonlinear Conv", "no DeepLIFT rule"]),
            ("fd100_product_ablate", ablateArgv + ["--start", "1", "--end", "5", "--linear", "Relu"], ["--linear", "runs no deep-lift-shap"])
        ]
        for (name, argv, words) in cases {
            expectRefusal(try runCaseFiles(name, argv, out: out.path), words, out: out.path)
        }
    }

    @Test("an export that records no modules: one line says every activation node takes its rule; --linear changes the result")
    func unrecordedModules() throws {
        let out = TemporaryDirectory()
        defer { out.remove() }
        let argv = ["--mode", "pairwise", "--func", "deep-lift-shap", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy", "--random-state", "0"]
        let r = try runCaseFiles("loom_bpnet_count_pairwise_deep_lift_shap", argv, out: out.file("a"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").filter { $0.contains("records no modules") }.count == 1, "\(r.stderr)")
        let linear = try runCaseFiles("loom_bpnet_count_pairwise_deep_lift_shap", argv + ["--linear", "Relu"], out: out.file("b"))
        #expect(linear.status == 0, "\(linear.stderr)")
        #expect(try FileIO.readAll(out.file("a/y.npy")) != FileIO.readAll(out.file("b/y.npy")), "plain gradients through the Relus differ from rescale")
        #expect(try readJSON(out.file("b/job.json")).description != (try readJSON(out.file("a/job.json"))).description, "--linear is part of the job")
    }

    @Test("a linear model's tiny convergence deltas (float32 rounding) are no warning, as in tangermeme")
    func noFalseConvergenceWarning() throws {
        let out = TemporaryDirectory()
        defer { out.remove() }
        let r = try runCaseFiles("tutorial_pairwise_deep_lift_shap", dlsArgv + ["--random-state", "0"], out: out.path)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("warning"), "\(r.stderr)")
    }

    @Test("deep-lift-shap refuses X with an unknown base, naming the sequence")
    func unknownBase() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let src = Repository.conformanceDirectory + "/tutorial_pairwise_deep_lift_shap"
        for f in ["model.onnx", "a0.npy", "a1.npy"] { try writeFile(dir.file(f), try FileIO.readAll(src + "/" + f)) }
        var x = try NpyArray.read(path: src + "/x.npy").floatTensor()
        for c in 0..<4 { x.storage[(3 * 4 + c) * 10 + 6] = 0 } // sequence 3, position 6: N
        try NpyArray.write(x, to: dir.file("x.npy"))
        let r = try runLoom(["run"] + dlsArgv + ["--random-state", "0", "--out", dir.file("out"), "--quiet"], cwd: dir.path)
        expectRefusal(r, ["X[3] is not one-hot", "position 6"], out: dir.file("out"))
        // ablate allows unknown bases, as tangermeme does.
        let a = try runLoom(
            [
                "run", "--mode", "pairwise", "--func", "ablate", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy",
                "--arg", "a1.npy", "--start", "2", "--end", "8", "--n", "2", "--random-state", "1", "--out", dir.file("ab"), "--quiet"
            ],
            cwd: dir.path)
        #expect(a.status == 0, "\(a.stderr)")
    }

    @Test("without --random-state a seed is drawn and printed; passing it back repeats the run bit for bit")
    func drawnSeed() throws {
        let first = TemporaryDirectory(), second = TemporaryDirectory()
        defer { first.remove(); second.remove() }
        let r = try runCaseFiles("tutorial_pairwise_deep_lift_shap", dlsArgv, out: first.path)
        #expect(r.status == 0, "\(r.stderr)")
        let line = r.stderr.split(separator: "\n").first { $0.contains("drew") } ?? ""
        let seed = line.split(separator: " ").compactMap { Int($0) }.first
        #expect(seed != nil, "stderr: \(r.stderr)")
        let again = try runCaseFiles("tutorial_pairwise_deep_lift_shap", dlsArgv + ["--random-state", "\(seed ?? -1)"], out: second.path)
        #expect(again.status == 0)
        #expect(!again.stderr.contains("drew"))
        #expect(try resultBytes(first.path) == resultBytes(second.path))
        // The same command again into the first folder takes that job's seed, so it resumes rather than clashing.
        let resumed = try runCaseFiles("tutorial_pairwise_deep_lift_shap", dlsArgv, out: first.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("using \(seed ?? -1), the seed of the same job already in"), "\(resumed.stderr)")
    }

    @Test("--references: the same attributions in process and on 2 workers, bit for bit, and a different job than shuffles")
    func givenReferences() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let src = Repository.conformanceDirectory + "/loom_convpool_pairwise_deep_lift_shap"
        for f in ["model.onnx", "x.npy", "a0.npy"] { try writeFile(dir.file(f), try FileIO.readAll(src + "/" + f)) }
        // Three random one-hot references per sequence (4 sequences, length 100).
        var rng = SystemRandomNumberGenerator()
        var refs = [Float](repeating: 0, count: 4 * 3 * 4 * 100)
        for i in 0..<(4 * 3) { for pos in 0..<100 { refs[(i * 4 + Int.random(in: 0..<4, using: &rng)) * 100 + pos] = 1 } }
        try writeNpy(dir.file("refs.npy"), shape: [4, 3, 4, 100], refs)
        let argv = [
            "run", "--mode", "pairwise", "--func", "deep-lift-shap", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy",
            "--references", "refs.npy", "--batch-size", "2", "--quiet"
        ]
        let a = try runLoom(argv + ["--out", dir.file("w0")], cwd: dir.path)
        let b = try runLoom(argv + ["--out", dir.file("w2"), "--workers", "2"], cwd: dir.path)
        #expect(a.status == 0 && b.status == 0, "\(a.stderr) \(b.stderr)")
        #expect(!a.stderr.contains("drew"), "given references need no seed")
        #expect(try resultBytes(dir.file("w0")) == resultBytes(dir.file("w2")))
        let m = try readJSON(dir.file("w0") + "/manifest.json")
        #expect((m["outputs"] as? [[String: Any]])?.first?["shape"] as? [Int] == [4, 3, 4, 100])
        #expect(orphanedWorkers().isEmpty)
    }

    @Test("an operation DeepLIFT treats as linear gives a convergence warning, never an error")
    func convergenceWarning() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        // y = exp(W · flatten(X)): Exp has no DeepLIFT rule (tangermeme leaves torch.exp alone too).
        var b = ONNXBuilder()
        b.input("X", [nil, 4, 10])
        b.output("y")
        b.initializer("shape", shape: [2], ints: [0, -1])
        b.node("Reshape", ["X", "shape"], ["flat"])
        b.initializer("w", shape: [40, 1], values: (0..<40).map { Float($0 % 7) * 0.3 - 0.8 })
        b.node("MatMul", ["flat", "w"], ["z"])
        b.node("Exp", ["z"], ["y"])
        try b.write(to: dir.file("exp.onnx"))
        try writeFile(dir.file("x.npy"), try FileIO.readAll(Repository.conformanceDirectory + "/tutorial_pairwise_deep_lift_shap/x.npy"))
        // The model takes X alone: a product with no args is X itself.
        let r = try runLoom(
            [
                "run", "--mode", "product", "--func", "deep-lift-shap", "--model", "exp.onnx", "--x", "x.npy",
                "--random-state", "0", "--n-shuffles", "4", "--out", dir.file("out"), "--quiet"
            ], cwd: dir.path)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning: deep-lift-shap convergence deltas"), "\(r.stderr)")
        #expect(r.stderr.contains("take their plain gradient"), "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir.file("out") + "/manifest.json"))
        // Without --quiet, an in-process run ends with the convergence it saw.
        let loud = try runLoom(
            [
                "run", "--mode", "product", "--func", "deep-lift-shap", "--model", "exp.onnx", "--x", "x.npy",
                "--random-state", "0", "--n-shuffles", "4", "--out", dir.file("loud")
            ], cwd: dir.path)
        #expect(loud.stdout.contains("deep-lift-shap: 20 example-reference pairs, largest convergence delta"), "\(loud.stdout)")
        #expect(loud.stdout.contains("batches warned"))
    }
}
