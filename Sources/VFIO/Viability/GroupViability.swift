import IOMMU
import PCIBus

/// Whether a group can be handed to VFIO: `VFIO_GROUP_FLAGS_VIABLE` (VG-05/VG-06), i.e. the
/// group's DMA ownership is unclaimed (`owner_cnt == 0`, OWN-03): no function is bound to a driver
/// that uses the kernel DMA API and no other user owns it.
public enum GroupViability: Sendable, Equatable {
    /// Every function is unbound or bound to a `driver_managed_dma` driver.
    case viable
    /// These functions hold the group through their drivers, or a user owner holds it.
    case notViable(blockers: [Blocker], owner: String?)
    /// The source does not say which drivers are bound (a bare dump).
    case unknown(reason: String)

    public struct Blocker: Sendable, Equatable, Codable {
        public let address: PCIAddress
        public let driver: String
    }

    public var isViable: Bool { self == .viable }

    /// One sentence, citing the rules.
    public var explanation: String {
        switch self {
        case .viable:
            "viable: every function is unbound or bound to a driver with driver_managed_dma (VG-06)"
        case .notViable(let blockers, let owner):
            "not viable: "
                + (blockers.map { "\($0.address) is bound to \($0.driver), which uses the kernel DMA API" }
                    + (owner.map { ["DMA ownership is claimed by \($0)"] } ?? [])).joined(separator: "; ")
                + (blockers.isEmpty ? " (OWN-03)" : " (VG-06, OWN-01: unbind it or bind vfio-pci)")
        case .unknown(let reason):
            "viability unknown: \(reason)"
        }
    }
}

extension GroupViability {
    /// The viability of IOMMU group `id` of `core` (VG-05, VG-06, OWN-03): the one computation
    /// behind `VFIO_GROUP_GET_STATUS` and every report. Nil when the machine has no such group.
    public static func of(group id: Int, in core: IOMMUCore) -> GroupViability? {
        guard let group = core.group(id) else { return nil }
        guard core.driversKnown else {
            return .unknown(reason: "the source does not say which drivers are bound (a dump carries no drivers)")
        }
        guard group.isDMAOwnerClaimed else { return .viable }
        let blockers = group.devices.sorted().compactMap { address -> Blocker? in
            guard let driver = core.device(address)?.driver, !KernelDriver.managesDMA(driver) else { return nil }
            return Blocker(address: address, driver: driver)
        }
        return .notViable(blockers: blockers, owner: group.owner?.name)
    }
}
