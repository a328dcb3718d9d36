import Foundation
import KernelRules

/// What a rule that vfiokit's reports cite says, in this project's own words, for `vfiokit rules`:
/// every rule ID referenced by PCIBus, IOMMU, Machine, VFIO/Viability and vfiokit (a test greps those
/// sources, so a new citation without a summary here fails). The rule definitions themselves are in
/// the spec (`kernel-semantics.md`); this file only explains them to an operator.
struct RuleSummary: Encodable {
    /// The catalogued rule; only the catalogue makes one, so no summary can name a rule the spec lacks.
    let rule: RuleID
    /// A few words, for the one-line listing.
    let title: String
    /// What the kernel does, at most three lines at 132 columns.
    let summary: String
    /// The kernel function this rule mirrors, and its file in the kernel tree.
    let function: String
    let file: String

    init(_ rule: RuleID, _ title: String, _ summary: String, _ function: String, _ file: String) {
        self.rule = rule
        self.title = title
        self.summary = summary
        self.function = function
        self.file = file
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(rule.id, forKey: .id)
        try container.encode(title, forKey: .title)
        try container.encode(summary, forKey: .summary)
        try container.encode(function, forKey: .function)
        try container.encode(file, forKey: .file)
    }
    enum Keys: String, CodingKey { case id, title, summary, function, file }
}

extension RuleSummary {
    private static let iommu = "drivers/iommu/iommu.c"
    private static let pci = "drivers/pci/pci.c"
    private static let quirks = "drivers/pci/quirks.c"
    private static let search = "drivers/pci/search.c"

