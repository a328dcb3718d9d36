import CLinuxVFIO
import DeviceModels
import Foundation
import Glibc
import IOMMU
import IOMMUFD
import KernelRules
import Machine
import SampleDrivers
import PCIBus
import Syscalls
import SystemPackage
import Testing
import VFIO

/// `../shared/spec/vfio-pci.md` §1.1 (dispatch and the cdev: VPCI-01, 02, 05), §1.4 (GET_INFO
/// capabilities: VPCI-32…34), §5.5 (ERR and REQ signalled: VPCI-191) and §7 (IOEVENTFD:
/// VPCI-240…242; DEVICE_FEATURE: VPCI-250…253), each row through the Swift API and the raw UAPI
/// (`VPCIRig`). Kernel lines are the 7.3 tree in `../shared/kernel`: `vfio_main.c`
/// (`vfio_ioctl_device_feature`), `include/linux/vfio.h` (`vfio_check_feature`), `device_cdev.c`,
/// `pci/vfio_pci_core.c` and `pci/vfio_pci_rdwr.c`.
@Suite("VPCI device fd: FEATURE, IOEVENTFD, GET_INFO capabilities, ERR/REQ, the cdev (VPCI-01…253)")
struct VPCIFeatureIoeventfdTests {
    static let rows: [VPCIRow] = dispatch + features + lowPower + ioeventfds + infoCaps + errReq + VPCIHotResetCdevRows.rows

    @Test("VPCI feature, ioeventfd, info-capability, ERR/REQ and cdev rows", arguments: rows, VPCIPath.allCases)
    func row(_ row: VPCIRow, _ path: VPCIPath) throws { try row.run(path) }

    static let get = UInt32(VFIO_DEVICE_FEATURE_GET), set = UInt32(VFIO_DEVICE_FEATURE_SET), probe = UInt32(VFIO_DEVICE_FEATURE_PROBE)
    static let entry = UInt32(VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY), wakeupEntry = UInt32(VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP)
    static let exit = UInt32(VFIO_DEVICE_FEATURE_LOW_POWER_EXIT)
    /// PMCSR of the standard image.
    static let pmcsr = VPCIImage.pm + 4

    // MARK: §1.1 dispatch, the cdev

