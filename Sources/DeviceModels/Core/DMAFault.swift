import IOMMU
import KernelRules
import PCIBus
import SystemPackage

/// Why a device's DMA did not complete, as the device sees it (an Unsupported Request or a
/// Completer Abort on the bus, an IOMMU fault behind it). The bytes before the failing address
/// were transferred — a DMA engine's partial completion.
public struct DMAFault: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        /// `PCI_COMMAND_MASTER` is clear: the function may not issue requests at all.
        case busMasterDisabled
        /// The IOMMU refused the translation (recorded in its `FaultLog`).
        case iommu(IOFaultReason)
        /// The translated address is not memory the process allocated: nothing answers there.
        case unbackedMemory(hostAddress: UInt64)
        /// The program's own pinned memory is no longer mapped accessibly at the host address:
        /// it mapped something else over DMA-mapped pages (`MAP_FIXED`). Linux's device would
        /// go on reaching the pinned pages unseen; the simulation, whose pages are the program's
        /// addresses, ends the transfer there.
        case unmappedMemory(hostAddress: UInt64)
        /// A peer-to-peer request reached a peer's register BAR, which takes no DMA.
        case peerRegisters(PCIAddress)
        /// The device is not part of a simulated machine, so it has no bus to master.
        case notAttached

        public var description: String {
            switch self {
            case .busMasterDisabled: "bus master enable is off (PCI_COMMAND_MASTER)"
            case .iommu(let reason): "IOMMU fault: \(reason)"
            case .unbackedMemory(let host): "no process memory at host address 0x\(String(host, radix: 16))"
            case .unmappedMemory(let host): "the program mapped something else over DMA-mapped memory at host address 0x\(String(host, radix: 16)) (MAP_FIXED over pinned pages)"
            case .peerRegisters(let peer): "peer-to-peer request hit \(peer)'s register BAR"
            case .notAttached: "device is not attached to a machine"
            }
        }
    }

    public let requester: PCIAddress
    public let iova: UInt64
    public let access: IOAccess
    public let reason: Reason
    /// Bytes of the transfer that completed before the fault.
    public let bytesCompleted: UInt64

    /// `EFAULT` for translation faults, `EIO` for a transaction nobody completes.
    public var errno: Errno {
        switch reason {
        case .iommu, .busMasterDisabled: .badAddress
        default: .ioError
        }
    }

    public var description: String {
        "\(errno.symbolicName): DMA \(access) by \(requester) at IOVA 0x\(String(iova, radix: 16)) failed after \(bytesCompleted) bytes: \(reason)"
    }
}
