import Foundation
import LoomONNX
import LoomTensor
import LoomTestSupport
import Testing

@Suite("element-wise operators")
struct ElementwiseOpTests {
    @Test("Add, Sub, Mul, Div broadcast as numpy does")
    func arithmetic() throws {
        let a = Feed("a", [2, 3], [1, 2, 3, 4, 5, 6])
        let row = Feed("b", [3], [10, 20, 30])
        #expect(try runOp("Add", [a, row]).storage == [11, 22, 33, 14, 25, 36])
        #expect(try runOp("Sub", [a, row]).storage == [-9, -18, -27, -6, -15, -24])
        let col = Feed("b", [2, 1], [2, -1])
        #expect(try runOp("Mul", [a, col]).storage == [2, 4, 6, -4, -5, -6])
        #expect(try runOp("Div", [a, col]).storage == [0.5, 1, 1.5, -4, -5, -6])
        let scalar = Feed("b", [], [0.5])
        #expect(try runOp("Mul", [a, scalar]).storage == [0.5, 1, 1.5, 2, 2.5, 3])
        // Both sides broadcast: (2,1) + (1,3) -> (2,3).
        let out = try runOp("Add", [Feed("a", [2, 1], [1, 2]), Feed("b", [1, 3], [10, 20, 30])])
        #expect(out.shape == [2, 3])
        #expect(out.storage == [11, 21, 31, 12, 22, 32])
    }

    @Test("shapes that cannot broadcast fail with both shapes named")
    func badBroadcast() throws {
        do {
            _ = try runOp("Add", [Feed("a", [2, 3], [Float](repeating: 0, count: 6)), Feed("b", [2], [1, 2])])
            Issue.record("expected an error")
        } catch let e as ONNXError {
            #expect(e.kind == .runtime)
            #expect(e.description.contains("[2, 3]") && e.description.contains("Add"))
        }
    }

    @Test("Relu, Sigmoid, Tanh, Exp, Log, Neg, Abs, Sqrt")
    func unary() throws {
        let x = Feed("x", [4], [-2, -0.5, 0.5, 2])
        #expect(try runOp("Relu", [x]).storage == [0, 0, 0.5, 2])
        #expect(close(try runOp("Sigmoid", [x]).storage, [0.11920292, 0.37754067, 0.62245933, 0.88079708]))
        #expect(close(try runOp("Tanh", [x]).storage, [-0.96402758, -0.46211716, 0.46211716, 0.96402758]))
        #expect(close(try runOp("Exp", [x]).storage, [0.13533528, 0.60653066, 1.64872127, 7.3890561]))
        #expect(close(try runOp("Log", [Feed("x", [3], [1, Float(M_E), 10])]).storage, [0, 1, 2.30258509]))
        #expect(try runOp("Neg", [x]).storage == [2, 0.5, -0.5, -2])
        #expect(try runOp("Abs", [x]).storage == [2, 0.5, 0.5, 2])
        #expect(try runOp("Sqrt", [Feed("x", [2], [4, 2.25])]).storage == [2, 1.5])
    }

    @Test("Softmax over the last axis, and over axis 0")
    func softmax() throws {
        let x = Feed("x", [2, 3], [1, 2, 3, 0, 0, 0])
        let y = try runOp("Softmax", [x]).storage
        #expect(close(y, [0.09003057, 0.24472847, 0.66524096, 1.0 / 3, 1.0 / 3, 1.0 / 3]))
        let z = try runOp("Softmax", [x], attributes: [.int("axis", 0)]).storage
        #expect(close(z, [0.73105858, 0.88079708, 0.95257413, 0.26894142, 0.11920292, 0.04742587]))
    }

    @Test("ReduceMean and ReduceSum with axes as input (opset 18) and as attribute (opset 13)")
    func reductions() throws {
        let x = Feed("x", [2, 2, 3], (1...12).map(Float.init))
        let mean = try runOp("ReduceMean", [x], opset: 18, extraInputs: ["axes"], attributes: [.int("keepdims", 0)]) {
            $0.initializer("axes", shape: [1], ints: [-1])
        }
        #expect(mean.shape == [2, 2])
        #expect(mean.storage == [2, 5, 8, 11])
        let sum = try runOp("ReduceSum", [x], opset: 13, extraInputs: ["axes"]) { $0.initializer("axes", shape: [2], ints: [0, 2]) }
        #expect(sum.shape == [1, 2, 1])
        #expect(sum.storage == [30, 48]) // 1+2+3+7+8+9 and 4+5+6+10+11+12
        let old = try runOp("ReduceMean", [x], opset: 13, attributes: [.ints("axes", [1])])
        #expect(old.shape == [2, 1, 3])
        #expect(old.storage == [2.5, 3.5, 4.5, 8.5, 9.5, 10.5])
        let all = try runOp("ReduceSum", [x], opset: 13, attributes: [.int("keepdims", 0)])
        #expect(all.shape == [])
        #expect(all.storage == [78])
    }
}
