import COpenBLAS
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Process-wide BLAS settings: OpenBLAS, loaded on demand.
public enum BLAS {
    /// OpenBLAS could not be loaded.
    public struct LoadError: Error, CustomStringConvertible {
        /// What went wrong and what to do: install it, or name it with `LOOM_OPENBLAS`.
        public let description: String
    }

    /// Loads OpenBLAS with `threads` threads, once per process; later calls only report the outcome.
    ///
    /// OpenBLAS sizes its thread pool as it loads, so the count is chosen here, before the
    /// first multiplication (`OPENBLAS_NUM_THREADS`, if set, takes precedence). Loom
    /// defaults to one: parallelism comes from workers, one per core.
    public static func load(threads: Int = 1) throws {
        guard loom_blas_load(Int32(max(1, threads))) == 0 else {
            throw LoadError(description: String(cString: loom_blas_error()))
        }
    }

    /// Sets how many threads OpenBLAS may use from now on (within the pool it loaded with).
    public static func setThreads(_ n: Int) throws {
        try load(threads: n)
        loom_blas_set_threads(Int32(max(1, n)))
    }

    /// The OpenBLAS build description (its core and version).
    public static var configuration: String {
        guard (try? load()) != nil, let p = loom_blas_config() else { return "OpenBLAS (not loaded)" }
        return String(cString: p)
    }
}

/// The instruction sets Loom's BLAS kernels can use, best last. A job pins one: every process
/// that computes it loads OpenBLAS with that set's kernels, so results are bitwise identical
/// across the workers of a job whatever CPUs they run on (as long as each has the set).
///
/// Chosen from the CPU's own feature flags (cpuid), never from OpenBLAS's table of CPU models:
/// Debian's OpenBLAS 0.3.21 does not recognise some Xeons with AVX-512 and falls back to its
/// generic SSE3 kernels, five times slower.
public enum KernelSet: String, CaseIterable, Codable, Sendable {
    case sse3, avx2, avx512

    /// The OPENBLAS_CORETYPE that selects the set's kernels.
    public var coreType: String {
        switch self {
        case .sse3: "Prescott"
        case .avx2: "Haswell"
        case .avx512: "SkylakeX"
        }
    }

    /// The CPU features the set's kernels execute.
    public var features: [String] {
        switch self {
        case .sse3: ["sse3"]
        case .avx2: ["avx2", "fma"]
        case .avx512: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"]
        }
    }

    /// Whether this CPU has every feature the set needs.
    public var isSupported: Bool {
        #if DEBUG
            // Test-only: a CPU that lacks these sets (`LOOM_TEST_CPU_LACKS=avx2,avx512`).
            if let lacks = getenv("LOOM_TEST_CPU_LACKS").map({ String(cString: $0) }), lacks.split(separator: ",").contains(Substring(rawValue)) {
                return false
            }
        #endif
        return features.allSatisfy { loom_cpu_supports($0) != 0 }
    }

    /// The best set this CPU has.
    public static var best: KernelSet { allCases.last { $0.isSupported } ?? .sse3 }

    /// `auto` (the best this CPU has) or a set's name; throws a one-line reason for a name this CPU cannot run.
    public static func resolve(_ text: String) throws -> KernelSet {
        if text == "auto" { return best }
        guard let set = KernelSet(rawValue: text) else {
            throw BLAS.LoadError(description: "--kernels \(text): not one of auto, \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard set.isSupported else {
            throw BLAS.LoadError(
                description:
                    "--kernels \(text): this CPU lacks \(set.features.filter { loom_cpu_supports($0) == 0 }.joined(separator: ", ")) (it has \(best.rawValue))")
        }
        return set
    }

}

extension BLAS {
    /// Loads OpenBLAS with `threads` threads and `kernels`' kernels, once per process.
    ///
    /// Throws if OpenBLAS is already loaded with other kernels (a process computes one set),
    /// or if this CPU lacks the set.
    public static func load(threads: Int = 1, kernels: KernelSet?) throws {
        if let kernels, !kernels.isSupported {
            throw LoadError(description: "this CPU lacks \(kernels.features.joined(separator: ", ")), which the job's \(kernels.rawValue) kernels need")
        }
        if let kernels, loom_blas_is_loaded() != 0, loadedKernels != kernels {
            throw LoadError(
                description:
                    "this process already runs \(loadedKernels?.rawValue ?? "OpenBLAS's own") kernels; the job needs \(kernels.rawValue): start another process"
            )
        }
        guard loom_blas_load_core(Int32(max(1, threads)), kernels?.coreType) == 0 else {
            throw LoadError(description: String(cString: loom_blas_error()))
        }
        if loadedKernels == nil, let kernels { loaded.withLock { $0 = kernels } }
    }

    /// Checks, without loading it, that a library named by `LOOM_OPENBLAS` is there (for
    /// processes that load OpenBLAS only once they know the job's kernels).
    public static func check() throws {
        guard loom_blas_check() == 0 else { throw LoadError(description: String(cString: loom_blas_error())) }
    }

    /// The kernel set this process pinned when it loaded OpenBLAS (nil: OpenBLAS chose, or not loaded).
    public static var loadedKernels: KernelSet? { loaded.withLock { $0 } }
    private static let loaded = Mutex<KernelSet?>(nil)

    /// The kernels OpenBLAS runs, by its own name, if this process has loaded it.
    public static var loadedCoreName: String? {
        guard loom_blas_is_loaded() != 0, let p = loom_blas_corename() else { return nil }
        return String(cString: p)
    }

    /// The kernels OpenBLAS runs, by its own name ("Haswell"), loading it if needed.
    public static var coreName: String {
        guard (try? load()) != nil, let p = loom_blas_corename() else { return "unknown" }
        return String(cString: p)
    }
}
