import Foundation
import LoomFunctions
import LoomTestSupport
import Testing

@Suite("tangermeme's random streams")
struct RandomStreamTests {
    @Test("MT19937 seeded with 0 gives numpy's first outputs")
    func rawOutputs() {
        var rng = MT19937(seed: 0)
        #expect([rng.next(), rng.next(), rng.next()] == [2_357_136_044, 2_546_248_239, 3_071_714_933])
        var other = MT19937(seed: 5489)
        #expect(other.next() == 3_499_211_612) // the reference implementation's default seed
    }

    @Test("numpy's RandomState(0) shuffles of 10 positions, one after the other")
    func numpyShuffle() {
        var rng = MT19937(seed: 0)
        var a = Array(0..<10)
        rng.shuffle(&a)
        #expect(a == [2, 8, 4, 9, 1, 6, 7, 3, 0, 5])
        var b = Array(0..<10)
        rng.shuffle(&b)
        #expect(b == [3, 5, 1, 2, 9, 8, 0, 6, 7, 4])
    }

    @Test("draws in 0...0 take nothing from the stream; permutations of 0 and 1 are trivial")
    func degenerateDraws() {
        var a = MT19937(seed: 42), b = MT19937(seed: 42)
        #expect(a.interval(0) == 0)
        #expect(a.permutation(1) == [0] && a.permutation(0).isEmpty && a.permutation(-1).isEmpty)
        #expect(a.next() == b.next())
    }

    @Test("intervals stay in range over many draws")
    func intervalRange() {
        var rng = MT19937(seed: 1)
        for max in [1, 2, 3, 7, 100, 1000, 65_537] {
            for _ in 0..<200 { #expect((0...max).contains(rng.interval(max))) }
        }
    }

    struct ShuffleFixture: Decodable {
        struct Case: Decodable { var sequence: [Int32]; var seed: Int; var shuffles: [[Int32]] }
        var cases: [Case]
    }

    @Test("dinucleotide shuffles equal tangermeme 1.6's, including unknown bases")
    func dinucleotide() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Repository.fixture("rng/dinucleotide_shuffles.json")))
        let fixture = try JSONDecoder().decode(ShuffleFixture.self, from: data)
        #expect(fixture.cases.count == 5)
        for c in fixture.cases {
            let got = DinucleotideShuffle.shuffles(of: c.sequence, alphabetSize: 4, count: c.shuffles.count, seed: c.seed)
            #expect(got == c.shuffles, "seed \(c.seed), length \(c.sequence.count)")
        }
    }

    @Test("a dinucleotide shuffle keeps the ends and every dinucleotide count")
    func dinucleotideInvariants() {
        var rng = MT19937(seed: 9)
        let codes = (0..<500).map { _ in Int32(rng.interval(3)) }
        func pairs(_ s: [Int32]) -> [Int: Int] {
            var d: [Int: Int] = [:]
            for i in 0..<(s.count - 1) { d[Int(s[i]) * 8 + Int(s[i + 1]), default: 0] += 1 }
            return d
        }
        for s in DinucleotideShuffle.shuffles(of: codes, alphabetSize: 4, count: 4, seed: 11) {
            #expect(s.first == codes.first && s.last == codes.last)
            #expect(pairs(s) == pairs(codes))
            #expect(s != codes)
        }
    }
}
