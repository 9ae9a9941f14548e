import ArgumentParser
import Foundation
import LoomCluster
import LoomFuzz
import LoomTestSupport
import ZeroMQ

/// Fuzzes Loom's roles and file readers with real processes; prints a table per target.
@main
struct LoomFuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom-fuzz",
        abstract:
            "Send hostile messages to a coordinator, a collector and a worker during a real job, and feed mutated .npy and .onnx files to loom run and loom inspect."
    )

    @Option(help: "The loom binary (a debug build: its test hooks slow shards down so the job lasts).") var loom: String
    @Option(help: "A conformance case folder: the job and the files to mutate.") var caseDir: String
    @Option(help: "Messages per target.") var messages = 100_000
    @Option(help: "Mutated files (half .npy, half .onnx).") var files = 10_000
    @Option(help: "The seed.") var seed: UInt64 = 1
    @Option(help: "Seconds at most to spend sending to one target.") var seconds = 120.0
    @Flag(help: "Only the files.") var onlyFiles = false
    @Option(help: "Only the message targets whose name contains this (coordinator, collector, worker).") var only: String?

    func run() throws {
        let work = NSTemporaryDirectory() + "/loom-fuzz-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        var rows: [String] = []
        var failed = false
        let header = "target                              inputs  signals  hangs  RSS growth  output"
        print(header)
        let job = try JobCase(directory: caseDir)
        let reference = onlyFiles ? [:] : try job.reference(loom: loom, work: work)
        for target in Target.allCases where !onlyFiles && (only.map { target.rawValue.contains($0) } ?? true) {
            var r = try protocolRun(target, job: job, reference: reference, work: work)
            if r.realJobHung {
                // An open bug (docs/security.md): now and then, under CI's load, the real job's
                // coordinator never hears from its collector. Said, with the sockets, and tried once more.
                print("\(r.row)  (the real job beside the worker did not finish: once more)")
                r = try protocolRun(target, job: job, reference: reference, work: work + "/again")
            }
            rows.append(r.row)
            print(r.row)
            fflush(nil)
            failed = failed || !r.ok
        }
        let f = try fileRun(job: job, work: work)
        rows.append(f.row)
        print(f.row)
        failed = failed || !f.ok
        if failed { throw ExitCode(1) }
    }

    enum Target: String, CaseIterable {
        case coordinatorNoKey = "coordinator, no key", coordinatorAllowed = "coordinator, allowed key"
        case collectorNoKey = "collector, no key", collectorAllowed = "collector, allowed key"
        /// A worker that pinned the coordinator's key, fed by a fake coordinator holding that key.
        case worker = "worker, from its coordinator's key"
    }

    struct Outcome {
        var row: String
        var ok: Bool
        /// The worker target only: its victim passed, but the real job beside it did not finish.
        var realJobHung = false
    }

    /// A job (over tcp with keys, a stand-alone collector) while hostile messages arrive at one role.
    func protocolRun(_ target: Target, job: JobCase, reference: [String: [UInt8]], work: String) throws -> Outcome {
        let dir = work + "/\(target)".replacingOccurrences(of: " ", with: "-").replacingOccurrences(of: ",", with: "")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for name in ["coordinator", "workers", "collector", "intruder"] {
            try runChecked(loom, ["keygen", name, "--dir", dir])
        }
        try FileManager.default.createDirectory(atPath: dir + "/allow", withIntermediateDirectories: true)
        // The collector lets in workers, the coordinator and (for the compromised-worker target) the intruder.
        let allow = try ["workers", "intruder", "coordinator"].map { try String(contentsOfFile: dir + "/\($0).pub", encoding: .utf8) }.joined()
        try allow.write(toFile: dir + "/allow.pub", atomically: true, encoding: .utf8)
        let cport = freePort(), kport = freePort()
        var slow = ProcessInfo.processInfo.environment
        // Slow shards, so that the job lasts while the messages arrive (about 20,000 a second).
        slow["LOOM_TEST_SHARD_DELAY_US"] = "\(min(50_000, max(3000, messages / 2)))"
        let collector = try start(
            loom,
            [
                "collector", "--bind", "tcp://127.0.0.1:\(kport)", "--out", dir + "/out", "--key", dir + "/collector.key",
                "--allow", dir + "/allow.pub", "--coordinator-key", dir + "/coordinator.pub", "--log-level", "info"
            ], log: dir + "/collector.log")
        let workers = try (0..<2).map { k in
            try start(
                loom,
                [
                    "worker", "--connect", "tcp://127.0.0.1:\(cport)", "--key", dir + "/workers.key", "--coordinator-key", dir + "/coordinator.pub",
                    "--log-level", "info"
                ], environment: slow, log: dir + "/worker\(k).log")
        }
        let coordinator = try start(
            loom,
            [
                "coordinator", "--bind", "tcp://127.0.0.1:\(cport)", "--collector", "tcp://127.0.0.1:\(kport)",
                "--collector-key", dir + "/collector.pub", "--key", dir + "/coordinator.key", "--allow", dir + "/allow.pub",
                "--quiet", "--log-level", "info"
            ] + job.argv, cwd: job.directory, log: dir + "/coordinator.log")
        if target == .worker {
            let (offered, workerSignals, hangs, growth) = try fuzzWorker(dir: dir, messages: messages)
            let ended = wait(coordinator, seconds: 120) {
                printSockets(ports: [cport, kport])
                printThreads(["coordinator": coordinator, "collector": collector])
            }
            let collectorEnded = wait(collector, seconds: 10)
            for w in workers { _ = wait(w, seconds: 10) }
            // A signal counts when the process died of one by itself, not when this harness had to stop it.
            let signals = workerSignals + [(coordinator, ended), (collector, collectorEnded)].filter { $0.1 && $0.0.terminationReason == .uncaughtSignal }.count
            let same = ended && coordinator.terminationStatus == 0 && (try? job.results(dir + "/out")) == reference
            let row =
                "\(target.rawValue.padding(toLength: 34, withPad: " ", startingAt: 0)) \(String(offered).leftPad(7))  \(String(signals).leftPad(7))  \(String(hangs + (ended ? 0 : 1)).leftPad(5))  \(growth.leftPad(10))  \(same ? "identical" : "DIFFERS")"
            let ok = signals == 0 && hangs == 0 && ended && same
            if !ok { printJobLogs(dir) }
            return Outcome(row: row, ok: ok, realJobHung: signals == 0 && hangs == 0 && !ended)
        }
        let victim = [Target.coordinatorNoKey, .coordinatorAllowed].contains(target) ? coordinator : collector
        let port = victim === coordinator ? cport : kport
        let serverKey = try String(contentsOfFile: dir + (victim === coordinator ? "/coordinator.pub" : "/collector.pub"), encoding: .utf8)
            .split(separator: "\n").last!.split(separator: " ").first!
        usleep(200_000)
        let rssBefore = rss(victim.processIdentifier)
        let context = try Context()
        var hostile = Hostile(seed: seed &+ UInt64(Target.allCases.firstIndex(of: target)!))
        var sent = 0, offered = 0
        var refusedSends = 0
        do {
            let sockets = try (0..<4).map { _ -> Socket in
                let s = try Socket(context, .dealer)
                if [Target.coordinatorAllowed, .collectorAllowed].contains(target) {
                    let keys = try KeyFiles.readSecret(dir + "/intruder.key")
                    try s.makeCurveClient(keys, server: CurveKey(z85: String(serverKey))!)
                }
                try s.set(SocketOption.sendHighWaterMark, 100_000)
                try s.connect("tcp://127.0.0.1:\(port)")
                return s
            }
            defer { for s in sockets { s.close() } }
            let until = Date().addingTimeInterval(seconds)
            while offered < messages && Date() < until && victim.isRunning {
                let s = sockets[hostile.below(sockets.count)]
                offered += 1
                if (try? s.send(hostile.message(largeFrames: sent % 50 == 0), dontWait: true)) == true { sent += 1 } else { refusedSends += 1; usleep(100) }
                // Never faster than the job: read nothing, but give the victim room.
                if offered % 2000 == 0 { usleep(5000) }
            }
        }
        // Without a key the handshake fails, so libzmq takes (almost) nothing: the messages offered are the inputs.
        _ = refusedSends
        let rssAfter = victim.isRunning ? rss(victim.processIdentifier) : 0
        context.terminate(waitingAtMost: 2)
        let ended = wait(coordinator, seconds: 120)
        _ = wait(collector, seconds: 10)
        for w in workers { _ = wait(w, seconds: 10) }
        let signals = [coordinator, collector].filter { $0.terminationReason == .uncaughtSignal }.count
        let same = ended && coordinator.terminationStatus == 0 && (try? job.results(dir + "/out")) == reference
        let growth = rssBefore > 0 && rssAfter > 0 ? "\(Int((Double(rssAfter - rssBefore) / 1024).rounded())) MiB" : "?"
        let row =
            "\(target.rawValue.padding(toLength: 34, withPad: " ", startingAt: 0)) \(String(offered).leftPad(7))  \(String(signals).leftPad(7))  \(String(ended ? 0 : 1).leftPad(5))  \(growth.leftPad(10))  \(same ? "identical" : "DIFFERS")"
        let ok = signals == 0 && ended && same
        if !ok { printJobLogs(dir) }
        return Outcome(row: row, ok: ok)
    }

    /// Hostile messages to a worker from a fake coordinator that holds the key the worker pinned
    /// (a compromised or broken coordinator). A worker drops malformed messages; one that ends (an
    /// `end`, another protocol version) is started again, and what ended it is counted: a signal is
    /// a failure, a one-line exit is not. At the end the worker must still answer (a hello or a
    /// heartbeat within 10 s), or it counts as a hang. Returns the messages, signals, hangs and the
    /// last worker's RSS growth.
    func fuzzWorker(dir: String, messages: Int) throws -> (Int, Int, Int, String) {
        let context = try Context()
        defer { context.terminate(waitingAtMost: 2) }
        // The workers' key is let in, as the real coordinator lets it in.
        let workersKey = try KeyFiles.readSecret(dir + "/workers.key").publicKey
        let zap = try ZAPHandler(context: context, allow: [workersKey]) { _, _, _ in }
        defer { zap.stop() }
        let fake = try Socket(context, .router)
        defer { fake.close() }
        try fake.makeCurveServer(try KeyFiles.readSecret(dir + "/coordinator.key"))
        try fake.set(SocketOption.sendHighWaterMark, 100_000)
        let port = freePort()
        try fake.bind("tcp://127.0.0.1:\(port)")
        func startVictim() throws -> Process {
            try start(
                loom,
                [
                    "worker", "--connect", "tcp://127.0.0.1:\(port)", "--key", dir + "/workers.key", "--coordinator-key", dir + "/coordinator.pub",
                    "--keep-alive", "--log-level", "critical"
                ])
        }
        var victim = try startVictim()
        var hostile = Hostile(seed: seed &+ 17)
        var peer: [UInt8]? = nil
        var offered = 0, signals = 0, restarts = 0
        var rssBefore = 0
        let until = Date().addingTimeInterval(seconds)
        while offered < messages && Date() < until {
            while let frames = try fake.receive(dontWait: true), let id = frames.first {
                peer = id.array
                if rssBefore == 0 { rssBefore = rss(victim.processIdentifier) }
            }
            if !victim.isRunning {
                victim.waitUntilExit()
                if victim.terminationReason == .uncaughtSignal { signals += 1 }
                restarts += 1
                victim = try startVictim()
                peer = nil
                rssBefore = 0
                continue
            }
            guard let to = peer else {
                _ = try poll([fake], timeoutMilliseconds: 50)
                continue
            }
            offered += 1
            if (try? fake.send([to] + hostile.message(largeFrames: offered % 50 == 0), dontWait: true)) != true { usleep(200) }
            if offered % 2000 == 0 { usleep(5000) }
        }
        // Still answering: a hello or a heartbeat within 10 s of the last message. A worker that a
        // message still in its queue ends meanwhile (cleanly) is started again, and must answer.
        var answered = false
        while try fake.receive(dontWait: true) != nil {}
        var deadline = Date().addingTimeInterval(10)
        while !answered && Date() < deadline {
            if !victim.isRunning {
                victim.waitUntilExit()
                if victim.terminationReason == .uncaughtSignal { signals += 1 }
                restarts += 1
                victim = try startVictim()
                deadline = Date().addingTimeInterval(10)
                continue
            }
            if try poll([fake], timeoutMilliseconds: 100)[0], try fake.receive(dontWait: true) != nil { answered = true }
        }
        let rssAfter = victim.isRunning ? rss(victim.processIdentifier) : 0
        victim.terminate()
        _ = wait(victim, seconds: 5)
        let growth = rssBefore > 0 && rssAfter > 0 ? "\(Int((Double(rssAfter - rssBefore) / 1024).rounded())) MiB" : "?"
        FileHandle.standardError.write("worker target: \(restarts) restarts (ended by an `end` or a version it refuses)\n".data(using: .utf8)!)
        return (offered, signals, answered ? 0 : 1, growth)
    }

    /// Mutated .npy and .onnx files through `loom inspect` and `loom run`.
    func fileRun(job: JobCase, work: String) throws -> Outcome {
        let dir = work + "/files"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in try FileManager.default.contentsOfDirectory(atPath: job.directory) where f.hasSuffix(".npy") || f.hasSuffix(".onnx") {
            try FileManager.default.copyItem(atPath: job.directory + "/" + f, toPath: dir + "/" + f)
        }
        let model = job.argv[job.argv.firstIndex(of: "--model")! + 1]
        let x = job.argv[job.argv.firstIndex(of: "--x")! + 1]
        let originals = [
            model: try Array(Data(contentsOf: URL(fileURLWithPath: job.directory + "/" + model))),
            x: try Array(Data(contentsOf: URL(fileURLWithPath: job.directory + "/" + x)))
        ]
        var hostile = Hostile(seed: seed &+ 99)
        var signals = 0, hangs = 0
        for i in 0..<files {
            let name = i % 2 == 0 ? x : model
            try Data(hostile.mutate(originals[name]!)).write(to: URL(fileURLWithPath: dir + "/" + name))
            let args = i % 4 < 2 ? ["run"] + job.plainArgv + ["--out", dir + "/out", "--overwrite", "--quiet"] : ["inspect", model]
            let p = try start(loom, args, cwd: dir)
            if !wait(p, seconds: 30) { hangs += 1 } else if p.terminationReason == .uncaughtSignal { signals += 1 }
            try Data(originals[name]!).write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        let row =
            "\("files (.npy, .onnx): run, inspect".padding(toLength: 34, withPad: " ", startingAt: 0)) \(String(files).leftPad(7))  \(String(signals).leftPad(7))  \(String(hangs).leftPad(5))  \("–".leftPad(10))  –"
        return Outcome(row: row, ok: signals == 0 && hangs == 0)
    }
}

