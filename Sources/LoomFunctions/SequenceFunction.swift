import LoomONNX
import LoomTensor

/// A function tangermeme applies to a model over a batch: predict, marginalize, ...
public protocol SequenceFunction: Sendable {
    /// Applies the function to one batch and returns its nested outputs, batch axis first.
    func apply(model: ONNXModel, batch: Batch) throws -> OutputTree
    /// One-line notes for the job's log when the job loads (how deep-lift-shap chose its rules, say).
    var loadNotes: [String] { get }
}

extension SequenceFunction {
    public var loadNotes: [String] { [] }
}

/// tangermeme's `predict`: the model's outputs for the batch.
public struct Predict: SequenceFunction {
    public init() {}

    public func apply(model: ONNXModel, batch: Batch) throws -> OutputTree {
        let outputs = try model.run(shared: batch.x, rows: batch.xRows, others: batch.args)
        return outputs.count == 1 ? .leaf(outputs[0]) : .list(outputs.map { .leaf($0) })
    }

    /// The single output of a one-output model for the batch.
    static func single(model: ONNXModel, batch: Batch) throws -> Tensor<Float> {
        try model.run(shared: batch.x, rows: batch.xRows, others: batch.args)[0]
    }
}
