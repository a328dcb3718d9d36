import Machine
import CLinuxVFIO
import DeviceModels
import Glibc
import KernelRules
import SampleDrivers
import SystemPackage
import PCIBus
import Testing
import VFIO
import Syscalls

/// The device fd through the UAPI facade with `<linux/vfio.h>`'s own structs: what C code written
/// for vfio-pci gets back, errno for errno (`vfio_pci_core_ioctl`, `vfio_set_irqs_validate_and_prepare`,
/// `vfio_pci_set_irqs_ioctl`).
@Suite("device fd UAPI: GET_INFO, GET_REGION_INFO, GET_IRQ_INFO, SET_IRQS, RESET, hot reset")
struct DeviceUAPITests {
    /// Opens group, container and device fds for `bdf` on the default machine.
    struct Fds {
        let machine: SimulatedMachine
        let container: Int32
        let group: Int32
        let device: Int32

        init(_ bdf: String = "0000:5f:00.0") throws {
            machine = try SimulatedMachine.load(machine: "default")
            let system = machine.vfio
            let groupID = try #require(machine.groupID(of: PCIAddress(parsing: bdf)!))
            container = system.open("/dev/vfio/vfio")
            group = system.open("/dev/vfio/\(groupID)")
            var fd = container
            #expect(system.ioctl(group, clinuxvfio_group_set_container(), UInt(bitPattern: withUnsafeMutablePointer(to: &fd) { $0 })) == 0)
            #expect(system.ioctl(container, clinuxvfio_set_iommu(), UInt(VFIO_TYPE1v2_IOMMU)) == 0)
            let groupFD = group
            device = bdf.withCString { system.ioctl(groupFD, clinuxvfio_group_get_device_fd(), UInt(bitPattern: $0)) }
            #expect(device >= 0)
        }

        func close() {
            machine.vfio.close(device)
            machine.vfio.close(group)
            machine.vfio.close(container)
        }

        /// `ioctl` returning 0 or the errno.
        func call<T>(_ request: UInt, _ argument: inout T) -> Int32 {
            let result = withUnsafeMutablePointer(to: &argument) { machine.vfio.ioctl(device, request, UInt(bitPattern: $0)) }
            return result < 0 ? errno : result
        }
    }

