/// The coordinator's scheduling logic, free of sockets and clocks: events in, directives out.
///
/// - **Credit.** A worker grants credit (how many more shards it may hold) and is never sent
///   more. Shards go round-robin over workers with credit, so a late joiner gets work at once.
/// - **Leases.** Every assignment has a lease. When it runs out the shard is handed to another
///   worker; the first result wins (the collector writes a shard once).
/// - **Dead workers.** A worker declared dead (silent past its liveness) loses its shards, which
///   go back to the front of the queue.
/// - **Stragglers.** When the queue is empty and a worker has credit, a shard still in flight is
///   run again there, once: the one given out last first. Workers compute in the order given, so
///   that one is the likeliest to be still waiting behind another on its worker: at the end of a
///   job, an idle worker takes over the shard queued behind its neighbour's running one.
/// - **Poison shards.** A shard whose attempts have ended in `maxFailures` dead workers or
///   expired leases fails the job, after `verdictDelay` seconds out of the queue: a worker
///   charged with it that turns out to be alive (``forgive(_:now:)``: its connection heard again,
///   or the same process joining anew) did not crash on it, and its charge is withdrawn.
///
/// Time is a number of seconds passed in by the caller, so tests drive it directly.
public struct Scheduler: Sendable {
    /// What the shell should do.
    public enum Directive: Equatable, Sendable {
        /// Send shard `shard` to `worker`.
        case assign(shard: Int, worker: PeerID)
        /// Every shard is acknowledged: tell the collector to publish the result.
        case finish
        /// A shard failed `failures` times (`cause`: the last failure): the job cannot succeed.
        case poison(shard: Int, failures: Int, cause: String)
        /// A shard reached `maxFailures` and is held out of the queue for `seconds` before its
        /// verdict, for workers charged with it to come back (``Scheduler/forgive(_:now:)``).
        case held(shard: Int, failures: Int, seconds: Double)
        /// `worker` reported these shards computed more than `Policy.collectTimeout` ago and the
        /// collector never acknowledged them: their results were lost on the way (a partition, a
        /// collector the worker cannot reach). They are back in the queue, uncharged; the shell says so.
        case uncollected(worker: PeerID, shards: [Int])
    }

    /// Tuning, with the defaults of `loom coordinator`.
    public struct Policy: Sendable, Equatable {
        /// Seconds an assignment may take before the shard is given to another worker.
        public var lease: Double = 120
        /// Failed attempts (dead workers, expired leases) that make a shard poison.
        public var maxFailures: Int = 3
        /// Run the last shards in flight again on idle workers.
        public var speculate: Bool = true
        /// Seconds since a worker was last heard from within which it counts as alive when given a
        /// shard. A shard given to a worker already silent (killed, not yet declared dead) is not
        /// charged when that worker is declared dead: it never ran there.
        public var freshness: Double = 1
        /// Seconds a shard reported computed may wait for the collector's acknowledgement before
        /// its result is taken as lost and the shard is computed again.
        public var collectTimeout: Double = 10
        /// Seconds a shard that reached `maxFailures` waits, out of the queue, before it fails the
        /// job: time for a worker charged with it that was only cut off or stalled to come back
        /// and withdraw its charge (0: fail at once). A further failure meanwhile fails it at once.
        public var verdictDelay: Double = 10
        public init() {}
    }

    struct Assignment: Sendable {
        var worker: PeerID
        var deadline: Double
        var started: Double
        /// Assignment order: a worker computes its shards in this order.
        var sequence: Int
        /// When the worker reported it computed (its result is on the way to the collector).
        var computedAt: Double? = nil
        var computed: Bool { computedAt != nil }
        /// The worker had been heard from recently when it was given the shard.
        var fresh = true
    }

