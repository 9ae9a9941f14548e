import CLoomVector
import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A 1-D pooling window's geometry: kernel, stride, dilation, padding and ceil mode, as
/// MaxPool and AveragePool read them from their attributes.
struct PoolWindow: Sendable {
    let kernel: Int, stride: Int, dilation: Int
    let padLeft: Int, padRight: Int
    let ceilMode: Bool

    init(attributes: Attributes, op: String) throws {
        guard let ks = try attributes.ints("kernel_shape"), ks.count == 1 else {
            throw KernelError("only 1-D \(op) is supported (kernel_shape must have one entry)")
        }
        kernel = ks[0]
        stride = (try attributes.ints("strides"))?.first ?? 1
        dilation = (try attributes.ints("dilations"))?.first ?? 1
        let pads = try attributes.ints("pads") ?? [0, 0]
        guard pads.count == 2 else { throw KernelError("only 1-D \(op) is supported (pads \(pads))") }
        padLeft = pads[0]; padRight = pads[1]
        ceilMode = try attributes.int("ceil_mode", default: 0) != 0
        let autoPad = try attributes.string("auto_pad", default: "NOTSET")
        guard autoPad == "NOTSET" || autoPad == "VALID" else { throw KernelError("auto_pad '\(autoPad)' is not supported for \(op)") }
        guard kernel >= 1, stride >= 1, dilation >= 1, padLeft >= 0, padRight >= 0 else {
            throw KernelError("kernel, stride and dilation must be positive, pads non-negative")
        }
    }

    /// The windows wholly inside a row of `length` (no padding, no bounds tests), of `outLength`.
    func inside(length: Int, outLength: Int) -> Range<Int> {
        let span = (kernel - 1) * dilation
        let first = min(outLength, max(0, (padLeft + stride - 1) / stride))
        let last = min(outLength, length - span + padLeft > 0 ? (length - 1 - span + padLeft) / stride + 1 : 0)
        return first..<max(first, last)
    }

    /// The output length for an input of length `length`.
    func outputLength(_ length: Int) -> Int {
        let span = dilation * (kernel - 1) + 1
        let room = length + padLeft + padRight - span
        guard room >= 0 else { return 0 }
        var n = (ceilMode ? (room + stride - 1) / stride : room / stride) + 1
        // A window that would start in the right padding is dropped (as PyTorch and ONNX do).
        if ceilMode && (n - 1) * stride >= length + padLeft { n -= 1 }
        return n
    }
}

/// 1-D max pooling over (N, C, L) with kernel, stride, padding, dilation and ceil mode.
struct MaxPoolKernel: Kernel {
    let window: PoolWindow
    var kernel: Int { window.kernel }
    var stride: Int { window.stride }
    var dilation: Int { window.dilation }
    var padLeft: Int { window.padLeft }

    init(attributes: Attributes) throws {
        window = try PoolWindow(attributes: attributes, op: "max pooling")
    }

    func outputLength(_ length: Int) -> Int { window.outputLength(length) }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "X").float("X")
        guard x.rank == 3 else { throw KernelError("only 1-D max pooling over (N, C, L) is supported, got \(x.shape)") }
        let rows = x.shape[0] * x.shape[1], length = x.shape[2]
        let outLength = outputLength(length)
        guard outLength > 0 else { throw KernelError("input length \(length) is shorter than the pooling window") }
        return [
            .float(
                Tensor(shape: [x.shape[0], x.shape[1], outLength]) { out in
                    // Windows wholly inside the row (all but a padded edge's) skip the bounds tests.
                    let inside = window.inside(length: length, outLength: outLength)
                    x.storage.withUnsafeBufferPointer { p in
                        loom_maxpool1d(
                            p.baseAddress!, out.baseAddress!, rows, length, outLength, kernel, stride, dilation, padLeft, inside.lowerBound,
                            inside.upperBound)
                    }
                })
        ]
    }
}

/// BatchNormalization at inference: `(x - mean) / sqrt(var + eps) * scale + bias` per channel.
struct BatchNormKernel: Kernel {
    let epsilon: Float

    init(attributes: Attributes) throws {
        epsilon = try attributes.float("epsilon", default: 1e-5)
        if try attributes.int("training_mode", default: 0) != 0 { throw KernelError("training_mode is not supported; export the model in eval mode") }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "X").float("X")
        let scale = try inputs.required(1, "scale").float("scale"), bias = try inputs.required(2, "B").float("B")
        let mean = try inputs.required(3, "input_mean").float("input_mean"), variance = try inputs.required(4, "input_var").float("input_var")
        guard x.rank >= 2 else { throw KernelError("input must have a channel axis, got \(x.shape)") }
        let channels = x.shape[1]
        guard [scale, bias, mean, variance].allSatisfy({ $0.count == channels }) else {
            throw KernelError("scale, bias, mean and var must each hold \(channels) values")
        }
        let inner = Array(x.shape.dropFirst(2)).elementCount
        return [
            .float(
                Tensor(shape: x.shape) { out in
                    x.storage.withUnsafeBufferPointer { p in
                        for n in 0..<x.shape[0] {
                            for c in 0..<channels {
                                let a = scale.storage[c] / sqrtf(variance.storage[c] + epsilon)
                                let b = bias.storage[c] - mean.storage[c] * a
                                let base = (n * channels + c) * inner
                                for i in 0..<inner { out[base + i] = p[base + i] * a + b }
                            }
                        }
                    }
                })
        ]
    }
}