    @Test("VPCI-100/VPCI-60: mmap through the boundary: device RAM is shared memory, a register BAR traps every access as one access of its width; private, unaligned and oversized mappings and config space are EINVAL; a group fd is ENODEV, a non-VFIO fd EBADF")
    func mmapRegions() throws {
        let fds = try Fds()
        defer { fds.close() }
        let system = fds.machine.vfio
        var info = vfio_region_info()
        info.argsz = UInt32(MemoryLayout<vfio_region_info>.size)
        info.index = UInt32(VFIO_PCI_BAR2_REGION_INDEX)
        #expect(fds.call(clinuxvfio_device_get_region_info(), &info) == 0)
        #expect(info.flags & UInt32(VFIO_REGION_INFO_FLAG_MMAP) != 0, "BAR2 of the memcpy engine is device memory")
        let mapped = try #require(system.mmap(nil, Int(info.size), PROT_READ | PROT_WRITE, MAP_SHARED, fds.device, Int64(info.offset)))
        let second = try #require(system.mmap(nil, Int(info.size), PROT_READ | PROT_WRITE, MAP_SHARED, fds.device, Int64(info.offset)))
        defer {
            system.munmap(mapped, Int(info.size))
            system.munmap(second, Int(info.size))
        }
        mapped.storeBytes(of: 0x5a5a_a5a5 as UInt32, as: UInt32.self)
        var word: UInt32 = 0
        #expect(withUnsafeMutableBytes(of: &word) { system.pread(fds.device, $0, info.offset) } == 4)
        #expect(word == 0x5a5a_a5a5, "the mapping and pread see the same device memory")
        #expect(second.load(as: UInt32.self) == 0x5a5a_a5a5, "two mappings of the BAR share their bytes")

        // BAR0 holds registers: its mapping traps, and a load is one register read.
        var bar0 = vfio_region_info()
        bar0.argsz = UInt32(MemoryLayout<vfio_region_info>.size)
        bar0.index = UInt32(VFIO_PCI_BAR0_REGION_INDEX)
        #expect(fds.call(clinuxvfio_device_get_region_info(), &bar0) == 0)
        #expect(bar0.flags & UInt32(VFIO_REGION_INFO_FLAG_MMAP) != 0, "VPCI-60: every memory BAR of a page or more is mmap-able")
        let registers = try #require(system.mmap(nil, Int(bar0.size), PROT_READ | PROT_WRITE, MAP_SHARED, fds.device, Int64(bar0.offset)))
        defer { system.munmap(registers, Int(bar0.size)) }
        var capability: UInt32 = 0
        #expect(withUnsafeMutableBytes(of: &capability) { system.pread(fds.device, $0, bar0.offset) } == 4)
        #expect(registers.load(as: UInt32.self) == capability && capability & 0xff == 16, "a trapped readl reads the CAP register")
        (registers + 0x08).storeBytes(of: 0x1234_5000 as UInt64, as: UInt64.self)
        var ringBase: UInt64 = 0
        #expect(withUnsafeMutableBytes(of: &ringBase) { system.pread(fds.device, $0, bar0.offset + 8) } == 8)
        #expect(ringBase == 0x1234_5000, "a trapped writeq reached RING_BASE")

        for (length, offset, flags) in [
            (Int(info.size), info.offset, MAP_PRIVATE), (4096, info.offset + 1, MAP_SHARED), (Int(info.size) + 4096, info.offset, MAP_SHARED),
            (4096, UInt64(VFIO_PCI_CONFIG_REGION_INDEX) << 40, MAP_SHARED), (4096, UInt64(9) << 40, MAP_SHARED),
        ] {
            #expect(system.mmap(nil, length, PROT_READ, flags, fds.device, Int64(offset)) == nil)
            #expect(errno == EINVAL, "length \(length) offset 0x\(String(offset, radix: 16)) flags \(flags)")
        }
        #expect(system.mmap(nil, 4096, PROT_READ, MAP_SHARED, fds.group, Int64(info.offset)) == nil)
        #expect(errno == ENODEV, "a group has no mmap")
        #expect(system.mmap(nil, 4096, PROT_READ, MAP_SHARED, 0, Int64(info.offset)) == nil)
        #expect(errno == EBADF)
    }

    @Test("GET_INFO: a PCI device with RESET, 9 regions, 5 IRQ indexes; argsz below 16 is EINVAL")
    func info() throws {
        let fds = try Fds()
        defer { fds.close() }
        var info = vfio_device_info()
        info.argsz = UInt32(MemoryLayout<vfio_device_info>.size)
        #expect(fds.call(clinuxvfio_device_get_info(), &info) == 0)
        #expect(info.flags == UInt32(VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET))
        #expect(info.num_regions == UInt32(VFIO_PCI_NUM_REGIONS))
        #expect(info.num_irqs == UInt32(VFIO_PCI_NUM_IRQS))
        info.argsz = 12
        #expect(fds.call(clinuxvfio_device_get_info(), &info) == EINVAL)
    }

    @Test(
        "GET_REGION_INFO per index: config 4 KiB read-write; BAR0 registers; BAR2 mappable memory; ROM empty; VGA and beyond EINVAL",
        arguments: [
            (7, 0, 4096, UInt32(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE)),
            // VPCI-60: a register BAR is mmap-able too (its mapping traps every access); it holds the
            // MSI-X table, so it carries MSIX_MAPPABLE and FLAGS_CAPS (VPCI-42, VPCI-61).
            (0, 0, 16384, UInt32(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS)),
            (2, 0, 65536, UInt32(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP)),
            (1, 0, 0, 0), (6, 0, 0, 0), (8, EINVAL, 0, 0), (9, EINVAL, 0, 0),
        ])
    func regionInfo(_ index: Int, _ expectedErrno: Int32, _ size: UInt64, _ flags: UInt32) throws {
        let fds = try Fds()
        defer { fds.close() }
        var info = vfio_region_info()
        info.argsz = UInt32(MemoryLayout<vfio_region_info>.size)
        info.index = UInt32(index)
        #expect(fds.call(clinuxvfio_device_get_region_info(), &info) == expectedErrno)
        guard expectedErrno == 0 else { return }
        #expect(info.size == size)
        #expect(info.flags == flags)
        #expect(info.offset == UInt64(index) << 40)
    }

