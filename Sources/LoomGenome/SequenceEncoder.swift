/// Bytes of a FASTA file to symbol codes, as tangermeme encodes them.
///
/// A code is the symbol's index in the alphabet, ``unknown`` (255, an all-zero column) for a
/// character of `ignore`, and ``invalid`` for anything else. Lowercase ASCII letters take the
/// code of their uppercase form: tangermeme upper-cases a FASTA's bases before encoding, so a
/// soft-masked base is the base. This is the one-byte-per-position form X rows travel in.
public struct SequenceEncoder: Sendable {
    /// The code of an ignored character: no symbol set.
    public static let unknown: UInt8 = 255
    /// The code of a character that is neither in the alphabet nor ignored.
    public static let invalid: UInt8 = 254
    /// The code of a `\r` (a Windows line end), skipped.
    static let skip: UInt8 = 253

    /// The code of every byte.
    public let table: [UInt8]

    /// - Parameters:
    ///   - alphabet: the symbols, in the order of X's one-hot axis (ASCII, at most 250).
    ///   - ignore: the characters encoded as all zeros (tangermeme's default: N).
    public init(alphabet: [UInt8], ignore: [UInt8]) {
        var t = [UInt8](repeating: Self.invalid, count: 256)
        func set(_ c: UInt8, _ code: UInt8) {
            t[Int(c)] = code
            if c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") { t[Int(c) + 32] = code }
        }
        for c in ignore { set(c, Self.unknown) }
        for (i, c) in alphabet.enumerated() { set(c, UInt8(i)) }
        t[0x0d] = Self.skip
        table = t
    }
}
