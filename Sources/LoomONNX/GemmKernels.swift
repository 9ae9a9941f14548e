import COpenBLAS
import LoomTensor

/// Gemm: `alpha * op(A) * op(B) + beta * C`, through `cblas_sgemm`.
struct GemmKernel: Kernel {
    let alpha: Float, beta: Float
    let transA: Bool, transB: Bool

    init(attributes: Attributes) throws {
        alpha = try attributes.float("alpha", default: 1)
        beta = try attributes.float("beta", default: 1)
        transA = try attributes.int("transA", default: 0) != 0
        transB = try attributes.int("transB", default: 0) != 0
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let a = try inputs.required(0, "A").float("A"), b = try inputs.required(1, "B").float("B")
        guard a.rank == 2, b.rank == 2 else { throw KernelError("A and B must be 2-D, got \(a.shape) and \(b.shape)") }
        let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
        let kb = transB ? b.shape[1] : b.shape[0], n = transB ? b.shape[0] : b.shape[1]
        guard k == kb else { throw KernelError("A \(a.shape) and B \(b.shape) do not fit (inner extents \(k) and \(kb))") }
        var out: Tensor<Float>
        var betaUsed: Float = 0
        if let c = try inputs.optional(2)?.float("C"), beta != 0 {
            _ = try broadcastShape(c.shape, [m, n])
            guard c.rank <= 2 else { throw KernelError("C must broadcast to (\(m), \(n)), got \(c.shape)") }
            out = try broadcastBinary(Tensor(shape: [m, n], repeating: 0), c, { $1 })
            betaUsed = beta
        } else {
            out = Tensor(shape: [m, n], repeating: 0)
        }
        guard m > 0, n > 0 else { return [.float(out)] }
        if m <= 4 {
            // A few rows (a batch's distinct sequences): one sgemv per row, without sgemm's packing of B.
            a.storage.withUnsafeBufferPointer { pa in
                b.storage.withUnsafeBufferPointer { pb in
                    out.storage.withUnsafeMutableBufferPointer { pc in
                        for i in 0..<m {
                            let row = pa.baseAddress! + (transA ? i : i * k)
                            let incx = Int32(transA ? m : 1)
                            if transB {
                                loom_sgemv(
                                    CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, pb.baseAddress, Int32(k),
                                    row, incx, betaUsed, pc.baseAddress! + i * n, 1)
                            } else {
                                loom_sgemv(
                                    CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, pb.baseAddress, Int32(n),
                                    row, incx, betaUsed, pc.baseAddress! + i * n, 1)
                            }
                        }
                    }
                }
            }
            return [.float(out)]
        }
        a.storage.withUnsafeBufferPointer { pa in
            b.storage.withUnsafeBufferPointer { pb in
                out.storage.withUnsafeMutableBufferPointer { pc in
                    loom_sgemm(
                        CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, pa.baseAddress, Int32(a.shape[1]),
                        pb.baseAddress, Int32(b.shape[1]), betaUsed, pc.baseAddress, Int32(n))
                }
            }
        }
        return [.float(out)]
    }
}

/// MatMul with numpy semantics: batched over leading axes with broadcasting.
struct MatMulKernel: Kernel {
    func run(_ inputs: [Value?]) throws -> [Value] {
        var a = try inputs.required(0, "A").float("A"), b = try inputs.required(1, "B").float("B")
        let aVector = a.rank == 1, bVector = b.rank == 1
        if aVector { a = a.reshaped([1, a.shape[0]]) }
        if bVector { b = b.reshaped([b.shape[0], 1]) }
        guard a.rank >= 2, b.rank >= 2 else { throw KernelError("scalar operands are not allowed") }
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1]
        let kb = b.shape[b.rank - 2], n = b.shape[b.rank - 1]
        guard k == kb else { throw KernelError("A \(a.shape) and B \(b.shape) do not fit (inner extents \(k) and \(kb))") }
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let batch = try broadcastShape(batchA, batchB)
        var outShape = batch + [m, n]
        let count = batch.elementCount
        var out = Tensor<Float>(shape: outShape, repeating: 0)
        if count > 0 && m > 0 && n > 0 {
            let strideA = broadcastStrides(batchA, to: batch), strideB = broadcastStrides(batchB, to: batch)
            // B shared by every batch entry: one sgemm over all rows of A.
            let foldA = batchB.elementCount == 1 && batchA == batch
            a.storage.withUnsafeBufferPointer { pa in
                b.storage.withUnsafeBufferPointer { pb in
                    out.storage.withUnsafeMutableBufferPointer { pc in
                        if foldA {
                            loom_sgemm(
                                CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(count * m), Int32(n), Int32(k), 1,
                                pa.baseAddress, Int32(k), pb.baseAddress, Int32(n), 0, pc.baseAddress, Int32(n))
                            return
                        }
                        forEachBroadcastEntry(batch, strideA: strideA, strideB: strideB) { i, oa, ob in
                            loom_sgemm(
                                CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                                pa.baseAddress! + oa * m * k, Int32(k), pb.baseAddress! + ob * k * n, Int32(n), 0,
                                pc.baseAddress! + i * m * n, Int32(n))
                        }
                    }
                }
            }
        }
        if aVector { outShape.remove(at: outShape.count - 2) }
        if bVector { outShape.removeLast() }
        return [.float(out.reshaped(outShape))]
    }
}
