import COpenBLAS
import LoomTensor

/// 2-D convolution (N, C, H, W) with padding, strides, dilations, groups and bias: im2col and one
/// `cblas_sgemm` per example and group. Its reverse rule (the gradient with respect to X, the
/// transposed convolution) is the sgemm of the weights' transpose followed by col2im.
///
/// `Conv` nodes whose attributes name two spatial axes are built as this kernel (see
/// ``ConvKernel/build(attributes:)``); 1-D ones as ``ConvKernel``.
struct Conv2DKernel: Kernel {
    /// One spatial axis: its padding (explicit or automatic), stride and dilation.
    struct Axis: Sendable {
        var pads: (Int, Int)?
        var stride: Int
        var dilation: Int

        /// The padding before and after, and the output extent, for an input of `length` and a kernel of `k` taps.
        func geometry(length: Int, k: Int, autoPad: String) -> (before: Int, after: Int, out: Int) {
            let span = dilation * (k - 1) + 1
            var before = 0, after = 0
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                let out = (length + stride - 1) / stride
                let total = max((out - 1) * stride + span - length, 0)
                before = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                after = total - before
            case "VALID": break
            default: (before, after) = pads ?? (0, 0)
            }
            return (before, after, max((length + before + after - span) / stride + 1, 0))
        }
    }

    let axes: [Axis]
    let autoPad: String
    let group: Int
    let kernelShape: [Int]?

    init(attributes: Attributes) throws {
        autoPad = try attributes.string("auto_pad", default: "NOTSET")
        guard ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"].contains(autoPad) else { throw KernelError("auto_pad '\(autoPad)' is not an ONNX value") }
        let pads = try attributes.ints("pads") ?? [0, 0, 0, 0]
        let strides = try attributes.ints("strides") ?? [1, 1]
        let dilations = try attributes.ints("dilations") ?? [1, 1]
        kernelShape = try attributes.ints("kernel_shape")
        guard pads.count == 4, strides.count == 2, dilations.count == 2, (kernelShape?.count ?? 2) == 2 else {
            throw KernelError("a 2-D convolution needs 4 pads, 2 strides, 2 dilations and a 2-D kernel_shape")
        }
        guard strides.allSatisfy({ $0 >= 1 && $0 <= 1 << 20 }), dilations.allSatisfy({ $0 >= 1 && $0 <= 1 << 20 }),
            pads.allSatisfy({ $0 >= 0 && $0 <= 1 << 20 })
        else { throw KernelError("strides and dilations must be positive and pads not negative (\(strides), \(dilations), \(pads))") }
        axes = (0..<2).map { Axis(pads: (pads[$0], pads[$0 + 2]), stride: strides[$0], dilation: dilations[$0]) }
        group = try attributes.int("group", default: 1)
        guard group >= 1 else { throw KernelError("group must be positive") }
    }

    /// The sizes of a run, checked.
    struct Shape {
        var batch, channels, height, width, filters, groupChannels, kh, kw: Int
        var top, left, outH, outW: Int
        var groupFilters: Int { filters / group }
        var group: Int
        /// Rows of the column matrix: C/g × kh × kw.
        var columnRows: Int { groupChannels * kh * kw }
        var outPlane: Int { outH * outW }
    }

    func shape(x: [Int], w: [Int], bias: Int?) throws -> Shape {
        guard x.count == 4 else { throw KernelError("a 2-D convolution takes (N, C, H, W) inputs, got \(x)") }
        guard w.count == 4 else { throw KernelError("weights must be (M, C/group, kh, kw), got \(w)") }
        if let kernelShape, kernelShape != Array(w[2...]) { throw KernelError("kernel_shape \(kernelShape) does not match weights \(w)") }
        guard x[1] == w[1] * group, w[0] % group == 0 else {
            throw KernelError("input has \(x[1]) channels; weights \(w) with group \(group) need \(w[1] * group)")
        }
        if let bias, bias != w[0] { throw KernelError("bias has \(bias) values for \(w[0]) filters") }
        let v = axes[0].geometry(length: x[2], k: w[2], autoPad: autoPad)
        let h = axes[1].geometry(length: x[3], k: w[3], autoPad: autoPad)
        guard v.out > 0, h.out > 0 else { throw KernelError("input \(x[2])×\(x[3]) is smaller than the kernel's span") }
        return Shape(
            batch: x[0], channels: x[1], height: x[2], width: x[3], filters: w[0], groupChannels: w[1], kh: w[2], kw: w[3],
            top: v.before, left: h.before, outH: v.out, outW: h.out, group: group)
    }

    /// Visits every (column row, output position) pair with the input offset it reads (nil: padding).
    @inline(__always)
    func forEachTap(_ s: Shape, _ body: (_ row: Int, _ position: Int, _ input: Int?) -> Void) {
        let (sh, sw, dh, dw) = (axes[0].stride, axes[1].stride, axes[0].dilation, axes[1].dilation)
        for c in 0..<s.groupChannels {
            for i in 0..<s.kh {
                for j in 0..<s.kw {
                    let row = (c * s.kh + i) * s.kw + j
                    for oh in 0..<s.outH {
                        let y = oh * sh + i * dh - s.top
                        let inRow = y >= 0 && y < s.height
                        for ow in 0..<s.outW {
                            let x = ow * sw + j * dw - s.left
                            body(row, oh * s.outW + ow, inRow && x >= 0 && x < s.width ? (c * s.height + y) * s.width + x : nil)
                        }
                    }
                }
            }
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "X").float("X"), w = try inputs.required(1, "W").float("W")
        let bias = try inputs.optional(2)?.float("B")
        let s = try shape(x: x.shape, w: w.shape, bias: bias?.count)
        var columns = [Float](repeating: 0, count: s.columnRows * s.outPlane)
        let out = Tensor<Float>(shape: [s.batch, s.filters, s.outH, s.outW]) { out in
            x.storage.withUnsafeBufferPointer { px in
                w.storage.withUnsafeBufferPointer { pw in
                    columns.withUnsafeMutableBufferPointer { pcol in
                        for n in 0..<s.batch {
                            for g in 0..<s.group {
                                let input = px.baseAddress! + (n * s.channels + g * s.groupChannels) * s.height * s.width
                                forEachTap(s) { row, position, offset in pcol[row * s.outPlane + position] = offset.map { input[$0] } ?? 0 }
                                let o = out.baseAddress! + (n * s.filters + g * s.groupFilters) * s.outPlane
                                for f in 0..<s.groupFilters {
                                    (o + f * s.outPlane).initialize(repeating: bias?.storage[g * s.groupFilters + f] ?? 0, count: s.outPlane)
                                }
                                loom_sgemm(
                                    CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(s.groupFilters), Int32(s.outPlane), Int32(s.columnRows), 1,
                                    pw.baseAddress! + g * s.groupFilters * s.columnRows, Int32(s.columnRows), pcol.baseAddress, Int32(s.outPlane), 1,
                                    o, Int32(s.outPlane))
                            }
                        }
                    }
                }
            }
        }
        return [.float(out)]
    }
}

