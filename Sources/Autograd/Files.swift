import Foundation

/// How every file of the project is opened for reading and written: reads accept regular files
/// only (a FIFO would block, /dev/zero never ends), and writes are atomic.
public enum Files {
    /// Throws unless `path` is an existing regular file (after symlinks): "no such file", "is a
    /// directory" or "not a regular file (a FIFO)" instead of a hang or a misleading OS message.
    public static func checkRegular(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let why = errno == ENOENT || errno == ENOTDIR
                ? "no such file" : "cannot read (\(String(cString: strerror(errno))))"
            throw TensorError("\(path): \(why)")
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: throw TensorError("\(path): is a directory, not a file")
        case S_IFIFO: throw TensorError("\(path): not a regular file (a FIFO)")
        case S_IFCHR: throw TensorError("\(path): not a regular file (a character device)")
        case S_IFBLK: throw TensorError("\(path): not a regular file (a block device)")
        case S_IFSOCK: throw TensorError("\(path): not a regular file (a socket)")
        default: throw TensorError("\(path): not a regular file")
        }
    }

    /// The whole content of a regular file.
    public static func read(_ path: String) throws -> Data {
        try checkRegular(path)
        guard let h = FileHandle(forReadingAtPath: path) else {
            throw TensorError("\(path): cannot open (\(String(cString: strerror(errno))))")
        }
        defer { try? h.close() }
        do {
            return try h.readToEnd() ?? Data()
        } catch {
            throw TensorError("\(path): cannot read (\(error))")
        }
    }
}

/// Temp file + fsync + rename: readers see the old file or the new one, never a partial one.
/// The temp file is `.NAME.tmp-PID` beside the target; it is removed when a write fails, and
/// those of processes that no longer run (a kill mid-write) are removed by the next write of
/// the same file.
public enum AtomicFile {
    /// Sequential writes into the temp file; errors name the file and the OS reason.
    public final class Writer {
        let fd: Int32
        let path: String
        init(fd: Int32, path: String) { self.fd = fd; self.path = path }

        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            var offset = 0
            while offset < bytes.count {
                guard let base = bytes.baseAddress else { return }
                let n = Glibc.write(fd, base + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw TensorError("\(path): write failed (\(String(cString: strerror(errno))))")
                }
                offset += n
            }
        }

        public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }
        public func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }
        public func write(contentsOf data: Data) throws { try write(data) }
    }

    /// The temp file a write of `path` uses in this process.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
    }

    /// Removes `.NAME.tmp-PID` files of `path` left by processes that are not running.
    public static func removeStaleTemporaries(for path: String) {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let prefix = ".\(url.lastPathComponent).tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid > 0, pid != getpid(),
                  !processIsRunning(pid) else { continue }
            unlink("\(dir)/\(name)")
        }
    }

    static func processIsRunning(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

    public static func write(_ path: String, _ body: (Writer) throws -> Void) throws {
        try withoutActuallyEscaping(body) { try writeAll([(path, $0)]) }
    }

    public static func write(_ path: String, bytes: [UInt8]) throws {
        try writeAll([(path, { try $0.write(bytes) })])
    }

    /// Writes several files as a set: every temp file is complete and synced before the first
    /// rename, so a failed write (a full disk) leaves all the old files in place.
    public static func writeAll(_ files: [(path: String, body: (Writer) throws -> Void)]) throws {
        var temporaries: [String] = []
        func removeTemporaries() { for t in temporaries { unlink(t) } }
        for (path, body) in files {
            let url = URL(fileURLWithPath: path)
            let dir = url.deletingLastPathComponent().path
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
                removeTemporaries()
                throw TensorError("\(path): folder \(dir) does not exist")
            }
            removeStaleTemporaries(for: path)
            let tmp = temporaryPath(for: path)
            let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                let why = String(cString: strerror(errno))
                removeTemporaries()
                throw TensorError("\(path): cannot create \(tmp) (\(why))")
            }
            temporaries.append(tmp)
            do {
                try body(Writer(fd: fd, path: path))
                guard fsync(fd) == 0 else {
                    throw TensorError("\(path): write failed (\(String(cString: strerror(errno))))")
                }
            } catch {
                close(fd)
                removeTemporaries()
                let message = (error as? TensorError)?.message ?? "\(path): write failed (\(error))"
                throw TensorError("\(message); the previous file is untouched")
            }
            guard close(fd) == 0 else {
                let why = String(cString: strerror(errno))
                removeTemporaries()
                throw TensorError("\(path): write failed (\(why)); the previous file is untouched")
            }
        }
        for (k, (path, _)) in files.enumerated() {
            guard rename(temporaries[k], path) == 0 else {
                let why = String(cString: strerror(errno))
                removeTemporaries()
                throw TensorError("\(path): cannot rename the temp file into place (\(why))")
            }
        }
        // the renames themselves reach the disk with the folder
        for dir in Set(files.map { URL(fileURLWithPath: $0.path).deletingLastPathComponent().path }) {
            let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 { fsync(fd); close(fd) }
        }
    }
}
