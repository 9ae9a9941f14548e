/// How examples are formed from X and the extra inputs.
public enum ProductMode: String, Codable, Sendable, CaseIterable {
    /// Example (i, j) is (X[i], a[j], b[j], ...): the args are zipped.
    case pairwise
    /// Example (i, j, k, ...) is (X[i], a[j], b[k], ...): the full cartesian product.
    case product
}

/// Why a job's inputs cannot form an index space.
public struct IndexSpaceError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The examples of a pairwise or product job, numbered X-major with the last arg varying fastest.
///
/// Example number `e` is both the enumeration order of tangermeme's loops and the
/// row of the result tensor, so shards of consecutive numbers land in consecutive rows.
public struct IndexSpace: Codable, Sendable, Equatable {
    /// Pairwise or product.
    public let mode: ProductMode
    /// The number of sequences, n.
    public let sequences: Int
    /// The length of each extra input.
    public let argLengths: [Int]
    /// The leading axes of every result tensor: (n, m) or (n, m_a, m_b, ...).
    public let axes: [Int]
    /// The number of examples: the product of ``axes``.
    public let count: Int

    /// Validates the lengths and builds the space.
    ///
    /// `argNames` name the inputs in messages (file names, say).
    public init(mode: ProductMode, sequences: Int, argLengths: [Int], argNames: [String]? = nil) throws {
        let names = argNames ?? argLengths.indices.map { "arg \($0)" }
        guard sequences > 0 else { throw IndexSpaceError("X is empty: there are no sequences to apply the model to") }
        for (len, name) in zip(argLengths, names) where len == 0 {
            throw IndexSpaceError("\(name) is empty: every extra input needs at least one row")
        }
        switch mode {
        case .pairwise:
            guard let m = argLengths.first else {
                throw IndexSpaceError("pairwise mode needs at least one --arg (the inputs paired with every sequence)")
            }
            guard argLengths.allSatisfy({ $0 == m }) else {
                throw IndexSpaceError(
                    "pairwise mode needs every --arg to have the same length (they are paired row by row); got lengths \(argLengths) for \(names.joined(separator: ", ")); use --mode product for the cartesian product"
                )
            }
            axes = [sequences, m]
        case .product:
            axes = [sequences] + argLengths
        }
        var total = 1
        for d in axes {
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow, p < (1 << 53) else { throw IndexSpaceError("the product \(axes) has too many examples to number") }
            total = p
        }
        self.mode = mode
        self.sequences = sequences
        self.argLengths = argLengths
        self.count = total
    }

    /// The row of X that example `example` uses.
    @inlinable public func sequence(of example: Int) -> Int {
        example / (count / sequences)
    }

    /// The row of X and of each arg that example `example` uses.
    public func coordinates(of example: Int) -> (x: Int, args: [Int]) {
        precondition(example >= 0 && example < count, "example \(example) is outside 0..<\(count)")
        switch mode {
        case .pairwise:
            let m = axes[1]
            let j = example % m
            return (example / m, [Int](repeating: j, count: argLengths.count))
        case .product:
            var rest = example
            var idx = [Int](repeating: 0, count: argLengths.count)
            for a in stride(from: argLengths.count - 1, through: 0, by: -1) {
                idx[a] = rest % argLengths[a]
                rest /= argLengths[a]
            }
            return (rest, idx)
        }
    }
}
