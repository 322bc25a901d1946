import Autograd
import CLua
import Foundation

/// `ddpm.seed`, `ddpm.no_grad`, `ddpm.interrupted`, `ddpm.progress`, `ddpm.clock`.
final class Progress {
    let total: Int
    let label: String
    var done = 0
    /// Already done when the bar started (a resumed run): not counted in the rate.
    let startCount: Int
    let start = Date()
    var lastPrint = Date.distantPast
    let isTerminal = isatty(STDERR_FILENO) != 0
    var extra = ""

    init(total: Int, label: String, startCount: Int = 0) {
        self.total = max(total, 1)
        self.label = label
        self.startCount = startCount
        done = startCount
    }

    func update(_ n: Int, info: String?) {
        done = min(n, total)
        if let info { extra = info }
        let now = Date()
        let finished = done >= total
        // Terminals redraw ~10x a second; logs get a line every 10 s and at the end.
        guard done > startCount, finished || now.timeIntervalSince(lastPrint) >= (isTerminal ? 0.1 : 10) else { return }
        lastPrint = now
        let elapsed = now.timeIntervalSince(start)
        let rate = Double(done - startCount) / max(elapsed, 1e-9)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let pct = Int(100 * Double(done) / Double(total))
        let text: String
        if isTerminal {
            let width = 24, filled = width * done / total
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            text = "\r\(label) [\(bar)] \(done)/\(total) \(pct)% \(Progress.rate(rate)) eta \(Progress.time(eta)) \(extra)\u{1B}[K" + (finished ? "\n" : "")
        } else {
            text = "\(label): \(done)/\(total) (\(pct)%) \(Progress.rate(rate)) eta \(Progress.time(eta)) \(extra)\n"
        }
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func rate(_ r: Double) -> String { r <= 0 ? "- it/s" : r >= 1 ? String(format: "%.1f it/s", r) : String(format: "%.2f s/it", 1 / max(r, 1e-9)) }
    static func time(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }
}

enum MiscBindings {
    static let top: [(String, Binding)] = [
        ("seed", { a in
            let n = try a.int(1)
            Generator.global = Generator(seed: UInt64(bitPattern: Int64(n)))
            return 0
        }),
        ("no_grad", { a in
            let f = try a.function(1)
            let lua = a.lua
            let before = lua.top
            try withNoGrad {
                lua.pushValue(f)
                try lua.call(arguments: 0, results: LUA_MULTRET)
            }
            return lua.top - before
        }),
        ("interrupted", { a in a.lua.push(Interrupts.received != 0); return 1 }),
        ("clock", { a in a.lua.push(Double(DispatchTime.now().uptimeNanoseconds) / 1e9); return 1 }),
        ("progress", { a in
            let p = Progress(total: try a.int(1), label: try a.string(2, default: "progress"), startCount: try a.int(3, default: 0))
            a.lua.pushObject(p, metatable: Metatable.progress)
            return 1
        }),
    ]

    static func progress(_ a: Arguments) throws -> Progress { try a.object(1, Metatable.progress, Progress.self, "progress") }

    static let progressClass = LuaClass(
        metatable: Metatable.progress, display: "Progress",
        methods: [
            ("update", { a in
                let p = try progress(a)
                p.update(try a.int(2, default: p.done + 1), info: a.lua.string(3))
                return 0
            }),
            ("close", { a in
                let p = try progress(a)
                if p.done < p.total { p.update(p.total, info: nil) }
                return 0
            }),
        ])
}

/// SIGINT/SIGTERM: the first sets a flag that recipes poll (`ddpm.interrupted()`) so they can
/// checkpoint and exit; a second one restores the default action and re-raises (kills at once).
/// The flag lives in memory allocated before the handler is installed, so the handler only
/// performs a plain store (async-signal-safe); C statics in a header would be duplicated per
/// compilation unit.
public enum Interrupts {
    nonisolated(unsafe) static let flag: UnsafeMutablePointer<sig_atomic_t> = {
        let p = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()

    public static func install() {
        _ = flag  // initialise before any signal can arrive
        for sig in [SIGINT, SIGTERM] {
            Glibc.signal(sig) { s in
                if Interrupts.flag.pointee != 0 {
                    Glibc.signal(s, SIG_DFL)
                    raise(s)
                    return
                }
                Interrupts.flag.pointee = s
            }
        }
    }

    public static var received: Int32 { flag.pointee }
}
