import KernelRules
/// Why one function is in its group: the rule of `pci_device_group` that put it there, the
/// function or port responsible, and the facts that decided it.
public struct GroupMembership: Sendable, Codable, Equatable {
    /// Spec rule: `IG-10` (DMA alias of a bridge), `IG-11` (ACS upstream walk), `IG-12` (DMA alias
    /// on the same bus), `IG-13` (multifunction sibling), `IG-14` (new group).
    public let rule: RuleID
    /// The function whose group this one joined (nil for a new group).
    public let joined: PCIAddress?
    /// One sentence.
    public let summary: String
    /// The facts behind it (ACS verdicts, alias steps), each naming its rule.
    public let details: [String]
}

/// One IOMMU group as `pci_device_group` forms it: an ID (lowest free, IG-02) and its members in
/// the order they joined. Mirrors `struct iommu_group` (IG-01) as far as topology decides it.
public struct IsolationGroup: Sendable, Identifiable {
    public let id: Int
    public internal(set) var members: [PCIAddress]
    public internal(set) var memberships: [PCIAddress: GroupMembership]

    /// Members in address order (as sysfs lists them).
    public var sortedMembers: [PCIAddress] { members.sorted() }
}

/// A function the IOMMU does not cover, and why.
public struct UngroupedFunction: Sendable, Codable, Equatable {
    public let address: PCIAddress
    public let reason: String
}

extension PCIAddress: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let address = PCIAddress(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a PCI address: \(text)"))
        }
        self = address
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
