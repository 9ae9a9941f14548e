import ArgumentParser
import Foundation
import LoomProduct
import LoomTensor

/// `loom show`: print a `.npy` result (or any supported `.npy`) as nested rows.
struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a .npy file's shape, dtype and values (a results folder: every leaf in its manifest).")

    @Argument(help: "A .npy file, or an --out folder.")
    var path: String

    @Option(help: "Print at most this many values per file.")
    var limit: Int = 1000

    func run() throws {
        try reportingErrors {
            var files: [(label: String, path: String)] = []
            if FileIO.exists(path).isDirectory {
                let manifest = path + "/manifest.json"
                guard FileIO.exists(manifest).exists else {
                    throw ValidationError("\(path) has no manifest.json: the job did not finish, or this is not a results folder")
                }
                files = try Manifest.read(path: manifest).outputs.map { ("\($0.index) \($0.file)", path + "/" + $0.file) }
            } else {
                files = [(path, path)]
            }
            for (label, file) in files {
                let array = try NpyArray.read(path: file)
                let t = array.floatTensor()
                print("\(label): shape \(array.shape), \(array.dtype.numpyName)")
                print(Self.format(t, limit: limit))
            }
        }
    }

    /// Formats a tensor as nested bracketed rows, numpy-style.
    static func format(_ t: Tensor<Float>, limit: Int) -> String {
        if t.shape.isEmpty { return t.storage.first.map { String(format: "%.6g", $0) } ?? "[]" }
        var out = ""
        var printed = 0
        func emit(_ axis: Int, _ offset: Int, _ indent: String) {
            let n = t.shape[axis]
            let stride = Array(t.shape[(axis + 1)...]).elementCount
            if axis == t.rank - 1 {
                let vals = (0..<n).prefix(max(0, limit - printed)).map { String(format: "% .6g", t.storage[offset + $0]) }
                printed += vals.count
                out += "[" + vals.joined(separator: " ") + (vals.count < n ? " ..." : "") + "]"
                return
            }
            out += "["
            for i in 0..<n {
                if printed >= limit { out += "..."; break }
                if i > 0 { out += "\n" + indent + " " }
                emit(axis + 1, offset + i * stride, indent + " ")
            }
            out += "]"
        }
        emit(0, 0, "")
        return out
    }
}
