@testable import LoomONNX
import Testing

@Suite("reverse-pass coverage")
struct ReverseCoverageTests {
    @Test("every operator the engine runs forward has a reverse rule")
    func everyOperator() throws {
        // The attributes some builders require; the rest build from defaults.
        let required: [String: [String: ONNXProto.AttributeValue]] = [
            "Cast": ["to": .int(1)], "MaxPool": ["kernel_shape": .ints([2])], "Concat": ["axis": .int(0)],
        ]
        #expect(OpRegistry.builders.count >= 34)
        for (op, build) in OpRegistry.builders.sorted(by: { $0.key < $1.key }) {
            let kernel = try build(Attributes(values: required[op] ?? [:], opset: 17), 17)
            #expect(kernel is any ReversibleKernel, "\(op) has no reverse rule")
        }
    }
}
