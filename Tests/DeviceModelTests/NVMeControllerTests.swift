import IOMMU
import Machine
import DeviceModels
import Glibc
import PCIBus
import SampleDrivers
import Testing
import VFIO

/// The NVMe controller model driven through VFIO by `NVMeDriver`, plus raw register and queue
/// programming where the tests play a hostile or careless driver.
@Suite struct NVMeControllerTests {
    static let address = PCIAddress(parsing: "0000:5e:00.0")!
    static let unmapped: UInt64 = 0xdead_0000

    /// The default machine with the controller at 5e:00.0 opened and brought up by the driver.
    struct Rig {
        let machine: SimulatedMachine
        let device: UserspaceDevice
        let driver: NVMeDriver
        var controller: NVMeController { machine.devices[NVMeControllerTests.address] as! NVMeController }

        init() throws {
            machine = try SimulatedMachine.load(machine: "default")
            device = try UserspaceDevice(NVMeControllerTests.address, in: machine.vfio)
            #expect(try NVMeDriver.probe(device))
            driver = try NVMeDriver(device)
            // Queue pairs 2…4 are the tests' own.
            driver.requestedIOQueues = 4
            try driver.initialize()
            #expect(driver.grantedQueues == (4, 4))
        }

        func read32(_ offset: UInt64) throws -> UInt32 { try device.device.readRegister(UInt32.self, bar: 0, offset: offset) }
        func write32(_ offset: UInt64, _ value: UInt32) throws { try device.device.writeRegister(value, bar: 0, offset: offset) }

        /// Whether the media at `lba` holds exactly `bytes` (a Bool, so a failure does not print them all).
        func media(at lba: UInt64, holds bytes: some Collection<UInt8>) -> Bool {
            controller.mediaContents(lba: lba, blocks: bytes.count / 512).elementsEqual(bytes)
        }

        /// Places a 64-byte submission queue entry in `queue` at `slot`.
        func place(_ dwords: [UInt32], in queue: DMARegion, slot: Int) {
            for (n, dword) in dwords.enumerated() { queue.bytes.storeBytes(of: dword, toByteOffset: slot * 64 + 4 * n, as: UInt32.self) }
        }
    }

