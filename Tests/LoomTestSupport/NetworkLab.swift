import Foundation

/// Hosts of a test's own, in Linux network namespaces, joined by a switch: a real network with
/// real addresses that exist only inside the test, where packets can be dropped with nftables.
///
/// Loopback hides what breaks across hosts: a host name that resolves to 127.0.0.1 still works
/// there, and a peer that closes its connection is not a partition. Here each host has its own
/// loopback and its own address (198.18.0.N/24, the range RFC 2544 sets aside for benchmarks,
/// which is never routed), every host reaches the others through veth pairs on a bridge in a
/// switch namespace, and ``partition(_:from:oneWay:)`` drops packets silently, as a failed link
/// does. Needs root, `ip` (iproute2) and `nft` (nftables); ``isAvailable`` says whether they are.
/// ``tearDown()`` kills every process left in the namespaces and deletes them.
public final class NetworkLab {
    public struct Host: Sendable {
        /// The namespace's name (for `ip netns exec`).
        public let namespace: String
        /// Its address on the lab's network.
        public let address: String
    }

    public let hosts: [Host]
    let switchNamespace: String
    private var torn = false

    /// Whether this machine can build a lab: running as root, with `ip` and `nft`.
    public static var isAvailable: Bool {
        getuid() == 0 && ["/usr/sbin/ip", "/usr/sbin/nft"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Builds `count` hosts (at most 200) on one switch.
    public init(hosts count: Int) throws {
        precondition((1...200).contains(count))
        Self.sweepOnce()
        // Short and unique per process and lab: interface names have at most 15 characters.
        let tag = String(format: "%05d%02d", Int(getpid()) % 100_000, Int(NetworkLab.counter.next()) % 100)
        switchNamespace = "loomlab-\(tag)-sw"
        hosts = (1...count).map { Host(namespace: "loomlab-\(tag)-h\($0)", address: "198.18.0.\($0)") }
        do {
            try Self.ip(["netns", "add", switchNamespace])
            try Self.ip(["-n", switchNamespace, "link", "add", "br0", "type", "bridge"])
            try Self.ip(["-n", switchNamespace, "link", "set", "br0", "up"])
            for (k, host) in hosts.enumerated() {
                let inner = "lh\(tag)\(k)", outer = "ls\(tag)\(k)"
                try Self.ip(["netns", "add", host.namespace])
                try Self.ip(["link", "add", inner, "type", "veth", "peer", "name", outer])
                try Self.ip(["link", "set", inner, "netns", host.namespace])
                try Self.ip(["link", "set", outer, "netns", switchNamespace])
                try Self.ip(["-n", switchNamespace, "link", "set", outer, "master", "br0"])
                try Self.ip(["-n", switchNamespace, "link", "set", outer, "up"])
                try Self.ip(["-n", host.namespace, "addr", "add", "\(host.address)/24", "dev", inner])
                try Self.ip(["-n", host.namespace, "link", "set", inner, "up"])
                try Self.ip(["-n", host.namespace, "link", "set", "lo", "up"])
                try Self.nft(host, "add table inet loomlab")
            }
        } catch {
            tearDown()
            throw error
        }
    }

    deinit { tearDown() }

    /// Removes labs left behind by test processes that were killed (a lab's name holds its creator's pid).
    static func sweepStale() {
        guard let r = try? runProcess("/usr/sbin/ip", ["netns", "list"], timeout: 10) else { return }
        for line in r.stdout.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix("loomlab-"), let tag = name.split(separator: "-").dropFirst().first, tag.count == 7,
                let pid = Int32(tag.prefix(5))
            else { continue }
            // Only labs whose creator is gone (pids wrap at 100,000 here: a live namesake keeps its lab).
            if pid == Int32(getpid()) % 100_000 || kill(pid, 0) == 0 { continue }
            if let pids = try? runProcess("/usr/sbin/ip", ["netns", "pids", name], timeout: 10) {
                for p in pids.stdout.split(whereSeparator: \.isWhitespace).compactMap({ Int32($0) }) { kill(p, SIGKILL) }
            }
            _ = try? runProcess("/usr/sbin/ip", ["netns", "del", name], timeout: 10)
        }
    }
    /// Sweeps once per process (the first lab made).
    private static let swept = Counter()
    static func sweepOnce() { if swept.next() == 1 { sweepStale() } }

    private static let counter = Counter()
    private final class Counter: @unchecked Sendable {
        private var value = 0
        private let lock = NSLock()
        func next() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
    }

    /// Starts `loom` (or another program) on `host`; the caller stops it (``tearDown()`` kills what is left).
    public func start(
        on host: Host, _ executable: String, _ arguments: [String], cwd: String? = nil,
        environment: [String: String] = [:], stderrPath: String? = nil
    ) throws -> Process {
        // `ip netns exec` execs the program: the process is the program itself.
        try startProcess(
            "/usr/sbin/ip", ["netns", "exec", host.namespace, executable] + arguments, cwd: cwd,
            environment: environment, stderrPath: stderrPath)
    }

    /// Runs a program on `host` to completion.
    public func run(
        on host: Host, _ executable: String, _ arguments: [String], cwd: String? = nil,
        timeout: TimeInterval = 120
    ) throws -> ProcessResult {
        try runProcess("/usr/sbin/ip", ["netns", "exec", host.namespace, executable] + arguments, cwd: cwd, timeout: timeout)
    }

    /// Silently drops every packet between `a` and each of `others` (both ways), or with
    /// `oneWay`, only the packets from `others` to `a`. Rules live in `a`'s namespace.
    public func partition(_ a: Host, from others: [Host], oneWay: Bool = false) throws {
        for b in others {
            try Self.nft(a, "add rule inet loomlab input ip saddr \(b.address) drop")
            if !oneWay { try Self.nft(a, "add rule inet loomlab output ip daddr \(b.address) drop") }
        }
    }

    /// Drops `percent` % of the packets `host` receives and sends, at random (nftables' numgen).
    public func loss(_ host: Host, percent: Int) throws {
        for hook in ["input", "output"] {
            try Self.nft(host, "add rule inet loomlab \(hook) ip saddr 198.18.0.0/24 ip daddr 198.18.0.0/24 numgen random mod 100 < \(percent) drop")
        }
    }

    /// Removes every rule: the network is whole again.
    public func heal() throws {
        for host in hosts {
            for hook in ["input", "output"] { try Self.nft(host, "flush chain inet loomlab \(hook)") }
        }
    }

    /// Kills what still runs in the lab's namespaces and deletes them (and with them the links).
    public func tearDown() {
        guard !torn else { return }
        torn = true
        for ns in hosts.map(\.namespace) + [switchNamespace] {
            if let r = try? runProcess("/usr/sbin/ip", ["netns", "pids", ns], timeout: 10) {
                for pid in r.stdout.split(whereSeparator: \.isWhitespace).compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
            }
            _ = try? runProcess("/usr/sbin/ip", ["netns", "del", ns], timeout: 10)
        }
    }

    static func ip(_ arguments: [String]) throws {
        let r = try runProcess("/usr/sbin/ip", arguments, timeout: 20)
        guard r.status == 0 else { throw LabError(command: "ip " + arguments.joined(separator: " "), output: r.stderr) }
    }

    static func nft(_ host: Host, _ command: String) throws {
        var words = command.split(separator: " ").map(String.init)
        // The chains the rules go in, created with the table.
        if command == "add table inet loomlab" {
            try ip(["netns", "exec", host.namespace, "/usr/sbin/nft", "add", "table", "inet", "loomlab"])
            for hook in ["input", "output"] {
                try ip([
                    "netns", "exec", host.namespace, "/usr/sbin/nft", "add", "chain", "inet", "loomlab", hook,
                    "{ type filter hook \(hook) priority 0; policy accept; }"
                ])
            }
            return
        }
        words = ["netns", "exec", host.namespace, "/usr/sbin/nft"] + words
        try ip(words)
    }

    public struct LabError: Error, CustomStringConvertible {
        public let command: String
        public let output: String
        public var description: String { "\(command): \(output.trimmingCharacters(in: .whitespacesAndNewlines))" }
    }
}
