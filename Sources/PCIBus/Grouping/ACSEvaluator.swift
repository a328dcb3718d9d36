import KernelRules
/// The answer to "does this function provide the requested ACS controls?", with the rule that
/// decided it and a sentence saying why.
public struct ACSVerdict: Sendable, Equatable, Codable {
    public let enabled: Bool
    /// Spec rule that decided (`ACS-01` quirk, `ACS-02` conventional PCI, ...).
    public let rule: RuleID
    public let detail: String
}

/// `pci_acs_enabled` and `pci_acs_path_enabled` of `drivers/pci/pci.c` (ACS-01..10) over a
/// topology, with the quirk table of ACS-30..33 and the boot-time enable of ACS-20..22/34.
/// Verdicts for `REQ_ACS_FLAGS` are computed once per function.
struct ACSEvaluator: Sendable {
    let topology: PCITopology
    private let verdicts: [ACSVerdict]

    init(topology: PCITopology, platform: IOMMUPlatformKind, policy: ACSEnablePolicy) {
        self.topology = topology
        verdicts = topology.functions.indices.map {
            Self.evaluate(
                $0, topology: topology, platform: platform,
                effective: EffectiveACS(function: topology.functions[$0], topology: topology, policy: policy),
                flags: .requiredForIsolation)
        }
    }

    /// `pci_acs_enabled(pdev, REQ_ACS_FLAGS)`.
    func enabled(_ index: Int) -> ACSVerdict { verdicts[index] }

    /// `pci_acs_path_enabled(start, NULL, REQ_ACS_FLAGS)` (ACS-10): nil when every bridge from
    /// `start` up to the root bus passes, else the first one that fails and why.
    func firstPathFailure(from start: Int) -> (index: Int, verdict: ACSVerdict)? {
        var current = start
        var hops = 0
        while hops <= topology.functions.count {
            let verdict = verdicts[current]
            if !verdict.enabled { return (current, verdict) }
            guard let parent = topology.parentBridge(of: current) else { return nil }
            current = parent
            hops += 1
        }
        return nil
    }

    static func evaluate(
        _ index: Int, topology: PCITopology, platform: IOMMUPlatformKind, effective: EffectiveACS, flags: ACSFlags
    ) -> ACSVerdict {
        let function = topology.functions[index]
        // ACS-01: a device-specific quirk decides first, even for conventional PCI.
        if let quirk = quirkVerdict(
            function, onRootBus: topology.isOnRootBus(index), platform: platform, effective: effective, flags: flags)
        {
            return quirk
        }
        guard function.isPCIe else {
            return ACSVerdict(enabled: false, rule: .ACS_02, detail: "conventional PCI function: never isolated")
        }
        switch function.pciePortType {
        case .pcieToPCIBridge, .pciToPCIeBridge, .rootComplexEventCollector:
            return ACSVerdict(
                enabled: false, rule: .ACS_03, detail: "\(function.pciePortType!): ACS does not apply, never isolated")
        case .downstreamPort, .rootPort:
            return flagsEnabled(function, effective: effective, flags: flags, rule: .ACS_04)
        case .endpoint, .upstreamPort, .legacyEndpoint, .rootComplexEndpoint:
            if function.isMultifunction {
                return flagsEnabled(function, effective: effective, flags: flags, rule: .ACS_05)
            }
            return ACSVerdict(
                enabled: true, rule: .ACS_06,
                detail: "single-function \(function.pciePortType!): ACS not applicable, treated as isolated")
        case nil:
            return ACSVerdict(
                enabled: true, rule: .ACS_06, detail: "PCIe function of another type: treated as isolated")
        }
    }

    /// `pci_acs_flags_enabled` (ACS-07): features the capability does not advertise count as
    /// hard-wired on, except Egress Control.
    static func flagsEnabled(_ function: PCIFunction, effective: EffectiveACS, flags: ACSFlags, rule: RuleID)
        -> ACSVerdict
    {
        let kind = function.pciePortType.map(String.init(describing:)) ?? "function"
        guard function.acs != nil else {
            return ACSVerdict(enabled: false, rule: rule, detail: "\(kind) has no ACS capability (ACS-07)")
        }
        let required = flags.intersection(effective.capability.union(.egressControl))
        let missing = required.subtracting(effective.control)
        let state = "cap \(effective.capability), ctrl \(effective.control)"
        if missing.isEmpty {
            let note = effective.enableNote.map { "; \($0)" } ?? ""
            return ACSVerdict(enabled: true, rule: rule, detail: "\(kind) ACS provides \(flags) (\(state)\(note))")
        }
        return ACSVerdict(
            enabled: false, rule: rule, detail: "\(kind) ACS control lacks \(missing) (\(state); ACS-07)")
    }

