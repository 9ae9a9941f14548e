import FoundationEssentials
import LoomONNX
import LoomTensor

#if canImport(Glibc)
    import Glibc
#endif

/// Models a worker has received, by sha256, so a worker that serves many jobs fetches each model once.
///
/// `<root>/<sha256>/model.onnx` plus its external data files. The root is `$LOOM_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/loom/models`, else `~/.cache/loom/models`.
public struct ModelCache: Sendable {
    public let root: String

    public init(root: String? = nil) {
        let env = ProcessInfo.processInfo.environment
        if let root {
            self.root = root
        } else if let dir = env["LOOM_CACHE_DIR"], !dir.isEmpty {
            self.root = dir
        } else if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty {
            self.root = xdg + "/loom/models"
        } else {
            self.root = (env["HOME"] ?? "/tmp") + "/.cache/loom/models"
        }
    }

    /// The cached model file for `sha256`, if present.
    public func model(_ sha256: String) -> String? {
        let path = root + "/" + sha256 + "/model.onnx"
        return FileIO.exists(path).exists ? path : nil
    }

    /// The hashes cached.
    public var hashes: [String] { ((try? FileIO.listDirectory(root)) ?? []).filter { $0.count == 64 } }

    /// Stores a model's files and checks that they hash to `sha256`; returns the model file's path.
    public func store(_ sha256: String, files: [(name: String, bytes: [UInt8])]) throws -> String {
        guard sha256.count == 64, sha256.allSatisfy(\.isHexDigit) else { throw ClusterError.invalidModelHash(sha256) }
        let staging = root + "/." + sha256 + "-\(getpid())"
        try FileIO.makeDirectories(staging)
        for (name, bytes) in files {
            guard !name.isEmpty, !name.hasPrefix("/"), !name.split(separator: "/").contains(".."), !name.contains("/") else {
                throw ClusterError.invalidModelName(name)
            }
            try FileIO.writeAtomically(bytes, to: staging + "/" + name)
        }
        let file = try ModelFile(path: staging + "/model.onnx")
        guard file.sha256 == sha256 else {
            throw ClusterError.modelDamaged(expected: sha256, received: file.sha256)
        }
        let final = root + "/" + sha256
        if rename(staging, final) != 0 {
            // Another worker on this host stored it first; theirs is as good.
            try? FileManager.default.removeItem(atPath: staging)
        }
        return final + "/model.onnx"
    }
}
