import Glibc
import KernelRules
import SystemPackage
import VFIO

/// A completion's status (NVMe 1.4 §4.6.1.2): Status Code Type and Status Code, with the Do Not
/// Retry hint. Two statuses are equal when type and code are: DNR is advice, not what happened.
public struct NVMeStatus: Sendable, Equatable, CustomStringConvertible {
    public let codeType: UInt8
    public let code: UInt8
    public let doNotRetry: Bool

    public init(codeType: UInt8, code: UInt8, doNotRetry: Bool = false) {
        self.codeType = codeType
        self.code = code
        self.doNotRetry = doNotRetry
    }

    /// From the 15-bit Status Field of completion dword 3 (bits 31:17).
    public init(field: UInt16) {
        self.init(codeType: UInt8(field >> 8 & 7), code: UInt8(truncatingIfNeeded: field), doNotRetry: field & 0x4000 != 0)
    }

    public var isSuccess: Bool { self == .success }

    public static let success = NVMeStatus(codeType: 0, code: 0x00)
    public static let invalidOpcode = NVMeStatus(codeType: 0, code: 0x01)
    public static let invalidField = NVMeStatus(codeType: 0, code: 0x02)
    public static let dataTransferError = NVMeStatus(codeType: 0, code: 0x04)
    public static let commandAbortRequested = NVMeStatus(codeType: 0, code: 0x07)
    public static let invalidNamespace = NVMeStatus(codeType: 0, code: 0x0b)
    public static let commandSequenceError = NVMeStatus(codeType: 0, code: 0x0c)
    public static let prpOffsetInvalid = NVMeStatus(codeType: 0, code: 0x13)
    public static let lbaOutOfRange = NVMeStatus(codeType: 0, code: 0x80)
    public static let completionQueueInvalid = NVMeStatus(codeType: 1, code: 0x00)
    public static let invalidQueueIdentifier = NVMeStatus(codeType: 1, code: 0x01)
    public static let invalidQueueSize = NVMeStatus(codeType: 1, code: 0x02)
    public static let asyncEventRequestLimitExceeded = NVMeStatus(codeType: 1, code: 0x05)
    public static let invalidInterruptVector = NVMeStatus(codeType: 1, code: 0x08)
    public static let invalidLogPage = NVMeStatus(codeType: 1, code: 0x09)
    public static let invalidQueueDeletion = NVMeStatus(codeType: 1, code: 0x0c)
    public static let featureNotSaveable = NVMeStatus(codeType: 1, code: 0x0d)
    public static let featureNotNamespaceSpecific = NVMeStatus(codeType: 1, code: 0x0f)

    private static let names: [UInt16: String] = [
        0x000: "Successful Completion", 0x001: "Invalid Command Opcode", 0x002: "Invalid Field in Command",
        0x004: "Data Transfer Error", 0x007: "Command Abort Requested", 0x00b: "Invalid Namespace or Format",
        0x00c: "Command Sequence Error", 0x013: "PRP Offset Invalid", 0x080: "LBA Out of Range",
        0x100: "Completion Queue Invalid", 0x101: "Invalid Queue Identifier", 0x102: "Invalid Queue Size",
        0x105: "Asynchronous Event Request Limit Exceeded", 0x108: "Invalid Interrupt Vector", 0x109: "Invalid Log Page",
        0x10c: "Invalid Queue Deletion", 0x10d: "Feature Identifier Not Saveable", 0x10f: "Feature Not Namespace Specific",
    ]

    public static func == (a: NVMeStatus, b: NVMeStatus) -> Bool { a.codeType == b.codeType && a.code == b.code }

    public var description: String {
        let name = Self.names[UInt16(codeType) << 8 | UInt16(code)] ?? "status"
        let code = String(code, radix: 16)
        return "\(name) (SCT \(codeType), SC 0x\(code.count < 2 ? "0" + code : code))"
    }
}

/// A submission queue entry as a driver fills it (NVMe 1.4 §4.2); the queue assigns the command
/// identifier. Metadata pointer and CDW2–3 stay zero.
public struct NVMeCommand: Sendable {
    public var opcode: UInt8
    public var namespace: UInt32
    public var prp1: UInt64
    public var prp2: UInt64
    public var cdw10: UInt32
    public var cdw11: UInt32
    public var cdw12: UInt32
    public var cdw13: UInt32
    public var cdw14: UInt32
    public var cdw15: UInt32