    /// The number of shards in the job.
    public let shardCount: Int
    public let policy: Policy
    private var next = 0
    var queue: [Int] = []
    private var order: [PeerID] = []
    private var credit: [PeerID: Int] = [:]
    /// Workers with credit, in turn: dispatch takes the first, so its cost per shard does not
    /// grow with the number of workers. (Entries of workers that left are skipped when reached.)
    private var ring = FIFO<PeerID>()
    private var inRing: Set<PeerID> = []
    /// Per worker, its assignments (shard, sequence) in the order given; entries no longer in
    /// flight are dropped when reached, so finding the one it is computing is O(1) amortized.
    private var held: [PeerID: FIFO<(shard: Int, sequence: Int)>] = [:]
    /// Every assignment (sequence, shard) in the order given: speculation takes the last one still
    /// eligible, dropping the rest from the end.
    private var issued: [(sequence: Int, shard: Int)] = []
    private var inFlight: [Int: [Assignment]] = [:]
    var failures: [Int: Int] = [:]
    /// The shard each dead worker was charged with, so that its charge can be withdrawn if the
    /// worker turns out to be alive (``forgive(_:now:)``).
    var charges: [PeerID: Int] = [:]
    /// Charges withdrawn per shard: at most `maxFailures`, so that a shard that keeps cutting its
    /// workers off without killing them still fails the job in the end.
    var forgiven: [Int: Int] = [:]
    /// Shards that reached `maxFailures`, held out of the queue until their verdict (when, and why).
    var verdicts: [Int: (due: Double, cause: String)] = [:]
    private var speculated: Set<Int> = []
    /// Shards that were on a worker that died or stalled. They travel one per message from then on,
    /// so that a worker that batches its results never holds one back with a shard that crashes it,
    /// and a crash is charged to the shard that caused it.
    public private(set) var careful: Set<Int> = []
    var done: [Bool]
    private var sequence = 0
    private var lastHeard: [PeerID: Double] = [:]
    var finished = false
    /// While paused (no collector to take results), nothing is handed out.
    public var paused = false
    /// Shards acknowledged so far.
    public private(set) var completed = 0
    /// Shards handed out again: after a dead worker, an expired lease, or speculatively.
    public private(set) var reissued = 0
    /// Workers declared dead.
    public private(set) var deadWorkers = 0
    /// Leases that ran out.
    public private(set) var expiredLeases = 0

    /// A scheduler for `shardCount` shards of which `alreadyDone` are complete (a resumed job).
    public init(shardCount: Int, alreadyDone: [Int] = [], policy: Policy = Policy()) {
        self.shardCount = shardCount
        self.policy = policy
        done = [Bool](repeating: false, count: shardCount)
        for s in alreadyDone where s >= 0 && s < shardCount && !done[s] {
            done[s] = true
            completed += 1
        }
    }

    /// The workers known.
    public var workers: [PeerID] { order }

    /// Shards assigned and not yet acknowledged.
    public var inFlightCount: Int { inFlight.count }

    /// Whether every shard is acknowledged.
    public var isComplete: Bool { completed == shardCount }

    /// The shards not yet acknowledged.
    public var remaining: Int { shardCount - completed }

    /// A worker joined.
    public mutating func join(_ worker: PeerID) {
        guard credit[worker] == nil else { return }
        order.append(worker)
        credit[worker] = 0
    }

    /// A message came from a worker at `now`.
    public mutating func heard(_ worker: PeerID, now: Double) {
        lastHeard[worker] = now
    }

    /// When a worker was last heard from.
    public func lastHeard(_ worker: PeerID) -> Double? { lastHeard[worker] }

    /// Whether a shard is acknowledged.
    public func isDone(_ shard: Int) -> Bool { shard >= 0 && shard < shardCount && done[shard] }

    /// A worker can take `amount` more shards.
    public mutating func grant(_ worker: PeerID, _ amount: Int, now: Double = 0) -> [Directive] {
        join(worker)
        credit[worker, default: 0] += max(0, amount)
        if credit[worker]! > 0 && !inRing.contains(worker) {
            inRing.insert(worker)
            ring.append(worker)
        }
        return dispatch(now: now)
    }

    /// The credit a worker has left.
    public func credit(of worker: PeerID) -> Int { credit[worker] ?? 0 }

    /// Takes one unit of a worker's credit for work the scheduler does not hand out (a
    /// verification copy); false if it has none.
    public mutating func borrowCredit(from worker: PeerID) -> Bool {
        guard let c = credit[worker], c > 0 else { return false }
        credit[worker] = c - 1
        return true
    }

    /// Acknowledged shards whose written copy is condemned (a quarantined worker's): they are
    /// computed again, first.
    public mutating func reopen(_ shards: [Int], now: Double = 0) -> [Directive] {
        var back: [Int] = []
        for s in Set(shards) where s >= 0 && s < shardCount && done[s] {
            done[s] = false
            completed -= 1
            failures[s] = nil
            speculated.remove(s)
            back.append(s)
        }
        guard !back.isEmpty else { return [] }
        finished = false
        queue.insert(contentsOf: back.sorted(), at: 0)
        reissued += back.count
        return dispatch(now: now)
    }

    /// The collector has written these shards. Repeats and unknown numbers are ignored.
    public mutating func acknowledge(_ shards: [Int], now: Double = 0) -> [Directive] {
        for s in shards where s >= 0 && s < shardCount && !done[s] {
            done[s] = true
            completed += 1
            inFlight[s] = nil
        }
        if completed == shardCount && !finished {
            finished = true
            return [.finish]
        }
        return dispatch(now: now)
    }

