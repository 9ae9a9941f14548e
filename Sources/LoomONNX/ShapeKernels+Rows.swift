// Row sharing for the shape kernels (see Kernel+Rows.swift). Each is row-wise when the axes it
// works on leave the batch axis alone, which only the values at run time can tell.

extension SliceKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {
        guard let axes = facts.ints(3), axes.allSatisfy({ facts.keepsBatch($0, rank: facts.rank) }) else { throw NotRowWise() }
    }
}

extension TransposeKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {
        guard perm?.first == 0 else { throw NotRowWise() }
    }
}

extension FlattenKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {
        guard facts.keepsBatch(axis, rank: facts.rank) else { throw NotRowWise() }
    }
}

extension UnsqueezeKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {
        guard let axes = facts.ints(1) ?? attributeAxes, axes.allSatisfy({ facts.keepsBatch($0, rank: facts.rank + axes.count) }) else {
            throw NotRowWise()
        }
    }
}

extension SqueezeKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {
        guard let axes = facts.ints(1) ?? attributeAxes, axes.allSatisfy({ facts.keepsBatch($0, rank: facts.rank) }) else { throw NotRowWise() }
    }
}

extension GatherKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {
        guard facts.keepsBatch(axis, rank: facts.rank) else { throw NotRowWise() }
    }
}

extension ConcatKernel: RowWiseKernel {
    var rowInputs: RowInputs { .allShared }
    func checkRows(_ facts: RowFacts) throws {
        guard facts.keepsBatch(axis, rank: facts.rank) else { throw NotRowWise() }
    }
}

extension ReshapeKernel: RowWiseKernel {
    /// The target shape may be computed from X's shape (shared metadata).
    var rowInputs: RowInputs { .positions([0], shapes: [1]) }
    /// Rows stay rows when the leading extent is kept; a constant target must copy or infer it.
    func checkRows(_ facts: RowFacts) throws {
        guard facts.outputs[0].shape.first == facts.inputs.first??.shape.first else { throw NotRowWise() }
        if !facts.metaPositions.contains(1), let spec = facts.ints(1) {
            guard let first = spec.first, first == 0 || first == -1 else { throw NotRowWise() }
        }
    }
}
