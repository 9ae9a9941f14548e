import Foundation
import LoomCluster
import LoomFuzz
import LoomTensor
import LoomTestSupport
import Testing
import ZeroMQ

@Suite("a hostile peer during a job (real processes, real sockets)", .serialized)
struct LiveFuzzTests {
    @Test("thousands of malformed, forged and wrong-role messages to the coordinator and the collector: the job finishes, bitwise identical")
    func hostilePeers() throws {
        let c = try longCase()
        let (base, r0) = try runCase(c, workers: 0)
        defer { base.remove() }
        #expect(r0.status == 0)
        let d = TemporaryDirectory()
        defer { d.remove() }
        let cport = freePort(), kport = freePort()
        let collector = try startProcess(
            Repository.loomBinary,
            [
                "collector", "--insecure", "--bind", "tcp://127.0.0.1:\(kport)", "--out", d.file("out"),
                "--log-level", "info"
            ], stderrPath: d.file("collector.log"))
        // Slow shards (3 ms each), so that the job lasts while the messages arrive.
        var slow = ProcessInfo.processInfo.environment
        slow["LOOM_TEST_SHARD_DELAY_US"] = "3000"
        let workers = try (0..<2).map { _ in
            try startProcess(
                Repository.loomBinary, ["worker", "--insecure", "--connect", "tcp://127.0.0.1:\(cport)", "--log-level", "error"], environment: slow)
        }
        let coordinator = try startProcess(
            Repository.loomBinary,
            [
                "coordinator", "--insecure", "--bind", "tcp://127.0.0.1:\(cport)",
                "--collector", "tcp://127.0.0.1:\(kport)", "--quiet", "--log-level", "info"
            ] + c.argv,
            cwd: c.directory, stderrPath: d.file("coordinator.log"))
        let context = try Context()
        var sent = 0
        do {
            var hostile = Hostile(seed: 20261129)
            // Many connections, each sending and never reading (replies pile up at their sender, which must not block).
            let sockets = try (0..<8).map { i -> Socket in
                let s = try Socket(context, .dealer)
                try s.connect(i % 2 == 0 ? "tcp://127.0.0.1:\(cport)" : "tcp://127.0.0.1:\(kport)")
                return s
            }
            defer { for s in sockets { s.close() } }
            let until = Date().addingTimeInterval(20)
            while coordinator.isRunning && Date() < until && sent < 6000 {
                let s = sockets[hostile.below(sockets.count)]
                if (try? s.send(hostile.message(), dontWait: true)) == true { sent += 1 }
                if sent % 200 == 0 { usleep(2000) }
            }
        }
        context.terminate(waitingAtMost: 2)
        #expect(sent >= 2000, "messages sent: \(sent)")
        let ended = waitOrKill(coordinator, timeout: 90)
        if !ended { try? FileManager.default.copyItem(atPath: d.path, toPath: "/tmp/loom-fuzz-failure-\(getpid())") }
        #expect(ended, "the job ended (logs kept in /tmp/loom-fuzz-failure-\(getpid()))")
        #expect(coordinator.terminationStatus == 0, "\((try? String(contentsOfFile: d.file("coordinator.log"), encoding: .utf8)) ?? "")")
        #expect(
            waitOrKill(collector, timeout: 10) && collector.terminationStatus == 0,
            "\((try? String(contentsOfFile: d.file("collector.log"), encoding: .utf8)) ?? "")")
        for w in workers { #expect(waitOrKill(w, timeout: 10)) }
        #expect(try resultBytes(d.file("out")) == resultBytes(base.path))
    }
}
