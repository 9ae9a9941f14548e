import COpenBLAS
import LoomTensor

/// 1-D transposed convolution (N, C, L) → (N, M, L'), as `nn.ConvTranspose1d` exports it: strides,
/// dilations, explicit pads, `output_padding`, groups and bias. Per example and group, one
/// `cblas_sgemm` (columns = Wᵀ · X) and a scatter of the columns into the output (col2im). Its
/// reverse rule, the gradient with respect to X, is the matching convolution: im2col of the output
/// gradient, then one sgemm.
///
/// L' = stride·(L − 1) + output_padding + dilation·(k − 1) + 1 − pad_begin − pad_end.
struct ConvTransposeKernel: Kernel {
    let stride: Int
    let dilation: Int
    let pads: (Int, Int)
    let outputPadding: Int
    let group: Int
    let kernelShape: [Int]?

    init(attributes: Attributes) throws {
        let autoPad = try attributes.string("auto_pad", default: "NOTSET")
        guard autoPad == "NOTSET" || autoPad == "VALID" else {
            throw KernelError("ConvTranspose with auto_pad \(autoPad) is not supported: export with explicit pads (PyTorch does)")
        }
        if try attributes.ints("output_shape") != nil {
            throw KernelError("ConvTranspose with output_shape is not supported: export with explicit pads and output_padding (PyTorch does)")
        }
        let strides = try attributes.ints("strides") ?? [1]
        let dilations = try attributes.ints("dilations") ?? [1]
        let pads = try attributes.ints("pads") ?? [0, 0]
        let outputPadding = try attributes.ints("output_padding") ?? [0]
        kernelShape = try attributes.ints("kernel_shape")
        guard strides.count == 1, dilations.count == 1, pads.count == 2, outputPadding.count == 1, (kernelShape?.count ?? 1) == 1 else {
            throw KernelError("only 1-D transposed convolutions are supported")
        }
        stride = strides[0]
        dilation = dilations[0]
        self.pads = autoPad == "VALID" ? (0, 0) : (pads[0], pads[1])
        self.outputPadding = outputPadding[0]
        group = try attributes.int("group", default: 1)
        guard (1...(1 << 20)).contains(stride), (1...(1 << 20)).contains(dilation), group >= 1, self.pads.0 >= 0, self.pads.1 >= 0,
            self.outputPadding >= 0, self.outputPadding < max(stride, dilation)
        else { throw KernelError("strides, dilations and group must be positive, pads not negative, output_padding below the stride") }
    }

    struct Shape {
        var batch, channels, length, filters, groupChannels, groupFilters, k, outLength: Int
        /// Rows of the column matrix: M/g × k.
        var columnRows: Int { groupFilters * k }
    }

    func shape(x: [Int], w: [Int], bias: Int?) throws -> Shape {
        guard x.count == 3 else { throw KernelError("a 1-D transposed convolution takes (N, C, L) inputs, got \(x)") }
        guard w.count == 3 else { throw KernelError("weights must be (C, M/group, k), got \(w)") }
        if let kernelShape, kernelShape[0] != w[2] { throw KernelError("kernel_shape \(kernelShape) does not match weights \(w)") }
        guard x[1] == w[0], w[0] % group == 0 else { throw KernelError("input has \(x[1]) channels; weights \(w) with group \(group) need \(w[0])") }
        let filters = w[1] * group
        if let bias, bias != filters { throw KernelError("bias has \(bias) values for \(filters) filters") }
        let (product, overflow) = stride.multipliedReportingOverflow(by: max(x[2] - 1, 0))
        let out = product + outputPadding + dilation * (w[2] - 1) + 1 - pads.0 - pads.1
        guard !overflow, x[2] > 0, out > 0, out <= 1 << 40 else { throw KernelError("an input of length \(x[2]) gives no output (or too long a one)") }
        return Shape(
            batch: x[0], channels: x[1], length: x[2], filters: filters, groupChannels: w[0] / group, groupFilters: w[1], k: w[2], outLength: out)
    }

