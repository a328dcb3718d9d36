import DeviceModels
import Machine
import PCIBus
import SampleDrivers
import Testing
import VFIO

/// A bare NVMe host for the conformance tables: the controller at 0000:5e:00.0 of the default
/// machine, opened through VFIO and enabled with queues of the host's own, whose commands it
/// submits without waiting — so a command can stay outstanding (an Asynchronous Event Request)
/// or wait behind a full completion queue — and whose completions it reaps with dword 0.
///
/// One 1 MiB DMA region (above IOVA 1 MiB, so IOVA 0 is unmapped): the admin queues (32 entries), I/O queue pair 1 (64 entries, MSI-X
/// vector 1), an Identify/log buffer and 64 KiB of data at `Layout`'s offsets.
final class NVMeHost {
    static let address = PCIAddress(parsing: "0000:5e:00.0")!

    enum Layout {
        static let adminSubmission = 0x0000
        static let adminCompletion = 0x1000
        static let ioSubmission = 0x2000
        static let ioCompletion = 0x3000
        /// 8 KiB: an Identify structure, a log page, Dataset Management ranges.
        static let buffer = 0x4000
        /// 64 KiB of data, page aligned.
        static let data = 0x10000
    }

    /// A queue pair as the host keeps it.
    struct Queue {
        let id: UInt32
        let entries: UInt32
        let submission: Int
        let completion: Int
        var tail: UInt32 = 0
        var head: UInt32 = 0
        var phase = true
        var nextIdentifier: UInt16 = 0x100
    }

    /// A completion as reaped (§4.6).
    struct Reaped: CustomStringConvertible {
        let identifier: UInt16
        let status: NVMeStatus
        let result: UInt32
        let submissionHead: UInt16
        let submissionQueue: UInt16
        var description: String { "CID \(identifier): \(status), DW0 0x\(String(result, radix: 16))" }
    }

    let machine: SimulatedMachine
    let device: UserspaceDevice
    let region: DMARegion
    /// MSI-X vectors 0 (admin) and 1 (I/O queue 1).
    let vectors: [EventFD]
    var admin = Queue(id: 0, entries: 32, submission: Layout.adminSubmission, completion: Layout.adminCompletion)
    var io = Queue(id: 1, entries: 64, submission: Layout.ioSubmission, completion: Layout.ioCompletion)
    var controller: NVMeController { machine.devices[Self.address] as! NVMeController }

    /// The controller enabled with the admin queues and, with `ioQueue`, I/O queue pair 1.
    init(ioQueue: Bool = true) throws {
        machine = try SimulatedMachine.load(machine: "default")
        device = try UserspaceDevice(Self.address, in: machine.vfio)
        // IOVAs from 0 stay unmapped: a zero PRP or list entry faults instead of reaching the queues.
        try device.unmapDMA(try device.mapDMA(size: 4096))
        region = try device.mapDMA(size: 1 << 20)
        vectors = [try EventFD(), try EventFD()]
        try device.setBusMaster(true)
        try device.device.enableInterrupts(.msix, eventFDs: vectors.map(\.fd))
        try enable()
        if ioQueue { try createIOQueuePair() }
    }

    func close() { device.close() }

    /// CC.EN 1→0 (a controller reset), then AQA/ASQ/ACQ and CC.EN = 1 with 64/16-byte entries.
    func enable() throws {
        try write32(0x14, 0)
        admin = Queue(id: 0, entries: admin.entries, submission: Layout.adminSubmission, completion: Layout.adminCompletion)
        io = Queue(id: 1, entries: io.entries, submission: Layout.ioSubmission, completion: Layout.ioCompletion)
        region.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        try write32(0x24, (admin.entries - 1) << 16 | (admin.entries - 1))
        try device.device.writeRegister(iova(Layout.adminSubmission), bar: 0, offset: 0x28)
        try device.device.writeRegister(iova(Layout.adminCompletion), bar: 0, offset: 0x30)
        try write32(0x14, 4 << 20 | 6 << 16 | 1)
        try #require(try read32(0x1c) == 1, "CSTS.RDY after CC.EN")
    }

    /// Create I/O Completion Queue 1 (IEN, vector 1) and Submission Queue 1 on it.
    func createIOQueuePair() throws {
        let size = (io.entries - 1) << 16 | io.id
        let cq = try run(NVMeCommand(opcode: 0x05, prp1: iova(io.completion), cdw10: size, cdw11: 1 << 16 | 0b11))
        let sq = try run(NVMeCommand(opcode: 0x01, prp1: iova(io.submission), cdw10: size, cdw11: io.id << 16 | 1))
        try #require(cq.status == .success && sq.status == .success, "I/O queue pair 1: \(cq), \(sq)")
    }

    func iova(_ offset: Int) -> UInt64 { region.iova + UInt64(offset) }
    func read32(_ offset: UInt64) throws -> UInt32 { try device.device.readRegister(UInt32.self, bar: 0, offset: offset) }
    func read64(_ offset: UInt64) throws -> UInt64 { try device.device.readRegister(UInt64.self, bar: 0, offset: offset) }
    func write32(_ offset: UInt64, _ value: UInt32) throws { try device.device.writeRegister(value, bar: 0, offset: offset) }

