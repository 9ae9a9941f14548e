import LoomTensor
import LoomTestSupport
import Testing

@testable import LoomONNX

#if canImport(Glibc)
    import Glibc
#endif

/// A graph X (batch, 1, 4) -> `body` -> ReduceSum over (1, 2) -> y (batch, 1, 1), with its nodes named as `body` says.
func ruledModel(sumName: String = "/ReduceSum", _ body: (inout ONNXBuilder) -> Void) throws -> ONNXModel {
    try loadModel(channels: 1, length: 4) { b in
        body(&b)
        b.initializer("sum_axes", shape: [2], ints: [1, 2])
        b.node("ReduceSum", ["h", "sum_axes"], ["y"], name: sumName, [.int("keepdims", 1)])
    }
}

/// The dynamo exporter's metadata for a node made by `op` inside module `scope` of class `cls` (nil: a functional call in the top module).
func dynamo(_ op: String, scope: String?, cls: String?) -> [(String, String)] {
    let classes = ["'__main__.Net'"] + (cls.map { ["'\($0)'"] } ?? []) + ["'aten.\(op).default'"]
    let scopes = ["''"] + (scope.map { ["'\($0)'"] } ?? []) + ["'\(op)'"]
    return [
        ("pkg.torch.onnx.class_hierarchy", "[\(classes.joined(separator: ", "))]"),
        ("pkg.torch.onnx.name_scopes", "[\(scopes.joined(separator: ", "))]")
    ]
}

@Suite("deep-lift-shap rules per module, as tangermeme chooses them")
struct DeepLiftRulesTests {
    let x: [Float] = [2, -1, 3, 0.5], ref: [Float] = [-2, -3, 1, 0.5]

    @Test("classic names: a Relu alone in a submodule's scope is nn.ReLU (rescale); one in the top module's forward is torch.relu (gradient)")
    func classicModuleAndFunctional() throws {
        let module = try ruledModel { b in b.node("Relu", ["X"], ["h"], name: "/act/Relu") }
        let functional = try ruledModel { b in b.node("Relu", ["X"], ["h"], name: "/Relu") }
        let rm = try DeepLiftRules(model: module), rf = try DeepLiftRules(model: functional)
        #expect(rm.source == .scopes && rf.source == .scopes)
        #expect(rm.useRule[0] && !rf.useRule[0])
        #expect(try deepLiftOnce(module, x: x, ref: ref, shape: [1, 4]).m == [0.5, 0, 1, 1], "rescale: Δout/Δin")
        #expect(try deepLiftOnce(functional, x: x, ref: ref, shape: [1, 4]).m == [1, 0, 1, 1], "the plain gradient at the example")
    }

    /// GELU as the classic exporter writes nn.GELU: x · 0.5 · (1 + erf(x / √2)), five nodes in the module's scope.
    func gelu(scope: String) throws -> ONNXModel {
        try ruledModel { b in
            b.initializer("sqrt2", shape: [], values: [1.4142135])
            b.initializer("one", shape: [], values: [1])
            b.initializer("half", shape: [], values: [0.5])
            b.node("Div", ["X", "sqrt2"], ["d"], name: "\(scope)/Div")
            b.node("Erf", ["d"], ["e"], name: "\(scope)/Erf")
            b.node("Add", ["e", "one"], ["a"], name: "\(scope)/Add")
            b.node("Mul", ["X", "a"], ["m"], name: "\(scope)/Mul")
            b.node("Mul", ["m", "half"], ["h"], name: "\(scope)/Mul_1")
        }
    }

    @Test("classic names: GELU's five nodes in a submodule form one module, rescaled as a whole (contributions sum to Δy)")
    func classicGeluModule() throws {
        let module = try gelu(scope: "/act")
        let rules = try DeepLiftRules(model: module)
        #expect(rules.regions.count == 1)
        #expect(rules.regions.first?.name.contains("GELU") == true)
        let (m, dy, sum) = try deepLiftOnce(module, x: x, ref: ref, shape: [1, 4])
        #expect(abs(dy - sum) < 1e-5, "summation to delta over the module")
        // The unchanged position (x = ref = 0.5) takes the module's plain gradient: Φ(x) + x·φ(x).
        let plain: Float = 0.5 * (1 + erff(0.5 / 1.4142135)) + 0.5 * 0.3989423 * expf(-0.125)
        #expect(abs(m[3] - plain) < 1e-5)
        // In the top module's forward (F.gelu written out), the same nodes take their plain gradients.
        let functional = try gelu(scope: "")
        #expect(try DeepLiftRules(model: functional).regions.isEmpty)
        let f = try deepLiftOnce(functional, x: x, ref: ref, shape: [1, 4])
        #expect(abs(f.deltaY - f.deltaSum) > 1e-3, "plain gradients do not sum to Δy for a curved function")
    }

    @Test("dynamo metadata: nn.SiLU (Sigmoid, Mul) is one module; torch.sigmoid elsewhere takes its gradient; classes decide")
    func dynamoClasses() throws {
        let model = try ruledModel { b in
            b.node("Sigmoid", ["X"], ["s"], name: "node_sigmoid", metadata: dynamo("sigmoid", scope: "act", cls: "torch.nn.modules.activation.SiLU"))
            b.node("Mul", ["X", "s"], ["m"], name: "node_mul", metadata: dynamo("mul", scope: "act", cls: "torch.nn.modules.activation.SiLU"))
            b.node("Sigmoid", ["m"], ["h"], name: "node_sigmoid_1", metadata: dynamo("sigmoid", scope: nil, cls: nil))
        }
        let rules = try DeepLiftRules(model: model)
        #expect(rules.source == .classes)
        #expect(rules.regions.count == 1 && rules.regions[0].steps == [0, 1])
        #expect(rules.useRule[2] == false, "torch.sigmoid: a functional call")
        #expect(rules.summary.contains("class metadata"))
        _ = try deepLiftOnce(model, x: x, ref: ref, shape: [1, 4])
    }

    @Test("nothing recorded: every activation node takes its rule, and the log line says Loom cannot tell")
    func nothingRecorded() throws {
        let model = try ruledModel(sumName: "sum_0") { b in b.node("Relu", ["X"], ["h"], name: "relu_0") }
        let rules = try DeepLiftRules(model: model)
        #expect(rules.source == .operators)
        #expect(rules.useRule[0])
        #expect(rules.summary.contains("records no modules"))
    }

    @Test("--linear and --nonlinear override the export; a type with no rule is refused, naming it")
    func overrides() throws {
        let model = try ruledModel { b in
            b.node("Relu", ["X"], ["r"], name: "/act/Relu")
            b.node("Exp", ["r"], ["h"], name: "/Exp")
        }
        #expect(try DeepLiftRules(model: model).useRule == [true, false, false])
        #expect(try DeepLiftRules(model: model, linear: ["Relu"]).useRule[0] == false)
        #expect(try DeepLiftRules(model: model, nonlinear: ["Exp"]).useRule[1] == true)
        #expect(throws: ONNXError.self) { try DeepLiftRules(model: model, nonlinear: ["Conv"]) }
    }
}
