import Foundation
import Synchronization

/// Our own threading: OpenBLAS runs single-threaded (its idle workers spin in sched_yield and
/// steal the cores from everything that is not a GEMM), and we split work across the cores
/// ourselves — GEMMs by rows or columns, attention by (batch, head), elementwise passes by range.
public enum Parallel {
    /// Threads per process: $DDPM_THREADS if set, else the CPUs this process may run on (its
    /// affinity mask: `mpirun` binds each rank to its cores, `taskset` limits a process).
    public static let workers = threadCount(ProcessInfo.processInfo.environment["DDPM_THREADS"])

    static func threadCount(_ setting: String?) -> Int {
        if let setting, !setting.isEmpty {
            if let n = Int(setting), n >= 1 && n <= 1024 { return n }
            let warning = "ddpm: ignoring DDPM_THREADS=\(setting) (a whole number of threads, 1 to 1024, expected)\n"
            FileHandle.standardError.write(Data(warning.utf8))
        }
        return allowedCPUs() ?? max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// The number of CPUs in this process's affinity mask (Linux: the "Cpus_allowed" hex mask of
    /// /proc/self/status, as sched_getaffinity, which Swift's Glibc module does not export).
    static func allowedCPUs() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) else {
            return nil
        }
        var cpus = 0
        for c in line.dropFirst("Cpus_allowed:".count) where c != "," && c != " " && c != "\t" {
            guard let nibble = c.hexDigitValue else { return nil }
            cpus += nibble.nonzeroBitCount
        }
        return cpus >= 1 ? cpus : nil
    }

    static let pool = WorkerPool(helpers: workers - 1)

    /// Runs body(worker) for worker in 0..<min(workers, n) concurrently.
    @inline(__always)
    public static func run(_ n: Int = Parallel.workers, _ body: (Int) -> Void) {
        let k = min(workers, n)
        if k <= 1 { body(0); return }
        pool.run(k, body)
    }

    /// Splits 0..<count into one contiguous range per worker (none smaller than `grain`).
    @inline(__always)
    public static func ranges(_ count: Int, grain: Int = 1 << 14, _ body: (Range<Int>) -> Void) {
        let parts = max(1, min(workers, count / max(grain, 1)))
        if parts == 1 { body(0..<count); return }
        pool.run(parts) { p in body((count * p / parts)..<(count * (p + 1) / parts)) }
    }
}

/// Items 0..<count handed out one at a time to whichever worker asks next: for a few large,
/// independent items (attention's (batch, head) pairs), so that a core the host slows down takes
/// fewer of them instead of the other core waiting for it at the end of the region. Which worker
/// computes an item does not change its result.
final class WorkQueue: Sendable {
    private let next = Atomic<Int>(0)
    let count: Int

    init(count: Int) { self.count = count }

    func take() -> Int? {
        let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return i < count ? i : nil
    }
}

/// Long-lived helper threads that run their shares of each parallel region: the caller runs
/// share 0, helper h share h. Between regions a helper spins for ~0.1 ms before it sleeps, so the
/// regions of one forward pass (a few hundred, microseconds apart) start without a wake-up (which
/// DispatchQueue.concurrentPerform pays for every region). A region started inside a region (or
/// from a second thread while one runs) runs its shares one after another on the caller.
final class WorkerPool: @unchecked Sendable {
    private let helpers: Int
    private let generation = Atomic<Int>(0)  // bumped to hand out a region
    private let unfinished = Atomic<Int>(0)  // helpers not done with the current region
    private let inUse = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    private let wake = NSCondition()
    private var job: ((Int) -> Void)?
    private var shares = 0

    init(helpers: Int) {
        self.helpers = helpers
        for h in 0..<helpers {
            let thread = Thread { [unowned self] in self.serve(share: h + 1) }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    func run(_ k: Int, _ body: (Int) -> Void) {
        guard helpers > 0, inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for i in 0..<k { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            job = body
            shares = k
            unfinished.store(helpers, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                wake.lock()
                wake.broadcast()
                wake.unlock()
            }
            body(0)
            while unfinished.load(ordering: .acquiring) > 0 {}
            job = nil
        }
        inUse.store(false, ordering: .releasing)
    }

    private func serve(share: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                guard spins > 100_000 else { continue }
                wake.lock()
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                wake.unlock()
            }
            seen = generation.load(ordering: .acquiring)
            if share < shares { runShare(share) }
            unfinished.subtract(1, ordering: .releasing)
        }
    }

    /// Separate so the helper's reference to the job is gone before it reports done (the caller
    /// then ends withoutActuallyEscaping, which checks that nothing kept the closure).
    @inline(never)
    private func runShare(_ share: Int) { job?(share) }
}
