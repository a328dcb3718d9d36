import Glibc
import IOMMU
import KernelRules
import Machine
import PCIBus
import SampleDrivers
import Syscalls
import SystemPackage
import Testing
import UserMemory
import VFIO

/// docs/library.md's Swift snippets, verbatim, each run and checked.
@Suite("docs/library.md snippets")
struct LibraryGuideSnippets {
    @Test("PCIBus: a machine's topology, its groups and why a function is in its group")
    func topologyAndGroups() throws {
        let fixture = try FixtureMachine.load(directory: FixtureMachine.locate("default"))   // a name, or a directory
        let snapshot = try BusSnapshot.load(.machine(fixture))   // or .dump(path:), .host(sysfsPath: nil)
        let ssd = PCIAddress(parsing: "0000:1c:00.0")!
        let group = snapshot.grouping.group(of: ssd)!
        print(group.id, group.sortedMembers)                     // 13 [0000:19:10.0, 0000:1c:00.0]
        let membership = snapshot.grouping.membership(of: ssd)!
        print(membership.rule, membership.summary)               // IG-11 the upstream path is not ACS-isolated, so it shares …
        membership.details.forEach { print("  ", $0) }           // the ACS verdicts behind it, each citing its rule

        #expect(group.id == 13 && group.sortedMembers.map(\.description) == ["0000:19:10.0", "0000:1c:00.0"])
        #expect(membership.rule == .IG_11 && membership.summary.hasPrefix("the upstream path is not ACS-isolated"))
    }

    @Test("IOMMU: claim a group, attach a paging domain, map, translate, fault")
    func iommuCore() throws {
        let snapshot = try BusSnapshot.load(.machine(FixtureMachine.load(directory: FixtureMachine.locate("default"))))
        let iommu = try IOMMUCore.load(snapshot)!                // VT-d 48-bit, from the manifest
        try iommu.claimGroup(27, owner: DMAOwner("my driver"))   // OWN-04/05: the blocking domain is attached
        let domain = try iommu.allocatePagingDomain()
        try iommu.attach(domain, toGroup: 27)                    // DOM-01
        try domain.map(iova: 0x20_0000, to: 0x7f00_0000_0000, size: 0x20_0000, access: .readWrite)   // one 2 MiB leaf
        let nvme = PCIAddress(parsing: "0000:5e:00.0")!
        let hit = iommu.translate(from: nvme, iova: 0x20_0040, access: .write)    // .mapped(address: 0x7f0000000040, …)
        let miss = iommu.translate(from: nvme, iova: 0x50_0000, access: .read)    // .fault(.notPresent), recorded:
        print(iommu.faults.recent.last!)                         // DMA read fault from 5e:00.0 at IOVA 0x500000: not-present (domain N)
        try iommu.detach(domain, fromGroup: 27)                  // DOM-02: back to the blocking domain
        try iommu.releaseGroup(27)                               // OWN-07: back to the default domain

        #expect(hit == .mapped(address: 0x7f00_0000_0040, contiguous: 0x20_0000 - 0x40))
        #expect(miss == .fault(.notPresent))
        #expect(iommu.faults.recent.last?.iova == 0x50_0000)
    }

    @Test("VFIO: the legacy container flow against machine.vfio")
    func vfioFlow() throws {
        let machine = try SimulatedMachine.load(machine: "default")
        let vfio = machine.vfio                                  // /dev/vfio of the machine
        let container = VFIOContainer(process: vfio.process)     // open("/dev/vfio/vfio")
        let group = try vfio.openGroup(27)                       // open("/dev/vfio/27"): VG-03
        print(group.status.contains(.viable))                    // true: every function unbound or vfio-pci (VG-05)
        try group.setContainer(container)                        // VG-11: claims the group's DMA ownership
        try container.setIOMMU(.type1v2)                         // T1-50: one paging domain for the group
        let buffer = try vfio.process.allocate(size: 2 << 20, hugePages: true)   // mmap'd, 2 MiB aligned
        try container.map(vaddr: buffer.address, iova: 0x4000_0000, size: 2 << 20, access: .readWrite)
        let info = try container.info()                          // page sizes 4K|2M|1G, 65534 entries left,
        print(info.iovaRanges)                                   // [0x0, 0xfedfffff] [0xfef00000, 0xffffffffffff]
        let device = try group.openDevice("0000:5e:00.0")        // VG-31..34
        print(try device.info().regionCount)                     // 9: BAR0-5, ROM, config space, VGA
        device.close()
        let unmapped = try container.unmap(iova: 0x4000_0000, size: 2 << 20)   // 2 MiB (T1-33)
        try group.unsetContainer()                               // VG-13: ownership released, container empty again

        #expect(info.dmaAvailable == 65534 && info.pageSizes == 0x4020_1000)
        #expect(info.iovaRanges.map { [$0.start, $0.end] } == [[0, 0xFEDF_FFFF], [0xFEF0_0000, 0xFFFF_FFFF_FFFF]])
        #expect(unmapped == 2 << 20)
        #expect(container.iommuType == nil && group.status.contains(.viable))
    }

