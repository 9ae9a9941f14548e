import LoomCluster

/// The simulated collector: the real ``CollectorCore``, with a journal and result rows that
/// survive its crashes (as files do) and a write store that checks each shard is written once.
extension Simulation {
    var coordinatorPeer: PeerID { PeerID(Array("coordinator.\(coordinatorEpoch)".utf8)) }

    mutating func startCollector() {
        collector = CollectorCore()
        queue.push(now + 0.05, .collectorTick(epoch: collectorEpoch))
    }

    mutating func collectorHandle(_ e: CollectorCore.Event) {
        guard var core = collector else { return }
        collector = nil
        var pending = core.handle(e, now: now)[...]
        while let d = pending.popFirst() {
            switch d {
            case .send(let m, let peer):
                if peer == coordinatorPeer {
                    send(m, from: .collector, to: .coordinator)
                } // replies to workers (heartbeats) are not needed by the simulated workers
            case .claim:
                pending += core.handle(.claimed(resumed: journal.indices.filter { journal[$0] }), now: now)
            case .write(let shards):
                var written: [Int] = []
                for s in shards {
                    guard let k = inHandShards.firstIndex(of: s) else { continue }
                    if journal[s] { violated("shard \(s) was written again after it was journaled") }
                    rows[s] = inHand[k]
                    written.append(s)
                }
                if config.ackBeforeJournal { send(.ack(jobId: jobId, shards: written), from: .collector, to: .coordinator) }
                pending += core.handle(.written(written, refused: nil, from: PeerID([])), now: now)
            case .commit(let shards):
                for s in shards {
                    if journal[s] { violated("shard \(s) was journaled twice") }
                    journal[s] = true
                }
            case .revoke(let shards):
                for s in shards { journal[s] = false }
                revoked.formUnion(shards)
            case .publish:
                if journal.contains(false) { violated("told to publish with \(journal.filter { !$0 }.count) shards not journaled") }
                pending += core.handle(.published, now: now)
            case .log:
                break
            case .exit(let failure):
                if let failure { report.violations.append("t=\(now): the collector failed: \(failure)") }
            }
        }
        collector = core
    }

    mutating func collectorReceives(_ p: Packet, _ m: WireMessage) {
        guard collector != nil else { return }
        let peer: PeerID
        switch p.from {
        case .coordinator: peer = coordinatorPeer
        case .worker(let i): peer = PeerID(Array("w\(i).\(p.link.session).c".utf8))
        case .collector: return
        }
        switch m {
        case .collect(_, let verify, _): collectorHandle(.collect(peer, jobId: jobId, shardCount: plan.shardCount, verify: verify))
        case .result(let id, let worker, let shards):
            inHand = p.values
            inHandShards = shards.map(\.shard)
            // A simulated digest: the value itself, as the real one is a function of the bytes.
            let digests = collector!.isVerifying ? inHand.map { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } + [UInt8](repeating: 7, count: 24) } : []
            collectorHandle(.result(peer, jobId: id, worker: worker, shards: inHandShards, digests: digests))
        case .redo(let id, let shards, let quarantined): collectorHandle(.redo(peer, jobId: id, shards: shards, quarantined: quarantined))
        case .finish(let f): collectorHandle(.finish(peer, f))
        case .heartbeat: collectorHandle(.heartbeat(peer))
        case .end(let ok, let reason): collectorHandle(.end(peer, ok: ok, reason: reason))
        default: collectorHandle(.refused(peer, "\(m.type)"))
        }
    }
}