extension Conv2DKernel: ReversibleKernel {
    /// The gradient with respect to X: columns = Wᵀ · dY per example and group, scattered back (col2im).
    /// Weights and bias are constants of the model.
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil, nil, nil] }
        if step.needs(1) || step.needs(2) { throw KernelError("weights that depend on the input have no gradient rule in Loom") }
        let x = try step.input(0), w = try step.input(1), grad = try step.grad()
        let s = try shape(x: x.shape, w: w.shape, bias: nil)
        var columns = [Float](repeating: 0, count: s.columnRows * s.outPlane)
        let out = Tensor<Float>(shape: x.shape) { out in
            out.baseAddress!.initialize(repeating: 0, count: out.count)
            grad.storage.withUnsafeBufferPointer { pg in
                w.storage.withUnsafeBufferPointer { pw in
                    columns.withUnsafeMutableBufferPointer { pcol in
                        for n in 0..<s.batch {
                            for g in 0..<s.group {
                                loom_sgemm(
                                    CblasRowMajor, CblasTrans, CblasNoTrans, Int32(s.columnRows), Int32(s.outPlane), Int32(s.groupFilters), 1,
                                    pw.baseAddress! + g * s.groupFilters * s.columnRows, Int32(s.columnRows),
                                    pg.baseAddress! + (n * s.filters + g * s.groupFilters) * s.outPlane, Int32(s.outPlane), 0, pcol.baseAddress,
                                    Int32(s.outPlane))
                                let dx = out.baseAddress! + (n * s.channels + g * s.groupChannels) * s.height * s.width
                                forEachTap(s) { row, position, offset in
                                    if let offset { dx[offset] += pcol[row * s.outPlane + position] }
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

extension Conv2DKernel: PlainRowWiseKernel, CostedKernel {
    /// Each output element sums over the weight's (C_in / group) × kh × kw taps.
    func multiplyAdds(inputs: [Value?], outputs: [Value]) -> Double {
        guard inputs.count > 1, let w = inputs[1], w.shape.count >= 2 else { return 0 }
        return outputs.reduce(0.0) { $0 + Double($1.shape.elementCount) } * Double(Array(w.shape.dropFirst()).elementCount)
    }
}
