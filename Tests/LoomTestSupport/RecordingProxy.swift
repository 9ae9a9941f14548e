import Foundation
import LoomTensor

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP proxy on 127.0.0.1 that forwards every connection to a target and records every byte
/// that crosses it, both ways: what an eavesdropper on the network would see.
public final class RecordingProxy: @unchecked Sendable {
    public let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var captured: [UInt8] = []
    private var stopped = false

    /// Listens on a free port and forwards to `127.0.0.1:targetPort`.
    public init(to targetPort: Int) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 16) == 0 else { throw FileError(path: "proxy", operation: "listen", errno: errno) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        var local = sockaddr_in()
        _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        port = Int(UInt16(bigEndian: local.sin_port))
        Thread.detachNewThread { [self] in acceptLoop(targetPort) }
    }

    /// Every byte forwarded so far, both directions interleaved.
    public var bytes: [UInt8] { lock.lock(); defer { lock.unlock() }; return captured }

    public func stop() {
        lock.lock(); stopped = true; lock.unlock()
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    private func acceptLoop(_ targetPort: Int) {
        while !isStopped {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { if isStopped { return }; continue }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(targetPort).bigEndian
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard ok == 0 else { close(client); close(upstream); continue }
            Thread.detachNewThread { [self] in pump(client, upstream) }
        }
    }

    private func pump(_ a: Int32, _ b: Int32) {
        defer { close(a); close(b) }
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while !isStopped {
            guard poll(&fds, 2, 200) >= 0 else { return }
            for (i, f) in fds.enumerated() where f.revents != 0 {
                let n = read(f.fd, &buffer, buffer.count)
                guard n > 0 else { return }
                lock.lock(); captured.append(contentsOf: buffer[0..<n]); lock.unlock()
                let other = i == 0 ? b : a
                var sent = 0
                while sent < n {
                    let w = buffer.withUnsafeBytes { write(other, $0.baseAddress! + sent, n - sent) }
                    guard w > 0 else { return }
                    sent += w
                }
            }
        }
    }
}
