import Synchronization

/// The `PCI_COMMAND` bits the data path checks on every transaction (bus master, memory
/// decode), mirrored out of the config-space lock so a DMA pays one atomic load for them.
final class CommandRegisterMirror: Sendable {
    private let bits = Atomic<UInt16>(0)

    static let memorySpace: UInt16 = 0x0002
    static let busMaster: UInt16 = 0x0004

    func update(_ command: UInt16) { bits.store(command, ordering: .releasing) }

    var busMasterEnabled: Bool { bits.load(ordering: .acquiring) & Self.busMaster != 0 }
    var memorySpaceEnabled: Bool { bits.load(ordering: .acquiring) & Self.memorySpace != 0 }
}