    /// `count` bytes of the region from `offset`.
    func bytes(_ offset: Int, _ count: Int) -> [UInt8] { Array(region.bytes[offset..<offset + count]) }
    func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T { T(littleEndian: region.bytes.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    func store<T: FixedWidthInteger>(_ value: T, at offset: Int) { region.bytes.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self) }

    /// Stand-ins for IOVAs in commands built before there is a host (the conformance tables'),
    /// resolved when submitted: the buffer and the data area, plus an offset in the low 40 bits.
    static let bufferStandIn: UInt64 = 0xb0 << 40
    static let dataStandIn: UInt64 = 0xd0 << 40

    /// `prp` with a stand-in replaced by the IOVA it stands for.
    func resolve(_ prp: UInt64) -> UInt64 {
        switch prp >> 40 {
        case Self.bufferStandIn >> 40: iova(Layout.buffer) + prp & 0xff_ffff_ffff
        case Self.dataStandIn >> 40: iova(Layout.data) + prp & 0xff_ffff_ffff
        default: prp
        }
    }

    /// Places `command` at the queue's tail with the next command identifier (and `flags`, FUSE
    /// and PSDT, in CDW0 15:8) and rings SQyTDBL.
    @discardableResult
    func submit(_ command: NVMeCommand, on queue: inout Queue, flags: UInt32 = 0) throws -> UInt16 {
        let identifier = queue.nextIdentifier
        queue.nextIdentifier &+= 1
        let (prp1, prp2) = (resolve(command.prp1), resolve(command.prp2))
        let dwords: [UInt32] = [
            UInt32(command.opcode) | flags & 0xff00 | UInt32(identifier) << 16, command.namespace, 0, 0, 0, 0,
            UInt32(truncatingIfNeeded: prp1), UInt32(truncatingIfNeeded: prp1 >> 32),
            UInt32(truncatingIfNeeded: prp2), UInt32(truncatingIfNeeded: prp2 >> 32),
            command.cdw10, command.cdw11, command.cdw12, command.cdw13, command.cdw14, command.cdw15,
        ]
        for (n, dword) in dwords.enumerated() { store(dword, at: queue.submission + Int(queue.tail) * 64 + 4 * n) }
        queue.tail = (queue.tail + 1) % queue.entries
        try write32(0x1000 + 8 * UInt64(queue.id), queue.tail)
        return identifier
    }

    /// The completion at the queue's head if its phase tag says it is new (then the head moves
    /// and CQyHDBL is rung); nil when there is none.
    func reap(_ queue: inout Queue) throws -> Reaped? {
        let entry = queue.completion + Int(queue.head) * 16
        let dw3 = load(UInt32.self, at: entry + 12)
        guard (dw3 >> 16 & 1 != 0) == queue.phase else { return nil }
        let dw2 = load(UInt32.self, at: entry + 8)
        let reaped = Reaped(
            identifier: UInt16(truncatingIfNeeded: dw3), status: NVMeStatus(field: UInt16(dw3 >> 17)), result: load(UInt32.self, at: entry),
            submissionHead: UInt16(truncatingIfNeeded: dw2), submissionQueue: UInt16(dw2 >> 16))
        queue.head = (queue.head + 1) % queue.entries
        if queue.head == 0 { queue.phase.toggle() }
        try write32(0x1004 + 8 * UInt64(queue.id), queue.head)
        return reaped
    }

    /// Submits `command` to the admin queue (or I/O queue 1) and reaps its completion, which
    /// must be the next one there and carry its identifier.
    func run(_ command: NVMeCommand, io onIO: Bool = false) throws -> Reaped {
        let identifier = onIO ? try submit(command, on: &io) : try submit(command, on: &admin)
        let reaped = try #require(onIO ? try reap(&io) : try reap(&admin), "no completion for opcode 0x\(String(command.opcode, radix: 16))")
        try #require(reaped.identifier == identifier, "\(reaped) completed in place of CID \(identifier)")
        return reaped
    }

    /// Identify with CNS `cns` (and NSID) into the buffer: the 4 KiB structure.
    func identify(cns: UInt32, namespace: UInt32 = 0) throws -> [UInt8] {
        let reaped = try run(NVMeCommand(opcode: 0x06, namespace: namespace, prp1: iova(Layout.buffer), cdw10: cns))
        try #require(reaped.status == .success, "Identify CNS \(cns): \(reaped)")
        return bytes(Layout.buffer, 4096)
    }

    /// Get Log Page of `dwords` dwords from byte `offset` into the buffer (RAE as given).
    func logPage(_ lid: UInt32, dwords: UInt32, offset: UInt64 = 0, namespace: UInt32 = 0xffff_ffff, retain: Bool = false) throws -> Reaped {
        let numd = dwords - 1
        return try run(
            NVMeCommand(
                opcode: 0x02, namespace: namespace, prp1: iova(Layout.buffer), prp2: iova(Layout.buffer + 4096),
                cdw10: numd << 16 | (retain ? 1 << 15 : 0) | lid, cdw11: numd >> 16, cdw12: UInt32(truncatingIfNeeded: offset),
                cdw13: UInt32(truncatingIfNeeded: offset >> 32)))
    }
}
