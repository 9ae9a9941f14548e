import Foundation
import LoomTestSupport
import Testing

/// The README's first steps: `scripts/install`, and its snippet that reads a result back in Python.
@Suite("getting started (README)")
struct GettingStartedTests {
    @Test("scripts/install puts a working loom in PREFIX/bin, and refuses an unknown option")
    func install() throws {
        let prefix = TemporaryDirectory(); defer { prefix.remove() }
        // The binary the tests built, so that the test does not make a release build.
        let r = try runProcess(
            Repository.root + "/scripts/install", [prefix.path], environment: ["LOOM_INSTALL_BINARY": Repository.loomBinary, "PATH": "/usr/bin:/bin"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("installed") && r.stdout.contains("not on your PATH"), "\(r.stdout)")
        let version = try runProcess(prefix.file("bin/loom"), ["--version"])
        #expect(version.status == 0 && !version.stdout.isEmpty)
        let bad = try runProcess(Repository.root + "/scripts/install", ["--prefix"], environment: ["LOOM_INSTALL_BINARY": Repository.loomBinary])
        #expect(bad.status == 2 && bad.stderr.contains("usage: scripts/install [PREFIX]"), "\(bad.stderr)")
    }

    @Test("the README's Python snippet reads a real result through manifest.json")
    func readBack() throws {
        let readme = try String(contentsOfFile: Repository.root + "/README.md", encoding: .utf8)
        // The second python block: the one that reads results/ back.
        let blocks = readme.components(separatedBy: "```python\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        let snippet = try #require(blocks.count >= 2 ? blocks[1] : nil, "README.md has no second python block")
        #expect(snippet.contains("manifest.json"))
        let s = TemporaryDirectory(); defer { s.remove() }
        let demo = Repository.root + "/scripts/demo-data"
        let run = try runLoom(
            [
                "run", "--mode", "product", "--model", demo + "/model.onnx", "--x", demo + "/x.npy", "--arg", demo + "/a0.npy", "--arg",
                demo + "/a1.npy", "--out", s.file("results"), "--quiet"
            ], cwd: s.path)
        #expect(run.status == 0, "\(run.stderr)")
        try snippet.write(toFile: s.file("read.py"), atomically: true, encoding: .utf8)
        let py = try runProcess("/usr/bin/env", ["python3", "read.py"], cwd: s.path)
        #expect(py.status == 0, "\(py.stderr)")
        #expect(py.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[] (5, 3, 2, 3)", "\(py.stdout)")
    }
}

@Suite("loom show")
struct ShowTests {
    @Test("a results folder: the job in a line, each file with its index explained, then its values")
    func resultsFolder() throws {
        let s = try Scratch(); defer { s.dir.remove() }
        let r = try s.run(mode: "pairwise", extra: ["--func", "marginalize", "--motif", "AC"])
        #expect(r.status == 0, "\(r.stderr)")
        let show = try runLoom(["show", s.out, "--limit", "2"])
        #expect(show.status == 0, "\(show.stderr)")
        let lines = show.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("marginalize over the pairwise of x.npy, a0.npy, a1.npy") == true, "\(show.stdout)")
        #expect(lines.first?.contains("leading axes are (X ") == true)
        #expect(lines.contains { $0.hasPrefix("y_0.npy: output [0] (before): shape") }, "\(show.stdout)")
        #expect(lines.contains { $0.hasPrefix("y_1.npy: output [1] (after): shape") }, "\(show.stdout)")
    }
}

@Suite("--status-file and --metrics", .serialized)
struct StatusFileTests {
    @Test("a long job on 2 workers: the file says running with a count that grows, then done with every shard")
    func duringAndAfter() throws {
        let job = try LongJob(); defer { job.remove() }
        let path = job.s.dir.file("status.json")
        let p = try job.start(workers: 2, extra: ["--status-file", path], environment: ["LOOM_TEST_SHARD_DELAY_US": "300"])
        var running: [String: Any]? = nil
        let deadline = Date().addingTimeInterval(60)
        while running == nil && Date() < deadline && p.isRunning {
            if let s = try? readJSON(path), s["state"] as? String == "running", (s["shards_done"] as? Int ?? 0) > 0 { running = s }
            usleep(100_000)
        }
        #expect(waitOrKill(p, timeout: 120))
        #expect(p.terminationStatus == 0)
        let r = try #require(running, "no running status was seen")
        #expect(r["shards_total"] as? Int == 10_000 && (r["shards_done"] as? Int ?? 0) < 10_000, "\(r)")
        #expect((r["workers_alive"] as? Int ?? 0) >= 1, "\(r)")
        let done = try readJSON(path)
        #expect(done["state"] as? String == "done" && done["shards_done"] as? Int == 10_000, "\(done)")
        #expect(done["examples_done"] as? Int == 100_000 && (done["bytes_to_workers"] as? Int ?? 0) > 0, "\(done)")
    }

