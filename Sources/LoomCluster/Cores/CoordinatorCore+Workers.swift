import Logging
import LoomProduct

/// The coordinator's side of its workers: hello, ready, results and silence, and burying the lost.
extension CoordinatorCore {
    mutating func fromWorker(_ w: PeerID, _ m: WireMessage, now: Double, _ out: inout [Directive]) {
        guard names[w] != nil || m.type == .hello else {
            // A connection declared lost is heard from again (the worker was stalled, or cut off by a
            // partition, or these are its last words arriving late). Its shards have gone to others:
            // tell it to start over on a new connection, at most once a second, rather than take its
            // reports for shards it no longer holds. It is alive: it did not crash on its shard.
            if let name = buriedNames.removeValue(forKey: w) { withdrawCharge(of: w, name: name, now: now, &out) }
            if now - (buried[w] ?? -.infinity) >= settings.rejoinInterval {
                if buried[w] == -.infinity { out.append(.log(.notice, "a worker declared lost is back; told to join again", ["worker": "\(w)"])) }
                buried[w] = now
                out.append(.send(.rejoin, to: w))
            }
            return
        }
        if names[w] != nil { scheduler.heard(w, now: now) }
        switch m {
        case .hello(let h):
            if names[w] != nil {
                // A repeated hello. A worker says hello every second until it has a job, so one that
                // waited for this coordinator has several queued, which arrive together: answer the
                // first only (each job sent restarts the worker's compute thread). One that says hello
                // again well after its job was sent has lost it (or our answer): send it again.
                if collector == .ready, !waiting.contains(w), now - (jobSent[w] ?? -.infinity) >= settings.jobResend { sendJob(w, now: now, &out) }
                return
            }
            if h.loomVersion != LoomVersion.string {
                let reason =
                    "worker \(h.worker) runs Loom \(h.loomVersion); this coordinator runs Loom \(LoomVersion.string): run the same Loom version everywhere"
                out.append(.log(.warning, "refused a worker of another Loom version", ["why": "\(reason)"]))
                out.append(.send(.end(ok: false, reason: reason), to: w))
                return
            }
            if verification.isQuarantined(h.worker) {
                out.append(.send(.end(ok: false, reason: "this worker is quarantined: its results differed from two other workers'"), to: w))
                return
            }
            // The same process on a new connection: its old connection, declared dead, was only cut off.
            for (old, name) in buriedNames where name == h.worker {
                buriedNames[old] = nil
                withdrawCharge(of: old, name: name, now: now, &out)
            }
            names[w] = h.worker
            buried[w] = nil
            everJoined.insert(w)
            scheduler.join(w)
            scheduler.heard(w, now: now)
            out.append(.log(.info, "worker joined", ["worker": "\(h.worker)"]))
            if collector == .ready { sendJob(w, now: now, &out) } else { waiting.append(w) }
        case .needModel(let sha):
            guard sha == modelSha256 else { return }
            modelSends[w, default: 0] += 1
            guard modelSends[w]! <= settings.maxModelSends else {
                bury(w, why: "it asked for the model \(modelSends[w]!) times", now: now, &out)
                return
            }
            out.append(.sendModel(to: w))
        case .ready(let id, let credit, let computed):
            guard id == jobId else { return }
            scheduler.computed(w, computed, now: now)
            var amount = min(credit, settings.maxGrant)
            // Verification copies first: they are few, and the job's end waits for them.
            if verification.isOn, let name = names[w] {
                while amount > 0, let s = verification.nextCheck(for: w, worker: name, now: now) {
                    out.append(.sendShards([s], to: w))
                    amount -= 1
                }
            }
            apply(scheduler.grant(w, amount, now: now), now: now, &out)
        case .error(let id, let shard, let text):
            guard id == jobId else { return }
            if let shard, shard < plan.shardCount {
                fail("worker \(names[w] ?? "\(w)") failed on \(plan.describe(shard)): \(text)", &out)
            } else {
                fail(text, &out)
            }
        case .heartbeat:
            break
        default:
            out.append(.log(.warning, "a worker sent a message only other roles send", ["type": "\(m.type)", "worker": "\(names[w] ?? "\(w)")"]))
            bury(w, why: "it sent \(m.type), which workers never send", now: now, &out)
        }
    }

    /// A worker declared dead is alive after all: the shard charged with its death is uncharged.
    mutating func withdrawCharge(of w: PeerID, name: String, now: Double, _ out: inout [Directive]) {
        guard let shard = scheduler.charge(of: w) else { return }
        let before = scheduler.failureCount(shard)
        let directives = scheduler.forgive(w, now: now)
        guard scheduler.failureCount(shard) < before else { return }
        out.append(
            .log(
                .notice, "a worker declared dead is alive: it did not crash on its shard, which is uncharged",
                ["worker": "\(name)", "shard": "\(shard)", "failures": "\(scheduler.failureCount(shard))"]))
        apply(directives, now: now, &out)
    }

    mutating func sendJob(_ w: PeerID, now: Double, _ out: inout [Directive]) {
        jobSent[w] = now
        out.append(.sendJob(to: w))
    }

    /// Declares a worker lost: its shards go to others. `dead`: it failed (its running shard is
    /// charged with a failed attempt); a quarantined worker is sent away, not failed.
    mutating func bury(_ w: PeerID, why: String, now: Double, dead: Bool = true, _ out: inout [Directive]) {
        guard let name = names.removeValue(forKey: w) else { return }
        jobSent[w] = nil
        modelSends[w] = nil
        waiting.removeAll { $0 == w }
        buried[w] = -.infinity
        let checking = verification.checkSince(w)
        verification.lost(w)
        out.append(.log(.warning, "worker lost", ["worker": "\(name)", "why": "\(why)"]))
        apply(scheduler.leave(w, now: now, dead: dead, busySince: checking), now: now, &out)
        // Remembered only if its death charged a shard: that charge is withdrawn if the worker turns
        // out to be alive, at once if the same process already joined again on a new connection.
        guard dead, scheduler.charge(of: w) != nil else { return }
        if names.values.contains(name) {
            withdrawCharge(of: w, name: name, now: now, &out)
        } else {
            buriedNames[w] = name
        }
    }
}
