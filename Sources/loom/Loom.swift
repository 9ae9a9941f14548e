import ArgumentParser
import LoomProduct

/// The `loom` command: apply a model over the pairwise or cartesian product of its inputs.
@main
struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "Apply an ONNX model over the pairwise or cartesian product of its inputs, as tangermeme's apply_pairwise / apply_product do.",
        version: LoomVersion.string,
        subcommands: [Run.self, CoordinatorCommand.self, WorkerCommand.self, CollectorCommand.self, Inspect.self, Show.self])
}
