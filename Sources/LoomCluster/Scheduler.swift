/// A peer's ZeroMQ routing id.
public struct PeerID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var description: String {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.allSatisfy({ $0.isASCII && !$0.isNewline && $0 != "\0" }) && !text.isEmpty ? text : bytes.map { String(format2($0)) }.joined()
    }
}

private func format2(_ b: UInt8) -> String {
    let hex = Array("0123456789abcdef")
    return String([hex[Int(b >> 4)], hex[Int(b & 15)]])
}

/// The coordinator's scheduling logic, free of sockets and clocks: events in, directives out.
///
/// Dispatch is pull-based: a worker grants credit (how many more shards it may hold) and
/// is never sent more. Shards go round-robin over the workers that have credit, so a
/// worker that joins late gets work at once. Shards come from a counter, after any that
/// were put back in the queue.
public struct Scheduler: Sendable {
    /// What the shell should do.
    public enum Directive: Equatable, Sendable {
        /// Send shard `shard` to `worker`.
        case assign(shard: Int, worker: PeerID)
        /// Every shard is acknowledged: tell the collector to publish the result.
        case finish
    }

    /// The number of shards in the job.
    public let shardCount: Int
    private var next = 0
    private var queue: [Int] = []
    private var order: [PeerID] = []
    private var credit: [PeerID: Int] = [:]
    private var inFlight: [Int: PeerID] = [:]
    private var done: [Bool]
    private var cursor = 0
    private var finished = false
    /// Shards acknowledged so far.
    public private(set) var completed = 0

    public init(shardCount: Int) {
        self.shardCount = shardCount
        done = [Bool](repeating: false, count: shardCount)
    }

    /// The workers known.
    public var workers: [PeerID] { order }

    /// Shards assigned and not yet acknowledged.
    public var inFlightCount: Int { inFlight.count }

    /// Whether every shard is acknowledged.
    public var isComplete: Bool { completed == shardCount }

    /// A worker joined.
    public mutating func join(_ worker: PeerID) {
        guard credit[worker] == nil else { return }
        order.append(worker)
        credit[worker] = 0
    }

    /// A worker can take `amount` more shards.
    public mutating func grant(_ worker: PeerID, _ amount: Int) -> [Directive] {
        join(worker)
        credit[worker, default: 0] += max(0, amount)
        return dispatch()
    }

    /// The collector has written these shards. Repeats and unknown numbers are ignored.
    public mutating func acknowledge(_ shards: [Int]) -> [Directive] {
        for s in shards where s >= 0 && s < shardCount && !done[s] {
            done[s] = true
            completed += 1
            inFlight[s] = nil
        }
        if completed == shardCount && !finished {
            finished = true
            return [.finish]
        }
        return []
    }

    /// A worker is gone: its shards not yet acknowledged go back to the queue.
    public mutating func leave(_ worker: PeerID) -> [Directive] {
        guard credit[worker] != nil else { return [] }
        credit[worker] = nil
        order.removeAll { $0 == worker }
        let lost = inFlight.filter { $0.value == worker }.map(\.key).sorted()
        for s in lost { inFlight[s] = nil }
        queue.insert(contentsOf: lost.filter { !done[$0] }, at: 0)
        return dispatch()
    }

    private mutating func nextShard() -> Int? {
        while let s = queue.first {
            queue.removeFirst()
            if !done[s] { return s }
        }
        guard next < shardCount else { return nil }
        defer { next += 1 }
        return next
    }

    private mutating func dispatch() -> [Directive] {
        var out: [Directive] = []
        guard !order.isEmpty else { return out }
        var idle = 0
        while idle < order.count {
            if cursor >= order.count { cursor = 0 }
            let w = order[cursor]
            cursor += 1
            guard credit[w, default: 0] > 0 else { idle += 1; continue }
            guard let s = nextShard() else { break }
            credit[w]! -= 1
            inFlight[s] = w
            out.append(.assign(shard: s, worker: w))
            idle = 0
        }
        return out
    }
}
