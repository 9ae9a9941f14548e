import LoomTensor

/// ReduceMean and ReduceSum over some axes, with keepdims and noop_with_empty_axes.
///
/// Axes come from the attribute (older opsets) or the optional second input
/// (ReduceSum from opset 13, ReduceMean from opset 18).
struct ReduceKernel: Kernel {
    let mean: Bool
    let keepDims: Bool
    let noopWithEmptyAxes: Bool
    let attributeAxes: [Int]?

    init(attributes: Attributes, opset: Int, mean: Bool) throws {
        self.mean = mean
        keepDims = try attributes.int("keepdims", default: 1) != 0
        noopWithEmptyAxes = try attributes.int("noop_with_empty_axes", default: 0) != 0
        attributeAxes = try attributes.ints("axes")
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "data").float("data")
        var axes = attributeAxes ?? []
        if let a = inputs.optional(1) { axes = try a.int64("axes").storage.map { Int($0) } }
        if axes.isEmpty {
            if noopWithEmptyAxes { return [.float(x)] }
            axes = Array(0..<x.rank)
        }
        let reduced = Set(try axes.map { try normalizeAxis($0, rank: x.rank) })
        let keptShape = x.shape.enumerated().map { reduced.contains($0.offset) ? 1 : $0.element }
        let outCount = keptShape.elementCount
        let divisor = Double(x.count / max(outCount, 1))
        // Read the input in order; each element lands in the output slot with its reduced coordinates zeroed.
        let outStrides = keptShape.rowMajorStrides.enumerated().map { reduced.contains($0.offset) ? 0 : $0.element }
        var sums = [Double](repeating: 0, count: outCount)
        let rank = x.rank
        if x.count > 0 {
            let inner = x.shape[rank - 1], innerStride = outStrides[rank - 1]
            var index = [Int](repeating: 0, count: rank)
            var offset = 0
            x.storage.withUnsafeBufferPointer { p in
                sums.withUnsafeMutableBufferPointer { out in
                    var i = 0
                    while i < x.count {
                        let row = p.baseAddress! + i
                        if innerStride == 0 {
                            // The last axis reduced: four independent sums, where one would wait on each add in turn.
                            var (s0, s1, s2, s3) = (0.0, 0.0, 0.0, 0.0)
                            var j = 0
                            while j + 4 <= inner {
                                s0 += Double(row[j])
                                s1 += Double(row[j + 1])
                                s2 += Double(row[j + 2])
                                s3 += Double(row[j + 3])
                                j += 4
                            }
                            while j < inner {
                                s0 += Double(row[j])
                                j += 1
                            }
                            out[offset] += (s0 + s1) + (s2 + s3)
                        } else {
                            let dst = out.baseAddress! + offset
                            for j in 0..<inner { dst[j * innerStride] += Double(row[j]) }
                        }
                        i += inner
                        var axis = rank - 2
                        while axis >= 0 {
                            index[axis] += 1
                            offset += outStrides[axis]
                            if index[axis] < x.shape[axis] { break }
                            offset -= outStrides[axis] * x.shape[axis]
                            index[axis] = 0
                            axis -= 1
                        }
                    }
                }
            }
        }
        let values = sums.map { Float(mean ? $0 / divisor : $0) }
        let shape = keepDims ? keptShape : x.shape.enumerated().filter { !reduced.contains($0.offset) }.map(\.element)
        return [.float(Tensor(shape: shape, storage: values))]
    }
}
