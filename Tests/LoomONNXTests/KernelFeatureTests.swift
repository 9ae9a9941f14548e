import Testing

@testable import LoomONNX

/// Every operator chooses its row-sharing behaviour and its cost model: a kernel that relies on
/// a conservative default (never shared; one operation per output element) is listed here, so
/// that a new kernel fails this test until its author decides.
@Suite("kernel features: each operator chooses")
struct KernelFeatureTests {
    /// Never run on shared rows: they mix rows, or only make shape metadata.
    static let notRowWise: Set<String> = ["Shape", "LSTM", "GRU", "ConstantOfShape"]

    /// Cost one operation per output element.
    static let costFromOutputSize: Set<String> = [
        "Abs", "Add", "BatchNormalization", "Cast", "Concat", "Div", "Dropout", "Exp", "Flatten", "Gather", "Identity", "Log",
        "MaxPool", "Mul", "Neg", "Pow", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Shape", "Sigmoid", "Slice", "Softmax",
        "Softplus", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
        // ActivationKernel
        "Celu", "Clip", "Elu", "Erf", "Gelu", "HardSigmoid", "HardSwish", "LeakyRelu", "Mish", "Reciprocal", "Selu", "Softsign",
        // SelectionKernels
        "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And", "Not", "Or", "Xor", "Where", "Max", "Min", "PRelu", "Mod",
        // IndexingKernels, LayerNormKernel, AveragePoolKernel
        "Pad", "Expand", "Tile", "Split", "LayerNormalization", "AveragePool", "ConstantOfShape"
    ]

    @Test("every registered kernel is row-wise or listed as not; costed or listed as costing its output size")
    func everyKernelChooses() throws {
        var notRowWise: Set<String> = [], uncosted: Set<String> = []
        for (op, kernel) in try ReverseCoverageTests.everyKernel() {
            if !(kernel is any RowWiseKernel) { notRowWise.insert(op) }
            if !(kernel is any CostedKernel) { uncosted.insert(op) }
        }
        #expect(notRowWise == Self.notRowWise, "row sharing: a kernel must conform to RowWiseKernel or be listed as not row-wise")
        #expect(uncosted == Self.costFromOutputSize, "cost: a kernel must conform to CostedKernel or be listed as costing its output size")
    }

    @Test("each kernel's feature properties agree with its conformances (the engine reads the properties, not casts)")
    func propertiesAgree() throws {
        for (op, kernel) in try ReverseCoverageTests.everyKernel() {
            #expect((kernel.reversible != nil) == (kernel is any ReversibleKernel), "\(op): reversible")
            #expect((kernel.rowWise != nil) == (kernel is any RowWiseKernel), "\(op): rowWise")
            #expect((kernel.costed != nil) == (kernel is any CostedKernel), "\(op): costed")
        }
    }
}
