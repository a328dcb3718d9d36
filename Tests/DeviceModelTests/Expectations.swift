import KernelRules
import SystemPackage
import Testing
import VFIO

/// Expects `body` to fail with `errno` (and, when given, a message containing `mentioning`).
func expectErrno(
    _ errno: Errno, mentioning: String? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws(VFIOError) -> Void
) {
    do throws(VFIOError) {
        try body()
        Issue.record("expected \(errno.symbolicName), the call succeeded", sourceLocation: sourceLocation)
    } catch {
        #expect(error.errno == errno, "\(error)", sourceLocation: sourceLocation)
        if let mentioning { #expect(error.message.contains(mentioning), "\(error)", sourceLocation: sourceLocation) }
    }
}
