import Foundation
import LoomTensor

/// A fresh temporary folder, removed by ``remove()``.
public struct TemporaryDirectory {
    public let path: String

    public init(_ prefix: String = "loom-test") {
        var template = Array((NSTemporaryDirectory() + "/\(prefix)-XXXXXX").utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: p!)
    }

    /// A path inside the folder.
    public func file(_ name: String) -> String { path + "/" + name }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Writes bytes to a file.
public func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
        throw FileError(path: path, operation: "create", errno: errno)
    }
}

/// Writes a float32 `.npy` file.
public func writeNpy(_ path: String, shape: [Int], _ values: [Float]) throws {
    try NpyArray.write(Tensor(shape: shape, storage: values), to: path)
}

/// Where the repository's files are.
public enum Repository {
    /// The repository root, found from this file's path.
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// A fixture file or folder under `Tests/Fixtures`.
    public static func fixture(_ relative: String) -> String { root + "/Tests/Fixtures/" + relative }

    /// The conformance cases copied from tangermeme's reference runs.
    public static var conformanceDirectory: String { fixture("conformance") }

    /// The `loom` executable the tests drive: `$LOOM_BIN`, or the one built beside the test bundle.
    public static var loomBinary: String {
        if let env = ProcessInfo.processInfo.environment["LOOM_BIN"], !env.isEmpty { return env }
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/loom",
            Bundle.main.bundleURL.deletingLastPathComponent().path + "/loom",
            root + "/.build/debug/loom"
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates.last!
    }
}
