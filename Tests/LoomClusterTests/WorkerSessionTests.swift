import LoomCluster
import Testing

private func settings(_ configure: (inout WorkerSession.Settings) -> Void = { _ in }) -> WorkerSession.Settings {
    var s = WorkerSession.Settings()
    configure(&s)
    return s
}

private func ends(_ d: [WorkerSession.Directive]) -> WorkerSession.End? {
    for case .end(let e) in d { return e }
    return nil
}

@Suite("the worker session core (no sockets)")
struct WorkerSessionTests {
    @Test("hello every second while connected and without a job; heartbeats while connected; none while not")
    func helloAndHeartbeat() {
        var s = WorkerSession(coordinator: "tcp://c:1", settings: settings())
        #expect(s.start(now: 0) == [.sendHello])
        #expect(!s.handle(.tick, now: 1.5).contains(.sendHello), "not connected: the first hello waits in the queue")
        _ = s.handle(.link(true), now: 1.6)
        let d = s.handle(.tick, now: 1.7)
        #expect(d.contains(.sendHello) && d.contains(.sendHeartbeat))
        _ = s.handle(.working(true), now: 1.8)
        #expect(!s.handle(.tick, now: 3).contains(.sendHello), "a worker with a job says hello no more")
    }

    @Test("a coordinator that answered and went silent is lost; one that never answered is waited for, and warned about")
    func lostAndWaiting() {
        var s = WorkerSession(coordinator: "tcp://c:1", settings: settings { $0.waitWarning = 5 })
        _ = s.start(now: 0)
        var logs: [String] = []
        for t in stride(from: 0.1, through: 9.0, by: 0.1) {
            for case .log(_, let text) in s.handle(.tick, now: t) { logs.append(text) }
        }
        #expect(!s.ended, "never answered: waited for")
        #expect(logs.contains { $0.contains("waiting for a coordinator at tcp://c:1") })
        #expect(logs.contains { $0.contains("no coordinator at tcp://c:1 for 5 s") })
        var answered = WorkerSession(coordinator: "tcp://c:1", settings: settings())
        _ = answered.start(now: 0)
        _ = answered.handle(.message(.heartbeat(job: "")), now: 1)
        #expect(ends(answered.handle(.tick, now: 3.9)) == nil)
        #expect(ends(answered.handle(.tick, now: 4.1)) == .lost)
    }

    @Test("a dropped connection after an answer ends the session once what came before is read; end and rejoin end it at once")
    func dropsAndEnds() {
        var s = WorkerSession(coordinator: "tcp://c:1", settings: settings())
        _ = s.start(now: 0)
        _ = s.handle(.link(true), now: 0.1)
        _ = s.handle(.message(.heartbeat(job: "")), now: 0.2)
        _ = s.handle(.link(false), now: 0.3)
        #expect(ends(s.afterMessages(now: 0.3)) == .lost)
        var e = WorkerSession(coordinator: "tcp://c:1", settings: settings { $0.keepAlive = true })
        _ = e.start(now: 0)
        #expect(ends(e.handle(.message(.end(ok: true, reason: "done")), now: 1)) == .nextJob)
        var r = WorkerSession(coordinator: "tcp://c:1", settings: settings())
        _ = r.start(now: 0)
        #expect(ends(r.handle(.message(.rejoin), now: 1)) == .rejoin)
    }

    @Test("--max-wait gives up with one line; with no coordinator for the fast-retry window the session asks to slow down")
    func maxWaitAndSlowDown() {
        var s = WorkerSession(coordinator: "tcp://c:1", settings: settings { $0.maxWait = 2 })
        _ = s.start(now: 0)
        #expect(s.handle(.tick, now: 1.9).allSatisfy { if case .fail = $0 { false } else { true } })
        #expect(s.handle(.tick, now: 2.1) == [.fail("no coordinator at tcp://c:1 within --max-wait 2 s")])
        var slow = WorkerSession(coordinator: "tcp://c:1", settings: settings { $0.fastRetryWindow = 5 })
        _ = slow.start(now: 0)
        var end: WorkerSession.End? = nil
        for t in stride(from: 0.1, through: 6, by: 0.1) where end == nil { end = ends(slow.handle(.tick, now: t)) }
        #expect(end == .slowDown)
    }

    @Test("messages go where they belong: a job is taken, shards only with a job running, a handshake problem is told once")
    func messages() {
        var s = WorkerSession(coordinator: "tcp://c:1", settings: settings())
        _ = s.start(now: 0)
        #expect(s.handle(.message(.shard(jobId: "j", shards: [])), now: 0.1).isEmpty)
        #expect(s.handle(.message(.job(descriptor: [], collector: "", collectorKey: "", argChunks: [])), now: 0.2) == [.takeJob])
        _ = s.handle(.working(true), now: 0.3)
        #expect(s.handle(.message(.shard(jobId: "j", shards: [])), now: 0.4) == [.compute])
        #expect(s.handle(.handshakeFailed("refused"), now: 0.5) == [.log(.error, "refused")])
        #expect(s.handle(.handshakeFailed("refused"), now: 0.6).isEmpty)
    }
}
