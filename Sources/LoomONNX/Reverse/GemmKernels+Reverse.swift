import COpenBLAS
import LoomTensor

extension GemmKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        // A's values only for B's gradient; its shape otherwise.
        guard let aShape = step.inputShape(0), aShape.count == 2 else { throw KernelError("input 0 is missing or not a matrix") }
        let b = try step.input(1), g = try step.grad()
        let m = g.shape[0], n = g.shape[1]
        let k = transA ? aShape[0] : aShape[1]
        var ga: Tensor<Float>? = nil, gb: Tensor<Float>? = nil, gc: Tensor<Float>? = nil
        if step.needs(0) {
            // dA = alpha * g * op(B)^T, laid out as A (transposed back when transA).
            var out = Tensor<Float>(shape: aShape, repeating: 0)
            g.storage.withUnsafeBufferPointer { pg in
                b.storage.withUnsafeBufferPointer { pb in
                    out.storage.withUnsafeMutableBufferPointer { po in
                        // op(B) is (k, n); op(B)^T = B when transB, else B^T.
                        if !transA {
                            loom_sgemm(
                                CblasRowMajor, CblasNoTrans, transB ? CblasNoTrans : CblasTrans, Int32(m), Int32(k), Int32(n),
                                alpha, pg.baseAddress, Int32(n), pb.baseAddress, Int32(b.shape[1]), 0, po.baseAddress, Int32(k))
                        } else {
                            // A is (k, m): dA = alpha * op(B) * g^T.
                            loom_sgemm(
                                CblasRowMajor, transB ? CblasTrans : CblasNoTrans, CblasTrans, Int32(k), Int32(m), Int32(n),
                                alpha, pb.baseAddress, Int32(b.shape[1]), pg.baseAddress, Int32(n), 0, po.baseAddress, Int32(m))
                        }
                    }
                }
            }
            ga = out
        }
        if step.needs(1) {
            let a = try step.input(0)
            var out = Tensor<Float>(shape: b.shape, repeating: 0)
            g.storage.withUnsafeBufferPointer { pg in
                a.storage.withUnsafeBufferPointer { pa in
                    out.storage.withUnsafeMutableBufferPointer { po in
                        if !transB {
                            // B is (k, n): dB = alpha * op(A)^T * g.
                            loom_sgemm(
                                CblasRowMajor, transA ? CblasNoTrans : CblasTrans, CblasNoTrans, Int32(k), Int32(n), Int32(m),
                                alpha, pa.baseAddress, Int32(a.shape[1]), pg.baseAddress, Int32(n), 0, po.baseAddress, Int32(n))
                        } else {
                            // B is (n, k): dB = alpha * g^T * op(A).
                            loom_sgemm(
                                CblasRowMajor, CblasTrans, transA ? CblasTrans : CblasNoTrans, Int32(n), Int32(k), Int32(m),
                                alpha, pg.baseAddress, Int32(n), pa.baseAddress, Int32(a.shape[1]), 0, po.baseAddress, Int32(k))
                        }
                    }
                }
            }
            gb = out
        }
        if step.needs(2), let cShape = step.inputShape(2) {
            let scaled = beta == 1 ? g : Tensor(shape: g.shape, storage: g.storage.map { $0 * beta })
            gc = try sumToShape(scaled, cShape)
        }
        return [ga, gb, gc]
    }
}

extension MatMulKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        var a = try step.input(0), b = try step.input(1)
        let aShape = a.shape, bShape = b.shape
        if a.rank == 1 { a = a.reshaped([1, a.shape[0]]) }
        if b.rank == 1 { b = b.reshaped([b.shape[0], 1]) }
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1], n = b.shape[b.rank - 1]
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let batch = try broadcastShape(batchA, batchB)
        let g = try step.grad().reshaped(batch + [m, n])
        let strideA = broadcastStrides(batchA, to: batch), strideB = broadcastStrides(batchB, to: batch)
        var ga = step.needs(0) ? [Float](repeating: 0, count: a.count) : []
        var gb = step.needs(1) ? [Float](repeating: 0, count: b.count) : []
        forEachBroadcastEntry(batch, strideA: strideA, strideB: strideB) { i, oa, ob in
            g.storage.withUnsafeBufferPointer { pg in
                let gi = pg.baseAddress! + i * m * n
                if !ga.isEmpty {
                    // dA_i += g_i * B_i^T (accumulating over broadcast batch entries).
                    b.storage.withUnsafeBufferPointer { pb in
                        ga.withUnsafeMutableBufferPointer { po in
                            loom_sgemm(
                                CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(k), Int32(n), 1,
                                gi, Int32(n), pb.baseAddress! + ob * k * n, Int32(n), 1, po.baseAddress! + oa * m * k, Int32(k))
                        }
                    }
                }
                if !gb.isEmpty {
                    a.storage.withUnsafeBufferPointer { pa in
                        gb.withUnsafeMutableBufferPointer { po in
                            loom_sgemm(
                                CblasRowMajor, CblasTrans, CblasNoTrans, Int32(k), Int32(n), Int32(m), 1,
                                pa.baseAddress! + oa * m * k, Int32(k), gi, Int32(n), 1, po.baseAddress! + ob * k * n, Int32(n))
                        }
                    }
                }
            }
        }
        return [ga.isEmpty ? nil : Tensor(shape: aShape, storage: ga), gb.isEmpty ? nil : Tensor(shape: bShape, storage: gb)]
    }
}
