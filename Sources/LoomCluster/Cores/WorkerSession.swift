import Logging
import ZeroMQ

/// A worker's decisions for one connection to its coordinator, free of sockets and clocks:
/// events in, directives out.
///
/// It decides when to say hello and to heartbeat, what to do with each message from the
/// coordinator, when the coordinator is lost (it answered, then went silent or the connection
/// dropped), when to slow the retries down, what to say while waiting, and when `--max-wait` is
/// up. ``Worker`` is the shell: it owns the sockets, the connection monitor, the compute thread
/// and the model cache. Time is seconds since the session began, passed in with each event.
public struct WorkerSession: Sendable {
    public struct Settings: Sendable, Equatable {
        public var heartbeat = 1.0
        public var liveness = 3
        /// Stay for the next job instead of ending with the first.
        public var keepAlive = false
        /// Retrying slowly already (no coordinator for a while): never ask to slow down again.
        public var patient = false
        /// Seconds of fast retries with no coordinator before asking to slow down.
        public var fastRetryWindow = 10.0
        /// Seconds of waiting before the first warning (then every minute).
        public var waitWarning = 10.0
        /// Seconds without a coordinator after which the worker gives up; nil: never.
        public var maxWait: Double? = nil
        /// Seconds already waited in earlier sessions (for the warnings and `maxWait`).
        public var waitedBefore = 0.0
        public init() {}
        var silence: Double { heartbeat * Double(liveness) }
    }

    /// How a session ends.
    public enum End: Equatable, Sendable {
        case done, nextJob
        /// The coordinator answered during the session, then went silent or the connection dropped.
        case lost
        /// No coordinator has been there for the fast-retry window: reconnect, retrying less often.
        case slowDown
        /// The coordinator declared this connection lost: join again at once.
        case rejoin
    }

    public enum Event: Sendable {
        /// The connection's handshake completed (`true`) or the connection ended (`false`).
        case link(Bool)
        /// The security handshake failed, and why (one line).
        case handshakeFailed(String)
        /// A decoded message from the coordinator.
        case message(WireMessage)
        /// The shell sent something to the coordinator (a report from the compute thread).
        case sent
        /// The shell has a job running (its compute thread started), or none.
        case working(Bool)
        /// Time passes (at least every 100 ms).
        case tick
    }

    public enum Directive: Equatable, Sendable {
        case sendHello
        case sendHeartbeat
        /// A job arrived: load it (or ask for the model); its data frames are in the shell's hands.
        case takeJob
        /// The model arrived: store it and start the job that waited for it.
        case takeModel
        /// Pass this shard message to the compute thread.
        case compute
        case log(Logger.Level, String)
        case end(End)
        /// Give up: `--max-wait` passed with no coordinator.
        case fail(String)
    }

    public let settings: Settings
    let coordinator: String
    private var linked = false
    private var heard = false
    private var working = false
    private var waitingForModel = false
    /// A job came in this session.
    private var tookJob = false
    /// The connection dropped after the coordinator answered: end once what came before is read.
    private var dropped = false
    private var lastHello = -Double.infinity
    private var lastSent = 0.0
    private var lastHeard = 0.0
    private var saidWaiting: Bool? = nil
    private var warnAfter: Double
    private var told: Set<String> = []
    public private(set) var ended = false

    public init(coordinator: String, settings: Settings) {
        self.coordinator = coordinator
        self.settings = settings
        warnAfter = settings.waitWarning
    }

    /// The first directives: hello (it waits in the socket's queue until the connection is made).
    public mutating func start(now: Double) -> [Directive] {
        lastHello = now
        lastSent = now
        lastHeard = now
        return [.sendHello]
    }

