/// Which DeepLIFT rule each node of a model takes, chosen as tangermeme 1.6 chooses it.
///
/// tangermeme hooks `torch.nn` *modules*: a module of a registered class (ReLU, GELU, SiLU,
/// MaxPool1d, Softmax, LayerNorm, …) has its rule applied over its whole output; a functional
/// call (`torch.relu`, `torch.softmax`) and an unregistered module take their plain gradient.
/// Loom sees ONNX nodes, so it recovers the modules from what the exporter recorded:
///
/// - **classes** (the dynamo exporter): each node's `pkg.torch.onnx.class_hierarchy` and
///   `pkg.torch.onnx.name_scopes` name the module instance that produced it and its class.
/// - **scopes** (the classic exporter): node names carry the module path, `/body/act/Relu`. A
///   node alone in its scope is taken as a module call of the class its operator exports from
///   (`nn.ReLU` → Relu). Several element-wise nodes that form a scope with one input and one
///   output, in the pattern a registered module exports to (GELU: Div, Erf, Add, Mul, Mul;
///   SiLU: Sigmoid, Mul; Mish: Softplus, Tanh, Mul), are that module. Anything else in a scope
///   with other nodes is a functional call.
/// - **operators** (nothing recorded: hand-built graphs, stripped exports): every node of a
///   rule-taking operator type takes its rule, and the job's log says so.
///
/// `--nonlinear OP` gives every node of operator type OP its rule, `--linear OP` none, whatever
/// the export says (tangermeme's `additional_nonlinear_ops`, by ONNX operator type).
public struct DeepLiftRules: Sendable {
    public enum Source: String, Sendable { case classes, scopes, operators }

    /// A registered module that exported to several element-wise nodes: its rule (rescale) spans them.
    public struct Region: Sendable, Equatable {
        /// Step indices, in order.
        public var steps: [Int]
        /// The value entering the region from outside, and the one leaving it.
        public var input: Int
        public var output: Int
        /// The module's class or scope, for messages.
        public var name: String
    }

    public let source: Source
    /// Per step: whether its kernel's DeepLIFT rule applies (else its plain gradient).
    public let useRule: [Bool]
    public let regions: [Region]
    /// Module scopes Loom could not classify (they take their plain gradient).
    public let unclassified: [String]

    /// Operators whose kernels carry a DeepLIFT rule (rescale for element-wise ones; tangermeme's
    /// for MaxPool, Softmax and LayerNormalization).
    public static let ruleOperators: Set<String> = [
        "Relu", "Sigmoid", "Tanh", "Softplus", "Elu", "LeakyRelu", "Selu", "Celu", "Gelu", "Mish", "PRelu", "Clip",
        "MaxPool", "Softmax", "LayerNormalization"
    ]
    /// Element-wise operators that can take the rescale rule when `--nonlinear` asks for it.
    public static let rescalable: Set<String> = ruleOperators.subtracting(["MaxPool", "Softmax", "LayerNormalization"])
        .union(["Exp", "Log", "Sqrt", "Abs", "Neg", "HardSigmoid", "HardSwish", "Softsign", "Erf", "Reciprocal"])