    @Test("errors: errno, rule, message")
    func errors() throws {
        let machine = try SimulatedMachine.load(machine: "default")
        let container = VFIOContainer(process: machine.vfio.process)
        let group = try machine.vfio.openGroup(28)
        try group.setContainer(container)
        try container.setIOMMU(.type1v2)
        let buffer = try machine.process.allocate(size: 0x1000)
        do {
            try container.map(vaddr: buffer.address, iova: 0xFEE0_0000, size: 0x1000)   // the MSI window
        } catch {
            print(error.errno, error.rule)                       // "Invalid argument T1-19": not in the IOVA list
            print(error)                                         // "EINVAL: VFIO container N MAP_DMA [0xfee00000, 0xfee00fff]: not inside … (T1-19)"
        }

        let error = try #require(throws: VFIOError.self) { try container.map(vaddr: buffer.address, iova: 0xFEE0_0000, size: 0x1000) }
        #expect(error.errno == .invalidArgument && error.rule == .T1_19 && error.description.hasPrefix("EINVAL: VFIO container "))
        try group.unsetContainer()
    }

    @Test("devices and drivers: the exercise vfiokit demo runs")
    func exercise() throws {
        let machine = try SimulatedMachine.load(
            machine: "default", attaching: [.init(address: PCIAddress(parsing: "0000:60:00.0")!, model: "memcpy-engine")])
        let device = try UserspaceDevice(PCIAddress(parsing: "0000:60:00.0")!, in: machine.vfio)
        let driver = try MemcpyEngineDriver(device)
        try driver.initialize()
        let exercise = MemcpyExercise(driver)
        let copies = try exercise.copy(count: 16, size: 65536)  // 16 × 64 KiB, each verified, one interrupt each
        let fault = try exercise.copyFromUnmapped()              // IOVA 0xdead0000, never mapped
        print(copies.verified, copies.interrupts, fault.contained)   // true 16 true
        try driver.remove()
        device.close()

        #expect(copies.verified && copies.interrupts == 16 && fault.contained)
        #expect(machine.faultLog(last: 1).first?.hasPrefix("DMA read fault from 60:00.0 at IOVA 0xdead0000: not-present") == true)
    }

    @Test("the raw UAPI path: sysfs link, open, ioctl, pread, close")
    func rawUAPI() throws {
        let machine = try SimulatedMachine.load(machine: "default")
        let system = machine.vfio
        let link = try system.readlink("/sys/bus/pci/devices/0000:5f:00.0/iommu_group").get()   // "../../../kernel/iommu_groups/28"
        let container = system.open("/dev/vfio/vfio"), group = system.open("/dev/vfio/28")
        var containerFD = container
        let joined = withUnsafeBytes(of: &containerFD) {         // VFIO_GROUP_SET_CONTAINER takes a pointer to the fd
            system.ioctl(group, VFIORequest.groupSetContainer, UInt(bitPattern: $0.baseAddress!))
        }
        let typed = system.ioctl(container, VFIORequest.setIOMMU, UInt(VFIOExtension.type1v2.rawValue))
        let device = "0000:5f:00.0".withCString { system.ioctl(group, VFIORequest.groupGetDeviceFD, UInt(bitPattern: $0)) }
        var ids = [UInt16](repeating: 0, count: 2)               // vendor, device: config space is region 7 (offset 7 << 40)
        let bytesRead = ids.withUnsafeMutableBytes { system.pread(device, $0, 7 << 40) }
        print(ids.map { String($0, radix: 16) })                 // ["1234", "5601"]: the memcpy engine
        let missing = system.open("/dev/vfio/99")                // -1, errno ENOENT (VG-01)
        print(missing, errno == ENOENT)
        for fd in [device, group, container] { system.close(fd) }

        #expect(link == "../../../kernel/iommu_groups/28")
        #expect(container >= 0 && group >= 0 && joined == 0 && typed == 0 && device >= 0 && bytesRead == 4)
        #expect(ids == [0x1234, 0x5601])
        #expect(missing == -1)
    }
}
