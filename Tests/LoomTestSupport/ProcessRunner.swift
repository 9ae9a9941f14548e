import Foundation

/// The outcome of running a command to completion.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var timedOut: Bool
}

/// Runs a real process with a deadline, capturing its output; the child is killed if it overruns.
public func runProcess(
    _ executable: String, _ arguments: [String], cwd: String? = nil,
    environment: [String: String]? = nil, timeout: TimeInterval = 120
) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let outPipe = Pipe(), errPipe = Pipe()
    p.standardOutput = outPipe
    p.standardError = errPipe
    p.standardInput = FileHandle.nullDevice
    let outBox = DataBox(), errBox = DataBox()
    let group = DispatchGroup()
    for (pipe, box) in [(outPipe, outBox), (errPipe, errBox)] {
        group.enter()
        DispatchQueue.global().async {
            box.data = pipe.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
    }
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    var timedOut = false
    while p.isRunning {
        if Date() > deadline {
            timedOut = true
            kill(p.processIdentifier, SIGKILL)
            break
        }
        usleep(10_000)
    }
    p.waitUntilExit()
    group.wait()
    return ProcessResult(
        status: p.terminationStatus, stdout: String(decoding: outBox.data, as: UTF8.self),
        stderr: String(decoding: errBox.data, as: UTF8.self), timedOut: timedOut)
}

/// Runs `loom` with arguments.
public func runLoom(_ arguments: [String], cwd: String? = nil, timeout: TimeInterval = 120) throws -> ProcessResult {
    try runProcess(Repository.loomBinary, arguments, cwd: cwd, timeout: timeout)
}

/// A place for a reading thread to leave what it read.
public final class DataBox: @unchecked Sendable {
    public var data = Data()
    public init() {}
}

/// Processes whose command line contains `fragment` (read from /proc), other than this one.
public func processes(containing fragment: String) -> [Int32] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { Int32($0) }.filter { pid in
        guard pid != getpid(), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let text = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return text.contains(fragment)
    }
}

/// Starts a process without waiting for it; the caller stops it.
public func startProcess(
    _ executable: String, _ arguments: [String], cwd: String? = nil,
    environment: [String: String] = [:], stderrPath: String? = nil
) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    p.standardInput = FileHandle.nullDevice
    p.standardOutput = FileHandle.nullDevice
    if let stderrPath {
        // A file, not a pipe: nobody drains a pipe while the test waits, and a full one would block the process.
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: stderrPath)
    } else {
        p.standardError = FileHandle.nullDevice
    }
    try p.run()
    return p
}

/// Waits up to `timeout` seconds for a process to exit; kills it if it does not. Returns whether it exited by itself.
@discardableResult
public func waitOrKill(_ p: Process, timeout: TimeInterval) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        return false
    }
    return true
}

/// A free TCP port on 127.0.0.1 below the kernel's ephemeral range (bound and released; good
/// enough for tests and the fuzzer's jobs).
public func freePort() -> Int {
    // Below the kernel's ephemeral range: a port from bind(0) lies inside it, and a process's
    // connect() made before the listener binds can take that very port as its source port and
    // connect to itself (the coordinator "connected" to a collector that never saw it).
    let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
        .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
    let ephemeralStart = range?.first ?? 32_768
    let upper = max(ephemeralStart, 11_024)
    for _ in 0..<1000 {
        let port = Int.random(in: max(10_000, upper - 12_000)..<upper)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound == 0 { return port }
    }
    fatalError("no free port below the ephemeral range (\(ephemeralStart))")
}

/// Worker processes (`--parent-pid P`) whose parent P is gone: orphans a run failed to clean up.
///
/// A worker whose parent was just killed (by another test) takes a moment to notice and exit,
/// so orphans must persist for `grace` seconds to count.
public func orphanedWorkers(grace: TimeInterval = 3) -> [Int32] {
    let deadline = Date().addingTimeInterval(grace)
    var found = orphansNow()
    while !found.isEmpty && Date() < deadline {
        usleep(50_000)
        found = orphansNow()
    }
    return found
}

private func orphansNow() -> [Int32] {
    processes(containing: "--parent-pid ").filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let i = args.firstIndex(of: "--parent-pid"), i + 1 < args.count, let parent = Int32(args[i + 1]) else { return false }
        return kill(parent, 0) != 0
    }
}

/// Removes the run folders (`/tmp/loom-run-*`) a killed `loom run --workers N` with pid `pid` left:
/// the next run would sweep them, but a test that kills the last run cleans up after itself.
public func removeRunFolders(ownedBy pid: Int32) {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
    for name in names where name.hasPrefix("loom-run-") {
        let path = "/tmp/" + name
        guard let owner = try? String(contentsOfFile: path + "/owner", encoding: .utf8),
            Int32(owner.trimmingCharacters(in: .whitespacesAndNewlines)) == pid
        else { continue }
        try? FileManager.default.removeItem(atPath: path)
    }
}
