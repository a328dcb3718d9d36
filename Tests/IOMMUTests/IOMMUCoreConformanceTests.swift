import KernelRules
import PCIBus
import SystemPackage
import Testing

@testable import IOMMU

/// One row per rule of spec §1.6–§1.9 and §1.4 (OWN, RD, DOM, DT, SYS), each run on
/// `devices/default` (VT-d unless the row says otherwise). Groups used: 3 = USB with a relaxable
/// RMRR + thermal, 13 = switch port + NVMe (nvme bound), 23 = RAID with a direct RMRR (smartpqi),
/// 27 = NVMe bound to vfio-pci, 0 = host bridge (no driver).
@Suite("IOMMU core conformance (OWN, RD, DOM, DT, SYS)")
struct IOMMUCoreConformanceTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let rule: String
        var profile: PlatformProfile? = nil
        var untrusted: [String] = []
        /// The global default (`iommu_def_domain_type`); nil: the profile's.
        var defaultDomainType: IOMMUDomainType? = nil
        var setup: [CoreOp] = []
        let op: CoreOp
        let errno: Errno?
        /// Checked after the operation on group `group`.
        var group: Int? = nil
        var ownerCount: Int? = nil
        var currentDomain: IOMMUDomainType? = nil
        var sysfsType: String? = nil
        /// `iommu_group_dma_owner_claimed` (OWN-03).
        var claimed: Bool? = nil
        /// The kernel log's last line after the operation.
        var logged: String? = nil
        var testDescription: String { "\(rule): \(op)" }
    }

    static let rows: [Row] = [
        // OWN-01 / OWN-02 / OWN-08: drivers and the default domain.
        Row(rule: "OWN-01 non-managed driver takes owner_cnt", setup: [.unbind("5e:00.0")], op: .bind("nvme", "5e:00.0"), errno: nil, group: 27, ownerCount: 1),
        Row(rule: "OWN-01 driver_managed_dma driver does not", setup: [.unbind("5e:00.0")], op: .bind("vfio-pci", "5e:00.0"), errno: nil, group: 27, ownerCount: 0),
        Row(rule: "OWN-08 non-managed bind while owned: EBUSY", setup: [.unbind("5e:00.0"), .claimGroup(27, owner: 0)], op: .bind("nvme", "5e:00.0"), errno: .resourceBusy),
        Row(rule: "OWN-01 second kernel driver in a group on its default domain", setup: [.unbind("14.0")], op: .bind("xhci_hcd", "14.0"), errno: nil, group: 3, ownerCount: 2),
        Row(rule: "OWN-01 bind while attached to another domain: EBUSY", setup: [.unbind("14.0"), .attachPaging(3)], op: .bind("xhci_hcd", "14.0"), errno: .resourceBusy),
        Row(rule: "OWN-08 managed driver binds while owned", setup: [.unbind("5e:00.0"), .claimGroup(27, owner: 0)], op: .bind("vfio-pci", "5e:00.0"), errno: nil, group: 27, ownerCount: 1),
        Row(rule: "OWN-01 already bound: EBUSY", op: .bind("nvme", "5e:00.0"), errno: .resourceBusy),
        Row(rule: "OWN-02 unbind drops owner_cnt", op: .unbind("1c:00.0"), errno: nil, group: 13, ownerCount: 0),
        Row(rule: "OWN-02 unbind of an unbound device: ENODEV", op: .unbind("00:00.0"), errno: .operationNotSupportedByDevice),
        // OWN-04..07: user ownership.
        Row(rule: "OWN-04 kernel driver bound: EPERM", op: .claimGroup(13, owner: 0), errno: .notPermitted),
        Row(rule: "OWN-05 claim attaches the blocking domain, owner_cnt 1", op: .claimGroup(27, owner: 0), errno: nil, group: 27, ownerCount: 1, currentDomain: .blocked),
        Row(rule: "OWN-04 no sharing on the group path, same owner", setup: [.claimGroup(27, owner: 0)], op: .claimGroup(27, owner: 0), errno: .notPermitted),
        Row(rule: "OWN-04 other owner: EPERM", setup: [.claimGroup(27, owner: 0)], op: .claimGroup(27, owner: 1), errno: .notPermitted),
        Row(rule: "OWN-05 group off its default domain: EBUSY", setup: [.attachPaging(27)], op: .claimGroup(27, owner: 0), errno: .resourceBusy),
        Row(rule: "OWN-05 without a blocked domain the blocking domain is an empty paging domain", profile: .bypass, op: .claimGroup(27, owner: 0), errno: nil, group: 27, currentDomain: .unmanaged),
        Row(rule: "OWN-06 same owner shares on the device path", setup: [.claimDevice("5e:00.0", owner: 0)], op: .claimDevice("5e:00.0", owner: 0), errno: nil, group: 27, ownerCount: 2),
        Row(rule: "OWN-06 different owner: EPERM", setup: [.claimDevice("5e:00.0", owner: 0)], op: .claimDevice("5e:00.0", owner: 1), errno: .notPermitted),
        Row(rule: "OWN-06 kernel driver bound: EPERM", op: .claimDevice("1c:00.0", owner: 0), errno: .notPermitted),
        Row(rule: "OWN-06 device without a group: ENODEV", op: .claimDevice("00:1f.7", owner: 0), errno: .operationNotSupportedByDevice),
        Row(rule: "OWN-07 release re-attaches the default domain", setup: [.claimGroup(27, owner: 0)], op: .releaseGroup(27), errno: nil, group: 27, ownerCount: 0, currentDomain: .dmaFQ),
        Row(rule: "OWN-07 device release with owner_cnt > 1 only decrements", setup: [.claimDevice("5e:00.0", owner: 0), .claimDevice("5e:00.0", owner: 0)], op: .releaseDevice("5e:00.0"), errno: nil, group: 27, ownerCount: 1, currentDomain: .blocked),
        Row(rule: "OWN-07 release of an unowned group: EINVAL", op: .releaseGroup(27), errno: .invalidArgument),
        Row(rule: "OWN-03 a kernel DMA-API driver left in the group keeps it claimed", op: .unbind("14.0"), errno: nil, group: 3, ownerCount: 1, claimed: true),
        Row(rule: "OWN-03 unbinding the last kernel driver unclaims the group", op: .unbind("1c:00.0"), errno: nil, group: 13, claimed: false),
        Row(rule: "OWN-03 a driver_managed_dma driver does not claim", setup: [.unbind("1c:00.0")], op: .bind("vfio-pci", "1c:00.0"), errno: nil, group: 13, claimed: false),
        Row(rule: "OWN-03 a user owner claims", op: .claimGroup(27, owner: 0), errno: nil, group: 27, claimed: true),
        Row(rule: "OWN-09 reset in progress: domain changes EBUSY", setup: [.prepareReset("5e:00.0")], op: .claimGroup(27, owner: 0), errno: .resourceBusy),
        Row(rule: "OWN-09 after the reset the claim works", setup: [.prepareReset("5e:00.0"), .finishReset("5e:00.0")], op: .claimGroup(27, owner: 0), errno: nil, group: 27, ownerCount: 1),
        // RD-02..04: firmware 1:1 mappings.
        Row(
            rule: "RD-02 the blocking domain is refused for a require_direct device: EINVAL and the kernel's warning", setup: [.unbind("3d:00.0")],
            op: .claimGroup(23, owner: 0), errno: .invalidArgument, group: 23, currentDomain: .dmaFQ,
            logged: "pci 0000:3d:00.0: Firmware has requested this device have a 1:1 IOMMU mapping, rejecting configuring the device without a 1:1 mapping. Contact your platform vendor."),
        Row(
            rule: "RD-02 a blocked-type domain is refused even when it is not the group's blocking domain", setup: [.unbind("3d:00.0")],
            op: .attachBlocked(23), errno: .invalidArgument, group: 23, currentDomain: .dmaFQ),
        Row(rule: "RD-03 direct region: claiming fails with EINVAL", setup: [.unbind("3d:00.0")], op: .claimGroup(23, owner: 0), errno: .invalidArgument, group: 23, ownerCount: 0, currentDomain: .dmaFQ),
        Row(rule: "RD-03 the device path fails the same way", setup: [.unbind("3d:00.0")], op: .claimDevice("3d:00.0", owner: 0), errno: .invalidArgument),
        Row(rule: "RD-03 direct-relaxable does not block", setup: [.unbind("14.0"), .unbind("14.2")], op: .claimGroup(3, owner: 0), errno: nil, group: 3, currentDomain: .blocked),
        Row(rule: "RD-04 a paging domain attached directly is not refused", setup: [.unbind("3d:00.0")], op: .attachPaging(23), errno: nil, group: 23, currentDomain: .unmanaged),
        // DOM-01..03: attaching user domains.
        Row(rule: "DOM-01 owned group takes a paging domain", setup: [.claimGroup(27, owner: 0)], op: .attachPaging(27), errno: nil, group: 27, currentDomain: .unmanaged),
        Row(rule: "DOM-01 already on another user domain: EBUSY", setup: [.claimGroup(27, owner: 0), .attachPaging(27)], op: .attachPaging(27), errno: .resourceBusy),
        Row(rule: "DOM-01 domain of another IOMMU: EINVAL", setup: [.claimGroup(27, owner: 0)], op: .attachForeign(27), errno: .invalidArgument),
        Row(rule: "DOM-02 detach of an owned group: back to blocking", setup: [.claimGroup(27, owner: 0), .attachPaging(27)], op: .detachCurrent(27), errno: nil, group: 27, currentDomain: .blocked),
        Row(rule: "DOM-02 detach of an unowned group: back to default", setup: [.attachPaging(27)], op: .detachCurrent(27), errno: nil, group: 27, currentDomain: .dmaFQ),
        Row(rule: "DOM-03 attach device in a one-device group", op: .attachDevicePaging("5e:00.0"), errno: nil, group: 27, currentDomain: .unmanaged),
        Row(rule: "DOM-03 attach device in a two-device group: EINVAL", op: .attachDevicePaging("1c:00.0"), errno: .invalidArgument),
        // DT-01..09, SYS-01: default-domain type.
        Row(rule: "DT-01 without CAP_SYS_ADMIN/CAP_SYS_RAWIO: EACCES", op: .setType(27, "identity", capable: false), errno: .permissionDenied),
        Row(rule: "DT-03 blocked is not accepted", op: .setType(27, "blocked", capable: true), errno: .invalidArgument),
        Row(rule: "DT-03 unmanaged is not accepted", op: .setType(27, "unmanaged", capable: true), errno: .invalidArgument),
        Row(rule: "DT-03 trailing newline accepted", op: .setType(27, "identity\n", capable: true), errno: nil, group: 27, currentDomain: .identity, sysfsType: "identity\n"),
        Row(rule: "DT-04 DMA → DMA-FQ in place, drivers bound", profile: .smmuv3(), op: .setType(13, "DMA-FQ", capable: true), errno: nil, group: 13, ownerCount: 1, sysfsType: "DMA-FQ\n"),
        Row(rule: "DT-05 kernel driver bound: EPERM", op: .setType(13, "identity", capable: true), errno: .notPermitted),
        Row(rule: "DT-05 owned group: EPERM", setup: [.claimGroup(27, owner: 0)], op: .setType(27, "DMA", capable: true), errno: .notPermitted),
        Row(rule: "DT-06 untrusted device refuses identity", untrusted: ["5e:00.0"], op: .setType(27, "identity", capable: true), errno: .invalidArgument),
        Row(rule: "DT-06 untrusted device: auto picks strict DMA", untrusted: ["5e:00.0"], setup: [.setType(27, "DMA-FQ", capable: true)], op: .setType(27, "auto", capable: true), errno: nil, group: 27, sysfsType: "DMA\n"),
        Row(rule: "DT-06 auto without requirements: the global default", setup: [.setType(27, "identity", capable: true)], op: .setType(27, "auto", capable: true), errno: nil, group: 27, sysfsType: "DMA-FQ\n"),
        Row(
            rule: "DT-06 boot requests nothing: under a passthrough default an untrusted device's group gets DMA", untrusted: ["5e:00.0"],
            defaultDomainType: .identity, op: .unbind("1c:00.0"), errno: nil, group: 27, sysfsType: "DMA\n"),
        Row(rule: "DT-06 boot under a passthrough default: a group without requirements gets identity", defaultDomainType: .identity, op: .unbind("1c:00.0"), errno: nil, group: 13, sysfsType: "identity\n"),
        Row(
            rule: "DT-06 auto falls back to the global default, not the profile's", defaultDomainType: .identity, setup: [.setType(27, "DMA", capable: true)],
            op: .setType(27, "auto", capable: true), errno: nil, group: 27, sysfsType: "identity\n"),
        Row(
            rule: "DT-06 identity on an untrusted group: EINVAL, warned in iommu_domain_type_str words", untrusted: ["5e:00.0"],
            op: .setType(27, "identity", capable: true), errno: .invalidArgument, group: 27, sysfsType: "DMA\n",
            logged: "vfio-pci 0000:5e:00.0: Device cannot be in Passthrough domain - it is forcing Translated"),
        Row(rule: "DT-09 a fixed blocked default (mock) wins over a passthrough global default", profile: .mock(), defaultDomainType: .identity, op: .unbind("1c:00.0"), errno: nil, group: 27, sysfsType: "blocked\n"),
        Row(
            rule: "DT-08 a passthrough default the IOMMU cannot allocate falls back to DMA at boot, with the kernel's warning",
            profile: PlatformProfile.withoutIdentity, defaultDomainType: .identity, op: .unbind("1c:00.0"), errno: nil, group: 27, sysfsType: "DMA\n",
            logged: "iommu: Failed to allocate default IOMMU domain of type 4 for group (null) - Falling back to IOMMU_DOMAIN_DMA"),
        Row(
            rule: "DT-08 auto falls back the same way", profile: PlatformProfile.withoutIdentity, defaultDomainType: .identity,
            setup: [.setType(27, "DMA-FQ", capable: true)], op: .setType(27, "auto", capable: true), errno: nil, group: 27, sysfsType: "DMA\n",
            logged: "iommu: Failed to allocate default IOMMU domain of type 4 for group (null) - Falling back to IOMMU_DOMAIN_DMA"),
        Row(rule: "DT-07 same type: success, no change", op: .setType(27, "DMA-FQ", capable: true), errno: nil, group: 27, sysfsType: "DMA-FQ\n"),
        Row(rule: "DT-08 identity on an IOMMU without one: EOPNOTSUPP", profile: PlatformProfile.withoutIdentity, op: .setType(27, "identity", capable: true), errno: .notSupported),
        Row(rule: "DT-09 fixed default domain accepts only its type", profile: .mock(), op: .setType(27, "DMA", capable: true), errno: .invalidArgument, group: 27, sysfsType: "blocked\n"),
        Row(rule: "SYS-01 a VFIO-owned group still reads its default type", setup: [.claimGroup(27, owner: 0)], op: .attachPaging(27), errno: nil, group: 27, currentDomain: .unmanaged, sysfsType: "DMA-FQ\n"),
        Row(rule: "SYS-01 untrusted devices boot on DMA", untrusted: ["5e:00.0"], op: .unbind("5e:00.0"), errno: nil, group: 27, sysfsType: "DMA\n"),
        Row(rule: "SYS-01 arm64 default is DMA", profile: .smmuv3(), op: .unbind("5e:00.0"), errno: nil, group: 27, sysfsType: "DMA\n"),
        Row(rule: "SYS-01 bypassing IOMMU boots identity", profile: .bypass, op: .unbind("5e:00.0"), errno: nil, group: 27, sysfsType: "identity\n"),
    ]

    @Test(arguments: rows)
    func conformance(_ row: Row) throws {
        let core = try TestMachines.core(profile: row.profile, untrusted: row.untrusted, defaultDomainType: row.defaultDomainType)
        var context = CoreOp.Context()
        for step in row.setup { try step.apply(to: core, context: &context) }
        let before = core.snapshot
        do {
            try row.op.apply(to: core, context: &context)
            #expect(row.errno == nil, "succeeded, expected \(row.errno?.symbolicName ?? "")")
        } catch {
            #expect(error.errno == row.errno, "\(error)")
            #expect(core.snapshot == before, "a failed call changes nothing")
        }
        if let logged = row.logged { #expect(core.kernelLog.last == logged) }
        guard let id = row.group else { return }
        let group = try #require(core.group(id), "row names group \(id), which the machine lacks")
        if let ownerCount = row.ownerCount { #expect(group.ownerCount == ownerCount) }
        if let claimed = row.claimed { #expect(group.isDMAOwnerClaimed == claimed) }
        if let type = row.currentDomain { #expect(group.domain?.type == type) }
        if let sysfsType = row.sysfsType { #expect(group.sysfsType == sysfsType) }
    }

    @Test("RD-02: the refusal logs the kernel's warning text, naming the device")
    func directWarningText() throws {
        let core = try TestMachines.core()
        try core.unbindDriver(from: TestMachines.address("3d:00.0"))
        try core.bind(driver: "vfio-pci", to: TestMachines.address("3d:00.0"))
        #expect(throws: IOMMUError.self) { try core.claimGroup(23, owner: DMAOwner("VFIO container")) }
        #expect(
            core.kernelLog.last
                == "vfio-pci 0000:3d:00.0: Firmware has requested this device have a 1:1 IOMMU mapping, rejecting configuring the device without a 1:1 mapping. Contact your platform vendor."
        )
    }

    @Test("RR-05: DMA default domains identity-map direct and direct-relaxable regions; identity needs none")
    func directMappings() throws {
        let core = try TestMachines.core()
        let raid = core.group(23)!.defaultDomain!
        #expect(raid.translate(0x7b00_0000, access: .readWrite) == .mapped(address: 0x7b00_0000, contiguous: 0x20_0000))
        #expect(raid.mappedBytes == 0x80_0000)
        let usb = core.group(3)!.defaultDomain!
        #expect(usb.translate(0x7b9f_f000, access: .write) == .mapped(address: 0x7b9f_f000, contiguous: 0x1000))
        #expect(core.device(TestMachines.address("3d:00.0"))!.requireDirect)
        #expect(!core.device(TestMachines.address("00:14.0"))!.requireDirect)
    }

    @Test("DT-04: the flush-queue switch keeps the same domain object; DT-07 reuses it")
    func inPlaceConversion() throws {
        let core = try TestMachines.core(profile: .smmuv3())
        let before = core.group(13)!.defaultDomain!
        try core.writeDefaultDomainType(group: 13, "DMA-FQ")
        #expect(core.group(13)!.defaultDomain! === before && before.type == .dmaFQ)
        try core.writeDefaultDomainType(group: 27, "DMA")
        let reused = core.group(27)!.defaultDomain!
        try core.writeDefaultDomainType(group: 27, "DMA")
        #expect(core.group(27)!.defaultDomain! === reused)
    }

    @Test(arguments: [
        ("vfio-pci", true), ("pci-stub", true), ("pcieport", true), ("mlx5_vfio_pci", true),
        ("nvme", false), ("e1000e", false), ("ahci", false), ("amdgpu", false), ("snd_hda_intel", false),
    ])
    func driverManagedDMA(driver: String, managed: Bool) {
        #expect(KernelDriver.managesDMA(driver) == managed)
    }
}

extension PlatformProfile {
    /// A VT-d variant without an identity domain, for DT-08.
    static let withoutIdentity = PlatformProfile(
        name: "vt-d-48", title: "VT-d without identity", geometry: .addressWidth(48), pageSizes: .x86Large, pageShift: 12,
        interruptRemapping: true, enforcesCacheCoherency: true, defaultDomainType: .dmaFQ, fixedDefaultDomain: false,
        supportsIdentity: false, supportsBlockedDomain: true, platformRegions: [], firmwareRegions: .intelRMRR)
}
