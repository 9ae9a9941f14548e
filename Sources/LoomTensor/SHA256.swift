import COpenSSL

#if canImport(Glibc)
    import Glibc
#endif

/// SHA-256 (FIPS 180-4), for model, input and job identities.
///
/// Streaming: feed bytes with ``update(_:)``, read the digest with ``finalize()``. The block
/// function is OpenSSL's (libcrypto), which uses the CPU's SHA extensions where it has them:
/// inputs of gigabytes are hashed at every job start, so this is on the start-up path.
public struct SHA256: @unchecked Sendable {
    // A plain C struct: copying a SHA256 copies the running state, as a value type should.
    private var context = SHA256_CTX()

    public init() { loom_sha256_init(&context) }

    /// Feeds bytes.
    public mutating func update<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let done: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
        if done == nil { Array(bytes).withUnsafeBytes { update($0) } }
    }

    /// Feeds raw bytes straight from the caller's memory.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let start = bytes.baseAddress, bytes.count > 0 else { return }
        loom_sha256_update(&context, start, bytes.count)
    }

    /// Feeds the UTF-8 bytes of a string.
    public mutating func update(_ text: String) { update(Array(text.utf8)) }

    /// The digest as 64 lowercase hex digits. The hasher is spent afterwards.
    public mutating func finalize() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        loom_sha256_final(&context, &digest)
        let hex = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(64)
        for b in digest { s.append(hex[Int(b >> 4)]); s.append(hex[Int(b & 15)]) }
        return s
    }

    /// The digest's 32 bytes. The hasher is spent afterwards.
    public mutating func finalizeBytes() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        loom_sha256_final(&context, &digest)
        return digest
    }

    /// The digest of a file's contents, read in 8 MiB pieces, as 64 hex digits.
    public static func hex(ofFile path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var h = SHA256()
        // Reads of up to 8 MiB, in a buffer no larger than the file: a zero-filled 8 MiB buffer
        // cost a small job's every hash 2,048 page faults and a memset (a fifth of a one-example run).
        var info = stat()
        let size = fstat(fd, &info) == 0 ? Int(info.st_size) : 8 << 20
        let capacity = min(8 << 20, max(4096, size))
        var buffer = [UInt8](unsafeUninitializedCapacity: capacity) { _, count in count = capacity }
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw FileError(path: path, operation: "read", errno: errno) }
            if n == 0 { break }
            buffer.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return h.finalize()
    }

    /// The digest of a byte array.
    public static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var h = SHA256()
        h.update(bytes)
        return h.finalize()
    }
}
