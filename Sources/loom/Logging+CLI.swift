import ArgumentParser
import Foundation
import Logging

// swift-format-ignore: AvoidRetroactiveConformances
// swift-log and swift-argument-parser know nothing of each other: the conformance can live only here.
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Log options shared by the commands that run jobs.
struct LogOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .warning

    /// Sets up swift-log on stderr (once per process) and returns a logger.
    func logger(_ label: String) -> Logger {
        LogSetup.bootstrap(logLevel)
        var l = Logger(label: label)
        l.logLevel = logLevel
        return l
    }
}

enum LogSetup {
    nonisolated(unsafe) static var done = false
    static func bootstrap(_ level: Logger.Level) {
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
}

/// An endpoint from a flag, else from an environment variable, else an error naming both.
func endpoint(_ flag: String?, env: String, what: String) throws -> String {
    if let flag, !flag.isEmpty { return flag }
    if let v = ProcessInfo.processInfo.environment[env], !v.isEmpty { return v }
    throw ValidationError("\(what): pass it, or set \(env)")
}
