import IOMMU
import IOMMUFD
import UserMemory
import KernelRules
import Locking
import PCIBus
import Synchronization
import SystemPackage

/// An open vfio-pci device (`struct vfio_device_file` of a vfio-pci device,
/// `drivers/vfio/pci/vfio_pci_core.c`), from `VFIO_GROUP_GET_DEVICE_FD` or a bound device cdev
/// (`VFIODeviceCdev`): device info, regions (virtualised config space, BARs), IRQs, reset and bus
/// hot reset of the device it opened (`VFIOPCIFunction`). The group path may open a device several
/// times (VG-34): the first fd enables the function as `vfio_pci_core_enable` does, every fd
/// shares its interrupts and config space, and the last one closed disables it. While open, a
/// group-path fd keeps its group in the container (VG-13).
public final class VFIODevice: Sendable, CustomStringConvertible {
    public let address: PCIAddress
    /// The group it was opened through; nil for a device cdev.
    public let group: VFIOGroup?
    /// The type1 container of its group, if that is what the group joined.
    public let container: VFIOContainer?
    let core: IOMMUCore
    let function: VFIOPCIFunction
    let directory: VFIODeviceDirectory
    private let closed = Atomic<Bool>(false)
    /// What closing the fd releases: the group's hold, or the cdev's binding.
    private let onClose: @Sendable (VFIOPCIFunction) -> Void
    /// The iommufd a device cdev is bound to (`vfio_iommufd_device_ictx`); nil on the group path.
    let iommufd: IOMMUFDContext?

    init(
        function: VFIOPCIFunction, group: VFIOGroup?, container: VFIOContainer?, core: IOMMUCore, directory: VFIODeviceDirectory,
        iommufd: IOMMUFDContext? = nil, onClose: @escaping @Sendable (VFIOPCIFunction) -> Void
    ) {
        self.iommufd = iommufd
        address = function.address
        self.function = function
        self.group = group
        self.container = container
        self.core = core
        self.directory = directory
        self.onClose = onClose
    }

    var backend: (any PCIDeviceBackend)? { function.backend }
    var interrupts: VFIOPCIInterrupts { function.interrupts }
    var hardware: InterruptHardware? { function.hardware }
    var config: PThreadMutex<VFIOPCIConfig?> { function.config }
    /// `vdev->reset_works`: a function reset succeeded when the device was first opened.
    public var resetWorks: Bool { function.resetWorks }

    public var description: String { "VFIO device \(address)" }

    /// `vfio_set_irqs_validate_and_prepare` for a `SET_IRQS` header: the size of one data entry,
    /// so the boundary knows how many bytes to copy in after it.
    package func validateIRQSetHeader(flags: VFIOIRQSetFlags, index: UInt32, start: UInt32, count: UInt32) throws(VFIOError) -> Int {
        let (_, hardware) = try requireBackend("SET_IRQS")
        return try interrupts.validateHeader(flags: flags, index: index, start: start, count: count, counts: hardware.counts)
    }

    /// The function, or `ENODEV` when no device model stands behind this address.
    func requireBackend(_ operation: String) throws(VFIOError) -> (any PCIDeviceBackend, InterruptHardware) {
        guard !closed.load(ordering: .acquiring) else {
            throw VFIOError(.badFileDescriptor, rule: .none, "\(self) \(operation): the device fd is closed")
        }
        guard let backend, let hardware else {
            throw VFIOError(
                .operationNotSupportedByDevice, rule: .none,
                "\(self) \(operation): no PCI function model is attached at this address (build the machine with SimulatedMachine)")
        }
        return (backend, hardware)
    }

    // MARK: VFIO_DEVICE_GET_INFO, GET_REGION_INFO, GET_IRQ_INFO

    /// `VFIO_DEVICE_GET_INFO`: a PCI device with 9 regions and 5 IRQ indexes; `RESET` when a
    /// function reset works; `CAPS` when it has capabilities (`infoCapabilities()`, VPCI-32).
    public func info() throws(VFIOError) -> VFIODeviceInfo { try infoWithCapabilities().info }

