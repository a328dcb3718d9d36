import CMMIOTrap
import Glibc
import KernelRules
import Locking
import SystemPackage
import VFIO

/// The register BARs mapped into this process: each mapping is a trapped window (`CMMIOTrap`)
/// whose cookie names the device and BAR here. A load or store in a window becomes one
/// `VFIODevice.mappedAccess` of the instruction's width (what the CPU's access reaches);
/// an access the device refuses (memory decode off, VPCI-92) or any access while the user holds
/// the device in low power (VPCI-253) is the program's `SIGBUS`.
final class RegisterWindows: Sendable {
    static let shared = RegisterWindows()

    private struct Target {
        let device: VFIODevice
        let bar: Int
    }

    private struct State {
        var targets: [UInt64: Target] = [:]
        var nextCookie: UInt64 = 1
    }

    private let state = PThreadMutex(State())

    func add(start: UInt, length: Int, device: VFIODevice, bar: Int, offset: UInt64, writable: Bool) throws(VFIOError) {
        guard vfiokit_trap_install(RegisterWindows.emulate) == 0 else {
            throw VFIOError(Errno(rawValue: Glibc.errno), rule: .none, "mmap \(device) BAR\(bar): register accesses cannot be trapped here (x86-64 only)")
        }
        let cookie = state.withLock { state in
            defer { state.nextCookie += 1 }
            state.targets[state.nextCookie] = Target(device: device, bar: bar)
            return state.nextCookie
        }
        guard vfiokit_trap_add(start, length, cookie, offset, writable ? 1 : 0) == 0 else {
            _ = state.withLock { $0.targets.removeValue(forKey: cookie) }
            throw VFIOError(.noSpace, rule: .none, "mmap \(device) BAR\(bar): every trapped window of the process is in use")
        }
    }

    /// Stops trapping `[start, start + length)`; targets no window names any more are dropped.
    func remove(start: UInt, length: Int) {
        guard vfiokit_trap_remove(start, length) > 0 else { return }
        state.withLock { state in
            state.targets = state.targets.filter { cookie, _ in vfiokit_trap_cookie_in_use(cookie) != 0 }
        }
    }

    private func target(_ cookie: UInt64) -> Target? { state.withLock { $0.targets[cookie] } }

    /// The trap's access function: one BAR access, little-endian, through vfio-pci's BAR path.
    private static let emulate: vfiokit_mmio_access_fn = { cookie, offset, width, isWrite, value in
        guard let value, let target = RegisterWindows.shared.target(cookie) else { return SIGBUS }
        // vfio_pci_mmap_huge_fault: no page for a mapping while the user holds low power (VPCI-253).
        guard !target.device.lowPowerEngaged else { return SIGBUS }
        do throws(VFIOError) {
            var word = value.pointee.littleEndian
            try withUnsafeMutableBytes(of: &word) { (bytes) throws(VFIOError) in
                let access = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<Int(width)])
                try target.device.mappedAccess(bar: target.bar, offset: offset, access, write: isWrite != 0)
            }
            if isWrite == 0 { value.pointee = UInt64(littleEndian: word) & (width == 8 ? .max : (1 << (8 * UInt64(width))) - 1) }
            return 0
        } catch {
            return SIGBUS
        }
    }
}
