import Testing
import ZeroMQ

@Suite("the ZeroMQ layer (real sockets)")
struct SocketTests {
    @Test("dealer to router over tcp loopback: multipart, routing ids, owned buffers")
    func dealerRouter() throws {
        let ctx = try Context()
        let router = try Socket(ctx, .router)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = router.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        let dealer = try Socket(ctx, .dealer)
        try dealer.connect(endpoint)
        let big = OutgoingFrame.allocate(1 << 20)
        for i in 0..<big.count { big[i] = UInt8(truncatingIfNeeded: i) }
        #expect(try dealer.send([.bytes(Array("hello".utf8)), .owned(big)]))
        #expect(try poll([router], timeoutMilliseconds: 5000) == [true])
        let got = try #require(try router.receive())
        #expect(got.count == 3) // routing id, then the two frames
        #expect(got[1].array == Array("hello".utf8))
        #expect(got[2].count == 1 << 20)
        #expect(got[2].bytes[12345] == UInt8(truncatingIfNeeded: 12345))
        // Reply through the routing id.
        #expect(try router.send([got[0].array, Array("back".utf8)]))
        let reply = try #require(try dealer.receive())
        #expect(reply.map(\.array) == [Array("back".utf8)])
        dealer.close()
        router.close()
    }

    @Test("the connection monitor says linked once a peer is bound and handshaken, and unlinked when it goes")
    func monitor() throws {
        let ctx = try Context()
        let dealer = try Socket(ctx, .dealer)
        // An ipc path nobody listens on yet. (A probe socket bound to a tcp port and closed to free it would not do:
        // libzmq closes its listener asynchronously, so the dealer could link to the probe before it is gone.)
        let path = "/tmp/loom-monitor-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(path) }
        let events = try dealer.monitorConnections(in: ctx)
        try dealer.connect("ipc://\(path)")
        func next(within ms: Int) throws -> ConnectionEvent? {
            guard try poll([events], timeoutMilliseconds: ms)[0], let frames = try events.receive() else { return nil }
            return Socket.connectionEvent(frames)
        }
        #expect(try next(within: 300) == nil, "nobody is there yet")
        let router = try Socket(ctx, .router)
        try router.bind("ipc://\(path)")
        #expect(try next(within: 5000) == .linked)
        router.close()
        #expect(try next(within: 5000) == .unlinked)
        dealer.stopMonitoring()
        events.close()
        dealer.close()
        ctx.terminate(waitingAtMost: 2)
    }

    @Test("the connection monitor, started before connect, sees the handshake with a peer that is already bound")
    func monitorBoundPeer() throws {
        let ctx = try Context()
        let router = try Socket(ctx, .router)
        try router.bind("tcp://127.0.0.1:*")
        for _ in 0..<20 {
            let dealer = try Socket(ctx, .dealer)
            let events = try dealer.monitorConnections(in: ctx)
            try dealer.connect(router.lastEndpoint)
            try #require(try poll([events], timeoutMilliseconds: 5000)[0], "no event: the handshake was missed")
            #expect(try events.receive(dontWait: true).flatMap(Socket.connectionEvent) == .linked)
            dealer.stopMonitoring()
            events.close()
            dealer.close()
        }
        router.close()
        ctx.terminate(waitingAtMost: 2)
    }

    @Test("last words: a message sent just before close(lingeringFor:) and terminate reaches its peer, every time")
    func lastWords() throws {
        let receiver = try Context()
        let pull = try Socket(receiver, .pull)
        try pull.bind("tcp://127.0.0.1:*")
        let endpoint = pull.lastEndpoint
        for i in 0..<50 {
            // A whole sender process in miniature: connect, say one thing, close, terminate, gone.
            let sender = try Context()
            let push = try Socket(sender, .push)
            try push.connect(endpoint)
            let payload = OutgoingFrame.allocate(256 << 10)
            #expect(try push.send([.bytes(Array("end \(i)".utf8)), .owned(payload)]))
            push.close(lingeringFor: 2000)
            sender.terminate(waitingAtMost: 5)
            #expect(try poll([pull], timeoutMilliseconds: 5000) == [true], "message \(i) was lost at close")
            #expect(try pull.receive(dontWait: true)?.first?.array == Array("end \(i)".utf8))
        }
    }

    @Test("terminate gives up after its time when a socket is left open, rather than hang the process")
    func boundedTerminate() throws {
        let ctx = try Context()
        let open = try Socket(ctx, .dealer)
        try open.connect("tcp://127.0.0.1:9")
        let start = ContinuousClock.now
        ctx.terminate(waitingAtMost: 0.3)
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(250) && waited < .seconds(3))
        open.close() // the detached termination completes now
    }

    @Test("a non-blocking receive on an empty socket returns nil; poll times out")
    func nonBlocking() throws {
        let ctx = try Context()
        let pull = try Socket(ctx, .pull)
        let path = "/tmp/loom-zmq-test-\(getpid())"
        defer { unlink(path) } // the socket file would otherwise stay in /tmp after every run
        try pull.bind("ipc://" + path)
        #expect(try pull.receive(dontWait: true) == nil)
        #expect(try poll([pull], timeoutMilliseconds: 10) == [false])
    }

    @Test("errors carry the operation, the endpoint and errno")
    func errors() throws {
        let ctx = try Context()
        let s = try Socket(ctx, .router)
        do {
            try s.bind("bogus://nowhere")
            Issue.record("bind should fail")
        } catch let e as ZMQError {
            #expect(e.operation == "bind")
            #expect(e.endpoint == "bogus://nowhere")
            #expect(e.errno != 0)
            #expect(e.description.contains("bogus://nowhere"))
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
