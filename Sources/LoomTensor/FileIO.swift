import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed system call on a file, with its errno.
public struct FileError: Error, CustomStringConvertible, Sendable {
    /// The file at fault.
    public var path: String
    /// What Loom was doing: "open", "read", "write", ...
    public var operation: String
    /// The errno the system call left.
    public var errno: Int32

    public init(path: String, operation: String, errno: Int32) {
        self.path = path
        self.operation = operation
        self.errno = errno
    }

    /// The system's words for the errno.
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String { "\(path): cannot \(operation) (\(reason))" }
}

/// Small POSIX file helpers that report errno instead of trapping.
public enum FileIO {
    /// Reads a whole file into memory.
    public static func readAll(_ path: String) throws(FileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError(path: path, operation: "stat", errno: errno) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw FileError(path: path, operation: "read a directory as a file", errno: EISDIR) }
        let size = max(Int(st.st_size), 0)
        // Straight into the result, sized from fstat (one copy, from the page cache), then on to
        // the end in case the file grew meanwhile.
        var result: [UInt8] = []
        var want = size > 0 ? size : 1 << 16
        while true {
            let piece: [UInt8]
            do { piece = try read(fd, count: want, at: result.count) } catch { throw FileError(path: path, operation: "read", errno: error.code) }
            if result.isEmpty { result = piece } else { result += piece }
            if piece.count < want { break }
            want = 1 << 16
        }
        return result
    }

    /// Reads `count` bytes of an open file from byte `offset` into a new array (fewer at the
    /// file's end), retrying interrupted and short reads. Throws the errno of a failed read.
    public static func read(_ fd: Int32, count: Int, at offset: Int) throws(Errno) -> [UInt8] {
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, done in
            done = 0
            while done < count {
                let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                if n == 0 { break }
                done += n
            }
        }
        if failure != 0 { throw Errno(failure) }
        return bytes
    }

    /// A bare errno, for the callers of ``read(_:count:at:)`` to put in their own errors.
    public struct Errno: Error, Sendable {
        public let code: Int32
        public init(_ code: Int32) { self.code = code }
    }

    /// Reads up to `count` bytes from the start of a file.
    public static func readPrefix(_ path: String, count: Int) throws(FileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, 0) }
        guard n >= 0 else { throw FileError(path: path, operation: "read", errno: errno) }
        return Array(buffer.prefix(n))
    }

    /// Writes bytes to a file atomically: a temporary file beside it, fsync, rename, fsync of the folder.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws(FileError) {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError(path: tmp, operation: "create", errno: errno) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                throw FileError(path: tmp, operation: "write", errno: e)
            }
            offset += n
        }
        guard fsync(fd) == 0 else {
            let e = errno
            close(fd)
            throw FileError(path: tmp, operation: "fsync", errno: e)
        }
        close(fd)
        guard rename(tmp, path) == 0 else { throw FileError(path: path, operation: "rename into place", errno: errno) }
        syncDirectory(of: path)
    }

    /// fsyncs the folder that holds `path`, so that a rename or a new file survives a crash.
    public static func syncDirectory(of path: String) {
        let dir: String
        if let slash = path.lastIndex(of: "/") { dir = slash == path.startIndex ? "/" : String(path[..<slash]) } else { dir = "." }
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    /// Whether a path exists, and whether it is a folder.
    public static func exists(_ path: String) -> (exists: Bool, isDirectory: Bool) {
        var st = stat()
        guard stat(path, &st) == 0 else { return (false, false) }
        return (true, (st.st_mode & S_IFMT) == S_IFDIR)
    }

    /// Creates a folder and its parents; an existing folder is fine.
    public static func makeDirectories(_ path: String) throws(FileError) {
        var built = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            built += (built.isEmpty || built.hasSuffix("/") ? "" : "/") + part
            if mkdir(built, 0o755) != 0 && errno != EEXIST {
                throw FileError(path: built, operation: "create the folder", errno: errno)
            }
        }
        guard exists(path).isDirectory else { throw FileError(path: path, operation: "use as a folder", errno: ENOTDIR) }
    }

    /// The names in a folder, without "." and "..".
    public static func listDirectory(_ path: String) throws(FileError) -> [String] {
        guard let dir = opendir(path) else { throw FileError(path: path, operation: "list", errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes a file; a missing one is fine.
    public static func remove(_ path: String) {
        _ = unlink(path)
    }
}

/// Unbuffered writes to the standard streams, safe from any thread; Loom's log lines, in the human
/// or the JSON format; and the progress bar, which other stderr output never tears.
public enum Console {
    /// How log lines are written: `loom: warning: text (key=value, …)`, or one JSON object a line.
    public enum Format: String, Sendable, CaseIterable {
        case human, json
    }

    /// The process's log format (set once, at start, from `--log-format`).
    nonisolated(unsafe) public static var format: Format = .human

    /// The progress bar on stderr's last line, if one is showing; held while writing to stderr.
    private static let bar = Mutex<String?>(nil)

    /// Writes text to stderr (the progress bar, if showing, is cleared first and drawn again after).
    public static func error(_ text: String) {
        bar.withLock { bar in
            if bar != nil { writeAll(STDERR_FILENO, "\r\u{1B}[K") }
            writeAll(STDERR_FILENO, text)
            if let bar { writeAll(STDERR_FILENO, "\r" + bar + "\u{1B}[K") }
        }
    }

    /// Writes text to stdout.
    public static func out(_ text: String) { writeAll(STDOUT_FILENO, text) }

    /// One log line on stderr. `level`: "info", "notice", "warning", "error", …; `role`: the
    /// process's role ("coordinator", "worker", …), if it has one.
    public static func log(level: String, _ message: String, metadata: [(String, String)] = [], role: String? = nil) {
        switch format {
        case .human:
            let who = role.map { "loom \($0): " } ?? "loom: "
            let tag = ["info", "notice"].contains(level) ? "" : level + ": "
            let extra = metadata.isEmpty ? "" : " (" + metadata.map { "\($0.0)=\($0.1)" }.joined(separator: ", ") + ")"
            error(who + tag + message + extra + "\n")
        case .json:
            var fields = [("time", timestamp()), ("level", level)]
            if let role { fields.append(("role", role)) }
            fields.append(("message", message))
            fields += metadata.filter { k, _ in !["time", "level", "role", "message"].contains(k) }
            error("{" + fields.map { "\(json($0.0)):\(json($0.1))" }.joined(separator: ",") + "}\n")
        }
    }

    /// Shows `text` as the progress bar on stderr's last line, cut to the terminal's width (read
    /// anew each time, so a resized terminal is followed).
    public static func showBar(_ text: String) {
        let width = max(20, terminalWidth() - 1)
        let line = text.count > width ? String(text.prefix(width)) : text
        bar.withLock { bar in
            bar = line
            writeAll(STDERR_FILENO, "\r" + line + "\u{1B}[K")
        }
    }

    /// Leaves the progress bar as it is, on a line of its own.
    public static func endBar() {
        bar.withLock { bar in
            guard bar != nil else { return }
            bar = nil
            writeAll(STDERR_FILENO, "\n")
        }
    }

    /// stderr's terminal width, or 80.
    public static func terminalWidth() -> Int {
        var size = winsize()
        guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }

    /// A JSON string literal.
    static func json(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += "\\u00" + pad(Int(u.value), 2, radix: 16) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// UTC, to the millisecond: 2026-11-29T20:01:02.345Z.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var t = now.tv_sec
        var parts = tm()
        gmtime_r(&t, &parts)
        let date = pad(Int(parts.tm_year) + 1900, 4) + "-" + pad(Int(parts.tm_mon) + 1, 2) + "-" + pad(Int(parts.tm_mday), 2)
        let time = pad(Int(parts.tm_hour), 2) + ":" + pad(Int(parts.tm_min), 2) + ":" + pad(Int(parts.tm_sec), 2)
        return date + "T" + time + "." + pad(Int(now.tv_nsec / 1_000_000), 3) + "Z"
    }

    /// `value` in `radix`, zero-padded to `digits`.
    static func pad(_ value: Int, _ digits: Int, radix: Int = 10) -> String {
        let s = String(value, radix: radix)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }

    private static func writeAll(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }
}
