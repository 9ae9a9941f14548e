import LoomFunctions
import LoomGenome
import LoomTensor

/// X as a job reads it: an `.npy` file, or windows of a FASTA file (``SequenceOptions``).
struct JobX {
    var tensor: Tensor<Float>
    /// SHA-256 of X's content: the `.npy` file's data, or the encoded windows.
    var digest: String
    /// The numpy dtype of the file, or "fasta".
    var dtype: String
    /// Where each row came from (FASTA only).
    var source: SequenceSource?
    var notes: [String] = []

    init(spec: JobSpec, alphabet: Alphabet) throws {
        if try Self.isNpy(spec.xPath) {
            if spec.sequences != nil {
                throw JobInputError(
                    "\(spec.xPath): --regions, --length, --summits and --ignore choose how a FASTA file is read; this X is a .npy file, whose rows are used as they are"
                )
            }
            let a = try NpyArray.read(path: spec.xPath)
            tensor = a.floatTensor()
            var h = SHA256()
            h.update("\(a.dtype.rawValue)\(a.shape)")
            h.update(a.data)
            digest = h.finalize()
            dtype = a.dtype.numpyName
            return
        }
        let options = spec.sequences ?? SequenceOptions()
        var symbols: [UInt8] = []
        for c in alphabet.symbols {
            guard let a = c.asciiValue else { throw JobInputError("--alphabet: a FASTA file is read over an ASCII alphabet; '\(c)' is not ASCII") }
            symbols.append(a)
        }
        var ignore: [UInt8] = []
        for c in options.ignore {
            guard let a = c.asciiValue else { throw JobInputError("--ignore: '\(c)' is not ASCII") }
            guard !alphabet.symbols.contains(c) else {
                throw JobInputError("--ignore: '\(c)' is in the alphabet (\(alphabet)) too; a character is either a symbol or ignored, as tangermeme requires")
            }
            ignore.append(a)
        }
        let encoder = SequenceEncoder(alphabet: symbols, ignore: ignore)
        let input: SequenceInput
        if let regions = options.regions {
            guard let length = options.length else { throw JobInputError("--regions needs --length, the window in bases (tangermeme's in_window, e.g. 2114)") }
            input = try GenomeReader.regions(
                fasta: spec.xPath, bed: regions, length: length, summits: options.summits, encoder: encoder, ignore: options.ignore)
        } else {
            if options.summits { throw JobInputError("--summits centres windows on the summits of --regions; give --regions") }
            input = try GenomeReader.records(fasta: spec.xPath, length: options.length, encoder: encoder, ignore: options.ignore)
        }
        let (n, a, l) = (input.count, alphabet.count, input.length)
        tensor = Tensor(shape: [n, a, l]) { out in
            out.initialize(repeating: 0)
            input.codes.withUnsafeBufferPointer { codes in
                for i in 0..<n {
                    for pos in 0..<l {
                        let c = Int(codes[i * l + pos])
                        if c < a { out[(i * a + c) * l + pos] = 1 }
                    }
                }
            }
        }
        var h = SHA256()
        h.update("fasta \(tensor.shape)\n")
        input.codes.withUnsafeBytes { h.update($0) }
        digest = h.finalize()
        dtype = "fasta"
        source = input.source
        notes = input.notes
    }

    /// Whether `path` is an `.npy` file: by its name, else by its magic string (a missing file is left to the `.npy` reader's message).
    static func isNpy(_ path: String) throws -> Bool {
        if path.hasSuffix(".npy") { return true }
        guard let head = try? FileIO.readPrefix(path, count: 6) else { return true }
        return head.starts(with: [0x93] + Array("NUMPY".utf8))
    }
}

/// An input that cannot be used as given: one line naming the flag or file.
public struct JobInputError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
