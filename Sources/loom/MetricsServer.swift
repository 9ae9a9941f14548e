import ArgumentParser
import FoundationEssentials
import LoomProduct
import LoomSystem
import LoomTensor
import Prometheus

#if canImport(Glibc)
    import Glibc
#endif

/// `--metrics ADDRESS`: serves the job's ``JobMetrics`` at `http://ADDRESS/metrics` in Prometheus's text format.
///
/// A minimal HTTP/1.1 responder on its own thread: one request per connection, `GET /metrics`
/// answered from the registry, anything else 404 or 405. Each connection has 2 s to send its
/// request, so a client that stalls cannot hold the thread. The endpoint has no authentication:
/// bind it to loopback or a private network (docs/reliability.md).
final class MetricsServer: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    let metrics: JobMetrics
    /// The address as bound (the port chosen, for port 0).
    let address: String
    private let fd: Int32

    /// Binds `spec`: `HOST:PORT`, `:PORT` (every interface), `[V6]:PORT` or `PORT` (loopback).
    init(_ spec: String) throws {
        let (host, port) = try Self.parse(spec)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw ValidationError("--metrics \(spec): cannot resolve \(host ?? "*") (\(String(cString: gai_strerror(status))))")
        }
        defer { freeaddrinfo(list) }
        let s = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw ValidationError("--metrics \(spec): cannot open a socket (\(String(cString: strerror(errno))))") }
        var on: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bind(s, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0, listen(s, 16) == 0 else {
            let e = errno
            close(s)
            throw ValidationError("--metrics \(spec): cannot listen there (\(String(cString: strerror(e))))")
        }
        fd = s
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &length) } }
        let boundPort = withUnsafePointer(to: &bound) { p -> Int in
            p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
        let shownHost = host.map { $0.contains(":") ? "[\($0)]" : $0 } ?? "0.0.0.0"
        address = "\(shownHost):\(boundPort)"
        metrics = JobMetrics(factory: PrometheusMetricsFactory(registry: registry))
    }

    static func parse(_ spec: String) throws -> (host: String?, port: Int) {
        var host: String?
        var portText = spec
        if spec.hasPrefix("["), let close = spec.firstIndex(of: "]") {
            host = String(spec[spec.index(after: spec.startIndex)..<close])
            portText = String(spec[spec.index(after: close)...].dropFirst())
        } else if let colon = spec.lastIndex(of: ":") {
            let h = String(spec[..<colon])
            host = h.isEmpty ? nil : h
            portText = String(spec[spec.index(after: colon)...])
        } else {
            host = "127.0.0.1"
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw ValidationError("--metrics \(spec): expected HOST:PORT, :PORT or PORT, with a port from 0 to 65535 (0 picks a free one)")
        }
        return (host, port)
    }

    /// Serves on a thread of its own until the process exits.
    func start() throws {
        try OSThread.start(name: "loom-metrics") { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                serve(client)
                close(client)
            }
        }
    }

    private func serve(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request.count < 8192 {
            let n = read(client, &buffer, buffer.count)
            if n <= 0 { break }
            request += buffer[0..<n]
            if request.firstRange(of: [13, 10, 13, 10]) != nil { break }
        }
        let line = String(decoding: request.prefix { $0 != 0x0d && $0 != 0x0a }, as: UTF8.self).split(separator: " ")
        let (status, type, body): (String, String, [UInt8])
        if line.count < 2 {
            (status, type, body) = ("400 Bad Request", "text/plain; charset=utf-8", Array("a request line is GET /metrics HTTP/1.1\n".utf8))
        } else if line[0] != "GET" && line[0] != "HEAD" {
            (status, type, body) = ("405 Method Not Allowed", "text/plain; charset=utf-8", Array("only GET is served\n".utf8))
        } else if line[1] == "/metrics" || line[1].hasPrefix("/metrics?") {
            var text = [UInt8]()
            registry.emit(into: &text)
            (status, type, body) = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text)
        } else {
            (status, type, body) = ("404 Not Found", "text/plain; charset=utf-8", Array("Loom serves its metrics at /metrics\n".utf8))
        }
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var out = Array(head.utf8)
        if line.first != "HEAD" { out += body }
        var sent = 0
        while sent < out.count {
            let n = out[sent...].withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            sent += n
        }
    }
}
