import COpenBLAS

/// Process-wide BLAS settings.
public enum BLAS {
    /// Sets how many threads OpenBLAS may use; Loom defaults to one, parallelism coming from workers.
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
    }

    /// The OpenBLAS build description (its core and version).
    public static var configuration: String {
        guard let p = openblas_get_config() else { return "OpenBLAS" }
        return String(cString: p)
    }
}
