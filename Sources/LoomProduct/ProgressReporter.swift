import FoundationEssentials
import LoomSystem
import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Progress on stderr: a redrawn bar on a terminal, a plain line every few seconds otherwise (and
/// always with `--log-format json`, as a log line).
///
/// The bar fits the terminal's width, read at each redraw, so it follows a resize; other output on
/// stderr clears it and draws it again below (``Console``). Until a worker has joined it says so;
/// until there is a rate, it shows no ETA.
///
/// Not thread-safe: one thread (the executor's, or the coordinator's) owns it.
public final class ProgressReporter {
    /// How progress is shown.
    public enum Style: Sendable { case auto, quiet, bar, lines }

    let totalShards: Int
    let totalExamples: Int
    let style: Style
    let interval: Double
    let start = Date()
    var lastPrint = Date.distantPast
    var lastShown: (shards: Int, workers: Int?)? = nil

    /// - Parameters:
    ///   - interval: seconds between plain lines.
    public init(totalShards: Int, totalExamples: Int, style: Style = .auto, interval: Double = 5) {
        self.totalShards = totalShards
        self.totalExamples = totalExamples
        self.interval = interval
        if style == .auto { self.style = isatty(STDERR_FILENO) != 0 && Console.format == .human ? .bar : .lines } else { self.style = style }
    }

    /// Reports shards and examples done so far; `workers` is shown when given.
    public func update(shardsDone: Int, examplesDone: Int, workers: Int? = nil, force: Bool = false) {
        guard style != .quiet else { return }
        let now = Date()
        let minGap = style == .bar ? 0.1 : interval
        guard force || now.timeIntervalSince(lastPrint) >= minGap else { return }
        lastPrint = now
        lastShown = (shardsDone, workers)
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(examplesDone) / elapsed : 0
        let eta = rate > 0 ? Double(totalExamples - examplesDone) / rate : 0
        let fraction = totalShards > 0 ? Double(shardsDone) / Double(totalShards) : 1
        let workerText = workers.map { ", \($0) worker\($0 == 1 ? "" : "s")" } ?? ""
        let stats: String
        if workers == 0 && shardsDone < totalShards {
            stats = "\(shardsDone)/\(totalShards) shards, waiting for workers"
        } else if examplesDone == 0 || rate <= 0 {
            stats = "\(shardsDone)/\(totalShards) shards\(workerText)"
        } else {
            stats = "\(shardsDone)/\(totalShards) shards, \(Self.format(rate)) ex/s, ETA \(Self.duration(eta))\(workerText)"
        }
        if style == .bar {
            // The bar takes what the terminal leaves, from 10 to 30 columns; the text is cut to fit.
            let text = "\(Int(fraction * 100))% \(stats)"
            let width = max(10, min(30, Console.terminalWidth() - 1 - text.count - 3))
            let filled = Int(fraction * Double(width))
            Console.showBar("[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] " + text)
        } else {
            Console.log(level: "info", "progress \(Int(fraction * 100))% \(stats)")
        }
    }

    /// Ends the display (a newline after a bar).
    public func finish(shardsDone: Int, examplesDone: Int, workers: Int? = nil) {
        guard style != .quiet else { return }
        if style == .bar || lastShown?.shards != shardsDone || lastShown?.workers != workers {
            update(shardsDone: shardsDone, examplesDone: examplesDone, workers: workers, force: true)
        }
        if style == .bar { Console.endBar() }
    }

    static func format(_ rate: Double) -> String {
        rate >= 1000 ? String(cFormat: "%.0f", rate) : String(cFormat: "%.1f", rate)
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}