    static let dispatch: [VPCIRow] = [
        VPCIRow("VPCI-01", "group-path fd: FEATURE reaches the core (bad flags EINVAL, not ENOTTY) and IOEVENTFD vfio-pci; BIND_IOMMUFD EINVAL (df->group); ATTACH_IOMMUFD_PT and an unknown number ENOTTY") {
            rig in
            #expect(rig.feature(exit | set | 1 << 19) == EINVAL)
            #expect(rig.ioeventfd(offset: 2 << 40, data: 0, flags: 0x10, fd: -1) == EINVAL)
            #expect(rig.feature(exit | set) == 0)
            guard rig.path == .uapi else { return }
            var bind = [UInt8](repeating: 0, count: 24)
            bind.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(24), toByteOffset: 0, as: UInt32.self) }
            #expect(rig.raw(IOMMUFDRequest.deviceBindIOMMUFD, &bind) == EINVAL)
            var attach = [UInt8](repeating: 0, count: 16)
            attach.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(16), toByteOffset: 0, as: UInt32.self) }
            #expect(rig.raw(IOMMUFDRequest.deviceAttachIOMMUFDPT, &attach) == ENOTTY)
            var nothing = [UInt8](repeating: 0, count: 16)
            #expect(rig.raw(VFIORequest.io(30), &nothing) == ENOTTY)
        },
        VPCIRow("VPCI-01", "cdev fd before BIND_IOMMUFD: GET_INFO, FEATURE and IOEVENTFD are EINVAL (no access granted), whatever their arguments") { rig in
            rig.close()
            let cdev = try rig.openCdev()
            defer { cdev.close() }
            #expect(cdev.ioctl(.getInfo) == EINVAL)
            #expect(cdev.ioctl(.feature) == EINVAL)
            #expect(cdev.ioctl(.ioeventfd) == EINVAL)
        },
        VPCIRow("VPCI-02", "read, write and mmap of an unbound cdev fd are EINVAL; once bound they work") { rig in
            rig.close()
            let cdev = try rig.openCdev()
            defer { cdev.close() }
            #expect(cdev.transfer(write: false) == EINVAL)
            #expect(cdev.transfer(write: true) == EINVAL)
            #expect(cdev.mmap() == EINVAL)
            #expect(cdev.bind() == 0)
            #expect(cdev.transfer(write: false) == 0)
            #expect(cdev.transfer(write: true) == 0)
            #expect(cdev.mmap() == 0)
        },
        VPCIRow("VPCI-05", "BIND_IOMMUFD order: argsz 15 EINVAL, non-zero bytes past 24 E2BIG, iommufd -1 or flags 2 EINVAL (UAPI); EBUSY with the group chardev open; then it binds, and a second bind is EINVAL") {
            rig in
            let cdev = try rig.openCdev()
            defer { cdev.close() }
            if rig.path == .uapi {
                #expect(cdev.bindRaw(argsz: 15) == EINVAL)
                #expect(cdev.bindRaw(argsz: 32, trailing: 1) == E2BIG)
                #expect(cdev.bindRaw(argsz: 24, iommufd: -1) == EINVAL)
                #expect(cdev.bindRaw(argsz: 24, flags: 2) == EINVAL)
            }
            #expect(cdev.bind() == EBUSY, "the rig holds the group open")
            rig.close()
            #expect(cdev.bind() == 0)
            #expect(cdev.bind() == EINVAL)
        },
    ]

    // MARK: §7.2 VFIO_DEVICE_FEATURE

    static let features: [VPCIRow] = [
        VPCIRow("VPCI-250", "argsz 7 EINVAL; a flag past PROBE EINVAL; GET|SET without PROBE EINVAL; with PROBE 0 (probing both); the same LOW_POWER_EXIT SET is 0") { rig in
            #expect(rig.feature(exit | set, argsz: 7) == EINVAL)
            #expect(rig.feature(exit | set | 1 << 19) == EINVAL)
            #expect(rig.feature(exit | get | set) == EINVAL)
            #expect(rig.feature(exit | get | set | probe) == EINVAL, "PROBE of GET on a SET-only feature: VPCI-251")
            #expect(rig.feature(exit | set | probe) == 0)
            #expect(rig.feature(exit | set) == 0)
        },
        VPCIRow("VPCI-250", "core features without ops: migration 1, 2, 9 and DMA logging 6, 7, 8 ENOTTY, PROBE too; MIG_PRECOPY_INFOv2 (12) EINVAL — no PRE_COPY (source over the spec: vfio_main.c:1014)") {
            rig in
            for id: UInt32 in [1, 2, 6, 7, 8, 9] {
                #expect(rig.feature(id | get) == ENOTTY, "feature \(id) GET")
                #expect(rig.feature(id | set | probe) == ENOTTY, "feature \(id) PROBE")
            }
            #expect(rig.feature(12 | set) == EINVAL)
            #expect(rig.feature(12 | set | probe) == EINVAL)
        },
        VPCIRow("VPCI-251", "vfio_check_feature on LOW_POWER_EXIT (SET only, minsz 0): GET EINVAL, PROBE|GET EINVAL, PROBE alone 0, neither GET nor SET EINVAL, SET 0") { rig in
            #expect(rig.feature(exit | get) == EINVAL)
            #expect(rig.feature(exit | get | probe) == EINVAL)
            #expect(rig.feature(exit | probe) == 0)
            #expect(rig.feature(exit) == EINVAL)
            #expect(rig.feature(exit | set) == 0)
        },
        VPCIRow("VPCI-251", "LOW_POWER_ENTRY_WITH_WAKEUP (minsz 8): 4 data bytes EINVAL; PROBE|SET with no data 0 and nothing read or engaged") { rig in
            #expect(rig.feature(wakeupEntry | set, data: [0, 0, 0, 0]) == EINVAL)
            #expect(rig.feature(wakeupEntry | set | probe) == 0)
            #expect(rig.feature(entry | set) == 0, "nothing was engaged")
        },
        VPCIRow("VPCI-252", "PCI_VF_TOKEN (0) ENOTTY for SET and PROBE — no SR-IOV PF; BUS_MASTER (10), DMA_BUF (11, not built), ZPCI_ERROR (13), 14 and 0xffff ENOTTY") { rig in
            let uuid = [UInt8](repeating: 0x11, count: 16)
            #expect(rig.feature(UInt32(VFIO_DEVICE_FEATURE_PCI_VF_TOKEN) | set, data: uuid) == ENOTTY)
            #expect(rig.feature(UInt32(VFIO_DEVICE_FEATURE_PCI_VF_TOKEN) | set | probe) == ENOTTY)
            for id: UInt32 in [10, 11, 13, 14, 0xffff] { #expect(rig.feature(id | get | probe) == ENOTTY, "feature \(id)") }
        },
        VPCIRow("VPCI-252", "WITH_WAKEUP: wakeup_eventfd -1 EINVAL, a closed fd EBADF, a pipe EINVAL; none of them engages low power") { rig in
            #expect(rig.feature(wakeupEntry | set, data: wakeupPayload(-1)) == EINVAL)
            #expect(rig.feature(wakeupEntry | set, data: wakeupPayload(9999)) == EBADF)
            var ends: [Int32] = [0, 0]
            try #require(pipe(&ends) == 0)
            defer { Glibc.close(ends[0]); Glibc.close(ends[1]) }
            #expect(rig.feature(wakeupEntry | set, data: wakeupPayload(ends[0])) == EINVAL)
            #expect(rig.feature(entry | set) == 0, "nothing was engaged")
        },
    ]

    static func wakeupPayload(_ fd: Int32) -> [UInt8] { withUnsafeBytes(of: fd.littleEndian) { Array($0) } + [0, 0, 0, 0] }

    // MARK: §7.2 low power (VPCI-253)

    static let lowPower: [VPCIRow] = [
        VPCIRow("VPCI-253", "entry twice: each zaps the BAR mappings (Swift API: the zap count), the second EINVAL (engaged); EXIT 0, EXIT again 0 (not engaged); entry again 0") { rig in
            let zaps = rig.device?.device.barMappingZaps ?? 0
            #expect(rig.feature(entry | set) == 0)
            #expect(rig.feature(entry | set) == EINVAL)
            if rig.path == .swiftAPI { #expect(rig.device!.device.barMappingZaps == zaps + 2, "zapped before the engaged check") }
            let spare = try EventFD()
            #expect(rig.feature(wakeupEntry | set, data: wakeupPayload(spare.fd)) == EINVAL, "engaged: the wakeup eventfd is released")
            #expect(rig.feature(exit | set) == 0)
            #expect(rig.feature(exit | set) == 0)
            #expect(rig.feature(entry | set) == 0)
        },
        VPCIRow("VPCI-253", "after entry the idle function runtime-suspends to D3hot; an access resumes it (D0, config intact) and it suspends again when done; EXIT leaves it in D0") {
            rig in
            rig.cfg(4, 2, write: 0x0006)
            #expect(rig.feature(entry | set) == 0)
            #expect(rig.hw(pmcsr, 2) & 3 == 3, "suspended once the entering call returned")
            #expect(rig.cfg(4, 2) == 0x0006)
            #expect(rig.read(.bar(VPCIImage.ramBAR), 0, 4) == .success([0, 0, 0, 0]), "the BAR decodes: the access resumed the function")
            #expect(rig.hw(pmcsr, 2) & 3 == 3, "suspended again after the access")
            #expect(rig.feature(exit | set) == 0)
            #expect(rig.hw(pmcsr, 2) & 3 == 0)
            #expect(rig.hw(4, 2) & 0x6 == 0x6, "COMMAND restored after the suspend")
        },
        VPCIRow("VPCI-253", "with a wakeup eventfd: the next access signals it once and ends low power (entry is 0 again, the function stays in D0)") { rig in
            let wakeup = try EventFD()
            #expect(rig.feature(wakeupEntry | set, data: wakeupPayload(wakeup.fd)) == 0)
            #expect(rig.hw(pmcsr, 2) & 3 == 3)
            #expect(wakeup.read() == nil, "not signalled by the entry")
            _ = rig.cfg(0)
            #expect(wakeup.read() == 1)
            #expect(rig.hw(pmcsr, 2) & 3 == 0, "no longer engaged: stays up")
            _ = rig.cfg(0)
            #expect(wakeup.read() == nil)
            #expect(rig.feature(entry | set) == 0)
        },
        VPCIRow("VPCI-253", "INTx live at entry is masked while suspended (INTx Disable in the device) and unmasked at the resume") { rig in
            let event = try EventFD()
            #expect(rig.enable(.intx, [event]) == 0)
            #expect(rig.feature(entry | set) == 0)
            #expect(rig.hw(4, 2) & 0x400 != 0, "masked on the way down")
            #expect(rig.feature(exit | set) == 0)
            #expect(rig.hw(4, 2) & 0x400 == 0, "unmasked on the way up")
            #expect(rig.model.raiseInterrupt() == .intx)
            #expect(event.read() == 1)
        },
        VPCIRow("VPCI-253", "the last close leaves low power: reopened, the function is in D0 and a new entry is 0") { rig in
            #expect(rig.feature(entry | set) == 0)
            rig.close()
            #expect(rig.hw(pmcsr, 2) & 3 == 0)
            try rig.open()
            #expect(rig.feature(entry | set) == 0)
        },
    ]

    // MARK: §7.1 VFIO_DEVICE_IOEVENTFD

    static let bar2 = UInt64(VPCIImage.ramBAR) << 40

    static let ioeventfds: [VPCIRow] = [
        VPCIRow("VPCI-240", "order: argsz 27, flags 0x10, size 0 or 3, fd -2, region 6/7, past BAR2, zero-length BAR3, the MSI-X table, size 8 — each EINVAL and nothing registered; a 4-byte one at BAR2 0x100 is 0") {
            rig in
            let event = try EventFD()
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 1, flags: 4, fd: event.fd, argsz: 27) == EINVAL)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 1, flags: 0x14, fd: event.fd) == EINVAL)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 1, flags: 0, fd: event.fd) == EINVAL)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 1, flags: 3, fd: event.fd) == EINVAL)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 1, flags: 4, fd: -2) == EINVAL)
            #expect(rig.ioeventfd(offset: 6 << 40, data: 1, flags: 4, fd: event.fd) == EINVAL)
            #expect(rig.ioeventfd(offset: 7 << 40, data: 1, flags: 4, fd: event.fd) == EINVAL)
            #expect(rig.ioeventfd(offset: bar2 | 0xfffe, data: 1, flags: 4, fd: event.fd) == EINVAL)
            #expect(rig.ioeventfd(offset: 3 << 40, data: 1, flags: 1, fd: event.fd) == EINVAL)
            #expect(rig.ioeventfd(offset: 0x2000, data: 1, flags: 4, fd: event.fd) == EINVAL)
            #expect(rig.ioeventfd(offset: 0x1ffe, data: 1, flags: 4, fd: event.fd) == EINVAL)
            #expect(rig.ioeventfd(offset: 0x3000, data: 1, flags: 4, fd: event.fd) == 0, "the PBA is not the table")
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 1, flags: 8, fd: event.fd) == EINVAL)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 1, flags: 4, fd: -1) == ENODEV, "none of the refused ones was registered")
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 1, flags: 4, fd: event.fd) == 0)
        },
        VPCIRow("VPCI-241", "matching on (bar, pos, data, size): the same with another fd EEXIST; other data is a second entry; fd -1 removes (0), again ENODEV; a closed fd EBADF, a pipe EINVAL") {
            rig in
            let (first, second) = (try EventFD(), try EventFD())
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 7, flags: 4, fd: first.fd) == 0)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 7, flags: 4, fd: second.fd) == EEXIST)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 8, flags: 4, fd: second.fd) == 0)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 7, flags: 2, fd: second.fd) == 0, "another size is another entry")
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 7, flags: 4, fd: -1) == 0)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 7, flags: 4, fd: -1) == ENODEV)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 8, flags: 4, fd: -1) == 0)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 7, flags: 2, fd: -1) == 0)
            #expect(rig.ioeventfd(offset: bar2 | 0x200, data: 1, flags: 4, fd: 9999) == EBADF)
            var ends: [Int32] = [0, 0]
            try #require(pipe(&ends) == 0)
            defer { Glibc.close(ends[0]); Glibc.close(ends[1]) }
            #expect(rig.ioeventfd(offset: bar2 | 0x200, data: 1, flags: 4, fd: ends[0]) == EINVAL)
            #expect(rig.ioeventfd(offset: bar2 | 0x200, data: 1, flags: 4, fd: -1) == ENODEV)
        },
        VPCIRow("VPCI-241", "VFIO_PCI_IOEVENTFD_MAX: 1000 entries (data 0…999 on one eventfd) register, the 1001st is ENOSPC; after a removal one more registers") { rig in
            let event = try EventFD()
            for data in UInt64(0)..<1000 {
                guard rig.ioeventfd(offset: bar2 | 0x100, data: data, flags: 4, fd: event.fd) == 0 else {
                    Issue.record("entry \(data) was refused")
                    return
                }
            }
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 1000, flags: 4, fd: event.fd) == ENOSPC)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 999, flags: 4, fd: event.fd) == EEXIST, "matching comes before the limit")
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 5, flags: 4, fd: -1) == 0)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 1000, flags: 4, fd: event.fd) == 0)
        },
        VPCIRow("VPCI-242", "a signal writes data's low size bytes, little-endian, at (bar, pos): 4 bytes at 0x100, 2 at 0x200, 1 at 0x301; the bytes around are untouched") {
            rig in
            let memory = try #require(rig.model.barMemory(VPCIImage.ramBAR))
            let events = try (0..<3).map { _ in try EventFD() }
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 0x1122_3344_5566_7788, flags: 4, fd: events[0].fd) == 0)
            #expect(rig.ioeventfd(offset: bar2 | 0x200, data: 0xaabb_ccdd, flags: 2, fd: events[1].fd) == 0)
            #expect(rig.ioeventfd(offset: bar2 | 0x301, data: 0x1_22ee, flags: 1, fd: events[2].fd) == 0)
            #expect(Array(memory[0x100..<0x104]) == [0, 0, 0, 0], "nothing before a signal")
            for event in events { event.signal() }
            #expect(waitFor { Array(memory[0x100..<0x106]) == [0x88, 0x77, 0x66, 0x55, 0, 0] })
            #expect(waitFor { Array(memory[0x1ff..<0x203]) == [0, 0xdd, 0xcc, 0] })
            #expect(waitFor { Array(memory[0x300..<0x303]) == [0, 0xee, 0] })
        },
        VPCIRow("VPCI-242", "memory decode off: a signal is consumed and writes nothing; decode on again, the next signal writes; a removed entry writes nothing") { rig in
            let memory = try #require(rig.model.barMemory(VPCIImage.ramBAR))
            let event = try EventFD()
            rig.cfg(4, 2, write: 0x0000)
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 0x5a, flags: 1, fd: event.fd) == 0)
            event.signal()
            #expect(waitFor { !readable(event) }, "the watcher drained the signal")
            #expect(memory[0x100] == 0)
            rig.cfg(4, 2, write: 0x0002)
            event.signal()
            #expect(waitFor { memory[0x100] == 0x5a })
            #expect(rig.ioeventfd(offset: bar2 | 0x100, data: 0x5a, flags: 1, fd: -1) == 0)
            memory[0x100] = 0
            event.signal()
            usleep(50_000)
            #expect(memory[0x100] == 0)
            #expect(readable(event), "no one drains a removed entry's eventfd")
        },
        VPCIRow("VPCI-242", "a registration whose eventfd is already signalled writes at once; the last close removes every ioeventfd") { rig in
            let memory = try #require(rig.model.barMemory(VPCIImage.ramBAR))
            let event = try EventFD()
            event.signal()
            #expect(rig.ioeventfd(offset: bar2 | 0x40, data: 0x42, flags: 1, fd: event.fd) == 0)
            #expect(waitFor { memory[0x40] == 0x42 })
            rig.close()
            try rig.open()
            #expect(rig.ioeventfd(offset: bar2 | 0x40, data: 0x42, flags: 1, fd: -1) == ENODEV)
        },
    ]

    // MARK: §1.4 GET_INFO capabilities

    /// The default machine with the root port above 5f:00.0 (5d:01.0) completing the AtomicOp
    /// sizes in `completes` (DEVCAP2 bits 7, 8, 9).
    static func atomicRoot(_ completes: UInt32) -> @Sendable () -> BusSnapshot {
        {
            let base = VPCIRig.base
            let rootPort = PCIAddress(parsing: "0000:5d:01.0")!
            let functions = base.topology.functions.map { function -> PCIFunction in
                guard function.address == rootPort, let express = function.pcieCapabilityOffset else { return function }
                var bytes = function.config.bytes
                for i in 0..<4 { bytes[express + 0x24 + i] |= UInt8(truncatingIfNeeded: completes >> (8 * UInt32(i))) }
                var edited = PCIFunction(address: function.address, config: PCIConfigSpace(bytes: bytes))
                edited.driver = function.driver
                edited.names = function.names
                edited.kernelIOMMUGroup = function.kernelIOMMUGroup
                return edited
            }
            let topology = PCITopology(functions: functions, source: base.topology.source, capabilityIssues: base.topology.capabilityIssues)
            let grouping = base.grouping
            return BusSnapshot(
                origin: base.origin, topology: topology, driversKnown: true,
                configuration: .init(platform: grouping.platform, acsPolicy: grouping.acsPolicy, platformOrigin: grouping.platformReason))
        }
    }

    /// The standard image claiming AtomicOp completion of the sizes in `claims` (DEVCAP2).
    static func atomicDevice(_ claims: UInt32) -> @Sendable () -> VPCIImage {
        {
            var image = VPCIImage()
            image.set(VPCIImage.pcie + 0x24, 4, claims)
            return image
        }
    }

    static let comp32: UInt32 = 1 << 7, comp64: UInt32 = 1 << 8, comp128: UInt32 = 1 << 9
    static let devctl2 = VPCIImage.pcie + 0x28

    static let infoCaps: [VPCIRow] = [
        VPCIRow(
            "VPCI-32", "a function claiming 32/64-bit completion below a root port completing none: no capability, no CAPS, AtomicOp Requester Enable stays clear",
            image: atomicDevice(comp32 | comp64)
        ) { rig in
            let info = rig.infoWithCaps(argsz: 64)
            #expect(info.errno == 0 && info.flags & UInt32(VFIO_DEVICE_FLAGS_CAPS) == 0 && info.capabilities.isEmpty)
            #expect(rig.hw(devctl2, 2) & 0x40 == 0)
        },
        VPCIRow(
            "VPCI-32", "root port completing 32 and 64, function claiming 32/64/128: ATOMIC_COMP {id 5, version 1, flags COMP32|COMP64, reserved 0}, CAPS, and AtomicOp Requester Enable set in the function",
            image: atomicDevice(comp32 | comp64 | comp128), base: atomicRoot(comp32 | comp64)
        ) { rig in
            let info = rig.infoWithCaps(argsz: 64)
            #expect(info.errno == 0 && info.flags & UInt32(VFIO_DEVICE_FLAGS_CAPS) != 0)
            #expect(info.capabilities == [[5, 0, 1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]])
            #expect(rig.hw(devctl2, 2) & 0x40 != 0)
        },
        VPCIRow(
            "VPCI-33", "argsz protocol: 24 → argsz raised to 40, CAPS, cap_offset 0, nothing past 24; 40 → the capability at 24, cap_offset 24, argsz as given",
            image: atomicDevice(comp32), base: atomicRoot(comp32)
        ) { rig in
            let short = rig.infoWithCaps(argsz: 24)
            #expect(short.errno == 0 && short.flags & UInt32(VFIO_DEVICE_FLAGS_CAPS) != 0)
            if rig.path == .uapi {
                #expect((short.argsz, short.capOffset) == (40, 0))
                #expect(short.tail.allSatisfy { $0 == 0xa5 }, "nothing written past the 24 bytes")
            }
            let full = rig.infoWithCaps(argsz: 40)
            #expect(full.errno == 0 && full.capabilities == [[5, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]])
            if rig.path == .uapi { #expect((full.argsz, full.capOffset) == (40, 24)) }
        },
        VPCIRow(
            "VPCI-34", "AtomicOp completion example: argsz 16 → 16 bytes written, argsz shows 40, cap_offset untouched; the RESET and PCI flags as without capabilities",
            image: atomicDevice(comp64), base: atomicRoot(comp32 | comp64 | comp128)
        ) { rig in
            let info = rig.infoWithCaps(argsz: 16)
            #expect(info.errno == 0)
            #expect(info.flags == UInt32(VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_CAPS))
            if rig.path == .uapi {
                #expect(info.argsz == 40)
                #expect(info.capOffset == 0xa5a5_a5a5, "only 16 bytes are copied back")
            } else {
                #expect(info.capabilities.map { $0[8] } == [2], "COMP64 alone")
            }
        },
    ]

    // MARK: §5.5 ERR and REQ signalled (VPCI-191)

    static let errReq: [VPCIRow] = [
        VPCIRow("VPCI-191", "an uncorrectable error reported by the function runs error_detected: the ERR eventfd is signalled and the answer is CAN_RECOVER; without a trigger nothing is signalled, same answer") {
            rig in
            #expect(rig.model.reportUncorrectableError() == .canRecover)
            let event = try EventFD()
            #expect(rig.irqSet(VPCIDeviceFDTests.trigger, .err, count: 1, .eventFD([event.fd])) == 0)
            #expect(rig.model.reportUncorrectableError() == .canRecover)
            #expect(rig.model.reportUncorrectableError(fatal: true) == .canRecover)
            #expect(event.read() == 2)
            rig.close()
            #expect(rig.model.reportUncorrectableError() == .noAERDriver, "closed: vfio-pci's handler is no longer connected")
        },
        VPCIRow("VPCI-191", "an unbind request while the device is open signals the REQ eventfd (each round); without a trigger nothing is signalled; closed, nothing to wait for") {
            rig in
            #expect(rig.system.requestRelease(VPCIRig.address).map { [$0.open, $0.signalled] } == [true, false])
            let event = try EventFD()
            #expect(rig.irqSet(VPCIDeviceFDTests.trigger, .req, count: 1, .eventFD([event.fd])) == 0)
            #expect(rig.system.requestRelease(VPCIRig.address).map { [$0.open, $0.signalled] } == [true, true])
            #expect(rig.system.requestRelease(VPCIRig.address).map { [$0.open, $0.signalled] } == [true, true])
            #expect(event.read() == 2)
            rig.close()
            #expect(rig.system.requestRelease(VPCIRig.address).map { [$0.open, $0.signalled] } == [false, false])
        },
    ]
}

