import CLoomSystem
import LoomONNX

/// Process-wide settings that must be in place before the work starts.
enum ProcessSetup {
    /// Prepares a process that computes: OpenBLAS with `threads` threads, and glibc keeping
    /// freed buffers on its heap.
    ///
    /// OpenBLAS sizes its thread pool as it loads, and idle pool threads spin in
    /// `sched_yield`, stealing the core a second worker needs; Loom loads it on demand
    /// (``BLAS/load(threads:)``), so the count is chosen first. glibc would serve large
    /// allocations with fresh mmaps and hand freed memory back, so that every batch's
    /// tensors page-faulted anew; a 1 GiB mmap threshold and no trimming keep them on the heap.
    /// `kernels`: the job's BLAS kernels (nil lets OpenBLAS choose).
    static func prepareForCompute(threads: Int, kernels: KernelSet?) throws {
        _ = loom_keep_heap()
        try BLAS.load(threads: threads, kernels: kernels)
        try BLAS.setThreads(threads)
    }

    /// Prepares a worker: the heap as above; OpenBLAS is loaded when the job names its kernels.
    static func prepareWorker() throws {
        _ = loom_keep_heap()
        try BLAS.check()
    }
}