    @Test("GET_IRQ_INFO: INTx maskable and automasked, MSI 1, MSI-X 2 without NORESIZE (dynamic MSI-X, VPCI-152), ERR 1 on PCIe, REQ 1; index 5 EINVAL")
    func irqInfo() throws {
        let fds = try Fds()
        defer { fds.close() }
        let expected: [(UInt32, UInt32)] = [
            (UInt32(VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED), 1),
            (UInt32(VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE), 1), (UInt32(VFIO_IRQ_INFO_EVENTFD), 2),
            (UInt32(VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE), 1), (UInt32(VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE), 1),
        ]
        for (index, (flags, count)) in expected.enumerated() {
            var info = irqInfo(UInt32(index))
            #expect(fds.call(clinuxvfio_device_get_irq_info(), &info) == 0)
            #expect((info.flags, info.count) == (flags, count), "index \(index)")
        }
        var beyond = irqInfo(5)
        #expect(fds.call(clinuxvfio_device_get_irq_info(), &beyond) == EINVAL)
    }

    func irqSet(_ argsz: UInt32, _ flags: UInt32, _ index: UInt32, _ start: UInt32, _ count: UInt32) -> vfio_irq_set {
        var set = vfio_irq_set()
        (set.argsz, set.flags, set.index, set.start, set.count) = (argsz, flags, index, start, count)
        return set
    }

    func irqInfo(_ index: UInt32) -> vfio_irq_info {
        var info = vfio_irq_info()
        (info.argsz, info.index) = (16, index)
        return info
    }

    func hotResetInfo(_ argsz: UInt32) -> vfio_pci_hot_reset_info {
        var info = vfio_pci_hot_reset_info()
        info.argsz = argsz
        return info
    }

    func hotReset(flags: UInt32) -> vfio_pci_hot_reset {
        var reset = vfio_pci_hot_reset()
        (reset.argsz, reset.flags, reset.count) = (16, flags, 1)
        return reset
    }

    /// A `struct vfio_irq_set` with room for two 32-bit entries.
    struct IRQSet {
        var header: vfio_irq_set
        var data: (Int32, Int32) = (-1, -1)
    }

    static let none = UInt32(VFIO_IRQ_SET_DATA_NONE)
    static let bool = UInt32(VFIO_IRQ_SET_DATA_BOOL)
    static let eventfd = UInt32(VFIO_IRQ_SET_DATA_EVENTFD)
    static let trigger = UInt32(VFIO_IRQ_SET_ACTION_TRIGGER)
    static let mask = UInt32(VFIO_IRQ_SET_ACTION_MASK)

    @Test(
        "SET_IRQS validation and handlers, in the kernel's order",
        arguments: [
            ("index beyond VFIO_PCI_NUM_IRQS", 5, eventfd | trigger, 0, 1, EINVAL),
            ("unknown flag bit", 2, eventfd | trigger | 0x100, 0, 1, EINVAL),
            ("start + count past the vectors", 2, eventfd | trigger, 1, 2, EINVAL),
            ("two data types", 2, eventfd | none | trigger, 0, 1, EINVAL),
            ("no data type", 2, trigger, 0, 1, EINVAL),
            ("MSI-X has no mask handler", 2, none | mask, 0, 1, ENOTTY),
            ("no action", 2, none, 0, 1, ENOTTY),
            ("trigger before enable", 2, none | trigger, 0, 1, EINVAL),
            ("INTx trigger with count 2", 0, eventfd | trigger, 0, 2, EINVAL),
            ("INTx mask while INTx is off", 0, none | mask, 0, 1, EINVAL),
            ("REQ disable with no trigger registered", 4, none | trigger, 0, 0, EINVAL),
            ("MSI-X enable", 2, eventfd | trigger, 0, 2, 0),
        ] as [(String, UInt32, UInt32, UInt32, UInt32, Int32)])
    func setIRQs(_ what: String, _ index: UInt32, _ flags: UInt32, _ start: UInt32, _ count: UInt32, _ expected: Int32) throws {
        let fds = try Fds()
        defer { fds.close() }
        let events = (try EventFD(), try EventFD())
        var set = IRQSet(
            header: irqSet(UInt32(MemoryLayout<IRQSet>.size), flags, index, start, count),
            data: (events.0.fd, events.1.fd))
        #expect(fds.call(clinuxvfio_device_set_irqs(), &set) == expected, "\(what)")
    }

