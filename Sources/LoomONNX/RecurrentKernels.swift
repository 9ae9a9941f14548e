import COpenBLAS
import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// LSTM and GRU (DanQ's bidirectional LSTM, and GRU towers), as `torch.onnx.export` writes
/// them: layout 0 (sequence, batch, features), forward, reverse or bidirectional, default
/// activations, optional biases and initial states. Peepholes, `clip`, `input_forget`, other
/// activations and `sequence_lens` shorter than the sequence are refused when the model loads
/// or runs. Forward, reverse (backpropagation through time), cost here.
///
/// Under deep-lift-shap the recurrent layer takes its ordinary gradient: tangermeme 1.6
/// registers no rule for `nn.LSTM` or `nn.GRU`, and autograd runs through their gates.
/// The batch is axis 1, so these layers never run on shared rows.
struct RecurrentKernel: Kernel {
    enum Cell: Sendable { case lstm, gru }
    let cell: Cell
    let hidden: Int
    let directions: [Bool] // per direction: runs backwards in time
    let linearBeforeReset: Bool

    /// Gates per cell: LSTM i, o, f, c; GRU z, r, h.
    var gates: Int { cell == .lstm ? 4 : 3 }

    init(_ cell: Cell, attributes a: Attributes) throws {
        self.cell = cell
        let op = cell == .lstm ? "LSTM" : "GRU"
        hidden = try a.int("hidden_size")
        guard hidden >= 1 else { throw KernelError("\(op) hidden_size must be positive") }
        switch try a.string("direction", default: "forward") {
        case "forward": directions = [false]
        case "reverse": directions = [true]
        case "bidirectional": directions = [false, true]
        case let d: throw KernelError("\(op) direction '\(d)' is not forward, reverse or bidirectional")
        }
        guard try a.int("layout", default: 0) == 0 else { throw KernelError("\(op) layout 1 (batch first) is not supported") }
        if a.has("clip") { throw KernelError("\(op) clip is not supported") }
        if try a.int("input_forget", default: 0) != 0 { throw KernelError("\(op) input_forget is not supported") }
        if a.has("activations") {
            let defaults = cell == .lstm ? ["Sigmoid", "Tanh", "Tanh"] : ["Sigmoid", "Tanh"]
            guard case .strings(let acts)? = a.values["activations"],
                acts == Array(repeating: defaults, count: acts.count / max(defaults.count, 1)).flatMap({ $0 })
            else {
                throw KernelError("\(op) activations other than the defaults are not supported")
            }
        }
        linearBeforeReset = try a.int("linear_before_reset", default: 0) != 0
    }

    /// What one direction remembers of each step, for the reverse pass.
    struct Trace {
        /// Per step (in processing order): the gate activations (B × gates·H), the state before and after.
        var gateValues: [[Float]] = []
        var hPrev: [[Float]] = [], cPrev: [[Float]] = [], cNext: [[Float]] = []
        /// GRU without linear_before_reset: h·R_h + Rb_h is not what feeds the candidate; kept for lbr = 1.
        var recurrentH: [[Float]] = []
        var steps: [Int] = []
    }

    struct Inputs {
        let x: Tensor<Float>, w: Tensor<Float>, r: Tensor<Float>
        let b: Tensor<Float>?, h0: Tensor<Float>?, c0: Tensor<Float>?
        var seq: Int { x.shape[0] }
        var batch: Int { x.shape[1] }
        var features: Int { x.shape[2] }
    }

    func read(_ inputs: [Value?]) throws -> Inputs {
        let x = try inputs.required(0, "X").float("X"), w = try inputs.required(1, "W").float("W"), r = try inputs.required(2, "R").float("R")
        let dirs = directions.count, g = gates * hidden
        guard x.rank == 3 else { throw KernelError("X must be (sequence, batch, features), got \(x.shape)") }
        guard w.shape == [dirs, g, x.shape[2]] else { throw KernelError("W must be \([dirs, g, x.shape[2]]), got \(w.shape)") }
        guard r.shape == [dirs, g, hidden] else { throw KernelError("R must be \([dirs, g, hidden]), got \(r.shape)") }
        let b = try inputs.optional(3)?.float("B")
        if let b, b.shape != [dirs, 2 * g] { throw KernelError("B must be \([dirs, 2 * g]), got \(b.shape)") }
        if let lens = inputs.optional(4) {
            let l = floats(lens)
            guard l.storage.allSatisfy({ Int($0) == x.shape[0] }) else { throw KernelError("sequence_lens shorter than the sequence are not supported") }
        }
        let h0 = try inputs.optional(5)?.float("initial_h")
        let c0 = cell == .lstm ? try inputs.optional(6)?.float("initial_c") : nil
        for (t, name) in [(h0, "initial_h"), (c0, "initial_c")] {
            if let t, t.shape != [dirs, x.shape[1], hidden] { throw KernelError("\(name) must be \([dirs, x.shape[1], hidden]), got \(t.shape)") }
        }
        if cell == .lstm, inputs.optional(7) != nil { throw KernelError("LSTM peepholes (input P) are not supported") }
        return Inputs(x: x, w: w, r: r, b: b, h0: h0, c0: c0)
    }

