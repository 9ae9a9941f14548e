import LoomFunctions
import LoomProduct
import LoomTensor
import Testing

/// One-hot (n, 4, L) sequences from strings.
func oneHot(_ seqs: [String]) -> Tensor<Float> {
    let l = seqs[0].count
    var v = [Float](repeating: 0, count: seqs.count * 4 * l)
    for (i, s) in seqs.enumerated() {
        for (p, ch) in s.enumerated() {
            if let k = Array("ACGT").firstIndex(of: ch) { v[(i * 4 + k) * l + p] = 1 }
        }
    }
    return Tensor(shape: [seqs.count, 4, l], storage: v)
}

/// Decodes (n, 4, L) one-hot back to strings (N for an all-zero column).
func decode(_ x: Tensor<Float>) -> [String] {
    let (n, l) = (x.shape[0], x.shape[2])
    let symbols: [Character] = Array("ACGT")
    var out: [String] = []
    for i in 0..<n {
        var s = ""
        for p in 0..<l {
            var ch: Character = "N"
            for k in 0..<4 where x.storage[(i * 4 + k) * l + p] == 1 { ch = symbols[k] }
            s.append(ch)
        }
        out.append(s)
    }
    return out
}

@Suite("marginalize's substitution")
struct MarginalizeTests {
    @Test("the motif replaces the centre by default: start = L/2 - len/2")
    func centre() throws {
        let m = try Marginalize(motif: "TGA", start: nil, alphabet: .dna, sequenceLength: 10, inner: Predict())
        #expect(m.start == 4)
        #expect(decode(m.substitute(oneHot(["AAAAAAAAAA", "CCCCCCCCCC"]))) == ["AAAATGAAAA", "CCCCTGACCC"])
    }

    @Test("an explicit start, and N keeps the original base")
    func startAndN() throws {
        let m = try Marginalize(motif: "GNNT", start: 0, alphabet: .dna, sequenceLength: 6, inner: Predict())
        #expect(decode(m.substitute(oneHot(["ACGTAC"]))) == ["GCGTAC"])
        let end = try Marginalize(motif: "tt", start: 4, alphabet: .dna, sequenceLength: 6, inner: Predict())
        #expect(decode(end.substitute(oneHot(["ACGTAC"]))) == ["ACGTTT"])
    }

    @Test("the input batch is left untouched")
    func copy() throws {
        let x = oneHot(["AAAA"])
        let m = try Marginalize(motif: "G", start: 1, alphabet: .dna, sequenceLength: 4, inner: Predict())
        _ = m.substitute(x)
        #expect(decode(x) == ["AAAA"])
    }

    @Test("refusals: a motif longer than L, a start out of range, a symbol outside the alphabet, an empty motif")
    func refusals() {
        #expect(throws: FunctionError.self) { try Marginalize(motif: "ACGTACGTACG", start: nil, alphabet: .dna, sequenceLength: 10, inner: Predict()) }
        #expect(throws: FunctionError.self) { try Marginalize(motif: "ACG", start: 8, alphabet: .dna, sequenceLength: 10, inner: Predict()) }
        #expect(throws: FunctionError.self) { try Marginalize(motif: "ACG", start: -1, alphabet: .dna, sequenceLength: 10, inner: Predict()) }
        #expect(throws: FunctionError.self) { try Marginalize(motif: "AXG", start: nil, alphabet: .dna, sequenceLength: 10, inner: Predict()) }
        #expect(throws: FunctionError.self) { try Marginalize(motif: "", start: nil, alphabet: .dna, sequenceLength: 10, inner: Predict()) }
        // The last start that fits is allowed.
        #expect((try? Marginalize(motif: "ACG", start: 7, alphabet: .dna, sequenceLength: 10, inner: Predict())) != nil)
    }

