import FoundationEssentials
import LoomSystem

/// Why a distributed job, or one of its roles, stopped.
///
/// Each case carries what is at fault (the flag, file, host, peer, job or shard), and its
/// description is the one line a user reads, saying what to do where something can be done.
public enum ClusterError: Error, CustomStringConvertible, Sendable, Equatable {
    // MARK: This process's configuration

    /// This libzmq was built without CURVE (libsodium), so keys cannot be used.
    case curveUnavailable
    /// A CURVE server was asked to bind before its ZAP handler ran (a defect in Loom).
    case zapHandlerNotRunning
    /// One side uses CURVE keys and the other does not; `peer` names the other side.
    case keysMismatch(peer: String, peerUsesKeys: Bool)
    /// A coordinator was started with neither `--out` nor `--collector`.
    case noOutput

    // MARK: Endpoints

    /// The host of `endpoint`, given by `flag`, does not resolve.
    case unresolvableHost(flag: String, endpoint: String, host: String, reason: String)
    /// A socket bound to every interface, on a host with no address but loopback to advertise.
    case onlyLoopback(bound: String)
    /// An endpoint file cannot be written (`detail`: which step failed, and why).
    case endpointFileUnwritable(path: String, detail: String)
    /// An endpoint file holds something other than an endpoint.
    case endpointFileInvalid(path: String, content: String)
    /// No endpoint file appeared within `--max-wait` (nil: without limit).
    case noEndpointFile(path: String, maxWait: Double?)

    // MARK: Jobs and peers

    /// This worker cannot take part in a job (its CPU lacks the job's kernels, say).
    case cannotJoin(job: String, reason: String)
    /// The coordinator ended this worker's part, or its wait, as failed.
    case ended(reason: String)
    /// The job failed (a poison shard, the deadline, a refusing collector: the reason says which).
    case jobFailed(reason: String)
    /// The collector stopped with this failure.
    case collectorFailed(reason: String)
    /// The collector thread ended before it bound its socket.
    case collectorStopped
    /// A result from `peer` could not be written to the results folder.
    case resultUnwritable(peer: String, reason: String)
    /// The batches of `shard` gave outputs of different structure or shape.
    case inconsistentOutputs(shard: Int)

    // MARK: Models received from a coordinator

    /// A model's announced hash is not a SHA-256.
    case invalidModelHash(String)
    /// A model's file name is not a plain file name.
    case invalidModelName(String)
    /// A model received hashes to `received`, not the `expected` it was announced as.
    case modelDamaged(expected: String, received: String)

    public var description: String {
        switch self {
        case .curveUnavailable:
            "this libzmq has no CURVE support (it was built without libsodium)"
        case .zapHandlerNotRunning:
            "a CURVE server needs its ZAP handler running before it binds"
        case .keysMismatch(let peer, true):
            "the \(peer) uses CURVE keys: give this process --key (or LOOM_KEY)"
        case .keysMismatch(let peer, false):
            "the \(peer) does not use keys (it was started with --insecure), but this process has --key: start both with keys"
        case .noOutput:
            "the coordinator needs --out (or --collector)"
        case .unresolvableHost(let flag, let endpoint, let host, let reason):
            "\(flag) \(endpoint): the host \(host) does not resolve (\(reason))"
        case .onlyLoopback(let bound):
            "bound \(bound), but this host has no address other than loopback to write in the endpoint file: pass --advertise HOST"
        case .endpointFileUnwritable(let path, let detail):
            "--endpoint-file \(path): \(detail)"
        case .endpointFileInvalid(let path, let content):
            "--endpoint-file \(path) holds \"\(content.prefix(80))\", not an endpoint (tcp://ADDRESS:PORT)"
        case .noEndpointFile(let path, let maxWait):
            "no coordinator: --endpoint-file \(path) did not appear within --max-wait \(String(cFormat: "%g", maxWait ?? 0)) s"
        case .cannotJoin(let job, let reason):
            "cannot join job \(job.prefix(12)): \(reason)"
        case .ended(let reason), .jobFailed(let reason), .collectorFailed(let reason):
            reason
        case .collectorStopped:
            "the collector stopped before it was bound"
        case .resultUnwritable(let peer, let reason):
            "collector: a result from \(peer) could not be written: \(reason)"
        case .inconsistentOutputs(let shard):
            "the function's outputs differ in structure or shape between the batches of shard \(shard)"
        case .invalidModelHash(let hash):
            "a model hash '\(hash)' is not a sha256"
        case .invalidModelName(let name):
            "a model file name '\(name)' is not a plain file name"
        case .modelDamaged(let expected, let received):
            "the model received hashes to \(received), not \(expected): it was damaged in transit"
        }
    }
}
