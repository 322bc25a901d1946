import Autograd
import CMPI
import Foundation
import Synchronization

/// The processes of one job (MPI_COMM_WORLD) and the collectives the recipes use: sums and
/// broadcasts of float32 buffers and tensors, a barrier, agreement checks, gathering to one rank.
///
/// MPI starts only when a launcher started this process (`mpirun`, `srun`: see `Launcher`);
/// otherwise the job is this one process (rank 0 of 1), every collective is a local no-op and MPI
/// is never initialised, so `ddpm` without `mpirun` does not pay MPI's singleton start-up (~0.6 s).
/// Collectives must be called by every rank in the same order with agreeing sizes; the ones that
/// take user-controlled sizes check the agreement first and throw the same error on every rank.
/// Only the main thread calls MPI.
public final class Communicator: @unchecked Sendable {
    /// The job this process belongs to, started on first use.
    public static let world = Communicator()

    /// 0-based index of this process, and the number of processes.
    public let rank: Int
    public let size: Int
    /// Whether MPI is running (a launcher started the job, even with one rank).
    public let usesMPI: Bool

    /// The packing buffer of the parameter collectives, kept between calls (a training step
    /// would otherwise map and fault in up to 64 MB each time).
    private var scratchBuffer: UnsafeMutablePointer<Float>?
    private var scratchCount = 0

