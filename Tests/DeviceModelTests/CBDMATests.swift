import DeviceModels
import Machine
import PCIBus
import SampleDrivers
import Testing
import VFIO

/// The CBDMA model (Intel I/OAT 3.3) programmed register by register as `ioatdma` and the VFIO
/// selftests' ioat driver program it (`drivers/dma/ioat/registers.h`).
@Suite struct CBDMATests {
    typealias Channel = CBDMARig.Channel
    typealias Control = CBDMARig.Control
    typealias Descriptor = CBDMARig.Descriptor
    typealias State = CBDMARig.State

    // MARK: Identity

    @Test("config space as the dumped 00:04.0: identity, multi-function header, PM, MSI, PCIe RCiEP and MSI-X where it has them")
    func identity() throws {
        let fixture = try FixtureMachine.load(directory: FixtureMachine.locate("default"))
        let dump = try SimulatedMachine.load(dump: fixture.dumpPath, attaching: [], platform: .intelVTd)
        let dumped = try #require(dump.snapshot.topology[CBDMARig.address]).config
        let machine = try SimulatedMachine.load(machine: "default")
        let cbdma = try #require(machine.devices[CBDMARig.address])
        // IDs; status (capability list); revision and class; header type; subsystem; capability pointer; interrupt pin;
        // PM (PMCSR No_Soft_Reset); MSI (64-bit, one vector); PCIe flags (RCiEP); MSI-X (one
        // vector, table at BAR0 + 0x2000, pending bits at + 0x3000).
        let fields = [
            (0x00, 4), (0x06, 2), (0x08, 4), (0x0e, 1), (0x2c, 4), (0x34, 1), (0x3d, 1), (0x40, 4), (0x44, 2), (0x50, 4), (0x60, 4), (0xa0, 12),
        ]
        for (offset, count) in fields {
            let range = offset..<offset + count
            #expect(cbdma.configSpace.bytes[range] == dumped.bytes[range], "config 0x\(String(offset, radix: 16))")
        }
        #expect(cbdma.configSpaceSize == 4096)
        let bar = try #require(cbdma.barResource(0))
        #expect(bar.kind == .memory64 && bar.size == 16 << 10 && !bar.mappable)
        #expect(!cbdma.supportsFunctionReset)
        let rig = try CBDMARig()
        defer { rig.close() }
        #expect(!rig.device.info.flags.contains(.reset))
    }

    @Test("the default machine has it at 00:04.0 bound to ioatdma, alone in IOMMU group 1 (rciep quirk)")
    func inDefaultMachine() throws {
        let machine = try SimulatedMachine.load(machine: "default")
        #expect(machine.devices[CBDMARig.address] is CBDMA)
        #expect(machine.snapshot.drivers[CBDMARig.address] == "ioatdma")
        let group = try #require(machine.groupID(of: CBDMARig.address))
        #expect(group == 1)
        #expect(machine.snapshot.topology.functions.map(\.address).filter { machine.groupID(of: $0) == group } == [CBDMARig.address])
    }

    // MARK: Registers

    struct Register: Sendable, CustomStringConvertible {
        let name: String
        let offset: UInt64
        let width: Int
        let value: UInt64
        var description: String { "\(name) (0x\(String(offset, radix: 16)), \(width) bytes) = 0x\(String(value, radix: 16))" }
    }

