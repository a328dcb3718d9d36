import KernelRules
import PCIBus
import SystemPackage

extension VFIODeviceFlags {
    /// `VFIO_DEVICE_FLAGS_CAPS`: GET_INFO carries a capability chain.
    public static let caps = VFIODeviceFlags(rawValue: 1 << 7)
}

/// One capability of `VFIO_DEVICE_GET_INFO`'s chain (`struct vfio_info_cap_header` and its body).
public struct VFIODeviceInfoCapability: Sendable, Equatable {
    public let id: UInt16
    public let version: UInt16
    /// The bytes after the 8-byte header.
    public let body: [UInt8]

    /// `VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP`.
    public static let atomicCompletionID: UInt16 = 5
    /// `VFIO_PCI_ATOMIC_COMP32`, `64`, `128`.
    public static let comp32: UInt32 = 1 << 0, comp64: UInt32 = 1 << 1, comp128: UInt32 = 1 << 2

    /// The header and body as the chain holds them, `next` the offset of the following capability
    /// from the start of `struct vfio_device_info` (0 for the last).
    public func bytes(next: UInt32) -> [UInt8] {
        withUnsafeBytes(of: id.littleEndian) { Array($0) } + withUnsafeBytes(of: version.littleEndian) { Array($0) }
            + withUnsafeBytes(of: next.littleEndian) { Array($0) } + body
    }

    /// For ATOMIC_COMP: its `flags`.
    public var atomicFlags: UInt32? {
        guard id == Self.atomicCompletionID, body.count >= 4 else { return nil }
        return UInt32(body[0]) | UInt32(body[1]) << 8 | UInt32(body[2]) << 16 | UInt32(body[3]) << 24
    }
}

extension VFIODevice {
    /// `vfio_pci_ioctl_get_info` (VPCI-31, VPCI-32): PCI, RESET with `reset_works`, 9 regions, 5
    /// IRQ indexes; the capabilities (on x86 only ATOMIC_COMP, VPCI-32) and CAPS when there are any.
    /// Building ATOMIC_COMP enables AtomicOp requests in the function (`pci_enable_atomic_ops_to_root`).
    package func infoWithCapabilities() throws(VFIOError) -> (info: VFIODeviceInfo, capabilities: [VFIODeviceInfoCapability]) {
        let (backend, _) = try requireBackend("GET_INFO")
        function.runtimeGet()
        defer { function.runtimePut() }
        var capabilities: [VFIODeviceInfoCapability] = []
        if let atomic = atomicCompletionCapability(backend) { capabilities.append(atomic) }
        var flags: VFIODeviceFlags = resetWorks ? [.pci, .reset] : [.pci]
        if !capabilities.isEmpty { flags.insert(.caps) }
        let info = VFIODeviceInfo(flags: flags, regionCount: UInt32(VFIORegionIndex.allCases.count), irqCount: UInt32(VFIOIRQIndex.allCases.count))
        return (info, capabilities)
    }

    /// `VFIO_DEVICE_GET_INFO`'s capability chain (see `infoWithCapabilities`).
    public func infoCapabilities() throws(VFIOError) -> [VFIODeviceInfoCapability] { try infoWithCapabilities().capabilities }

