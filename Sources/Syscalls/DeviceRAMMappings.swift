import CMMIOTrap
import Glibc
import KernelRules
import Locking
import SystemPackage
import VFIO

/// The device-RAM BAR mappings of this process (`mmap` of a RAM BAR: its memfd, mapped shared)
/// and their zapping (`vfio_pci_zap_bars`, VPCI-103): a zap makes the mapping `PROT_NONE` and
/// registers it with `CMMIOTrap` as zapped; its next access faults, and the fault maps it again
/// (the access then completes) while the device's memory decode is on, or is the program's
/// `SIGBUS` while it is off (`vfio_pci_mmap_huge_fault`, VPCI-102). Register BARs need none of
/// this: every access of theirs traps and checks decode already.
final class DeviceRAMMappings: Sendable {
    static let shared = DeviceRAMMappings()

    private struct Mapping {
        let start: UInt
        let length: Int
        let protection: Int32
        let device: VFIODevice
        var token: UInt64 = 0
        var zapped = false
    }

    private struct State {
        var mappings: [UInt64: Mapping] = [:]
        var nextCookie: UInt64 = 1
    }

    private let state = PThreadMutex(State())

    /// Tracks a RAM BAR mapping of `device` at `[start, start + length)` mapped with `protection`.
    func add(start: UInt, length: Int, protection: Int32, device: VFIODevice) throws(VFIOError) {
        guard vfiokit_zap_install(DeviceRAMMappings.refault) == 0 else {
            throw VFIOError(Errno(rawValue: Glibc.errno), rule: .none, "mmap \(device): zapped mappings cannot be faulted back here (x86-64 only)")
        }
        let cookie = state.withLock { state in
            defer { state.nextCookie += 1 }
            state.mappings[state.nextCookie] = Mapping(start: start, length: length, protection: protection, device: device)
            return state.nextCookie
        }
        let token = device.addBARMapping { DeviceRAMMappings.shared.zap(cookie) }
        state.withLock { $0.mappings[cookie]?.token = token }
    }

    /// An munmap of `[start, start + length)`: the mappings inside it are forgotten (a mapping
    /// only partly unmapped stays tracked whole; zapping its gone part is harmless).
    func remove(start: UInt, length: Int) {
        let end = start + UInt(length)
        let gone: [Mapping] = state.withLock { state in
            let inside = state.mappings.filter { $0.value.start >= start && $0.value.start + UInt($0.value.length) <= end }
            for cookie in inside.keys { state.mappings[cookie] = nil }
            return Array(inside.values)
        }
        for mapping in gone { mapping.device.removeBARMapping(mapping.token) }
    }

    /// `unmap_mapping_range` for one mapping: no access reaches it until it faults back in.
    private func zap(_ cookie: UInt64) {
        state.withLock { state in
            guard var mapping = state.mappings[cookie], !mapping.zapped else { return }
            guard mprotect(UnsafeMutableRawPointer(bitPattern: mapping.start), mapping.length, PROT_NONE) == 0,
                vfiokit_zap_add(mapping.start, mapping.length, cookie) == 0
            else { return }
            mapping.zapped = true
            state.mappings[cookie] = mapping
        }
    }

    /// The fault on a zapped mapping (signal context): mapped again with its protection when the
    /// device's memory decode is on and the user does not hold it in low power (VPCI-253), else
    /// SIGBUS.
    private static let refault: vfiokit_refault_fn = { cookie in
        DeviceRAMMappings.shared.state.withLock { state in
            guard var mapping = state.mappings[cookie], mapping.zapped, mapping.device.memoryDecodeEnabled, !mapping.device.lowPowerEngaged else { return SIGBUS }
            _ = vfiokit_trap_remove(mapping.start, mapping.length)
            guard mprotect(UnsafeMutableRawPointer(bitPattern: mapping.start), mapping.length, mapping.protection) == 0 else { return SIGBUS }
            mapping.zapped = false
            state.mappings[cookie] = mapping
            return 0
        }
    }
}