    /// Shards whose message could not be sent to `worker` (its connection is gone): the worker never
    /// saw them, so they go back to the queue without being charged with what happens to the worker.
    public mutating func undelivered(_ worker: PeerID, _ shards: [Int]) {
        var back: [Int] = []
        for s in shards {
            guard var list = inFlight[s] else { continue }
            list.removeAll { $0.worker == worker }
            inFlight[s] = list.isEmpty ? nil : list
            if list.isEmpty && !done[s] { back.append(s) }
        }
        queue.insert(contentsOf: back.sorted(), at: 0)
    }

    /// A worker is gone (declared dead, or its socket refused a send): its unacknowledged
    /// shards go back to the front of the queue, each counting a failed attempt.
    ///
    /// - Parameter busySince: when the worker was given work outside the scheduler (a verification
    ///   copy) that it had not finished. Given no later than its oldest shard, that work was the one
    ///   running, and no shard is charged.
    public mutating func leave(_ worker: PeerID, now: Double = 0, dead: Bool = true, busySince: Double? = nil) -> [Directive] {
        guard credit[worker] != nil else { return [] }
        credit[worker] = nil
        inRing.remove(worker)
        order.removeAll { $0 == worker }
        if dead { deadWorkers += 1 }
        defer { lastHeard[worker] = nil }
        // Workers compute their shards in the order assigned: only the oldest was running when
        // the worker died, so only it is charged with the failure; the rest were waiting.
        let running = oldestAssignment(of: worker).flatMap { s -> Int? in
            guard let a = inFlight[s]?.first(where: { $0.worker == worker }), a.fresh else { return nil }
            if let busySince, busySince <= a.started { return nil }
            return s
        }
        var lost: [Int] = []
        for (s, list) in inFlight {
            let rest = list.filter { $0.worker != worker }
            guard rest.count != list.count else { continue }
            inFlight[s] = rest.isEmpty ? nil : rest
            if rest.isEmpty { lost.append(s) }
        }
        if dead { careful.formUnion(lost); careful.formUnion(running.map { [$0] } ?? []) }
        held[worker] = nil
        var notices: [Directive] = []
        if dead, let running {
            charges[worker] = running
            if let d = countFailure(running, why: "the worker running it died or went silent", now: now) {
                guard case .held = d else { return [d] }
                notices.append(d)
            }
        }
        queue.insert(contentsOf: lost.sorted().filter { !done[$0] }, at: 0)
        reissued += lost.count
        return notices + dispatch(now: now)
    }

    /// The collector was lost: results in flight to it may be gone, so every shard in flight
    /// goes back to the queue (without charging anyone). Duplicates are dropped by the collector.
    public mutating func collectorLost(now: Double) -> [Directive] {
        let lost = inFlight.keys.sorted().filter { !done[$0] }
        inFlight.removeAll()
        speculated.removeAll()
        held.removeAll()
        issued.removeAll()
        queue.insert(contentsOf: lost, at: 0)
        reissued += lost.count
        return dispatch(now: now)
    }

    /// Expires leases at time `now`; their shards go to other workers. Shards computed long ago
    /// and never collected go back to the queue.
    public mutating func tick(now: Double) -> [Directive] {
        let uncollected = reclaimUncollected(now: now)
        var expired: [Int] = []
        var charged: [Int] = []
        for w in order {
            // As for dead workers: the worker's oldest shard is the one that hung.
            if let s = oldestAssignment(of: w), inFlight[s]?.first(where: { $0.worker == w })?.deadline ?? .infinity <= now { charged.append(s) }
        }
        for (s, list) in inFlight {
            let live = list.filter { $0.deadline > now }
            guard live.count != list.count else { continue }
            expiredLeases += list.count - live.count
            inFlight[s] = live.isEmpty ? nil : live
            if live.isEmpty { expired.append(s) }
        }
        var notices: [Directive] = []
        for s in charged.sorted() {
            if let d = countFailure(s, why: "its lease of \(Int(policy.lease)) s ran out", now: now) {
                guard case .held = d else { return [d] }
                notices.append(d)
            }
        }
        if let fail = dueVerdict(now: now) { return [fail] }
        careful.formUnion(expired)
        careful.formUnion(charged)
        queue.insert(contentsOf: expired.sorted().filter { !done[$0] }, at: 0)
        reissued += expired.count
        return notices + uncollected + dispatch(now: now)
    }