    /// `vfio_pci_info_atomic_cap` (VPCI-32): for each completer size the function's DEVCAP2 claims
    /// (bits 7, 8, 9: 32-, 64-, 128-bit AtomicOp completion), the flag is set when
    /// `pci_enable_atomic_ops_to_root` succeeds for it; no flag, no capability (`-ENODEV`, which
    /// GET_INFO ignores). No SR-IOV is modelled, so `pci_physfn` is the function itself.
    func atomicCompletionCapability(_ backend: any PCIDeviceBackend) -> VFIODeviceInfoCapability? {
        guard let express = PCICore.capability(backend, PCICapabilityID.pciExpress) else { return nil }
        // pcie_capability_read_dword: DEVCAP2 exists only in a version 2 capability (reads 0 in v1).
        guard backend.readConfig(express + 2, width: 2) & 0xf >= 2 else { return nil }
        let devcap2 = backend.readConfig(express + 0x24, width: 4)
        var flags: UInt32 = 0
        for (bit, flag) in [(UInt32(1) << 7, VFIODeviceInfoCapability.comp32), (1 << 8, VFIODeviceInfoCapability.comp64), (1 << 9, VFIODeviceInfoCapability.comp128)]
        where devcap2 & bit != 0 && enableAtomicOpsToRoot(backend, express: express, mask: bit) {
            flags |= flag
        }
        guard flags != 0 else { return nil }
        return VFIODeviceInfoCapability(id: VFIODeviceInfoCapability.atomicCompletionID, version: 1, body: withUnsafeBytes(of: flags.littleEndian) { Array($0) } + [0, 0, 0, 0])
    }

    /// `pci_enable_atomic_ops_to_root` (`drivers/pci/pci.c`): only an Endpoint or Legacy Endpoint
    /// requests AtomicOps; its Root Port must complete every size in `mask` (DEVCAP2); every switch
    /// port on the way must route them (DEVCAP2 bit 6) and an Upstream Port must not block them on
    /// egress (DEVCTL2 bit 7). Without a Root Port above (a hypervisor's topology) it succeeds only
    /// if AtomicOp Requester Enable is already set. On success it sets AtomicOp Requester Enable
    /// (DEVCTL2 bit 6) in the function.
    private func enableAtomicOpsToRoot(_ backend: any PCIDeviceBackend, express: Int, mask: UInt32) -> Bool {
        let type = (backend.readConfig(express + 2, width: 2) >> 4) & 0xf
        guard type == UInt32(PCIePortType.endpoint.rawValue) || type == UInt32(PCIePortType.legacyEndpoint.rawValue) else { return false }
        let requesterEnable: UInt32 = 1 << 6
        let path = upstreamPCIeBridges()
        guard let root = path.last, root.pciePortType == .rootPort else {
            return backend.readConfig(express + 0x28, width: 2) & requesterEnable != 0
        }
        guard let rootExpress = root.pcieCapabilityOffset, root.config.u16(rootExpress + 2) & 0xf >= 2, root.config.u32(rootExpress + 0x24) & mask == mask
        else { return false }
        for bridge in path.dropLast() {
            // A version 1 port reads DEVCAP2/DEVCTL2 as 0: no routing, no egress blocking.
            guard let offset = bridge.pcieCapabilityOffset, bridge.config.u16(offset + 2) & 0xf >= 2 else {
                if bridge.pciePortType == .upstreamPort || bridge.pciePortType == .downstreamPort { return false }
                continue
            }
            switch bridge.pciePortType {
            case .upstreamPort:
                guard bridge.config.u16(offset + 0x28) & 0x80 == 0 else { return false }
                fallthrough
            case .downstreamPort:
                guard bridge.config.u32(offset + 0x24) & 0x40 != 0 else { return false }
            default:
                break
            }
        }
        let control = backend.readConfig(express + 0x28, width: 2)
        backend.writeConfig(express + 0x28, width: 2, control | requesterEnable)
        return true
    }

    /// The PCI Express bridges from the function's parent up to its Root Port
    /// (`pcie_find_root_port`: the walk stops at the first Root Port, or at a bridge that is not
    /// PCI Express — then the path has no Root Port at its end).
    private func upstreamPCIeBridges() -> [PCIFunction] {
        guard let topology = directory.topology, var index = topology.index(of: address) else { return [] }
        var path: [PCIFunction] = []
        while let bridge = topology.parentBridge(of: index) {
            let function = topology.functions[bridge]
            guard function.pciePortType != nil else { return path }
            path.append(function)
            if function.pciePortType == .rootPort { return path }
            index = bridge
        }
        return path
    }
}
