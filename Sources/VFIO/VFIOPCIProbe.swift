import IOMMU
import KernelRules
import PCIBus
import SystemPackage

extension VFIOSystem {
    /// `echo BDF > /sys/bus/pci/drivers/vfio-pci/bind` (VPCI-17), with `driver_override` naming
    /// vfio-pci (vfio-pci has no ID table): the driver core first refuses a function that already
    /// has a driver (`EBUSY`, before any probe); then `vfio_pci_probe`'s refusals, in its order — a function on vfio-pci's denylist (Intel QAT
    /// C3XXX/C62X/DH895XCC and their VFs, DSA and IAX on Sapphire Rapids; `vfio_pci_is_denylisted`,
    /// `disable_denylist` off) `EINVAL`; then `vfio_pci_core_register_device`: a header type other
    /// than normal (a bridge, a CardBus bridge) `EINVAL`. (A PF with VFs enabled, `EBUSY`, needs
    /// SR-IOV, which no simulated function has.) Then the PCI driver core binds it — its own
    /// failures (already bound: `EBUSY`) come back as they are. Nothing changes on failure.
    public func bindVFIOPCI(_ address: PCIAddress) throws(VFIOError) {
        var what: String { "bind vfio-pci to \(address)" }
        guard let topology = devices.topology, let index = topology.index(of: address) else {
            throw VFIOError(.operationNotSupportedByDevice, rule: .VPCI_17, "\(what): no such PCI function")
        }
        let function = topology.functions[index]
        if let current = core.device(address)?.driver {
            throw VFIOError(.resourceBusy, rule: .VPCI_17, "\(what): already bound to \(current) (unbind it first)")
        }
        if function.vendorID == Self.intelVendorID, Self.denylistedDeviceIDs.contains(function.deviceID) {
            throw VFIOError(
                .invalidArgument, rule: .VPCI_17,
                "\(what): \(String(function.vendorID, radix: 16)):\(String(function.deviceID, radix: 16)) is on vfio-pci's denylist (known errata; module parameter disable_denylist)")
        }
        guard function.headerType == .normal else {
            let kind = function.headerType.map { "\($0)" } ?? "unknown"
            throw VFIOError(.invalidArgument, rule: .VPCI_17, "\(what): header type \(kind), not normal: vfio-pci drives endpoints only, never bridges")
        }
        try iommuCall { () throws(IOMMUError) in try core.bind(driver: "vfio-pci", to: address) }
    }

    static let intelVendorID: UInt16 = 0x8086

    /// `vfio_pci_dev_in_denylist` (vfio_pci.c:63): QAT C3XXX 0x19e2 / VF 0x19e3, C62X 0x37c8 / VF
    /// 0x37c9, DH895XCC 0x0435 / VF 0x0443, DSA_SPR0 0x0b25, IAX_SPR0 0x0cfe (`pci_ids.h`, not in
    /// `../shared/kernel`).
    static let denylistedDeviceIDs: Set<UInt16> = [0x19e2, 0x19e3, 0x37c8, 0x37c9, 0x0435, 0x0443, 0x0b25, 0x0cfe]
}
