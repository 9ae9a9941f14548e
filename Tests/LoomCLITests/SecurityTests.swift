import Foundation
import LoomTensor
import LoomTestSupport
import Testing

private func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

/// Waits until `condition` holds, at most `seconds`.
private func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let until = Date().addingTimeInterval(seconds)
    while Date() < until { if condition() { return true }; usleep(50_000) }
    return condition()
}

@Suite("security: CURVE keys, ZAP, --insecure (real processes, real sockets)", .serialized)
struct SecurityTests {
    @Test("keygen writes a 0600 secret and a public key, refuses to overwrite; a key others can read is refused")
    func keygen() throws {
        let d = TemporaryDirectory()
        defer { d.remove() }
        let r = try runLoom(["keygen", "alice", "--dir", d.path])
        #expect(r.status == 0, "\(r.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: d.file("alice.key"))
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let pub = text(d.file("alice.pub"))
        #expect(pub.contains("#") && pub.split(separator: "\n").last?.split(separator: " ").first?.count == 40, "\(pub)")
        let again = try runLoom(["keygen", "alice", "--dir", d.path])
        #expect(again.status != 0 && again.stderr.contains("exists already"), "\(again.stderr)")
        chmod(d.file("alice.key"), 0o644)
        let port = freePort()
        let c = try runLoom(
            [
                "coordinator", "--bind", "tcp://127.0.0.1:\(port)", "--key", d.file("alice.key"), "--allow", d.file("alice.pub"),
                "--out", d.file("out")
            ] + (try longCase()).argv, cwd: (try longCase()).directory, timeout: 30)
        #expect(c.status != 0 && c.stderr.contains("readable by others") && c.stderr.contains("chmod 600"), "\(c.stderr)")
        #expect(c.stderr.split(separator: "\n").count == 1, "one line: \(c.stderr)")
    }