/// Polls `condition` for up to two seconds (the ioeventfd watcher runs on its own thread).
func waitFor(_ condition: () -> Bool) -> Bool {
    for _ in 0..<400 {
        if condition() { return true }
        usleep(5_000)
    }
    return condition()
}

/// Whether the eventfd's counter is non-zero, without reading it.
func readable(_ event: EventFD) -> Bool {
    var entry = pollfd(fd: event.fd, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, 0) == 1
}

extension VPCIRig {
    /// `ioctl(device fd, request, buffer)`: 0 or the errno.
    func raw(_ request: UInt, _ buffer: inout [UInt8]) -> Int32 {
        let result = buffer.withUnsafeMutableBytes { system.ioctl(fds!.device, request, UInt(bitPattern: $0.baseAddress)) }
        return result < 0 ? Glibc.errno : 0
    }

    private func status(_ body: () throws(VFIOError) -> Void) -> Int32 {
        do throws(VFIOError) {
            try body()
            return 0
        } catch { return error.errno.rawValue }
    }

    /// `VFIO_DEVICE_FEATURE` with `flags` and `data` (`argsz` default 8 + data): 0 or the errno.
    func feature(_ flags: UInt32, argsz: UInt32? = nil, data: [UInt8] = []) -> Int32 {
        switch path {
        case .swiftAPI:
            return status { () throws(VFIOError) in try device!.device.feature(flags: flags, argsz: argsz, data: data) }
        case .uapi:
            var buffer = [UInt8](repeating: 0, count: 8) + data
            buffer.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: argsz ?? UInt32(raw.count), toByteOffset: 0, as: UInt32.self)
                raw.storeBytes(of: flags, toByteOffset: 4, as: UInt32.self)
            }
            return raw(clinuxvfio_device_feature(), &buffer)
        }
    }

    /// `VFIO_DEVICE_IOEVENTFD` (`struct vfio_device_ioeventfd`): 0 or the errno.
    func ioeventfd(offset: UInt64, data: UInt64, flags: UInt32, fd: Int32, argsz: UInt32 = 32) -> Int32 {
        switch path {
        case .swiftAPI:
            return status { () throws(VFIOError) in try device!.device.ioeventfd(offset: offset, data: data, flags: flags, fd: fd, argsz: argsz) }
        case .uapi:
            var request = vfio_device_ioeventfd()
            (request.argsz, request.flags, request.offset, request.data, request.fd) = (argsz, flags, offset, data, fd)
            var buffer = withUnsafeBytes(of: &request) { Array($0) }
            return raw(clinuxvfio_device_ioeventfd(), &buffer)
        }
    }

    /// `VFIO_DEVICE_GET_INFO` with `argsz` in a buffer of 64 bytes filled with 0xa5: errno, the
    /// header as written back, the capabilities (each 16 bytes, from cap_offset along `next`) and
    /// the bytes from `argsz` on. The Swift API returns `info()` and `infoCapabilities()`.
    func infoWithCaps(argsz: UInt32) -> (errno: Int32, argsz: UInt32, flags: UInt32, capOffset: UInt32, capabilities: [[UInt8]], tail: [UInt8]) {
        switch path {
        case .swiftAPI:
            do throws(VFIOError) {
                let info = try device!.device.info()
                let capabilities = try device!.device.infoCapabilities().map { $0.bytes(next: 0) }
                return (0, 0, info.flags.rawValue, 0, capabilities, [])
            } catch { return (error.errno.rawValue, 0, 0, 0, [], []) }
        case .uapi:
            var buffer = [UInt8](repeating: 0xa5, count: 64)
            buffer.withUnsafeMutableBytes { $0.storeBytes(of: argsz, toByteOffset: 0, as: UInt32.self) }
            let status = raw(clinuxvfio_device_get_info(), &buffer)
            let word = { (at: Int) in buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) } }
            var capabilities: [[UInt8]] = []
            var at = Int(word(16))
            while status == 0, word(4) & UInt32(VFIO_DEVICE_FLAGS_CAPS) != 0, at >= 24, at + 16 <= buffer.count, capabilities.count < 4 {
                capabilities.append(Array(buffer[at..<at + 16]))
                at = Int(word(at + 4))
                if at == 0 { break }
            }
            return (status, word(0), word(4), word(16), capabilities, Array(buffer[Int(min(argsz, 64))...]))
        }
    }

    /// The rig's function (or `address`) through its device cdev, on the rig's path.
    func openCdev(_ address: PCIAddress = VPCIRig.address) throws -> VPCICdev {
        let number = try #require(system.cdevAddresses.firstIndex(of: address))
        return try VPCICdev(self, number: number)
    }
}

