import LoomONNX
import LoomTensor
import LoomTestSupport
import Testing

@Suite("shape and indexing operators")
struct ShapeOpTests {
    let x = Feed("x", [2, 3, 4], (0..<24).map(Float.init))

    @Test("the classic exporter's flatten: Shape, Gather, Unsqueeze, Concat, Reshape")
    func exporterFlatten() throws {
        let y = try runModel([x]) { b in
            b.node("Shape", ["x"], ["s"])
            b.node("Constant", [], ["zero"], [.intTensor("value", shape: [], values: [0])])
            b.node("Gather", ["s", "zero"], ["n"], [.int("axis", 0)])
            b.node("Constant", [], ["ax"], [.intTensor("value", shape: [1], values: [0])])
            b.node("Unsqueeze", ["n", "ax"], ["n1"])
            b.node("Constant", [], ["minus1"], [.intTensor("value", shape: [1], values: [-1])])
            b.node("Concat", ["n1", "minus1"], ["shape"], [.int("axis", 0)])
            b.node("Reshape", ["x", "shape"], ["y"])
        }[0]
        #expect(y.shape == [2, 12])
        #expect(y.storage == x.values)
    }

    @Test("Reshape copies 0 extents and infers -1")
    func reshape() throws {
        let y = try runOp("Reshape", [x], extraInputs: ["s"]) { $0.initializer("s", shape: [3], ints: [0, -1, 2]) }
        #expect(y.shape == [2, 6, 2])
        do {
            _ = try runOp("Reshape", [x], extraInputs: ["s"]) { $0.initializer("s", shape: [2], ints: [5, -1]) }
            Issue.record("24 elements cannot be 5 rows")
        } catch let e as ONNXError { #expect(e.kind == .runtime) }
    }

    @Test("Flatten around an axis")
    func flatten() throws {
        #expect(try runOp("Flatten", [x]).shape == [2, 12])
        #expect(try runOp("Flatten", [x], attributes: [.int("axis", 2)]).shape == [6, 4])
        #expect(try runOp("Flatten", [x], attributes: [.int("axis", 0)]).shape == [1, 24])
    }

    @Test("Shape with start and end")
    func shape() throws {
        #expect(try runOp("Shape", [x]).storage == [2, 3, 4])
        #expect(try runOp("Shape", [x], opset: 15, attributes: [.int("start", 1)]).storage == [3, 4])
        #expect(try runOp("Shape", [x], opset: 15, attributes: [.int("start", -2), .int("end", -1)]).storage == [3])
    }

    @Test("Gather along axis 1 with negative and 2-D indices")
    func gather() throws {
        let y = try runOp("Gather", [x], extraInputs: ["i"], attributes: [.int("axis", 1)]) { $0.initializer("i", shape: [2], ints: [-1, 0]) }
        #expect(y.shape == [2, 2, 4])
        #expect(Array(y.storage[0..<8]) == [8, 9, 10, 11, 0, 1, 2, 3])
        let z = try runOp("Gather", [Feed("v", [4], [10, 11, 12, 13])], extraInputs: ["i"]) { $0.initializer("i", shape: [2, 2], ints: [3, 0, 1, 1]) }
        #expect(z.shape == [2, 2])
        #expect(z.storage == [13, 10, 11, 11])
        #expect(throws: ONNXError.self) {
            try runOp("Gather", [Feed("v", [4], [10, 11, 12, 13])], extraInputs: ["i"]) { $0.initializer("i", shape: [1], ints: [4]) }
        }
    }

    @Test("Unsqueeze and Squeeze, axes as input (13+) and as attribute (11)")
    func squeeze() throws {
        let v = Feed("v", [3], [1, 2, 3])
        #expect(try runOp("Unsqueeze", [v], extraInputs: ["a"]) { $0.initializer("a", shape: [2], ints: [0, -1]) }.shape == [1, 3, 1])
        #expect(try runOp("Unsqueeze", [v], opset: 11, attributes: [.ints("axes", [1])]).shape == [3, 1])
        let w = Feed("w", [1, 3, 1], [1, 2, 3])
        #expect(try runOp("Squeeze", [w]).shape == [3])
        #expect(try runOp("Squeeze", [w], extraInputs: ["a"]) { $0.initializer("a", shape: [1], ints: [2]) }.shape == [1, 3])
        #expect(try runOp("Squeeze", [w], opset: 11, attributes: [.ints("axes", [0])]).shape == [3, 1])
        #expect(throws: ONNXError.self) { try runOp("Squeeze", [w], extraInputs: ["a"]) { $0.initializer("a", shape: [1], ints: [1]) } }
    }

    @Test("Concat along the middle axis")
    func concat() throws {
        let y = try runOp("Concat", [Feed("a", [2, 1, 2], [1, 2, 3, 4]), Feed("b", [2, 2, 2], [5, 6, 7, 8, 9, 10, 11, 12])], attributes: [.int("axis", 1)])
        #expect(y.shape == [2, 3, 2])
        #expect(y.storage == [1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12])
    }

    @Test("Slice with negative starts, clamped ends, axes and steps")
    func slice() throws {
        let y = try runOp("Slice", [x], extraInputs: ["s", "e", "a", "st"]) {
            $0.initializer("s", shape: [2], ints: [-3, 0])
            $0.initializer("e", shape: [2], ints: [Int64.max, 100])
            $0.initializer("a", shape: [2], ints: [2, 0])
            $0.initializer("st", shape: [2], ints: [2, 1])
        }
        #expect(y.shape == [2, 3, 2])
        #expect(Array(y.storage[0..<4]) == [1, 3, 5, 7])
        let rev = try runOp("Slice", [Feed("v", [5], [0, 1, 2, 3, 4])], extraInputs: ["s", "e", "a", "st"]) {
            $0.initializer("s", shape: [1], ints: [-1])
            $0.initializer("e", shape: [1], ints: [Int64.min])
            $0.initializer("a", shape: [1], ints: [0])
            $0.initializer("st", shape: [1], ints: [-2])
        }
        #expect(rev.storage == [4, 2, 0])
    }

    @Test("Transpose by a permutation and by default")
    func transpose() throws {
        let y = try runOp("Transpose", [Feed("m", [2, 3], [1, 2, 3, 4, 5, 6])])
        #expect(y.shape == [3, 2])
        #expect(y.storage == [1, 4, 2, 5, 3, 6])
        let z = try runOp("Transpose", [x], attributes: [.ints("perm", [2, 0, 1])])
        #expect(z.shape == [4, 2, 3])
        #expect(Array(z.storage[0..<6]) == [0, 4, 8, 12, 16, 20])
    }

    @Test("Constant in its float, ints and tensor forms; Identity; Cast")
    func constants() throws {
        let y = try runModel([Feed("x", [2], [1, 2])]) { b in
            b.node("Constant", [], ["c"], [.floatTensor("value", shape: [2], values: [10, 20])])
            b.node("Constant", [], ["d"], [.float("value_float", 0.5)])
            b.node("Add", ["x", "c"], ["s"])
            b.node("Mul", ["s", "d"], ["m"])
            b.node("Identity", ["m"], ["y"])
        }[0]
        #expect(y.storage == [5.5, 11])
        let z = try runModel([Feed("x", [2], [1.9, -2.7])]) { b in
            b.node("Cast", ["x"], ["i"], [.int("to", 7)])
            b.node("Cast", ["i"], ["y"], [.int("to", 1)])
        }[0]
        #expect(z.storage == [1, -2])
    }
}
