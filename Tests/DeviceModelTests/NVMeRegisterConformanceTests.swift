import DeviceModels
import SampleDrivers
import Testing
import VFIO

/// BAR0 as a userspace driver maps and uses it (NVMe 1.4 §3.1): mmap-able through VFIO (VPCI-60),
/// 32- and 64-bit accesses, the controller registers' values, doorbells, and the MSI-X vectors a
/// queue per vector needs.
@Suite struct NVMeRegisterConformanceTests {
    struct Register: Sendable, CustomTestStringConvertible {
        let section: String
        let name: String
        let offset: UInt64
        let width: Int
        let value: UInt64
        var testDescription: String { "§\(section) \(name) (0x\(String(offset, radix: 16)), \(width) bytes) = 0x\(String(value, radix: 16))" }
    }

    /// Read once the host enabled the controller with 32-entry admin queues.
    static let enabled = [
        Register(section: "3.1.1", name: "CAP: MQES 1023, CQR, TO 10 s, DSTRD 0, CSS NVM, MPSMIN/MPSMAX 4 KiB", offset: 0x00, width: 8, value: 0x20_1401_03ff),
        Register(section: "3.1.1", name: "CAP, low dword", offset: 0x00, width: 4, value: 0x1401_03ff),
        Register(section: "3.1.1", name: "CAP, high dword", offset: 0x04, width: 4, value: 0x20),
        Register(section: "3.1.2", name: "VS: 1.4.0", offset: 0x08, width: 4, value: 0x0001_0400),
        Register(section: "3.1.5", name: "CC: IOCQES 4, IOSQES 6, EN", offset: 0x14, width: 4, value: 0x0046_0001),
        Register(section: "3.1.6", name: "CSTS: RDY", offset: 0x1c, width: 4, value: 1),
        Register(section: "3.1.8", name: "AQA: 32-entry admin queues", offset: 0x24, width: 4, value: 0x001f_001f),
        Register(section: "3.1.6", name: "CSTS and NSSR as one qword", offset: 0x1c, width: 8, value: 1),
    ]

    @Test("controller registers, dword and qword reads", arguments: enabled)
    func register(_ register: Register) throws {
        let host = try NVMeHost(ioQueue: false)
        defer { host.close() }
        let value = register.width == 8 ? try host.read64(register.offset) : UInt64(try host.read32(register.offset))
        #expect(value == register.value, "0x\(String(value, radix: 16))")
    }

    @Test("§3.1.9–10 ASQ and ACQ written as qwords read back as qwords and as dwords; bits 11:0 are reserved")
    func queueBases() throws {
        let host = try NVMeHost(ioQueue: false)
        defer { host.close() }
        try host.write32(0x14, 0)
        try host.device.device.writeRegister(UInt64(0x1234_5678_9abc_d000), bar: 0, offset: 0x28)
        try host.device.device.writeRegister(UInt64(0x0fed_cba9_8765_4fff), bar: 0, offset: 0x30)
        #expect(try host.read64(0x28) == 0x1234_5678_9abc_d000)
        #expect(try host.read32(0x2c) == 0x1234_5678 && host.read32(0x28) == 0x9abc_d000)
        #expect(try host.read64(0x30) == 0x0fed_cba9_8765_4000)
        try host.write32(0x34, 0)
        #expect(try host.read64(0x30) == 0x8765_4000)
    }

    @Test("VPCI-60: BAR0 — registers, doorbells, MSI-X table and PBA — is one 16 KiB memory region a driver may mmap; MSI-X has 33 vectors, one per queue")
    func mappable() throws {
        let host = try NVMeHost(ioQueue: false)
        defer { host.close() }
        let bar = try host.device.device.regionInfo(VFIORegionIndex.bar0.rawValue)
        #expect(bar.size == 16 << 10 && bar.flags.contains(.mmap) && bar.flags.contains(.read) && bar.flags.contains(.write), "\(bar)")
        let msix = try host.device.device.irqInfo(VFIOIRQIndex.msix.rawValue)
        #expect(msix.count == UInt32(NVMeController.maxIOQueues + 1), "\(msix)")
        #expect(NVMeController.msixVectors == 33)
    }

    @Test("§7.6.2 CC.SHN: CSTS.SHST reads 10b (complete) until SHN clears; CC.EN 1→0 clears RDY")
    func shutdown() throws {
        let host = try NVMeHost()
        defer { host.close() }
        try host.write32(0x14, try host.read32(0x14) | 1 << 14)
        #expect(try host.read32(0x1c) == 0b1001)
        try host.write32(0x14, 0)
        #expect(try host.read32(0x1c) == 0)
        try host.enable()
        #expect(try host.read32(0x1c) == 1)
    }

    @Test("§3.1 doorbells: each I/O queue's pair sits at 0x1000 + 8 × QID, the last (32) at 0x1100; a tail write there runs the queue")
    func lastDoorbell() throws {
        let host = try NVMeHost(ioQueue: false)
        defer { host.close() }
        #expect(try host.run(NVMeCommand(opcode: 0x05, prp1: host.iova(NVMeHost.Layout.ioCompletion), cdw10: 15 << 16 | 32, cdw11: 32 << 16 | 1)).status == .success)
        #expect(try host.run(NVMeCommand(opcode: 0x01, prp1: host.iova(NVMeHost.Layout.ioSubmission), cdw10: 15 << 16 | 32, cdw11: 32 << 16 | 1)).status == .success)
        var queue = NVMeHost.Queue(id: 32, entries: 16, submission: NVMeHost.Layout.ioSubmission, completion: NVMeHost.Layout.ioCompletion)
        let identifier = try host.submit(NVMeCommand(opcode: 0x00, namespace: 1), on: &queue)
        let reaped = try #require(try host.reap(&queue))
        #expect(reaped.identifier == identifier && reaped.status == .success && reaped.submissionQueue == 32)
    }
}
