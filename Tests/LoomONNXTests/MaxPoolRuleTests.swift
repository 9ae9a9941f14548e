import LoomTensor
import Testing

@testable import LoomONNX

/// MaxPool's DeepLIFT rule has two forms: position by position (any windows) and window by window
/// (disjoint windows, every `nn.MaxPool1d(k)`). They must agree bit for bit, signed zeros included.
@Suite("MaxPool's rule, window by window")
struct MaxPoolRuleTests {
    @Test(
        "the window-by-window rule gives the position-by-position bits",
        arguments: [(3, 3, 1, 0), (4, 4, 1, 0), (2, 3, 1, 0), (2, 4, 2, 0), (3, 3, 1, 1), (1, 1, 1, 0)])
    func sameBits(kernel: Int, stride: Int, dilation: Int, pad: Int) throws {
        let pool = try MaxPoolKernel(
            attributes: Attributes(
                values: [
                    "kernel_shape": .ints([Int64(kernel)]), "strides": .ints([Int64(stride)]), "dilations": .ints([Int64(dilation)]),
                    "pads": .ints([Int64(pad), Int64(pad)])
                ], opset: 17))
        #expect(pool.disjointWindows)
        // Pairs of rows, few distinct values: ties inside windows, winners shared by example and
        // reference, Δin = 0 at many positions, negative and positive differences.
        let (pairs, channels, length) = (3, 2, 29)
        var state: UInt64 = 12345
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33)
        }
        var values = (0..<(2 * pairs * channels * length)).map { _ in Float(next() % 5) - 2 }
        // Infinities and NaNs: Δin = ±∞ (a signed zero) and NaN (NaN) where nothing wins.
        for (k, v) in [(5, Float.infinity), (40, -.infinity), (70, .nan), (5 + values.count / 2, .infinity), (99, .nan)] { values[k] = v }
        let x = Tensor<Float>(shape: [2 * pairs, channels, length], storage: values)
        guard case .float(let y) = try pool.run([.float(x)])[0] else { throw KernelError("not a float output") }
        let g = Tensor<Float>(shape: y.shape, storage: (0..<y.count).map { _ in Float(next() % 7) - 3 })
        let windows = try pool.disjointRule(x, y, g)
        let positions = try pool.positionRule(x, y, g, useRule: true)
        #expect(windows.shape == positions.shape)
        #expect(windows.storage.map(\.bitPattern) == positions.storage.map(\.bitPattern))
        #expect(positions.storage.contains { $0 != 0 })
    }

    @Test("overlapping windows are not disjoint")
    func overlapping() throws {
        let pool = try MaxPoolKernel(attributes: Attributes(values: ["kernel_shape": .ints([3]), "strides": .ints([2])], opset: 17))
        #expect(!pool.disjointWindows)
    }
}
