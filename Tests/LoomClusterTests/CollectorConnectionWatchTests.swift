import Testing
import ZeroMQ

@testable import LoomCluster

@Suite("the coordinator's watch on its connection to the collector (no sockets)")
struct CollectorConnectionWatchTests {
    @Test("a failed handshake names its likely cause, at most once every 10 s; links and unlinks are silent")
    func warnings() {
        var w = CollectorConnectionWatch(endpoint: "tcp://c:1")
        #expect(w.handle(.linked, now: 0) == nil && w.linked)
        #expect(w.handle(.unlinked, now: 1) == nil && !w.linked)
        let wrong = w.handle(.handshakeFailed(code: 0), now: 2)
        #expect(wrong?.contains("tcp://c:1") == true && wrong?.contains("--collector-key") == true)
        #expect(w.handle(.wrongServerKey, now: 5) == nil, "the same again within 10 s")
        #expect(w.handle(.keyRefused(status: 400), now: 12)?.contains("--allow") == true)
        #expect(w.handle(.mechanismMismatch, now: 30)?.contains("--insecure") == true)
    }
}
