/// The symbols of the one-hot axis, in order: index k of the axis is `symbols[k]`.
public struct Alphabet: Sendable, Equatable, CustomStringConvertible {
    /// The symbols; DNA is A, C, G, T.
    public let symbols: [Character]

    /// DNA: A, C, G, T.
    public static let dna = Alphabet(unchecked: Array("ACGT"))

    private init(unchecked symbols: [Character]) { self.symbols = symbols }

    /// Parses an alphabet written as a string ("ACGT") or comma-separated ("A,C,G,T").
    public init(parsing text: String) throws {
        let parts = text.contains(",") ? text.split(separator: ",").map { $0.trimmingWhitespace } : text.map { String($0) }
        guard !parts.isEmpty, parts.allSatisfy({ $0.count == 1 }) else {
            throw FunctionError.invalidOption("--alphabet", "'\(text)' must be single characters, e.g. ACGT")
        }
        let symbols = parts.map { Character($0) }
        guard Set(symbols).count == symbols.count else { throw FunctionError.invalidOption("--alphabet", "'\(text)' repeats a symbol") }
        guard !symbols.contains("N") else { throw FunctionError.invalidOption("--alphabet", "'N' is reserved for 'keep the original base'") }
        self.symbols = symbols
    }

    /// The number of symbols.
    public var count: Int { symbols.count }

    public var description: String { String(symbols) }
}

extension Substring {
    var trimmingWhitespace: String {
        String(drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }
}