    static func fill(_ region: DMARegion, seed: Int) {
        for i in 0..<Int(region.size) { region.bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ seed) }
    }

    @Test func identifiesControllerAndNamespace() throws {
        let rig = try Rig()
        defer { rig.device.close() }
        #expect(try rig.device.device.readConfig(UInt32.self, at: 0x08) >> 8 == 0x010802)
        #expect(try rig.read32(0x08) == 0x0001_0400)
        #expect(try rig.read32(0x1c) == 1)
        #expect(rig.driver.modelNumber == "VFIOKit NVMe controller")
        #expect(rig.driver.namespaceBlocks == 32768 && rig.driver.blockSize == 512)
        #expect(rig.driver.maxMemcpySize == 128 << 10 && rig.driver.maxMemcpyCount == 64)

        // Identify controller into a buffer that starts mid-page: PRP1 and PRP2 share the 4 KiB.
        let buffer = try rig.device.mapDMA(size: 8192)
        #expect(try rig.driver.submitAdmin(NVMeCommand(opcode: 0x06, prp1: buffer.iova + 2048, prp2: buffer.iova + 4096, cdw10: 1)) == .success)
        #expect(buffer.bytes.load(fromByteOffset: 2048, as: UInt16.self) == 0x1234)
        #expect(buffer.bytes[2048 + 77] == 5)
        #expect(buffer.bytes[2048 + 512] == 0x66 && buffer.bytes[2048 + 513] == 0x44)
        #expect(buffer.bytes.load(fromByteOffset: 2048 + 516, as: UInt32.self) == 1)

        #expect(try rig.driver.submitAdmin(NVMeCommand(opcode: 0x06, prp1: buffer.iova, cdw10: 2)) == .success)
        #expect(buffer.bytes.load(as: UInt32.self) == 1 && buffer.bytes.load(fromByteOffset: 4, as: UInt32.self) == 0)
        #expect(try rig.driver.submitAdmin(NVMeCommand(opcode: 0x06, namespace: 7, prp1: buffer.iova)) == .invalidNamespace)
        #expect(try rig.driver.submitAdmin(NVMeCommand(opcode: 0x06, prp1: buffer.iova, cdw10: 0x55)) == .invalidField)
    }

    @Test func roundTripsAcrossPagesThroughPRPLists() throws {
        let rig = try Rig()
        defer { rig.device.close() }
        let source = try rig.device.mapDMA(size: 128 << 10)
        let destination = try rig.device.mapDMA(size: 128 << 10)
        Self.fill(source, seed: 7)

        // PRP1 mid-page, then a 32-entry PRP list.
        #expect(try rig.driver.write(lba: 100, from: source.iova + 512, blocks: 255) == .success)
        #expect(try rig.driver.read(lba: 100, into: destination.iova + 512, blocks: 255) == .success)
        #expect(memcmp(source.bytes.baseAddress! + 512, destination.bytes.baseAddress! + 512, 255 * 512) == 0)
        let written = rig.media(at: 100, holds: source.bytes[512..<256 * 512])
        #expect(written)

        // Exactly two pages: PRP2 is the second page itself.
        #expect(try rig.driver.write(lba: 1000, from: source.iova, blocks: 16) == .success)
        let twoPages = rig.media(at: 1000, holds: source.bytes[0..<8192])
        #expect(twoPages)

        // A PRP list starting in the last two slots of a page: the first is page 1, the last
        // chains to the next list page, which holds pages 2…15 (NVMe 1.4 §4.3).
        let lists = try rig.device.mapDMA(size: 8192)
        lists.bytes.storeBytes(of: source.iova + 4096, toByteOffset: 4096 - 16, as: UInt64.self)
        lists.bytes.storeBytes(of: lists.iova + 4096, toByteOffset: 4096 - 8, as: UInt64.self)
        for page in 2..<16 { lists.bytes.storeBytes(of: source.iova + UInt64(page) * 4096, toByteOffset: 4096 + (page - 2) * 8, as: UInt64.self) }
        let chained = NVMeCommand(opcode: 0x01, namespace: 1, prp1: source.iova, prp2: lists.iova + 4096 - 16, cdw10: 2000, cdw12: 127)
        #expect(try rig.driver.submitIO(chained) == .success)
        let throughChain = rig.media(at: 2000, holds: source.bytes[0..<65536])
        #expect(throughChain)

        // A list entry that is not page aligned: PRP Offset Invalid, and the media keeps its data.
        let before = rig.controller.mediaContents(lba: 2000, blocks: 128)
        Self.fill(source, seed: 99)
        lists.bytes.storeBytes(of: source.iova + 4096 + 8, toByteOffset: 4096 + 8, as: UInt64.self)
        #expect(try rig.driver.submitIO(chained) == .prpOffsetInvalid)
        let kept = rig.media(at: 2000, holds: before)
        #expect(kept)
    }

    /// VST-13 `memcpy_from_unmapped_iova` / `memcpy_to_unmapped_iova` at the command level: the
    /// command fails with Data Transfer Error, nothing reaches the media, the IOMMU logs the fault.
    @Test func unmappedBufferIsADataTransferError() throws {
        let rig = try Rig()
        defer { rig.device.close() }
        let data = try rig.device.mapDMA(size: 64 << 10)
        Self.fill(data, seed: 3)
        #expect(try rig.driver.write(lba: 500, from: data.iova, blocks: 64) == .success)
        let before = rig.controller.mediaContents(lba: 500, blocks: 64)
        Self.fill(data, seed: 42)

        let status = try rig.driver.write(lba: 500, from: Self.unmapped, blocks: 64)
        #expect(status == .dataTransferError && !status.doNotRetry)
        let kept = rig.media(at: 500, holds: before)
        #expect(kept)
        let fault = rig.machine.core.faults.recent.last
        #expect(fault?.iova == Self.unmapped && fault?.access == "read" && fault?.requesterID == Self.address.requesterID)

        // The first page arrives, the second faults: still nothing reaches the media.
        #expect(try rig.driver.submitIO(NVMeCommand(opcode: 0x01, namespace: 1, prp1: data.iova, prp2: Self.unmapped, cdw10: 500, cdw12: 15)) == .dataTransferError)
        // The PRP list itself is unreachable.
        #expect(try rig.driver.submitIO(NVMeCommand(opcode: 0x01, namespace: 1, prp1: data.iova, prp2: Self.unmapped, cdw10: 500, cdw12: 63)) == .dataTransferError)
        let stillKept = rig.media(at: 500, holds: before)
        #expect(stillKept)

        // Reading into an unmapped IOVA faults on the write to memory.
        #expect(try rig.driver.read(lba: 500, into: Self.unmapped, blocks: 8) == .dataTransferError)
        #expect(rig.machine.core.faults.recent.last?.access == "write")
        #expect(try rig.read32(0x1c) == 1)
    }

    @Test func hostileQueueSetupFailsCommandsNotTheController() throws {
        let rig = try Rig()
        defer { rig.device.close() }
        let queue = try rig.device.mapDMA(size: 8192)
        func createCompletionQueue(_ qid: UInt32, entries: UInt32, base: UInt64? = nil, flags: UInt32 = 0b11, vector: UInt32 = 1) throws -> NVMeStatus {
            try rig.driver.submitAdmin(NVMeCommand(opcode: 0x05, prp1: base ?? queue.iova, cdw10: (entries &- 1) << 16 | qid, cdw11: vector << 16 | flags))
        }
        func createSubmissionQueue(_ qid: UInt32, on cqid: UInt32, base: UInt64? = nil) throws -> NVMeStatus {
            try rig.driver.submitAdmin(NVMeCommand(opcode: 0x01, prp1: base ?? queue.iova, cdw10: 15 << 16 | qid, cdw11: cqid << 16 | 1))
        }
        #expect(try createCompletionQueue(0, entries: 16) == .invalidQueueIdentifier)
        #expect(try createCompletionQueue(5, entries: 16) == .invalidQueueIdentifier, "past the 4 Number of Queues granted")
        #expect(try createCompletionQueue(33, entries: 16) == .invalidQueueIdentifier)
        #expect(try createCompletionQueue(0xffff, entries: 16) == .invalidQueueIdentifier)
        #expect(try createCompletionQueue(1, entries: 16) == .invalidQueueIdentifier)
        #expect(try createCompletionQueue(2, entries: 1) == .invalidQueueSize)
        #expect(try createCompletionQueue(2, entries: 0x1_0000) == .invalidQueueSize)
        #expect(try createCompletionQueue(2, entries: 16, base: queue.iova + 8) == .prpOffsetInvalid)
        #expect(try createCompletionQueue(2, entries: 16, vector: 200) == .invalidInterruptVector)
        #expect(try createCompletionQueue(2, entries: 16, flags: 0b10) == .invalidField)
        #expect(try createSubmissionQueue(2, on: 9) == .completionQueueInvalid)
        #expect(try createSubmissionQueue(2, on: 0) == .completionQueueInvalid)
        #expect(try rig.driver.submitAdmin(NVMeCommand(opcode: 0x04, cdw10: 1)) == .invalidQueueDeletion)
        #expect(try rig.driver.submitAdmin(NVMeCommand(opcode: 0x00, cdw10: 0)) == .invalidQueueIdentifier)
        #expect(try rig.driver.submitAdmin(NVMeCommand(opcode: 0x00, cdw10: 5)) == .invalidQueueIdentifier)
        #expect(try rig.driver.submitAdmin(NVMeCommand(opcode: 0x7f)) == .invalidOpcode)

        let data = try rig.device.mapDMA(size: 4096)
        #expect(try rig.driver.submitIO(NVMeCommand(opcode: 0x55, namespace: 1, prp1: data.iova)) == .invalidOpcode)
        #expect(try rig.driver.submitIO(NVMeCommand(opcode: 0x02, namespace: 2, prp1: data.iova)) == .invalidNamespace)
        #expect(try rig.driver.read(lba: 32768, into: data.iova, blocks: 1) == .lbaOutOfRange)
        #expect(try rig.driver.read(lba: 32767, into: data.iova, blocks: 2) == .lbaOutOfRange)
        #expect(try rig.driver.read(lba: .max, into: data.iova, blocks: 1) == .lbaOutOfRange)
        #expect(try rig.driver.submitIO(NVMeCommand(opcode: 0x02, namespace: 1, prp1: data.iova, cdw12: 0xffff)) == .invalidField)
        #expect(try rig.driver.read(lba: 0, into: data.iova + 2, blocks: 1) == .prpOffsetInvalid)

        // Doorbells past a queue's size, a head past what was posted, a queue that does not
        // exist, a byte-wide register write: ignored, and the driver's queues stay in step.
        try rig.write32(0x1000 + 2 * 4, 5000)
        try rig.write32(0x1000 + 3 * 4, 50)
        try rig.write32(0x1000 + 600 * 4, 1)
        try rig.device.device.writeRegister(UInt8(0), bar: 0, offset: 0x14)
        #expect(try rig.read32(0x1c) == 1)
        #expect(try rig.driver.write(lba: 0, from: data.iova, blocks: 8) == .success)

        // A completion queue anywhere is accepted — the controller touches it only to post —
        // and the first completion it cannot post is a controller fatal status.
        #expect(try createCompletionQueue(2, entries: 16, base: Self.unmapped) == .success)
        #expect(try createSubmissionQueue(2, on: 2) == .success)
        rig.place([0x0000_0000, 1], in: queue, slot: 0)
        try rig.write32(0x1000 + 4 * 4, 1)
        #expect(try rig.read32(0x1c) & 2 != 0)
        #expect(throws: VFIOError.self) { try rig.driver.write(lba: 0, from: data.iova, blocks: 8) }

        // Enabling with an admin queue of one entry fails the controller instead of readying it;
        // an admin queue in unmapped memory faults on the first fetch.
        try rig.write32(0x14, 0)
        #expect(try rig.read32(0x1c) == 0)
        try rig.write32(0x24, 0)
        try rig.write32(0x14, 4 << 20 | 6 << 16 | 1)
        #expect(try rig.read32(0x1c) == 2)
        try rig.write32(0x14, 0)
        try rig.write32(0x24, 0x000f_000f)
        try rig.device.device.writeRegister(Self.unmapped, bar: 0, offset: 0x28)
        try rig.write32(0x14, 4 << 20 | 6 << 16 | 1)
        #expect(try rig.read32(0x1c) == 1)
        try rig.write32(0x1000, 1)
        #expect(try rig.read32(0x1c) == 3)

        // CC.EN 1→0 clears the failure; the driver brings the controller back.
        try rig.driver.initialize()
        #expect(try rig.driver.write(lba: 0, from: data.iova, blocks: 8) == .success)
    }

    @Test func disablingResetsTheController() throws {
        let rig = try Rig()
        defer { rig.device.close() }
        let data = try rig.device.mapDMA(size: 8192)
        Self.fill(data, seed: 11)
        #expect(try rig.driver.write(lba: 10, from: data.iova, blocks: 16) == .success)

        try rig.write32(0x14, try rig.read32(0x14) & ~1)
        #expect(try rig.read32(0x1c) & 1 == 0)
        #expect(try rig.read32(0x24) == 0x003f_003f)
        // Every queue is gone: the I/O doorbell is ignored and no completion ever comes.
        #expect(throws: VFIOError.self) { try rig.driver.write(lba: 10, from: data.iova, blocks: 16) }

        try rig.driver.initialize()
        let readBack = try rig.device.mapDMA(size: 8192)
        #expect(try rig.driver.read(lba: 10, into: readBack.iova, blocks: 16) == .success)
        #expect(memcmp(data.bytes.baseAddress!, readBack.bytes.baseAddress!, 8192) == 0)

        // A function-level reset returns the registers to power-on state; the media keeps its data.
        try rig.device.device.reset()
        try rig.device.device.writeConfig(UInt16(0x0006), at: 0x04)
        #expect(try rig.read32(0x14) == 0 && rig.read32(0x1c) == 0 && rig.read32(0x24) == 0)
        try rig.driver.initialize()
        let survived = rig.media(at: 10, holds: data.bytes)
        #expect(survived)
    }

    @Test("VPCI-93/94: the MSI-X table never reaches the device through vfio-pci — reads are all ones, writes are dropped and count as done; accesses around it stop at its edge")
    func msixTableExcluded() throws {
        let rig = try Rig()
        defer { rig.device.close() }
        let entry: UInt64 = 0x2000 + 16  // vector 1's address, data and control
        let before = rig.controller.readBAR(0, offset: entry, width: 8)
        var bytes = [UInt8](repeating: 0, count: 8)
        let read = try bytes.withUnsafeMutableBytes { buffer in try rig.device.device.read(.bar(0), offset: 0x1ffc, into: buffer) }
        #expect(read == 8)
        #expect(Array(bytes[4...]) == [0xff, 0xff, 0xff, 0xff], "the table's first bytes read as ones")
        let device = UInt32(truncatingIfNeeded: rig.controller.readBAR(0, offset: 0x1ffc, width: 4))
        let first = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        #expect(first == device, "the bytes before the table are the device's")
        let garbage = [UInt8](repeating: 0x5a, count: 16)
        let written = try garbage.withUnsafeBytes { buffer in try rig.device.device.write(.bar(0), offset: entry, from: buffer) }
        #expect(written == 16)
        #expect(rig.controller.readBAR(0, offset: entry, width: 8) == before, "the write was dropped")
    }

    @Test func completionsRaiseInterrupts() throws {
        let rig = try Rig()
        defer { rig.device.close() }
        // VST-13 send_msi: nothing to read before, one interrupt after.
        #expect(rig.driver.interrupt.read() == nil)
        try rig.driver.sendMSI()
        #expect(rig.driver.interrupt.read() == 1)
        #expect(rig.driver.interrupt.read() == nil)

        // A masked MSI-X vector holds the interrupt pending and fires when unmasked. vfio-pci keeps
        // the table from userspace (VPCI-93), so the vector is masked on the device itself, as
        // the kernel's MSI-X code would.
        #expect(try rig.read32(0x2000 + 16 + 12) == 0xffff_ffff, "the MSI-X table reads as all ones through vfio-pci")
        rig.controller.writeBAR(0, offset: 0x2000 + 16 + 12, width: 4, 1)
        try rig.driver.sendMSI()
        #expect(rig.driver.interrupt.read() == nil)
        #expect(try rig.read32(0x3000) & 0b10 != 0, "the PBA is not part of the table: it reads through")
        rig.controller.writeBAR(0, offset: 0x2000 + 16 + 12, width: 4, 0)
        #expect(rig.driver.interrupt.read() == 1)

        // A completion queue with interrupts disabled (IEN 0) posts without signalling.
        let queues = try rig.device.mapDMA(size: 8192)
        #expect(try rig.driver.submitAdmin(NVMeCommand(opcode: 0x05, prp1: queues.iova + 4096, cdw10: 15 << 16 | 2, cdw11: 1 << 16 | 0b01)) == .success)
        #expect(try rig.driver.submitAdmin(NVMeCommand(opcode: 0x01, prp1: queues.iova, cdw10: 15 << 16 | 2, cdw11: 2 << 16 | 1)) == .success)
        rig.place([0x0007_0000, 1], in: queues, slot: 0)
        try rig.write32(0x1000 + 4 * 4, 1)
        let completion = queues.bytes.load(fromByteOffset: 4096 + 12, as: UInt32.self)
        #expect(completion == 0x0001_0007)
        #expect(queues.bytes.load(fromByteOffset: 4096 + 8, as: UInt32.self) == 2 << 16 | 1)
        #expect(rig.driver.interrupt.read() == nil)

        // With MSI instead, INTMS masks a vector; INTMC unmasks it and the held interrupt fires.
        let vector0 = try EventFD()
        try rig.device.device.disableInterrupts(.msix)
        try rig.device.device.enableInterrupts(.msi, eventFDs: [vector0.fd, rig.driver.interrupt.fd])
        try rig.write32(0x0c, 0b10)
        #expect(try rig.read32(0x0c) == 0b10 && rig.read32(0x10) == 0b10)
        try rig.driver.sendMSI()
        #expect(rig.driver.interrupt.read() == nil)
        try rig.write32(0x10, 0b10)
        #expect(rig.driver.interrupt.read() == 1)
        #expect(try rig.read32(0x0c) == 0)
    }

    /// VST-13 (`vfio_pci_driver_test.c`) against this driver: init_remove, memcpy_success,
    /// memcpy from and to an unmapped IOVA (failure reported, destination untouched),
    /// send_msi, mix_and_match (the device stays usable) and memcpy_storm.
    @Test func selftestDriverOps() throws {
        let rig = try Rig()
        defer { rig.device.close() }
        let driver = rig.driver
        try driver.remove()
        try driver.initialize()
        let size = driver.maxMemcpySize
        let source = try rig.device.mapDMA(size: size)
        let destination = try rig.device.mapDMA(size: size)
        for _ in 0..<3 {
            source.bytes.initializeMemory(as: UInt8.self, repeating: UInt8(ascii: "x"))
            destination.bytes.initializeMemory(as: UInt8.self, repeating: UInt8(ascii: "y"))
            #expect(try driver.memcpy(source: source.iova, destination: destination.iova, size: size) == nil)
            #expect(memcmp(source.bytes.baseAddress!, destination.bytes.baseAddress!, Int(size)) == 0)

            destination.bytes.initializeMemory(as: UInt8.self, repeating: UInt8(ascii: "y"))
            let from = try driver.memcpy(source: Self.unmapped, destination: destination.iova, size: size)
            #expect(from?.contains("Data Transfer Error") == true)
            let untouched = destination.bytes.allSatisfy { $0 == UInt8(ascii: "y") }
            #expect(untouched)
            let to = try driver.memcpy(source: source.iova, destination: Self.unmapped, size: size)
            #expect(to?.contains("Data Transfer Error") == true)

            try driver.sendMSI()
            #expect(driver.interrupt.read() == 1)
        }
        Self.fill(source, seed: 5)
        #expect(try driver.memcpy(source: source.iova, destination: destination.iova, size: size, count: driver.maxMemcpyCount) == nil)
        #expect(memcmp(source.bytes.baseAddress!, destination.bytes.baseAddress!, Int(size)) == 0)
        let lastCopy = rig.media(at: (driver.maxMemcpyCount - 1) * size / 512, holds: source.bytes)
        #expect(lastCopy)
        try driver.remove()
    }
}
