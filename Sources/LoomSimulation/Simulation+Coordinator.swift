import LoomCluster

/// The simulated coordinator: the real ``CoordinatorCore``, its directives carried out as the
/// shell does, on the simulated network.
extension Simulation {
    mutating func startCoordinator() {
        var core = CoordinatorCore(jobId: jobId, modelSha256: modelSha, plan: plan, settings: config.settings, collectorName: "simulated collector")
        let d = core.start(now: now)
        coordinator = core
        perform(d)
        queue.push(now + 0.2, .coordinatorTick(epoch: coordinatorEpoch))
    }

    mutating func coordinatorHandle(_ e: CoordinatorCore.Event) {
        guard var core = coordinator else { return }
        coordinator = nil
        let clock = ContinuousClock()
        let t0 = clock.now
        let wasHeartbeat = core.heartbeatRounds
        let d = core.handle(e, now: now)
        let spent = clock.now - t0
        let seconds = Double(spent.components.seconds) + Double(spent.components.attoseconds) * 1e-18
        report.coordinatorCoreSeconds += seconds
        if core.heartbeatRounds != wasHeartbeat {
            report.heartbeatRounds += 1
            report.heartbeatSeconds += seconds
        }
        coordinator = core
        perform(d)
    }

    mutating func coordinatorReceives(_ p: Packet, _ m: WireMessage) {
        guard coordinator != nil else { return }
        switch p.from {
        case .worker(let i):
            if case .ack = m { return }
            coordinatorHandle(.worker(PeerID(Array("w\(i).\(p.link.session)".utf8)), m))
        case .collector:
            if case .ack(_, let shards, _) = m {
                // (A shard revoked by --verify may have been acknowledged before its revocation.)
                for s in shards where s >= 0 && s < journal.count && !journal[s] && !revoked.contains(s) {
                    violated("the coordinator was told shard \(s) is acknowledged, but it is not in the journal")
                }
            }
            coordinatorHandle(.collector(m))
        case .coordinator:
            return
        }
    }

    mutating func perform(_ directives: [CoordinatorCore.Directive]) {
        var pending = directives[...]
        while let d = pending.popFirst() {
            guard coordinator != nil else { return }
            switch d {
            case .send(let m, let peer):
                sendToWorker(m, peer)
            case .sendShards(let shards, let peer):
                guard let (i, session) = worker(of: peer), workers[i].alive, workers[i].session == session else {
                    var core = coordinator!
                    pending += core.handle(.undelivered(peer, shards: shards), now: now)
                    coordinator = core
                    continue
                }
                let rows = shards.map { WireMessage.ShardRows(shard: $0, rows: [plan.range(of: $0).lowerBound]) }
                send(.shard(jobId: jobId, shards: rows), from: .coordinator, to: .worker(i), worker: i, session: session)
            case .sendJob(let peer):
                sendToWorker(.job(descriptor: [], collector: "simulated", collectorKey: "", argChunks: []), peer)
            case .sendModel(let peer):
                sendToWorker(.model(sha256: modelSha, files: [.init(name: "model.onnx", bytes: 0)]), peer)
            case .toCollector(let m):
                send(m, from: .coordinator, to: .collector)
            case .collect:
                send(.collect(descriptor: [], verify: coordinator!.verification.isOn), from: .coordinator, to: .collector)
            case .finish(let f):
                send(.finish(f), from: .coordinator, to: .collector)
            case .log:
                break
            case .exit(let outcome):
                report.outcome = outcome
                if coordinator!.verification.isOn { report.verification = coordinator!.verification.summary }
                done = true
                return
            }
        }
    }

    mutating func sendToWorker(_ m: WireMessage, _ peer: PeerID) {
        guard let (i, session) = worker(of: peer), workers[i].alive, workers[i].session == session else { return }
        send(m, from: .coordinator, to: .worker(i), worker: i, session: session)
    }

}