    /// `pci_dev_specific_acs_enabled` (ACS-30/31): the first applicable quirk's answer, or nil.
    static func quirkVerdict(
        _ function: PCIFunction, onRootBus: Bool, platform: IOMMUPlatformKind, effective: EffectiveACS, flags: ACSFlags
    ) -> ACSVerdict? {
        let standard: ACSFlags = [.sourceValidation, .requestRedirect, .completionRedirect, .upstreamForwarding]
        func provides(_ provided: ACSFlags, _ requested: ACSFlags, _ quirk: ACSQuirk, _ why: String) -> ACSVerdict {
            let enabled = requested.subtracting(provided).isEmpty  // pci_acs_ctrl_enabled
            return ACSVerdict(
                enabled: enabled, rule: .ACS_01,
                detail: "quirk \(quirk.rawValue) (\(function.vendorDeviceText)): \(why) → \(enabled ? "isolated" : "not isolated") (ACS-31)")
        }
        let type = function.pciePortType
        for entry in ACSQuirkTable.entries
        where entry.vendor == function.vendorID && (entry.device == nil || entry.device == function.deviceID) {
            switch entry.quirk {
            case .amdSouthbridge:
                guard function.isMultifunction, onRootBus, platform.hasIVRSTable else { continue }
                let masked = flags.intersection([.requestRedirect, .completionRedirect, .egressControl, .directTranslated])
                return provides(
                    [.requestRedirect, .completionRedirect], masked, entry.quirk,
                    "AMD southbridge multifunction device on the root bus with an IVRS table provides RR CR")
            case .multifunctionEndpoint:
                return provides(
                    standard.union([.translationBlocking, .directTranslated]), flags, entry.quirk,
                    "multifunction endpoint without peer-to-peer between functions")
            case .rootComplexEndpoint:
                guard type == .rootComplexEndpoint else { continue }
                return provides(standard, flags, entry.quirk, "Intel root-complex integrated endpoint")
            case .intelPCH:
                guard type == .rootPort, ACSQuirkTable.isIntelPCHRootPort(function.deviceID) else { continue }
                return provides(
                    effective.pchQuirkEnabled ? standard : [], flags, entry.quirk,
                    effective.pchQuirkEnabled
                        ? "Intel PCH root port, enable quirk applied"
                        : "Intel PCH root port whose enable quirk did not run or failed")
            case .intelSPTPCH:
                guard type == .rootPort, ACSQuirkTable.isIntelSPTRootPort(function.deviceID), function.acs != nil else {
                    continue
                }
                let required = flags.intersection(effective.sptCapability.union(.egressControl))
                return provides(
                    effective.sptControl, required, entry.quirk,
                    "Sunrise Point root port, dword ACS registers (cap \(effective.sptCapability), ctrl at cap+8 \(effective.sptControl))")
            case .qualcommRootPort, .nxpRootPort, .xgene, .broadcom, .loongson:
                return provides(standard, flags, entry.quirk, "vendor asserts isolation without an ACS capability")
            case .annapurnaLabs:
                guard type == .rootPort else { continue }
                return provides(standard, flags, entry.quirk, "Annapurna Labs root port")
            case .cavium:
                guard type == .rootPort, ACSQuirkTable.isCaviumRootPort(function.deviceID) else { continue }
                return provides(standard, flags, entry.quirk, "Cavium ThunderX root port")
            case .zhaoxinPorts:
                guard type == .rootPort || type == .downstreamPort else { continue }
                let listed = ACSQuirkTable.isIsolatedZhaoxinPort(function.deviceID)
                return provides(
                    listed ? standard : [], flags, entry.quirk,
                    listed ? "listed Zhaoxin port" : "unlisted Zhaoxin port: its ACS capability is not trusted")
            case .wangxunNIC:
                let listed = ACSQuirkTable.isIsolatedWangxunNIC(function.deviceID)
                return provides(
                    listed ? standard : [], flags, entry.quirk,
                    listed ? "listed Wangxun NIC" : "unlisted Wangxun device: not isolated")
            }
        }
        return nil
    }
}
