import Autograd
import Foundation

/// A lock file that marks a folder as in use by one process (a training run's --out): it holds
/// the owner's pid, and the owner holds an flock on it, which the kernel drops when the process
/// ends however it ends (kill -9 included). A lock file left by a process that no longer runs
/// is therefore free and is taken over; one held by a running process is refused.
public final class RunLock {
    public let path: String
    private var fd: Int32

    /// Takes the lock or throws naming the process that holds it.
    public init(_ path: String) throws {
        self.path = path
        while true {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw TensorError("\(path): cannot create the lock file (\(String(cString: strerror(errno))))")
            }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let busy = errno == EWOULDBLOCK
                let why = String(cString: strerror(errno))
                let owner = RunLock.owner(fd)
                close(fd)
                guard busy else { throw TensorError("\(path): cannot lock (\(why))") }
                let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
                let pid = owner.map(String.init) ?? "(unknown pid)"
                throw TensorError("\(folder) is in use by process \(pid) (it holds \(path)); "
                                  + "wait for it to finish or choose another folder")
            }
            // The file may have been removed (its owner finished) between open and flock: then
            // this lock guards nothing; start again on the file now at `path`.
            var mine = stat(), current = stat()
            guard fstat(fd, &mine) == 0, stat(path, &current) == 0, mine.st_ino == current.st_ino,
                  mine.st_dev == current.st_dev else {
                close(fd)
                continue
            }
            let text = Array("\(getpid())\n".utf8)
            guard ftruncate(fd, 0) == 0, pwrite(fd, text, text.count, 0) == text.count else {
                let why = String(cString: strerror(errno))
                close(fd)
                throw TensorError("\(path): cannot write the lock file (\(why))")
            }
            self.fd = fd
            return
        }
    }

    deinit { release() }

    /// Removes the lock file and drops the lock (also done when the object goes away).
    public func release() {
        guard fd >= 0 else { return }
        unlink(path)
        close(fd)
        fd = -1
    }

    /// The pid written in an open lock file, if it reads as one.
    static func owner(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = pread(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
