import Foundation
import Synchronization
import Testing
import UserMemory
import VFIO

@testable import Syscalls

/// The preload library's observer of `VFIOFileTable` (which descriptors are VFIO files). It was
/// kept as a bare closure in the table's generic mutex, and each notification's `inout` access
/// wrapped it in one more reabstraction thunk: after ~500,000 opens and closes a program's next
/// open overflowed the stack (found by the `preload-symbols` fuzz target: a silent SIGSEGV).
@Suite("VFIOFileTable: the descriptor observer")
struct VFIOFileTableObserverTests {
    @Test("every notification calls the observer at the same stack depth: nothing nests per call")
    func observerDoesNotNest() throws {
        let table = VFIOFileTable()
        // Frames on the stack at each call (counted, not located: AddressSanitizer moves locals
        // to a fake stack of its own).
        let depths = Mutex<[Int]>([])
        table.observe { _, _ in
            let frames = Thread.callStackReturnAddresses.count
            depths.withLock { $0.append(frames) }
        }
        let process = ProcessMemory()
        for _ in 0..<1000 {
            let fd = try table.insert(.container(VFIOContainer(process: process)))
            _ = try table.remove(fd)
        }
        let seen = depths.withLock { $0 }
        #expect(seen.count == 2000)
        // With a thunk more per call the last call ran thousands of frames deeper than the first.
        #expect(Set(seen).count <= 2, "the observer ran at \(Set(seen).count) stack depths, from \(seen.min() ?? 0) to \(seen.max() ?? 0) frames")
    }
}
