import PCIBus

/// The groups a command shows. On a host whose IOMMU is on, the kernel's own groups (each
/// function's `iommu_group` link, numbered as `/dev/vfio/N`) are the truth and the computed groups
/// are the explanation; a function whose kernel group and computed group hold different members
/// says so. Elsewhere (a dump, a fixture machine, a host with the IOMMU off) the computed groups,
/// numbered in the simulation's own order.
struct GroupView {
    struct Group {
        /// The kernel's number where `fromKernel`, else the computed one.
        let id: Int
        let members: [PCIAddress]
        /// The computed group with exactly these members, if there is one.
        let computedID: Int?
    }

    /// The groups are the kernel's.
    let fromKernel: Bool
    let groups: [Group]
    private let groupOf: [PCIAddress: Int]
    private let snapshot: BusSnapshot

    init(_ snapshot: BusSnapshot, host: HostIOMMUState?) {
        self.snapshot = snapshot
        let computed = snapshot.grouping.groups
        var computedBySet: [Set<PCIAddress>: Int] = [:]
        for group in computed { computedBySet[Set(group.members)] = group.id }
        if host?.enabled == true, let kernel = snapshot.kernelGroups {
            fromKernel = true
            groups = kernel.sorted { $0.key < $1.key }.map { id, members in
                Group(id: id, members: members.sorted(), computedID: computedBySet[Set(members)])
            }
        } else {
            fromKernel = false
            groups = computed.map { Group(id: $0.id, members: $0.sortedMembers, computedID: $0.id) }
        }
        var groupOf: [PCIAddress: Int] = [:]
        for group in groups { for member in group.members { groupOf[member] = group.id } }
        self.groupOf = groupOf
    }

    /// The group number a function shows: the kernel's on a live host with groups.
    func groupID(of address: PCIAddress) -> Int? { groupOf[address] }

    func group(_ id: Int) -> Group? { groups.first { $0.id == id } }

    /// Where the kernel's group of `address` and the computed one hold different functions: one
    /// sentence naming both. Nil when they agree or there are no kernel groups.
    func difference(of address: PCIAddress) -> String? {
        guard fromKernel else { return nil }
        let computed = snapshot.grouping.group(of: address)
        let kernel = groupOf[address].flatMap(group)
        let computedText = computed.map { "computed group \($0.id) {\($0.sortedMembers.map(\.description).joined(separator: " "))}" }
        switch (kernel, computed) {
        case (nil, nil):
            return nil
        case (nil, _?):
            return "the kernel gave \(address) no group; \(computedText!) would hold it"
        case (let kernel?, nil):
            return "kernel group \(kernel.id) holds \(address); the computed grouping gives it none"
        case (let kernel?, let computed?):
            guard Set(kernel.members) != Set(computed.members) else { return nil }
            return "kernel group \(kernel.id) {\(kernel.members.map(\.description).joined(separator: " "))} differs from the \(computedText!)"
        }
    }
}
