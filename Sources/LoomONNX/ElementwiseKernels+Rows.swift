// Row sharing for the element-wise kernels (see Kernel+Rows.swift).

extension UnaryKernel: PlainRowWiseKernel {}
extension IdentityKernel: PlainRowWiseKernel {}
extension CastKernel: PlainRowWiseKernel {}

extension BinaryKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0, 1]) }

    /// A constant operand may broadcast along the batch axis only with extent 1.
    func checkRows(_ facts: RowFacts) throws { try facts.constantsKeepBatch() }
}

extension SoftmaxKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {
        guard facts.keepsBatch(axis, rank: facts.rank) else { throw NotRowWise() }
    }
}
