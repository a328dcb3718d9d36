import Locking

/// The kernel's ring buffer as `dmesg` shows it, for the warnings the IOMMU core prints (RD-02,
/// DT-06, DT-08): bounded, oldest first. A failed call may print here — the kernel warns exactly
/// when it refuses — so the log is not part of the core's state that a failed call leaves unchanged.
public final class KernelLog: Sendable {
    /// Lines kept; older ones are dropped, as the ring buffer overwrites them.
    public static let capacity = 1024
    private let lines = PThreadMutex<[String]>([])

    public init() {}

    /// Every line still held, oldest first.
    public var contents: [String] { lines.withLock { $0 } }

    func append(_ line: String) {
        lines.withLock { lines in
            lines.append(line)
            if lines.count > Self.capacity { lines.removeFirst(lines.count - Self.capacity) }
        }
    }
}

extension KernelLog: Equatable {
    /// The same log: the core's state refers to its log, whose lines are not state (see above).
    public static func == (lhs: KernelLog, rhs: KernelLog) -> Bool { lhs === rhs }
}
