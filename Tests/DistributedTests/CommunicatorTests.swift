import Autograd
@testable import Distributed
import XCTest

/// The single-process side of Distributed (no launcher: rank 0 of 1, MPI never started), the
/// launcher detection and the bucket layout. Runs of several ranks under mpirun are tested
/// through the `ddpm` binary (ScriptingTests/DistributedRunTests).
final class CommunicatorTests: XCTestCase {
    func testLauncherDetection() {
        XCTAssertFalse(Launcher.detected([:]))
        XCTAssertTrue(Launcher.detected(["OMPI_COMM_WORLD_SIZE": "2"]))
        XCTAssertTrue(Launcher.detected(["PMIX_RANK": "0"]))
        XCTAssertTrue(Launcher.detected(["PMI_RANK": "3"]))
        XCTAssertFalse(Launcher.detected(["OMPI_COMM_WORLD_SIZE": "2", "DDPM_MPI": "0"]))
        XCTAssertTrue(Launcher.detected(["DDPM_MPI": "1"]))
    }

    /// Without a launcher the job is this process and the collectives leave values as they are
    /// (a sum over one rank), except the gradient scale.
    func testOneRankCollectives() throws {
        let world = Communicator.world
        XCTAssertEqual([world.rank, world.size], [0, 1])
        XCTAssertFalse(world.usesMPI)
        let t = Tensor([1, 2, 3])
        try world.allreduce(t, mean: true)
        try world.broadcast(t, root: 0)
        XCTAssertEqual(t.values, [1, 2, 3])
        XCTAssertThrowsError(try world.broadcast(t, root: 1)) {
            XCTAssertEqual("\($0)", "root 1 out of range 0..<1 (ranks)")
        }
        XCTAssertTrue(world.any(true))
        XCTAssertFalse(world.any(false))
        XCTAssertEqual(try world.gather(t)?.map { $0.values }, [[1, 2, 3]])
        XCTAssertEqual(world.share(of: 7), 0..<7)
        try world.requireSame("options", "anything")

        let p = Tensor([1, 1])
        p.grad = Tensor([2, 4])
        XCTAssertEqual(try world.sumGradients([p], scale: 0.5), 0)
        XCTAssertEqual(p.grad?.values, [1, 2])
    }

    /// Consecutive groups of at most `limit` elements; a larger tensor alone.
    func testBuckets() {
        XCTAssertEqual(Communicator.buckets([3, 3, 3, 3], limit: 6), [0..<2, 2..<4])
        XCTAssertEqual(Communicator.buckets([3, 10, 2, 2], limit: 6), [0..<1, 1..<2, 2..<4])
        XCTAssertEqual(Communicator.buckets([7], limit: 6), [0..<1])
        XCTAssertEqual(Communicator.buckets([], limit: 6), [])
    }
}
