import LoomFunctions
import LoomTensor

#if canImport(Glibc)
    import Glibc
#endif

/// Writes each batch's outputs at their rows of the result files.
///
/// The files are created from the first batch's leaves (their number, nesting and
/// per-example shapes); every later batch must match. Batches may arrive in any order.
public final class ResultWriter {
    struct Leaf {
        let index: [Int]
        let file: String
        let exampleShape: [Int]
        let output: NpyOutputFile
    }

    /// The `--out` folder.
    public let directory: String
    /// The index-space axes that lead every result's shape.
    public let axes: [Int]
    private var leaves: [Leaf]? = nil

    public init(directory: String, axes: [Int]) {
        self.directory = directory
        self.axes = axes
    }

    /// The file name of a leaf, tangermeme-style: `y.npy`, `y_0.npy`, `y_1_0.npy`.
    public static func fileName(for index: [Int]) -> String {
        "y" + index.map { "_\($0)" }.joined() + ".npy"
    }

    /// The float32 bytes of result files of these full shapes (Int.max if that overflows).
    public static func bytes(ofShapes shapes: [[Int]]) -> Int {
        var total = 0
        for shape in shapes {
            var bytes = 4
            for d in shape {
                let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
                guard !overflow else { return Int.max }
                bytes = p
            }
            let (sum, overflow) = total.addingReportingOverflow(bytes)
            guard !overflow else { return Int.max }
            total = sum
        }
        return total
    }

    /// What a result file is called until the result is complete (`y.npy.partial`): a folder whose
    /// job was interrupted has no `y.npy` that numpy would load as if it were whole.
    public static let partialSuffix = ".partial"

    /// Whether the result files exist yet.
    public var isOpen: Bool { leaves != nil }

    /// Creates the result files for leaves of these per-example shapes (or, resuming, reopens them as they are).
    ///
    /// - Parameter published: open the files of a published result under their final names, to read
    ///   them (`loom verify`), rather than take them back to work on.
    public func open(leaves specs: [(index: [Int], exampleShape: [Int])], resume: Bool = false, published: Bool = false) throws {
        precondition(leaves == nil, "the result files are already open")
        if !resume, let free = DryRun.freeBytes(at: directory) {
            // Checked before any file is created: a result that cannot fit is refused at the start.
            let needed = Self.bytes(ofShapes: specs.map { axes + $0.exampleShape })
            if needed > free {
                throw FileError(
                    path: directory + "/" + Self.fileName(for: specs.first?.index ?? []),
                    operation: "create the result: it needs \(DryRun.size(needed)) and \(directory) has \(DryRun.size(free)) free", errno: ENOSPC)
            }
        }
        leaves = try specs.map { spec in
            let file = Self.fileName(for: spec.index)
            let working = directory + "/" + file + (published ? "" : Self.partialSuffix)
            // A result published before (the same job run again) is taken back to work on, and
            // published again at the end.
            if resume && !published && !FileIO.exists(working).exists && FileIO.exists(directory + "/" + file).exists {
                guard rename(directory + "/" + file, working) == 0 else { throw FileError(path: directory + "/" + file, operation: "rename", errno: errno) }
            }
            let out = try NpyOutputFile(path: working, shape: axes + spec.exampleShape, rowAxes: axes.count, reuseExisting: resume)
            return Leaf(index: spec.index, file: file, exampleShape: spec.exampleShape, output: out)
        }
        if !resume {
            try Journal.writeLayout(.init(leaves: specs.map { .init(index: $0.index, exampleShape: $0.exampleShape) }), directory: directory)
        }
    }

    /// Reopens the files of a folder being resumed, from its recorded layout; false if there is none.
    public func reopen(published: Bool = false) throws -> Bool {
        guard leaves == nil, let layout = Journal.readLayout(directory: directory) else { return false }
        try open(leaves: layout.leaves.map { ($0.index, $0.exampleShape) }, resume: true, published: published)
        return true
    }

    /// A SHA-256 over the rows of examples `rows` in every result file, as they are in the files,
    /// bound to the job and the range: what the journal records for a shard, and checks on resume.
    public func digest(rows: Range<Int>, job: String) throws -> [UInt8] {
        var h = SHA256()
        h.update("loom-shard-v1 \(job) \(rows.lowerBound) \(rows.count)")
        for leaf in leaves ?? [] { h.update(try leaf.output.readRaw(rows: rows.count, at: rows.lowerBound)) }
        return h.finalizeBytes()
    }

    /// The same digest, of a shard's rows as they arrive (one buffer per leaf, in order), before
    /// they are written: what `--verify` compares between copies.
    public static func digest(leaves: [UnsafeRawBufferPointer], rows: Range<Int>, job: String) -> [UInt8] {
        var h = SHA256()
        h.update("loom-shard-v1 \(job) \(rows.lowerBound) \(rows.count)")
        for leaf in leaves { h.update(leaf) }
        return h.finalizeBytes()
    }

    /// Makes every row written so far durable (fdatasync), before the journal records them.
    public func sync() throws {
        for leaf in leaves ?? [] { try leaf.output.flush() }
    }