/// A conformance case: its folder and loom's arguments.
struct JobCase {
    let directory: String
    var argv: [String]
    /// The case's own arguments (a job of a few shards, for the file runs).
    let plainArgv: [String]

    init(directory: String) throws {
        self.directory = directory
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/case.json"))) as! [String: Any]
        argv = json["argv"] as! [String]
        plainArgv = argv
        // One example per shard: a job long enough to fuzz during.
        if let i = argv.firstIndex(of: "--batch-size") { argv[i + 1] = "1" } else { argv += ["--batch-size", "1"] }
        argv += ["--shard-batches", "1"]
    }

    func reference(loom: String, work: String) throws -> [String: [UInt8]] {
        try runChecked(loom, ["run"] + argv + ["--out", work + "/reference", "--quiet"], cwd: directory)
        return try results(work + "/reference")
    }

    func results(_ out: String) throws -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for f in try FileManager.default.contentsOfDirectory(atPath: out) where f.hasSuffix(".npy") {
            files[f] = try Array(Data(contentsOf: URL(fileURLWithPath: out + "/" + f)))
        }
        return files
    }
}

/// The TCP sockets on `ports` (`ss -tanp`), for a real job that hung: whether the coordinator's
/// connection to its collector exists, and in which state.
func printSockets(ports: [Int]) {
    guard let r = try? runProcess("/usr/bin/env", ["ss", "-tanp"], timeout: 30) else { return }
    let lines = r.stdout.split(separator: "\n").filter { line in ports.contains { line.contains(":\($0) ") } }
    FileHandle.standardError.write("--- sockets on ports \(ports) (ss -tanp):\n\(lines.joined(separator: "\n"))\n".data(using: .utf8)!)
}

