/// The computed groups against the kernel's own (`/sys/kernel/iommu_groups`, read through each
/// function's `iommu_group` link), as sets: the kernel numbers groups in its own probe order,
/// which a snapshot cannot see, so only membership is compared.
public struct KernelGroupComparison: Sendable, Equatable, Codable {
    /// The source has kernel groups to compare with.
    public let available: Bool
    /// One line: how many kernel groups matched, how many differences, or why there is nothing to compare.
    public let summary: String
    /// One line per kernel group without a computed equal and per computed group without a kernel equal.
    public let mismatches: [String]

    public var matches: Bool { available && mismatches.isEmpty }

    public init(_ snapshot: BusSnapshot) {
        guard let kernel = snapshot.kernelGroups else {
            available = false
            mismatches = []
            summary =
                switch snapshot.origin {
                case .host: "this host's sysfs shows no IOMMU groups (no IOMMU, or it is off): showing computed groups only"
                case .dump: "a dump carries no kernel groups: showing computed groups only"
                case .machine: "a fixture machine has expected groups in its manifest, not kernel groups"
                }
            return
        }
        let computed = Set(snapshot.grouping.groups.map { Set($0.members) })
        let kernelSets = Set(kernel.values.map { Set($0) })
        var mismatches: [String] = []
        for (id, members) in kernel.sorted(by: { $0.key < $1.key }) where !computed.contains(Set(members)) {
            mismatches.append("kernel group \(id) {\(members.sorted().map(\.description).joined(separator: " "))} has no computed equal")
        }
        for group in snapshot.grouping.groups where !kernelSets.contains(Set(group.members)) {
            mismatches.append("computed group \(group.id) {\(group.sortedMembers.map(\.description).joined(separator: " "))} has no kernel equal")
        }
        available = true
        self.mismatches = mismatches
        summary =
            mismatches.isEmpty
            ? "all \(kernel.count) kernel groups match the computed ones"
            : "\(mismatches.count) differences between the kernel's \(kernel.count) groups and the \(snapshot.grouping.groups.count) computed ones"
    }
}
