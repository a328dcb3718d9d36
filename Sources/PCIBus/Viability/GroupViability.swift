/// Whether a group can be handed to VFIO: `VFIO_GROUP_FLAGS_VIABLE` (VG-05/VG-06), i.e. no
/// function of the group is bound to a driver that uses the kernel DMA API (`owner_cnt == 0`,
/// OWN-03).
public enum GroupViability: Sendable, Equatable {
    /// Every function is unbound or bound to a `driver_managed_dma` driver.
    case viable
    /// These functions hold the group through their drivers.
    case notViable(blockers: [Blocker])
    /// The source does not say which drivers are bound (a bare dump).
    case unknown(reason: String)

    public struct Blocker: Sendable, Equatable, Codable {
        public let address: PCIAddress
        public let driver: String
    }

    /// Judges a group given the driver bound to each function (absent = unbound).
    public static func of(
        _ group: IsolationGroup, drivers: [PCIAddress: String], driversKnown: Bool
    ) -> GroupViability {
        guard driversKnown else {
            return .unknown(reason: "the source does not say which drivers are bound (a dump carries no drivers)")
        }
        let blockers = group.sortedMembers.compactMap { address -> Blocker? in
            guard let driver = drivers[address], !KernelDriver.managesDMA(driver) else { return nil }
            return Blocker(address: address, driver: driver)
        }
        return blockers.isEmpty ? .viable : .notViable(blockers: blockers)
    }

    public var isViable: Bool { self == .viable }

    /// One sentence, citing the rules.
    public var explanation: String {
        switch self {
        case .viable:
            "viable: every function is unbound or bound to a driver with driver_managed_dma (VG-06)"
        case .notViable(let blockers):
            "not viable: "
                + blockers.map { "\($0.address) is bound to \($0.driver), which uses the kernel DMA API" }.joined(
                    separator: "; ") + " (VG-06, OWN-01: unbind it or bind vfio-pci)"
        case .unknown(let reason):
            "viability unknown: \(reason)"
        }
    }
}
