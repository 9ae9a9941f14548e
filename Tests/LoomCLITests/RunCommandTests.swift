import Foundation
import LoomTensor
import LoomTestSupport
import Testing

func readJSON(_ path: String) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
}

@Suite("loom run and loom inspect (real processes)")
struct RunCommandTests {
    @Test("the manifest records the job: mode, function, model hash, inputs, version, shards")
    func manifest() throws {
        let s = try Scratch(); defer { s.remove() }
        let r = try s.run(extra: ["--batch-size", "4"])
        #expect(r.status == 0, "\(r.stderr)")
        let m = try readJSON(s.out + "/manifest.json")
        #expect(m["mode"] as? String == "pairwise")
        #expect((m["function"] as? [String: Any])?["name"] as? String == "predict")
        #expect(m["batch_size"] as? Int == 4)
        #expect(m["examples"] as? Int == 25)
        #expect(m["shards"] as? Int == 7)
        #expect(m["axes"] as? [Int] == [5, 5])
        #expect((m["loom_version"] as? String)?.isEmpty == false)
        let model = m["model"] as! [String: Any]
        #expect(model["sha256"] as? String == SHA256.hex(try FileIO.readAll(s.dir.file("model.onnx"))))
        let inputs = m["inputs"] as! [[String: Any]]
        #expect(inputs.map { $0["shape"] as! [Int] } == [[5, 4, 100], [5, 1], [5, 1]])
        #expect((m["job_id"] as? String)?.count == 64)
        let outputs = m["outputs"] as! [[String: Any]]
        #expect(outputs.count == 1)
        #expect(outputs[0]["shape"] as? [Int] == [5, 5, 3])
        #expect(outputs[0]["dtype"] as? String == "float32")
    }