    /// C (m × n) = A (m × k) · Bᵀ (B is n × k), plus C if `accumulate`.
    static func gemmNT(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int, accumulate: Bool) {
        guard m > 0, n > 0, k > 0 else { return }
        loom_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), accumulate ? 1 : 0, c, Int32(n))
    }

    /// C (m × n) = A (m × k) · B (k × n), plus C if `accumulate`.
    static func gemmNN(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int, accumulate: Bool) {
        guard m > 0, n > 0, k > 0 else { return }
        loom_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), accumulate ? 1 : 0, c, Int32(n))
    }

    @inline(__always) static func sigmoid(_ v: Float) -> Float { 1 / (1 + expf(-v)) }

    /// Runs every direction; returns Y (S, dirs, B, H), Y_h, Y_c, and the traces when asked.
    func forward(_ inp: Inputs, trace: Bool) -> (y: [Float], yh: [Float], yc: [Float], traces: [Trace]) {
        let (S, B, I, H, G) = (inp.seq, inp.batch, inp.features, hidden, gates * hidden)
        let dirs = directions.count
        var y = [Float](repeating: 0, count: S * dirs * B * H)
        var yh = [Float](repeating: 0, count: dirs * B * H), yc = yh
        var traces: [Trace] = []
        for (d, backwards) in directions.enumerated() {
            var t = Trace()
            // Input projections for every step at once: (S·B × I) · W[d]ᵀ, plus W's bias.
            var gx = [Float](repeating: 0, count: S * B * G)
            inp.x.storage.withUnsafeBufferPointer { px in
                inp.w.storage.withUnsafeBufferPointer { pw in
                    gx.withUnsafeMutableBufferPointer { pg in
                        Self.gemmNT(px.baseAddress!, pw.baseAddress! + d * G * I, pg.baseAddress!, m: S * B, n: G, k: I, accumulate: false)
                    }
                }
            }
            let wb = inp.b.map { Array($0.storage[(d * 2 * G)..<(d * 2 * G + G)]) } ?? [Float](repeating: 0, count: G)
            let rb = inp.b.map { Array($0.storage[(d * 2 * G + G)..<(d * 2 * G + 2 * G)]) } ?? [Float](repeating: 0, count: G)
            var h = inp.h0.map { Array($0.storage[(d * B * H)..<((d + 1) * B * H)]) } ?? [Float](repeating: 0, count: B * H)
            var c = inp.c0.map { Array($0.storage[(d * B * H)..<((d + 1) * B * H)]) } ?? [Float](repeating: 0, count: B * H)
            var gh = [Float](repeating: 0, count: B * G)
            for step in 0..<S {
                let s = backwards ? S - 1 - step : step
                // Recurrent projection: h · R[d]ᵀ (for a GRU without linear_before_reset, the z and r parts only).
                let recurrentRows = cell == .gru && !linearBeforeReset ? 2 * H : G
                inp.r.storage.withUnsafeBufferPointer { pr in
                    h.withUnsafeBufferPointer { ph in
                        gh.withUnsafeMutableBufferPointer { pg in
                            // (B × H) · (rows × H)ᵀ into the first `recurrentRows` columns of each row.
                            if recurrentRows == G {
                                Self.gemmNT(ph.baseAddress!, pr.baseAddress! + d * G * H, pg.baseAddress!, m: B, n: G, k: H, accumulate: false)
                            } else {
                                var part = [Float](repeating: 0, count: B * recurrentRows)
                                part.withUnsafeMutableBufferPointer { pp in
                                    Self.gemmNT(ph.baseAddress!, pr.baseAddress! + d * G * H, pp.baseAddress!, m: B, n: recurrentRows, k: H, accumulate: false)
                                }
                                for bi in 0..<B {
                                    for j in 0..<recurrentRows { pg[bi * G + j] = part[bi * recurrentRows + j] }
                                    for j in recurrentRows..<G { pg[bi * G + j] = 0 }
                                }
                            }
                        }
                    }
                }
                var gateValues = [Float](repeating: 0, count: B * G)
                let hPrev = h, cPrev = c
                var hLinear: [Float] = [] // GRU: the candidate's recurrent term
                switch cell {
                case .lstm:
                    // The gates (i, o, f: sigmoid; c: tanh) a row at a time, eight lanes at once (VectorMath).
                    var tc = [Float](repeating: 0, count: B * H)
                    gx.withUnsafeBufferPointer { pgx in
                        gh.withUnsafeBufferPointer { pgh in
                            gateValues.withUnsafeMutableBufferPointer { gv in
                                c.withUnsafeMutableBufferPointer { pc in
                                    for bi in 0..<B {
                                        let row = gv.baseAddress! + bi * G
                                        let x = pgx.baseAddress! + (s * B + bi) * G, r = pgh.baseAddress! + bi * G
                                        for k in 0..<G { row[k] = x[k] + wb[k] + r[k] + rb[k] }
                                        let gates = UnsafeMutableBufferPointer(start: row, count: 3 * H)
                                        VectorMath.apply(.sigmoid, UnsafeBufferPointer(gates), into: gates)
                                        let candidate = UnsafeMutableBufferPointer(start: row + 3 * H, count: H)
                                        VectorMath.apply(.tanh, UnsafeBufferPointer(candidate), into: candidate)
                                        let cell = pc.baseAddress! + bi * H
                                        for j in 0..<H { cell[j] = row[2 * H + j] * cell[j] + row[j] * row[3 * H + j] }
                                    }
                                    tc.withUnsafeMutableBufferPointer { VectorMath.apply(.tanh, UnsafeBufferPointer(pc), into: $0) }
                                    h.withUnsafeMutableBufferPointer { ph in
                                        for bi in 0..<B { for j in 0..<H { ph[bi * H + j] = gv[bi * G + H + j] * tc[bi * H + j] } }
                                    }
                                }
                            }
                        }
                    }
                case .gru:
                    // The candidate's recurrent term: r ⊙ (h·R_hᵀ + Rb_h) (linear_before_reset), else (r ⊙ h)·R_hᵀ + Rb_h.
                    var rh = [Float](repeating: 0, count: B * H)
                    var rValues = [Float](repeating: 0, count: B * H)
                    for bi in 0..<B {
                        let base = (s * B + bi) * G
                        for j in 0..<H {
                            let r = Self.sigmoid(gx[base + H + j] + wb[H + j] + gh[bi * G + H + j] + rb[H + j])
                            rValues[bi * H + j] = r
                            rh[bi * H + j] = r * h[bi * H + j]
                        }
                    }
                    hLinear = [Float](repeating: 0, count: B * H)
                    if linearBeforeReset {
                        for bi in 0..<B { for j in 0..<H { hLinear[bi * H + j] = gh[bi * G + 2 * H + j] + rb[2 * H + j] } }
                    } else {
                        inp.r.storage.withUnsafeBufferPointer { pr in
                            rh.withUnsafeBufferPointer { prh in
                                hLinear.withUnsafeMutableBufferPointer { pl in
                                    Self.gemmNT(prh.baseAddress!, pr.baseAddress! + d * G * H + 2 * H * H, pl.baseAddress!, m: B, n: H, k: H, accumulate: false)
                                }
                            }
                        }
                        for bi in 0..<B { for j in 0..<H { hLinear[bi * H + j] += rb[2 * H + j] } }
                    }
                    for bi in 0..<B {
                        let base = (s * B + bi) * G
                        for j in 0..<H {
                            let z = Self.sigmoid(gx[base + j] + wb[j] + gh[bi * G + j] + rb[j])
                            let r = rValues[bi * H + j]
                            let recurrent = linearBeforeReset ? r * hLinear[bi * H + j] : hLinear[bi * H + j]
                            let hh = tanhf(gx[base + 2 * H + j] + wb[2 * H + j] + recurrent)
                            h[bi * H + j] = (1 - z) * hh + z * h[bi * H + j]
                            gateValues[bi * G + j] = z; gateValues[bi * G + H + j] = r; gateValues[bi * G + 2 * H + j] = hh
                        }
                    }
                }
                for bi in 0..<B { for j in 0..<H { y[((s * dirs + d) * B + bi) * H + j] = h[bi * H + j] } }
                if trace {
                    t.gateValues.append(gateValues); t.hPrev.append(hPrev); t.cPrev.append(cPrev); t.cNext.append(c)
                    t.recurrentH.append(hLinear); t.steps.append(s)
                }
            }
            for k in 0..<(B * H) { yh[d * B * H + k] = h[k]; yc[d * B * H + k] = c[k] }
            traces.append(t)
        }
        return (y, yh, yc, traces)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let inp = try read(inputs)
        let (y, yh, yc, _) = forward(inp, trace: false)
        let dirs = directions.count
        var out: [Value] = [
            .float(Tensor(shape: [inp.seq, dirs, inp.batch, hidden], storage: y)),
            .float(Tensor(shape: [dirs, inp.batch, hidden], storage: yh))
        ]
        if cell == .lstm { out.append(.float(Tensor(shape: [dirs, inp.batch, hidden], storage: yc))) }
        return out
    }
}

