import Foundation
import LoomTensor

/// One case of `Tests/Fixtures/conformance`: tangermeme's reference result for a `loom run`.
public struct ConformanceCase: Sendable {
    public var name: String
    public var directory: String
    public var argv: [String]
    public var atol: Double
    public var rtol: Double
    public var expectError: String?

    /// Reads `case.json`.
    public init(directory: String) throws {
        self.directory = directory
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/case.json"))) as! [String: Any]
        name = json["name"] as! String
        argv = json["argv"] as! [String]
        atol = json["atol"] as? Double ?? 1e-4
        rtol = json["rtol"] as? Double ?? 1e-4
        expectError = json["expect_error"] as? String
    }

    /// Every case, by name.
    public static func all() throws -> [ConformanceCase] {
        let root = Repository.conformanceDirectory
        return try FileManager.default.contentsOfDirectory(atPath: root).sorted()
            .filter { FileManager.default.fileExists(atPath: root + "/" + $0 + "/case.json") }
            .map { try ConformanceCase(directory: root + "/" + $0) }
    }

    /// A leaf of a manifest: index path, file and shape.
    public struct Leaf: Equatable, Sendable { public var index: [Int]; public var file: String; public var shape: [Int] }

    /// Reads the leaves of a manifest.json.
    public static func leaves(manifest path: String) throws -> [Leaf] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        return (json["outputs"] as! [[String: Any]]).map {
            Leaf(index: $0["index"] as! [Int], file: $0["file"] as! String, shape: $0["shape"] as! [Int])
        }
    }

    /// Compares an `--out` folder with the expected results; returns a list of problems (empty when it passes).
    public func compare(out: String) throws -> [String] {
        let expected = try Self.leaves(manifest: directory + "/expected/manifest.json")
        let got = try Self.leaves(manifest: out + "/manifest.json")
        var problems: [String] = []
        guard Set(expected.map(\.index)) == Set(got.map(\.index)) else {
            return ["leaves \(got.map(\.index)) != expected \(expected.map(\.index))"]
        }
        for e in expected {
            let g = got.first { $0.index == e.index }!
            let want = try NpyArray.read(path: directory + "/expected/" + e.file)
            let have = try NpyArray.read(path: out + "/" + g.file)
            guard have.dtype == .float32 else { problems.append("leaf \(e.index): dtype \(have.dtype)"); continue }
            guard have.shape == want.shape, g.shape == want.shape else {
                problems.append("leaf \(e.index): shape \(have.shape) != \(want.shape)"); continue
            }
            let w = want.floatTensor().storage, h = have.floatTensor().storage
            for i in w.indices {
                let err = abs(Double(h[i]) - Double(w[i]))
                if !h[i].isFinite || err > atol + rtol * abs(Double(w[i])) {
                    problems.append("leaf \(e.index): element \(i) is \(h[i]), expected \(w[i])")
                    break
                }
            }
        }
        return problems
    }
}
