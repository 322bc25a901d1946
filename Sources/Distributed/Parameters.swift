import Autograd
import Foundation

/// Collectives over a model's parameters, the way data-parallel trainers do them (PyTorch DDP,
/// Horovod): the tensors are packed in order into a few large flat buckets, and each bucket is
/// one MPI call, so a model of hundreds of tensors costs a few calls, not hundreds of small ones.
/// The buckets and their order depend only on the parameter list, so every rank makes the same
/// calls and two runs with the same number of ranks reduce in the same order, bit for bit.
extension Communicator {
    /// Elements per bucket (16 M floats = 64 MB): large enough that a call's latency is small next
    /// to its transfer, small enough that the packing buffer stays modest.
    public static let bucketElements = 1 << 24

    /// The parameters split into consecutive groups of at most `limit` elements (a larger tensor
    /// alone in its group; the sum is done in pieces of at most `limit`).
    static func buckets(_ counts: [Int], limit: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = 0, filled = 0
        for (i, n) in counts.enumerated() {
            if i > start && filled + n > limit {
                out.append(start..<i)
                start = i
                filled = 0
            }
            filled += n
        }
        if start < counts.count { out.append(start..<counts.count) }
        return out
    }

    /// Every rank's gradients become the sum over ranks of `scale` times each rank's gradient.
    /// With scale = (this rank's share of the batch) / (the whole batch), the result is the
    /// gradient of the whole batch's mean loss, as one process computing the whole batch would
    /// get it (up to float rounding). A parameter without a gradient counts as a zero gradient
    /// and gets one, so every rank packs the same layout. Returns the seconds spent packing and
    /// communicating (0 with one rank, where the gradients are only scaled).
    @discardableResult
    public func sumGradients(_ parameters: [Tensor], scale: Float) throws -> Double {
        if size == 1 {
            if scale != 1 {
                for p in parameters { if let g = p.grad { let d = g.data; for i in 0..<g.count { d[i] *= scale } } }
            }
            return 0
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let counts = parameters.map(\.count)
        try requireAgreement(counts.reduce(0, +), "sumGradients: parameter counts")
        for p in parameters where p.grad == nil { p.grad = Tensor(zeros: p.shape) }
        let limit = Communicator.bucketElements
        let buffer = scratch(Swift.min(limit, counts.reduce(0, +)))
        for bucket in Communicator.buckets(counts, limit: limit) {
            if bucket.count == 1 {
                // one tensor: summed where it lies, scaled first
                guard let g = parameters[bucket.lowerBound].grad else { continue }
                let d = g.data
                for i in 0..<g.count { d[i] *= scale }
                sum(d, count: g.count)
                continue
            }
            var offset = 0
            for k in bucket {
                guard let g = parameters[k].grad else { continue }
                let d = g.data
                for i in 0..<g.count { buffer[offset + i] = d[i] * scale }
                offset += g.count
            }
            sum(buffer, count: offset)
            offset = 0
            for k in bucket {
                guard let g = parameters[k].grad else { continue }
                g.data.update(from: buffer + offset, count: g.count)
                offset += g.count
            }
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Root's parameter values into every rank's parameters (the same model on every rank).
    public func broadcastParameters(_ parameters: [Tensor], root: Int = 0) throws {
        try checkRoot(root)
        guard size > 1 else { return }
        let counts = parameters.map(\.count)
        try requireAgreement(counts.reduce(0, +), "broadcastParameters: parameter counts")
        try requireAgreement(counts.count, "broadcastParameters: numbers of parameter tensors")
        let limit = Communicator.bucketElements
        let buffer = scratch(Swift.min(limit, counts.reduce(0, +)))
        for bucket in Communicator.buckets(counts, limit: limit) {
            if bucket.count == 1 {
                let p = parameters[bucket.lowerBound]
                broadcast(UnsafeMutableRawPointer(p.data), bytes: 4 * p.count, root: root)
                continue
            }
            var offset = 0
            for k in bucket {
                if rank == root { (buffer + offset).update(from: parameters[k].data, count: counts[k]) }
                offset += counts[k]
            }
            broadcast(UnsafeMutableRawPointer(buffer), bytes: 4 * offset, root: root)
            offset = 0
            for k in bucket {
                parameters[k].data.update(from: buffer + offset, count: counts[k])
                offset += counts[k]
            }
        }
    }
}