    static let powerOn = [
        Register(name: "CHANCNT", offset: 0x00, width: 1, value: 1), Register(name: "XFERCAP", offset: 0x01, width: 1, value: 20),
        Register(name: "GENCTRL", offset: 0x02, width: 1, value: 0), Register(name: "INTRCTRL", offset: 0x03, width: 1, value: 0),
        Register(name: "ATTNSTATUS", offset: 0x04, width: 4, value: 0), Register(name: "VER", offset: 0x08, width: 1, value: 0x33),
        Register(name: "INTRDELAY", offset: 0x0c, width: 2, value: 0), Register(name: "DEVICE_STATUS", offset: 0x0e, width: 2, value: 0),
        Register(name: "DMACAPABILITY", offset: 0x10, width: 4, value: 0), Register(name: "DCAOFFSET", offset: 0x14, width: 2, value: 0),
        Register(name: "CHANCNT … ATTNSTATUS as one qword", offset: 0x00, width: 8, value: 0x1401),
        Register(name: "CHANCTRL", offset: Channel.control, width: 2, value: 0),
        Register(name: "CHANCMD", offset: Channel.command, width: 1, value: 0),
        Register(name: "DMACOUNT", offset: Channel.dmaCount, width: 2, value: 0),
        Register(name: "CHANSTS: HALTED", offset: Channel.status, width: 8, value: State.halted),
        Register(name: "CHAINADDR", offset: Channel.chainAddress, width: 8, value: 0),
        Register(name: "CHANCMP", offset: Channel.completion, width: 8, value: 0),
        Register(name: "CDAR", offset: Channel.current, width: 8, value: 0), Register(name: "CHANERR", offset: Channel.error, width: 4, value: 0),
        Register(name: "CHANERR_MASK", offset: Channel.errorMask, width: 4, value: 0),
        Register(name: "no register", offset: 0x40, width: 4, value: 0), Register(name: "past the channel", offset: 0x100, width: 8, value: 0),
    ]