/// A device cdev (`/dev/vfio/devices/vfioN`) of the rig's function: `VFIODeviceCdev` on the Swift
/// path, the fd on the UAPI path; every call 0 or the errno.
final class VPCICdev {
    enum Call { case getInfo, feature, ioeventfd }

    let rig: VPCIRig
    private var cdev: VFIODeviceCdev?
    private var fd: Int32 = -1
    private var iommufd: Int32 = -1
    /// The iommufd bound to on the Swift path; whether `iommufd` is this cdev's to close.
    private var context: IOMMUFDContext?
    private var ownsIOMMUFD = true
    /// `out_devid` of the last successful BIND on the UAPI path.
    private var boundID: UInt32?

    init(_ rig: VPCIRig, number: Int) throws {
        self.rig = rig
        switch rig.path {
        case .swiftAPI: cdev = try rig.system.openDeviceCdev(number)
        case .uapi:
            fd = rig.system.open("/dev/vfio/devices/vfio\(number)")
            try #require(fd >= 0)
        }
    }

    func close() {
        cdev?.close()
        cdev = nil
        if fd >= 0 { _ = rig.system.close(fd) }
        if iommufd >= 0, ownsIOMMUFD { _ = rig.system.close(iommufd) }
        (fd, iommufd) = (-1, -1)
    }

