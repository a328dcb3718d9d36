import Glibc

/// The file the `dump` target rewrites for every input, because libpci's dump reader only reads
/// paths: one per process, in memory (`/dev/shm`) where the system has it, removed at exit.
enum ScratchFile {
    static let path: String = {
        let directory = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        let path = "\(directory)/vfiokit-fuzz-dump-\(getpid())"
        atexit { unlink(ScratchFile.path) }
        return path
    }()

    /// Replaces the file's contents with `data`; returns its path. Failing to write scratch
    /// memory is the harness's own failure, not a finding, so it stops the run.
    static func write(_ data: UnsafeRawBufferPointer) -> String {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "\(path): cannot create the scratch file (errno \(errno))")
        defer { close(fd) }
        var offset = 0
        while offset < data.count {
            let written = Glibc.write(fd, data.baseAddress! + offset, data.count - offset)
            precondition(written > 0, "\(path): cannot write the scratch file (errno \(errno))")
            offset += written
        }
        return path
    }
}
