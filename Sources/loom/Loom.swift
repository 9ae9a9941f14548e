import ArgumentParser
import LoomProduct

/// The `loom` command: apply a model over the pairwise or cartesian product of its inputs.
@main
struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "Apply an ONNX model over the pairwise or cartesian product of its inputs, as tangermeme's apply_pairwise / apply_product do.",
        version: LoomVersion.string,
        subcommands: [Run.self, CoordinatorCommand.self, WorkerCommand.self, CollectorCommand.self, KeygenCommand.self, Inspect.self, Show.self, Verify.self])

    /// The commands that parse only their own flags: the process roles a cluster starts many
    /// times, and `run`, whose start is part of every small job's time.
    static let roles: [String: any ParsableCommand.Type] = [
        "run": Run.self, "coordinator": CoordinatorCommand.self, "worker": WorkerCommand.self, "collector": CollectorCommand.self
    ]

    /// Runs the command line.
    ///
    /// `loom run|coordinator|worker|collector ...` parse their flags directly: argument-parser's
    /// full command tree builds every subcommand's options by reflection, about 20 ms of CPU
    /// in every process a job starts. Help, and any flag error, go through the full tree, so
    /// usage and messages are the same either way. Each command names itself
    /// (`commandName:`), and the roles name `loom` as their super-command: otherwise
    /// argument-parser derives names with `String(describing:)` and probes for a completion-script
    /// request, dynamic casts that each scan every protocol conformance in the binary.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let name = arguments.first, let role = roles[name], !arguments.contains(where: { $0 == "--help" || $0 == "-h" }) {
            runRole(role, Array(arguments.dropFirst()))
        }
        main(arguments)
    }

    private static func runRole<C: ParsableCommand>(_ role: C.Type, _ arguments: [String]) {
        guard var command = try? C.parse(arguments) else { return } // the full tree reports the error
        do {
            try command.run()
        } catch {
            exit(withError: error)
        }
        exit()
    }
}