    /// Scrapes `url` with Python's HTTP client until a scrape shows the job part-way, then once more;
    /// parses both with prometheus_client's text-format parser. Prints {"first", "second", "content_type",
    /// "missing", "wrong_method"}: samples as "name{label=value,...}" -> value.
    static let scraper = #"""
        import json, sys, time, urllib.error, urllib.request
        from prometheus_client.parser import text_string_to_metric_families
        url = sys.argv[1]
        def scrape():
            with urllib.request.urlopen(url, timeout=5) as r:
                kind, text = r.headers["Content-Type"], r.read().decode()
            samples = {}
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                    samples[f"{s.name}{{{labels}}}"] = s.value
            return kind, samples
        deadline, first = time.time() + 90, None
        while time.time() < deadline:
            try:
                kind, first = scrape()
                if 0 < first.get("loom_shards_done{}", 0) < first.get("loom_job_shards{}", 0) and first.get("loom_workers_alive{}", 0) > 0:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            first = None
            time.sleep(0.1)
        time.sleep(1)
        kind, second = scrape()
        def status(path, method="GET"):
            try:
                urllib.request.urlopen(urllib.request.Request(url.replace("/metrics", path), method=method), timeout=5)
                return 200
            except urllib.error.HTTPError as e:
                return e.code
        print(json.dumps({"first": first, "second": second, "content_type": kind, "missing": status("/nothing"), "wrong_method": status("/metrics", "POST")}))
        """#

    @Test("--metrics: scraped during a job on 2 workers and parsed as Prometheus text; counts grow; the status file agrees")
    func metricsDuringAJob() throws {
        let job = try LongJob(); defer { job.remove() }
        let port = freePort()
        let url = "http://127.0.0.1:\(port)/metrics"
        let status = job.s.dir.file("status.json")
        let p = try job.start(
            workers: 2, extra: ["--metrics", "127.0.0.1:\(port)", "--status-file", status], environment: ["LOOM_TEST_SHARD_DELAY_US": "300"])
        let scraped = try runProcess("/usr/bin/python3", ["-c", Self.scraper, url], timeout: 120)
        #expect(waitOrKill(p, timeout: 120))
        #expect(p.terminationStatus == 0)
        #expect(scraped.status == 0, "\(scraped.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(scraped.stdout.utf8)) as? [String: Any], "\(scraped.stdout)")
        let first = try #require(result["first"] as? [String: Double], "no scrape showed the job part-way: \(scraped.stdout)")
        let second = try #require(result["second"] as? [String: Double])
        #expect((result["content_type"] as? String)?.hasPrefix("text/plain; version=0.0.4") == true)
        #expect(result["missing"] as? Int == 404 && result["wrong_method"] as? Int == 405, "\(result)")
        #expect(first["loom_job_shards{}"] == 10_000 && first["loom_job_examples{}"] == 100_000)
        #expect(first["loom_job_state{state=running}"] == 1 && first["loom_job_state{state=done}"] == 0)
        let done = first["loom_shards_done{}"] ?? 0
        let inFlight = first["loom_shards_in_flight{}"] ?? -1
        #expect(done > 0 && inFlight >= 0 && first["loom_shards_queued{}"] == 10_000 - done - inFlight, "\(first)")
        #expect((first["loom_workers_alive{}"] ?? 0) >= 1 && (first["loom_wire_bytes_total{direction=to_workers}"] ?? 0) > 0, "\(first)")
        for name in [
            "loom_examples_total{}", "loom_workers_lost_total{}", "loom_leases_expired_total{}", "loom_shards_reissued_total{}",
            "loom_duplicates_dropped_total{}", "loom_shards_resumed{}", "loom_examples_per_second{}"
        ] {
            #expect(first[name] != nil, "\(name) is served")
        }
        #expect((second["loom_examples_total{}"] ?? 0) > (first["loom_examples_total{}"] ?? 0), "the example count grows between scrapes")
        #expect((second["loom_wire_bytes_total{direction=to_collector}"] ?? 0) > 0, "\(second)")
        let final = try readJSON(status)
        #expect(final["state"] as? String == "done" && (final["bytes_to_collector"] as? Int ?? 0) > 0 && final["duplicates_dropped"] != nil, "\(final)")
        #expect(final["shards_resumed"] as? Int == 0)
    }

    @Test("--metrics with an address that cannot be used: one line, exit 1")
    func metricsBadAddress() throws {
        let s = try Scratch(); defer { s.remove() }
        expectRefusal(try s.run(extra: ["--metrics", "127.0.0.1:99999"]), ["--metrics 127.0.0.1:99999", "port from 0 to 65535"], out: s.out)
        expectRefusal(try s.run(extra: ["--metrics", "192.0.2.1:0"]), ["--metrics 192.0.2.1:0", "cannot listen there"], out: s.out)
    }

    @Test("in one process: done, with the shard and example counts")
    func inProcess() throws {
        let s = try Scratch(); defer { s.remove() }
        let r = try s.run(extra: ["--status-file", s.dir.file("status.json")])
        #expect(r.status == 0, "\(r.stderr)")
        let done = try readJSON(s.dir.file("status.json"))
        #expect(done["state"] as? String == "done" && done["shards_done"] as? Int == done["shards_total"] as? Int, "\(done)")
        #expect(done["workers_alive"] == nil, "no distributed figures in one process")
    }
}
