import ArgumentParser
import FoundationEssentials
import Logging
import LoomCluster
import Synchronization
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// `loom keygen NAME`: a CURVE key pair, as NAME.key (secret, 0600) and NAME.pub.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public), as ssh-keygen does.")

    @Argument(help: "The key's name: the files are NAME.key and NAME.pub.")
    var name: String

    @Option(help: "The folder to write them in.")
    var dir: String = "."

    func run() throws {
        try reportingErrors {
            guard CurveKeyPair.isAvailable else { throw ClusterError.curveUnavailable }
            let keys = try KeyFiles.generate(name: name, in: dir)
            print("loom: wrote \(dir)/\(name).key (secret: give it to one role with --key) and \(dir)/\(name).pub (public key \(keys.publicKey.z85))")
        }
    }
}

/// The CURVE flags of every role. Each can come from the environment (Slurm, Kubernetes Secrets).
struct KeyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This process's secret key file, from `loom keygen` (or $LOOM_KEY).", valueName: "file"))
    var key: String?

    @Option(
        help: ArgumentHelp(
            "Coordinator, collector: the public keys allowed to connect, one per line (or $LOOM_ALLOW); read again on SIGHUP.", valueName: "file"))
    var allow: String?

    @Option(
        help: ArgumentHelp(
            "Worker, stand-alone collector: the coordinator's public key, a .pub file or 40 characters of Z85 (or $LOOM_COORDINATOR_KEY).", valueName: "key"))
    var coordinatorKey: String?

    @Option(help: ArgumentHelp("Coordinator with --collector: that collector's public key, a .pub file or Z85.", valueName: "key"))
    var collectorKey: String?

    @Flag(help: "Use tcp without keys: anyone who reaches the port can read the job and forge results. For tests and closed networks only.")
    var insecure = false

    private static func env(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    var keyFile: String? { key ?? Self.env("LOOM_KEY") }
    var allowFile: String? { allow ?? Self.env("LOOM_ALLOW") }
    var coordinatorKeyText: String? { coordinatorKey ?? Self.env("LOOM_COORDINATOR_KEY") }

    /// Whether the endpoints need keys: tcp does (every user of a shared node can reach even
    /// loopback); ipc sits in a folder's permissions, inproc in the process.
    static func needsKeys(_ endpoints: [String]) -> Bool { endpoints.contains { $0.hasPrefix("tcp://") } }

    /// A server role's security (coordinator, stand-alone collector): its key, its allow-list
    /// and ZAP handler, or none with --insecure or over ipc only. Refuses tcp without keys.
    func server(_ context: Context, endpoints: [String], role: String, logger: Logger) throws -> Security {
        guard let keyFile else {
            if allowFile != nil { throw ValidationError("--allow needs --key: this \(role)'s own secret key") }
            try refuseWithoutKeys(endpoints, role: role, needed: "--key and --allow", logger: logger)
            return .none
        }
        guard CurveKeyPair.isAvailable else { throw ClusterError.curveUnavailable }
        let keys = try KeyFiles.readSecret(keyFile)
        guard let allowFile else { throw ValidationError("--key needs --allow: the public keys of the workers (and coordinator) to let in") }
        let names = try KeyFiles.readAllowList(allowFile)
        let refusedLog = logger
        // A refused client retries every few milliseconds: each key is logged once a minute, with the count.
        let lastLogged = Mutex<[String: (at: ContinuousClock.Instant, count: Int)]>([:])
        let zap = try ZAPHandler(context: context, allow: Set(names.keys).union([keys.publicKey])) { key, address, why in
            let name = key?.fingerprint ?? "none"
            let due: Int? = lastLogged.withLock { seen in
                let now = ContinuousClock.now
                var entry = seen[name] ?? (at: now - .seconds(120), count: 0)
                entry.count += 1
                guard now - entry.at >= .seconds(60) else { seen[name] = entry; return nil }
                seen[name] = (at: now, count: 0)
                return entry.count
            }
            if let due {
                refusedLog.warning("refused a connection", metadata: ["key": "\(name)", "address": "\(address)", "why": "\(why)", "attempts": "\(due)"])
            }
        }
        logger.info("keys", metadata: ["key": "\(keys.publicKey.fingerprint)", "allowed": "\(names.count)", "from": "\(allowFile)"])
        var security = Security(keys: keys, zap: zap)
        security.coordinatorKey = try coordinatorKeyText.map(KeyFiles.readPublic)
        security.collectorKey = try collectorKey.map(KeyFiles.readPublic)
        // SIGHUP reads --allow again: keys added or revoked without a restart.
        AllowReload.install { [allowFile, keys] in
            do {
                let fresh = try KeyFiles.readAllowList(allowFile)
                zap.reload(Set(fresh.keys).union([keys.publicKey]))
                logger.notice("--allow read again (SIGHUP)", metadata: ["allowed": "\(fresh.count)"])
            } catch {
                logger.error("--allow could not be read again; the old list stays", metadata: ["why": "\(error)"])
            }
        }
        return security
    }

    /// A worker's security: its key and the coordinator's it pins, or none.
    func worker(endpoint: String, logger: Logger) throws -> Security {
        guard let keyFile else {
            if coordinatorKeyText != nil { throw ValidationError("--coordinator-key needs --key: this worker's own secret key") }
            try refuseWithoutKeys([endpoint], role: "worker", needed: "--key and --coordinator-key", logger: logger)
            return .none
        }
        let keys = try KeyFiles.readSecret(keyFile)
        guard let text = coordinatorKeyText else {
            throw ValidationError("--key needs --coordinator-key: the coordinator's public key, so that no other process can pose as it")
        }
        return Security(keys: keys, coordinatorKey: try KeyFiles.readPublic(text))
    }

    private func refuseWithoutKeys(_ endpoints: [String], role: String, needed: String, logger: Logger) throws {
        guard Self.needsKeys(endpoints) else { return }
        guard insecure else {
            throw ValidationError(
                "\(endpoints.first { $0.hasPrefix("tcp://") }!) is tcp: without keys anyone who reaches it can read the job and forge results; pass \(needed) (see docs/security.md), or --insecure on a closed network"
            )
        }
        logger.warning("--insecure: tcp without keys; anyone who reaches these endpoints can read the job and forge results", metadata: ["role": "\(role)"])
    }
}

/// SIGHUP as a request to read `--allow` again, served on the main loop's tick.
enum AllowReload {
    private static let pending = Atomic<Bool>(false)
    nonisolated(unsafe) private static var action: (() -> Void)? = nil

    static func install(_ reload: @escaping () -> Void) {
        action = reload
        // A parent (a test runner, a launcher) may have started us with it blocked.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGHUP)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        signal(SIGHUP) { _ in AllowReload.pending.store(true, ordering: .relaxed) }
    }

    /// Runs a pending reload; call from the thread that owns the role's loop.
    static func serve() {
        if pending.exchange(false, ordering: .relaxed) { action?() }
    }
}
