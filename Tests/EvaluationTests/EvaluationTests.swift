@testable import Autograd
@testable import Evaluation
import Layers
import Foundation
import XCTest

/// The evaluation classifier and the feature statistics `ddpm eval` reports.
final class EvaluationTests: XCTestCase {
    func testFrechetDistanceOfCommutingCovariancesHasClosedForm() {
        // diagonal covariances: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
        let fd = FeatureStatistics.frechetDistance(mean1: [1, 0, 2], cov1: [[4, 0, 0], [0, 1, 0], [0, 0, 9]],
                                                   mean2: [0, 0, 0], cov2: [[1, 0, 0], [0, 1, 0], [0, 0, 4]])
        XCTAssertEqual(fd, 5 + 1 + 0 + 1, accuracy: 1e-9)
    }

    func testFrechetDistanceOfNonCommutingCovariances() {
        // 2x2: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for PSD M with the same eigenvalues as S1 S2
        let s1: [[Double]] = [[2, 1], [1, 2]], s2: [[Double]] = [[3, 0], [0, 1]]
        let p = FeatureStatistics.multiply(s1, s2)
        let trace = p[0][0] + p[1][1], det = p[0][0] * p[1][1] - p[0][1] * p[1][0]
        let expected = 4 + 4 - 2 * (trace + 2 * det.squareRoot()).squareRoot()
        let fd = FeatureStatistics.frechetDistance(mean1: [0, 0], cov1: s1, mean2: [0, 0], cov2: s2)
        XCTAssertEqual(fd, expected, accuracy: 1e-9)
    }

    func testFrechetDistanceOfSamplesIsRotationInvariantAndZeroForItself() throws {
        var rng = Generator(seed: 3)
        func sample(_ n: Int, shift: Float) -> [[Float]] {
            let z = Tensor.randn([n, 4], generator: &rng)
            return (0..<n).map { i in (0..<4).map { k in z.data[i * 4 + k] * Float(k + 1) * 0.5 + shift } }
        }
        let a = sample(200, shift: 0), b = sample(150, shift: 0.3)
        XCTAssertEqual(try FeatureStatistics.frechetDistance(a, a), 0, accuracy: 1e-8)
        let fd = try FeatureStatistics.frechetDistance(a, b)
        XCTAssertGreaterThan(fd, 0.1)
        // an orthogonal change of basis (a rotation in the plane of features 0 and 2) keeps the distance
        let c = Float(cos(0.7)), s = Float(sin(0.7))
        func rotate(_ r: [[Float]]) -> [[Float]] {
            r.map { [c * $0[0] - s * $0[2], $0[1], s * $0[0] + c * $0[2], $0[3]] }
        }
        XCTAssertEqual(try FeatureStatistics.frechetDistance(rotate(a), rotate(b)), fd, accuracy: 1e-6 * max(fd, 1))
        XCTAssertThrowsError(try FeatureStatistics.frechetDistance([[1, 2]], b))
    }

    func testMeanPairwiseDistance() throws {
        // a 3-4-5 triangle
        XCTAssertEqual(try FeatureStatistics.meanPairwiseDistance([[0, 0], [3, 0], [3, 4]]), 4, accuracy: 1e-12)
    }

    func testClassifierShapesNamesAndRoundTrip() throws {
        var rng = Generator(seed: 1)
        let c = try Classifier(ClassifierConfig(width: 4, features: 8, imageSize: 16), generator: &rng)
        XCTAssertEqual(c.namedParameters().map(\.0), [
            "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight", "conv3.bias",
            "conv4.weight", "conv4.bias", "conv5.weight", "conv5.bias",
            "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
        ])
        let x = Tensor.randn([3, 1, 16, 16], generator: &rng)
        let logits = try c(x)
        XCTAssertEqual(logits.shape, [3, 10])
        XCTAssertEqual(try c.features(x).shape, [3, 8])
        let path = NSTemporaryDirectory() + "classifier-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try c.save(path)
        let back = try Classifier.load(path)
        XCTAssertEqual(back.config, c.config)
        let again = try back(x)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: again.data, count: 30)),
                       Array(UnsafeBufferPointer(start: logits.data, count: 30)))
        XCTAssertThrowsError(try c(Tensor(zeros: [1, 1, 32, 32]))) { e in
            XCTAssertEqual((e as? TensorError)?.message,
                           "classifier: input must be (batch, 1, 16, 16), got [1, 1, 32, 32]")
        }
        XCTAssertThrowsError(try Classifier(ClassifierConfig(imageSize: 30), generator: &rng))
    }

    /// A few Adam steps on a separable toy problem drive the cross-entropy down and the
    /// predictions to the labels: forward, loss, backward and update fit together.
    func testClassifierLearnsAToyProblem() throws {
        var rng = Generator(seed: 2)
        let c = try Classifier(ClassifierConfig(classes: 2, width: 4, features: 8, imageSize: 8), generator: &rng)
        // class 0: bright top half, class 1: bright bottom half
        let x = Tensor(repeating: -1, shape: [8, 1, 8, 8])
        let labels = (0..<8).map { $0 % 2 }
        for i in 0..<8 { for p in 0..<32 { x.data[i * 64 + labels[i] * 32 + p] = 1 } }
        let opt = Adam(c.parameters, lr: 1e-2)
        let first = try Tensor.crossEntropy(try c(x), labels: labels).item()
        for _ in 0..<30 {
            let loss = try Tensor.crossEntropy(try c(x), labels: labels)
            opt.zeroGrad()
            try loss.backward()
            _ = opt.step()
        }
        let logits = try c(x)
        XCTAssertLessThan(try Tensor.crossEntropy(logits, labels: labels).item(), first * 0.2)
        XCTAssertEqual(c.predict(logits), labels)
    }
}
