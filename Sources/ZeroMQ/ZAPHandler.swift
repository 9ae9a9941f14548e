import CZeroMQ
import Dispatch
import LoomSystem
import Synchronization

/// ZeroMQ's authentication handler (ZAP, RFC 27) for the CURVE servers of one context.
///
/// It runs on a thread of its own, which owns the REP socket libzmq asks at
/// `inproc://zeromq.zap.01` each time a client completes a CURVE handshake. It lets in the keys
/// of its allow-list (which ``reload(_:)`` replaces, from any thread, for SIGHUP) and refuses
/// every other key and every other domain or mechanism, failing closed. Each refusal is passed
/// to `onRefusal` (key and peer address) and counted. The user id of a key let in is its Z85, so
/// every message from that peer carries its key (``Frame/property(_:)``, "User-Id").
public final class ZAPHandler: @unchecked Sendable {
    private let allowed: Mutex<Set<CurveKey>>
    private let stopFlag = Atomic<Bool>(false)
    private let refusedCount = Atomic<Int>(0)
    private let done = DispatchSemaphore(value: 0)
    private let ready = DispatchSemaphore(value: 0)
    private var startError: (any Error)? = nil
    private let onRefusal: @Sendable (_ key: CurveKey?, _ address: String, _ why: String) -> Void

    /// Starts the handler for `context` with these allowed keys. One per context.
    public init(
        context: Context, allow: Set<CurveKey>,
        onRefusal: @escaping @Sendable (_ key: CurveKey?, _ address: String, _ why: String) -> Void
    ) throws {
        allowed = Mutex(allow)
        self.onRefusal = onRefusal
        do {
            try OSThread.start(name: "loom-zap") { [self] in serve(context) }
        } catch {
            stopFlag.store(true, ordering: .sequentiallyConsistent) // no thread to wait for
            throw error
        }
        ready.wait()
        if let startError { throw startError }
    }

    /// Replaces the allow-list; connections made from now on are judged by it.
    public func reload(_ allow: Set<CurveKey>) { allowed.withLock { $0 = allow } }

    /// The handshakes refused so far.
    public var refused: Int { refusedCount.load(ordering: .relaxed) }

    /// Stops the handler and waits for its thread (before the context is terminated).
    public func stop() {
        guard !stopFlag.exchange(true, ordering: .sequentiallyConsistent) else { return }
        _ = done.wait(timeout: .now() + 2)
    }

    deinit { stop() }

    private func serve(_ context: Context) {
        defer { done.signal() }
        let socket: Socket
        do {
            socket = try Socket(context, .rep)
            try socket.bind("inproc://zeromq.zap.01")
        } catch {
            startError = error
            ready.signal()
            return
        }
        defer { socket.close() }
        ready.signal()
        while !stopFlag.load(ordering: .relaxed) {
            guard (try? poll([socket], timeoutMilliseconds: 100))?.first == true else { continue }
            guard let frames = try? socket.receive(dontWait: true) else { continue }
            // Request: version, request id, domain, address, routing id, mechanism, credentials...
            let text = frames.map { String(decoding: $0.bytes, as: UTF8.self) }
            let requestID = frames.count > 1 ? frames[1].array : []
            var status = "400", statusText = "refused", user = ""
            if frames.count >= 7, text[0] == "1.0", text[2] == Socket.zapDomain, text[5] == "CURVE",
                let key = CurveKey(bytes: frames[6].array)
            {
                if allowed.withLock({ $0.contains(key) }) {
                    status = "200"
                    statusText = "OK"
                    user = key.z85
                } else {
                    refusedCount.add(1, ordering: .relaxed)
                    onRefusal(key, text[3], "its key is not in --allow")
                }
            } else {
                refusedCount.add(1, ordering: .relaxed)
                let mechanism = frames.count > 5 ? text[5] : "?"
                onRefusal(nil, frames.count > 3 ? text[3] : "?", "it did not offer a CURVE key (mechanism \(mechanism))")
            }
            _ = try? socket.send([Array("1.0".utf8), requestID, Array(status.utf8), Array(statusText.utf8), Array(user.utf8), []])
        }
    }
}
