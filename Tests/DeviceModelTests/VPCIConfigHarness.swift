import CLinuxVFIO
import DeviceModels
import Glibc
import IOMMU
import KernelRules
import Machine
import PCIBus
import SampleDrivers
import Syscalls
import SystemPackage
import Testing
import VFIO

/// The two ways a row of the VPCI conformance tables reaches the device fd: the Swift API
/// (`VFIODevice.read/write(.config…)`, `reset()`, `hotReset(groups:)`, `setIRQs`) and the raw UAPI
/// (`VFIOSystem.open`, `ioctl`, `pread`, `pwrite` on the device fd with `<linux/vfio.h>`'s structs).
enum VPCIPath: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case swiftAPI, uapi
    var testDescription: String { rawValue }
}

/// A function's config space for a conformance row: bytes with the hardware's write masks, laid
/// out by `VirtualConfigBuilder` and then edited by hand for the capabilities it has no helper
/// for (AER, VPD, vendor-specific, hidden ones, …).
struct VPCIImage: Sendable {
    var bytes: [UInt8]
    var writable: [UInt8]
    var rw1c: [UInt8]
    var bars: [PCIBARResource?]
    var msi: MSILayout?
    var msix: MSIXLayout?
    var pcieOffset: Int?
    var flr: Bool
    /// The function records every BAR register access (`AccessRecordingDevice`).
    var recordsAccesses = false
    /// The expansion ROM BAR and its bytes (`withROM`).
    var rom: (resource: PCIBARResource, image: [UInt8])?

    static let pm = 0x40, msiAt = 0x50, msixAt = 0x70, pcie = 0x80
    static let ramBAR = 2

    /// The standard image: identity 1234:5678, pin INTA, BAR0 16 KiB registers (MSI-X table at
    /// 0x2000, PBA at 0x3000), BAR2 64 KiB 64-bit prefetchable RAM, BAR4 32 bytes of I/O; PM at
    /// 0x40, MSI (4 vectors, 64-bit) at 0x50, MSI-X (4) at 0x70, PCI Express v2 endpoint at 0x80
    /// with FLR (`flr`), its chain ending there; extended space empty.
    init(vendor: UInt16 = 0x1234, device: UInt16 = 0x5678, flr: Bool = true, pin: UInt8 = 1, multifunction: Bool = false) {
        var builder = VirtualConfigBuilder(
            vendor: vendor, device: device, classCode: 0xff0000, subsystemVendor: 0x1af4, subsystem: 0x1100, interruptPin: pin,
            multifunction: multifunction)
        builder.addBAR(0, PCIBARResource(kind: .memory32, size: 0x4000, busAddress: 0xd000_0000))
        builder.addBAR(2, PCIBARResource(kind: .memory64, size: 0x10000, prefetchable: true, busAddress: 0x38_0000_0000, mappable: true))
        builder.addBAR(4, PCIBARResource(kind: .io, size: 0x20, busAddress: 0x3000))
        builder.placeNextCapability(at: Self.pm)
        builder.addPowerManagement()
        builder.placeNextCapability(at: Self.msiAt)
        builder.addMSI(vectors: 4)
        builder.placeNextCapability(at: Self.msixAt)
        builder.addMSIX(tableSize: 4, tableBAR: 0, tableOffset: 0x2000, pbaBAR: 0, pbaOffset: 0x3000)
        builder.placeNextCapability(at: Self.pcie)
        builder.addPCIExpress(.endpoint, flr: flr)
        let layout = builder.build()
        bytes = layout.config.bytes
        writable = layout.config.writable
        rw1c = layout.config.writeOneToClear
        bars = layout.bars
        msi = layout.msi
        msix = layout.msix
        pcieOffset = layout.pcieOffset
        self.flr = flr
        // The hardware's own bits a real function has: PMC version 3 with D1/D2 and PME support,
        // PMCSR No_Soft_Reset; DEVCAP MPS 512; DEVCTL MPS 256 / MRRS 512 with the error-reporting
        // enables read-write; LNKCTL read-write; DEVCTL2 read-write; DEVSTA RW1C.
        set(Self.pm + 2, 2, 0xfe03)
        set(Self.pm + 4, 4, 0x0000_0008, writable: 0x0000_0103, rw1c: 0x8000)
        set(Self.pcie + 4, 4, (flr ? 0x1000_0000 : 0) | 0x2)
        set(Self.pcie + 8, 2, 0x2030 | 0x0f, writable: (flr ? 0x8000 : 0) | 0x7fff)
        set(Self.pcie + 0x0a, 2, 0, rw1c: 0x000f)
        set(Self.pcie + 0x10, 2, 0x0040, writable: 0xffff)
        set(Self.pcie + 0x28, 2, 0, writable: 0xffff)
    }