    /// Every rule the reports can cite, in the order `vfiokit rules` lists them.
    static let all: [RuleSummary] = [
        // PCI ACS: whether one device counts as isolated, and a path.
        RuleSummary(.ACS_01, "a device-specific ACS quirk answers first",
            "Before looking at the device's type or capability, the kernel asks its ACS quirk table; when a quirk matches, its yes or no stands, even for a device that is not PCIe.",
            "pci_acs_enabled() via pci_dev_specific_acs_enabled()", pci),
        RuleSummary(.ACS_02, "conventional PCI and PCI-X are never isolated",
            "A device that is not PCI Express never passes the ACS test, whatever it advertises.",
            "pci_acs_enabled()", pci),
        RuleSummary(.ACS_03, "PCIe/PCI bridges and event collectors are never isolated",
            "PCI-X-to-PCIe bridges, PCIe-to-PCI bridges and root complex event collectors always fail the ACS test.",
            "pci_acs_enabled()", pci),
        RuleSummary(.ACS_04, "root and downstream ports need their ACS controls enabled",
            "A root port or switch downstream port is isolated only when its ACS capability has Source Validation, Request and Completion Redirect and Upstream Forwarding enabled (see ACS-07 for features it does not advertise).",
            "pci_acs_enabled() → pci_acs_flags_enabled()", pci),
        RuleSummary(.ACS_05, "functions of a multifunction device need ACS as ports do",
            "An endpoint, upstream port, legacy endpoint or integrated endpoint that belongs to a multifunction device passes only with the same ACS controls enabled; a single-function one falls to ACS-06.",
            "pci_acs_enabled()", pci),
        RuleSummary(.ACS_06, "single-function devices count as isolated",
            "Every other device, such as a single-function endpoint, upstream port or integrated endpoint, passes without any ACS capability: PCIe makes ACS optional for them.",
            "pci_acs_enabled()", pci),
        RuleSummary(.ACS_07, "no ACS capability fails; features not advertised count as on",
            "Without an ACS capability the test fails. With one, a requested feature the capability does not advertise is taken as hard-wired on (Egress Control excepted), and every advertised one must be enabled.",
            "pci_acs_flags_enabled()", pci),
        RuleSummary(.ACS_10, "a path is isolated only if every bridge up to the root is",
            "Starting at a device and going up, every bridge through the one on the root bus (normally the root port) must pass the ACS test; a single failing one breaks the path.",
            "pci_acs_path_enabled()", pci),
        RuleSummary(.ACS_22, "the kernel enables the ACS features a port advertises",
            "When an IOMMU asked for ACS, enumeration switches on Source Validation, Request and Completion Redirect and Upstream Forwarding wherever advertised; Translation Blocking only on untrusted or external-facing ports; never Egress Control or Direct Translated P2P.",
            "pci_std_enable_acs()", pci),
        RuleSummary(.ACS_31, "quirks vouch for devices without a usable ACS capability",
            "A table of vendor quirks (AMD southbridge functions, Intel PCH root ports, a number of multifunction devices and others) declares isolation for hardware with no standard ACS capability, each under conditions of its own.",
            "pci_dev_specific_acs_enabled()", quirks),
        RuleSummary(.ACS_34, "quirks that turn on ACS equivalents for Intel PCH ports",
            "For Intel PCH root ports the kernel enables chipset-specific equivalents of ACS through the LPC bridge's root complex register block; if that block is disabled, the port stays unisolated.",
            "pci_dev_specific_enable_acs()", quirks),
        // DMA aliases.
        RuleSummary(.ALIAS_01, "every requester ID a device's DMA can carry",
            "The kernel visits the device's own requester ID, its quirk aliases on the same bus, and the bridges upstream that take over its requests (a PCIe-to-PCI bridge issues them under its own ID).",
            "pci_for_each_dma_alias()", search),
        RuleSummary(.ALIAS_02, "two functions are aliases when either names the other",
            "Two functions alias each other when either's alias mask holds the other's devfn, or one is the other's real DMA device (as behind an enabled VMD).",
            "pci_devs_are_dma_aliases()", pci),
        // IOMMU group formation for PCI.
        RuleSummary(.IG_10, "group formation, step 1: follow the DMA aliases",
            "A new device first walks its DMA aliases; if one of them already has a group it joins that group, otherwise the topmost bridge issuing its requests is what the next steps group.",
            "pci_device_group()", iommu),
        RuleSummary(.IG_11, "group formation, step 2: walk up until the path is isolated",
            "Bus by bus towards the root, the walk stops at the first bridge whose own path to the root is ACS-isolated; each bridge passed on the way joins in, and if it has a group the device takes that group.",
            "pci_device_group()", iommu),
        RuleSummary(.IG_12, "group formation, step 3: aliases on the same bus",
            "The device joins the group of any function on its bus that is a DMA alias of it, followed from function to function, each visited once.",
            "get_pci_alias_group()", iommu),
        RuleSummary(.IG_13, "group formation, step 4: functions of one device without ACS share a group",
            "A function of a multifunction device that fails the ACS test joins the group of any other function in the same slot that fails it too; a function that passes stays on its own.",
            "get_pci_function_alias_group()", iommu),
        RuleSummary(.IG_14, "group formation, step 5: otherwise a new group",
            "When no earlier step found a group to join, the device gets a newly allocated one.",
            "pci_device_group() → iommu_group_alloc()", iommu),
        RuleSummary(.IG_15, "devices on a root bus skip the upstream walk",
            "Root ports and integrated endpoints have no bridge above them, so only aliases (IG-12) and the multifunction rule (IG-13) can group them with others; a single-function one is alone unless aliased.",
            "pci_device_group()", iommu),
        RuleSummary(.IG_20, "the proposed switch-grouping rework (not in mainline)",
            "A 2025 patch series would judge isolation per bus and group every device below a switch whose downstream ports lack ACS; vfiokit shows it for comparison only, no released kernel groups that way.",
            "pci_bus_isolated() (pcie_switch_groups series)", search),
        // Reserved regions that need a 1:1 mapping.
        RuleSummary(.RD_02, "a firmware-required 1:1 mapping forbids a blocking domain",
            "A device whose firmware demands an identity mapping (an RMRR or other direct reserved region) cannot be moved to a blocking domain: the kernel warns and returns EINVAL.",
            "__iommu_device_set_domain()", iommu),
        RuleSummary(.RD_03, "so a group holding such a device cannot go to VFIO",
            "Claiming a group first attaches the blocking domain, so VFIO's container or iommufd bind fails with EINVAL for any group with a direct (non-relaxable) region; relaxable regions are no obstacle.",
            "iommu_group_claim_dma_owner() → __iommu_device_set_domain()", iommu),
        // Writing a group's type.
        RuleSummary(.DT_01, "changing a group's type needs CAP_SYS_ADMIN and CAP_SYS_RAWIO",
            "Writing /sys/kernel/iommu_groups/N/type without both capabilities fails with EACCES.",
            "iommu_group_store_type()", iommu),
        RuleSummary(.DT_02, "a group without a default domain cannot change type",
            "A type write to a group that has no default domain fails with EINVAL.",
            "iommu_group_store_type()", iommu),
        RuleSummary(.DT_03, "only identity, DMA, DMA-FQ and auto are accepted",
            "The value may end in a newline; auto lets the kernel choose. Anything else, blocked and unmanaged included, is EINVAL.",
            "iommu_group_store_type()", iommu),
        RuleSummary(.DT_05, "the group must have no bound DMA-API driver and no owner",
            "Apart from DMA → DMA-FQ, a type change needs every device unbound or bound only to a driver with driver_managed_dma, and no owner such as VFIO; otherwise EPERM.",
            "iommu_group_store_type()", iommu),
        RuleSummary(.DT_06, "devices can force the type",
            "The requested type is checked against each device: an untrusted device (external Thunderbolt) forces DMA and an IOMMU driver may require one; a request that conflicts fails.",
            "iommu_get_default_domain_type()", iommu),
        RuleSummary(.DT_07, "asking for the current type changes nothing",
            "When the requested type equals the group's present one, the existing default domain is kept and the write succeeds.",
            "iommu_setup_default_domain()", iommu),
        RuleSummary(.DT_08, "a domain the IOMMU driver cannot allocate fails the write",
            "Allocation errors come back as the write's error (EOPNOTSUPP for an identity domain the driver lacks); on success the write returns its length and DMA ops are set up again.",
            "iommu_setup_default_domain()", iommu),
        RuleSummary(.DT_09, "legacy IOMMU drivers accept only their fixed type",
            "A driver with one fixed default domain type refuses every other type with EINVAL.",
            "iommu_group_store_type()", iommu),
        // DMA ownership.
        RuleSummary(.OWN_01, "a kernel driver's probe takes the group's DMA-API domain",
            "Before a driver without driver_managed_dma probes, the group counts it as a user of the default domain; if VFIO or iommufd owns the group (or it is on another domain) the bind fails with EBUSY.",
            "iommu_device_use_default_domain(), from pci_dma_configure()", iommu),
        RuleSummary(.OWN_03, "a group is claimed while anyone holds it",
            "A group counts as claimed while its owner count is above zero, by a kernel driver or by VFIO; VFIO's \"viable\" is the opposite.",
            "iommu_group_dma_owner_claimed()", iommu),
        RuleSummary(.OWN_04, "VFIO claims a whole group only when nothing holds it",
            "The group claim used by VFIO's container path fails with EPERM while a kernel driver is bound to a member or another owner holds the group.",
            "iommu_group_claim_dma_owner()", iommu),
        RuleSummary(.OWN_05, "taking ownership moves the group to a blocking domain",
            "Ownership is refused with EBUSY if the group sits on a non-default domain; otherwise every device is switched to a domain that blocks all DMA until the owner maps memory.",
            "__iommu_take_dma_ownership()", iommu),
        RuleSummary(.OWN_06, "iommufd and VFIO cdev claim per device",
            "Devices of one group may be claimed by the same owner, each claim counted; another owner gets EPERM, and a device with no group ENODEV.",
            "iommu_device_claim_dma_owner()", iommu),
        RuleSummary(.OWN_07, "releasing ownership returns the group to its default domain",
            "Release clears the owner and re-attaches the default domain; with per-device claims only the last release does so.",
            "iommu_group_release_dma_owner(), iommu_device_release_dma_owner()", iommu),
        RuleSummary(.OWN_08, "kernel drivers and VFIO exclude each other",
            "While VFIO owns a group, binding an ordinary kernel driver to a member fails with EBUSY; while such a driver is bound, VFIO's claim fails with EPERM.",
            "iommu_device_use_default_domain(), iommu_group_claim_dma_owner()", iommu),
        RuleSummary(.OWN_09, "no domain change while a member is being reset",
            "On the newest kernels, while a PCI reset of a group member is in progress, changes of the group's domain are refused with EBUSY.",
            "pci_dev_reset_iommu_prepare() / pci_dev_reset_iommu_done()", iommu),
        // Domains.
        RuleSummary(.DOM_01, "attaching a group to a domain",
            "A group moves to another domain only from its default or blocking domain (else EBUSY) and only to a domain of its own IOMMU driver (else EINVAL); all its devices move together.",
            "iommu_attach_group()", iommu),
        RuleSummary(.DOM_02, "detaching goes back to the blocking or default domain",
            "After a detach the group is on its blocking domain if it has an owner, otherwise on its default domain.",
            "iommu_detach_group()", iommu),
        RuleSummary(.DOM_03, "a single device attaches only from a one-device group",
            "Attaching one device to a domain fails with EINVAL unless its group contains exactly that device.",
            "iommu_attach_device()", iommu),
        RuleSummary(.DOM_04, "mappings must be aligned to the smallest page size",
            "IOVA, physical address and length must all be aligned to the domain's smallest page size (else EINVAL), and the largest fitting pages are used; an unmap returns the bytes it removed.",
            "iommu_map(), iommu_unmap()", iommu),
        RuleSummary(.DOM_05, "the core does not enforce a domain's aperture",
            "Each domain has an aperture and a set of page sizes, but the IOMMU core maps outside the aperture too; VFIO enforces it through its list of valid IOVA ranges.",
            "struct iommu_domain_geometry", iommu),
        // VFIO.
        RuleSummary(.VG_06, "viable: no member bound to a DMA-API kernel driver",
            "A VFIO group is viable when each device is unbound or bound to a driver with driver_managed_dma (vfio-pci and variants, pci-stub, pcieport) and no one else owns it; any other driver blocks it.",
            "vfio_group_ioctl_get_status(), pci_dma_configure()", "drivers/vfio/group.c, drivers/pci/pci-driver.c"),
        RuleSummary(.VST_06, "the VFIO selftests' userspace DMA drivers",
            "The selftest library has minimal userspace drivers that make a real device copy memory by DMA and raise an MSI; a device without one cannot run the memcpy demo.",
            "struct vfio_pci_driver_ops", "tools/testing/selftests/vfio/lib/vfio_pci_driver.c"),
    ]

    /// The summary for `id` (`IG-13`; case and `_` for `-` forgiven), or nil.
    static func find(_ id: String) -> RuleSummary? {
        let wanted = id.uppercased().replacingOccurrences(of: "_", with: "-")
        return all.first { $0.rule.id == wanted }
    }
}
