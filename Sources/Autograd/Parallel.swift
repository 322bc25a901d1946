import Dispatch
import Foundation

/// Our own threading: OpenBLAS runs single-threaded (its idle workers spin in sched_yield and
/// steal the cores from everything that is not a GEMM), and we split work across the cores
/// ourselves — GEMMs by rows or columns, attention by (batch, head), elementwise passes by range.
public enum Parallel {
    public static let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Runs body(worker) for worker in 0..<min(workers, n) concurrently.
    @inline(__always)
    public static func run(_ n: Int = Parallel.workers, _ body: (Int) -> Void) {
        let k = min(workers, n)
        if k <= 1 { body(0); return }
        DispatchQueue.concurrentPerform(iterations: k, execute: body)
    }

    /// Splits 0..<count into one contiguous range per worker (none smaller than `grain`).
    @inline(__always)
    public static func ranges(_ count: Int, grain: Int = 1 << 14, _ body: (Range<Int>) -> Void) {
        let parts = max(1, min(workers, count / max(grain, 1)))
        if parts == 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            body((count * p / parts)..<(count * (p + 1) / parts))
        }
    }
}
