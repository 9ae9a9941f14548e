import LoomONNX
import LoomTensor

/// tangermeme's `deep_lift_shap` (placeholder while the reverse pass is built).
public struct DeepLiftShap: SequenceFunction {
    public func apply(model: ONNXModel, batch: Batch) throws -> OutputTree {
        throw FunctionError.invalidOption("--func", "deep-lift-shap is not available")
    }
}
