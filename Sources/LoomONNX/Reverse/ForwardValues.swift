import LoomTensor

/// The forward values of a DeepLIFT pass, by slot, for the reverse pass to read.
///
/// After a shared forward pass (``ONNXModel/forwardKeepingValues(shared:rows:others:)``) some
/// slots hold one row per distinct X row; each is gathered to the batch the first time it is
/// read, once.
final class ForwardValues {
    private var values: [Value?]
    private var distinct: Set<Int>
    private let rows: [Int]
    /// The slots the shared forward pass computed on distinct rows, gathered or not.
    private let sharedSlots: Set<Int>

    /// The values of a plain run.
    init(_ values: [Value?]) {
        self.values = values
        self.distinct = []
        self.rows = []
        self.sharedSlots = []
    }

    /// Values of which `distinctSlots` hold distinct rows, to be gathered by `rows`.
    init(_ values: [Value?], distinctSlots: Set<Int>, rows: [Int]) {
        self.values = values
        self.distinct = distinctSlots
        self.rows = rows
        self.sharedSlots = distinctSlots
    }

    subscript(slot: Int) -> Value? {
        get {
            if distinct.remove(slot) != nil, let v = values[slot] { values[slot] = v.gatherRows(rows) }
            return values[slot]
        }
        set {
            distinct.remove(slot)
            values[slot] = newValue
        }
    }

    /// The first `n` rows of slot `slot`'s batch, without gathering the rest.
    func firstRows(_ slot: Int, _ n: Int) throws -> Value? {
        guard let v = values[slot] else { return nil }
        guard distinct.contains(slot) else { return try v.firstRows(n) }
        guard n <= rows.count else { throw NotRowWise() }
        return v.gatherRows(Array(rows[0..<n]))
    }

    /// Whether slot `slot` holds float32 values.
    func isFloat(_ slot: Int) -> Bool {
        if case .float? = values[slot] { return true }
        return false
    }

    /// Slot `slot`'s rows for the first `n` rows of the batch (the examples) and the next `n`
    /// (their references), read in place, or nil if it is not a float value of 2n rows.
    func pairedRows(_ slot: Int, _ n: Int) -> PairedRows? {
        guard case .float(let t)? = values[slot] else { return nil }
        if distinct.contains(slot) {
            guard rows.count == 2 * n else { return nil }
            return PairedRows(tensor: t, examples: rows[0..<n], references: rows[n..<(2 * n)])
        }
        guard t.shape.first == 2 * n else { return nil }
        let all = Array(0..<(2 * n))
        return PairedRows(tensor: t, examples: all[0..<n], references: all[n...])
    }

    /// Whether the shared forward pass computed `slot` on distinct rows.
    func heldDistinct(_ slot: Int) -> Bool { sharedSlots.contains(slot) }

    /// Slot `slot`'s shape on the batch, without gathering it.
    func shape(_ slot: Int) -> [Int]? {
        guard var shape = values[slot]?.shape else { return nil }
        if distinct.contains(slot), !shape.isEmpty { shape[0] = rows.count }
        return shape
    }

    /// What the row-wise checks see of slot `slot` on the batch, without gathering it.
    func facts(_ slot: Int) -> ONNXModel.InputFacts? {
        guard let v = values[slot], let shape = shape(slot) else { return nil }
        var facts = ONNXModel.InputFacts(v)
        facts.shape = shape
        return facts
    }
}