    /// `VFIO_DEVICE_GET_REGION_INFO` (`vfio_pci_ioctl_get_region_info`): config space read-write
    /// at its size; each BAR at its size, read-write, `MMAP` as VPCI-60 says, and on the MSI-X
    /// BAR, when mmap-able, the MSIX_MAPPABLE capability with `CAPS` (VPCI-42, VPCI-61); the ROM
    /// read-only at its BAR's length when `pci_map_rom` finds a valid image, probed with memory
    /// decode on (VPCI-51), else size 0 and no flags; VGA `EINVAL` (no VGA function); `EINVAL`
    /// past the last index.
    public func regionInfo(_ index: UInt32) throws(VFIOError) -> VFIORegionInfo {
        let (backend, hardware) = try requireBackend("GET_REGION_INFO")
        function.runtimeGet()  // the ioctl's vfio_device_pm_runtime_get (VPCI-253)
        defer { function.runtimePut() }
        guard let region = VFIORegionIndex(rawValue: index) else {
            throw VFIOError(.invalidArgument, rule: .VPCI_50, "\(self) GET_REGION_INFO: no region \(index) (have 0…8)")
        }
        switch region {
        case .config:
            return VFIORegionInfo(index: region, flags: [.read, .write], size: UInt64(backend.configSpaceSize))
        case .rom:
            // Only an assigned ROM BAR: the shadow ROM (pdev->rom) is the boot VGA device's, and no
            // VGA function is modelled.
            guard let resource = backend.romResource, resource.busAddress != 0 else { return VFIORegionInfo(index: region, flags: [], size: 0) }
            let valid = PCIROMMapping.withMemoryDecode(backend) { () -> Bool in
                guard let mapping = PCIROMMapping.map(backend) else { return false }
                mapping.unmap()
                return true
            }
            // "Report the BAR size, not the ROM size."
            return valid ? VFIORegionInfo(index: region, flags: [.read], size: resource.size) : VFIORegionInfo(index: region, flags: [], size: 0)
        case .vga:
            throw VFIOError(.invalidArgument, rule: .VPCI_52, "\(self) GET_REGION_INFO: not a VGA device")
        default:
            guard let bar = backend.barResource(region.barNumber!) else { return VFIORegionInfo(index: region, flags: [], size: 0) }
            guard Self.mmapSupported(bar) else { return VFIORegionInfo(index: region, flags: [.read, .write], size: bar.size) }
            guard hardware.msix?.tableBAR == region.barNumber else { return VFIORegionInfo(index: region, flags: [.read, .write, .mmap], size: bar.size) }
            return VFIORegionInfo(index: region, flags: [.read, .write, .mmap, .caps], size: bar.size, capabilities: [.msixMappable])
        }
    }

