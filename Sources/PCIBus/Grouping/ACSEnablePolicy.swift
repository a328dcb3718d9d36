/// Whether to apply the kernel's boot-time ACS enable before judging isolation.
public enum ACSEnablePolicy: String, Sendable, Codable, CaseIterable {
    /// An IOMMU is on, so `pci_request_acs()` was called and `pci_enable_acs` ran on every
    /// function (ACS-21/22/34): SV|RR|CR|UF are set wherever the capability advertises them, and
    /// the Intel PCH/SPT enable quirks run. The default, as on any host with an IOMMU enabled.
    case bootEnable = "boot"
    /// Judge the ACS control registers exactly as captured (a dump taken after boot already
    /// holds what the kernel enabled; one taken from firmware state does not).
    case asDumped = "as-dumped"
}

/// A function's ACS state after enumeration: the cached capability (`pdev->acs_capabilities`)
/// and the control register after `pci_enable_acs`, plus the Intel PCH quirk flag
/// (`PCI_DEV_FLAGS_ACS_ENABLED_QUIRK`). Mirrors `pci_acs_init` (ACS-20..22, ACS-34).
struct EffectiveACS: Sendable {
    var capability: ACSFlags = []
    var control: ACSFlags = []
    /// The Intel PCH enable quirk succeeded (ACS-34).
    var pchQuirkEnabled = false
    /// Sunrise Point erratum registers: dword CAP at cap + 4, dword CTRL at cap + 8.
    var sptCapability: ACSFlags = []
    var sptControl: ACSFlags = []
    /// What boot-time enabling did, for explanations.
    var enableNote: String?

    static let enabledAtBoot: ACSFlags = [.sourceValidation, .requestRedirect, .completionRedirect, .upstreamForwarding]

    init(function: PCIFunction, topology: PCITopology, policy: ACSEnablePolicy) {
        if let acs = function.acs {
            capability = acs.capability
            control = acs.control
            // ACS-20: IDT switches advertise an SV they cannot honour; the kernel drops it.
            if ACSQuirkTable.hasBrokenSourceValidation(function) { capability.remove(.sourceValidation) }
            sptCapability = ACSFlags(rawValue: UInt16(truncatingIfNeeded: function.config.u32(acs.offset + 4)))
            sptControl = ACSFlags(rawValue: UInt16(truncatingIfNeeded: function.config.u32(acs.offset + 8)))
        }
        guard policy == .bootEnable else { return }
        let intelRootPort = function.vendorID == 0x8086 && function.pciePortType == .rootPort
        if intelRootPort, ACSQuirkTable.isIntelPCHRootPort(function.deviceID) {
            // ACS-34: the PCH quirk reads the LPC bridge's RCBA (00:1f.0, offset 0xf0, bit 0) on
            // the root port's bus; an absent LPC reads all-ones, as config reads do.
            let lpc = PCIAddress(
                domain: function.address.domain, bus: function.address.bus, device: 0x1f, function: 0)
            let rcba = topology[lpc]?.config.u32(0xf0) ?? 0xffff_ffff
            pchQuirkEnabled = rcba & 1 != 0
            enableNote =
                pchQuirkEnabled
                ? "Intel PCH ACS enable quirk succeeded (LPC \(lpc.shortDescription) RCBA enabled, ACS-34)"
                : "Intel PCH ACS enable quirk failed: LPC \(lpc.shortDescription) RCBA disabled (\"Failed to enable Intel PCH ACS quirk\", ACS-34)"
        } else if intelRootPort, ACSQuirkTable.isIntelSPTRootPort(function.deviceID), function.acs != nil {
            let added = sptCapability.intersection(Self.enabledAtBoot).subtracting(sptControl)
            sptControl.formUnion(sptCapability.intersection(Self.enabledAtBoot))
            if !added.isEmpty { enableNote = "boot enabled \(added) in the Sunrise Point dword control at cap+8 (ACS-34)" }
        } else if function.acs != nil {
            let added = capability.intersection(Self.enabledAtBoot).subtracting(control)
            control.formUnion(capability.intersection(Self.enabledAtBoot))
            if !added.isEmpty { enableNote = "boot enabled \(added) (pci_std_enable_acs, ACS-22)" }
        }
    }
}