    /// Writes the outputs of examples `firstExample ..< firstExample + batch` into place.
    public func write(_ tree: OutputTree, at firstExample: Int) throws {
        let got = tree.leaves
        for (leaf, (_, tensor)) in zip(try checked(got), got) {
            try tensor.storage.withUnsafeBufferPointer { try leaf.output.write(rows: $0, at: firstExample) }
        }
    }

    /// The result files for a batch's leaves (created from the first batch); throws if the leaves
    /// differ in number, index paths or per-example shapes from the first batch's.
    private func checked(_ got: [(index: [Int], tensor: Tensor<Float>)]) throws -> [Leaf] {
        if leaves == nil { try open(leaves: got.map { ($0.index, Array($0.tensor.shape.dropFirst())) }) }
        let leaves = self.leaves!
        guard got.count == leaves.count else {
            throw IndexSpaceError("a batch produced \(got.count) outputs where the first produced \(leaves.count)")
        }
        for (leaf, (index, tensor)) in zip(leaves, got) {
            guard index == leaf.index, Array(tensor.shape.dropFirst()) == leaf.exampleShape else {
                throw IndexSpaceError(
                    "output \(index) has per-example shape \(Array(tensor.shape.dropFirst())) in one batch and \(leaf.exampleShape) in another; Loom needs a fixed output shape"
                )
            }
        }
        return leaves
    }

    /// Writes the outputs of consecutive batches (a shard's, in order) with one write per file.
    ///
    /// Each batch is checked as ``write(_:at:)`` checks it; their rows are gathered leaf by
    /// leaf, so a shard of many small batches costs one system call per file, not one per batch.
    public func write(consecutive batches: [(range: Range<Int>, output: OutputTree)]) throws {
        guard let first = batches.first else { return }
        guard batches.count > 1 else { return try write(first.output, at: first.range.lowerBound) }
        let trees = batches.map { $0.output.leaves }
        var leaves: [Leaf] = []
        for (k, got) in zip(batches.indices, trees) {
            leaves = try checked(got)
            guard got.allSatisfy({ $0.tensor.shape.first == batches[k].range.count }),
                k == 0 || batches[k].range.lowerBound == batches[k - 1].range.upperBound
            else {
                throw IndexSpaceError("batches written together must be consecutive and hold one row per example")
            }
        }
        for (j, leaf) in leaves.enumerated() {
            var rows: [Float] = []
            rows.reserveCapacity(trees.reduce(0) { $0 + $1[j].tensor.count })
            for tree in trees { rows.append(contentsOf: tree[j].tensor.storage) }
            try rows.withUnsafeBufferPointer { try leaf.output.write(rows: $0, at: first.range.lowerBound) }
        }
    }

    /// Writes raw float32 rows received from a worker: one buffer per leaf, `count` examples from `firstExample`.
    ///
    /// The leaves' number, index paths and per-example shapes must match the first batch written.
    public func write(raw leaves: [(index: [Int], exampleShape: [Int], bytes: UnsafeRawBufferPointer)], at firstExample: Int, count: Int) throws {
        if self.leaves == nil { try open(leaves: leaves.map { ($0.index, $0.exampleShape) }) }
        let mine = self.leaves!
        guard leaves.count == mine.count else {
            throw IndexSpaceError("a shard carries \(leaves.count) outputs where the first carried \(mine.count)")
        }
        guard firstExample >= 0, firstExample + count <= axes.elementCount else {
            throw IndexSpaceError("rows \(firstExample)..<\(firstExample + count) fall outside the \(axes.elementCount) examples")
        }
        for (leaf, got) in zip(mine, leaves) {
            guard got.index == leaf.index, got.exampleShape == leaf.exampleShape else {
                throw IndexSpaceError("output \(got.index) has per-example shape \(got.exampleShape) in one shard and \(leaf.exampleShape) in another")
            }
            guard got.bytes.count == count * leaf.exampleShape.elementCount * 4 else {
                throw IndexSpaceError("output \(got.index) carries \(got.bytes.count) bytes for \(count) examples of shape \(leaf.exampleShape)")
            }
            try leaf.output.write(rawRows: got.bytes, at: firstExample)
        }
    }

    /// Flushes every file to disk and returns the manifest entries.
    public func finish() throws -> [Manifest.Output] {
        guard let leaves else { return [] }
        for leaf in leaves { try leaf.output.flush() }
        // Complete and durable: each file takes its final name (the manifest, written after, is what
        // says the whole result is there).
        for leaf in leaves {
            let final = directory + "/" + leaf.file
            guard rename(final + Self.partialSuffix, final) == 0 else { throw FileError(path: final + Self.partialSuffix, operation: "rename", errno: errno) }
        }
        FileIO.syncDirectory(of: directory + "/x")
        return try leaves.map {
            Manifest.Output(
                index: $0.index, file: $0.file, shape: axes + $0.exampleShape, dtype: "float32",
                sha256: try SHA256.hex(ofFile: directory + "/" + $0.file))
        }
    }
}
