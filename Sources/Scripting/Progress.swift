import Foundation

/// A progress bar with rate and ETA on stderr when it is a terminal; plain periodic lines otherwise.
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
            text = "\r\(label) [\(bar)] \(done)/\(total) \(pct)% \(Progress.rate(rate)) "
                + "eta \(Progress.time(eta)) \(extra)\u{1B}[K" + (finished ? "\n" : "")
        } else {
            text = "\(label): \(done)/\(total) (\(pct)%) \(Progress.rate(rate)) eta \(Progress.time(eta)) \(extra)\n"
        }
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func rate(_ r: Double) -> String {
        r <= 0 ? "- it/s" : r >= 1 ? String(format: "%.1f it/s", r) : String(format: "%.2f s/it", 1 / max(r, 1e-9))
    }
    static func time(_ s: Double) -> String {
        guard s.isFinite, s < 1e9 else { return "-" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60)
                         : String(format: "%d:%02d", t / 60, t % 60)
    }
}
