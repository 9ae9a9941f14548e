import CLoomVector
import LoomTensor

/// 1-D average pooling over (N, C, L) (`nn.AvgPool1d`), with kernel, stride, padding, ceil mode
/// and `count_include_pad`, dividing as torch does: a window's divisor counts the padding it
/// covers when `count_include_pad` is 1, but never positions past the padding (ceil mode).
/// Forward, reverse (linear), row sharing here.
struct AveragePoolKernel: Kernel {
    let geometry: PoolWindow
    let countIncludePad: Bool

    init(attributes: Attributes) throws {
        geometry = try PoolWindow(attributes: attributes, op: "average pooling")
        countIncludePad = try attributes.int("count_include_pad", default: 0) != 0
        guard geometry.dilation == 1 else { throw KernelError("dilations are not supported for AveragePool") }
    }

    func outputLength(_ length: Int) -> Int { geometry.outputLength(length) }

    /// Window `j`'s input range (clipped to the input) and its divisor.
    func window(_ j: Int, length: Int) -> (Range<Int>, Float) {
        let start = j * geometry.stride - geometry.padLeft
        let end = min(start + geometry.kernel, length + geometry.padRight)
        let clipped = max(start, 0)..<max(min(end, length), max(start, 0))
        return (clipped, Float(countIncludePad ? end - start : clipped.count))
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "X").float("X")
        guard x.rank == 3 else { throw KernelError("only 1-D average pooling over (N, C, L) is supported, got \(x.shape)") }
        let rows = x.shape[0] * x.shape[1], length = x.shape[2]
        let outLength = outputLength(length)
        guard outLength > 0 else { throw KernelError("input length \(length) is shorter than the pooling window") }
        // Windows wholly inside the row in C, eight at a time (CLoomVector); the edges here.
        let inside = geometry.inside(length: length, outLength: outLength)
        let edges = (Array(0..<inside.lowerBound) + Array(inside.upperBound..<outLength)).map { ($0, window($0, length: length)) }
        return [
            .float(
                Tensor(shape: [x.shape[0], x.shape[1], outLength]) { out in
                    x.storage.withUnsafeBufferPointer { p in
                        loom_avgpool1d_inside(
                            p.baseAddress!, out.baseAddress!, rows, length, outLength, geometry.kernel, geometry.stride, geometry.padLeft,
                            inside.lowerBound, inside.upperBound)
                        for r in 0..<rows {
                            let src = p.baseAddress! + r * length
                            for (j, (range, divisor)) in edges {
                                var s: Float = 0
                                for i in range { s += src[i] }
                                out[r * outLength + j] = range.isEmpty ? 0 : s / divisor
                            }
                        }
                    }
                })
        ]
    }
}

extension AveragePoolKernel: ReversibleKernel {
    /// Linear: each window's gradient, divided by its divisor, to every position it covers.
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil] }
        let x = try step.input(0), g = try step.grad()
        let rows = x.shape[0] * x.shape[1], length = x.shape[2], outLength = g.shape[2]
        let windows = (0..<outLength).map { window($0, length: length) }
        guard g.count == rows * outLength else { throw KernelError("reverse: gradient shape \(g.shape) does not match \(x.shape)") }
        var out = [Float](repeating: 0, count: x.count)
        out.withUnsafeMutableBufferPointer { o in
            g.storage.withUnsafeBufferPointer { pg in
                for r in 0..<rows {
                    let dst = o.baseAddress! + r * length, src = pg.baseAddress! + r * outLength
                    for (j, (range, divisor)) in windows.enumerated() {
                        let share = src[j] / divisor
                        for i in range { dst[i] += share }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, storage: out)]
    }
}

extension AveragePoolKernel: PlainRowWiseKernel {}
