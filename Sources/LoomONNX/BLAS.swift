import COpenBLAS

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
