import IOMMU
import Machine
import DeviceModels
import Glibc
import PCIBus
import SampleDrivers
import Testing
import VFIO

/// The loopback NIC at 60:00.0 of the default machine, opened through VFIO, with a DMA region
/// for its rings (TX at +0, RX at +0x1000, 256 descriptors each) and MSI-X wired to an eventfd.
/// Tests program the registers and descriptors themselves where the driver would hide what they
/// check.
private final class NICBench {
    typealias Register = LoopbackNIC.Register
    let machine: SimulatedMachine
    let device: UserspaceDevice
    let rings: DMARegion
    let interrupt: EventFD
    static let ringEntries: UInt32 = 256
    static let rxRingOffset = 0x1000

    init() throws {
        machine = try SimulatedMachine.load(machine: "default")
        device = try UserspaceDevice(PCIAddress(parsing: "0000:60:00.0")!, in: machine.vfio)
        rings = try device.mapDMA(size: 8192)
        interrupt = try EventFD()
        try device.setBusMaster(true)
        try device.device.enableInterrupts(.msix, eventFDs: [interrupt.fd])
        try write64(Register.txBase, rings.iova)
        try write32(Register.txSize, Self.ringEntries)
        try write64(Register.rxBase, rings.iova + UInt64(Self.rxRingOffset))
        try write32(Register.rxSize, Self.ringEntries)
        try write32(Register.control, LoopbackNIC.Control.enable | LoopbackNIC.Control.loopback)
    }

    deinit { device.close() }

    func read32(_ offset: UInt64) throws -> UInt32 { try device.device.readRegister(UInt32.self, bar: 0, offset: offset) }
    func read64(_ offset: UInt64) throws -> UInt64 { try device.device.readRegister(UInt64.self, bar: 0, offset: offset) }
    func write32(_ offset: UInt64, _ value: UInt32) throws { try device.device.writeRegister(value, bar: 0, offset: offset) }
    func write64(_ offset: UInt64, _ value: UInt64) throws { try device.device.writeRegister(value, bar: 0, offset: offset) }

    func postTX(_ slot: Int, buffer: UInt64, length: UInt16, command: UInt8) {
        store(slot * 16, buffer, UInt64(length) | UInt64(command) << 16)
    }

    func postRX(_ slot: Int, buffer: UInt64) { store(Self.rxRingOffset + slot * 16, buffer, 0) }

    func txStatus(_ slot: Int) -> UInt8 { rings.bytes.load(fromByteOffset: slot * 16 + 11, as: UInt8.self) }

    /// An RX descriptor's written-back length and status.
    func rxWriteBack(_ slot: Int) -> (length: UInt16, status: UInt8) {
        let base = Self.rxRingOffset + slot * 16
        return (rings.bytes.load(fromByteOffset: base + 8, as: UInt16.self), rings.bytes.load(fromByteOffset: base + 10, as: UInt8.self))
    }

    /// STATUS, ERROR and ERROR_ADDRESS.
    func halt() throws -> (halted: Bool, error: LoopbackNIC.Error?, address: UInt64) {
        (try read32(Register.status) == 1, LoopbackNIC.Error(rawValue: try read32(Register.error)), try read64(Register.errorAddress))
    }

    private func store(_ offset: Int, _ first: UInt64, _ second: UInt64) {
        rings.bytes.storeBytes(of: first.littleEndian, toByteOffset: offset, as: UInt64.self)
        rings.bytes.storeBytes(of: second.littleEndian, toByteOffset: offset + 8, as: UInt64.self)
    }
}

@Suite struct LoopbackNICTests {
    typealias Register = LoopbackNIC.Register
    let eop = LoopbackNIC.DescriptorBits.endOfPacket
    let rs = LoopbackNIC.DescriptorBits.reportStatus
    let done = LoopbackNIC.DescriptorBits.done
    let rxEOP = LoopbackNIC.DescriptorBits.rxEndOfPacket

