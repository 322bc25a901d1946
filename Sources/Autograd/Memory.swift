import Foundation

/// How much memory the process can still take, so that a large request (a dataset, a batch, a
/// grid) is refused with a message before the allocation instead of aborting in it or waking
/// the OOM killer.
public enum Memory {
    /// Requests below this are not checked (reading /proc costs more than they risk).
    static let checkedFrom = 64 << 20

    /// Bytes still available: the smallest of the system's available memory (MemAvailable +
    /// SwapFree), the cgroup's headroom, and the headroom under the address-space (ulimit -v)
    /// and data-segment limits. nil when none of them can be read.
    public static func available() -> Int? {
        var candidates: [Int] = []
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        if let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            func kB(_ key: String) -> Int? {
                guard let line = info.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else {
                    return nil
                }
                return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
            }
            if let a = kB("MemAvailable") { candidates.append(a + (kB("SwapFree") ?? 0)) }
        }
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
                .compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if fields.count >= 6 {
                // statm: total size, ..., data + stack (pages)
                if let limit = softLimit(__rlimit_resource_t(RLIMIT_AS.rawValue)) {
                    candidates.append(limit - fields[0] * page)
                }
                if let limit = softLimit(__rlimit_resource_t(RLIMIT_DATA.rawValue)) {
                    candidates.append(limit - fields[5] * page)
                }
            }
        }
        if let headroom = cgroupHeadroom() { candidates.append(headroom) }
        return candidates.min().map { Swift.max($0, 0) }
    }

    static func softLimit(_ resource: __rlimit_resource_t) -> Int? {
        var r = rlimit()
        guard getrlimit(resource, &r) == 0, r.rlim_cur < UInt(Int.max) else { return nil }
        return Int(r.rlim_cur)
    }

    /// memory.max - memory.current of the process's cgroup (v2), or the v1 equivalents.
    static func cgroupHeadroom() -> Int? {
        func number(_ path: String) -> Int? {
            (try? String(contentsOfFile: path, encoding: .utf8))
                .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        if let own = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
           let line = own.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) {
            let dir = "/sys/fs/cgroup" + line.dropFirst(3)
            if let max = number(dir + "/memory.max"), let current = number(dir + "/memory.current") {
                return max - current
            }
        }
        if let max = number("/sys/fs/cgroup/memory/memory.limit_in_bytes"), max < 1 << 60,
           let used = number("/sys/fs/cgroup/memory/memory.usage_in_bytes") {
            return max - used
        }
        return nil
    }

    /// Throws when `bytes` exceed what is available, naming `what` and both sizes.
    public static func check(bytes: Int, for what: String) throws {
        guard bytes >= checkedFrom, let free = available(), bytes > free else { return }
        throw TensorError("\(what) needs \(describe(bytes)) of memory, but only \(describe(free)) is available")
    }

    public static func describe(_ bytes: Int) -> String {
        bytes >= 1 << 30 ? String(format: "%.1f GiB", Double(bytes) / Double(1 << 30))
            : String(format: "%.0f MiB", Double(bytes) / Double(1 << 20))
    }
}

extension Shape {
    /// checkedCount, then the memory check for that many floats: for tensors a caller sizes.
    public static func checkedAllocation(_ shape: [Int], op: String) throws -> Int {
        let n = try checkedCount(shape, op: op)
        try Memory.check(bytes: 4 * n, for: "\(op): shape \(describe(shape))")
        return n
    }
}
