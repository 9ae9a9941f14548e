/// The column permutations of tangermeme's `ersatz.shuffle` over a region: one per shuffle.
///
/// tangermeme draws them from a numpy `RandomState(seed)` made afresh on every call, and
/// uses the k-th permutation for every sequence of the call. Each call of `ablate` inside
/// `apply_product` therefore sees the same permutations, which is what lets a shard's
/// result not depend on where its batch starts.
public struct RegionShuffle: Sendable, Equatable {
    /// Where the region starts.
    public let start: Int
    /// Where the region ends (exclusive).
    public let end: Int
    /// For shuffle k, the region's new column j is old column `permutations[k][j]`.
    public let permutations: [[Int]]

    /// The `count` permutations of `start..<end` drawn with `seed`.
    public init(start: Int, end: Int, count: Int, seed: Int) {
        self.start = start
        self.end = end
        var rng = MT19937(seed: seed)
        var perms: [[Int]] = []
        for _ in 0..<count {
            var p = Array(0..<(end - start))
            rng.shuffle(&p)
            perms.append(p)
        }
        permutations = perms
    }

    /// Validates `start` and `end` as tangermeme does (a negative end counts from past the last position).
    public static func region(start: Int?, end: Int?, length: Int, function: String) throws -> (Int, Int) {
        guard let start else { throw FunctionError.invalidOption("--start", "\(function) needs the region to shuffle: pass --start and --end") }
        guard let given = end else { throw FunctionError.invalidOption("--end", "\(function) needs the region to shuffle: pass --start and --end") }
        let end = given < 0 ? length + 1 + given : given
        // The flag at fault is named: a start before the sequence, or an end past it.
        guard start >= 0 && start <= length else {
            throw FunctionError.invalidOption("--start", "the region \(start)..<\(given) falls off sequences of length \(length)")
        }
        guard end >= 0 && end <= length else {
            throw FunctionError.invalidOption("--end", "the region \(start)..<\(given) falls off sequences of length \(length)")
        }
        guard end > start else { throw FunctionError.invalidOption("--end", "the region's end (\(given)) must come after its start (\(start))") }
        return (start, end)
    }
}
