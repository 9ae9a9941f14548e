/// A problem with a function's options or inputs, found before or while applying it.
public enum FunctionError: Error, CustomStringConvertible, Sendable, Equatable {
    /// An option's value is unusable: the flag, and why.
    case invalidOption(String, String)
    /// The sequences are not one-hot: which sequence, and why.
    case notOneHot(sequence: Int, String)

    public var description: String {
        switch self {
        case .invalidOption(let flag, let why): "\(flag): \(why)"
        case .notOneHot(let i, let why): "X[\(i)] is not one-hot encoded: \(why)"
        }
    }
}
