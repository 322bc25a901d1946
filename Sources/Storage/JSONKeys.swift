import Foundation

/// Duplicate keys in a JSON object, which JSONSerialization silently merges (the last one
/// wins): a safetensors header with two entries of one name is ambiguous, so it is an error.
enum JSONKeys {
    /// The first key that appears twice in one object of `json` (already known to be valid
    /// JSON), decoded; nil when every object's keys are distinct.
    static func firstDuplicate(in json: Data) -> String? {
        let b = [UInt8](json)
        // one entry per open container: is it an object, and is the next string a key; the keys
        // seen so far by each open object
        var stack: [(isObject: Bool, expectKey: Bool)] = []
        var keys: [Set<String>] = []
        var i = 0
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: "{"): stack.append((true, true)); keys.append([])
            case UInt8(ascii: "["): stack.append((false, false))
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if stack.popLast()?.isObject == true { _ = keys.popLast() }
            case UInt8(ascii: ","): if stack.last?.isObject == true { stack[stack.count - 1].expectKey = true }
            case UInt8(ascii: ":"): if !stack.isEmpty { stack[stack.count - 1].expectKey = false }
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                while i < b.count && b[i] != UInt8(ascii: "\"") { i += b[i] == UInt8(ascii: "\\") ? 2 : 1 }
                if let top = stack.last, top.isObject, top.expectKey, !keys.isEmpty {
                    let key = decode(Array(b[start...min(i, b.count - 1)]))
                    if !keys[keys.count - 1].insert(key).inserted { return key }
                }
            default: break
            }
            i += 1
        }
        return nil
    }

    /// A JSON string literal (quotes included) -> its text, escapes resolved.
    static func decode(_ literal: [UInt8]) -> String {
        if !literal.contains(UInt8(ascii: "\\")) {
            return String(decoding: literal.dropFirst().dropLast(), as: UTF8.self)
        }
        let s = try? JSONSerialization.jsonObject(with: Data(literal), options: .fragmentsAllowed) as? String
        return s ?? String(decoding: literal, as: UTF8.self)
    }
}
