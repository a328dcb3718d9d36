import KernelRules
import Locking
import SystemPackage

/// `struct vfio_device_feature.flags` (`<linux/vfio.h>`): a 16-bit feature index and the
/// GET/SET/PROBE operation bits.
public struct VFIODeviceFeatureFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `VFIO_DEVICE_FEATURE_MASK`: the feature index.
    public static let indexMask: UInt32 = 0xffff
    public static let get = VFIODeviceFeatureFlags(rawValue: 1 << 16)
    public static let set = VFIODeviceFeatureFlags(rawValue: 1 << 17)
    public static let probe = VFIODeviceFeatureFlags(rawValue: 1 << 18)

    /// The index with operation bits: `VFIODeviceFeatureFlags(.lowPowerExit, [.set])`.
    public init(_ feature: VFIODeviceFeature, _ operations: VFIODeviceFeatureFlags) {
        rawValue = feature.rawValue | operations.rawValue
    }
}

/// The `VFIO_DEVICE_FEATURE_*` indexes of `<linux/vfio.h>` (7.3).
public enum VFIODeviceFeature: UInt32, Sendable, CaseIterable {
    case pciVFToken = 0
    case migration = 1
    case migrationDeviceState = 2
    case lowPowerEntry = 3
    case lowPowerEntryWithWakeup = 4
    case lowPowerExit = 5
    case dmaLoggingStart = 6
    case dmaLoggingStop = 7
    case dmaLoggingReport = 8
    case migrationDataSize = 9
    case busMaster = 10
    case dmaBuf = 11
    case migrationPrecopyInfoV2 = 12
    case zpciError = 13
}

extension VFIODevice {
    /// `VFIO_DEVICE_FEATURE` (`vfio_ioctl_device_feature` in `drivers/vfio/vfio_main.c`, then
    /// `vfio_pci_core_ioctl_feature`): `flags` as in `struct vfio_device_feature`, `argsz` the
    /// whole struct's (default: the 8-byte header and `data`), `data` what follows the header.
    /// Returns the bytes a GET writes back (no vfio-pci feature of this simulation has a GET: an
    /// empty array). See `feature(flags:argsz:copyIn:)` for the order of checks.
    @discardableResult
    public func feature(flags: UInt32, argsz: UInt32? = nil, data: [UInt8] = []) throws(VFIOError) -> [UInt8] {
        try feature(flags: flags, argsz: argsz ?? UInt32(8 + data.count)) { count throws(VFIOError) in
            guard data.count >= count else {
                throw VFIOError(.badAddress, rule: .VPCI_252, "\(self) DEVICE_FEATURE: copy_from_user of \(count) bytes, \(data.count) given")
            }
            return Array(data.prefix(count))
        }
    }