    /// The config bytes at `offset` set to `value` (little-endian) with those write masks.
    mutating func set(_ offset: Int, _ width: Int, _ value: UInt32, writable mask: UInt32 = 0, rw1c clear: UInt32 = 0) {
        for i in 0..<width {
            bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))
            writable[offset + i] = UInt8(truncatingIfNeeded: mask >> (8 * UInt32(i)))
            rw1c[offset + i] = UInt8(truncatingIfNeeded: clear >> (8 * UInt32(i)))
        }
    }

    func value(_ offset: Int, _ width: Int) -> UInt32 {
        (0..<width).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    /// A standard capability `id` at `offset` whose next pointer is `next`, body after the header.
    mutating func capability(_ offset: Int, id: UInt8, next: UInt8, body: [UInt8] = []) {
        bytes[offset] = id
        bytes[offset + 1] = next
        for (i, byte) in body.enumerated() { bytes[offset + 2 + i] = byte }
    }

    /// Points the PCI Express capability (the end of the builder's chain) on to `offset`.
    mutating func chainAfterExpress(_ offset: UInt8) { bytes[Self.pcie + 1] = offset }

    /// An extended capability header at `offset`: id, version 1, next.
    mutating func extended(_ offset: Int, id: UInt16, next: Int, version: UInt32 = 1) {
        set(offset, 4, UInt32(id) | version << 16 | UInt32(next) << 20)
    }

    func device(at address: PCIAddress, name: String = "vpci conformance function") -> VirtualPCIDevice {
        let layout = VirtualFunctionLayout(
            config: VirtualConfigSpace(bytes: bytes, writable: writable, writeOneToClear: rw1c), bars: bars, msi: msi, msix: msix,
            pcieOffset: pcieOffset, supportsFLR: flr, rom: rom)
        return recordsAccesses
            ? AccessRecordingDevice(address: address, modelName: name, layout: layout)
            : VirtualPCIDevice(address: address, modelName: name, layout: layout)
    }
}

/// One device opened on a fresh default machine, with `image` replacing the memcpy engine at
/// 5f:00.0 (alone below its root port) and `others` beside it, through `path`. Every call
/// returns what the path returns: a value, or the errno (0 for success).
final class VPCIRig {
    static let address = PCIAddress(parsing: "0000:5f:00.0")!
    static let base: BusSnapshot = try! BusSnapshot.load(.machine(FixtureMachine.load(directory: FixtureMachine.locate("default"))))

    let path: VPCIPath
    let machine: SimulatedMachine
    let model: VirtualPCIDevice
    private(set) var device: UserspaceDevice?
    private(set) var fds: (container: Int32, group: Int32, device: Int32)?
    private(set) var lastError: VFIOError?

    /// `profileName` replaces the machine's IOMMU profile; one without interrupt remapping gets
    /// type1's `allow_unsafe_interrupts` set, as a host using VFIO there must.
    init(
        _ path: VPCIPath, _ image: VPCIImage = VPCIImage(), others: [(PCIAddress, VPCIImage)] = [], base: BusSnapshot = VPCIRig.base,
        profileName: String? = nil
    ) throws {
        self.path = path
        let devices = [image.device(at: Self.address)] + others.map { $0.1.device(at: $0.0, name: "vpci neighbour") }
        machine = try SimulatedMachine(base: base, devices: devices, profileName: profileName)
        model = try #require(machine.devices[Self.address])
        if !machine.vfio.core.profile.interruptRemapping { machine.vfio.type1AllowUnsafeInterrupts = true }
        try open()
    }

    var system: VFIOSystem { machine.vfio }

    /// Opens the device (group, container, type1v2, device fd) as the path does.
    func open() throws {
        switch path {
        case .swiftAPI:
            device = try UserspaceDevice(Self.address, in: system)
        case .uapi:
            let groupID = try #require(machine.groupID(of: Self.address))
            let container = system.open("/dev/vfio/vfio")
            let group = system.open("/dev/vfio/\(groupID)")
            var fd = container
            try #require(system.ioctl(group, clinuxvfio_group_set_container(), UInt(bitPattern: withUnsafeMutablePointer(to: &fd) { $0 })) == 0)
            try #require(system.ioctl(container, clinuxvfio_set_iommu(), UInt(VFIO_TYPE1v2_IOMMU)) == 0)
            let deviceFD = Self.address.description.withCString { system.ioctl(group, clinuxvfio_group_get_device_fd(), UInt(bitPattern: $0)) }
            try #require(deviceFD >= 0)
            fds = (container, group, deviceFD)
        }
    }

    /// Closes every fd (the device's last close disables it).
    func close() {
        device?.close()
        device = nil
        if let fds {
            system.close(fds.device)
            system.close(fds.group)
            system.close(fds.container)
        }
        fds = nil
    }

    deinit { close() }