    @Test("tcp without keys is refused in one line unless --insecure; ipc needs none")
    func insecureRefused() throws {
        let c = try longCase()
        let d = TemporaryDirectory()
        defer { d.remove() }
        let coordinator = try runLoom(["coordinator", "--bind", "tcp://127.0.0.1:\(freePort())", "--out", d.file("o")] + c.argv, cwd: c.directory, timeout: 30)
        #expect(
            coordinator.status != 0 && coordinator.stderr.contains("--insecure") && coordinator.stderr.contains("--key and --allow"), "\(coordinator.stderr)")
        let worker = try runLoom(["worker", "--connect", "tcp://127.0.0.1:\(freePort())", "--max-wait", "1"], timeout: 30)
        #expect(worker.status != 0 && worker.stderr.contains("--key and --coordinator-key"), "\(worker.stderr)")
        let local = try runLoom(["run", "--workers", "2", "--out", d.file("local"), "--quiet"] + c.argv, cwd: c.directory, timeout: 120)
        #expect(local.status == 0, "loom run --workers N is ipc in a private folder: no keys: \(local.stderr)")
    }

    @Test("a job over CURVE is bitwise identical to the in-process run, and the wire carries none of the model's bytes (without keys it does)")
    func curveJob() throws {
        let c = try longCase()
        let (base, r0) = try runCase(c, workers: 0)
        defer { base.remove() }
        #expect(r0.status == 0)
        let keys = TemporaryDirectory()
        defer { keys.remove() }
        #expect(try runLoom(["keygen", "coordinator", "--dir", keys.path]).status == 0)
        #expect(try runLoom(["keygen", "workers", "--dir", keys.path]).status == 0)
        let model = try FileIO.readAll(c.directory + "/" + c.argv[c.argv.firstIndex(of: "--model")! + 1])
        let window = Array(model[(model.count / 2)..<(model.count / 2 + 48)])
        for secure in [true, false] {
            let out = TemporaryDirectory()
            defer { out.remove() }
            let port = freePort()
            let proxy = try RecordingProxy(to: port)
            defer { proxy.stop() }
            let coordinatorKeys = secure ? ["--key", keys.file("coordinator.key"), "--allow", keys.file("workers.pub")] : ["--insecure"]
            let workerKeys = secure ? ["--key", keys.file("workers.key"), "--coordinator-key", keys.file("coordinator.pub")] : ["--insecure"]
            // An empty model cache, so that the model crosses the wire in both runs.
            let cache = TemporaryDirectory()
            defer { cache.remove() }
            var env = ProcessInfo.processInfo.environment
            env["LOOM_CACHE_DIR"] = cache.path
            let workers = try (0..<2).map { _ in
                try startProcess(Repository.loomBinary, ["worker", "--connect", "tcp://127.0.0.1:\(proxy.port)"] + workerKeys, environment: env)
            }
            let r = try runLoom(
                ["coordinator", "--bind", "tcp://127.0.0.1:\(port)", "--out", out.path, "--quiet"] + coordinatorKeys + c.argv,
                cwd: c.directory, timeout: 60)
            #expect(r.status == 0, "\(r.stderr)")
            for w in workers { #expect(waitOrKill(w, timeout: 10) && w.terminationStatus == 0) }
            #expect(try resultBytes(out.path) == resultBytes(base.path), "\(secure ? "over CURVE" : "without keys")")
            let wire = proxy.bytes
            #expect(wire.count > model.count, "the model crossed the proxy")
            let found = wire.withUnsafeBufferPointer { w in
                (0...(w.count - window.count)).contains { i in w[i] == window[0] && Array(w[i..<(i + window.count)]) == window }
            }
            #expect(found == !secure, "\(secure ? "the model's bytes are on the wire in clear" : "the check cannot see the model even in clear")")
        }
    }

    @Test("workers with no key, an unknown key, or the wrong coordinator pinned get nothing and are told why; SIGHUP lets a key in")
    func refusedWorkers() throws {
        let c = try longCase()
        let (base, r0) = try runCase(c, workers: 0)
        defer { base.remove() }
        #expect(r0.status == 0)
        let d = TemporaryDirectory()
        defer { d.remove() }
        for name in ["coordinator", "impostor", "workers", "late"] { #expect(try runLoom(["keygen", name, "--dir", d.path]).status == 0) }
        // The coordinator lets in `workers` only.
        try FileManager.default.copyItem(atPath: d.file("workers.pub"), toPath: d.file("allow"))
        let port = freePort()
        let coordinator = try startProcess(
            Repository.loomBinary,
            [
                "coordinator", "--bind", "tcp://127.0.0.1:\(port)", "--key", d.file("coordinator.key"),
                "--allow", d.file("allow"), "--out", d.file("out"), "--quiet", "--log-level", "info"
            ] + c.argv,
            cwd: c.directory, stderrPath: d.file("coordinator.log"))
        defer { if coordinator.isRunning { coordinator.terminate() } }
        let endpoint = "tcp://127.0.0.1:\(port)"
        let keyless = try startProcess(
            Repository.loomBinary, ["worker", "--insecure", "--connect", endpoint, "--log-level", "info"], stderrPath: d.file("keyless.log"))
        let pinnedWrong = try startProcess(
            Repository.loomBinary,
            [
                "worker", "--connect", endpoint, "--key", d.file("workers.key"),
                "--coordinator-key", d.file("impostor.pub"), "--log-level", "info"
            ], stderrPath: d.file("pinned.log"))
        let late = try startProcess(
            Repository.loomBinary,
            [
                "worker", "--connect", endpoint, "--key", d.file("late.key"),
                "--coordinator-key", d.file("coordinator.pub"), "--log-level", "info"
            ], stderrPath: d.file("late.log"))
        defer { for p in [keyless, pinnedWrong, late] where p.isRunning { p.terminate() } }
        let lateKey = text(d.file("late.pub")).split(separator: "\n").last!.split(separator: " ").first!
        #expect(eventually(20) { text(d.file("late.log")).contains("refused this worker's key") }, "late: \(text(d.file("late.log")))")
        #expect(eventually(20) { text(d.file("keyless.log")).contains("requires CURVE keys") }, "keyless: \(text(d.file("keyless.log")))")
        #expect(eventually(20) { text(d.file("pinned.log")).contains("the key pinned by --coordinator-key") }, "pinned: \(text(d.file("pinned.log")))")
        #expect(
            eventually(20) {
                text(d.file("coordinator.log")).contains("refused a connection") && text(d.file("coordinator.log")).contains(String(lateKey.prefix(12)))
            },
            "the coordinator logs the refused key: \(text(d.file("coordinator.log")))")
        #expect(
            eventually(20) { text(d.file("coordinator.log")).contains("failed its CURVE handshake") },
            "and the keyless worker: \(text(d.file("coordinator.log")))")
        for log in ["keyless.log", "pinned.log", "late.log"] { #expect(!text(d.file(log)).contains("] job\n"), "\(log) got no job") }
        // Let `late` in without a restart.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: d.file("allow")))
        handle.seekToEndOfFile()
        handle.write(Data("\(lateKey) late\n".utf8))
        try handle.close()
        kill(coordinator.processIdentifier, SIGHUP)
        #expect(waitOrKill(coordinator, timeout: 60) && coordinator.terminationStatus == 0, "\(text(d.file("coordinator.log")))")
        #expect(text(d.file("coordinator.log")).contains("--allow read again"))
        #expect(try resultBytes(d.file("out")) == resultBytes(base.path))
        #expect(waitOrKill(late, timeout: 10) && late.terminationStatus == 0)
        for log in ["keyless.log", "pinned.log"] { #expect(!text(d.file(log)).contains("] job\n"), "\(log) still got no job") }
    }

    @Test("a coordinator pinning another collector key, or one the collector does not let in, says which in one line")
    func refusedCoordinator() throws {
        let c = try longCase()
        let d = TemporaryDirectory()
        defer { d.remove() }
        for name in ["coordinator", "collector", "impostor", "workers"] { #expect(try runLoom(["keygen", name, "--dir", d.path]).status == 0) }
        // The collector lets in the workers only: not this coordinator.
        try FileManager.default.copyItem(atPath: d.file("workers.pub"), toPath: d.file("allow"))
        let (cport, kport) = (freePort(), freePort())
        let collector = try startProcess(
            Repository.loomBinary,
            [
                "collector", "--bind", "tcp://127.0.0.1:\(kport)", "--out", d.file("out"), "--key", d.file("collector.key"),
                "--allow", d.file("allow"), "--coordinator-key", d.file("coordinator.pub"), "--log-level", "info"
            ], stderrPath: d.file("collector.log"))
        defer { if collector.isRunning { collector.terminate() } }
        for (pinned, log, expected) in [
            ("impostor.pub", "wrong.log", "the collector does not hold the key --collector-key names"),
            ("collector.pub", "refused.log", "the collector refused this coordinator's key")
        ] {
            let coordinator = try startProcess(
                Repository.loomBinary,
                [
                    "coordinator", "--bind", "tcp://127.0.0.1:\(cport)", "--collector", "tcp://127.0.0.1:\(kport)", "--collector-key", d.file(pinned),
                    "--key", d.file("coordinator.key"), "--allow", d.file("allow"), "--quiet", "--log-level", "info"
                ] + c.argv,
                cwd: c.directory, stderrPath: d.file(log))
            #expect(eventually(20) { text(d.file(log)).contains(expected) }, "\(log): \(text(d.file(log)))")
            coordinator.terminate()
            #expect(waitOrKill(coordinator, timeout: 10))
        }
        // The collector says so too: the first handshake failed before its ZAP handler was asked, the second in it.
        #expect(text(d.file("collector.log")).contains("it pinned another collector key"), "\(text(d.file("collector.log")))")
        #expect(text(d.file("collector.log")).contains("refused a connection"))
    }
}
