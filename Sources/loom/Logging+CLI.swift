import ArgumentParser
import FoundationEssentials
import Logging
import LoomTensor

// swift-format-ignore: AvoidRetroactiveConformances
// swift-log and swift-argument-parser know nothing of each other: the conformance can live only here.
extension Logger.Level: @retroactive ExpressibleByArgument {}

extension Console.Format: ExpressibleByArgument {}

/// Log options shared by the commands that run jobs.
struct LogOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .warning

    @Option(help: "Log format: human (loom: warning: text (key=value, …)) or json (one object a line, with a UTC time), for log collectors.")
    var logFormat: Console.Format = .human

    /// Sets up swift-log on stderr (once per process) and returns a logger.
    func logger(_ label: String) -> Logger {
        LogSetup.bootstrap(logLevel, format: logFormat)
        var l = Logger(label: label)
        l.logLevel = logLevel
        return l
    }

    /// Applies `--log-format` to the lines that do not go through a logger (errors, notes, progress).
    func apply() { Console.format = logFormat }
}

enum LogSetup {
    nonisolated(unsafe) static var done = false
    static func bootstrap(_ level: Logger.Level, format: Console.Format) {
        Console.format = format
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { _ in
            var h = LoomLogHandler()
            h.logLevel = level
            return h
        }
    }
}

/// swift-log's handler for Loom: each record as one ``Console`` line, in the process's format.
/// The `role` metadata names the process ("loom worker: …"); the rest follows the message.
struct LoomLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let role = all.removeValue(forKey: "role").map { "\($0)" }
        Console.log(level: "\(event.level)", "\(event.message)", metadata: all.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") }, role: role)
    }
}

/// An endpoint from a flag, else from an environment variable, else an error naming both.
func endpoint(_ flag: String?, env: String, what: String) throws -> String {
    if let flag, !flag.isEmpty { return flag }
    if let v = ProcessInfo.processInfo.environment[env], !v.isEmpty { return v }
    throw ValidationError("\(what): pass it, or set \(env)")
}
