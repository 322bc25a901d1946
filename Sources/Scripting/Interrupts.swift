import Foundation

/// SIGINT/SIGTERM: the first sets a flag that recipes poll (`ddpm.interrupted()`) so they can
/// checkpoint and exit; a second one restores the default action and re-raises (kills at once).
/// The flag lives in memory allocated before the handler is installed, so the handler only
/// performs a plain store (async-signal-safe); C statics in a header would be duplicated per
/// compilation unit.
public enum Interrupts {
    /// Global because a signal handler is a C function pointer with no context.
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
