// Row sharing and cost for Conv (see Kernel+Rows.swift).

extension ConvKernel: PlainRowWiseKernel, CostedKernel {
    /// Each output element sums over the weight's (C_in / group) × kernel taps.
    func multiplyAdds(inputs: [Value?], outputs: [Value]) -> Double {
        guard inputs.count > 1, let w = inputs[1], w.shape.count >= 2 else { return 0 }
        let produced = outputs.reduce(0.0) { $0 + Double($1.shape.elementCount) }
        return produced * Double(Array(w.shape.dropFirst()).elementCount)
    }
}
