// Row sharing and cost for Gemm and MatMul (see Kernel+Rows.swift).

extension GemmKernel: RowWiseKernel, CostedKernel {
    var rowInputs: RowInputs { .positions([0]) }
    /// Rows of A are rows of the output only when A is not transposed.
    func checkRows(_ facts: RowFacts) throws {
        guard !transA else { throw NotRowWise() }
    }
    func multiplyAdds(inputs: [Value?], outputs: [Value]) -> Double { matrixProductCost(inputs, outputs) }
}

extension MatMulKernel: RowWiseKernel, CostedKernel {
    var rowInputs: RowInputs { .positions([0]) }
    /// Row-wise when a batch of matrices meets one constant matrix.
    func checkRows(_ facts: RowFacts) throws {
        guard facts.rank >= 2, (facts.inputs.count > 1 ? facts.inputs[1]?.shape.count : nil) == 2 else { throw NotRowWise() }
    }
    func multiplyAdds(inputs: [Value?], outputs: [Value]) -> Double { matrixProductCost(inputs, outputs) }
}

/// Out is (…, M, N) from A (…, M, K): |Out| · K multiply-adds, with K = |A| · N / |Out|.
func matrixProductCost(_ inputs: [Value?], _ outputs: [Value]) -> Double {
    guard let a = inputs.first ?? nil, let out = outputs.first, let n = out.shape.last, out.shape.elementCount > 0 else { return 0 }
    let produced = Double(out.shape.elementCount)
    return produced * Double(a.shape.elementCount) * Double(n) / produced
}
