import COpenBLAS
import LoomTensor

extension ConvKernel: ReversibleKernel {
    /// The gradient with respect to the input: the transposed convolution of the output gradient.
    ///
    /// Weights and bias are constants of the model, so only X's gradient is computed.
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil, nil, nil] }
        if step.needs(1) || step.needs(2) { throw KernelError("weights that depend on the input have no gradient rule in Loom") }
        // X's shape alone: its gradient does not depend on its values.
        guard let xShape = step.inputShape(0), xShape.count == 3 else { throw KernelError("input 0 is missing or not (batch, channels, length)") }
        let w = try step.input(1), g = try step.grad()
        let (batch, channels, length) = (xShape[0], xShape[1], xShape[2])
        let (filters, groupChannels, k) = (w.shape[0], w.shape[1], w.shape[2])
        let (left, right, outLength) = geometry(length: length, k: k)
        let groupFilters = filters / group
        let paddedLength = length + left + right
        let tapWise = lowersTapWise(groupChannels: groupChannels)
        let tapWeights = tapWise ? ConvKernel.tapMajor(w) : []
        var padded = [Float](repeating: 0, count: groupChannels * paddedLength)
        var columns = tapWise ? [] : [Float](repeating: 0, count: groupChannels * k * outLength)
        let out = Tensor<Float>(shape: xShape) { out in
            g.storage.withUnsafeBufferPointer { pgAll in
                w.storage.withUnsafeBufferPointer { pw in
                    tapWeights.withUnsafeBufferPointer { ptw in
                        padded.withUnsafeMutableBufferPointer { pp in
                            columns.withUnsafeMutableBufferPointer { pcol in
                                for n in 0..<batch {
                                    for gr in 0..<group {
                                        let gOut = pgAll.baseAddress! + (n * filters + gr * groupFilters) * outLength
                                        pp.baseAddress!.initialize(repeating: 0, count: pp.count)
                                        if tapWise {
                                            // padded[:, t*d : t*d + outLength] += W_t^T (C x M) * g (M x outLength)
                                            for t in 0..<k {
                                                loom_sgemm(
                                                    CblasRowMajor, CblasTrans, CblasNoTrans,
                                                    Int32(groupChannels), Int32(outLength), Int32(groupFilters), 1,
                                                    ptw.baseAddress! + (t * filters + gr * groupFilters) * groupChannels, Int32(groupChannels),
                                                    gOut, Int32(outLength), 1, pp.baseAddress! + t * dilation, Int32(paddedLength))
                                            }
                                        } else {
                                            // columns (C*k x outLength) = W^T * g, then scattered back (col2im).
                                            loom_sgemm(
                                                CblasRowMajor, CblasTrans, CblasNoTrans,
                                                Int32(groupChannels * k), Int32(outLength), Int32(groupFilters), 1,
                                                pw.baseAddress! + gr * groupFilters * groupChannels * k, Int32(groupChannels * k),
                                                gOut, Int32(outLength), 0, pcol.baseAddress, Int32(outLength))
                                            for c in 0..<groupChannels {
                                                for t in 0..<k {
                                                    let row = pcol.baseAddress! + (c * k + t) * outLength
                                                    let dst = pp.baseAddress! + c * paddedLength + t * dilation
                                                    if stride == 1 {
                                                        for j in 0..<outLength { dst[j] += row[j] }
                                                    } else {
                                                        for j in 0..<outLength { dst[j * stride] += row[j] }
                                                    }
                                                }
                                            }
                                        }
                                        for c in 0..<groupChannels {
                                            (out.baseAddress! + (n * channels + gr * groupChannels + c) * length)
                                                .initialize(from: pp.baseAddress! + c * paddedLength + left, count: length)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return [out, nil, nil]
    }
}