    public init(
        opcode: UInt8, namespace: UInt32 = 0, prp1: UInt64 = 0, prp2: UInt64 = 0, cdw10: UInt32 = 0, cdw11: UInt32 = 0, cdw12: UInt32 = 0,
        cdw13: UInt32 = 0, cdw14: UInt32 = 0, cdw15: UInt32 = 0
    ) {
        self.opcode = opcode
        self.namespace = namespace
        self.prp1 = prp1
        self.prp2 = prp2
        self.cdw10 = cdw10
        self.cdw11 = cdw11
        self.cdw12 = cdw12
        self.cdw13 = cdw13
        self.cdw14 = cdw14
        self.cdw15 = cdw15
    }
}

/// A completion as the driver reaps it (NVMe 1.4 §4.6): the status and dword 0, the command's
/// result (a Set or Get Features value, say).
public struct NVMeCompletion: Sendable, Equatable {
    public let status: NVMeStatus
    public let result: UInt32

    public init(status: NVMeStatus, result: UInt32) {
        self.status = status
        self.result = result
    }
}

/// A userspace driver for the NVMe controller model (`DeviceModels.NVMeController`) that brings
/// it up as Linux's nvme driver does (`nvme_pci_configure_admin_queue`, `nvme_enable_ctrl`,
/// `nvme_identify_ctrl`, `nvme_set_queue_count`, `nvme_create_queue`): controller disabled, admin
/// queue programmed, CC.EN set and CSTS.RDY awaited within CAP.TO, Identify controller and
/// namespace 1, Set Features — Number of Queues asking for one I/O queue pair and reading the
/// grant from completion dword 0, then that I/O queue pair, its completion queue raising MSI-X
/// vector 1 (vector 0 is the admin queue's).
/// Commands complete by phase tag; each wait consumes the interrupt as a handler would.
///
/// The selftests' memcpy ops (VST-06) go through the namespace: `memcpy_start` submits a Write
/// from the source per copy (copy n at LBA n × max_memcpy_size / block size); `memcpy_wait`
/// reaps them, then Reads each back to the destination and reaps those — reads are submitted
/// only once the writes completed, since NVMe does not order commands. `send_msi` is a Flush.
public final class NVMeDriver: VFIOPCIDriver {
    public static let name = "nvme"
    public static let vendorID: UInt16 = 0x1234
    public static let deviceID: UInt16 = 0x5603

    enum Register {
        static let capabilities: UInt64 = 0x00
        static let configuration: UInt64 = 0x14
        static let status: UInt64 = 0x1c
        static let adminQueueAttributes: UInt64 = 0x24
        static let adminSubmissionQueue: UInt64 = 0x28
        static let adminCompletionQueue: UInt64 = 0x30
        static let doorbells: UInt64 = 0x1000
    }

    enum Opcode {
        static let deleteSubmissionQueue: UInt8 = 0x00
        static let createSubmissionQueue: UInt8 = 0x01
        static let deleteCompletionQueue: UInt8 = 0x04
        static let createCompletionQueue: UInt8 = 0x05
        static let identify: UInt8 = 0x06
        static let setFeatures: UInt8 = 0x09
        static let flush: UInt8 = 0x00
        static let write: UInt8 = 0x01
        static let read: UInt8 = 0x02
    }

    /// A queue pair as the driver keeps it: where its rings lie in the driver's region, the
    /// submission tail, the completion head and the phase tag expected there.
    struct QueuePair {
        let id: UInt32
        let entries: UInt32
        let submissionOffset: Int
        let completionOffset: Int
        var tail: UInt32 = 0
        var head: UInt32 = 0
        var phase = true
        var nextIdentifier: UInt16 = 0
    }

    static let pageSize: UInt64 = 4096
    /// This driver's largest transfer: 128 KiB, less if MDTS says so.
    static let maxTransfer: UInt64 = 128 << 10
    static let prpListEntries = Int(maxTransfer / pageSize)
    // The driver's region: admin queues (64 entries), I/O queues (128), an Identify buffer, then
    // one PRP list per I/O submission queue slot.
    static let adminEntries: UInt32 = 64
    static let ioEntries: UInt32 = 128
    static let identifyOffset = 0x5000
    static let prpListOffset = 0x6000
    static let regionSize = UInt64(prpListOffset + Int(ioEntries) * prpListEntries * 8)

