/// numpy's (and numba's) integer draws and shuffles on top of the raw generator.
extension MT19937 {
    /// A uniform integer in `0...max`: numpy's `random_interval`, masked rejection sampling.
    ///
    /// numba's `np.random.randint(0, max + 1)` draws the same way (the low bits of one
    /// 32-bit output, retried while above `max`), and neither draws at all when `max` is 0.
    public mutating func interval(_ max: Int) -> Int {
        precondition(max >= 0 && max <= Int(UInt32.max), "interval bound out of range")
        if max == 0 { return 0 }
        var mask = UInt32(max)
        mask |= mask >> 1
        mask |= mask >> 2
        mask |= mask >> 4
        mask |= mask >> 8
        mask |= mask >> 16
        while true {
            let v = next() & mask
            if v <= UInt32(max) { return Int(v) }
        }
    }

    /// Shuffles in place as numpy's `RandomState.shuffle` and numba's `np.random.shuffle` do:
    /// Fisher–Yates from the last element down, swapping `i` with `interval(i)`.
    public mutating func shuffle<T>(_ values: inout [T]) {
        var i = values.count - 1
        while i > 0 {
            let j = interval(i)
            values.swapAt(i, j)
            i -= 1
        }
    }

    /// `np.random.permutation(n)`: `0..<n` shuffled (empty, and no draw, for `n <= 0`).
    public mutating func permutation(_ n: Int) -> [Int] {
        guard n > 0 else { return [] }
        var p = Array(0..<n)
        shuffle(&p)
        return p
    }
}