    /// tangermeme 1.6's registered module classes, by class name, and the operators each exports to alone.
    static let registered: [String: Set<String>] = [
        "ReLU": ["Relu"], "ReLU6": ["Clip"], "RReLU": ["LeakyRelu"], "SELU": ["Selu"], "CELU": ["Celu"], "GELU": ["Gelu"],
        "SiLU": [], "Mish": ["Mish"], "ELU": ["Elu"], "LeakyReLU": ["LeakyRelu"], "Sigmoid": ["Sigmoid"], "Tanh": ["Tanh"],
        "Softplus": ["Softplus"], "Softshrink": [], "LogSigmoid": [], "PReLU": ["PRelu"],
        "MaxPool1d": ["MaxPool"], "MaxPool2d": ["MaxPool"], "Softmax": ["Softmax"], "LayerNorm": ["LayerNormalization"]
    ]
    /// Multi-node exports of registered element-wise modules, by their operators (sorted).
    static let patterns: [[String]: String] = [
        ["Add", "Div", "Erf", "Mul", "Mul"]: "GELU", ["Add", "Erf", "Mul", "Mul", "Mul"]: "GELU",
        ["Mul", "Sigmoid"]: "SiLU", ["Mul", "Softplus", "Tanh"]: "Mish",
        ["Neg", "Neg", "Softplus"]: "LogSigmoid", ["Log", "Sigmoid"]: "LogSigmoid",
        ["Greater", "Softplus", "Where"]: "Softplus", ["Div", "Greater", "Mul", "Softplus", "Where"]: "Softplus"
    ]
    /// Operators a multi-node module region may hold: element-wise, one value in, one out.
    static let elementwise: Set<String> = rescalable.union([
        "Add", "Sub", "Mul", "Div", "Pow", "Where", "Greater", "Less", "Equal",
        "GreaterOrEqual", "LessOrEqual", "Not", "Cast", "Identity", "Min", "Max"
    ])