    @Test("--out: the same job may run again; a different job is refused unless --overwrite; a foreign folder is refused")
    func outFolder() throws {
        let s = try Scratch(); defer { s.remove() }
        #expect(try s.run().status == 0)
        #expect(try s.run().status == 0)
        let other = try s.run(extra: ["--func", "marginalize", "--motif", "AC"])
        expectRefusal(other, ["different job", "--overwrite"], out: s.out + "/nonexistent")
        #expect(FileManager.default.fileExists(atPath: s.out + "/manifest.json"), "the earlier result must be left alone")
        let forced = try s.run(extra: ["--func", "marginalize", "--motif", "AC", "--overwrite"])
        #expect(forced.status == 0, "\(forced.stderr)")
        let leaves = try ConformanceCase.leaves(manifest: s.out + "/manifest.json")
        #expect(leaves.map(\.file) == ["y_0.npy", "y_1.npy"])
        #expect(!FileManager.default.fileExists(atPath: s.out + "/y.npy"), "the old job's y.npy is removed")
        let foreign = s.dir.file("foreign")
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        try writeFile(foreign + "/notes.txt", Array("mine".utf8))
        let r = try runLoom(
            ["run", "--mode", "pairwise", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy", "--arg", "a1.npy", "--out", foreign], cwd: s.dir.path)
        expectRefusal(r, ["not written by Loom"], out: foreign)
    }

    @Test("the same command resumes a job with the shard size it was started with, even one an older Loom chose")
    func resumeKeepsShardSize() throws {
        let s = try Scratch(); defer { s.remove() }
        #expect(try s.run(extra: ["--batch-size", "2", "--shard-batches", "3"]).status == 0)
        #expect(try readJSON(s.out + "/job.json")["spec"].flatMap { ($0 as? [String: Any])?["shard_batches"] as? Int } == 3)
        // Without --shard-batches (the automatic size would be 1 here), the job in --out is the same job: it resumes, all done.
        let again = try s.run(extra: ["--batch-size", "2"])
        #expect(again.status == 0, "\(again.stderr)")
        var m = try readJSON(s.out + "/manifest.json")
        #expect(m["batches_per_shard"] as? Int == 3)
        #expect((m["reliability"] as? [String: Any])?["resumed_shards"] as? Int == m["shards"] as? Int)
        // An explicit, different shard size is a different job.
        let other = try s.run(extra: ["--batch-size", "2", "--shard-batches", "2"])
        #expect(other.status == 1 && other.stderr.contains("different job") && other.stderr.contains("--overwrite"), "\(other.stderr)")
        // A job.json from before shards could hold several batches has no shard size: it was one.
        #expect(try s.run(extra: ["--batch-size", "2", "--shard-batches", "1", "--overwrite"]).status == 0)
        var claim = try readJSON(s.out + "/job.json")
        var spec = claim["spec"] as! [String: Any]
        spec["shard_batches"] = nil
        claim["spec"] = spec
        try JSONSerialization.data(withJSONObject: claim).write(to: URL(fileURLWithPath: s.out + "/job.json"))
        let old = try s.run(extra: ["--batch-size", "2"])
        #expect(old.status == 0, "\(old.stderr)")
        m = try readJSON(s.out + "/manifest.json")
        #expect(m["batches_per_shard"] as? Int == 1)
        #expect((m["reliability"] as? [String: Any])?["resumed_shards"] as? Int == 13)
    }

    @Test("a run that fails at the first batch leaves the out folder untouched")
    func failEarly() throws {
        let s = try Scratch(); defer { s.remove() }
        try s.writeBadReshapeModel()
        let r = try runLoom(["run", "--mode", "product", "--model", "bad.onnx", "--x", "x.npy", "--out", s.out, "--quiet"], cwd: s.dir.path)
        expectRefusal(r, ["bad.onnx", "bad_reshape", "Reshape"], out: s.out)
        #expect(!FileManager.default.fileExists(atPath: s.out))
    }

    @Test("progress: plain lines when stderr is not a terminal")
    func progress() throws {
        let s = try Scratch(); defer { s.remove() }
        let r = try runLoom(
            [
                "run", "--mode", "pairwise", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy", "--arg", "a1.npy",
                "--out", s.out, "--batch-size", "2"
            ], cwd: s.dir.path)
        #expect(r.status == 0)
        #expect(r.stderr.contains("loom: progress 100% 13/13 shards"))
        #expect(!r.stderr.contains("\r"))
        #expect(r.stdout.contains("wrote 25 examples"))
    }

    @Test("running a finished job again says the result was already complete, not that it wrote it")
    func alreadyComplete() throws {
        let c = try ConformanceCase(directory: Repository.conformanceDirectory + "/tutorial_pairwise_predict_single")
        let out = TemporaryDirectory(); defer { out.remove() }
        let first = try runLoom(["run"] + c.argv + ["--out", out.path], cwd: c.directory)
        #expect(first.status == 0 && first.stdout.contains("loom: wrote 5 examples"), "\(first.stdout)")
        let again = try runLoom(["run"] + c.argv + ["--out", out.path], cwd: c.directory)
        #expect(again.status == 0)
        #expect(again.stdout.contains("already held the complete result") && !again.stdout.contains("wrote"), "\(again.stdout)")
    }

    @Test("inspect lists inputs, outputs and operators, and whether each is supported")
    func inspect() throws {
        let r = try runLoom(["inspect", Repository.conformanceDirectory + "/bpnet_product_predict_control_tracks/model.onnx"])
        #expect(r.status == 0)
        for w in ["X  float32 [batch, 4, 160]", "a0  float32 [batch, 2, 160]", "Conv", "x5", "supported", "opset 20", "Loom can run this model."] {
            #expect(r.stdout.contains(w), "'\(w)' missing from \(r.stdout)")
        }
        // Two outputs (profile and counts): deep-lift-shap needs a one-output wrapper, and inspect says so.
        #expect(r.stdout.contains("deep-lift-shap: not on this model"), "\(r.stdout)")
        let counts = try runLoom(["inspect", Repository.conformanceDirectory + "/loom_bpnet_count_pairwise_deep_lift_shap/model.onnx"])
        #expect(counts.stdout.contains("deep-lift-shap: every operator on X's path has a reverse rule"), "\(counts.stdout)")
        let dir = TemporaryDirectory(); defer { dir.remove() }
        var b = ONNXBuilder()
        b.input("x", [nil, 3])
        b.output("y")
        b.node("NonMaxSuppression", ["x"], ["y"], name: "nms")
        try b.write(to: dir.file("m.onnx"))
        let bad = try runLoom(["inspect", dir.file("m.onnx")])
        #expect(bad.status == 2)
        #expect(bad.stdout.contains("NonMaxSuppression") && bad.stdout.contains("NOT SUPPORTED") && bad.stdout.contains("nms"))
    }
}
