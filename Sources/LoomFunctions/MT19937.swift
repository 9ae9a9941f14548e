/// The Mersenne Twister MT19937, seeded as numpy's legacy `RandomState(seed)` and numba's `np.random.seed(seed)` seed it.
///
/// tangermeme draws its shuffles from this generator: `ersatz.shuffle` through a numpy
/// `RandomState`, `dinucleotide_shuffle` through numba's copy of it. Both seed an integer
/// with Matsumoto and Nishimura's `init_genrand`, so one implementation gives both streams.
public struct MT19937: Sendable {
    private var state: [UInt32]
    private var index: Int

    /// A generator seeded with a 32-bit seed (larger seeds wrap, as numba's int32 seeds do).
    public init(seed: UInt32) {
        var s = [UInt32](repeating: 0, count: 624)
        s[0] = seed
        for i in 1..<624 {
            s[i] = 1_812_433_253 &* (s[i - 1] ^ (s[i - 1] >> 30)) &+ UInt32(i)
        }
        state = s
        index = 624
    }

    /// A generator seeded from an integer seed the way tangermeme passes it (wrapped to 32 bits).
    public init(seed: Int) {
        self.init(seed: UInt32(truncatingIfNeeded: seed))
    }

    /// The next 32-bit output.
    public mutating func next() -> UInt32 {
        if index >= 624 { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    private mutating func twist() {
        state.withUnsafeMutableBufferPointer { s in
            for i in 0..<624 {
                let y = (s[i] & 0x8000_0000) | (s[(i + 1) % 624] & 0x7FFF_FFFF)
                var v = s[(i + 397) % 624] ^ (y >> 1)
                if y & 1 != 0 { v ^= 0x9908_B0DF }
                s[i] = v
            }
        }
        index = 0
    }
}
