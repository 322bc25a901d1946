import Foundation

/// Seeded pseudo-random generator (xoshiro256**, seeded through splitmix64).
/// Its whole state is four words, so checkpoints can save and restore it exactly.
public struct Generator: Sendable {
    public var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = seed
        func splitmix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        state = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    public init?(stateWords w: [UInt64]) {
        guard w.count == 4, w.contains(where: { $0 != 0 }) else { return nil }
        state = (w[0], w[1], w[2], w[3])
    }

    @inline(__always) public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 random bits (exactly representable as Float).
    @inline(__always) public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always) public mutating func uniformDouble() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform integer in [0, n), n > 0 (multiply-shift; bias below 2^-32 for our n).
    @inline(__always) public mutating func int(below n: Int) -> Int {
        Int((UInt64(UInt32(truncatingIfNeeded: next() >> 32)) &* UInt64(n)) >> 32)
    }

    /// Standard normal pairs by Box-Muller (in Double for accuracy in the tails).
    public mutating func fillNormal(_ p: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i < count {
            let u1 = 1.0 - uniformDouble()  // (0, 1]: log is finite
            let u2 = uniformDouble()
            let r = (-2.0 * log(u1)).squareRoot()
            let a = 2.0 * Double.pi * u2
            p[i] = Float(r * cos(a))
            if i + 1 < count { p[i + 1] = Float(r * sin(a)) }
            i += 2
        }
    }

    public mutating func fillUniform(_ p: UnsafeMutablePointer<Float>, count: Int, low: Float = 0, high: Float = 1) {
        for i in 0..<count { p[i] = low + (high - low) * uniform() }
    }
}
