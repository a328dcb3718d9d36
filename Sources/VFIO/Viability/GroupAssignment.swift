import IOMMU
import PCIBus

/// Whether VFIO could take a group right now, and why not: it must be viable (VG-06, OWN-03) and
/// no device may require a 1:1 mapping, since claiming attaches the blocking domain (RD-02, RD-03).
public struct GroupAssignment: Sendable, Equatable {
    public let viability: GroupViability
    /// Devices with a `direct` reserved region: claiming the group fails with `EINVAL`.
    public let requireDirect: [PCIAddress]

    /// Nil when viability is unknown and nothing else rules the group out.
    public var isAssignable: Bool? {
        if !requireDirect.isEmpty { return false }
        if case .unknown = viability { return nil }
        return viability.isViable
    }

    /// One paragraph, citing the rules.
    public var explanation: String {
        guard !requireDirect.isEmpty else { return viability.explanation }
        let devices = requireDirect.map(\.description).joined(separator: ", ")
        let direct =
            "not assignable: firmware requires a 1:1 mapping for \(devices) (direct reserved region); claiming the group attaches the blocking domain, which the kernel refuses with EINVAL (RD-02, RD-03)"
        return viability.isViable ? direct : direct + "; also " + viability.explanation
    }
}

extension IOMMUCore {
    /// What `vfiokit groups` reports about taking the group for VFIO.
    /// Nil when the machine has no such group.
    public func assignment(of id: Int) -> GroupAssignment? {
        guard let group = group(id), let viability = GroupViability.of(group: id, in: self) else { return nil }
        let requireDirect = group.devices.filter { device($0)?.requireDirect == true }.sorted()
        return GroupAssignment(viability: viability, requireDirect: requireDirect)
    }
}
