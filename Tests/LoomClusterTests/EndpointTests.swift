import Foundation
import LoomCluster
import Testing

@Suite("endpoints across hosts")
struct EndpointTests {
    @Test("a wildcard bind is advertised as * unless --advertise names a host; specific binds are kept")
    func advertised() {
        #expect(Endpoint.advertised("tcp://0.0.0.0:5556", host: nil) == "tcp://*:5556")
        #expect(Endpoint.advertised("tcp://0.0.0.0:5556", host: "head-ib0") == "tcp://head-ib0:5556")
        #expect(Endpoint.advertised("tcp://0.0.0.0:5556", host: "fd00::1") == "tcp://[fd00::1]:5556")
        #expect(Endpoint.advertised("tcp://10.1.2.3:5556", host: nil) == "tcp://10.1.2.3:5556")
        #expect(Endpoint.advertised("tcp://127.0.0.1:5556", host: "head") == "tcp://127.0.0.1:5556", "a loopback bind is reachable nowhere else")
        #expect(Endpoint.advertised("ipc:///tmp/x.collector", host: "head") == "ipc:///tmp/x.collector")
    }

    @Test("a worker puts in the host it reached the coordinator by for a wildcard, and for loopback when that host is not loopback")
    func resolve() {
        #expect(Endpoint.resolve("tcp://*:5556", via: "tcp://198.18.0.1:5555") == "tcp://198.18.0.1:5556")
        #expect(Endpoint.resolve("tcp://0.0.0.0:5556", via: "tcp://head:5555") == "tcp://head:5556")
        #expect(Endpoint.resolve("tcp://127.0.0.1:5556", via: "tcp://head:5555") == "tcp://head:5556")
        #expect(Endpoint.resolve("tcp://localhost:5556", via: "tcp://[fd00::1]:5555") == "tcp://[fd00::1]:5556")
        // On the coordinator's own host, loopback is right; named hosts are the user's choice.
        #expect(Endpoint.resolve("tcp://127.0.0.1:5556", via: "tcp://127.0.0.1:5555") == "tcp://127.0.0.1:5556")
        #expect(Endpoint.resolve("tcp://collector-host:5556", via: "tcp://head:5555") == "tcp://collector-host:5556")
        #expect(Endpoint.resolve("ipc:///tmp/a.collector", via: "ipc:///tmp/a") == "ipc:///tmp/a.collector")
    }

    @Test("tcp endpoints split into host and port; other transports do not")
    func parts() {
        #expect(Endpoint.tcpParts("tcp://h:1")! == ("h", "1"))
        #expect(Endpoint.tcpParts("tcp://[::1]:77")! == ("[::1]", "77"))
        #expect(Endpoint.tcpParts("tcp://eth0;10.0.0.1:5")! == ("10.0.0.1", "5"))
        #expect(Endpoint.tcpParts("ipc:///x") == nil)
        #expect(Endpoint.tcpParts("tcp://nohost") == nil)
    }

    @Test("endpoint files hold an address, never a name, and are replaced atomically")
    func endpointFile() throws {
        #expect(try EndpointFile.contents(bound: "tcp://0.0.0.0:4000", advertise: "198.18.0.9") == "tcp://198.18.0.9:4000")
        #expect(try EndpointFile.contents(bound: "tcp://10.0.0.5:4000", advertise: nil) == "tcp://10.0.0.5:4000")
        if let address = Endpoint.firstNonLoopbackAddress() {
            #expect(try EndpointFile.contents(bound: "tcp://0.0.0.0:4000", advertise: nil) == "tcp://\(address):4000")
            #expect(!Endpoint.isLoopback(address))
        }
        let path = NSTemporaryDirectory() + "/loom-ep-\(getpid())"
        defer { unlink(path) }
        try EndpointFile.write("tcp://198.18.0.1:4000", to: path)
        #expect(try EndpointFile.wait(for: path, maxWait: 1) == "tcp://198.18.0.1:4000")
        #expect(try EndpointFile.wait(for: path + ".absent", maxWait: 0.2) == nil)
        try "not an endpoint\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ClusterError.endpointFileInvalid(path: path, content: "not an endpoint")) { try EndpointFile.wait(for: path, maxWait: 1) }
        #expect(
            ClusterError.endpointFileInvalid(path: path, content: "not an endpoint").description
                == "--endpoint-file \(path) holds \"not an endpoint\", not an endpoint (tcp://ADDRESS:PORT)")
    }

    @Test("a host that does not resolve is one error naming it; addresses and wildcards pass")
    func resolvable() throws {
        let error = #expect(throws: ClusterError.self) { try Endpoint.checkResolvable("tcp://no-such-host.invalid:5555", flag: "--connect") }
        guard case .unresolvableHost(let flag, _, let host, _)? = error else {
            Issue.record("expected unresolvableHost, got \(String(describing: error))")
            return
        }
        #expect(flag == "--connect" && host == "no-such-host.invalid")
        #expect(error?.description.hasPrefix("--connect tcp://no-such-host.invalid:5555: the host no-such-host.invalid does not resolve (") == true)
        try Endpoint.checkResolvable("tcp://127.0.0.1:5555", flag: "--connect")
        try Endpoint.checkResolvable("tcp://*:5555", flag: "--bind")
        try Endpoint.checkResolvable("ipc:///tmp/x", flag: "--connect")
    }
}