    public let device: UserspaceDevice
    /// MSI-X vector 1: I/O completions (`send_msi`'s interrupt).
    public let interrupt: EventFD
    /// MSI-X vector 0: admin completions.
    private let adminInterrupt: EventFD
    public private(set) var maxMemcpySize: UInt64 = 0
    public private(set) var maxMemcpyCount: UInt64 = 0
    /// From Identify: the controller's model number (MN) and namespace 1's size and block size.
    public private(set) var modelNumber = ""
    public private(set) var namespaceBlocks: UInt64 = 0
    public private(set) var blockSize: UInt64 = 0
    /// How many I/O queue pairs `initialize` asks Number of Queues for, as SPDK's
    /// `num_io_queues` controller option: the driver creates pair 1, the others are its user's.
    public var requestedIOQueues = 1
    /// What Set Features — Number of Queues granted: I/O submission and completion queues.
    public private(set) var grantedQueues = (submission: 0, completion: 0)
    private var region: DMARegion?
    private var doorbellStride: UInt64 = 4
    private var timeout = Duration.zero
    private var admin = QueuePair(id: 0, entries: adminEntries, submissionOffset: 0x0000, completionOffset: 0x1000)
    private var io = QueuePair(id: 1, entries: ioEntries, submissionOffset: 0x2000, completionOffset: 0x4000)
    private var copyInFlight: (destination: UInt64, blocks: UInt64, count: UInt64)?

    public init(_ device: UserspaceDevice) throws(VFIOError) {
        self.device = device
        interrupt = try EventFD()
        adminInterrupt = try EventFD()
    }

    public func initialize() throws(VFIOError) {
        let region = try driverRegion()
        copyInFlight = nil
        try device.setBusMaster(true)
        let capabilities = try device.device.readRegister(UInt64.self, bar: 0, offset: Register.capabilities)
        guard capabilities >> 37 & 1 != 0, capabilities >> 48 & 0xf == 0 else {
            throw VFIOError(.operationNotSupportedByDevice, rule: .VST_06, "\(Self.name): \(device.address) lacks the NVM command set or 4 KiB pages (CAP)")
        }
        doorbellStride = 4 << (capabilities >> 32 & 0xf)
        timeout = .milliseconds(500 * Int(capabilities >> 24 & 0xff))
        if try read32(Register.configuration) & 1 != 0 {
            try write32(Register.configuration, 0)
            try waitForStatus(ready: false)
        }
        region.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        admin = QueuePair(id: 0, entries: Self.adminEntries, submissionOffset: 0x0000, completionOffset: 0x1000)
        io = QueuePair(id: 1, entries: min(Self.ioEntries, UInt32(capabilities & 0xffff) + 1), submissionOffset: 0x2000, completionOffset: 0x4000)
        try write32(Register.adminQueueAttributes, (admin.entries - 1) << 16 | (admin.entries - 1))
        try device.device.writeRegister(region.iova + UInt64(admin.submissionOffset), bar: 0, offset: Register.adminSubmissionQueue)
        try device.device.writeRegister(region.iova + UInt64(admin.completionOffset), bar: 0, offset: Register.adminCompletionQueue)
        try device.device.enableInterrupts(.msix, eventFDs: [adminInterrupt.fd, interrupt.fd])
        // EN with the NVM command set, 4 KiB pages, 64-byte submission and 16-byte completion entries.
        try write32(Register.configuration, 4 << 20 | 6 << 16 | 1)
        try waitForStatus(ready: true)

        let identify = region.iova + UInt64(Self.identifyOffset)
        try expectSuccess(submitAdmin(NVMeCommand(opcode: Opcode.identify, prp1: identify, cdw10: 1)), "Identify controller")
        let data = UnsafeRawBufferPointer(rebasing: region.bytes[Self.identifyOffset..<Self.identifyOffset + Int(Self.pageSize)])
        modelNumber = String(decoding: data[24..<64], as: UTF8.self).trimmingSpaces
        let mdts = data[77]
        let transfer = mdts == 0 || mdts > 16 ? Self.maxTransfer : min(Self.maxTransfer, Self.pageSize << mdts)
        try expectSuccess(submitAdmin(NVMeCommand(opcode: Opcode.identify, namespace: 1, prp1: identify, cdw10: 0)), "Identify namespace 1")
        namespaceBlocks = data.load(as: UInt64.self).littleEndian
        let format = Int(data[26] & 0xf)
        let blockShift = data.load(fromByteOffset: 128 + 4 * format, as: UInt32.self).littleEndian >> 16 & 0xff
        guard (9...12).contains(blockShift) else {
            throw VFIOError(.operationNotSupportedByDevice, rule: .VST_06, "\(Self.name): namespace 1 has 2^\(blockShift)-byte blocks (512 … 4096 supported)")
        }
        blockSize = 1 << blockShift
        maxMemcpySize = transfer / blockSize * blockSize
        maxMemcpyCount = min(64, UInt64(io.entries - 1), namespaceBlocks / max(1, maxMemcpySize / blockSize))

        // Number of Queues (FID 07h, §5.21.1.7), before any I/O queue: NSQR and NCQR, 0's based;
        // NSQA (15:0) and NCQA (31:16) in DW0 say how many the controller allocated.
        let requested = UInt32(min(max(requestedIOQueues, 1), 0xffff) - 1)
        let queues = try runAdmin(NVMeCommand(opcode: Opcode.setFeatures, cdw10: 0x07, cdw11: requested << 16 | requested))
        try expectSuccess(queues.status, "Set Features (Number of Queues)")
        grantedQueues = (Int(queues.result & 0xffff) + 1, Int(queues.result >> 16) + 1)

        // The completion queue first (contiguous, interrupts on vector 1), then its submission queue.
        let queueSize = (io.entries - 1) << 16 | io.id
        try expectSuccess(
            submitAdmin(
                NVMeCommand(
                    opcode: Opcode.createCompletionQueue, prp1: region.iova + UInt64(io.completionOffset), cdw10: queueSize, cdw11: 1 << 16 | 0b11)),
            "Create I/O Completion Queue")
        try expectSuccess(
            submitAdmin(
                NVMeCommand(
                    opcode: Opcode.createSubmissionQueue, prp1: region.iova + UInt64(io.submissionOffset), cdw10: queueSize, cdw11: io.id << 16 | 1)),
            "Create I/O Submission Queue")
    }