    private func status(_ body: () throws(VFIOError) -> Void) -> Int32 {
        do throws(VFIOError) {
            try body()
            return 0
        } catch { return error.errno.rawValue }
    }

    private func raw(_ request: UInt, _ buffer: inout [UInt8]) -> Int32 {
        let result = buffer.withUnsafeMutableBytes { rig.system.ioctl(fd, request, UInt(bitPattern: $0.baseAddress)) }
        return result < 0 ? Glibc.errno : 0
    }

    /// A device ioctl with well-formed arguments.
    func ioctl(_ call: Call) -> Int32 {
        switch rig.path {
        case .swiftAPI:
            return status { () throws(VFIOError) in
                let device = try cdev!.device("\(call)")
                switch call {
                case .getInfo: _ = try device.info()
                case .feature: try device.exitLowPower()
                case .ioeventfd: try device.ioeventfd(offset: 2 << 40, data: 0, flags: 4, fd: -1)
                }
            }
        case .uapi:
            var buffer = [UInt8](repeating: 0, count: 32)
            buffer.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(32), toByteOffset: 0, as: UInt32.self) }
            switch call {
            case .getInfo: return raw(clinuxvfio_device_get_info(), &buffer)
            case .feature:
                buffer.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(VFIO_DEVICE_FEATURE_LOW_POWER_EXIT) | UInt32(VFIO_DEVICE_FEATURE_SET), toByteOffset: 4, as: UInt32.self) }
                return raw(clinuxvfio_device_feature(), &buffer)
            case .ioeventfd:
                buffer.withUnsafeMutableBytes { raw in
                    raw.storeBytes(of: UInt32(4), toByteOffset: 4, as: UInt32.self)
                    raw.storeBytes(of: UInt64(2) << 40, toByteOffset: 8, as: UInt64.self)
                    raw.storeBytes(of: Int32(-1), toByteOffset: 24, as: Int32.self)
                }
                return raw(clinuxvfio_device_ioeventfd(), &buffer)
            }
        }
    }

    /// A 4-byte config read or write at 0.
    func transfer(write: Bool) -> Int32 {
        var word: UInt32 = 0
        return withUnsafeMutableBytes(of: &word) { buffer in
            switch rig.path {
            case .swiftAPI:
                return status { () throws(VFIOError) in
                    let device = try cdev!.device(write ? "write" : "read")
                    if write { try device.write(.config, offset: 0, from: UnsafeRawBufferPointer(buffer)) } else { try device.read(.config, offset: 0, into: buffer) }
                }
            case .uapi:
                let done = write ? rig.system.pwrite(fd, UnsafeRawBufferPointer(buffer), 7 << 40) : rig.system.pread(fd, buffer, 7 << 40)
                return done == 4 ? 0 : done < 0 ? Glibc.errno : -1
            }
        }
    }

    /// mmap of BAR2's first page: 0 (unmapped again) or the errno.
    func mmap() -> Int32 {
        switch rig.path {
        case .swiftAPI:
            return status { () throws(VFIOError) in _ = try cdev!.device("mmap").mmapTarget(2, offset: 0, length: 0x1000, shared: true) }
        case .uapi:
            guard let mapped = rig.system.mmap(nil, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 2 << 40) else { return Glibc.errno }
            _ = rig.system.munmap(mapped, 0x1000)
            return 0
        }
    }

    /// `VFIO_DEVICE_BIND_IOMMUFD` to a fresh iommufd: 0 or the errno.
    func bind() -> Int32 {
        switch rig.path {
        case .swiftAPI:
            return status { () throws(VFIOError) in
                let context = self.context ?? IOMMUFDContext(process: rig.system.process)
                self.context = context
                _ = try cdev!.bind(to: context)
            }
        case .uapi:
            if iommufd < 0 { iommufd = rig.system.open("/dev/iommu") }
            return bindRaw(argsz: 24, iommufd: iommufd)
        }
    }

    /// `VFIO_DEVICE_BIND_IOMMUFD` to the iommufd `other` is bound to: 0 or the errno.
    func bind(sharing other: VPCICdev) -> Int32 {
        (context, iommufd, ownsIOMMUFD) = (other.context, other.iommufd, false)
        return bind()
    }

    /// The DEVICE ID the bind returned.
    var deviceID: UInt32? { rig.path == .swiftAPI ? cdev?.deviceID : boundID }

    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` with room for `room` entries: the errno, the header's
    /// flags and count (UAPI; nil on the Swift path, which returns the entries alone) and the
    /// entries' addresses and devids.
    func hotResetInfo(room: Int) throws -> (errno: Int32, flags: UInt32?, count: UInt32?, entries: [(PCIAddress, UInt32)]) {
        switch rig.path {
        case .swiftAPI:
            do throws(VFIOError) {
                let entries = try cdev!.device("GET_PCI_HOT_RESET_INFO").hotResetDevIDs()
                return (0, nil, nil, entries.map { ($0.address, $0.devid.rawValue) })
            } catch { return (error.errno.rawValue, nil, nil, []) }
        case .uapi:
            var buffer = [UInt8](repeating: 0xa5, count: 12 + 8 * room)
            buffer.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: UInt32(raw.count), toByteOffset: 0, as: UInt32.self)
                raw.storeBytes(of: UInt64(0), toByteOffset: 4, as: UInt64.self)
            }
            let status = raw(clinuxvfio_device_get_pci_hot_reset_info(), &buffer)
            let word = { (at: Int) in buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) } }
            var entries: [(PCIAddress, UInt32)] = []
            if status == 0 {
                for i in 0..<Int(word(8)) {
                    let base = 12 + 8 * i
                    let text = String(format: "%04x:%02x:%02x.%x", word(base + 4) & 0xffff, buffer[base + 6], buffer[base + 7] >> 3, buffer[base + 7] & 7)
                    entries.append((try #require(PCIAddress(parsing: text)), word(base)))
                }
            }
            return (status, word(4), word(8), entries)
        }
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET` with `count` fds (this cdev's iommufd fd repeated, which the
    /// kernel never looks at from a cdev): 0 or the errno. The Swift path's count 0 is
    /// `hotResetOwnedDevSet`, a non-zero count `hotReset(groups: [])`.
    func hotReset(count: Int = 0) -> Int32 {
        switch rig.path {
        case .swiftAPI:
            return status { () throws(VFIOError) in
                let device = try cdev!.device("PCI_HOT_RESET")
                if count == 0 { try device.hotResetOwnedDevSet() } else { try device.hotReset(groups: []) }
            }
        case .uapi:
            var buffer = [UInt8](repeating: 0, count: 12 + 4 * count)
            buffer.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: UInt32(raw.count), toByteOffset: 0, as: UInt32.self)
                raw.storeBytes(of: UInt32(count), toByteOffset: 8, as: UInt32.self)
                for i in 0..<count { raw.storeBytes(of: iommufd, toByteOffset: 12 + 4 * i, as: Int32.self) }
            }
            return raw(clinuxvfio_device_pci_hot_reset(), &buffer)
        }
    }

    /// `VFIO_DEVICE_BIND_IOMMUFD` with `struct vfio_device_bind_iommufd` in a 40-byte buffer,
    /// the byte at offset 24 set to `trailing` (UAPI path only).
    func bindRaw(argsz: UInt32, iommufd: Int32 = 0, flags: UInt32 = 0, trailing: UInt8 = 0) -> Int32 {
        var buffer = [UInt8](repeating: 0, count: 40)
        buffer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: argsz, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: flags, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: iommufd, toByteOffset: 8, as: Int32.self)
        }
        buffer[24] = trailing
        let status = raw(IOMMUFDRequest.deviceBindIOMMUFD, &buffer)
        if status == 0 { boundID = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 12, as: UInt32.self) } }
        return status
    }
}