extension RecurrentKernel: ReversibleKernel {
    /// Backpropagation through time, for X. Gradients into the weights are not needed (they
    /// do not depend on X); initial states that depend on X are refused.
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        var result = [Tensor<Float>?](repeating: nil, count: step.inputs.count)
        guard step.needs(0) else { return result }
        if step.needs(5) || step.needs(6) { throw KernelError("gradients through initial states that depend on X are not supported") }
        let inp = try read(step.inputs)
        let (S, B, I, H, G) = (inp.seq, inp.batch, inp.features, hidden, gates * hidden)
        let dirs = directions.count
        let (_, _, _, traces) = forward(inp, trace: true)
        let gy = step.gradOutputs[0]
        let gyh = step.gradOutputs.count > 1 ? step.gradOutputs[1] : nil
        let gyc = step.gradOutputs.count > 2 ? step.gradOutputs[2] : nil
        var dx = [Float](repeating: 0, count: S * B * I)
        for d in 0..<dirs {
            let t = traces[d]
            var dh = gyh.map { Array($0.storage[(d * B * H)..<((d + 1) * B * H)]) } ?? [Float](repeating: 0, count: B * H)
            var dc = gyc.map { Array($0.storage[(d * B * H)..<((d + 1) * B * H)]) } ?? [Float](repeating: 0, count: B * H)
            var dG = [Float](repeating: 0, count: B * G)
            for k in stride(from: S - 1, through: 0, by: -1) {
                let s = t.steps[k], gv = t.gateValues[k], hPrev = t.hPrev[k]
                if let gy { for bi in 0..<B { for j in 0..<H { dh[bi * H + j] += gy.storage[((s * dirs + d) * B + bi) * H + j] } } }
                var dhPrev = [Float](repeating: 0, count: B * H)
                switch cell {
                case .lstm:
                    let cPrev = t.cPrev[k]
                    // tanh of the new cell state, the step's whole batch eight lanes at a time (the forward's bits).
                    let tanhC = [Float](unsafeUninitializedCapacity: B * H) { out, n in
                        t.cNext[k].withUnsafeBufferPointer { VectorMath.apply(.tanh, $0, into: out) }
                        n = B * H
                    }
                    for bi in 0..<B {
                        for j in 0..<H {
                            let q = bi * H + j, base = bi * G
                            let i = gv[base + j], o = gv[base + H + j], f = gv[base + 2 * H + j], cc = gv[base + 3 * H + j]
                            let tc = tanhC[q]
                            let dOut = dh[q] * tc
                            let dCell = dc[q] + dh[q] * o * (1 - tc * tc)
                            dG[base + j] = dCell * cc * i * (1 - i)
                            dG[base + H + j] = dOut * o * (1 - o)
                            dG[base + 2 * H + j] = dCell * cPrev[q] * f * (1 - f)
                            dG[base + 3 * H + j] = dCell * i * (1 - cc * cc)
                            dc[q] = dCell * f
                        }
                    }
                    // dh_prev = dG · R[d]; dX[s] += dG · W[d].
                    accumulate(dG, inp, d: d, s: s, into: &dx, dhPrev: &dhPrev, recurrentRows: G)
                case .gru:
                    let hl = t.recurrentH[k]
                    var dCandidateRecurrent = [Float](repeating: 0, count: B * H) // GRU lbr = 0: d(r ⊙ h)
                    for bi in 0..<B {
                        for j in 0..<H {
                            let q = bi * H + j, base = bi * G
                            let z = gv[base + j], r = gv[base + H + j], hh = gv[base + 2 * H + j]
                            let dz = dh[q] * (hPrev[q] - hh)
                            let dPre = dh[q] * (1 - z) * (1 - hh * hh)
                            dhPrev[q] = dh[q] * z
                            let dr: Float
                            if linearBeforeReset {
                                dr = dPre * hl[q]
                            } else {
                                dCandidateRecurrent[q] = dPre
                                dr = 0 // filled in below, from d(r ⊙ h)
                            }
                            dG[base + j] = dz * z * (1 - z)
                            dG[base + H + j] = dr * r * (1 - r)
                            dG[base + 2 * H + j] = dPre
                        }
                    }
                    if !linearBeforeReset {
                        // d(r ⊙ h) = dPre · R_h; then dr = d(r⊙h) ⊙ h, dh_prev += d(r⊙h) ⊙ r.
                        var dRH = [Float](repeating: 0, count: B * H)
                        inp.r.storage.withUnsafeBufferPointer { pr in
                            dCandidateRecurrent.withUnsafeBufferPointer { pd in
                                dRH.withUnsafeMutableBufferPointer { po in
                                    Self.gemmNN(pd.baseAddress!, pr.baseAddress! + d * G * H + 2 * H * H, po.baseAddress!, m: B, n: H, k: H, accumulate: false)
                                }
                            }
                        }
                        for bi in 0..<B {
                            for j in 0..<H {
                                let q = bi * H + j, base = bi * G
                                let r = gv[base + H + j]
                                dG[base + H + j] = dRH[q] * hPrev[q] * r * (1 - r)
                                dhPrev[q] += dRH[q] * r
                            }
                        }
                        accumulate(dG, inp, d: d, s: s, into: &dx, dhPrev: &dhPrev, recurrentRows: 2 * H)
                    } else {
                        // With linear_before_reset the candidate's recurrent gradient is dPre ⊙ r.
                        var dGh = dG
                        for bi in 0..<B { for j in 0..<H { dGh[bi * G + 2 * H + j] = dG[bi * G + 2 * H + j] * gv[bi * G + H + j] } }
                        accumulate(dG, inp, d: d, s: s, into: &dx, dhPrev: &dhPrev, recurrentRows: G, recurrentGradient: dGh)
                    }
                }
                dh = dhPrev
            }
        }
        result[0] = Tensor(shape: inp.x.shape, storage: dx)
        return result
    }

    /// dX[s] += dG · W[d] (all gates); dh_prev += dGh · R[d] over its first `recurrentRows` rows.
    private func accumulate(
        _ dG: [Float], _ inp: Inputs, d: Int, s: Int, into dx: inout [Float], dhPrev: inout [Float],
        recurrentRows: Int, recurrentGradient: [Float]? = nil
    ) {
        let (B, I, H, G) = (inp.batch, inp.features, hidden, gates * hidden)
        let dGh = recurrentGradient ?? dG
        inp.w.storage.withUnsafeBufferPointer { pw in
            dG.withUnsafeBufferPointer { pg in
                dx.withUnsafeMutableBufferPointer { px in
                    Self.gemmNN(pg.baseAddress!, pw.baseAddress! + d * G * I, px.baseAddress! + s * B * I, m: B, n: I, k: G, accumulate: true)
                }
            }
        }
        // Only the first `recurrentRows` gate columns went through R (row-major B × G, lda G).
        inp.r.storage.withUnsafeBufferPointer { pr in
            dGh.withUnsafeBufferPointer { pg in
                dhPrev.withUnsafeMutableBufferPointer { ph in
                    guard B > 0, H > 0, recurrentRows > 0 else { return }
                    loom_sgemm(
                        CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(B), Int32(H), Int32(recurrentRows), 1,
                        pg.baseAddress!, Int32(G), pr.baseAddress! + d * G * H, Int32(H), 1, ph.baseAddress!, Int32(H))
                }
            }
        }
    }
}

extension RecurrentKernel: CostedKernel {
    /// Per step and direction: the input projection (gates·H × features) and the recurrent one (gates·H × H).
    func multiplyAdds(inputs: [Value?], outputs: [Value]) -> Double {
        guard let x = inputs.first ?? nil, x.shape.count == 3 else { return 0 }
        let steps = Double(x.shape[0] * x.shape[1] * directions.count)
        return steps * Double(gates * hidden) * Double(x.shape[2] + hidden)
    }
}