    public mutating func handle(_ event: Event, now: Double) -> [Directive] {
        guard !ended else { return [] }
        var out: [Directive] = []
        switch event {
        case .link(true):
            linked = true
        case .link(false):
            linked = false
            // Answered before: whatever was queued on that connection, both ways, is gone with it,
            // so start over on a new one (after reading what came before the drop: it may be `end`).
            // Not yet answered: give the new connection the usual time.
            if heard { dropped = true } else { lastHeard = now }
        case .handshakeFailed(let text):
            if told.insert(text).inserted { out.append(.log(.error, text)) }
        case .message(let m):
            lastHeard = now
            heard = true
            switch m {
            case .job:
                tookJob = true
                waitingForModel = false
                out.append(.takeJob)
            case .model:
                if waitingForModel || !working { out.append(.takeModel) }
            case .shard:
                if working { out.append(.compute) }
            case .heartbeat:
                break
            case .rejoin:
                return finish(.rejoin, &out)
            case .end(let ok, let reason):
                // Refused before any job (another Loom version, a quarantine): that does not pass; stop, saying why.
                if !ok && !tookJob { return fail("the coordinator refused this worker: \(reason)", &out) }
                out.append(ok ? .log(.info, "job over") : .log(.error, "job over (failed): \(reason)"))
                return finish(settings.keepAlive ? .nextJob : .done, &out)
            default:
                out.append(.log(.warning, "unexpected \(m.type) from the coordinator"))
            }
        case .sent:
            lastSent = now
        case .working(let w):
            working = w
        case .tick:
            tick(now: now, &out)
        }
        return out
    }

    /// Call after the messages that arrived with a dropped connection are handled.
    public mutating func afterMessages(now: Double) -> [Directive] {
        guard dropped, !ended else { return [] }
        var out: [Directive] = [.log(.warning, "the connection to the coordinator at \(coordinator) dropped")]
        return finish(.lost, &out)
    }

    private mutating func fail(_ text: String, _ out: inout [Directive]) -> [Directive] {
        ended = true
        out.append(.fail(text))
        return out
    }

    private mutating func finish(_ end: End, _ out: inout [Directive]) -> [Directive] {
        ended = true
        out.append(.end(end))
        return out
    }

    private mutating func tick(now: Double, _ out: inout [Directive]) {
        if linked && now - lastSent >= settings.heartbeat {
            // Only while connected: heartbeats queued for nobody would fill the socket's queue.
            out.append(.sendHeartbeat)
            lastSent = now
        }
        if !working && !waitingForModel && linked && now - lastHello >= 1 {
            // Until a job arrives, hello again every second while connected: a hello sent to a
            // coordinator that has since gone is lost with its connection.
            out.append(.sendHello)
            lastHello = now
        }
        let waited = settings.waitedBefore + now
        if !heard, let maxWait = settings.maxWait, waited >= maxWait {
            ended = true
            out.append(
                .fail(
                    linked
                        ? "connected to \(coordinator), but no Loom coordinator answered within --max-wait \(Self.format(maxWait)) s"
                        : "no coordinator at \(coordinator) within --max-wait \(Self.format(maxWait)) s"))
            return
        }
        guard now - lastHeard > settings.silence else { return }
        // A coordinator that answered and went silent is lost. One that has not answered yet is
        // waited for, however long: not there yet, or there but still loading its job.
        if heard { _ = finish(.lost, &out); return }
        if !linked && !settings.patient && now - lastHeard >= settings.fastRetryWindow { _ = finish(.slowDown, &out); return }
        if saidWaiting != linked {
            saidWaiting = linked
            out.append(
                .log(
                    .info,
                    linked
                        ? "connected; waiting for the coordinator to answer (it may still be loading its job)"
                        : "waiting for a coordinator at \(coordinator)"))
        }
        if waited >= warnAfter {
            warnAfter = waited + 60
            out.append(
                .log(
                    .warning,
                    linked
                        ? "connected to \(coordinator), no answer for \(Int(waited)) s: is that a Loom coordinator, still loading its job?"
                        : "no coordinator at \(coordinator) for \(Int(waited)) s: is one running there, and is the endpoint right? Still waiting"))
        }
    }

    /// The shell asked for the model: the job waits for it.
    public mutating func waitForModel() { waitingForModel = true }

    static func format(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s))" : "\(s)"
    }
}
