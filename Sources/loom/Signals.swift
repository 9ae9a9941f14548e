import ArgumentParser
import LoomTensor
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// SIGINT and SIGTERM as values a command's loop reads: the coordinator ends the job cleanly
/// (its workers are told, the journal holds what is done) and exits with ``Interruption/exitCode``.
enum Interruption {
    /// The signal that asked this process to stop, 0 if none.
    static var caught: Int32 { received.load(ordering: .relaxed) }
    private static let received = Atomic<Int32>(0)

    /// EX_TEMPFAIL: the job was stopped before it finished and can be resumed; Slurm scripts
    /// requeue on it (deploy/slurm, docs/cluster.md).
    static let exitCode: Int32 = 75

    /// Catches SIGINT and SIGTERM from now on (also when the parent started us with them blocked).
    static func install() {
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGINT)
        sigaddset(&unblock, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        signal(SIGINT, onSignal)
        signal(SIGTERM, onSignal)
    }

    static func name(_ s: Int32) -> String { s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : "signal \(s)" }

    /// Called from the signal handler: an atomic store is async-signal-safe.
    fileprivate static func record(_ s: Int32) { received.store(s, ordering: .relaxed) }

    /// Ends the command after an interruption: one line saying what stands, and exit 75.
    static func exit(out: String?) -> ExitCode {
        let place = out.map { " in \($0)" } ?? " by the collector"
        Console.log(level: "notice", "interrupted by \(name(caught)): the shards done so far are journaled\(place); run the same command to resume")
        return ExitCode(exitCode)
    }
}

private func onSignal(_ s: Int32) { Interruption.record(s) }
