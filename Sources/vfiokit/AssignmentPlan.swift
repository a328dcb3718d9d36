import IOMMU
import KernelRules
import PCIBus
import VFIO

/// What to type to hand a group to VFIO, and what no command fixes: `driverctl set-override BDF
/// vfio-pci` for every endpoint not yet on vfio-pci, the bridges that may stay bound to pcieport
/// (it sets `driver_managed_dma`, VG-06), the `vfio-pci.ids=` alternative at boot, and the blockers —
/// the IOMMU off, a 1:1-mapped reserved region (RMRR, RD-02/03), the ports without ACS that widened
/// the group.
struct AssignmentPlan: Encodable {
    struct Binding: Encodable {
        let address: String
        @Nullable var driver: String?
        /// "bind-vfio-pci": the command below is needed; "keep": it may stay as it is; "done": already vfio-pci.
        let action: String
        /// The command, when `action` is "bind-vfio-pci"; null otherwise.
        @Nullable var command: String?
        let note: String

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(address, forKey: .address)
            try container.encode(driver, forKey: .driver)
            try container.encode(action, forKey: .action)
            try container.encode(command, forKey: .command)
            try container.encode(note, forKey: .note)
        }
        enum Keys: String, CodingKey { case address, driver, action, command, note }
    }
    struct Blocker: Encodable {
        /// "iommu-off", "rmrr" or "acs".
        let kind: String
        /// The function or port to blame; null for the host as a whole.
        @Nullable var address: String?
        let detail: String

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(kind, forKey: .kind)
            try container.encode(address, forKey: .address)
            try container.encode(detail, forKey: .detail)
        }
        enum Keys: String, CodingKey { case kind, address, detail }
    }

    let group: Int
    let bindings: [Binding]
    /// The commands to run, in order (the `command` of every binding that needs one).
    let commands: [String]
    /// The boot-time alternative: `vfio-pci.ids=...` for the kernel command line, with what else it takes.
    @Nullable var idsAlternative: String?
    /// What stops the group from being assigned whatever is bound; empty when nothing does.
    let blockers: [Blocker]
    /// Why the group holds more than one function, one line per function that joined another.
    let widenedBy: [String]

    init(_ machine: LoadedMachine, group shown: GroupView.Group) {
        let snapshot = machine.snapshot
        let topology = snapshot.topology
        group = shown.id
        var bindings: [Binding] = []
        var ids: [String] = []
        for address in shown.members {
            guard let function = topology[address] else { continue }
            let driver = snapshot.drivers[address]
            let command = "driverctl set-override \(address) vfio-pci"
            if function.isBridge {
                let note = driver.map { KernelDriver.managesDMA($0) ? "a bridge: \($0) may stay bound (driver_managed_dma); bridges are not assigned" : "a bridge bound to \($0), which uses the kernel DMA API: unbind it" }
                    ?? "a bridge with no driver: nothing to do"
                let keep = driver.map(KernelDriver.managesDMA) ?? true
                bindings.append(Binding(address: address.description, driver: driver, action: keep ? "keep" : "bind-vfio-pci", command: keep ? nil : command, note: note))
                continue
            }
            if !ids.contains(function.vendorDeviceText) { ids.append(function.vendorDeviceText) }
            if let driver, KernelDriver.isVFIO(driver) {
                bindings.append(Binding(address: address.description, driver: driver, action: "done", command: nil, note: "already bound to \(driver)"))
            } else if !snapshot.driversKnown {
                bindings.append(Binding(address: address.description, driver: nil, action: "bind-vfio-pci", command: command, note: "the source does not say what is bound"))
            } else {
                let note = driver.map { "now \($0)\(KernelDriver.managesDMA($0) ? "" : ", which blocks the group until replaced")" } ?? "unbound: bind vfio-pci to open it"
                bindings.append(Binding(address: address.description, driver: driver, action: "bind-vfio-pci", command: command, note: note))
            }
        }
        self.bindings = bindings
        commands = bindings.compactMap(\.command)
        if ids.isEmpty {
            idsAlternative = nil
        } else {
            let members = Set(shown.members)
            let others = topology.functions.filter { !members.contains($0.address) && ids.contains($0.vendorDeviceText) }.map(\.address.description)
            let natives = Set(shown.members.compactMap { address in snapshot.drivers[address].flatMap { KernelDriver.isVFIO($0) || topology[address]?.isBridge == true ? nil : $0 } }).sorted()
            idsAlternative =
                "vfio-pci.ids=\(ids.joined(separator: ",")) on the kernel command line"
                + (natives.isEmpty
                    ? ""
                    : " (vfio-pci must load before \(natives.joined(separator: ", ")): \(natives.map { "softdep \($0) pre: vfio-pci" }.joined(separator: "; ")) in /etc/modprobe.d)")
                + (others.isEmpty ? "" : "; it also takes \(others.joined(separator: ", ")), which share\(others.count == 1 ? "s" : "") the ID")
        }

        var blockers: [Blocker] = []
        if let host = machine.host, !host.enabled {
            blockers.append(Blocker(kind: "iommu-off", address: nil, detail: "\(host.reason!); \(host.remedy.joined(separator: "; "))"))
        }
        if let computed = shown.computedID, let assignment = machine.assignment(of: computed) {
            for address in assignment.requireDirect {
                blockers.append(
                    Blocker(
                        kind: "rmrr", address: address.description,
                        detail: "\(address) has a firmware 1:1 mapping (RMRR / direct reserved region): VFIO's claim of the group fails with EINVAL whatever is bound (RD-02, RD-03)"))
            }
        }
        var blamed: [PCIAddress] = []
        var widenedBy: [String] = []
        let grouping = snapshot.grouping
        if shown.members.count > 1 {
            for address in shown.members {
                // Only a port inside the group widened it: below it, the walk stopped there (IG-11).
                for hop in grouping.upstreamPath(of: address) where !hop.verdict.enabled && shown.members.contains(hop.bridge) && !blamed.contains(hop.bridge) {
                    blamed.append(hop.bridge)
                    let type = topology[hop.bridge]?.pciePortType?.description ?? "bridge"
                    blockers.append(
                        Blocker(
                            kind: "acs", address: hop.bridge.description,
                            detail: "\(hop.bridge) (\(type)) does not isolate what is below it: \(hop.verdict.detail) (\(hop.verdict.rule.id)); only ACS at that port (firmware setting, a kernel ACS quirk for the device) splits the group"))
                }
                if let membership = grouping.membership(of: address), let joined = membership.joined {
                    // IG-13: the functions of one device without ACS; the device itself is to blame.
                    if membership.rule.id == "IG-13", !blamed.contains(joined) {
                        blamed.append(joined)
                        blockers.append(
                            Blocker(
                                kind: "acs", address: joined.description,
                                detail: "the functions of multifunction device \(joined) provide no ACS, so none of them can be assigned apart from the others (IG-13)"))
                    }
                    widenedBy.append("\(address) joined \(joined): \(membership.summary) (\(membership.rule.id))")
                }
            }
        }
        self.blockers = blockers
        self.widenedBy = widenedBy
    }

    /// The plan as text, indented under a heading.
    var lines: [String] {
        var lines = ["To assign IOMMU group \(group) to VFIO (every function in it goes together):"]
        for binding in bindings {
            if let command = binding.command {
                lines.append("  \(command)    # \(binding.note)")
            } else {
                lines.append("  \(binding.address): \(binding.note)")
            }
        }
        if commands.isEmpty { lines.append("  nothing to bind: every endpoint is on vfio-pci") }
        if let idsAlternative { lines.append("  or, at boot: \(idsAlternative)") }
        if !blockers.isEmpty {
            lines.append("What blocks it otherwise:")
            for blocker in blockers { lines.append("  \(blocker.kind): \(blocker.detail)") }
        }
        if !widenedBy.isEmpty {
            lines.append("Why the group holds more than one function:")
            widenedBy.forEach { lines.append("  \($0)") }
        }
        return lines
    }
}
