/// The operators Loom runs, and how each is built from a node.
public enum OpRegistry {
    /// Every supported operator type of the default ONNX domain.
    public static let supported: Set<String> = Set(builders.keys).union(["Constant"])

    /// Whether Loom can run this operator.
    public static func isSupported(opType: String, domain: String) -> Bool {
        (domain.isEmpty || domain == "ai.onnx") && supported.contains(opType)
    }

    // Constant is not a kernel: the loader decodes its tensor once and stores it as a constant value.
    typealias Builder = @Sendable (Attributes, Int) throws -> any Kernel

    static let builders: [String: Builder] =
        core
        .merging(
            Dictionary(
                uniqueKeysWithValues: ActivationKernel.operators.map { op in
                    (op, { a, _ in try ActivationKernel(op, attributes: a) } as Builder)
                })
        ) { a, _ in a }
        .merging(
            Dictionary(
                uniqueKeysWithValues: CompareKernel.Op.allCases.map { op in
                    (op.rawValue, { _, _ in CompareKernel(op: op) } as Builder)
                })
        ) { a, _ in a }
        .merging(
            Dictionary(
                uniqueKeysWithValues: LogicKernel.Op.allCases.map { op in
                    (op.rawValue, { _, _ in LogicKernel(op: op) } as Builder)
                })
        ) { a, _ in a }

    static let core: [String: Builder] = [
        // Arithmetic with numpy broadcasting.
        "Add": { _, _ in BinaryKernel(op: .add) },
        "Sub": { _, _ in BinaryKernel(op: .sub) },
        "Mul": { _, _ in BinaryKernel(op: .mul) },
        "Div": { _, _ in BinaryKernel(op: .div) },
        "Pow": { _, _ in BinaryKernel(op: .pow) },
        // Element-wise functions.
        "Relu": { _, _ in UnaryKernel(op: .relu) },
        "Sigmoid": { _, _ in UnaryKernel(op: .sigmoid) },
        "Tanh": { _, _ in UnaryKernel(op: .tanh) },
        "Exp": { _, _ in UnaryKernel(op: .exp) },
        "Log": { _, _ in UnaryKernel(op: .log) },
        "Neg": { _, _ in UnaryKernel(op: .neg) },
        "Abs": { _, _ in UnaryKernel(op: .abs) },
        "Sqrt": { _, _ in UnaryKernel(op: .sqrt) },
        "Softplus": { _, _ in UnaryKernel(op: .softplus) },
        "Identity": { _, _ in IdentityKernel() },
        "Dropout": { _, _ in IdentityKernel() },
        "Softmax": { a, opset in try SoftmaxKernel(attributes: a, opset: opset) },
        // Linear algebra (BLAS).
        "Gemm": { a, _ in try GemmKernel(attributes: a) },
        "MatMul": { _, _ in MatMulKernel() },
        "Einsum": { a, _ in try EinsumKernel(attributes: a) },
        "Conv": { a, _ in try ConvKernel.build(attributes: a) },
        "ConvTranspose": { a, _ in try ConvTransposeKernel(attributes: a) },
        "MaxPool": { a, _ in try MaxPoolKernel(attributes: a) },
        "BatchNormalization": { a, _ in try BatchNormKernel(attributes: a) },
        // Reductions.
        "ReduceMean": { a, opset in try ReduceKernel(attributes: a, opset: opset, mean: true) },
        "ReduceSum": { a, opset in try ReduceKernel(attributes: a, opset: opset, mean: false) },
        // Shapes and indexing.
        "Reshape": { a, _ in try ReshapeKernel(attributes: a) },
        "Flatten": { a, _ in try FlattenKernel(attributes: a) },
        "Shape": { a, _ in try ShapeKernel(attributes: a) },
        "Gather": { a, _ in try GatherKernel(attributes: a) },
        "Unsqueeze": { a, opset in try UnsqueezeKernel(attributes: a, opset: opset) },
        "Squeeze": { a, opset in try SqueezeKernel(attributes: a, opset: opset) },
        "Concat": { a, _ in try ConcatKernel(attributes: a) },
        "Slice": { _, _ in SliceKernel() },
        "Transpose": { a, _ in try TransposeKernel(attributes: a) },
        "Cast": { a, _ in try CastKernel(attributes: a) },
        // Selection and masks (SelectionKernels.swift).
        "Where": { _, _ in WhereKernel() },
        "Max": { _, _ in ExtremumKernel(isMax: true) },
        "Min": { _, _ in ExtremumKernel(isMax: false) },
        "PRelu": { _, _ in PReluKernel() },
        "Mod": { a, _ in try ModKernel(attributes: a) },
        // Moving elements (IndexingKernels.swift).
        "Pad": { a, _ in try PadKernel(attributes: a) },
        "Expand": { _, _ in ExpandKernel() },
        "Tile": { _, _ in TileKernel() },
        "Split": { a, _ in try SplitKernel(attributes: a) },
        "ConstantOfShape": { a, _ in try ConstantOfShapeKernel(attributes: a) },
        // Normalization and pooling beyond the above (LayerNormKernel.swift, AveragePoolKernel.swift).
        "LayerNormalization": { a, _ in try LayerNormKernel(attributes: a) },
        "AveragePool": { a, _ in try AveragePoolKernel(attributes: a) },
        // Recurrent layers (RecurrentKernels.swift).
        "LSTM": { a, _ in try RecurrentKernel(.lstm, attributes: a) },
        "GRU": { a, _ in try RecurrentKernel(.gru, attributes: a) }
    ]
}