    @Test("SET_IRQS: an fd that is not an eventfd is EINVAL, a closed fd EBADF; MSI while MSI-X is on EINVAL; BOOL fires selected vectors")
    func setIRQsData() throws {
        let fds = try Fds()
        defer { fds.close() }
        let size = UInt32(MemoryLayout<IRQSet>.size)
        var notEventFD = IRQSet(header: irqSet(size, Self.eventfd | Self.trigger, 2, 0, 1), data: (fds.group, -1))
        #expect(fds.call(clinuxvfio_device_set_irqs(), &notEventFD) == EINVAL)
        var closed = IRQSet(header: irqSet(size, Self.eventfd | Self.trigger, 2, 0, 1), data: (9999, -1))
        #expect(fds.call(clinuxvfio_device_set_irqs(), &closed) == EBADF)
        let events = (try EventFD(), try EventFD())
        var enable = IRQSet(header: irqSet(size, Self.eventfd | Self.trigger, 2, 0, 2), data: (events.0.fd, events.1.fd))
        #expect(fds.call(clinuxvfio_device_set_irqs(), &enable) == 0)
        var msi = IRQSet(header: irqSet(size, Self.eventfd | Self.trigger, 1, 0, 1), data: (events.0.fd, -1))
        #expect(fds.call(clinuxvfio_device_set_irqs(), &msi) == EINVAL)
        // DATA_BOOL: one byte per vector; fire vector 1 only.
        var fire = IRQSet(header: irqSet(20 + 2, Self.bool | Self.trigger, 2, 0, 2))
        withUnsafeMutableBytes(of: &fire.data) { $0[0] = 0; $0[1] = 1 }
        #expect(fds.call(clinuxvfio_device_set_irqs(), &fire) == 0)
        #expect(events.0.read() == nil)
        #expect(events.1.read() == 1)
        var short = IRQSet(header: irqSet(20 + 1, Self.bool | Self.trigger, 2, 0, 2))
        #expect(fds.call(clinuxvfio_device_set_irqs(), &short) == EINVAL)
    }

    @Test("RESET works with FLR; hot reset of a root-port slot: INFO lists the bus, ENOSPC when too small, needs the group fd")
    func resets() throws {
        let fds = try Fds()
        defer { fds.close() }
        var nothing: UInt8 = 0
        #expect(fds.call(clinuxvfio_device_reset(), &nothing) == 0)
        // struct vfio_pci_hot_reset_info with room for one device.
        var info = (hotResetInfo(12 + 8), vfio_pci_dependent_device())
        #expect(fds.call(clinuxvfio_device_get_pci_hot_reset_info(), &info) == 0)
        #expect(info.0.count == 1)
        #expect(info.1.bus == 0x5f && info.1.devfn == 0)
        #expect(info.1.group_id == UInt32(fds.machine.groupID(of: PCIAddress(parsing: "0000:5f:00.0")!)!))
        var tooSmall = hotResetInfo(12)
        #expect(fds.call(clinuxvfio_device_get_pci_hot_reset_info(), &tooSmall) == ENOSPC)
        #expect(tooSmall.count == 1)
        var reset = (hotReset(flags: 0), fds.group)
        #expect(fds.call(clinuxvfio_device_pci_hot_reset(), &reset) == 0)
        var wrongFD = (hotReset(flags: 0), fds.container)
        #expect(fds.call(clinuxvfio_device_pci_hot_reset(), &wrongFD) == EINVAL)
        var flagged = (hotReset(flags: 1), fds.group)
        #expect(fds.call(clinuxvfio_device_pci_hot_reset(), &flagged) == EINVAL)
        // VPCI-220: argsz is compared with the 12-byte header only, never with the fd array.
        var headerOnly = (hotReset(flags: 0), fds.group)
        headerOnly.0.argsz = 12
        #expect(fds.call(clinuxvfio_device_pci_hot_reset(), &headerOnly) == 0)
        var none = (hotReset(flags: 0), fds.group)
        none.0.count = 0
        #expect(fds.call(clinuxvfio_device_pci_hot_reset(), &none) == EINVAL, "an empty array is for cdev-opened devices")
        var tooMany = (hotReset(flags: 0), fds.group)
        tooMany.0.count = 2
        #expect(fds.call(clinuxvfio_device_pci_hot_reset(), &tooMany) == EINVAL, "more fds than devices the reset reaches")
    }

