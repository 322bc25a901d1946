import Autograd
import Foundation

/// Statistics of feature sets for evaluating generated images: the Fréchet distance between two
/// Gaussian fits (FID's formula, on our classifier's features) and the mean pairwise distance
/// (diversity). Double precision throughout; feature dimensions are small (~128).
public enum FeatureStatistics {
    /// Mean and unbiased covariance (divides by n - 1, as numpy.cov and pytorch-fid) of n rows of d.
    public static func meanAndCovariance(_ rows: [[Float]]) throws -> (mean: [Double], cov: [[Double]]) {
        guard rows.count >= 2, let d = rows.first?.count, d >= 1 else {
            throw TensorError("need at least 2 feature vectors, got \(rows.count)")
        }
        guard rows.allSatisfy({ $0.count == d }) else { throw TensorError("feature vectors differ in length") }
        let n = Double(rows.count)
        var mean = [Double](repeating: 0, count: d)
        for r in rows { for j in 0..<d { mean[j] += Double(r[j]) } }
        for j in 0..<d { mean[j] /= n }
        var cov = [[Double]](repeating: [Double](repeating: 0, count: d), count: d)
        var centred = [Double](repeating: 0, count: d)
        for r in rows {
            for j in 0..<d { centred[j] = Double(r[j]) - mean[j] }
            for i in 0..<d where centred[i] != 0 {
                let ci = centred[i]
                for j in i..<d { cov[i][j] += ci * centred[j] }
            }
        }
        for i in 0..<d { for j in i..<d { cov[i][j] /= n - 1; cov[j][i] = cov[i][j] } }
        return (mean, cov)
    }

    /// |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2); tr sqrt(S1 S2) is computed as
    /// tr sqrt(S1^1/2 S2 S1^1/2), a symmetric PSD matrix, so only symmetric eigensolves are needed.
    public static func frechetDistance(mean1: [Double], cov1: [[Double]], mean2: [Double], cov2: [[Double]]) -> Double {
        let d = mean1.count
        var dist = 0.0
        for j in 0..<d { dist += (mean1[j] - mean2[j]) * (mean1[j] - mean2[j]) }
        for j in 0..<d { dist += cov1[j][j] + cov2[j][j] }
        let root1 = symmetricSquareRoot(cov1)
        let m = multiply(multiply(root1, cov2), root1)
        let (values, _) = symmetricEigen(m)
        return dist - 2 * values.reduce(0) { $0 + max($1, 0).squareRoot() }
    }

    public static func frechetDistance(_ a: [[Float]], _ b: [[Float]]) throws -> Double {
        let (m1, c1) = try meanAndCovariance(a), (m2, c2) = try meanAndCovariance(b)
        guard m1.count == m2.count else { throw TensorError("feature sizes differ: \(m1.count) and \(m2.count)") }
        return frechetDistance(mean1: m1, cov1: c1, mean2: m2, cov2: c2)
    }

    /// Mean Euclidean distance over all pairs of rows.
    public static func meanPairwiseDistance(_ rows: [[Float]]) throws -> Double {
        guard rows.count >= 2 else { throw TensorError("need at least 2 feature vectors, got \(rows.count)") }
        var total = 0.0
        for i in 0..<rows.count {
            for j in (i + 1)..<rows.count {
                var s = 0.0
                for k in 0..<rows[i].count { let t = Double(rows[i][k] - rows[j][k]); s += t * t }
                total += s.squareRoot()
            }
        }
        return total / Double(rows.count * (rows.count - 1) / 2)
    }

    /// V diag(sqrt(max(l, 0))) V^T for a symmetric PSD matrix (tiny negative eigenvalues from
    /// rounding are clamped).
    static func symmetricSquareRoot(_ a: [[Double]]) -> [[Double]] {
        let (values, vectors) = symmetricEigen(a)
        let d = a.count
        var out = [[Double]](repeating: [Double](repeating: 0, count: d), count: d)
        for k in 0..<d {
            let s = max(values[k], 0).squareRoot()
            guard s > 0 else { continue }
            for i in 0..<d { for j in 0..<d { out[i][j] += s * vectors[i][k] * vectors[j][k] } }
        }
        return out
    }

    static func multiply(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
        let n = a.count, m = b.first?.count ?? 0, k = b.count
        var out = [[Double]](repeating: [Double](repeating: 0, count: m), count: n)
        for i in 0..<n { for p in 0..<k where a[i][p] != 0 { for j in 0..<m { out[i][j] += a[i][p] * b[p][j] } } }
        return out
    }

    /// Eigenvalues and eigenvectors (columns) of a symmetric matrix by cyclic Jacobi rotations.
    static func symmetricEigen(_ input: [[Double]]) -> (values: [Double], vectors: [[Double]]) {
        var a = input
        let n = a.count
        var v = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n { v[i][i] = 1 }
        for _ in 0..<100 {
            var off = 0.0, scale = 0.0
            for i in 0..<n { scale += a[i][i] * a[i][i]; for j in (i + 1)..<n { off += a[i][j] * a[i][j] } }
            if off <= 1e-30 * max(scale, 1e-300) { break }
            for p in 0..<n {
                for q in (p + 1)..<n where a[p][q] != 0 {
                    let theta = (a[q][q] - a[p][p]) / (2 * a[p][q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k][p], akq = a[k][q]
                        a[k][p] = c * akp - s * akq
                        a[k][q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p][k], aqk = a[q][k]
                        a[p][k] = c * apk - s * aqk
                        a[q][k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k][p], vkq = v[k][q]
                        v[k][p] = c * vkp - s * vkq
                        v[k][q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0][$0] }, v)
    }
}