    /// Chooses the rules for `model`; `nonlinear` and `linear` are operator types (`--nonlinear`, `--linear`).
    public init(model: ONNXModel, nonlinear: Set<String> = [], linear: Set<String> = []) throws {
        for op in nonlinear where !Self.rescalable.contains(op) && !Self.ruleOperators.contains(op) {
            throw ONNXError(
                file: model.path, kind: .inputMismatch,
                detail: "--nonlinear \(op): Loom has no DeepLIFT rule for \(op) (element-wise operators, MaxPool, Softmax and LayerNormalization take one)")
        }
        let steps = model.steps
        let nodes = Dictionary(model.file.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var use = steps.map { Self.ruleOperators.contains($0.op) }
        var regions: [Region] = []
        var unclassified: [String] = []

        // Where each step came from: a module instance and its class, or a scope, or nothing.
        struct Origin { var instance: String; var className: String? }
        var origins: [Origin?] = steps.map { step in
            guard let node = nodes[step.name] else { return nil }
            if let classes = Self.list(node.metadata["pkg.torch.onnx.class_hierarchy"]),
                let scopes = Self.list(node.metadata["pkg.torch.onnx.name_scopes"]), classes.count >= 2, scopes.count >= 2
            {
                return Origin(instance: scopes[scopes.count - 2], className: classes[classes.count - 2].split(separator: ".").last.map(String.init))
            }
            guard step.name.hasPrefix("/"), let slash = step.name.lastIndex(of: "/") else { return nil }
            return Origin(instance: String(step.name[..<slash]), className: nil)
        }
        let withClasses = origins.contains { $0?.className != nil }
        let withScopes = origins.contains { $0 != nil }
        if !withClasses && !withScopes {
            source = .operators
        } else {
            source = withClasses ? .classes : .scopes
            if withClasses { origins = origins.map { $0?.className == nil ? nil : $0 } }
            // Group the steps of each module instance.
            var groups: [String: [Int]] = [:]
            for (i, o) in origins.enumerated() { if let o { groups[o.instance, default: []].append(i) } }
            use = [Bool](repeating: false, count: steps.count)
            for (instance, members) in groups.sorted(by: { $0.value[0] < $1.value[0] }) {
                let ops = members.map { steps[$0].op }
                let className: String?
                if withClasses {
                    className = origins[members[0]]!.className
                } else if instance.isEmpty {
                    className = nil // the top module's own forward: functional calls
                } else if members.count == 1 {
                    className = Self.registered.first { $0.value.contains(ops[0]) }?.key
                } else {
                    className = Self.patterns[ops.sorted()]
                }
                guard let className, let exports = Self.registered[className] else {
                    if !withClasses && members.count > 1 && !instance.isEmpty && ops.allSatisfy(Self.elementwise.contains)
                        && ops.contains(where: Self.rescalable.contains)
                    {
                        unclassified.append("\(instance) (\(ops.joined(separator: ", ")))")
                    }
                    continue
                }
                if members.count == 1 {
                    for i in members where Self.ruleOperators.contains(steps[i].op) { use[i] = true }
                } else if let region = Self.region(members, in: model, name: "\(instance) (\(className))"), ops.allSatisfy(Self.elementwise.contains) {
                    regions.append(region)
                } else if let single = members.first(where: { exports.contains(steps[$0].op) }) {
                    // A registered module that exported to its operator plus glue (a Reshape, a Cast): the rule on the operator.
                    use[single] = true
                } else {
                    unclassified.append("\(instance) (\(className): \(ops.joined(separator: ", ")))")
                }
            }
        }
        for (i, step) in steps.enumerated() {
            if nonlinear.contains(step.op) { use[i] = true }
            if linear.contains(step.op) { use[i] = false }
        }
        regions.removeAll { r in r.steps.contains { linear.contains(steps[$0].op) } }
        useRule = use
        self.regions = regions
        self.unclassified = unclassified
    }

    /// Parses a Python list literal of strings (`['', 'body.act']`).
    static func list(_ text: String?) -> [String]? {
        guard let text, text.hasPrefix("["), text.hasSuffix("]") else { return nil }
        var items: [String] = []
        var current = "", quote: Character? = nil
        for ch in text.dropFirst().dropLast() {
            if let q = quote {
                if ch == q { items.append(current); current = ""; quote = nil } else { current.append(ch) }
            } else if ch == "'" || ch == "\"" {
                quote = ch
            }
        }
        return items
    }

    /// The region a module's steps form, if one value enters it from outside and one leaves it.
    static func region(_ members: [Int], in model: ONNXModel, name: String) -> Region? {
        let steps = model.steps
        let inside = Set(members)
        let produced = Set(members.flatMap { steps[$0].outputs })
        let constants = Set(model.constantSlots.map(\.0))
        let entering = Set(members.flatMap { steps[$0].inputs.compactMap { $0 } }).subtracting(produced).subtracting(constants)
        var leaving = Set<Int>()
        for (j, step) in steps.enumerated() where !inside.contains(j) {
            for s in step.inputs.compactMap({ $0 }) where produced.contains(s) { leaving.insert(s) }
        }
        for s in model.outputSlots where produced.contains(s) { leaving.insert(s) }
        guard entering.count == 1, leaving.count == 1 else { return nil }
        return Region(steps: members.sorted(), input: entering.first!, output: leaving.first!, name: name)
    }

    /// Whether Loom could not tell modules from functional calls everywhere (the job's log then says so).
    public var isAmbiguous: Bool { source == .operators || !unclassified.isEmpty }

    /// One line for the job's log: where the rules came from, and what Loom could not tell.
    public var summary: String {
        let ruled = useRule.filter { $0 }.count
        var text: String
        switch source {
        case .classes:
            text =
                "deep-lift-shap: rules chosen per torch.nn module from the export's class metadata (\(ruled) nodes with a rule, \(regions.count) multi-node modules)"
        case .scopes:
            text =
                "deep-lift-shap: rules chosen per module from the node names' scopes (\(ruled) nodes with a rule, \(regions.count) multi-node modules); functional calls take their plain gradient"
        case .operators:
            text =
                "deep-lift-shap: this export records no modules, so every Relu, Sigmoid, Tanh, Softplus, MaxPool, Softmax (and other activation) node takes its DeepLIFT rule, functional calls included (--linear OP to change)"
        }
        if !unclassified.isEmpty {
            text +=
                "; cannot tell whether \(unclassified.prefix(3).joined(separator: "; "))\(unclassified.count > 3 ? " and \(unclassified.count - 3) more" : "") are registered modules: plain gradient (--nonlinear OP to change)"
        }
        return text
    }
}
