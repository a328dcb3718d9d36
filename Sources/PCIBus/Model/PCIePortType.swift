/// PCI Express device/port type, `PCI_EXP_FLAGS_TYPE >> 4` (`pci_pcie_type()`).
public enum PCIePortType: UInt8, Sendable, Codable, CustomStringConvertible {
    case endpoint = 0x0
    case legacyEndpoint = 0x1
    case rootPort = 0x4
    case upstreamPort = 0x5
    case downstreamPort = 0x6
    /// PCIe-to-PCI/PCI-X bridge (`PCI_EXP_TYPE_PCI_BRIDGE`).
    case pcieToPCIBridge = 0x7
    /// PCI/PCI-X-to-PCIe bridge (`PCI_EXP_TYPE_PCIE_BRIDGE`).
    case pciToPCIeBridge = 0x8
    /// Root-complex integrated endpoint (`PCI_EXP_TYPE_RC_END`).
    case rootComplexEndpoint = 0x9
    /// Root-complex event collector (`PCI_EXP_TYPE_RC_EC`).
    case rootComplexEventCollector = 0xa

    public var description: String {
        switch self {
        case .endpoint: "Endpoint"
        case .legacyEndpoint: "Legacy Endpoint"
        case .rootPort: "Root Port"
        case .upstreamPort: "Upstream Port"
        case .downstreamPort: "Downstream Port"
        case .pcieToPCIBridge: "PCIe-to-PCI Bridge"
        case .pciToPCIeBridge: "PCI-to-PCIe Bridge"
        case .rootComplexEndpoint: "Root Complex Integrated Endpoint"
        case .rootComplexEventCollector: "Root Complex Event Collector"
        }
    }
}
