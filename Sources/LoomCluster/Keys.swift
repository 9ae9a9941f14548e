import FoundationEssentials
import LoomTensor
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// A key file that cannot be used, and why.
public struct KeyError: Error, CustomStringConvertible, Sendable, Equatable {
    public let file: String
    public let reason: String
    public init(_ file: String, _ reason: String) { self.file = file; self.reason = reason }
    public var description: String { "\(file): \(reason)" }
}

/// Loom's key files, as `loom keygen NAME` writes them (like ssh-keygen's).
///
/// - `NAME.key` (mode 0600): comment lines (`#`), then `public-key Z85` and `secret-key Z85`.
/// - `NAME.pub`: comment lines, then the public key's Z85 and the name.
/// - An allow file (`--allow`, like `authorized_keys`): one public key per line, each optionally
///   followed by a name; lines that start with `#` are comments (Z85 itself holds `#`, so a
///   comment cannot start mid-line); blank lines are skipped. `.pub` files can be
///   concatenated into one.
public enum KeyFiles {
    /// Writes a new key pair as `directory/NAME.key` and `directory/NAME.pub`; refuses to replace either.
    @discardableResult
    public static func generate(name: String, in directory: String) throws -> CurveKeyPair {
        guard !name.isEmpty, !name.contains("/"), name.allSatisfy({ !$0.isWhitespace }) else {
            throw KeyError(name, "a key name must be a plain file name without spaces")
        }
        let secretPath = directory + "/" + name + ".key", publicPath = directory + "/" + name + ".pub"
        for p in [secretPath, publicPath] where FileManager.default.fileExists(atPath: p) {
            throw KeyError(p, "exists already; remove it first to make a new key")
        }
        let keys = try CurveKeyPair.generate()
        let secret = """
            # Loom secret key "\(name)": give it to one role with --key (or LOOM_KEY). Keep it private.
            public-key \(keys.publicKey.z85)
            secret-key \(keys.secretZ85)

            """
        // Created 0600 from the start, never readable by others for an instant.
        let fd = open(secretPath, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw KeyError(secretPath, "cannot be created: \(String(cString: strerror(errno)))") }
        let bytes = Array(secret.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count else { throw KeyError(secretPath, "could not be written") }
        let pub = "# Loom public key \"\(name)\": add this line to --allow files, or pass it to --coordinator-key.\n\(keys.publicKey.z85) \(name)\n"
        guard FileManager.default.createFile(atPath: publicPath, contents: Data(pub.utf8)) else {
            throw KeyError(publicPath, "cannot be created")
        }
        return keys
    }

    /// Reads a secret key file (`--key`); refuses one that others can read.
    public static func readSecret(_ path: String) throws -> CurveKeyPair {
        var st = stat()
        guard stat(path, &st) == 0 else { throw KeyError(path, "cannot be read: \(String(cString: strerror(errno)))") }
        guard st.st_mode & 0o077 == 0 else {
            throw KeyError(path, "is readable by others (mode \(String(st.st_mode & 0o777, radix: 8))); run chmod 600 on it")
        }
        for (n, line) in try lines(path) {
            let f = line.split(whereSeparator: \.isWhitespace)
            if f.count == 2, f[0] == "secret-key" {
                guard let keys = CurveKeyPair(secretZ85: String(f[1])) else { throw KeyError(path, "line \(n): the secret key is not 40 characters of Z85") }
                return keys
            }
        }
        throw KeyError(path, "holds no secret-key line: is it a .key file made by loom keygen?")
    }

    /// Reads an allow file (`--allow`): the public keys let in, with their names.
    public static func readAllowList(_ path: String) throws -> [CurveKey: String] {
        var keys: [CurveKey: String] = [:]
        for (n, line) in try lines(path) {
            let f = line.split(whereSeparator: \.isWhitespace)
            guard let first = f.first else { continue }
            guard let key = CurveKey(z85: String(first)) else {
                throw KeyError(path, "line \(n): '\(first.prefix(44))' is not a public key (40 characters of Z85)")
            }
            keys[key] = f.count > 1 ? f[1...].joined(separator: " ") : key.fingerprint
        }
        return keys
    }

    /// A public key given as 40 characters of Z85 or as a `.pub` file (`--coordinator-key`, `--collector-key`).
    public static func readPublic(_ text: String) throws -> CurveKey {
        if let key = CurveKey(z85: text) { return key }
        guard FileManager.default.fileExists(atPath: text) else {
            throw KeyError(text, "is neither a public key (40 characters of Z85) nor a file")
        }
        let keys = try readAllowList(text)
        guard keys.count == 1, let key = keys.keys.first else { throw KeyError(text, "holds \(keys.count) public keys, not one") }
        return key
    }

    /// The file's lines without comments, numbered from 1, blank ones skipped; at most 1 MiB.
    static func lines(_ path: String) throws -> [(Int, Substring)] {
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path) } catch { throw KeyError(path, "cannot be read: \(error)") }
        guard bytes.count <= 1 << 20 else { throw KeyError(path, "is larger than 1 MiB: not a key file") }
        let text = String(decoding: bytes, as: UTF8.self)
        var out: [(Int, Substring)] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            // A comment is a line that starts with `#` (Z85 keys contain `#`, so not mid-line).
            let content = line.drop { $0.isWhitespace }
            if !content.isEmpty && !content.hasPrefix("#") { out.append((i + 1, content)) }
        }
        return out
    }
}