    @Test("VST-13: the driver's loopback copies frames whose buffers straddle page boundaries, and a full ring of them")
    func loopbackCopyAcrossPageBoundaries() throws {
        let machine = try SimulatedMachine.load(machine: "default")
        let device = try UserspaceDevice(PCIAddress(parsing: "0000:60:00.0")!, in: machine.vfio)
        defer { device.close() }
        #expect(try LoopbackNICDriver.probe(device))
        let driver = try LoopbackNICDriver(device)
        try driver.initialize()
        #expect(driver.maxMemcpySize == 1024 && driver.maxMemcpyCount == 63)
        let source = try device.mapDMA(size: 16384)
        let destination = try device.mapDMA(size: 16384)
        for i in 0..<16384 { source.bytes[i] = UInt8(truncatingIfNeeded: i &* 13 &+ 5) }
        destination.bytes.initializeMemory(as: UInt8.self, repeating: 0xee)
        let (from, to) = (4096 - 100, 8192 - 700)
        #expect(try driver.memcpy(source: source.iova + UInt64(from), destination: destination.iova + UInt64(to), size: 1024) == nil)
        #expect(memcmp(source.bytes.baseAddress! + from, destination.bytes.baseAddress! + to, 1024) == 0)
        #expect(destination.bytes[to - 1] == 0xee && destination.bytes[to + 1024] == 0xee)
        // 63 frames into the same buffer: the ring wraps, every descriptor is checked.
        #expect(try driver.memcpy(source: source.iova + 12288 - 30, destination: destination.iova, size: 60, count: driver.maxMemcpyCount) == nil)
        #expect(memcmp(source.bytes.baseAddress! + 12288 - 30, destination.bytes.baseAddress!, 60) == 0)
        #expect(driver.interrupt.read() == nil)  // no RS, no interrupt
        #expect(throws: VFIOError.self) { try driver.memcpyStart(source: source.iova, destination: destination.iova, size: 59, count: 1) }
        try driver.remove()
    }

    @Test("VST-13: a frame gathered from three TX descriptors is scattered over two RX buffers, DD and EOP written back")
    func scatterGatherFrame() throws {
        let bench = try NICBench()
        let packet = try bench.device.mapDMA(size: 16384)
        let received = try bench.device.mapDMA(size: 16384)
        for i in 0..<16384 { packet.bytes[i] = UInt8(truncatingIfNeeded: i &* 7 &+ 1) }
        // Fragments of 1000 bytes across the first page boundary, 7 bytes, 3000 bytes across the third.
        let fragments: [(offset: Int, length: Int)] = [(3596, 1000), (100, 7), (11000, 3000)]
        bench.postTX(0, buffer: packet.iova + UInt64(fragments[0].offset), length: UInt16(fragments[0].length), command: 0)
        bench.postTX(1, buffer: packet.iova + UInt64(fragments[1].offset), length: UInt16(fragments[1].length), command: 0)
        bench.postRX(0, buffer: received.iova + 4000)
        bench.postRX(1, buffer: received.iova + 9000)
        try bench.write32(Register.rxTail, 2)
        try bench.write32(Register.txTail, 2)
        // No EOP posted yet: the device waits for the rest of the frame.
        #expect(try bench.read32(Register.txHead) == 0 && bench.txStatus(0) == 0)
        bench.postTX(2, buffer: packet.iova + UInt64(fragments[2].offset), length: UInt16(fragments[2].length), command: eop)
        try bench.write32(Register.txTail, 3)
        #expect(try bench.halt().halted == false)
        #expect(try bench.read32(Register.txHead) == 3 && bench.read32(Register.rxHead) == 2)
        #expect((0..<3).allSatisfy { bench.txStatus($0) == done })
        #expect(bench.rxWriteBack(0) == (2048, done))
        #expect(bench.rxWriteBack(1) == (4007 - 2048, done | rxEOP))
        let frame = fragments.flatMap { Array(packet.bytes[$0.offset..<$0.offset + $0.length]) }
        #expect(Array(received.bytes[4000..<4000 + 2048]) + Array(received.bytes[9000..<9000 + 1959]) == frame)
        #expect(try bench.read32(Register.txPackets) == 1 && bench.read32(Register.rxPackets) == 1)
    }