    /// Deletes the I/O queues, shuts the controller down (CC.SHN, CSTS.SHST) and disables it.
    public func remove() throws(VFIOError) {
        try expectSuccess(submitAdmin(NVMeCommand(opcode: Opcode.deleteSubmissionQueue, cdw10: io.id)), "Delete I/O Submission Queue")
        try expectSuccess(submitAdmin(NVMeCommand(opcode: Opcode.deleteCompletionQueue, cdw10: io.id)), "Delete I/O Completion Queue")
        try write32(Register.configuration, try read32(Register.configuration) | 1 << 14)
        try waitForStatus(mask: 0xc, equals: 0x8)
        try write32(Register.configuration, 0)
        try waitForStatus(ready: false)
        try device.device.disableInterrupts(.msix)
        try device.setBusMaster(false)
        if let region { try device.unmapDMA(region) }
        region = nil
    }

    // MARK: Commands

    /// Writes `blocks` blocks at `lba` from `iova`; the command's status.
    public func write(lba: UInt64, from iova: UInt64, blocks: Int) throws(VFIOError) -> NVMeStatus {
        try submitIO(try dataCommand(Opcode.write, lba: lba, iova: iova, blocks: blocks))
    }

    /// Reads `blocks` blocks at `lba` into `iova`; the command's status.
    public func read(lba: UInt64, into iova: UInt64, blocks: Int) throws(VFIOError) -> NVMeStatus {
        try submitIO(try dataCommand(Opcode.read, lba: lba, iova: iova, blocks: blocks))
    }

    /// Runs one admin command and waits for its completion; its status.
    public func submitAdmin(_ command: NVMeCommand) throws(VFIOError) -> NVMeStatus { try runAdmin(command).status }

    /// Runs one admin command and waits for its completion: status and dword 0.
    public func runAdmin(_ command: NVMeCommand) throws(VFIOError) -> NVMeCompletion {
        let identifier = try enqueue(command, on: &admin)
        try ring(admin)
        let completion = try reap(&admin, identifier)
        _ = adminInterrupt.read()
        return completion
    }

    /// Runs one command on the I/O queue pair and waits for its completion.
    public func submitIO(_ command: NVMeCommand) throws(VFIOError) -> NVMeStatus {
        let identifier = try enqueue(command, on: &io)
        try ring(io)
        let status = try reap(&io, identifier).status
        _ = interrupt.read()
        return status
    }

    // MARK: VST-06 ops