    @Test("pread/pwrite at VFIO_PCI_INDEX_TO_OFFSET: config space through the facade, BARs need memory decode (EIO)")
    func regionIO() throws {
        let fds = try Fds()
        defer { fds.close() }
        var vendor: UInt16 = 0
        let configOffset = UInt64(VFIO_PCI_CONFIG_REGION_INDEX) << 40
        #expect(withUnsafeMutableBytes(of: &vendor) { fds.machine.vfio.pread(fds.device, $0, configOffset) } == 2)
        #expect(vendor == 0x1234)
        var command: UInt16 = 0
        #expect(withUnsafeBytes(of: &command) { fds.machine.vfio.pwrite(fds.device, $0, configOffset + 4) } == 2)
        var register: UInt32 = 0
        #expect(withUnsafeMutableBytes(of: &register) { fds.machine.vfio.pread(fds.device, $0, 0) } == -1)
        #expect(errno == EIO)
        #expect(withUnsafeMutableBytes(of: &register) { fds.machine.vfio.pread(fds.device, $0, configOffset + 4095) } == -1)
        #expect(errno == EFAULT, "VPCI-80: config space past its end is EFAULT")
    }

    @Test("VPCI-150, VPCI-151 (7.3): ERR and REQ have one vector on every device, conventional PCI too")
    func errAndReqOnEveryDevice() throws {
        // devices/default with its conventional e1000 (behind the PCIe-to-PCI bridge) bound to vfio-pci.
        let e1000 = PCIAddress(parsing: "0000:02:04.0")!
        let fixture = try FixtureMachine.load(directory: FixtureMachine.locate("default"))
        let base = try BusSnapshot.load(.machine(fixture))
        var drivers = base.drivers
        drivers[e1000] = "vfio-pci"
        let grouping = base.grouping
        let rebound = BusSnapshot(
            origin: base.origin, topology: base.topology.binding(drivers),
            configuration: .init(platform: grouping.platform, acsPolicy: grouping.acsPolicy, platformOrigin: grouping.platformReason))
        let machine = try SimulatedMachine(base: rebound, requests: SimulatedMachine.declaredDevices(of: fixture))
        let topology = machine.snapshot.topology
        #expect(topology.index(of: e1000).map { topology.functions[$0].isPCIe } == false)
        for id in machine.vfio.groupIDs {
            let group = try machine.vfio.openGroup(id)
            defer { group.close() }
            let container = VFIOContainer(process: machine.process)
            try group.setContainer(container)
            try container.setIOMMU(.type1v2)
            for address in try machine.vfio.iommuGroupDevices(id).get() where topology.functions[topology.index(of: address)!].driver == "vfio-pci" {
                let device = try group.openDevice(address.description)
                defer { device.close() }
                #expect(try device.irqInfo(VFIOIRQIndex.err.rawValue).count == 1, "\(address) ERR")
                #expect(try device.irqInfo(VFIOIRQIndex.req.rawValue).count == 1, "\(address) REQ")
            }
        }
        #expect(machine.vfio.groupIDs.contains(try #require(machine.groupID(of: e1000))))
    }