    @Test("VST-13: an unmapped TX buffer halts the NIC with its IOVA; nothing is received, no interrupt, the IOMMU logs the fault")
    func unmappedTXBuffer() throws {
        let bench = try NICBench()
        let packet = try bench.device.mapDMA(size: 4096)
        let received = try bench.device.mapDMA(size: 4096)
        received.bytes.initializeMemory(as: UInt8.self, repeating: 0x5a)
        let unmapped: UInt64 = 0xdead_0000
        try bench.write32(Register.interruptMask, 0b111)
        bench.postTX(0, buffer: packet.iova, length: 100, command: rs)
        bench.postTX(1, buffer: unmapped, length: 100, command: eop | rs)
        bench.postRX(0, buffer: received.iova)
        try bench.write32(Register.rxTail, 1)
        try bench.write32(Register.txTail, 2)
        let halt = try bench.halt()
        #expect(halt.halted && halt.error == .txBufferRead && halt.address == unmapped)
        #expect(received.bytes.allSatisfy { $0 == 0x5a })
        #expect(bench.txStatus(0) == 0 && bench.txStatus(1) == 0 && bench.rxWriteBack(0) == (0, 0))
        #expect(try bench.read32(Register.txHead) == 0 && bench.read32(Register.rxPackets) == 0)
        #expect(bench.interrupt.read() == nil)
        let fault = try #require(bench.machine.core.faults.recent.last)
        #expect(fault.iova == unmapped && fault.access == "read" && fault.requester == "60:00.0")

        // Through the driver, after RESET: the same fault reads back as the driver's error.
        let driver = try LoopbackNICDriver(bench.device)
        try driver.initialize()
        let failure = try driver.memcpy(source: unmapped, destination: received.iova, size: 1024)
        #expect(failure == "device halted: TX buffer read fault at IOVA 0xdead0000")
        #expect(received.bytes.allSatisfy { $0 == 0x5a })
        #expect(driver.interrupt.read() == nil)
        #expect(try driver.memcpy(source: packet.iova, destination: received.iova, size: 1024) == nil)  // reset by the driver
    }

    @Test("VST-13: hostile ring configurations, frame lengths and register writes halt with an error and never crash")
    func hostileConfiguration() throws {
        let bench = try NICBench()
        let buffer = try bench.device.mapDMA(size: 16384)
        let unmapped: UInt64 = 0xbad0_0000
        let base = bench.rings.iova

        /// Restarts with a 60-byte frame posted (and RX buffers for it), applies `setUp`, rings
        /// TX and returns the halt state.
        func attempt(_ setUp: () throws -> Void, tail: UInt32 = 1) throws -> (halted: Bool, error: LoopbackNIC.Error?, address: UInt64) {
            try bench.write32(Register.reset, 1)
            try bench.write64(Register.txBase, base)
            try bench.write32(Register.txSize, NICBench.ringEntries)
            try bench.write64(Register.rxBase, base + UInt64(NICBench.rxRingOffset))
            try bench.write32(Register.rxSize, NICBench.ringEntries)
            try bench.write32(Register.rxBufferSize, LoopbackNIC.defaultRXBufferSize)
            bench.postTX(0, buffer: buffer.iova, length: 60, command: eop)
            for slot in 0..<8 { bench.postRX(slot, buffer: buffer.iova + 8192) }
            try bench.write32(Register.rxTail, 8)
            try setUp()
            try bench.write32(Register.txTail, tail)
            return try bench.halt()
        }

        #expect(try attempt({}) == (false, LoopbackNIC.Error.none, 0))
        for size: UInt32 in [0, 3, 4097, 8192, .max] {
            #expect(try attempt({ try bench.write32(Register.txSize, size) }, tail: 0) == (true, .txRing, base))
        }
        #expect(try attempt({ try bench.write64(Register.txBase, base + 3) }, tail: 0) == (true, .txRing, base + 3))
        #expect(try attempt({}, tail: NICBench.ringEntries) == (true, .txRing, base))
        #expect(try attempt({}, tail: .max) == (true, .txRing, base))
        let nowhere: UInt64 = 0xffff_ffff_ffff_fff0
        #expect(try attempt({ try bench.write64(Register.txBase, nowhere) }) == (true, .txDescriptorRead, nowhere))
        #expect(try attempt({ try bench.write32(Register.rxSize, 5) }) == (true, .rxRing, base + 0x1000))
        #expect(try attempt({ try bench.write32(Register.rxBufferSize, 100) }) == (true, .rxRing, base + 0x1000))
        #expect(try attempt({ try bench.write32(Register.rxBufferSize, 3000) }) == (true, .rxRing, base + 0x1000))
        #expect(try attempt({ try bench.write32(Register.rxTail, 0xffff) }) == (true, .rxRing, base + 0x1000))
        let unmappedRXRing = {
            try bench.write64(Register.rxBase, unmapped)
            try bench.write32(Register.rxTail, 8)
        }
        #expect(try attempt(unmappedRXRing) == (true, .rxDescriptorRead, unmapped))
        #expect(try attempt({ bench.postRX(0, buffer: unmapped) }) == (true, .rxBufferWrite, unmapped))
        // Runt, zero-length and oversized frames (three 4000-byte descriptors: 12000 > 9018).
        #expect(try attempt({ bench.postTX(0, buffer: buffer.iova, length: 59, command: eop) }) == (true, .invalidFrame, base))
        #expect(try attempt({ bench.postTX(0, buffer: unmapped, length: 0, command: eop) }) == (true, .invalidFrame, base))
        let jumbo = {
            for slot in 0..<3 { bench.postTX(slot, buffer: buffer.iova, length: 4000, command: slot == 2 ? self.eop : 0) }
        }
        #expect(try attempt(jumbo, tail: 3) == (true, .invalidFrame, base))
        // A halted device ignores doorbells until RESET.
        let transmitted = try bench.read32(Register.txPackets)
        bench.postTX(3, buffer: buffer.iova, length: 60, command: eop)
        try bench.write32(Register.txTail, 4)
        #expect(try bench.read32(Register.txHead) == 0 && bench.read32(Register.txPackets) == transmitted)
        // Too few RX descriptors: the frame is dropped and counted, the device keeps running.
        #expect(try attempt({ try bench.write32(Register.rxTail, 0) }) == (false, LoopbackNIC.Error.none, 0))
        #expect(try bench.read32(Register.rxMissed) == 1 && bench.read32(Register.txHead) == 1)

        // All ones in every register of the first 1 KiB, then reads of all of them.
        for offset in stride(from: UInt64(0), to: 0x400, by: 4) { try bench.write32(offset, .max) }
        for offset in stride(from: UInt64(0), to: 0x400, by: 4) { _ = try bench.read32(offset) }
        #expect(try bench.halt() == (true, .txRing, 0xffff_ffff_ffff_ffff))
        #expect(try attempt({}) == (false, LoopbackNIC.Error.none, 0))  // usable again after RESET
        #expect(buffer.bytes[8192..<8252].elementsEqual(buffer.bytes[0..<60]))
    }

