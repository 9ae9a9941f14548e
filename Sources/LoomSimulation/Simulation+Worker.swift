import LoomCluster

/// Simulated workers: they follow the worker's side of the protocol as `loom worker` does
/// (hello until a job comes, the model on demand, credit, results to the collector then
/// `ready`, heartbeats, starting over when the coordinator is lost or says `rejoin`).
extension Simulation {
    static let workerTimer = 0.25

    /// A new connection: a new session (routing id), nothing held.
    mutating func startSession(_ i: Int) {
        workers[i].alive = true
        workers[i].stalledUntil = -.infinity
        workers[i].buffered = []
        dropJob(i)
        workers[i].heard = false
        workers[i].lastHeard = now
        hello(i)
        queue.push(now + Self.workerTimer, .workerTimer(i, session: workers[i].session))
    }

    /// Ends the session now; a new one starts after `restartIn` seconds.
    mutating func endSession(_ i: Int, restartIn: Double) {
        workers[i].session += 1
        dropJob(i)
        queue.push(now + restartIn, .workerStart(i, session: workers[i].session))
    }

    mutating func dropJob(_ i: Int) {
        workers[i].hasJob = false
        workers[i].queue = []
        workers[i].computing = nil
        workers[i].credit = 0
    }

    mutating func toCoordinator(_ i: Int, _ m: WireMessage) {
        workers[i].lastSent = now
        send(m, from: .worker(i), to: .coordinator, worker: i, session: workers[i].session)
    }

    mutating func hello(_ i: Int) {
        workers[i].lastHello = now
        toCoordinator(i, .hello(.init(worker: "w\(i)", pid: i, host: "sim", cachedModels: workers[i].modelCached ? [modelSha] : [])))
    }

    mutating func workerTimer(_ i: Int, session: Int) {
        guard workers[i].session == session, workers[i].alive, !workers[i].finished else { return }
        queue.push(now + Self.workerTimer, .workerTimer(i, session: session))
        guard now >= workers[i].stalledUntil else { return }
        if now - workers[i].lastSent >= config.settings.heartbeat { toCoordinator(i, .heartbeat(job: "")) }
        if !workers[i].hasJob && now - workers[i].lastHello >= 1 { hello(i) }
        if workers[i].heard && now - workers[i].lastHeard > config.settings.silence {
            // The coordinator answered, then went silent: start over after a second.
            endSession(i, restartIn: 1)
        }
    }

    mutating func workerReceives(_ i: Int, _ p: Packet, _ m: WireMessage) {
        if now < workers[i].stalledUntil {
            workers[i].buffered.append(p)
            return
        }
        workers[i].heard = true
        workers[i].lastHeard = now
        switch m {
        case .job:
            guard !workers[i].hasJob else { return }
            if workers[i].modelCached { beginJob(i) } else { toCoordinator(i, .needModel(sha256: modelSha)) }
        case .model:
            guard !workers[i].hasJob else { return }
            workers[i].modelCached = true
            beginJob(i)
        case .shard(_, let shards):
            guard workers[i].hasJob else { return }
            for s in shards {
                workers[i].credit -= 1
                if workers[i].credit < 0 { violated("worker \(i) was sent shard \(s.shard) beyond the credit it granted") }
                workers[i].queue.append(s.shard)
            }
            computeNext(i)
        case .rejoin:
            endSession(i, restartIn: 0)
        case .end:
            workers[i].finished = true
            dropJob(i)
        default:
            break
        }
    }

    mutating func beginJob(_ i: Int) {
        workers[i].hasJob = true
        workers[i].credit = config.credit
        toCoordinator(i, .ready(jobId: jobId, credit: config.credit, computed: []))
    }

    mutating func computeNext(_ i: Int) {
        guard workers[i].computing == nil, !workers[i].queue.isEmpty else { return }
        let s = workers[i].queue.removeFirst()
        workers[i].computing = s
        let t = config.shardSeconds * (workers[i].slow ? 5 : 1) * random.uniform(0.5...1.5)
        queue.push(now + t, .computed(i, session: workers[i].session, shard: s))
    }

    mutating func computed(_ i: Int, session: Int, shard: Int) {
        guard workers[i].session == session, workers[i].alive, workers[i].computing == shard else { return }
        if now < workers[i].stalledUntil {
            queue.push(workers[i].stalledUntil, .computed(i, session: session, shard: shard))
            return
        }
        if shard == config.poisonShard {
            // It crashes the worker process; its launcher starts another.
            count("poison crash")
            workers[i].alive = false
            endSession(i, restartIn: 1)
            return
        }
        workers[i].computing = nil
        let result = WireMessage.result(jobId: jobId, shards: [.init(shard: shard, leaves: [.init(index: [0], shape: [1])])])
        send(result, from: .worker(i), to: .collector, worker: i, session: workers[i].session, values: [Self.value(of: shard)])
        workers[i].credit += 1
        toCoordinator(i, .ready(jobId: jobId, credit: 1, computed: [shard]))
        computeNext(i)
    }

    // MARK: - Faults

    mutating func fault() {
        guard !workers.isEmpty else { return }
        let i = Int.random(in: 0..<workers.count, using: &random)
        guard workers[i].alive, !workers[i].finished else { return }
        let total = config.crashRate + config.stallRate + config.breakRate
        let pick = random.uniform(0...total)
        if pick < config.crashRate {
            count("worker crash")
            workers[i].alive = false
            endSession(i, restartIn: random.uniform(1...5))
        } else if pick < config.crashRate + config.stallRate {
            count("worker stall")
            workers[i].stalledUntil = now + random.uniform(2...8)
            queue.push(workers[i].stalledUntil, .workerTimer(i, session: workers[i].session))
            queue.push(workers[i].stalledUntil, .wake(i, session: workers[i].session))
        } else {
            // The connection breaks (a partition, a reset): what was in flight is lost; the worker
            // notices within its liveness and starts over on a new connection.
            count("connection break")
            endSession(i, restartIn: random.uniform(1...config.settings.silence))
        }
    }

    /// A stalled worker wakes and reads what arrived meanwhile.
    mutating func wake(_ i: Int, session: Int) {
        guard workers[i].session == session else { return }
        let held = workers[i].buffered
        workers[i].buffered = []
        for p in held { step(.deliver(p)) }
    }
}