    /// Visits every (column row, input position) pair with the output position it lands on (nil: cut by the padding).
    @inline(__always)
    func forEachTap(_ s: Shape, _ body: (_ row: Int, _ position: Int, _ output: Int?) -> Void) {
        for m in 0..<s.groupFilters {
            for t in 0..<s.k {
                let row = m * s.k + t
                for l in 0..<s.length {
                    let o = l * stride + t * dilation - pads.0
                    body(row, l, o >= 0 && o < s.outLength ? m * s.outLength + o : nil)
                }
            }
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "X").float("X"), w = try inputs.required(1, "W").float("W")
        let bias = try inputs.optional(2)?.float("B")
        let s = try shape(x: x.shape, w: w.shape, bias: bias?.count)
        var columns = [Float](repeating: 0, count: s.columnRows * s.length)
        let out = Tensor<Float>(shape: [s.batch, s.filters, s.outLength]) { out in
            x.storage.withUnsafeBufferPointer { px in
                w.storage.withUnsafeBufferPointer { pw in
                    columns.withUnsafeMutableBufferPointer { pcol in
                        for n in 0..<s.batch {
                            for g in 0..<group {
                                // columns (M/g·k × L) = W_gᵀ (M/g·k × C/g) · X_g (C/g × L)
                                loom_sgemm(
                                    CblasRowMajor, CblasTrans, CblasNoTrans, Int32(s.columnRows), Int32(s.length), Int32(s.groupChannels), 1,
                                    pw.baseAddress! + g * s.groupChannels * s.columnRows, Int32(s.columnRows),
                                    px.baseAddress! + (n * s.channels + g * s.groupChannels) * s.length, Int32(s.length), 0, pcol.baseAddress,
                                    Int32(s.length))
                                let y = out.baseAddress! + (n * s.filters + g * s.groupFilters) * s.outLength
                                for m in 0..<s.groupFilters {
                                    (y + m * s.outLength).initialize(repeating: bias?.storage[g * s.groupFilters + m] ?? 0, count: s.outLength)
                                }
                                forEachTap(s) { row, position, output in
                                    if let output { y[output] += pcol[row * s.length + position] }
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

extension ConvTransposeKernel: ReversibleKernel {
    /// The gradient with respect to X: columns gathered from the output gradient (im2col), then
    /// dX_g (C/g × L) = W_g (C/g × M/g·k) · columns. Weights and bias are constants of the model.
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil, nil, nil] }
        if step.needs(1) || step.needs(2) { throw KernelError("weights that depend on the input have no gradient rule in Loom") }
        let x = try step.input(0), w = try step.input(1), grad = try step.grad()
        let s = try shape(x: x.shape, w: w.shape, bias: nil)
        var columns = [Float](repeating: 0, count: s.columnRows * s.length)
        let out = Tensor<Float>(shape: x.shape) { out in
            grad.storage.withUnsafeBufferPointer { pg in
                w.storage.withUnsafeBufferPointer { pw in
                    columns.withUnsafeMutableBufferPointer { pcol in
                        for n in 0..<s.batch {
                            for g in 0..<group {
                                let dy = pg.baseAddress! + (n * s.filters + g * s.groupFilters) * s.outLength
                                forEachTap(s) { row, position, output in pcol[row * s.length + position] = output.map { dy[$0] } ?? 0 }
                                loom_sgemm(
                                    CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(s.groupChannels), Int32(s.length), Int32(s.columnRows), 1,
                                    pw.baseAddress! + g * s.groupChannels * s.columnRows, Int32(s.columnRows), pcol.baseAddress, Int32(s.length), 0,
                                    out.baseAddress! + (n * s.channels + g * s.groupChannels) * s.length, Int32(s.length))
                            }
                        }
                    }
                }
            }
        }
        return [out, nil, nil]
    }
}

extension ConvTransposeKernel: PlainRowWiseKernel, CostedKernel {
    /// Each input element meets (M / group) × k weights.
    func multiplyAdds(inputs: [Value?], outputs: [Value]) -> Double {
        guard let x = inputs.first ?? nil, inputs.count > 1, let w = inputs[1], w.shape.count == 3 else { return 0 }
        return Double(x.shape.elementCount) * Double(w.shape[1] * w.shape[2])
    }
}
