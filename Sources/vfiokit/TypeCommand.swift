import ArgumentParser
import IOMMU
import KernelRules
import PCIBus
import SystemPackage

/// `vfiokit type GROUP [VALUE]`: reads a group's sysfs `type` (SYS-01) or plays a write to it
/// (`iommu_group_store_type`, DT-01..09) on the loaded machine — a what-if: nothing persists.
struct TypeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "type",
        abstract: "Show a group's default domain type, or try changing it (what-if; nothing persists).",
        discussion: """
            VALUE is what would be written to /sys/kernel/iommu_groups/GROUP/type: identity, DMA, DMA-FQ or auto. \
            --unbind unbinds drivers of the group's functions first, as an administrator must for any change but \
            DMA → DMA-FQ (DT-05); a function outside the group, or not a PCI address, is a usage error (64). \
            Exit status 1 when the kernel would refuse the write; the error names the errno and the rule.
            """)

    @Argument(help: "The IOMMU group ID.")
    var group: Int

    @Argument(help: "The type to write: identity, DMA, DMA-FQ or auto.")
    var value: String?

    @Option(name: .long, parsing: .upToNextOption, help: "Unbind these functions' drivers before writing.")
    var unbind: [String] = []

    @Flag(name: .long, help: "Write without CAP_SYS_ADMIN and CAP_SYS_RAWIO (DT-01).")
    var unprivileged = false

    @OptionGroup var source: SourceOptions

    struct Outcome: Encodable {
        let group: Int
        let before: String
        let requested: String?
        let unbound: [String]
        let after: String
        /// The kernel's refusal, in the shape of every `--json` error; null when the write succeeded.
        let error: ErrorReport.Body?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(group, forKey: .group)
            try container.encode(before, forKey: .before)
            try container.encode(requested, forKey: .requested)
            try container.encode(unbound, forKey: .unbound)
            try container.encode(after, forKey: .after)
            try container.encode(error, forKey: .error)
        }
        enum Keys: String, CodingKey { case group, before, requested, unbound, after, error }
    }

    func validate() throws {
        for text in unbind where PCIAddress(parsing: text) == nil {
            throw ValidationError("--unbind \(text): not a PCI address ([[DOMAIN:]BUS:]DEVICE.FUNCTION)")
        }
    }

    func run() throws {
        let machine = try source.loadMachine()
        machine.reliability.announce(json: source.json)
        guard let core = machine.iommu else {
            try reportError(errno: "ENODEV", "\(machine.snapshot.sourceLabel) has no IOMMU groups to change", json: source.json)
            throw ExitCode(65)
        }
        // On a host with kernel groups GROUP is the kernel's number (/dev/vfio/GROUP); the what-if
        // plays on the computed group with the same members.
        let computedID: Int
        if machine.view.fromKernel {
            guard let shown = machine.view.group(group) else {
                try reportError(errno: "ENOENT", "no IOMMU group \(group) in \(machine.snapshot.sourceLabel) (/sys/kernel/iommu_groups has \(machine.view.groups.map { String($0.id) }.joined(separator: " ")))", json: source.json)
                throw ExitCode(65)
            }
            guard let equal = shown.computedID else {
                try reportError(
                    errno: "EOPNOTSUPP",
                    "kernel group \(group) {\(shown.members.map(\.description).joined(separator: " "))} has no computed equal, so the what-if cannot play it (see vfiokit groups --group \(group) --verbose)",
                    json: source.json)
                throw ExitCode(65)
            }
            computedID = equal
        } else {
            computedID = group
        }
        guard let current = core.group(computedID) else {
            try reportError(errno: "ENOENT", "no IOMMU group \(group) in \(machine.snapshot.sourceLabel)", json: source.json)
            throw ExitCode(65)
        }
        let before = String(current.sysfsType.dropLast())
        // Only the group's own functions: an administrator changing group N unbinds N's drivers.
        let addresses = unbind.compactMap(PCIAddress.init(parsing:))
        if let stranger = addresses.first(where: { !current.devices.contains($0) }) {
            let whose = core.device(stranger).map { "it is in IOMMU group \(machine.view.groupID(of: stranger) ?? $0.groupID)" } ?? "\(machine.snapshot.sourceLabel) has no such function"
            try reportError(errno: "EINVAL", "--unbind \(stranger): not a function of IOMMU group \(group) (\(whose)); the group's functions: \(current.devices.map(\.description).joined(separator: ", "))", json: source.json)
            throw ExitCode(64)
        }
        var failure: IOMMUError?
        var unbound: [String] = []
        do throws(IOMMUError) {
            for address in addresses {
                try core.unbindDriver(from: address)
                unbound.append(address.description)
            }
            if let value { try core.writeDefaultDomainType(group: computedID, value, capable: !unprivileged) }
        } catch {
            failure = error
        }
        let outcome = Outcome(
            group: group, before: before, requested: value, unbound: unbound,
            after: String(core.group(computedID)!.sysfsType.dropLast()),
            error: failure.map { .init(errno: $0.errno.symbolicName, message: $0.message, rule: $0.rule == .none ? nil : $0.rule.id) })
        if source.json {
            try printJSON(outcome)
        } else {
            for address in unbound { print("unbound \(address)") }
            if let value, failure == nil {
                print("group \(group) type: \(before) → \(outcome.after) (wrote \"\(value)\"; what-if, nothing persists)")
            } else {
                print("group \(group) type: \(before)")
            }
        }
        if let failure {
            warn("error: \(failure)")
            throw ExitCode(1)
        }
    }
}
