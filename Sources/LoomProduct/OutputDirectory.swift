import FoundationEssentials
import LoomTensor

/// The `--out` folder's lifecycle: claim it for a job, and publish the manifest last.
///
/// A folder is claimed by writing `job.json` with the job's identity. A folder that
/// holds another job's results, or files Loom did not write, is refused unless the
/// user passes `--overwrite`. `manifest.json` is removed on claim and written only
/// by ``publish(_:in:)``, so a failed or interrupted run never leaves one behind.
public enum OutputDirectory {
    /// The claim file's name.
    public static let claimFile = "job.json"
    /// The manifest's name.
    public static let manifestFile = "manifest.json"

    /// The error for a folder Loom may not use.
    public struct RefusedError: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason)" }
    }

    struct Claim: Codable {
        var jobId: String
        var loomVersion: String
        var spec: JobSpec
    }

    /// Whether a file name is one Loom writes into an `--out` folder.
    static func isLoomFile(_ name: String) -> Bool {
        if name == claimFile || name == manifestFile || name == Journal.fileName || name == Journal.layoutFile || name.hasSuffix(".tmp") { return true }
        if name.hasSuffix(ResultWriter.partialSuffix) { return isLoomFile(String(name.dropLast(ResultWriter.partialSuffix.count))) }
        guard name.hasPrefix("y"), name.hasSuffix(".npy") else { return false }
        let middle = name.dropFirst().dropLast(4)
        return middle.isEmpty
            || middle.split(separator: "_", omittingEmptySubsequences: false).dropFirst().allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
                && middle.hasPrefix("_")
    }

    /// Claims `path` for the job `jobID`; returns whether the folder already held this same job.
    @discardableResult
    public static func claim(_ path: String, jobID: String, spec: JobSpec, overwrite: Bool) throws -> Bool {
        let state = FileIO.exists(path)
        if state.exists && !state.isDirectory {
            throw RefusedError(path: path, reason: "exists and is not a folder; choose another --out")
        }
        var sameJob = false
        if state.exists {
            let names = try FileIO.listDirectory(path)
            if !names.isEmpty {
                let previous = try? readClaim(path)
                sameJob = previous?.jobId == jobID
                if !sameJob && !overwrite {
                    if let previous {
                        // A Loom of other numerics computes other bits, so its folder holds another job.
                        let version =
                            previous.loomVersion == LoomVersion.string ? "" : ", written by Loom \(previous.loomVersion); this is \(LoomVersion.string)"
                        throw RefusedError(
                            path: path,
                            reason:
                                "holds the results of a different job (\(previous.jobId.prefix(12)), \(previous.spec.function.name.rawValue) of \(previous.spec.modelPath)\(version)); pass --overwrite to replace them, or choose another --out"
                        )
                    }
                    throw RefusedError(
                        path: path, reason: "is not empty and was not written by Loom; pass --overwrite to write into it anyway, or choose another --out")
                }
                // Drop what an earlier run left: first the manifest, so the folder never looks complete.
                FileIO.remove(path + "/" + manifestFile)
                FileIO.syncDirectory(of: path + "/" + manifestFile)
                // --overwrite starts afresh even for the same job; otherwise the same job resumes from its journal.
                if !sameJob || overwrite { for name in names where isLoomFile(name) { FileIO.remove(path + "/" + name) } }
            }
        } else {
            try FileIO.makeDirectories(path)
        }
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let claim = Claim(jobId: jobID, loomVersion: LoomVersion.string, spec: spec)
        try FileIO.writeAtomically(Array(try encoder.encode(claim)) + [0x0A], to: path + "/" + claimFile)
        return sameJob && !overwrite
    }

    /// The spec of the job that claimed `path`, if a job did.
    public static func claimedSpec(_ path: String) -> JobSpec? { try? readClaim(path).spec }

    static func readClaim(_ path: String) throws -> Claim {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Claim.self, from: Data(try FileIO.readAll(path + "/" + claimFile)))
    }

    /// Writes the manifest atomically: the last act of a successful job.
    public static func publish(_ manifest: Manifest, in path: String) throws {
        try FileIO.writeAtomically(try manifest.encoded(), to: path + "/" + manifestFile)
    }
}