    /// At least `count` floats of scratch space, valid until the next call.
    func scratch(_ count: Int) -> UnsafeMutablePointer<Float> {
        if let scratchBuffer, scratchCount >= count { return scratchBuffer }
        scratchBuffer?.deallocate()
        let p = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(count, 1))
        scratchBuffer = p
        scratchCount = Swift.max(count, 1)
        return p
    }

    /// Whether `world` has started MPI (read at exit without starting it).
    private static let started = Atomic<Bool>(false)

    private init() {
        guard Launcher.detected() else {
            (rank, size, usesMPI) = (0, 1, false)
            return
        }
        if ddpm_mpi_initialized() == 0 { _ = ddpm_mpi_init() }
        (rank, size, usesMPI) = (Int(ddpm_mpi_rank()), Int(ddpm_mpi_size()), true)
        Communicator.started.store(true, ordering: .sequentiallyConsistent)
        // A process that returns from main or calls exit (Lua's os.exit) leaves MPI cleanly;
        // failures leave through `end(status:)`, which aborts the job instead.
        atexit { Communicator.finalizeIfStarted() }
    }

    /// MPI_Finalize once, if MPI was started and not finished.
    static func finalizeIfStarted() {
        guard started.load(ordering: .sequentiallyConsistent), ddpm_mpi_finalized() == 0 else { return }
        _ = ddpm_mpi_finalize()
    }

    /// Leaves the job with `status`: 0 finalizes MPI (every rank gets there); anything else, in a
    /// job of several ranks, aborts them all, because a failing rank may be the only one and the
    /// others would wait for it in their next collective forever. Call it right before exiting.
    public static func end(status: Int32) {
        guard started.load(ordering: .sequentiallyConsistent), ddpm_mpi_finalized() == 0 else { return }
        if status != 0 && world.size > 1 {
            _ = ddpm_mpi_abort(status)
        }
        finalizeIfStarted()
    }

    /// "rank 1 of 4: " when this process is one of several ranks, "" otherwise: the prefix of a
    /// rank's error messages. Never starts MPI (a failing process must not wait for the others).
    public static var messagePrefix: String {
        guard started.load(ordering: .sequentiallyConsistent), world.size > 1 else { return "" }
        return "rank \(world.rank) of \(world.size): "
    }

    // MARK: - Collectives

    /// Largest piece passed to one MPI call (MPI counts are 32-bit ints).
    static let chunk = 1 << 30

    /// Waits until every rank has called it.
    public func barrier() {
        guard size > 1 else { return }
        _ = ddpm_mpi_barrier()
    }

    /// In place: buffer[i] = the sum of buffer[i] over ranks (every rank gets the same bits).
    public func sum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        guard size > 1 else { return }
        var done = 0
        while done < count {
            let n = min(Communicator.chunk, count - done)
            _ = ddpm_mpi_allreduce_sum_float(buffer + done, Int32(n))
            done += n
        }
    }

    /// In place: the element-wise maximum over ranks.
    public func max(_ values: inout [Int64]) {
        guard size > 1, !values.isEmpty else { return }
        let n = values.count
        values.withUnsafeMutableBufferPointer { _ = ddpm_mpi_allreduce_max_int64($0.baseAddress!, Int32(n)) }
    }

    /// Whether `flag` is true on any rank (the same answer on every rank).
    public func any(_ flag: Bool) -> Bool {
        var v: [Int64] = [flag ? 1 : 0]
        max(&v)
        return v[0] != 0
    }

    /// The smallest and largest of `value` over ranks.
    public func range(_ value: Int) -> (min: Int, max: Int) {
        var v: [Int64] = [Int64(value), -Int64(value)]
        max(&v)
        return (Int(-v[1]), Int(v[0]))
    }

    /// Throws the same error on every rank unless every rank passed the same `value`.
    public func requireAgreement(_ value: Int, _ what: String) throws {
        guard size > 1 else { return }
        let (lo, hi) = range(value)
        guard lo == hi else {
            throw TensorError(
                "\(what) differ between ranks (\(lo) to \(hi), this rank \(value)); every rank must pass the same")
        }
    }

    /// In place: root's bytes into every rank's buffer.
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) {
        guard size > 1 else { return }
        var done = 0
        while done < bytes {
            let n = min(Communicator.chunk, bytes - done)
            _ = ddpm_mpi_bcast_bytes(buffer + done, Int32(n), Int32(root))
            done += n
        }
    }

    /// Root's string on every rank.
    public func broadcast(_ text: String, root: Int = 0) -> String {
        guard size > 1 else { return text }
        var bytes = Array(text.utf8)
        var count = [Int64(rank == root ? bytes.count : 0)]
        count.withUnsafeMutableBytes { broadcast($0.baseAddress!, bytes: 8, root: root) }
        bytes = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count[0]))
        if !bytes.isEmpty { bytes.withUnsafeMutableBytes { broadcast($0.baseAddress!, bytes: $0.count, root: root) } }
        return String(decoding: bytes, as: UTF8.self)
    }

    func checkRoot(_ root: Int) throws {
        guard root >= 0 && root < size else { throw TensorError("root \(root) out of range 0..<\(size) (ranks)") }
    }

    /// In place: every rank's tensor becomes the element-wise sum over ranks, or the mean.
    public func allreduce(_ t: Tensor, mean: Bool = false) throws {
        guard size > 1 else { return }
        try requireAgreement(t.count, "allreduce: tensor sizes")
        sum(t.data, count: t.count)
        if mean {
            let scale = 1 / Float(size), p = t.data
            for i in 0..<t.count { p[i] *= scale }
        }
    }

    /// In place: root's tensor values into every rank's tensor (of the same size).
    public func broadcast(_ t: Tensor, root: Int = 0) throws {
        try checkRoot(root)
        guard size > 1 else { return }
        try requireAgreement(t.count, "broadcast: tensor sizes")
        broadcast(UnsafeMutableRawPointer(t.data), bytes: 4 * t.count, root: root)
    }

    /// Throws the same error on every rank unless `value` (a description of what the ranks were
    /// given: options, file checksums) is root's on every rank.
    public func requireSame(_ what: String, _ value: String, root: Int = 0) throws {
        guard size > 1 else { return }
        let differs = broadcast(value, root: root) != value
        guard !any(differs) else {
            let mine = differs ? " (this rank's differs)" : ""
            throw TensorError(
                "the ranks disagree on \(what)\(mine); every rank must run the same command on the same files")
        }
    }

    /// The tensors of every rank, in rank order, on root (nil elsewhere); a rank passing nil
    /// contributes nothing. The tensors may differ in shape.
    public func gather(_ t: Tensor?, root: Int = 0) throws -> [Tensor]? {
        try checkRoot(root)
        guard size > 1 else { return t.map { [$0] } ?? [] }
        // each rank's shape: [1 present | 0 none | 2 too many dimensions, rank, dims...]
        let maxRank = 8, width = 2 + maxRank
        var header = [Int64](repeating: 0, count: width)
        if let t {
            header[0] = t.rank <= maxRank ? 1 : 2
            header[1] = Int64(Swift.min(t.rank, maxRank))
            for (i, d) in t.shape.prefix(maxRank).enumerated() { header[2 + i] = Int64(d) }
        }
        var headers = [Int64](repeating: 0, count: rank == root ? width * size : 1)
        header.withUnsafeBufferPointer { h in
            headers.withUnsafeMutableBufferPointer {
                _ = ddpm_mpi_gather_int64(h.baseAddress!, Int32(width), $0.baseAddress!, Int32(root))
            }
        }
        var shapes: [[Int]?] = []
        var verdict: [Int64] = [0]
        if rank == root {
            var total = 0
            for r in 0..<size {
                let h = headers[(r * width)..<((r + 1) * width)].map(Int.init)
                if h[0] == 2 { verdict[0] = 2 }
                let shape = h[0] == 1 ? Array(h[2..<(2 + h[1])]) : nil
                shapes.append(shape)
                total += shape.map { $0.reduce(1, *) } ?? 0
            }
            if total > Int(Int32.max) { verdict[0] = 1 }
        }
        // root decides for everyone, so every rank throws the same error or none does
        verdict.withUnsafeMutableBytes { broadcast($0.baseAddress!, bytes: 8, root: root) }
        guard verdict[0] == 0 else {
            throw TensorError(verdict[0] == 1 ? "gather: more than 2^31 elements in total; gather in pieces"
                                              : "gather: tensors of more than \(maxRank) dimensions")
        }

        let mine = t?.count ?? 0
        let send = t?.data ?? UnsafeMutablePointer<Float>.allocate(capacity: 1)
        defer { if t == nil { send.deallocate() } }
        guard rank == root else {
            _ = ddpm_mpi_gatherv_float(send, Int32(mine), nil, nil, nil, Int32(root))
            return nil
        }
        let counts = shapes.map { Int32($0.map { $0.reduce(1, *) } ?? 0) }
        var offsets = [Int32](repeating: 0, count: size)
        for r in 1..<size { offsets[r] = offsets[r - 1] + counts[r - 1] }
        let total = Int(offsets[size - 1] + counts[size - 1])
        let all = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(total, 1))
        defer { all.deallocate() }
        _ = ddpm_mpi_gatherv_float(send, Int32(mine), all, counts, offsets, Int32(root))
        var out: [Tensor] = []
        for (r, shape) in shapes.enumerated() {
            guard let shape else { continue }
            let piece = Tensor(uninitialized: shape)
            piece.data.update(from: all + Int(offsets[r]), count: piece.count)
            out.append(piece)
        }
        return out
    }

    /// This rank's contiguous share of `count` items (0-based): rank r gets
    /// floor(count * r / size) ..< floor(count * (r + 1) / size), so shares differ by at most one.
    public func share(of count: Int) -> Range<Int> {
        (count * rank / size)..<(count * (rank + 1) / size)
    }
}