    /// VPCI-60 `vfio_pci_probe_mmaps`: every memory BAR of a page or more, and a smaller one that
    /// starts on a page boundary (the rest of its page reserved) — register BARs too: their
    /// mappings trap every access.
    static func mmapSupported(_ bar: PCIBARResource) -> Bool {
        bar.kind != .io && bar.size > 0 && (bar.size >= hostPageSize || bar.busAddress % hostPageSize == 0)
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO`: INTx (maskable, automasked), MSI, MSI-X, ERR and REQ with the
    /// counts the function's capabilities give, NORESIZE on all but INTx and dynamic MSI-X;
    /// `EINVAL` past the last index.
    public func irqInfo(_ index: UInt32) throws(VFIOError) -> VFIOIRQInfo {
        let (_, hardware) = try requireBackend("GET_IRQ_INFO")
        function.runtimeGet()  // the ioctl's vfio_device_pm_runtime_get (VPCI-253)
        defer { function.runtimePut() }
        guard let irq = VFIOIRQIndex(rawValue: index) else {
            throw VFIOError(.invalidArgument, rule: .VPCI_150, "\(self) GET_IRQ_INFO: no IRQ index \(index) (have 0…4)")
        }
        // vfio_pci_ioctl_get_irq_info: NORESIZE on every index but INTx, except MSI-X with has_dyn_msix (VPCI-152).
        let flags: VFIOIRQInfoFlags =
            irq == .intx ? [.eventFD, .maskable, .automasked] : irq == .msix && hardware.dynamicMSIX ? [.eventFD] : [.eventFD, .noResize]
        return VFIOIRQInfo(index: irq, flags: flags, count: hardware.counts[Int(index)])
    }

    // MARK: VFIO_DEVICE_SET_IRQS

    /// `VFIO_DEVICE_SET_IRQS`, check for check as vfio-pci (see `VFIOIRQSet`): 0, or — an MSI or
    /// MSI-X enable that got fewer vectors than `start + count` — the positive number available,
    /// with nothing enabled, as the ioctl returns it (VPCI-181).
    @discardableResult
    public func setIRQs(_ request: VFIOIRQSet) throws(VFIOError) -> Int {
        let (_, hardware) = try requireBackend("SET_IRQS")
        function.runtimeGet()
        defer { function.runtimePut() }
        return try interrupts.set(request, counts: hardware.counts, hardware: hardware)
    }

    /// Wires `eventFDs` to vectors `start…` of `index` (enabling it), as `vfio_pci_irq_enable`.
    public func enableInterrupts(_ index: VFIOIRQIndex, start: UInt32 = 0, eventFDs: [Int32]) throws(VFIOError) {
        try setIRQs(VFIOIRQSet(action: .actionTrigger, index: index, start: start, count: UInt32(eventFDs.count), data: .eventFD(eventFDs)))
    }

    /// Disables `index` (`DATA_NONE | ACTION_TRIGGER`, count 0).
    public func disableInterrupts(_ index: VFIOIRQIndex) throws(VFIOError) {
        try setIRQs(VFIOIRQSet(action: .actionTrigger, index: index, count: 0))
    }

    /// Fires vectors `start..<start+count` from userspace (`DATA_NONE | ACTION_TRIGGER`).
    public func triggerInterrupts(_ index: VFIOIRQIndex, start: UInt32 = 0, count: UInt32 = 1) throws(VFIOError) {
        try setIRQs(VFIOIRQSet(action: .actionTrigger, index: index, start: start, count: count))
    }

    /// Interrupts delivered to userspace eventfds since open.
    public var interruptsDelivered: Int { interrupts.state.withLock { $0.delivered } }

    // MARK: VFIO_DEVICE_RESET

    /// `VFIO_DEVICE_RESET` (`vfio_pci_ioctl_reset`, VPCI-200): `EINVAL` without `reset_works`;
    /// else the function to D0 and `pci_try_reset_function` over the function's reset methods in
    /// `pci_reset_fn_methods` order (VPCI-232) — its config state saved before the
    /// reset and restored after it (VPCI-230, VPCI-231), so COMMAND (bus master and decode
    /// included), the BARs and the MSI/MSI-X programming come back as they were, while vconfig,
    /// INTx masking and vfio-pci's interrupt set-up stay as they are (VPCI-201).
    public func reset() throws(VFIOError) {
        _ = try requireBackend("RESET")
        function.runtimeGet()
        defer { function.runtimePut() }
        guard resetWorks else {
            throw VFIOError(
                .invalidArgument, rule: .VPCI_200,
                "\(self) RESET: reset_works is false — no reset method (FLR, AF FLR, PM without No_Soft_Reset, a bus reset of a function alone below its bridge) reset it when it was opened"
            )
        }
        function.barMappings.zapAll()  // vfio_pci_zap_and_down_write_memory_lock (VPCI-103)
        function.setPowerState(0)
        if let failure = function.tryReset() {
            let methods = function.resetMethods.map(\.rawValue).joined(separator: ", ")
            throw VFIOError(failure, rule: .VPCI_232, "\(self) RESET: pci_try_reset_function failed with reset methods [\(methods)]")
        }
    }

    // MARK: Hot reset

    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: every function a secondary bus reset would reset,
    /// with its IOMMU group; `ENODEV` when the bus cannot be reset, `EPERM` for a function with
    /// no group.
    public func hotResetInfo() throws(VFIOError) -> [(address: PCIAddress, groupID: Int)] {
        function.runtimeGet()  // the ioctl's vfio_device_pm_runtime_get (VPCI-253)
        defer { function.runtimePut() }
        var result: [(PCIAddress, Int)] = []
        for affected in try hotResetScope("GET_PCI_HOT_RESET_INFO") {
            guard let groupID = core.device(affected)?.groupID else {
                throw VFIOError(.notPermitted, rule: .VPCI_212, "\(self) GET_PCI_HOT_RESET_INFO: \(affected) has no IOMMU group")
            }
            result.append((affected, groupID))
        }
        return result
    }

    /// The functions a bus reset of this device's bus reaches (`vfio_pci_for_each_slot_or_bus`),
    /// or `ENODEV` on a root bus, which has no bus reset (VPCI-213).
    package func hotResetScope(_ operation: String) throws(VFIOError) -> [PCIAddress] {
        _ = try requireBackend(operation)
        guard let scope = directory.hotResetScope(of: address) else {
            throw VFIOError(.operationNotSupportedByDevice, rule: .VPCI_213, "\(self) \(operation): \(address) is on a root bus, which has no bus reset")
        }
        return scope
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET`: resets every function on the bus. The caller must prove it
    /// owns every affected group by passing their open group fds (`EINVAL` otherwise), and
    /// every affected function must be a vfio-pci device (`EINVAL` when one is bound elsewhere).
    /// The reset is `pci_reset_bus`'s: every function saved and disabled, reset, restored — open
    /// or not — so each keeps COMMAND, its BARs and the PCI Express control registers, and an
    /// open VFIO device its MSI/MSI-X programming, vconfig and interrupt set-up (VPCI-223, 233).
    public func hotReset(groups: [VFIOGroup]) throws(VFIOError) {
        // VPCI-220 step 3: a device cdev proves ownership by its iommufd, with no fds at all.
        guard group != nil else {
            throw VFIOError(
                .invalidArgument, rule: .VPCI_220,
                "\(self) PCI_HOT_RESET: group fds from a device opened through its cdev (hotResetOwnedDevSet: its iommufd proves ownership)")
        }
        // vfio_file_has_dev: a group fd proves ownership by being that group's, container or not.
        try hotReset { (function, groupID) throws(VFIOError) in
            guard groups.contains(where: { $0.id == groupID }) else {
                throw VFIOError(.invalidArgument, rule: .VPCI_222, "\(self) PCI_HOT_RESET: \(function) is in IOMMU group \(groupID), which the caller did not pass")
            }
        }
    }

    /// `vfio_pci_dev_set_hot_reset`: every function in scope must be a vfio-pci device of the
    /// dev_set (`EINVAL`, VPCI-221) that `checkOwned` accepts (VPCI-222), then `pci_reset_bus`.
    func hotReset(checkOwned: (PCIAddress, Int) throws(VFIOError) -> Void) throws(VFIOError) {
        function.runtimeGet()  // the ioctl's vfio_device_pm_runtime_get (VPCI-253)
        defer { function.runtimePut() }
        var affected: [(address: PCIAddress, groupID: Int)] = []
        for function in try hotResetScope("PCI_HOT_RESET") {
            // A function without a group is no vfio-pci device of the dev_set either: EINVAL here,
            // where GET_PCI_HOT_RESET_INFO answers EPERM (VPCI-212).
            guard let device = core.device(function), device.driver.map(KernelDriver.isVFIO) == true, directory.backends[function] != nil
            else {
                throw VFIOError(.invalidArgument, rule: .VPCI_221, "\(self) PCI_HOT_RESET: \(function) on the same bus is not a vfio-pci device, so the bus cannot be reset from userspace")
            }
            try checkOwned(function, device.groupID)
            affected.append((function, device.groupID))
        }
        // VPCI-221 (d): every member to D0 (vfio_pci_set_power_state for the open ones).
        let backends = affected.compactMap { directory.backends[$0.address] }
        // vfio_pci_dev_set_hot_reset: every open device's BAR mappings zapped (VPCI-103).
        for backend in backends { directory.driverData.openFunction(backend)?.barMappings.zapAll() }
        for backend in backends { directory.driverData.openFunction(backend)?.setPowerState(0) }
        // VPCI-233 pci_reset_bus: every function below the bridge saved and disabled, the bus
        // reset, every function restored — open or not; an open VFIO device's MSI/MSI-X comes
        // back as vfio-pci set it up (VPCI-223).
        let saved = backends.map { PCICore.saveAndDisable($0) }
        for backend in backends { backend.resetFunction() }
        for (backend, state) in zip(backends, saved) {
            let open = directory.driverData.openFunction(backend)
            PCICore.restoreState(backend, state) { open?.restoreInterrupts() }
            open?.refreshPowerState()
        }
    }

    // MARK: Close

    /// `close(device fd)`: the group's hold dropped, or the cdev's binding; the device's last fd
    /// also disables it (interrupts off, the function reset). Later calls do nothing.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        onClose(function)
    }
}
