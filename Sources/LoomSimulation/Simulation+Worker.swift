import LoomCluster

/// Simulated workers: they follow the worker's side of the protocol as `loom worker` does
/// (hello until a job comes, the model on demand, credit, results to the collector then
/// `ready`, heartbeats, starting over when the coordinator is lost or says `rejoin`).
extension Simulation {
    static let workerTimer = 0.25

    /// A new connection: a new session (routing id), nothing held, and a new `WorkerSession`.
    mutating func startSession(_ i: Int) {
        workers[i].alive = true
        workers[i].stalledUntil = -.infinity
        workers[i].buffered = []
        dropJob(i)
        var settings = WorkerSession.Settings()
        settings.heartbeat = config.settings.heartbeat
        settings.liveness = config.settings.liveness
        settings.fastRetryWindow = .infinity
        var core = WorkerSession(coordinator: "simulated coordinator", settings: settings)
        workers[i].sessionStart = now
        let first = core.start(now: 0)
        // The connection is made at once when the coordinator is up (libzmq would retry until it is).
        let linked = core.handle(.link(true), now: 0)
        workers[i].core = core
        perform(i, first + linked, packet: nil)
        queue.push(now + Self.workerTimer, .workerTimer(i, session: workers[i].session))
    }

    /// Ends the session now; a new one starts after `restartIn` seconds.
    mutating func endSession(_ i: Int, restartIn: Double) {
        workers[i].session += 1
        workers[i].core = nil
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
        send(m, from: .worker(i), to: .coordinator, worker: i, session: workers[i].session)
    }

    /// Feeds an event to worker `i`'s session core and carries out its directives.
    mutating func sessionEvent(_ i: Int, _ event: WorkerSession.Event, packet: (Packet, WireMessage)? = nil) {
        guard var core = workers[i].core else { return }
        let d = core.handle(event, now: now - workers[i].sessionStart)
        workers[i].core = core
        perform(i, d, packet: packet)
    }

    /// The shell's part: what `Worker.serve` does with each directive, with compute simulated.
    mutating func perform(_ i: Int, _ directives: [WorkerSession.Directive], packet: (Packet, WireMessage)?) {
        let session = workers[i].session
        for d in directives where workers[i].session == session {
            switch d {
            case .sendHello:
                toCoordinator(i, .hello(.init(worker: workers[i].name, pid: i, host: "sim", cachedModels: workers[i].modelCached ? [modelSha] : [])))
            case .sendHeartbeat:
                toCoordinator(i, .heartbeat(job: ""))
            case .takeJob:
                guard !workers[i].hasJob else { continue }
                if workers[i].modelCached {
                    beginJob(i)
                } else {
                    workers[i].core?.waitForModel()
                    toCoordinator(i, .needModel(sha256: modelSha))
                }
            case .takeModel:
                guard !workers[i].hasJob else { continue }
                workers[i].modelCached = true
                beginJob(i)
            case .compute:
                guard workers[i].hasJob, case .shard(_, let shards)? = packet?.1 else { continue }
                for s in shards {
                    workers[i].credit -= 1
                    if workers[i].credit < 0 { violated("worker \(i) was sent shard \(s.shard) beyond the credit it granted") }
                    workers[i].queue.append(s.shard)
                }
                computeNext(i)
            case .log:
                break
            case .end(let end):
                switch end {
                case .done, .nextJob:
                    workers[i].finished = true
                    workers[i].core = nil
                    dropJob(i)
                case .rejoin: endSession(i, restartIn: 0)
                case .lost: endSession(i, restartIn: 1)
                case .slowDown: endSession(i, restartIn: 0)
                }
            case .fail:
                workers[i].finished = true
            }
        }
    }

    mutating func workerTimer(_ i: Int, session: Int) {
        guard workers[i].session == session, workers[i].alive, !workers[i].finished else { return }
        queue.push(now + Self.workerTimer, .workerTimer(i, session: session))
        guard now >= workers[i].stalledUntil else { return }
        sessionEvent(i, .tick)
    }

    mutating func workerReceives(_ i: Int, _ p: Packet, _ m: WireMessage) {
        if now < workers[i].stalledUntil {
            workers[i].buffered.append(p)
            return
        }
        sessionEvent(i, .message(m), packet: (p, m))
        if workers[i].core != nil {
            var core = workers[i].core!
            let after = core.afterMessages(now: now - workers[i].sessionStart)
            workers[i].core = core
            perform(i, after, packet: nil)
        }
    }

    mutating func beginJob(_ i: Int) {
        workers[i].hasJob = true
        workers[i].credit = config.credit
        sessionEvent(i, .working(true))
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
            workers[i].incarnation += 1
            endSession(i, restartIn: 1)
            return
        }
        workers[i].computing = nil
        let result = WireMessage.result(jobId: jobId, worker: workers[i].name, shards: [.init(shard: shard, leaves: [.init(index: [0], shape: [1])])])
        // The liar's results are wrong by one bit (what `--verify` is to catch).
        let value = Self.value(of: shard) ^ (i == config.liar ? 1 : 0)
        send(result, from: .worker(i), to: .collector, worker: i, session: workers[i].session, values: [value])
        workers[i].credit += 1
        toCoordinator(i, .ready(jobId: jobId, credit: 1, computed: [shard]))
        sessionEvent(i, .sent)
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
            workers[i].incarnation += 1
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
