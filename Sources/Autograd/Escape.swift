/// Text that came from a file, made safe to print: control characters (C0, DEL, C1) are written
/// as escapes (`\n`, `\t`, `\r`, `\x1B`, ...), so a name or metadata value cannot move the
/// cursor, retitle or clear the terminal. `keepingLines` leaves newlines and tabs alone (for
/// whole messages whose own lines and tracebacks must stay readable).
public func escapingControlCharacters(_ s: String, keepingLines: Bool = false) -> String {
    guard s.unicodeScalars.contains(where: isControl) else { return s }
    var out = ""
    for u in s.unicodeScalars {
        guard isControl(u), !(keepingLines && (u == "\n" || u == "\t")) else {
            out.unicodeScalars.append(u)
            continue
        }
        switch u {
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default: out += u.value < 0x100 ? "\\x" + hex2(u.value) : "\\u{\(String(u.value, radix: 16, uppercase: true))}"
        }
    }
    return out
}

private func isControl(_ u: Unicode.Scalar) -> Bool { u.value < 0x20 || (u.value >= 0x7F && u.value < 0xA0) }

private func hex2(_ v: UInt32) -> String {
    let s = String(v, radix: 16, uppercase: true)
    return s.count < 2 ? "0" + s : s
}
