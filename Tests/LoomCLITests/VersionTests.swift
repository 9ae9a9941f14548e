import Foundation
import LoomCluster
import LoomProduct
import LoomTestSupport
import Testing
import ZeroMQ

/// Roles of different Loom or protocol versions refuse each other, in one line naming both.
@Suite("version checks between roles (real processes, real sockets)", .serialized)
struct VersionTests {
    /// A message's frames with the header's version byte replaced.
    func frames(_ m: WireMessage, version: UInt8) -> [[UInt8]] {
        var header = Header(m.type).bytes
        header[4] = version
        return [header, m.body]
    }

    func receive(_ socket: Socket, seconds: Double = 10) throws -> [Frame]? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try poll([socket], timeoutMilliseconds: 100)[0], let f = try socket.receive(dontWait: true) { return f }
        }
        return nil
    }

    @Test("a coordinator answers a worker of another Loom version, or another protocol version, with end naming both")
    func coordinatorRefuses() throws {
        let s = try Scratch(); defer { s.dir.remove() }
        let endpoint = "ipc://" + s.dir.file("c")
        let coordinator = try startProcess(
            Repository.loomBinary,
            [
                "coordinator", "--bind", endpoint, "--mode", "pairwise", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy", "--arg", "a1.npy",
                "--out", s.out, "--quiet", "--deadline", "60"
            ], cwd: s.dir.path, stderrPath: s.dir.file("coordinator.log"))
        defer { coordinator.terminate(); _ = waitOrKill(coordinator, timeout: 10) }
        let context = try Context()
        defer { context.terminate(waitingAtMost: 1) }
        let old = try Socket(context, .dealer)
        defer { old.close() }
        try old.connect(endpoint)
        let hello = WireMessage.hello(.init(worker: "w-old", pid: 1, host: "h", cachedModels: [], loomVersion: "0.0.9"))
        _ = try old.send(hello)
        let reply = try #require(try receive(old))
        guard case .end(false, let reason) = try Message(frames: reply, routed: false, peerName: "coordinator").decoded() else {
            Issue.record("expected end(ok: false)")
            return
        }
        #expect(reason.contains("0.0.9") && reason.contains(LoomVersion.string), "\(reason)")
        // Protocol version 99: the answer is in this Loom's protocol, so such a peer fails to read it, naming both.
        let future = try Socket(context, .dealer)
        defer { future.close() }
        try future.connect(endpoint)
        _ = try future.send(frames(hello, version: 99))
        let answer = try #require(try receive(future))
        guard case .end(false, let why) = try Message(frames: answer, routed: false, peerName: "coordinator").decoded() else {
            Issue.record("expected end(ok: false)")
            return
        }
        #expect(why.contains("version 99") && why.contains("speaks \(Header.version)"), "\(why)")
    }

    @Test("a worker answered in another protocol version, or refused, stops with one line naming why")
    func workerStops() throws {
        let s = TemporaryDirectory(); defer { s.remove() }
        let endpoint = "ipc://" + s.file("fake")
        let context = try Context()
        defer { context.terminate(waitingAtMost: 1) }
        let fake = try Socket(context, .router)
        defer { fake.close() }
        try fake.bind(endpoint)
        for (reply, words) in [
            (frames(.end(ok: false, reason: "x"), version: 99), ["protocol version 99", "speaks \(Header.version)"]),
            (frames(.end(ok: false, reason: "another Loom version"), version: Header.version), ["refused this worker", "another Loom version"])
        ] {
            let worker = try startProcess(Repository.loomBinary, ["worker", "--connect", endpoint], stderrPath: s.file("worker.log"))
            let hello = try #require(try receive(fake))
            _ = try fake.send([hello[0].array] + reply)
            #expect(waitOrKill(worker, timeout: 15), "the worker did not stop")
            #expect(worker.terminationStatus == 1)
            let log = (try? String(contentsOfFile: s.file("worker.log"), encoding: .utf8)) ?? ""
            let lines = log.split(separator: "\n").filter { $0.hasPrefix("loom: error:") }
            #expect(lines.count == 1 && words.allSatisfy { lines[0].contains($0) }, "\(log)")
            while try fake.receive(dontWait: true) != nil {}
        }
    }
}
