import ArgumentParser
import FoundationEssentials
import LoomFunctions
import LoomGenome
import LoomProduct
import LoomSystem
import LoomTensor

/// `loom show`: print a `.npy` result (or any supported `.npy`) as nested rows.
struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
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
                let m = try Manifest.read(path: manifest)
                print(Self.describe(m))
                if let sequences = m.sequences { print(Self.describe(sequences)) }
                files = m.outputs.map { ("\($0.file): \(Self.describe(index: $0.index, function: m.function.name))", path + "/" + $0.file) }
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

    /// The job in one line: the function, the mode over which inputs, and what the leading axes are.
    static func describe(_ m: Manifest) -> String {
        let names = m.inputs.map { PathText.lastComponent($0.path) }
        let args = names.dropFirst()
        let axes: [String]
        switch m.mode {
        case .product: axes = ["X \(m.axes.first ?? 0)"] + zip(args, m.axes.dropFirst()).map { "\($0) \($1)" }
        case .pairwise: axes = ["X \(m.axes.first ?? 0)", "(\(args.joined(separator: ", "))) \(m.axes.dropFirst().first ?? 0)"]
        }
        return "\(m.function.name.rawValue) over the \(m.mode.rawValue) of \(names.joined(separator: m.mode == .product ? " × " : ", ")): "
            + "\(m.examples) examples; each result's leading axes are (\(axes.joined(separator: ", "))), then the output's own"
    }

    /// Where X's rows came from, for X read from a FASTA file: the first rows' loci.
    static func describe(_ s: SequenceSource) -> String {
        let w = s.windows
        let first = (0..<min(3, w.count)).map { "row \($0) = \(w.chrom[$0]):\(w.start[$0])-\(w.end[$0])" }.joined(separator: ", ")
        let what =
            s.regions.map { "\(s.length)-bp windows of \(PathText.lastComponent($0))'s regions\(s.summits ? " (on summits)" : "")" }
            ?? "the records' \(s.length)-bp windows"
        return "X's rows are \(what) in \(PathText.lastComponent(s.fasta)): \(first)\(w.count > 3 ? ", …" : "")"
            + (s.dropped.count > 0 ? "; \(s.dropped.count) regions dropped" : "") + " (all in manifest.json's sequences.windows)"
    }

    /// What an output's index path means: its place in tangermeme's nesting of the function's outputs.
    static func describe(index: [Int], function: FunctionSpec.Name) -> String {
        var rest = index[...]
        var words: [String] = []
        if function == .marginalize || function == .ablate, let first = rest.popFirst() {
            words.append(first == 0 ? "before" : first == 1 ? "after" : "part \(first)")
        }
        if !rest.isEmpty { words.append("model output " + rest.map(String.init).joined(separator: ".")) }
        return "output \(index)" + (words.isEmpty ? " (the only one)" : " (\(words.joined(separator: ", ")))")
    }

    /// Formats a tensor as nested bracketed rows, numpy-style.
    static func format(_ t: Tensor<Float>, limit: Int) -> String {
        if t.shape.isEmpty { return t.storage.first.map { String(cFormat: "%.6g", $0) } ?? "[]" }
        var out = ""
        var printed = 0
        func emit(_ axis: Int, _ offset: Int, _ indent: String) {
            let n = t.shape[axis]
            let stride = Array(t.shape[(axis + 1)...]).elementCount
            if axis == t.rank - 1 {
                let vals = (0..<n).prefix(max(0, limit - printed)).map { String(cFormat: "% .6g", t.storage[offset + $0]) }
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
