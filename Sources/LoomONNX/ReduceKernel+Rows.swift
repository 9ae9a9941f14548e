// Row sharing for reductions (see Kernel+Rows.swift).

extension ReduceKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    /// Row-wise when the axes reduced leave the batch axis alone (and there are some: none means all).
    func checkRows(_ facts: RowFacts) throws {
        let axes = facts.ints(1) ?? attributeAxes ?? []
        guard !axes.isEmpty, axes.allSatisfy({ facts.keepsBatch($0, rank: facts.rank) }) else { throw NotRowWise() }
    }
}
