import Foundation
import XCTest
@testable import Autograd

final class ParallelTests: XCTestCase {
    /// Every share of every region runs exactly once, across thousands of back-to-back regions
    /// (the helpers spinning), after pauses long enough for them to sleep, and for regions
    /// started inside a region (run on the caller, one share after another).
    func testEveryShareRunsOnce() {
        let k = Parallel.workers
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 4 * k)
        defer { counts.deallocate() }
        func region(_ nested: Bool) {
            counts.update(repeating: 0, count: 4 * k)
            Parallel.run(k) { share in
                counts[share] += 1
                if nested { Parallel.run(k) { inner in counts[k + share * k + inner] += 1 } }
            }
        }
        for i in 0..<5000 {
            region(false)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: counts, count: k)), Array(repeating: 1, count: k),
                           "region \(i)")
            if i % 1000 == 999 { usleep(5000) }  // helpers fall asleep and must be woken
        }
        region(true)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: counts, count: k + k * k)),
                       Array(repeating: 1, count: k + k * k))
        var total = 0
        let sums = UnsafeMutablePointer<Int>.allocate(capacity: k)
        defer { sums.deallocate() }
        sums.update(repeating: 0, count: k)
        Parallel.ranges(100_000, grain: 1) { r in sums[r.lowerBound * k / 100_000] = r.reduce(0, +) }
        for i in 0..<k { total += sums[i] }
        XCTAssertEqual(total, 100_000 * 99_999 / 2)
    }

    /// A WorkQueue hands every item out exactly once, whichever worker asks, and then nil.
    func testWorkQueueHandsOutEveryItemOnce() {
        for count in [0, 1, 7, 1000] {
            let queue = WorkQueue(count: count)
            let seen = UnsafeMutablePointer<Int>.allocate(capacity: Swift.max(count, 1))
            defer { seen.deallocate() }
            seen.update(repeating: 0, count: Swift.max(count, 1))
            Parallel.run(Parallel.workers) { _ in
                while let i = queue.take() { seen[i] += 1 }  // distinct items: no two workers write one slot
            }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: seen, count: count)), Array(repeating: 1, count: count),
                           "\(count) items")
            XCTAssertNil(queue.take())
        }
    }

    /// Threads per process: DDPM_THREADS when it is a whole number 1...1024, else the CPUs of the
    /// affinity mask (taskset and mpirun's binding limit it), which this process has at least one of.
    func testThreadCountSetting() throws {
        XCTAssertEqual(Parallel.threadCount("3"), 3)
        let cpus = try XCTUnwrap(Parallel.allowedCPUs())
        XCTAssertGreaterThanOrEqual(cpus, 1)
        XCTAssertLessThanOrEqual(cpus, ProcessInfo.processInfo.activeProcessorCount)
        XCTAssertEqual(Parallel.threadCount(nil), cpus)
        XCTAssertEqual(Parallel.threadCount("0"), cpus)  // ignored, with a warning on stderr
        XCTAssertEqual(Parallel.threadCount("two"), cpus)
    }
}