    /// VPCI-250: `argsz < 8` EINVAL; a flag outside the index, GET, SET and PROBE EINVAL; GET with
    /// SET and without PROBE EINVAL; then by index (data size `argsz - 8`): the core's migration
    /// and DMA-logging features (1, 2, 9; 6, 7, 8) ENOTTY — plain vfio-pci registers no
    /// `mig_ops`/`log_ops` — and 12 (`MIG_PRECOPY_INFOv2`) EINVAL, since `migration_flags` lacks
    /// PRE_COPY (vfio_main.c:1014, checked before `vfio_check_feature`); every other index goes to
    /// vfio-pci (VPCI-252). `copyIn(n)` reads `n` bytes of the payload (`copy_from_user`), called
    /// only once the feature's checks have passed.
    package func feature(flags: UInt32, argsz: UInt32, copyIn: (Int) throws(VFIOError) -> [UInt8]) throws(VFIOError) -> [UInt8] {
        _ = try requireBackend("DEVICE_FEATURE")
        function.runtimeGet()
        defer { function.runtimePut() }
        var what: String { "\(self) DEVICE_FEATURE 0x\(String(flags, radix: 16))" }
        guard argsz >= 8 else { throw VFIOError(.invalidArgument, rule: .VPCI_250, "\(what): argsz \(argsz) < 8") }
        let operations = VFIODeviceFeatureFlags(rawValue: flags & ~VFIODeviceFeatureFlags.indexMask)
        guard operations.isSubset(of: [.get, .set, .probe]) else {
            throw VFIOError(.invalidArgument, rule: .VPCI_250, "\(what): flags outside the index, GET, SET and PROBE")
        }
        guard operations.contains(.probe) || !operations.isSuperset(of: [.get, .set]) else {
            throw VFIOError(.invalidArgument, rule: .VPCI_250, "\(what): GET and SET together need PROBE")
        }
        let dataSize = Int(argsz) - 8
        let index = flags & VFIODeviceFeatureFlags.indexMask
        switch VFIODeviceFeature(rawValue: index) {
        case .migration, .migrationDeviceState, .migrationDataSize:
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .VPCI_250, "\(what): vfio-pci has no migration ops (device->mig_ops is NULL)")
        case .dmaLoggingStart, .dmaLoggingStop, .dmaLoggingReport:
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .VPCI_250, "\(what): vfio-pci has no DMA logging ops (device->log_ops is NULL)")
        case .migrationPrecopyInfoV2:
            throw VFIOError(.invalidArgument, rule: .VPCI_250, "\(what): MIG_PRECOPY_INFOv2 needs VFIO_MIGRATION_PRE_COPY, and vfio-pci has no migration")
        case .lowPowerEntry:
            guard try Self.checkFeature(operations, dataSize: dataSize, supported: .set, minimum: 0, what: what) else { return [] }
            try function.lowPowerEntry(wakeup: nil, what: what)
        case .lowPowerEntryWithWakeup:
            // struct vfio_device_low_power_entry_with_wakeup { s32 wakeup_eventfd; u32 reserved; }
            guard try Self.checkFeature(operations, dataSize: dataSize, supported: .set, minimum: 8, what: what) else { return [] }
            let payload = try copyIn(8)
            let fd = Int32(bitPattern: UInt32(payload[0]) | UInt32(payload[1]) << 8 | UInt32(payload[2]) << 16 | UInt32(payload[3]) << 24)
            guard fd >= 0 else { throw VFIOError(.invalidArgument, rule: .VPCI_252, "\(what): wakeup_eventfd \(fd) is negative") }
            let wakeup = try EventFD(referencing: fd, rule: .VPCI_252, what: "\(what) wakeup_eventfd")
            try function.lowPowerEntry(wakeup: wakeup, what: what)
        case .lowPowerExit:
            guard try Self.checkFeature(operations, dataSize: dataSize, supported: .set, minimum: 0, what: what) else { return [] }
            function.lowPowerExit()
        case .pciVFToken:
            // vfio_pci_core_feature_token: vdev->vf_token exists only on an SR-IOV PF (VPCI-262),
            // and the simulated machines have none — ENOTTY before vfio_check_feature, PROBE too.
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .VPCI_252, "\(what): \(address) is not an SR-IOV PF, so it has no VF token")
        case .dmaBuf:
            // Built as CONFIG_VFIO_PCI_DMABUF=n: the simulation exports no dma-bufs.
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .VPCI_252, "\(what): DMA_BUF is not built (no dma-buf export in the simulation)")
        case .zpciError:
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .VPCI_252, "\(what): ZPCI_ERROR exists only on s390")
        case .busMaster, nil:
            throw VFIOError(.inappropriateIOCTLForDevice, rule: .VPCI_252, "\(what): vfio-pci has no feature \(index)")
        }
        return []
    }

    /// `vfio_check_feature` (`include/linux/vfio.h`, VPCI-251): a requested GET or SET the feature
    /// does not support EINVAL (with PROBE too); PROBE answers now (false: done, nothing read or
    /// written); neither GET nor SET EINVAL; `dataSize < minimum` EINVAL; else true (perform it).
    static func checkFeature(
        _ operations: VFIODeviceFeatureFlags, dataSize: Int, supported: VFIODeviceFeatureFlags, minimum: Int, what: @autoclosure () -> String
    ) throws(VFIOError) -> Bool {
        let requested = operations.intersection([.get, .set])
        guard requested.isSubset(of: supported) else {
            throw VFIOError(.invalidArgument, rule: .VPCI_251, "\(what()): the feature supports only \(supported == .set ? "SET" : "GET")")
        }
        if operations.contains(.probe) { return false }
        guard !requested.isEmpty else { throw VFIOError(.invalidArgument, rule: .VPCI_251, "\(what()): neither GET nor SET (nor PROBE)") }
        guard dataSize >= minimum else {
            throw VFIOError(.invalidArgument, rule: .VPCI_251, "\(what()): \(dataSize) data bytes, the feature needs \(minimum)")
        }
        return true
    }

    /// `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY` (`wakeup` nil) or `_WITH_WAKEUP`: see
    /// `VFIOPCIRuntimePM`.
    public func enterLowPower(wakeup: EventFD? = nil) throws(VFIOError) {
        if let wakeup {
            var bytes = withUnsafeBytes(of: wakeup.fd.littleEndian) { Array($0) }
            bytes += [0, 0, 0, 0]
            try feature(flags: VFIODeviceFeatureFlags(.lowPowerEntryWithWakeup, .set).rawValue, data: bytes)
        } else {
            try feature(flags: VFIODeviceFeatureFlags(.lowPowerEntry, .set).rawValue)
        }
    }

    /// `VFIO_DEVICE_FEATURE_LOW_POWER_EXIT`.
    public func exitLowPower() throws(VFIOError) {
        try feature(flags: VFIODeviceFeatureFlags(.lowPowerExit, .set).rawValue)
    }

    /// Whether the user holds the device in low power (`vdev->pm_runtime_engaged`).
    public var lowPowerEngaged: Bool { function.runtimePM.state.withLock { $0.engaged } }
}