    @Test("VPCI-190: an ERR or REQ trigger takes -1 (unregister) or an eventfd; any other negative fd is EINVAL and changes nothing")
    func errReqTriggerFDs() throws {
        let machine = try SimulatedMachine.load(machine: "default")
        let opened = try UserspaceDevice(PCIAddress(parsing: "0000:5f:00.0")!, in: machine.vfio)
        defer { opened.close() }
        let device = opened.device
        let event = try EventFD()
        for index in [VFIOIRQIndex.err, .req] {
            try device.setIRQs(VFIOIRQSet(action: .actionTrigger, index: index, start: 0, count: 1, data: .eventFD([event.fd])))
            let refused = try #require(throws: VFIOError.self) {
                try device.setIRQs(VFIOIRQSet(action: .actionTrigger, index: index, start: 0, count: 1, data: .eventFD([-2])))
            }
            #expect(refused.errno == .invalidArgument && refused.rule == .VPCI_190, "\(refused)")
            // Still registered: a loopback trigger signals the first eventfd.
            try device.setIRQs(VFIOIRQSet(action: .actionTrigger, index: index, start: 0, count: 1, data: .bool([true])))
            #expect(event.read() == 1, "\(index)")
            try device.setIRQs(VFIOIRQSet(action: .actionTrigger, index: index, start: 0, count: 1, data: .eventFD([-1])))
        }
    }

    /// A `pread` through the boundary: where, how many bytes, with memory decode on or off, and
    /// what the kernel answers (bytes read, or the errno).
    struct RegionRead: Sendable, CustomTestStringConvertible {
        let rule: String
        let what: String
        /// Offset from the start of BAR0's region, or an absolute file offset when `absolute`.
        let offset: Int64
        let count: Int
        var absolute = false
        var fromEnd = false
        var memoryDecode = true
        let expect: Int  // bytes, or -errno
        var testDescription: String { "\(rule): \(what)" }
    }

    static let regionReads: [RegionRead] = [
        RegionRead(rule: "VPCI-70", what: "a count of 0 is 0, even at an offset in no region", offset: 20 << 40, count: 0, absolute: true, expect: 0),
        RegionRead(rule: "VPCI-71", what: "an offset in no region is EINVAL", offset: 20 << 40, count: 4, absolute: true, expect: -Int(EINVAL)),
        RegionRead(rule: "VPCI-80", what: "config space: the last 2 bytes of 4 KiB read whole", offset: Int64(VFIO_PCI_CONFIG_REGION_INDEX) << 40 + 4094, count: 2, absolute: true, expect: 2),
        RegionRead(rule: "VPCI-80", what: "config space: a read running past its end is EFAULT", offset: Int64(VFIO_PCI_CONFIG_REGION_INDEX) << 40 + 4094, count: 4, absolute: true, expect: -Int(EFAULT)),
        RegionRead(rule: "VPCI-90", what: "a BAR read running past the end is cut short there", offset: -2, count: 8, fromEnd: true, expect: 2),
        RegionRead(rule: "VPCI-90", what: "a BAR read at the end is EINVAL", offset: 0, count: 4, fromEnd: true, expect: -Int(EINVAL)),
        RegionRead(rule: "VPCI-92", what: "a memory BAR with memory decode off is EIO", offset: 0, count: 4, memoryDecode: false, expect: -Int(EIO)),
    ]

    @Test(arguments: regionReads)
    func regionRead(_ row: RegionRead) throws {
        let fds = try Fds()
        defer { fds.close() }
        let system = fds.machine.vfio
        let configOffset = UInt64(VFIO_PCI_CONFIG_REGION_INDEX) << 40
        var command: UInt16 = row.memoryDecode ? 0x2 : 0
        #expect(withUnsafeBytes(of: &command) { system.pwrite(fds.device, $0, configOffset + 4) } == 2)
        var info = vfio_region_info()
        info.argsz = UInt32(MemoryLayout<vfio_region_info>.size)
        info.index = UInt32(VFIO_PCI_BAR0_REGION_INDEX)
        #expect(fds.call(clinuxvfio_device_get_region_info(), &info) == 0)
        let base = row.absolute ? 0 : Int64(info.offset) + (row.fromEnd ? Int64(info.size) : 0)
        var buffer = [UInt8](repeating: 0, count: max(row.count, 1))
        let result = buffer.withUnsafeMutableBytes { system.pread(fds.device, UnsafeMutableRawBufferPointer(rebasing: $0[0..<row.count]), UInt64(base + row.offset)) }
        #expect((result < 0 ? -Int(errno) : result) == row.expect)
    }
}
