import Testing

@testable import LoomONNX

@Suite("reverse-pass coverage")
struct ReverseCoverageTests {
    /// The attributes some builders require; the rest build from defaults.
    static let requiredAttributes: [String: [String: ONNXProto.AttributeValue]] = [
        "Cast": ["to": .int(1)], "MaxPool": ["kernel_shape": .ints([2])], "Concat": ["axis": .int(0)],
        "AveragePool": ["kernel_shape": .ints([2])], "Split": ["axis": .int(1)],
        "LSTM": ["hidden_size": .int(2)], "GRU": ["hidden_size": .int(2)], "Einsum": ["equation": .string("bi,ij->bj")]
    ]

    /// One kernel of every registered operator, built at opset 17.
    static func everyKernel() throws -> [(String, any Kernel)] {
        try OpRegistry.builders.sorted(by: { $0.key < $1.key }).map { op, build in
            (op, try build(Attributes(values: requiredAttributes[op] ?? [:], opset: 17), 17))
        }
    }

    @Test("every operator the engine runs forward has a reverse rule")
    func everyOperator() throws {
        #expect(OpRegistry.builders.count >= 34)
        for (op, kernel) in try Self.everyKernel() {
            #expect(kernel is any ReversibleKernel, "\(op) has no reverse rule")
        }
    }
}
