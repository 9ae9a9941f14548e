#if canImport(Glibc)
import Glibc
#endif

/// Process-wide settings that must be in place before the work starts.
enum ProcessSetup {
    /// Makes OpenBLAS start with `threads` threads, and glibc keep large buffers on the heap.
    ///
    /// OpenBLAS sizes its thread pool when the library loads, before `main`; idle pool
    /// threads then spin in `sched_yield` and steal the core a second worker needs.
    /// glibc serves large allocations with fresh mmaps, so every batch's tensors would
    /// page-fault anew. Both read their settings from the environment at start-up, so
    /// when `OPENBLAS_NUM_THREADS` is unset, Loom sets them and re-executes itself once.
    static func pinBLASThreads(_ threads: Int) {
        #if os(Linux)
        guard getenv("OPENBLAS_NUM_THREADS") == nil, getenv("LOOM_NO_REEXEC") == nil else { return }
        setenv("OPENBLAS_NUM_THREADS", String(max(1, threads)), 1)
        if getenv("MALLOC_MMAP_THRESHOLD_") == nil { setenv("MALLOC_MMAP_THRESHOLD_", "1073741824", 1) }
        if getenv("MALLOC_TRIM_THRESHOLD_") == nil { setenv("MALLOC_TRIM_THRESHOLD_", "1073741824", 1) }
        setenv("LOOM_NO_REEXEC", "1", 1)
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) }
        argv.append(nil)
        // Exec the binary by its real path, so the process keeps its name (ps, pgrep) rather than "exe".
        var path = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &path, path.count - 1)
        execv(n > 0 ? String(cString: path) : "/proc/self/exe", &argv)
        // If exec fails, carry on in this process: only speed is at stake.
        #endif
    }
}