    /// The shard a worker was given first among those it has not reported computed: the one it is computing.
    private mutating func oldestAssignment(of worker: PeerID) -> Int? {
        guard var list = held[worker] else { return nil }
        defer { held[worker] = list }
        while let (s, sequence) = list.first {
            if inFlight[s]?.contains(where: { $0.sequence == sequence && !$0.computed }) == true { return s }
            list.removeFirst()
        }
        return nil
    }

    /// A worker reports shards it has computed (their results are on the way to the collector).
    public mutating func computed(_ worker: PeerID, _ shards: [Int], now: Double = 0) {
        for s in shards {
            guard var list = inFlight[s] else { continue }
            for i in list.indices where list[i].worker == worker && list[i].computedAt == nil { list[i].computedAt = now }
            inFlight[s] = list
        }
    }

    /// Takes back the shards whose results did not reach the collector within `collectTimeout`
    /// of being reported computed; they go to the front of the queue, uncharged.
    private mutating func reclaimUncollected(now: Double) -> [Directive] {
        var lost: [PeerID: [Int]] = [:]
        var back: [Int] = []
        for (s, list) in inFlight {
            let stale = list.filter { $0.computedAt.map { now - $0 > policy.collectTimeout } ?? false }
            guard !stale.isEmpty else { continue }
            for a in stale { lost[a.worker, default: []].append(s) }
            let rest = list.filter { a in !stale.contains { $0.sequence == a.sequence } }
            inFlight[s] = rest.isEmpty ? nil : rest
            if rest.isEmpty && !done[s] { back.append(s) }
        }
        queue.insert(contentsOf: back.sorted(), at: 0)
        reissued += back.count
        return lost.keys.sorted { $0.description < $1.description }.map { .uncollected(worker: $0, shards: lost[$0]!.sorted()) }
    }

    private mutating func nextShard() -> Int? {
        while !queue.isEmpty {
            let s = queue.removeFirst()
            if !done[s] && inFlight[s] == nil && verdicts[s] == nil { return s }
        }
        while next < shardCount {
            let s = next
            next += 1
            if !done[s] { return s }
        }
        // Nothing left to hand out: run a shard in flight again, once, the last one given out first
        // (it is the likeliest to be waiting, not running, on its worker).
        guard policy.speculate else { return nil }
        // A shard its worker reports computed is on its way to the collector: not a straggler.
        while let (sequence, s) = issued.popLast() {
            guard !done[s], !speculated.contains(s), let list = inFlight[s], list.count == 1,
                list[0].sequence == sequence, !list[0].computed
            else { continue }
            speculated.insert(s)
            reissued += 1
            return s
        }
        return nil
    }

    mutating func dispatch(now: Double) -> [Directive] {
        var out: [Directive] = []
        guard !order.isEmpty, !finished, !paused else { return out }
        // Workers that already hold the one shard left to speculate on wait for the next round.
        var skipped: [PeerID] = []
        while let w = ring.first {
            guard let c = credit[w], c > 0 else {
                ring.removeFirst()
                if credit[w] == nil || credit[w] == 0 { inRing.remove(w) }
                continue
            }
            guard let s = nextShard() else { break }
            ring.removeFirst()
            if let list = inFlight[s], list.contains(where: { $0.worker == w }) {
                // Never run a speculative copy on the worker that already has the shard.
                speculated.remove(s)
                reissued -= 1
                issued.append((list[0].sequence, s))
                skipped.append(w)
                continue
            }
            credit[w] = c - 1
            sequence += 1
            let fresh = lastHeard[w].map { now - $0 <= policy.freshness } ?? true
            inFlight[s, default: []].append(Assignment(worker: w, deadline: now + policy.lease, started: now, sequence: sequence, fresh: fresh))
            held[w, default: FIFO()].append((s, sequence))
            issued.append((sequence, s))
            if c > 1 { ring.append(w) } else { inRing.remove(w) }
            out.append(.assign(shard: s, worker: w))
        }
        for w in skipped { ring.append(w) }
        return out
    }
}

/// A first-in, first-out queue: amortized O(1) at both ends of its use.
struct FIFO<Element>: Sendable where Element: Sendable {
    private var items: [Element] = []
    private var head = 0

    var first: Element? { head < items.count ? items[head] : nil }
    var isEmpty: Bool { head >= items.count }
    var count: Int { items.count - head }

    mutating func append(_ e: Element) { items.append(e) }

    @discardableResult
    mutating func removeFirst() -> Element {
        let e = items[head]
        head += 1
        if head >= 64 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return e
    }
}
