/// The DMA-alias header quirks of `drivers/pci/quirks.c` (ALIAS-04), as data: what each sets on
/// `struct pci_dev` (`dma_alias_mask`, `dev_flags`).
struct DMAAliasQuirks: Sendable, Equatable {
    /// `pdev->dma_alias_mask`: devfns on the same bus this function also uses as requester ID.
    var aliasDevfns: [UInt8] = []
    /// `PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT`: the alias walk stops at this bridge.
    var bridgeTranslationRoot = false
    /// `PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS`: this PCIe-to-PCI bridge does not take over requester IDs.
    var pciBridgeNoAlias = false
    /// `PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS`: this conventional bridge aliases like a PCIe-to-PCI bridge.
    var pcieBridgeAlias = false
    /// The quirk function that applied, for explanations.
    var quirk: String?

    private enum Kind {
        case function0, function1, fixedSlot1, pcieBridgeAlias, micX200, pexVCA, translationRoot, noAlias
    }

    private static let table: [(vendor: UInt16, devices: [UInt16], kind: Kind, name: String)] = [
        (0x1180, [0xe832, 0xe476], .function0, "quirk_dma_func0_alias"),  // Ricoh
        (0x6766, [0x3d40, 0x3d41], .function0, "quirk_dma_func0_alias"),  // Glenfly
        (
            0x1b4b,
            [0x9120, 0x9123, 0x9125, 0x9128, 0x9130, 0x9170, 0x9172, 0x917a, 0x9182, 0x9183, 0x91a0, 0x9215, 0x9220, 0x9230, 0x9235],
            .function1, "quirk_dma_func1_alias"
        ),  // Marvell
        (0x1103, [0x0642, 0x0645], .function1, "quirk_dma_func1_alias"),  // TTI
        (0x197b, [0x2393], .function1, "quirk_dma_func1_alias"),  // JMicron JMB388_ESD
        (0x1c28, [0x0122], .function1, "quirk_dma_func1_alias"),  // Lite-On / Plextor
        (0x9005, [0x0285], .fixedSlot1, "quirk_fixed_dma_alias"),  // Adaptec 3405/3805
        (0x1b21, [0x1080], .pcieBridgeAlias, "quirk_use_pcie_bridge_dma_alias"),  // ASMedia
        (0x10e3, [0x8113], .pcieBridgeAlias, "quirk_use_pcie_bridge_dma_alias"),  // Tundra
        (0x1283, [0x8892, 0x8893], .pcieBridgeAlias, "quirk_use_pcie_bridge_dma_alias"),  // ITE
        (0x8086, [0x244e], .pcieBridgeAlias, "quirk_use_pcie_bridge_dma_alias"),  // Intel 82801
        (0x8086, [0x2260, 0x2264], .micX200, "quirk_mic_x200_dma_alias"),
        (0x8086, [0x2954, 0x2955, 0x2956, 0x2958, 0x2959, 0x295a], .pexVCA, "quirk_pex_vca_alias"),
        (0x14e4, [0x9000, 0x9084], .translationRoot, "quirk_bridge_cavm_thrx2_pcie_root"),
        (0x1a03, [0x1150], .noAlias, "quirk_aspeed_pci_bridge_no_alias"),
    ]

    /// The quirks that apply to one function of a topology.
    init(_ index: Int, in topology: PCITopology) {
        let function = topology.functions[index]
        guard
            let entry = Self.table.first(where: {
                $0.vendor == function.vendorID && $0.devices.contains(function.deviceID)
            })
        else { return }
        let slot = function.address.device
        switch entry.kind {
        case .function0:
            if function.address.function != 0 { aliasDevfns = [slot << 3] }
        case .function1:
            if function.address.function != 1 { aliasDevfns = [slot << 3 | 1] }
        case .fixedSlot1:
            // Only the 3405 and 3805 subsystems (`9005:02bb`, `9005:02bc`) alias to 01.0.
            guard function.subsystemVendorID == 0x9005, [0x02bb, 0x02bc].contains(function.subsystemID) else { return }
            aliasDevfns = [1 << 3]
        case .pcieBridgeAlias:
            // Only a conventional bridge below a PCIe port that is not itself a PCIe-to-PCI bridge.
            guard !topology.isOnRootBus(index), function.headerType == .bridge, !function.isPCIe,
                let parent = topology.parentBridge(of: index), topology.functions[parent].isPCIe,
                topology.functions[parent].pciePortType != .pcieToPCIBridge
            else { return }
            pcieBridgeAlias = true
        case .micX200:
            aliasDevfns = [0x10 << 3, 0x11 << 3, 0x12 << 3 | 3]
        case .pexVCA:
            aliasDevfns = (0..<32).flatMap { slot in (0..<5).map { UInt8(slot) << 3 | UInt8($0) } }
        case .translationRoot:
            bridgeTranslationRoot = true
        case .noAlias:
            pciBridgeNoAlias = true
        }
        quirk = entry.name
    }
}
