import LoomFunctions
import LoomGenome
import LoomProduct
import LoomTensor

/// How X rows travel in shard messages.
public enum XEncoding: String, Codable, Sendable {
    /// One byte per position: the symbol's index, 255 for an all-zero column. For strictly one-hot X.
    case oneHot = "one-hot"
    /// float32, for X that is not one-hot (predict accepts any float X).
    case float32
}

/// Everything a worker or collector needs to know of a job, apart from the data itself.
public struct JobDescriptor: Codable, Sendable, Equatable {
    public var jobId: String
    public var spec: JobSpec
    public var model: Manifest.ModelRecord
    public var modelFiles: [String]
    public var inputs: [Job.InputDescription]
    public var space: IndexSpace
    public var plan: ShardPlan
    /// The shape of one X row, (A, L).
    public var xRowShape: [Int]
    public var xEncoding: XEncoding
    public var argShapes: [[Int]]
    /// deep-lift-shap's `--references`, if given.
    public var references: ReferenceSet?
    /// Where X's rows came from, for the manifest (FASTA X only).
    public var sequences: SequenceSource?

    public init(job: Job) {
        jobId = job.id
        spec = job.spec
        model = .init(path: job.spec.modelPath, sha256: job.model.file.sha256, bytes: job.model.file.byteCount)
        modelFiles = job.model.file.externalDataFiles
        inputs = job.inputDescriptions
        space = job.inputs.space
        plan = job.plan
        xRowShape = Array(job.inputs.x.shape.dropFirst())
        xEncoding = job.inputs.isOneHot ? .oneHot : .float32
        argShapes = job.inputs.args.map(\.shape)
        references = job.references
        sequences = job.sequences
    }

    /// The manifest of the finished job.
    public func manifest(outputs: [Manifest.Output], workers: Int, elapsed: Double) -> Manifest {
        Manifest.finished(
            jobId: jobId, spec: spec, model: model, inputs: inputs, plan: plan, axes: space.axes, outputs: outputs,
            workers: workers, elapsed: elapsed, sequences: sequences)
    }
}

/// X rows encoded for a shard message.
public enum XCodec {
    /// All of X encoded once, so that a shard's rows are slices of it.
    public struct Encoded: Sendable {
        public let bytes: [UInt8]
        public let rowBytes: Int

        public init(_ x: Tensor<Float>, as encoding: XEncoding) {
            bytes = XCodec.encode(x, rows: Array(0..<x.shape[0]), as: encoding)
            rowBytes = x.shape[0] > 0 ? bytes.count / x.shape[0] : 0
        }

        /// The encoded rows `indices`, concatenated.
        public func rows(_ indices: [Int]) -> [UInt8] {
            var out = [UInt8]()
            out.reserveCapacity(indices.count * rowBytes)
            for r in indices { out.append(contentsOf: bytes[(r * rowBytes)..<((r + 1) * rowBytes)]) }
            return out
        }
    }

    /// Encodes rows `indices` of X.
    public static func encode(_ x: Tensor<Float>, rows indices: [Int], as encoding: XEncoding) -> [UInt8] {
        let (a, l) = (x.shape[1], x.shape[2])
        let row = a * l
        switch encoding {
        case .oneHot:
            var out = [UInt8](repeating: 255, count: indices.count * l)
            x.storage.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBufferPointer { o in
                    guard let src = p.baseAddress, let dst = o.baseAddress else { return }
                    for (i, r) in indices.enumerated() {
                        let codes = dst + i * l
                        for c in 0..<a {
                            let channel = src + r * row + c * l
                            let code = UInt8(truncatingIfNeeded: c)
                            // A select, not a branch: bases are random, so a branch mispredicts
                            // often; this form also vectorizes. The last non-zero channel wins.
                            for pos in 0..<l { codes[pos] = channel[pos] != 0 ? code : codes[pos] }
                        }
                    }
                }
            }
            return out
        case .float32:
            var out = [UInt8](repeating: 0, count: indices.count * row * 4)
            x.storage.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBytes { dst in
                    for (i, r) in indices.enumerated() {
                        dst.baseAddress!.advanced(by: i * row * 4).copyMemory(from: p.baseAddress! + r * row, byteCount: row * 4)
                    }
                }
            }
            return out
        }
    }

    /// Decodes `count` rows of shape `rowShape` (A, L); throws if the payload does not fit.
    public static func decode(_ bytes: UnsafeRawBufferPointer, count: Int, rowShape: [Int], as encoding: XEncoding, peer: String) throws -> Tensor<Float> {
        let (a, l) = (rowShape[0], rowShape[1])
        switch encoding {
        case .oneHot:
            guard bytes.count == count * l else { throw ProtocolError.malformed(peer: peer, "X rows hold \(bytes.count) bytes, expected \(count * l)") }
            return Tensor(shape: [count, a, l]) { out in
                out.initialize(repeating: 0)
                for i in 0..<count {
                    for pos in 0..<l {
                        let c = Int(bytes[i * l + pos])
                        if c == 255 { continue }
                        out[(i * a + min(c, a - 1)) * l + pos] = c < a ? 1 : 0
                    }
                }
            }
        case .float32:
            guard bytes.count == count * a * l * 4 else {
                throw ProtocolError.malformed(peer: peer, "X rows hold \(bytes.count) bytes, expected \(count * a * l * 4)")
            }
            return Tensor(shape: [count, a, l]) { out in
                UnsafeMutableRawBufferPointer(out).copyMemory(from: bytes)
            }
        }
    }
}

/// float32 tensors as raw little-endian bytes.
public enum FloatBytes {
    public static func encode(_ t: Tensor<Float>) -> [UInt8] {
        t.storage.withUnsafeBytes { Array($0) }
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer, shape: [Int], peer: String) throws -> Tensor<Float> {
        guard bytes.count == shape.elementCount * 4 else {
            throw ProtocolError.malformed(peer: peer, "a tensor of shape \(shape) holds \(bytes.count) bytes")
        }
        return Tensor(shape: shape) { UnsafeMutableRawBufferPointer($0).copyMemory(from: bytes) }
    }
}