    private func swift(_ body: (VFIODevice) throws(VFIOError) -> Void) -> Int32 {
        do throws(VFIOError) {
            try body(device!.device)
            lastError = nil
            return 0
        } catch {
            lastError = error
            return error.errno.rawValue
        }
    }

    // MARK: Region I/O

    /// `count` bytes of region `index` at `offset`, or the errno.
    func read(_ index: VFIORegionIndex, _ offset: Int, _ count: Int) -> Result<[UInt8], Errno> {
        var bytes = [UInt8](repeating: 0, count: count)
        let status: Int32 = bytes.withUnsafeMutableBytes { buffer in
            switch path {
            case .swiftAPI:
                return swift { device throws(VFIOError) in try device.read(index, offset: UInt64(offset), into: buffer) }
            case .uapi:
                let done = system.pread(fds!.device, buffer, UInt64(index.rawValue) << 40 | UInt64(offset))
                return done == count ? 0 : done < 0 ? Glibc.errno : -1
            }
        }
        return status == 0 ? .success(bytes) : .failure(Errno(rawValue: status))
    }

    /// Writes `bytes` to region `index` at `offset`: 0 or the errno.
    @discardableResult
    func write(_ index: VFIORegionIndex, _ offset: Int, _ bytes: [UInt8]) -> Int32 {
        bytes.withUnsafeBytes { buffer in
            switch path {
            case .swiftAPI:
                return swift { device throws(VFIOError) in try device.write(index, offset: UInt64(offset), from: buffer) }
            case .uapi:
                let done = system.pwrite(fds!.device, buffer, UInt64(index.rawValue) << 40 | UInt64(offset))
                return done == bytes.count ? 0 : done < 0 ? Glibc.errno : -1
            }
        }
    }

    /// A config-space read of `width` bytes the row expects to succeed.
    func cfg(_ offset: Int, _ width: Int = 4, sourceLocation: SourceLocation = #_sourceLocation) -> UInt32 {
        switch read(.config, offset, width) {
        case .success(let bytes): return bytes.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
        case .failure(let errno):
            Issue.record("config read at 0x\(String(offset, radix: 16)) failed: \(errno)", sourceLocation: sourceLocation)
            return 0
        }
    }