    @Test("alphabets parse as strings or comma lists")
    func alphabets() throws {
        #expect(try Alphabet(parsing: "ACGT") == .dna)
        #expect(try Alphabet(parsing: "A,C,G,T") == .dna)
        #expect(try Alphabet(parsing: "ACGU").count == 4)
        #expect(throws: FunctionError.self) { try Alphabet(parsing: "AAC") }
        #expect(throws: FunctionError.self) { try Alphabet(parsing: "") }
    }
}

@Suite("job inputs")
struct JobInputsTests {
    @Test("batches gather the rows of each example, across X boundaries")
    func batches() throws {
        let x = oneHot(["AC", "GT"])
        let a = Tensor<Float>(shape: [3, 1], storage: [10, 20, 30])
        let b = Tensor<Float>(shape: [2, 2], storage: [1, 2, 3, 4])
        let inputs = try JobInputs(x: x, args: [a, b], mode: .product, alphabetSize: 4)
        #expect(inputs.space.count == 12)
        let batch = inputs.batch(for: 4..<8) // (0,2,0) (0,2,1) (1,0,0) (1,0,1)
        #expect(decode(batch.x) == ["AC", "GT"], "each distinct sequence is held once")
        #expect(batch.xRows == [0, 0, 1, 1])
        #expect(decode(batch.expandedX) == ["AC", "AC", "GT", "GT"])
        let unshared = inputs.batch(for: 4..<8, shareRows: false)
        #expect(decode(unshared.x) == ["AC", "AC", "GT", "GT"])
        #expect(unshared.xRows == [0, 1, 2, 3])
        #expect(batch.args[0].storage == [30, 30, 10, 10])
        #expect(batch.args[1].storage == [1, 2, 3, 4, 1, 2, 3, 4])
        #expect(batch.args[1].shape == [4, 2])
    }

    @Test("X must be 3-D with the alphabet on axis 1; args need a first axis")
    func shapes() {
        #expect(throws: IndexSpaceError.self) { try JobInputs(x: Tensor(shape: [4, 10], repeating: 0), args: [], mode: .product, alphabetSize: 4) }
        #expect(throws: IndexSpaceError.self) { try JobInputs(x: Tensor(shape: [2, 5, 10], repeating: 0), args: [], mode: .product, alphabetSize: 4) }
        #expect(throws: IndexSpaceError.self) { try JobInputs(x: Tensor(shape: [0, 4, 10], repeating: 0), args: [], mode: .product, alphabetSize: 4) }
        #expect(throws: IndexSpaceError.self) {
            try JobInputs(x: Tensor(shape: [1, 4, 10], repeating: 0), args: [Tensor(shape: [], storage: [1])], mode: .product, alphabetSize: 4)
        }
    }

    @Test("the one-hot check names the sequence")
    func oneHotCheck() throws {
        var x = oneHot(["ACGT", "ACGT"])
        try JobInputs(x: x, args: [], mode: .product, alphabetSize: 4).checkOneHot(allowUnknown: false)
        // An unknown base (an all-zero column) passes only where unknown bases are allowed.
        var n = x
        n.storage[2 * 4 + 2] = 0 // sequence 0, channel 2 (G), position 2
        try JobInputs(x: n, args: [], mode: .product, alphabetSize: 4).checkOneHot(allowUnknown: true)
        #expect(
            throws: FunctionError.notOneHot(
                sequence: 0, "no symbol is set at position 2 (an unknown base); deep-lift-shap needs every position to be one of the alphabet")
        ) {
            try JobInputs(x: n, args: [], mode: .product, alphabetSize: 4).checkOneHot(allowUnknown: false)
        }
        x.storage[16 + 0] = 1 // sequence 1, channel 0, position 0 joins the A that is already there
        x.storage[16 + 4] = 1 // sequence 1, channel 1, position 0: two symbols at once
        do {
            try JobInputs(x: x, args: [], mode: .product, alphabetSize: 4).checkOneHot(allowUnknown: true)
            Issue.record("two symbols at one position is not one-hot")
        } catch let e as FunctionError {
            #expect(e == .notOneHot(sequence: 1, "2 symbols are set at position 0"))
        }
    }
}
