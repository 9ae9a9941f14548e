/// tangermeme's dinucleotide shuffle of one sequence, draw for draw.
///
/// The walk is an Eulerian path over the sequence's transitions that keeps the first
/// and last characters: for each character, the list of positions that follow it is
/// permuted (all but its last entry) with numba's generator seeded by `seed`, then
/// the walk follows those lists. Unknown bases (all-zero columns) are a character of
/// their own, index `alphabetSize`, as in tangermeme 1.6.
public enum DinucleotideShuffle {
    /// `count` shuffles of a sequence given as character indices in `0...alphabetSize`.
    public static func shuffles(of codes: [Int32], alphabetSize: Int, count: Int, seed: Int) -> [[Int32]] {
        let length = codes.count
        guard length > 0 else { return [[Int32]](repeating: [], count: count) }
        var rng = MT19937(seed: seed)
        let chars = alphabetSize + 1
        // next[c] lists the positions that follow an occurrence of character c.
        var next = [[Int]](repeating: [], count: chars)
        for j in 0..<(length - 1) { next[Int(codes[j])].append(j + 1) }
        var out: [[Int32]] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            for c in 0..<chars {
                let n = next[c].count
                // tangermeme: order = arange(n); order[:-1] = permutation(n - 1); next = next[order].
                let head = rng.permutation(n - 1)
                if n > 1 {
                    let old = next[c]
                    for (k, p) in head.enumerated() { next[c][k] = old[p] }
                }
            }
            var counters = [Int](repeating: 0, count: chars)
            var shuffled = [Int32](repeating: 0, count: length)
            var idx = 0
            shuffled[0] = codes[0]
            for j in 1..<length {
                let c = Int(codes[idx])
                idx = next[c][counters[c]]
                counters[c] += 1
                shuffled[j] = codes[idx]
            }
            out.append(shuffled)
        }
        return out
    }

    /// The character index of each column of a one-hot sequence (A, L); an all-zero column is `A`.
    public static func codes(of sequence: UnsafeBufferPointer<Float>, alphabetSize a: Int, length l: Int) -> [Int32] {
        var codes = [Int32](repeating: Int32(a), count: l)
        for pos in 0..<l {
            // tangermeme takes the max along the alphabet; the first maximal one wins.
            var best: Float = 0
            for c in 0..<a where sequence[c * l + pos] > best {
                best = sequence[c * l + pos]
                codes[pos] = Int32(c)
            }
        }
        return codes
    }
}