    /// A config-space write of `width` bytes the row expects to succeed.
    func cfg(_ offset: Int, _ width: Int, write value: UInt32, sourceLocation: SourceLocation = #_sourceLocation) {
        let bytes = (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) }
        let status = write(.config, offset, bytes)
        #expect(status == 0, "config write at 0x\(String(offset, radix: 16)): errno \(status)", sourceLocation: sourceLocation)
    }

    /// The function's own register, behind vfio-pci's back.
    func hw(_ offset: Int, _ width: Int = 4) -> UInt32 { model.readConfig(offset, width: width) }

    /// A BAR read's errno (0 when it worked).
    func barStatus(_ bar: Int, _ offset: Int = 0) -> Int32 {
        switch read(.bar(bar), offset, 4) {
        case .success: 0
        case .failure(let errno): errno.rawValue
        }
    }

    // MARK: ioctls

    private func ioctl<T>(_ request: UInt, _ argument: inout T) -> Int32 {
        let result = withUnsafeMutablePointer(to: &argument) { system.ioctl(fds!.device, request, UInt(bitPattern: $0)) }
        return result < 0 ? Glibc.errno : 0
    }

    /// `VFIO_DEVICE_RESET`: 0 or the errno.
    func reset() -> Int32 {
        switch path {
        case .swiftAPI: return swift { device throws(VFIOError) in try device.reset() }
        case .uapi:
            var nothing: UInt8 = 0
            return ioctl(clinuxvfio_device_reset(), &nothing)
        }
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET` proving ownership with this group and the groups of `others`
    /// (opened for the call): 0 or the errno.
    func hotReset(others: [PCIAddress] = []) throws -> Int32 {
        let ids = try others.map { try #require(machine.groupID(of: $0)) }
        switch path {
        case .swiftAPI:
            let own = device!.group
            var groups = [own]
            for id in Set(ids) where id != own.id { groups.append(try system.openGroup(id)) }
            defer { for group in groups.dropFirst() { group.close() } }
            return swift { device throws(VFIOError) in try device.hotReset(groups: groups) }
        case .uapi:
            let own = try #require(machine.groupID(of: Self.address))
            let extra = Set(ids).subtracting([own]).map { system.open("/dev/vfio/\($0)") }
            defer { for fd in extra { system.close(fd) } }
            let groupFDs = [fds!.group] + extra
            var buffer = [UInt8](repeating: 0, count: 12 + 4 * groupFDs.count)
            buffer.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: UInt32(raw.count), toByteOffset: 0, as: UInt32.self)
                raw.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
                raw.storeBytes(of: UInt32(groupFDs.count), toByteOffset: 8, as: UInt32.self)
                for (i, fd) in groupFDs.enumerated() { raw.storeBytes(of: fd, toByteOffset: 12 + 4 * i, as: Int32.self) }
            }
            let result = buffer.withUnsafeMutableBytes { system.ioctl(fds!.device, clinuxvfio_device_pci_hot_reset(), UInt(bitPattern: $0.baseAddress)) }
            return result < 0 ? Glibc.errno : 0
        }
    }

    /// `VFIO_DEVICE_SET_IRQS` with `DATA_EVENTFD | ACTION_TRIGGER` for vectors 0… of `index`.
    func enable(_ index: VFIOIRQIndex, _ events: [EventFD]) -> Int32 {
        let fds = events.map(\.fd)
        return setIRQs(UInt32(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER), index, count: UInt32(fds.count), data: fds)
    }

    /// `SET_IRQS` with `DATA_NONE` and `action` on `count` vectors from 0.
    func irq(_ action: Int32, _ index: VFIOIRQIndex, count: UInt32 = 1) -> Int32 {
        setIRQs(UInt32(VFIO_IRQ_SET_DATA_NONE) | UInt32(action), index, count: count, data: [])
    }

    private func setIRQs(_ flags: UInt32, _ index: VFIOIRQIndex, count: UInt32, data: [Int32]) -> Int32 {
        switch path {
        case .swiftAPI:
            let action = VFIOIRQSetFlags(rawValue: flags & ~UInt32(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_DATA_NONE))
            let request = data.isEmpty
                ? VFIOIRQSet(action: action, index: index, count: count)
                : VFIOIRQSet(action: action, index: index, count: count, data: .eventFD(data))
            return swift { device throws(VFIOError) in try device.setIRQs(request) }
        case .uapi:
            var buffer = [UInt8](repeating: 0, count: 20 + 4 * data.count)
            buffer.withUnsafeMutableBytes { raw in
                for (i, word) in [UInt32(raw.count), flags, index.rawValue, 0, count].enumerated() {
                    raw.storeBytes(of: word, toByteOffset: 4 * i, as: UInt32.self)
                }
                for (i, fd) in data.enumerated() { raw.storeBytes(of: fd, toByteOffset: 20 + 4 * i, as: Int32.self) }
            }
            let result = buffer.withUnsafeMutableBytes { system.ioctl(fds!.device, clinuxvfio_device_set_irqs(), UInt(bitPattern: $0.baseAddress)) }
            return result < 0 ? Glibc.errno : 0
        }
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO`'s count for `index`.
    func irqCount(_ index: VFIOIRQIndex) -> UInt32 {
        switch path {
        case .swiftAPI: return (try? device!.device.irqInfo(index.rawValue).count) ?? UInt32.max
        case .uapi:
            var info = vfio_irq_info()
            (info.argsz, info.index) = (16, index.rawValue)
            return ioctl(clinuxvfio_device_get_irq_info(), &info) == 0 ? info.count : UInt32.max
        }
    }

    /// `VFIO_DEVICE_GET_INFO`'s flags.
    func deviceFlags() -> UInt32 {
        switch path {
        case .swiftAPI: return (try? device!.device.info().flags.rawValue) ?? 0
        case .uapi:
            var info = vfio_device_info()
            info.argsz = UInt32(MemoryLayout<vfio_device_info>.size)
            return ioctl(clinuxvfio_device_get_info(), &info) == 0 ? info.flags : 0
        }
    }
}

/// A row of a VPCI table: the rule, what it checks, the function it runs on and the check.
struct VPCIRow: Sendable, CustomTestStringConvertible {
    let rule: String
    let name: String
    let image: @Sendable () -> VPCIImage
    let others: @Sendable () -> [(PCIAddress, VPCIImage)]
    /// The machine the function is attached to (default: `VPCIRig.base`).
    let base: @Sendable () -> BusSnapshot
    /// The IOMMU profile replacing the machine's (nil: the machine's own).
    let profileName: String?
    let check: @Sendable (VPCIRig) throws -> Void

    init(
        _ rule: String, _ name: String, image: @escaping @Sendable () -> VPCIImage = { VPCIImage() },
        others: @escaping @Sendable () -> [(PCIAddress, VPCIImage)] = { [] }, base: @escaping @Sendable () -> BusSnapshot = { VPCIRig.base },
        profileName: String? = nil, _ check: @escaping @Sendable (VPCIRig) throws -> Void
    ) {
        self.profileName = profileName
        self.rule = rule
        self.name = name
        self.image = image
        self.others = others
        self.base = base
        self.check = check
    }

    var testDescription: String { "\(rule) \(name)" }

    func run(_ path: VPCIPath) throws {
        let rig = try VPCIRig(path, image(), others: others(), base: base(), profileName: profileName)
        defer { rig.close() }
        try check(rig)
    }
}
