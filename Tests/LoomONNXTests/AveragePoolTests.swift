import CLoomVector
import LoomTensor
import Testing

@testable import LoomONNX

/// AveragePool runs the windows inside a row in C (both builds) and the edge windows in Swift;
/// every window must equal its definition: the sum of its taps from 0 in order, over its divisor.
@Suite("AveragePool's windows")
struct AveragePoolTests {
    @Test("every window equals its sum over its divisor, in both C builds")
    func geometries() throws {
        let (rows, length) = (3, 37)
        let values = (0..<(rows * length)).map { Float(($0 * 67) % (rows * length)) * 0.37 - 20 }
        let x = Tensor<Float>(shape: [1, rows, length], storage: values)
        defer { _ = loom_vector_use(1) }
        var checked = 0
        for kernel in [1, 2, 3, 4, 5, 8] {
            for stride in [1, 2, 3, 4, 8] {
                for pad in [0, 1, 2] where pad <= kernel / 2 {
                    for ceil: Int64 in [0, 1] {
                        for include: Int64 in [0, 1] {
                            let pool = try AveragePoolKernel(
                                attributes: Attributes(
                                    values: [
                                        "kernel_shape": .ints([Int64(kernel)]), "strides": .ints([Int64(stride)]),
                                        "pads": .ints([Int64(pad), Int64(pad)]), "ceil_mode": .int(ceil), "count_include_pad": .int(include)
                                    ], opset: 17))
                            let outLength = pool.outputLength(length)
                            var expected = [Float]()
                            for r in 0..<rows {
                                for j in 0..<outLength {
                                    let (range, divisor) = pool.window(j, length: length)
                                    var s: Float = 0
                                    for i in range { s += values[r * length + i] }
                                    expected.append(range.isEmpty ? 0 : s / divisor)
                                }
                            }
                            for level: Int32 in [0, 1] where loom_vector_use(level) == level {
                                guard case .float(let y) = try pool.run([.float(x)])[0] else { throw KernelError("not a float output") }
                                #expect(y.shape == [1, rows, outLength])
                                #expect(
                                    y.storage.map(\.bitPattern) == expected.map(\.bitPattern),
                                    "kernel \(kernel), stride \(stride), pad \(pad), ceil \(ceil), include \(include), build \(level)")
                                checked += 1
                            }
                        }
                    }
                }
            }
        }
        #expect(checked > 200)
    }
}
