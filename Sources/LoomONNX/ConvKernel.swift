import COpenBLAS
import LoomTensor

/// 1-D convolution (N, C, L) with padding, stride, dilation, groups and bias, through `cblas_sgemm`.
///
/// Two lowerings, both without naive loops over the multiply-adds:
/// - stride 1 with enough input channels: one sgemm per kernel tap, reading a shifted
///   view of the padded input in place (no im2col buffer);
/// - otherwise im2col followed by one sgemm.
struct ConvKernel: Kernel {
    enum Padding: Sendable { case explicit(Int, Int), valid, sameUpper, sameLower }
    let padding: Padding
    let stride: Int
    let dilation: Int
    let group: Int
    let kernelShape: [Int]?
    /// A Relu that followed this Conv, applied to each example's output while it is in cache (``ONNXModel``'s
    /// forward steps fuse the two; the same float operations, one pass over memory fewer).
    var reluAfter = false

    init(attributes: Attributes) throws {
        let autoPad = try attributes.string("auto_pad", default: "NOTSET")
        let pads = try attributes.ints("pads") ?? [0, 0]
        switch autoPad {
        case "NOTSET":
            guard pads.count == 2 else { throw KernelError("only 1-D and 2-D convolutions are supported (pads \(pads))") }
            padding = .explicit(pads[0], pads[1])
        case "VALID": padding = .valid
        case "SAME_UPPER": padding = .sameUpper
        case "SAME_LOWER": padding = .sameLower
        default: throw KernelError("auto_pad '\(autoPad)' is not an ONNX value")
        }
        let strides = try attributes.ints("strides") ?? [1]
        let dilations = try attributes.ints("dilations") ?? [1]
        guard strides.count == 1, dilations.count == 1 else { throw KernelError("only 1-D and 2-D convolutions are supported") }
        stride = strides[0]
        dilation = dilations[0]
        group = try attributes.int("group", default: 1)
        kernelShape = try attributes.ints("kernel_shape")
        guard stride >= 1, dilation >= 1, group >= 1 else { throw KernelError("strides, dilations and group must be positive") }
        if let kernelShape, kernelShape.count != 1 { throw KernelError("only 1-D and 2-D convolutions are supported (kernel_shape \(kernelShape))") }
    }

    /// Whether this convolution runs one sgemm per tap (stride 1, enough channels) rather than im2col.
    func lowersTapWise(groupChannels: Int) -> Bool { stride == 1 && groupChannels >= 8 }

    /// Weights (M, C/g, k) laid out per tap, (k, M, C/g), for the tap-wise lowering.
    static func tapMajor(_ w: Tensor<Float>) -> [Float] {
        let (filters, groupChannels, k) = (w.shape[0], w.shape[1], w.shape[2])
        var out = [Float](repeating: 0, count: w.count)
        for f in 0..<filters {
            for c in 0..<groupChannels {
                for t in 0..<k {
                    out[(t * filters + f) * groupChannels + c] = w.storage[(f * groupChannels + c) * k + t]
                }
            }
        }
        return out
    }

