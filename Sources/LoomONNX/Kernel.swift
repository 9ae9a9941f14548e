import LoomTensor

/// One operator, configured from its node's attributes, ready to run.
///
/// Kernels are built once at load time (where attribute errors surface) and are
/// stateless afterwards, so one model can run on several threads.
protocol Kernel: Sendable {
    /// Computes the node's outputs from its inputs; an absent optional input is nil.
    func run(_ inputs: [Value?]) throws -> [Value]

    /// The same, allowed to take the inputs' storage: the interpreter hands over values
    /// it will not read again, so an element-wise kernel can write its result in place.
    func run(consuming inputs: inout [Value?]) throws -> [Value]

    // The kernel's features, without a dynamic cast. `kernel as? any P` makes the Swift runtime
    // scan every conformance record of the binary (6,000) once per kernel type and protocol:
    // milliseconds of every process's start. Each defaults to nil, and the feature protocol's own
    // extension returns the kernel itself (`KernelFeatureTests` checks the two agree).

    /// The kernel's reverse rule (``ReversibleKernel``), if it has one.
    var reversible: (any ReversibleKernel)? { get }
    /// The kernel's row-wise behaviour (``RowWiseKernel``), if it acts row by row.
    var rowWise: (any RowWiseKernel)? { get }
    /// The kernel's cost (``CostedKernel``), if it is more than its output's size.
    var costed: (any CostedKernel)? { get }
}

extension Kernel {
    func run(consuming inputs: inout [Value?]) throws -> [Value] { try run(inputs) }
    var reversible: (any ReversibleKernel)? { nil }
    var rowWise: (any RowWiseKernel)? { nil }
    var costed: (any CostedKernel)? { nil }
}

extension Array where Element == Value? {
    /// The input at `index`, or an error if it is missing.
    func required(_ index: Int, _ name: String) throws -> Value {
        guard index < count, let v = self[index] else { throw KernelError("input \(index) (\(name)) is missing") }
        return v
    }

    /// The input at `index` if present.
    func optional(_ index: Int) -> Value? { index < count ? self[index] : nil }
}

/// Normalizes a possibly negative axis against a rank.
func normalizeAxis(_ axis: Int, rank: Int) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < rank else { throw KernelError("axis \(axis) is out of range for rank \(rank)") }
    return a
}