    public func memcpyStart(source: UInt64, destination: UInt64, size: UInt64, count: UInt64) throws(VFIOError) {
        guard copyInFlight == nil else { throw VFIOError(.resourceBusy, rule: .VST_06, "\(Self.name): a memcpy is in progress") }
        guard size > 0, size <= maxMemcpySize, size % blockSize == 0, (1...maxMemcpyCount).contains(count) else {
            throw VFIOError(
                .invalidArgument, rule: .VST_06,
                "\(Self.name): memcpy of \(count) × \(size) bytes: whole \(blockSize)-byte blocks, at most \(maxMemcpyCount) × \(maxMemcpySize) bytes")
        }
        let blocks = size / blockSize
        for copy in 0..<count {
            _ = try enqueue(try dataCommand(Opcode.write, lba: copy * maxMemcpySize / blockSize, iova: source, blocks: Int(blocks)), on: &io)
        }
        try ring(io)
        copyInFlight = (destination, blocks, count)
    }

    public func memcpyWait() throws(VFIOError) -> String? {
        guard let copy = copyInFlight else { throw VFIOError(.invalidArgument, rule: .VST_06, "\(Self.name): no memcpy in progress") }
        copyInFlight = nil
        if let failure = try reapAll(copy.count) { return "Write from the source failed: \(failure)" }
        for n in 0..<copy.count {
            _ = try enqueue(try dataCommand(Opcode.read, lba: n * maxMemcpySize / blockSize, iova: copy.destination, blocks: Int(copy.blocks)), on: &io)
        }
        try ring(io)
        if let failure = try reapAll(copy.count) { return "Read to the destination failed: \(failure)" }
        return nil
    }

    /// A Flush on the I/O queue: its completion raises MSI-X vector 1, left on `interrupt`.
    public func sendMSI() throws(VFIOError) {
        let identifier = try enqueue(NVMeCommand(opcode: Opcode.flush, namespace: 1), on: &io)
        try ring(io)
        try expectSuccess(reap(&io, identifier).status, "Flush")
    }

    // MARK: Queues

    /// A Read or Write: PRP1 at `iova`; PRP2 the next page, or — over two pages — the PRP list
    /// kept for the submission queue slot the command takes.
    private func dataCommand(_ opcode: UInt8, lba: UInt64, iova: UInt64, blocks: Int) throws(VFIOError) -> NVMeCommand {
        guard let region, blockSize > 0 else { throw VFIOError(.invalidArgument, rule: .VST_06, "\(Self.name): not initialized") }
        guard blocks > 0, UInt64(blocks) <= maxMemcpySize / blockSize else {
            throw VFIOError(.invalidArgument, rule: .VST_06, "\(Self.name): \(blocks) blocks: 1 … \(maxMemcpySize / blockSize) per command")
        }
        let length = UInt64(blocks) * blockSize
        var command = NVMeCommand(
            opcode: opcode, namespace: 1, prp1: iova, cdw10: UInt32(truncatingIfNeeded: lba), cdw11: UInt32(truncatingIfNeeded: lba >> 32),
            cdw12: UInt32(blocks - 1))
        let firstLength = Self.pageSize - iova % Self.pageSize
        guard length > firstLength else { return command }
        let second = iova - iova % Self.pageSize &+ Self.pageSize
        guard length - firstLength > Self.pageSize else {
            command.prp2 = second
            return command
        }
        let listOffset = Self.prpListOffset + Int(io.tail) * Self.prpListEntries * 8
        let entries = (length - firstLength + Self.pageSize - 1) / Self.pageSize
        for n in 0..<entries {
            region.bytes.storeBytes(of: (second &+ n * Self.pageSize).littleEndian, toByteOffset: listOffset + Int(n) * 8, as: UInt64.self)
        }
        command.prp2 = region.iova + UInt64(listOffset)
        return command
    }

    /// Writes `command` at the pair's tail with the next command identifier; returns it.
    private func enqueue(_ command: NVMeCommand, on pair: inout QueuePair) throws(VFIOError) -> UInt16 {
        let region = try initialized(region)
        guard (pair.tail + 1) % pair.entries != pair.head else {
            throw VFIOError(.resourceBusy, rule: .VST_06, "\(Self.name): submission queue \(pair.id) is full")
        }
        let identifier = pair.nextIdentifier
        pair.nextIdentifier &+= 1
        let dwords: [UInt32] = [
            UInt32(command.opcode) | UInt32(identifier) << 16, command.namespace, 0, 0, 0, 0,
            UInt32(truncatingIfNeeded: command.prp1), UInt32(truncatingIfNeeded: command.prp1 >> 32),
            UInt32(truncatingIfNeeded: command.prp2), UInt32(truncatingIfNeeded: command.prp2 >> 32),
            command.cdw10, command.cdw11, command.cdw12, command.cdw13, command.cdw14, command.cdw15,
        ]
        let entry = pair.submissionOffset + Int(pair.tail) * 64
        for (n, dword) in dwords.enumerated() { region.bytes.storeBytes(of: dword.littleEndian, toByteOffset: entry + 4 * n, as: UInt32.self) }
        pair.tail = (pair.tail + 1) % pair.entries
        return identifier
    }