    @Test("VST-13: a TX descriptor with RS raises MSI-X vector 0 when TXDW is unmasked; ICR reads and clears the causes")
    func interruptAfterReportStatus() throws {
        let bench = try NICBench()
        let buffer = try bench.device.mapDMA(size: 4096)
        bench.postTX(0, buffer: buffer.iova, length: 60, command: eop | rs)
        bench.postRX(0, buffer: buffer.iova + 2048)
        try bench.write32(Register.rxTail, 1)
        try bench.write32(Register.txTail, 1)
        #expect(bench.interrupt.read() == nil)  // IMS is 0 at reset
        #expect(try bench.read32(Register.interruptCause) == LoopbackNIC.Cause.txDescriptorWritten | LoopbackNIC.Cause.rxDescriptorWritten)
        #expect(try bench.read32(Register.interruptCause) == 0)

        try bench.write32(Register.interruptMask, LoopbackNIC.Cause.txDescriptorWritten)
        bench.postTX(1, buffer: buffer.iova, length: 60, command: eop)  // no RS: no TXDW
        bench.postRX(1, buffer: buffer.iova + 2048)
        try bench.write32(Register.rxTail, 2)
        try bench.write32(Register.txTail, 2)
        #expect(bench.interrupt.read() == nil)
        bench.postTX(2, buffer: buffer.iova, length: 60, command: eop | rs)
        bench.postRX(2, buffer: buffer.iova + 2048)
        try bench.write32(Register.rxTail, 3)
        try bench.write32(Register.txTail, 3)
        #expect(bench.interrupt.read() == 1)
        #expect(bench.device.device.interruptsDelivered == 1)

        // The driver's send_msi is that frame.
        let driver = try LoopbackNICDriver(bench.device)
        try driver.initialize()
        try driver.sendMSI()
        #expect(driver.interrupt.read() == 1)
        #expect(bench.interrupt.read() == nil)
    }
}
