import Autograd
import Foundation

extension Module {
    /// Copies parameters from a name -> tensor table (e.g. a safetensors file). `prefix` is
    /// stripped from the table's names first (e.g. "param/" or "model."). Strict: any missing,
    /// extra or misshapen name is an error that lists every one of them; otherwise only matching
    /// names are copied. Returns the number of tensors copied.
    @discardableResult
    public func load(_ table: [String: Tensor], strict: Bool = true, prefix: String = "") throws -> Int {
        var source: [String: Tensor] = [:]
        for (k, v) in table where k.hasPrefix(prefix) { source[String(k.dropFirst(prefix.count))] = v }
        let params = namedParameters()
        var missing: [String] = [], misshapen: [String] = []
        var matched: [(Tensor, Tensor)] = []
        for (name, p) in params {
            guard let t = source[name] else { missing.append(name); continue }
            guard t.shape == p.shape else {
                misshapen.append("\(name): file \(Shape.describe(t.shape)), model \(Shape.describe(p.shape))")
                continue
            }
            matched.append((p, t))
        }
        let known = Set(params.map(\.0))
        // names from a file: control characters shown as escapes
        let extra = source.keys.filter { !known.contains($0) }.sorted().map { escapingControlCharacters($0) }
        if strict && !(missing.isEmpty && extra.isEmpty && misshapen.isEmpty) {
            var lines = ["load: parameters do not match the model (strict)"]
            if !missing.isEmpty { lines.append("  missing (\(missing.count)): " + missing.joined(separator: ", ")) }
            if !extra.isEmpty { lines.append("  unexpected (\(extra.count)): " + extra.joined(separator: ", ")) }
            if !misshapen.isEmpty {
                lines.append("  wrong shape (\(misshapen.count)): " + misshapen.joined(separator: "; "))
            }
            throw TensorError(lines.joined(separator: "\n"))
        }
        for (p, t) in matched { p.data.update(from: t.data, count: p.count) }
        return matched.count
    }
}