/// Every thread's stack in each process (`gdb -batch`, where gdb is installed), for a real job that
/// hung: whether the collector's ZAP handler and the coordinator's loop are alive, and where they wait.
func printThreads(_ processes: [String: Process]) {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb") else { return }
    for (name, process) in processes.sorted(by: { $0.key < $1.key }) where process.isRunning {
        let pid = process.processIdentifier
        guard let r = try? runProcess("/usr/bin/gdb", ["-q", "-batch", "-p", "\(pid)", "-ex", "thread apply all bt 12"], timeout: 30) else { continue }
        let lines = r.stdout.split(separator: "\n").filter { $0.hasPrefix("Thread ") || $0.hasPrefix("#") }.map { String($0.prefix(200)) }
        FileHandle.standardError.write("--- threads of the \(name) (pid \(pid)):\n\(lines.joined(separator: "\n"))\n".data(using: .utf8)!)
    }
}

/// The last lines of the real job's logs (coordinator, collector, workers), for a target that failed.
func printJobLogs(_ dir: String) {
    for name in ["coordinator", "collector", "worker0", "worker1"] {
        guard let text = try? String(contentsOfFile: dir + "/\(name).log", encoding: .utf8) else { continue }
        let tail = text.split(separator: "\n").suffix(25).joined(separator: "\n")
        FileHandle.standardError.write("--- \(name).log, last lines:\n\(tail)\n".data(using: .utf8)!)
    }
}

