import LoomTensor

/// What one example costs in a forward pass, for sizing units of work.
public struct CostEstimate: Sendable, Equatable {
    /// Multiply-adds of Conv, Gemm and MatMul, plus one operation per element every other step produces.
    public var operations: Double
    /// Elements of the graph's outputs.
    public var outputElements: Double

    public init(operations: Double, outputElements: Double) {
        self.operations = operations
        self.outputElements = outputElements
    }
}

extension ONNXModel {
    /// An estimate of one example's work in a forward pass: the multiply-adds of Conv, Gemm and
    /// MatMul, plus one operation per element every other step produces.
    ///
    /// Measured by running the graph once on `feeds`, one row each, so it depends only on the
    /// model and the input shapes. It is meant for sizing units of work, not for timing: a
    /// multiply-add inside sgemm and an element of a Relu are counted alike.
    public func operationsPerExample(feeds: [Tensor<Float>]) throws -> Double {
        try costPerExample(feeds: feeds).operations
    }

    /// One example's work and output size in a forward pass (see ``operationsPerExample(feeds:)``).
    public func costPerExample(feeds: [Tensor<Float>]) throws -> CostEstimate {
        let env = try forwardKeepingValues(feeds)
        var total = 0.0
        for step in steps {
            let produced = step.outputs.reduce(0.0) { $0 + Double(env[$1]?.shape.elementCount ?? 0) }
            let inputs = step.inputs.map { $0.flatMap { env[$0] } }
            total += produced
            if let costed = step.kernel.costed {
                total += costed.multiplyAdds(inputs: inputs, outputs: step.outputs.compactMap { env[$0] })
            }
        }
        let rows = Double(max(1, feeds.first?.shape.first ?? 1))
        let outputs = outputSlots.reduce(0.0) { $0 + Double(env[$1]?.shape.elementCount ?? 0) }
        return CostEstimate(operations: total / rows, outputElements: outputs / rows)
    }
}
