import FoundationEssentials
import LoomSystem

#if canImport(Glibc)
    import Glibc
#endif

/// ZeroMQ endpoints as Loom's roles hand them to each other across hosts.
///
/// A socket bound to every interface (`tcp://*:5556`) reports `tcp://0.0.0.0:5556`, which is no
/// address at all to a process on another host, and a host's own name is no better: Debian maps
/// it to 127.0.1.1 in `/etc/hosts`, so on a worker's host it names the worker's own loopback.
/// Loom therefore advertises a wildcard host as `*`, and each worker puts in the host through
/// which it reached the coordinator, which is by construction one that works from where it is.
public enum Endpoint {
    /// A `tcp://HOST:PORT` endpoint's parts; nil for other transports or a malformed one.
    public static func tcpParts(_ endpoint: String) -> (host: String, port: String)? {
        guard endpoint.hasPrefix("tcp://") else { return nil }
        let rest = endpoint.dropFirst("tcp://".count)
        guard let colon = rest.lastIndex(of: ":") else { return nil }
        var host = String(rest[..<colon])
        let port = String(rest[rest.index(after: colon)...])
        // libzmq's form for a source address (`tcp://src;host:port`) is not Loom's; keep the target.
        if let semi = host.lastIndex(of: ";") { host = String(host[host.index(after: semi)...]) }
        guard !host.isEmpty, !port.isEmpty else { return nil }
        return (host, port)
    }

    /// Whether a host names every interface of the host that binds it.
    public static func isWildcard(_ host: String) -> Bool {
        ["*", "0.0.0.0", "[::]", "::", "[*]"].contains(host)
    }

    /// Whether a host names the loopback of whichever host reads it.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host.hasPrefix("127.") || host == "[::1]" || host == "::1"
    }

    /// The endpoint to tell workers for a socket bound at `bound` (its `lastEndpoint`).
    ///
    /// - Parameter advertise: the host workers should use (`--advertise`); nil keeps a wildcard
    ///   host as `*`, for each worker to replace with the host it reached the coordinator by
    ///   (``resolve(_:via:)``).
    public static func advertised(_ bound: String, host advertise: String?) -> String {
        guard let (host, port) = tcpParts(bound), isWildcard(host) || (advertise != nil && isLoopback(host) == false) else {
            return bound
        }
        if let advertise { return "tcp://\(bracketed(advertise)):\(port)" }
        return "tcp://*:\(port)"
    }

    /// The endpoint a worker that reached its coordinator at `coordinator` should use for `endpoint`.
    ///
    /// A wildcard host (`*`, `0.0.0.0`) becomes the coordinator's host. So does a loopback host
    /// (`127.0.0.1`, `localhost`) when the coordinator is not on loopback: it named the
    /// coordinator's own host, where the worker is not. Anything else is kept.
    public static func resolve(_ endpoint: String, via coordinator: String) -> String {
        guard let (host, port) = tcpParts(endpoint), let (coordinatorHost, _) = tcpParts(coordinator) else { return endpoint }
        if isWildcard(host) || (isLoopback(host) && !isLoopback(coordinatorHost) && !isWildcard(coordinatorHost)) {
            return "tcp://\(coordinatorHost):\(port)"
        }
        return endpoint
    }

    /// An IPv6 literal in brackets, as ZeroMQ endpoints write it.
    static func bracketed(_ host: String) -> String {
        host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
    }

    /// The host's first non-loopback IPv4 address (else IPv6), for endpoint files: an address, never a name.
    public static func firstNonLoopbackAddress() -> String? {
        var list: UnsafeMutablePointer<ifaddrs>? = nil
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        var v6: String? = nil
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = p {
            defer { p = entry.pointee.ifa_next }
            let flags = Int32(entry.pointee.ifa_flags)
            guard let addr = entry.pointee.ifa_addr, flags & Int32(IFF_UP) != 0, flags & Int32(IFF_LOOPBACK) == 0 else { continue }
            let family = Int32(addr.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            guard getnameinfo(addr, length, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let address = String(cBuffer: text)
            if family == AF_INET { return address }
            if v6 == nil && !address.hasPrefix("fe80") { v6 = address }
        }
        return v6.map { "[\($0)]" }
    }

    /// Checks that a tcp endpoint's host resolves; throws a one-line error naming it if it does not.
    ///
    /// libzmq would otherwise retry a name that never resolves for ever, and the worker would
    /// wait as if no coordinator were there yet.
    public static func checkResolvable(_ endpoint: String, flag: String) throws {
        guard let (host, _) = tcpParts(endpoint), !isWildcard(host) else { return }
        let name = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>? = nil
        let status = getaddrinfo(name, nil, &hints, &result)
        if let result { freeaddrinfo(result) }
        guard status == 0 else {
            throw ClusterError.unresolvableHost(flag: flag, endpoint: endpoint, host: name, reason: String(cString: gai_strerror(status)))
        }
    }
}

/// Endpoint files: how a coordinator started on a node the scheduler picked tells workers where it is.
public enum EndpointFile {
    /// The endpoint workers should use for a socket bound at `bound` (its `lastEndpoint`): always
    /// an address, never a name. A wildcard host becomes `advertise`, else this host's first
    /// non-loopback address.
    public static func contents(bound: String, advertise: String?) throws -> String {
        guard let (host, port) = Endpoint.tcpParts(bound) else { return bound }
        if let advertise { return "tcp://\(Endpoint.bracketed(advertise)):\(port)" }
        guard Endpoint.isWildcard(host) else { return bound }
        guard let address = Endpoint.firstNonLoopbackAddress() else {
            throw ClusterError.onlyLoopback(bound: bound)
        }
        return "tcp://\(address):\(port)"
    }

    /// Writes `endpoint` to `path` atomically (a temporary file beside it, then a rename), so a
    /// worker polling for the file never reads half of it.
    public static func write(_ endpoint: String, to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data((endpoint + "\n").utf8)) else {
            throw ClusterError.endpointFileUnwritable(path: path, detail: "cannot write \(temporary) (\(String(cString: strerror(errno))))")
        }
        guard rename(temporary, path) == 0 else {
            let e = errno
            unlink(temporary)
            throw ClusterError.endpointFileUnwritable(path: path, detail: "cannot rename into place (\(String(cString: strerror(e))))")
        }
    }

    /// Waits for `path` to hold an endpoint, checking every 100 ms; returns it, or nil if
    /// `maxWait` seconds pass (nil: wait for ever). `onWait` is called every minute of waiting.
    public static func wait(for path: String, maxWait: Double?, onWait: (Double) -> Void = { _ in }) throws -> String? {
        let start = Date()
        var nextNote = 10.0
        while true {
            if let data = FileManager.default.contents(atPath: path) {
                let text = String(decoding: data, as: UTF8.self).trimmingWhitespace
                if !text.isEmpty {
                    guard text.hasPrefix("tcp://") || text.hasPrefix("ipc://"), !text.contains("\n") else {
                        throw ClusterError.endpointFileInvalid(path: path, content: text)
                    }
                    return text
                }
            }
            let waited = Date().timeIntervalSince(start)
            if let maxWait, waited >= maxWait { return nil }
            if waited >= nextNote { onWait(waited); nextNote = waited + 60 }
            usleep(100_000)
        }
    }
}