/// Starts `exe`; its standard error goes to `log` if given, else nowhere.
func start(_ exe: String, _ args: [String], cwd: String? = nil, environment: [String: String]? = nil, log: String? = nil) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    if let environment { p.environment = environment }
    p.standardInput = FileHandle.nullDevice
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    if let log, FileManager.default.createFile(atPath: log, contents: nil), let handle = FileHandle(forWritingAtPath: log) {
        p.standardError = handle
    }
    try p.run()
    return p
}

@discardableResult
func runChecked(_ exe: String, _ args: [String], cwd: String? = nil) throws -> Int32 {
    let p = try start(exe, args, cwd: cwd)
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw ValidationError("\(exe) \(args.prefix(3).joined(separator: " ")) failed (\(p.terminationStatus))") }
    return p.terminationStatus
}

/// Waits up to `seconds` for `p` to exit; if it has not, calls `beforeKilling` (while it still
/// runs), then terminates it. Returns whether it exited by itself.
func wait(_ p: Process, seconds: Double, beforeKilling: () -> Void = {}) -> Bool {
    let until = Date().addingTimeInterval(seconds)
    while p.isRunning && Date() < until { usleep(20_000) }
    if p.isRunning {
        beforeKilling()
        p.terminate()
        usleep(200_000)
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return false
    }
    return true
}

/// Resident memory in KiB, from /proc.
func rss(_ pid: Int32) -> Int {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return Int(line.split(whereSeparator: \.isWhitespace)[1]) ?? 0
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