    @Test("power-on register values", arguments: powerOn)
    func powerOnValue(_ register: Register) throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        #expect(try rig.read(register.offset, width: register.width) == register.value)
    }

    @Test("CHAINADDR written as one qword, dwords, words or bytes reads back whole, in pieces and across its neighbours", arguments: [8, 4, 2, 1])
    func accessWidths(_ width: Int) throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        let value: UInt64 = 0x0123_4567_89ab_cdc0
        let mask: UInt64 = width == 8 ? .max : (1 << UInt64(8 * width)) - 1
        for piece in stride(from: 0, to: 8, by: width) {
            let part = value >> UInt64(8 * piece) & mask
            let offset = Channel.chainAddress + UInt64(piece)
            switch width {
            case 1: try rig.write(UInt8(part), offset)
            case 2: try rig.write(UInt16(part), offset)
            case 4: try rig.write(UInt32(part), offset)
            default: try rig.write(part, offset)
            }
            #expect(try rig.read(offset, width: width) == part)
        }
        #expect(try rig.read(Channel.chainAddress) == value)
        try rig.write(UInt64(0xfedc_ba98_7654_3210), Channel.completion)
        #expect(try rig.read(Channel.chainAddress + 4) == 0x7654_3210_0123_4567)  // CHAINADDR's high half, CHANCMP's low
        #expect(try rig.read(Channel.dmaCount + 1, width: 2) == State.halted << 8)  // DMACOUNT's high byte, CHANSTS's low
    }

    @Test("CHANCMD RESET self-clears and leaves the channel HALTED with its registers at reset values; it then runs a new chain")
    func channelReset() throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        rig.place(0, size: 8, control: Descriptor.completion, source: rig.iova(CBDMARig.dataOffset), destination: rig.iova(CBDMARig.dataOffset + 8))
        try rig.start(at: rig.descriptor(0), count: 1)
        #expect(try rig.status == rig.descriptor(0) | State.done)
        try rig.write(UInt8(0x20), Channel.command)
        #expect(try rig.read(Channel.command, width: 1) == 0)
        #expect(try rig.status == State.halted)
        let cleared = [(Channel.chainAddress, 8), (Channel.completion, 8), (Channel.current, 8), (Channel.control, 2), (Channel.dmaCount, 2)]
        for (register, width) in cleared {
            #expect(try rig.read(register, width: width) == 0, "0x\(String(register, radix: 16))")
        }
        try rig.start(at: rig.descriptor(0), count: 1)
        #expect(try rig.status == rig.descriptor(0) | State.done)
    }

    // MARK: The engine

    @Test("a self-linked descriptor with DMACOUNT = N runs N times; CHANSTS and the completion then name it, DONE", arguments: [1, 2, 300, 65535])
    func selfLinked(_ count: Int) throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        let size = 1 << 16
        rig.fillShiftPattern(size: size)
        rig.placeShift(0, size: size, control: Descriptor.completion)
        try rig.start(at: rig.descriptor(0), count: UInt16(count))
        #expect(rig.shifted(count, size: size))
        #expect(try rig.status == rig.descriptor(0) | State.done)
        #expect(rig.completion == rig.descriptor(0) | State.done)
        #expect(try rig.read(Channel.error, width: 4) == 0)
    }

    @Test("DMACOUNT is a free-running 16-bit count: after 0xfff0 (null descriptors), writing 0x0005 runs 0x15 more")
    func countWraps() throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        rig.place(0, size: 1, control: Descriptor.null)
        try rig.start(at: rig.descriptor(0), count: 0xfff0)
        #expect(try rig.status == rig.descriptor(0) | State.done)
        let size = 256
        rig.fillShiftPattern(size: size)
        rig.placeShift(0, size: size)
        try rig.write(UInt16(0x0005), Channel.dmaCount)
        #expect(rig.shifted(0x15, size: size))
        #expect(try rig.status == rig.descriptor(0) | State.done)
    }

    @Test("a chain is followed through `next`: DMACOUNT 2 runs its first two descriptors, then 3 the third")
    func chainContinues() throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        let source = CBDMARig.dataOffset
        let destination = CBDMARig.dataOffset + 0x100
        for i in 0..<3 {
            rig.region.bytes[source + i] = UInt8(0xa0 + i)
            rig.place(i, size: 1, source: rig.iova(source + i), destination: rig.iova(destination + i), next: rig.descriptor(i + 1))
        }
        try rig.start(at: rig.descriptor(0), count: 2)
        #expect(Array(rig.region.bytes[destination..<destination + 3]) == [0xa0, 0xa1, 0])
        #expect(try rig.status == rig.descriptor(1) | State.done)
        try rig.write(UInt16(3), Channel.dmaCount)
        #expect(Array(rig.region.bytes[destination..<destination + 3]) == [0xa0, 0xa1, 0xa2])
        #expect(try rig.status == rig.descriptor(2) | State.done)
    }

    @Test("SUSPEND after DONE; DMACOUNT then waits for RESUME, while a new CHAINADDR restarts the channel at once")
    func suspendAndResume() throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        let size = 64
        rig.fillShiftPattern(size: size)
        rig.placeShift(0, size: size)
        try rig.start(at: rig.descriptor(0), count: 1)
        try rig.write(UInt8(0x04), Channel.command)
        #expect(try rig.status & 7 == State.suspended)
        try rig.write(UInt16(2), Channel.dmaCount)
        #expect(try rig.status & 7 == State.suspended)
        #expect(rig.shifted(1, size: size))
        try rig.write(UInt8(0x10), Channel.command)
        #expect(try rig.status == rig.descriptor(0) | State.done)
        #expect(rig.shifted(2, size: size))
        try rig.write(UInt8(0x04), Channel.command)
        try rig.start(at: rig.descriptor(0), count: 1)
        #expect(try rig.status == rig.descriptor(0) | State.done)
        #expect(rig.shifted(3, size: size))
    }

    // MARK: Errors

    @Test(
        "a copy from or to an unmapped IOVA halts with READ_DATA_ERR or WRITE_DATA_ERR (in CHANERR_INT too), no interrupt, until CHANERR is cleared",
        arguments: [(true, UInt32(0x100)), (false, UInt32(0x200))])
    func unmapped(fromUnmapped: Bool, error: UInt32) throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        try rig.write(UInt8(0x08), 0x03)
        let data = rig.iova(CBDMARig.dataOffset)
        rig.region.bytes[CBDMARig.dataOffset + 0x100] = 0x3c
        rig.place(
            0, size: 64, control: Descriptor.interrupt | Descriptor.completion, source: fromUnmapped ? CBDMARig.unmapped : data,
            destination: fromUnmapped ? data + 0x100 : CBDMARig.unmapped)
        let faults = rig.machine.faultCount
        try rig.start(at: rig.descriptor(0), count: 1)
        #expect(try rig.status == State.halted)  // nothing completed
        #expect(try rig.read(Channel.error, width: 4) == UInt64(error))
        #expect(try rig.device.device.readConfig(UInt32.self, at: 0x180) == error)
        #expect(try rig.read(Channel.current) == rig.descriptor(0))
        #expect(rig.interrupt.read() == nil)
        #expect(rig.completion == 0)
        #expect(rig.region.bytes[CBDMARig.dataOffset + 0x100] == 0x3c)
        #expect(rig.machine.faultCount == faults + 1)

        try rig.write(UInt16(2), Channel.dmaCount)
        #expect(rig.machine.faultCount == faults + 1)
        try rig.write(error, Channel.error)
        try rig.write(UInt16(3), Channel.dmaCount)  // retries the descriptor it stopped at
        #expect(rig.machine.faultCount == faults + 2)
    }

    enum DescriptorFault: String, CaseIterable, Sendable {
        case zeroSize, oversize, xorOperation, misalignedChain, unmappedChain, misalignedNext, unmappedNext
    }

    @Test(
        "descriptor errors halt the channel on the descriptor with the CHANERR bit registers.h names; ERR_COMPLETION_EN writes HALTED",
        arguments: DescriptorFault.allCases)
    func descriptorFault(_ fault: DescriptorFault) throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        let data = rig.iova(CBDMARig.dataOffset)
        var chain = rig.descriptor(0)
        var count: UInt16 = 1
        let error: UInt64
        let stopped: UInt64
        var completed: UInt64 = 0
        switch fault {
        case .zeroSize, .oversize:
            rig.place(0, size: fault == .zeroSize ? 0 : (1 << 20) + 1, source: data, destination: data)
            (error, stopped) = (0x800, chain)  // LENGTH_ERR
        case .xorOperation:
            rig.place(0, size: 8, control: 0x87 << 24, source: data, destination: data)
            (error, stopped) = (0x400, chain)  // CONTROL_ERR
        case .misalignedChain, .unmappedChain:
            chain = fault == .unmappedChain ? CBDMARig.unmapped : chain + 8
            (error, stopped) = (0x10, chain)  // CHAIN_ADDR_VALUE_ERR
        case .misalignedNext, .unmappedNext:
            let next = fault == .unmappedNext ? CBDMARig.unmapped : rig.descriptor(1) + 8
            rig.place(0, size: 8, source: data, destination: data + 8, next: next)
            count = 2
            completed = chain
            (error, stopped) = (fault == .unmappedNext ? 0x4 : 0x8, next)  // NEXT_ADDR_ERR, NEXT_DESC_ALIGN_ERR
        }
        try rig.start(at: chain, count: count, control: Control.run | Control.errorCompletion)
        #expect(try rig.status == completed | State.halted)
        #expect(try rig.read(Channel.error, width: 4) == error)
        #expect(try rig.read(Channel.current) == stopped)
        #expect(rig.completion == completed | State.halted)
    }

    @Test("without ANY_ERR_ABORT_EN data errors are logged and the chain goes on to DONE; CHANERR is RW1C")
    func dataErrorsWithoutAbort() throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        let data = CBDMARig.dataOffset
        rig.region.bytes[data] = 0x5a
        rig.place(0, size: 1, source: CBDMARig.unmapped, destination: rig.iova(data + 1), next: rig.descriptor(1))
        rig.place(1, size: 1, source: rig.iova(data), destination: CBDMARig.unmapped, next: rig.descriptor(2))
        rig.place(2, size: 1, source: rig.iova(data), destination: rig.iova(data + 2), next: rig.descriptor(3))
        try rig.start(at: rig.descriptor(0), count: 3, control: Control.rearm)
        #expect(try rig.status == rig.descriptor(2) | State.done)
        #expect(rig.region.bytes[data + 2] == 0x5a)
        #expect(try rig.read(Channel.error, width: 4) == 0x300)
        try rig.write(UInt32(0), Channel.error)
        #expect(try rig.read(Channel.error, width: 4) == 0x300)
        try rig.write(UInt32(0x100), Channel.error)
        #expect(try rig.read(Channel.error, width: 4) == 0x200)
        try rig.write(UInt8(0x02), Channel.error + 1)
        #expect(try rig.read(Channel.error, width: 4) == 0)
    }

    @Test("DMAUNCERRSTS and CHANERR_INT in config space are RW1C", arguments: [0x148, 0x180])
    func configErrorLog(_ offset: Int) throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        rig.model.reportConfigStatus(offset, width: 4, 0x0110)
        #expect(try rig.device.device.readConfig(UInt32.self, at: offset) == 0x0110)
        try rig.device.device.writeConfig(UInt32(0), at: offset)
        #expect(try rig.device.device.readConfig(UInt32.self, at: offset) == 0x0110)
        try rig.device.device.writeConfig(UInt32(0x10), at: offset)
        #expect(try rig.device.device.readConfig(UInt32.self, at: offset) == 0x0100)
        try rig.device.device.writeConfig(UInt32.max, at: offset)
        #expect(try rig.device.device.readConfig(UInt32.self, at: offset) == 0)
    }

    @Test("CHANERRMASK_INT keeps masked errors out of CHANERR_INT; CHANERR still has them")
    func internalErrorMask() throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        try rig.device.device.writeConfig(UInt32(0x100), at: 0x184)
        rig.place(0, size: 8, source: CBDMARig.unmapped, destination: rig.iova(CBDMARig.dataOffset))
        try rig.start(at: rig.descriptor(0), count: 1)
        #expect(try rig.read(Channel.error, width: 4) == 0x100)
        #expect(try rig.device.device.readConfig(UInt32.self, at: 0x180) == 0)
    }

    // MARK: Interrupts

    @Test(
        "int_en signals MSI-X vector 0 if INTRCTRL has MASTER_INT_EN or MSIX_VECTOR_CONTROL, once per INT_REARM, with ATTNSTATUS and INT_STATUS",
        arguments: [(UInt8(0x00), false), (0x01, true), (0x08, true)])
    func completionInterrupt(interruptControl: UInt8, delivered: Bool) throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        try rig.write(interruptControl, 0x03)
        let data = rig.iova(CBDMARig.dataOffset)
        rig.place(0, size: 8, control: Descriptor.interrupt, source: data, destination: data + 8)
        try rig.start(at: rig.descriptor(0), count: 1)
        #expect(rig.interrupt.read() == (delivered ? 1 : nil))
        #expect(try rig.read(Channel.control, width: 2) == UInt64(Control.abort))  // INT_REARM taken
        #expect(try rig.read(0x04, width: 4) == 1)
        #expect(try rig.read(0x03, width: 1) == UInt64(interruptControl | 0x02 | (interruptControl & 0x01 != 0 ? 0x04 : 0)))

        try rig.write(UInt16(2), Channel.dmaCount)  // not rearmed: silent
        #expect(rig.interrupt.read() == nil)
        try rig.write(Control.run, Channel.control)
        #expect(try rig.read(0x04, width: 4) == 0)
        try rig.write(UInt16(3), Channel.dmaCount)
        #expect(rig.interrupt.read() == (delivered ? 1 : nil))
    }

    @Test("ERR_INT_EN signals a halt unless CHANERR_MASK masks the error", arguments: [UInt32(0), 0x100])
    func errorInterrupt(mask: UInt32) throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        try rig.write(UInt8(0x08), 0x03)
        try rig.write(mask, Channel.errorMask)
        rig.place(0, size: 8, source: CBDMARig.unmapped, destination: rig.iova(CBDMARig.dataOffset))
        try rig.start(at: rig.descriptor(0), count: 1, control: Control.run | Control.errorInterrupt)
        #expect(try rig.status == State.halted)
        #expect(rig.interrupt.read() == (mask == 0 ? 1 : nil))
    }

    // MARK: Reset

    @Test("a function reset (which vfio-pci cannot issue: no FLR, no PM reset) brings back power-on registers")
    func functionReset() throws {
        let rig = try CBDMARig()
        defer { rig.close() }
        try rig.write(UInt8(0x09), 0x03)
        try rig.write(UInt8(0x01), 0x02)
        rig.place(0, size: 8, source: rig.iova(CBDMARig.dataOffset), destination: rig.iova(CBDMARig.dataOffset + 8))
        try rig.start(at: rig.descriptor(0), count: 1)
        rig.model.resetFunction()
        rig.model.writeConfig(0x04, width: 2, 0x0002)  // memory decode back on
        #expect(rig.model.readBAR(0, offset: 0x00, width: 8) == 0x1401)
        #expect(rig.model.readBAR(0, offset: Channel.status, width: 8) == State.halted)
        #expect(rig.model.readBAR(0, offset: Channel.chainAddress, width: 8) == 0)
        #expect(rig.model.readBAR(0, offset: Channel.control, width: 2) == 0)
    }
}