    /// The left and right padding and the output length for an input of length `length`.
    func geometry(length: Int, k: Int) -> (left: Int, right: Int, out: Int) {
        let span = dilation * (k - 1) + 1
        var left = 0, right = 0
        switch padding {
        case .explicit(let l, let r): left = l; right = r
        case .valid: break
        case .sameUpper, .sameLower:
            let outLength = (length + stride - 1) / stride
            let total = max((outLength - 1) * stride + span - length, 0)
            if case .sameUpper = padding { left = total / 2 } else { left = total - total / 2 }
            right = total - left
        }
        let out = (length + left + right - span) / stride + 1
        return (left, right, max(out, 0))
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "X").float("X"), w = try inputs.required(1, "W").float("W")
        let bias = try inputs.optional(2)?.float("B")
        guard x.rank == 3 else { throw KernelError("only 1-D convolutions over (N, C, L) inputs are supported, got \(x.shape)") }
        guard w.rank == 3 else { throw KernelError("weights must be (M, C/group, k), got \(w.shape)") }
        let (batch, channels, length) = (x.shape[0], x.shape[1], x.shape[2])
        let (filters, groupChannels, k) = (w.shape[0], w.shape[1], w.shape[2])
        if let kernelShape, kernelShape[0] != k { throw KernelError("kernel_shape \(kernelShape[0]) does not match weights \(w.shape)") }
        guard channels == groupChannels * group, filters % group == 0 else {
            throw KernelError("input has \(channels) channels; weights \(w.shape) with group \(group) need \(groupChannels * group)")
        }
        if let bias, bias.count != filters { throw KernelError("bias has \(bias.count) values for \(filters) filters") }
        let (left, right, outLength) = geometry(length: length, k: k)
        guard outLength > 0 else { throw KernelError("input length \(length) is shorter than the kernel span") }
        let groupFilters = filters / group
        let paddedLength = length + left + right
        let tapWise = lowersTapWise(groupChannels: groupChannels)
        // Per-tap weights (k, M, C/g) for the tap-wise lowering.
        let tapWeights = tapWise ? ConvKernel.tapMajor(w) : []
        var padded = [Float](repeating: 0, count: groupChannels * paddedLength)
        var columns = tapWise ? [] : [Float](repeating: 0, count: groupChannels * k * outLength)
        let out = Tensor<Float>(shape: [batch, filters, outLength]) { out in
            x.storage.withUnsafeBufferPointer { px in
                w.storage.withUnsafeBufferPointer { pw in
                    tapWeights.withUnsafeBufferPointer { ptw in
                        padded.withUnsafeMutableBufferPointer { pp in
                            columns.withUnsafeMutableBufferPointer { pcol in
                                for n in 0..<batch {
                                    for g in 0..<group {
                                        // Copy this group's channels into the zero-padded buffer.
                                        for c in 0..<groupChannels {
                                            let src = px.baseAddress! + (n * channels + g * groupChannels + c) * length
                                            (pp.baseAddress! + c * paddedLength + left).update(from: src, count: length)
                                        }
                                        let o = out.baseAddress! + (n * filters + g * groupFilters) * outLength
                                        for f in 0..<groupFilters {
                                            let b = bias?.storage[g * groupFilters + f] ?? 0
                                            (o + f * outLength).initialize(repeating: b, count: outLength)
                                        }
                                        if tapWise {
                                            for t in 0..<k {
                                                loom_sgemm(
                                                    CblasRowMajor, CblasNoTrans, CblasNoTrans,
                                                    Int32(groupFilters), Int32(outLength), Int32(groupChannels), 1,
                                                    ptw.baseAddress! + (t * filters + g * groupFilters) * groupChannels, Int32(groupChannels),
                                                    pp.baseAddress! + t * dilation, Int32(paddedLength), 1, o, Int32(outLength))
                                            }
                                        } else {
                                            for c in 0..<groupChannels {
                                                for t in 0..<k {
                                                    let row = pcol.baseAddress! + (c * k + t) * outLength
                                                    let src = pp.baseAddress! + c * paddedLength + t * dilation
                                                    if stride == 1 {
                                                        row.update(from: src, count: outLength)
                                                    } else {
                                                        for j in 0..<outLength { row[j] = src[j * stride] }
                                                    }
                                                }
                                            }
                                            loom_sgemm(
                                                CblasRowMajor, CblasNoTrans, CblasNoTrans,
                                                Int32(groupFilters), Int32(outLength), Int32(groupChannels * k), 1,
                                                pw.baseAddress! + g * groupFilters * groupChannels * k, Int32(groupChannels * k),
                                                pcol.baseAddress, Int32(outLength), 1, o, Int32(outLength))
                                        }
                                        if reluAfter {
                                            for i in 0..<(groupFilters * outLength) { o[i] = o[i] > 0 ? o[i] : 0 }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return [.float(out)]
    }
}

extension ConvKernel {
    /// A `Conv` node's kernel: ``Conv2DKernel`` when its attributes name two spatial axes, else this 1-D one.
    static func build(attributes: Attributes) throws -> any Kernel {
        let spatial =
            try attributes.ints("kernel_shape")?.count ?? attributes.ints("strides")?.count ?? attributes.ints("dilations")?.count
            ?? attributes.ints("pads").map { $0.count / 2 }
        return spatial == 2 ? try Conv2DKernel(attributes: attributes) : try ConvKernel(attributes: attributes)
    }
}