    /// The submission queue tail doorbell: SQyTDBL at 0x1000 + 2y × stride.
    private func ring(_ pair: QueuePair) throws(VFIOError) {
        try write32(Register.doorbells + UInt64(2 * pair.id) * doorbellStride, pair.tail)
    }

    /// The next completion, once its phase tag says it is new; moves the head and rings CQyHDBL.
    /// No completion means the controller failed (CSTS.CFS: `EIO`) or did not answer (`ETIMEDOUT`).
    private func reap(_ pair: inout QueuePair, _ identifier: UInt16? = nil) throws(VFIOError) -> NVMeCompletion {
        let region = try initialized(region)
        let entry = pair.completionOffset + Int(pair.head) * 16
        let dw3 = UInt32(littleEndian: region.bytes.load(fromByteOffset: entry + 12, as: UInt32.self))
        guard (dw3 >> 16 & 1 != 0) == pair.phase else {
            let fatal = try read32(Register.status) & 2 != 0
            throw VFIOError(
                fatal ? .ioError : .timedOut, rule: .VST_06,
                "\(Self.name): no completion on queue \(pair.id)\(fatal ? ": controller fatal status (CSTS.CFS)" : "")")
        }
        if let identifier, UInt16(truncatingIfNeeded: dw3) != identifier {
            throw VFIOError(.ioError, rule: .VST_06, "\(Self.name): completion for command \(UInt16(truncatingIfNeeded: dw3)), expected \(identifier)")
        }
        let result = UInt32(littleEndian: region.bytes.load(fromByteOffset: entry, as: UInt32.self))
        pair.head = (pair.head + 1) % pair.entries
        if pair.head == 0 { pair.phase.toggle() }
        try write32(Register.doorbells + UInt64(2 * pair.id + 1) * doorbellStride, pair.head)
        return NVMeCompletion(status: NVMeStatus(field: UInt16(dw3 >> 17)), result: result)
    }

    /// Reaps `count` I/O completions, consuming their interrupt; the first failure, if any.
    private func reapAll(_ count: UInt64) throws(VFIOError) -> NVMeStatus? {
        var failure: NVMeStatus?
        for _ in 0..<count {
            let status = try reap(&io).status
            if !status.isSuccess, failure == nil { failure = status }
        }
        _ = interrupt.read()
        return failure
    }

    /// The driver's own DMA region, mapped on first use; a second `initialize` (recovering a
    /// failed controller, say) reuses it.
    private func driverRegion() throws(VFIOError) -> DMARegion {
        if let region { return region }
        let region = try device.mapDMA(size: Self.regionSize)
        self.region = region
        return region
    }

    private func expectSuccess(_ status: NVMeStatus, _ what: String) throws(VFIOError) {
        guard status.isSuccess else { throw VFIOError(.ioError, rule: .VST_06, "\(Self.name): \(what) failed: \(status)") }
    }

    private func waitForStatus(ready: Bool) throws(VFIOError) { try waitForStatus(mask: 1, equals: ready ? 1 : 0) }

    /// Polls CSTS until `status & mask == value`, for at most CAP.TO; CSTS.CFS ends it with `EIO`.
    private func waitForStatus(mask: UInt32, equals value: UInt32) throws(VFIOError) {
        let deadline = ContinuousClock.now + timeout
        while true {
            let status = try read32(Register.status)
            if status & mask == value { return }
            guard status & 2 == 0 else {
                throw VFIOError(.ioError, rule: .VST_06, "\(Self.name): controller fatal status (CSTS 0x\(String(status, radix: 16)))")
            }
            guard ContinuousClock.now < deadline else {
                throw VFIOError(.timedOut, rule: .VST_06, "\(Self.name): CSTS 0x\(String(status, radix: 16)) after \(timeout) (CAP.TO)")
            }
            usleep(1000)
        }
    }

}

extension String {
    /// Without the trailing spaces that pad Identify's ASCII fields.
    fileprivate var trimmingSpaces: String {
        var text = Substring(self)
        while text.last == " " || text.last == "\0" { text = text.dropLast() }
        return String(text)
    }
}
