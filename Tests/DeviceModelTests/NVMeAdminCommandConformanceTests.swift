import DeviceModels
import SampleDrivers
import Testing

/// Admin commands besides Identify, features, logs and events (NVMe 1.4 §5): Abort (§5.1), the
/// I/O queue commands (§5.3–5.6), and the optional commands this controller does not have,
/// which are Invalid Command Opcode as Identify's OACS, ONCS and KAS say.
@Suite struct NVMeAdminCommandConformanceTests {
    typealias Row = NVMeConformance
    typealias Layout = NVMeHost.Layout
    static let data = NVMeConformance.data

    static func createCompletionQueue(_ qid: UInt32, entries: UInt32 = 16, flags: UInt32 = 0b11, vector: UInt32 = 1, prp1: UInt64 = data) -> NVMeCommand {
        NVMeCommand(opcode: 0x05, prp1: prp1, cdw10: (entries &- 1) << 16 | qid, cdw11: vector << 16 | flags)
    }
    static func createSubmissionQueue(_ qid: UInt32, on cqid: UInt32, entries: UInt32 = 16) -> NVMeCommand {
        NVMeCommand(opcode: 0x01, prp1: data + 0x4000, cdw10: (entries &- 1) << 16 | qid, cdw11: cqid << 16 | 1)
    }

    static let rows: [Row] = [
        Row(
            section: "5.1",
            behaviour: "Abort of a command waiting behind a full completion queue: DW0 bit 0 is 0, and it completes with Command Abort Requested, unexecuted",
            ioQueue: false,
            steps: [
                .act { host in
                    // Completion queue 1 has two entries: one completion fills it.
                    #expect(try host.run(createCompletionQueue(1, entries: 2, prp1: host.iova(Layout.ioCompletion))).status == .success)
                    #expect(try host.run(NVMeCommand(opcode: 0x01, prp1: host.iova(Layout.ioSubmission), cdw10: 63 << 16 | 1, cdw11: 1 << 16 | 1)).status == .success)
                    var submissions = NVMeHost.Queue(id: 1, entries: 64, submission: Layout.ioSubmission, completion: Layout.ioCompletion)
                    var completions = NVMeHost.Queue(id: 1, entries: 2, submission: Layout.ioSubmission, completion: Layout.ioCompletion)
                    host.region.bytes[Layout.data] = 0xa5
                    let flush = try host.submit(NVMeCommand(opcode: 0x00, namespace: 1), on: &submissions)
                    let write = try host.submit(NVMeCommand(opcode: 0x01, namespace: 1, prp1: host.iova(Layout.data), cdw10: 200), on: &submissions)
                    let aborted = try host.run(NVMeCommand(opcode: 0x08, cdw10: UInt32(write) << 16 | 1))
                    #expect(aborted.status == .success && aborted.result & 1 == 0, "\(aborted)")
                    let done = try host.run(NVMeCommand(opcode: 0x08, cdw10: UInt32(flush) << 16 | 1))
                    #expect(done.status == .success && done.result & 1 == 1, "the Flush had completed: \(done)")
                    let first = try #require(try host.reap(&completions))
                    #expect(first.identifier == flush && first.status == .success)
                    let second = try #require(try host.reap(&completions))
                    #expect(second.identifier == write && second.status == .commandAbortRequested, "\(second)")
                    let untouched = host.controller.mediaContents(lba: 200, blocks: 1).allSatisfy { $0 == 0 }
                    #expect(untouched, "the Write never ran")
                }
            ]),
        Row(
            section: "5.1", behaviour: "Abort naming a submission queue that does not exist: DW0 bit 0 is 1, not aborted",
            steps: [.run(NVMeCommand(opcode: 0x08, cdw10: 0x0100_0009), .success, result: 1), .run(NVMeCommand(opcode: 0x08, cdw10: 0xffff), .success, result: 1)]),
        Row(
            section: "5.1", behaviour: "Abort of a command that already completed: DW0 bit 0 is 1",
            ioQueue: false, steps: [.run(NVMeCommand(opcode: 0x0a, cdw10: 0x07), .success), .run(NVMeCommand(opcode: 0x08, cdw10: 0x0100_0000), .success, result: 1)]),
        Row(section: "5.3", behaviour: "Create I/O Completion Queue 0: Invalid Queue Identifier", steps: [.run(createCompletionQueue(0), .invalidQueueIdentifier)]),
        Row(section: "5.3", behaviour: "Create I/O Completion Queue 33, past the 32 allocated: Invalid Queue Identifier", steps: [.run(createCompletionQueue(33), .invalidQueueIdentifier)]),
        Row(section: "5.3", behaviour: "Create I/O Completion Queue 1 again: Invalid Queue Identifier", steps: [.run(createCompletionQueue(1), .invalidQueueIdentifier)]),
        Row(section: "5.3", behaviour: "Create I/O Completion Queue of one entry: Invalid Queue Size", steps: [.run(createCompletionQueue(2, entries: 1), .invalidQueueSize)]),
        Row(section: "5.3", behaviour: "Create I/O Completion Queue of 1025 entries (CAP.MQES 1023): Invalid Queue Size", steps: [.run(createCompletionQueue(2, entries: 1025), .invalidQueueSize)]),
        Row(section: "5.3", behaviour: "Create I/O Completion Queue on vector 33, past the MSI-X table: Invalid Interrupt Vector", steps: [.run(createCompletionQueue(2, vector: 33), .invalidInterruptVector)]),
        Row(section: "5.3", behaviour: "Create I/O Completion Queue on vector 32, the last: success", steps: [.run(createCompletionQueue(32, vector: 32), .success)]),
        Row(section: "5.3", behaviour: "Create I/O Completion Queue not physically contiguous (CAP.CQR 1): Invalid Field in Command", steps: [.run(createCompletionQueue(2, flags: 0b10), .invalidField)]),
        Row(section: "5.3", behaviour: "Create I/O Completion Queue with PRP1 not page aligned: PRP Offset Invalid", steps: [.run(createCompletionQueue(2, prp1: data + 8), .prpOffsetInvalid)]),
        Row(section: "5.4", behaviour: "Create I/O Submission Queue on a completion queue that does not exist: Completion Queue Invalid", steps: [.run(createSubmissionQueue(2, on: 9), .completionQueueInvalid)]),
        Row(section: "5.4", behaviour: "Create I/O Submission Queue on the admin completion queue: Completion Queue Invalid", steps: [.run(createSubmissionQueue(2, on: 0), .completionQueueInvalid)]),
        Row(
            section: "5.4", behaviour: "Create I/O Submission Queue 2 sharing completion queue 1: success, and its commands complete there",
            steps: [
                .run(createSubmissionQueue(2, on: 1), .success),
                .act { host in
                    var second = NVMeHost.Queue(id: 2, entries: 16, submission: Layout.data + 0x4000, completion: Layout.ioCompletion)
                    let identifier = try host.submit(NVMeCommand(opcode: 0x00, namespace: 1), on: &second)
                    let reaped = try #require(try host.reap(&host.io))
                    #expect(reaped.identifier == identifier && reaped.submissionQueue == 2 && reaped.submissionHead == 1 && reaped.status == .success, "\(reaped)")
                },
            ]),
        Row(section: "5.5", behaviour: "Delete I/O Completion Queue 1 while submission queue 1 uses it: Invalid Queue Deletion", steps: [.run(NVMeCommand(opcode: 0x04, cdw10: 1), .invalidQueueDeletion)]),
        Row(section: "5.5", behaviour: "Delete I/O Completion Queue 0 (the admin queue): Invalid Queue Identifier", steps: [.run(NVMeCommand(opcode: 0x04, cdw10: 0), .invalidQueueIdentifier)]),
        Row(
            section: "5.6", behaviour: "Delete I/O Submission Queue 1, then its completion queue: success; then a second delete is Invalid Queue Identifier",
            steps: [
                .run(NVMeCommand(opcode: 0x00, cdw10: 1), .success), .run(NVMeCommand(opcode: 0x04, cdw10: 1), .success),
                .run(NVMeCommand(opcode: 0x00, cdw10: 1), .invalidQueueIdentifier),
            ]),
        Row(section: "5.6", behaviour: "Delete I/O Submission Queue 0 (the admin queue): Invalid Queue Identifier", steps: [.run(NVMeCommand(opcode: 0x00, cdw10: 0), .invalidQueueIdentifier)]),
    ]

    @Test("Abort and the I/O queue commands", arguments: rows)
    func adminCommand(_ row: NVMeConformance) throws { try row.run() }

    /// Admin opcodes the controller does not implement, with the field that says so.
    static let absent: [(opcode: UInt8, section: String, why: String)] = [
        (0x03, "5", "reserved"), (0x07, "5", "reserved"), (0x0d, "5.18", "Namespace Management: OACS bit 3 clear"),
        (0x10, "5.11", "Firmware Commit: OACS bit 2 clear"), (0x11, "5.12", "Firmware Image Download: OACS bit 2 clear"),
        (0x14, "5.7", "Device Self-test: OACS bit 4 clear"), (0x15, "5.17", "Namespace Attachment: OACS bit 3 clear"),
        (0x18, "5.16", "Keep Alive: KAS 0"), (0x19, "5.9", "Directive Send: OACS bit 5 clear"), (0x1a, "5.8", "Directive Receive: OACS bit 5 clear"),
        (0x7c, "5.10", "Doorbell Buffer Config: OACS bit 8 clear"), (0x80, "5.23", "Format NVM: OACS bit 1 clear"),
        (0x81, "5.26", "Security Send: OACS bit 0 clear"), (0x82, "5.25", "Security Receive: OACS bit 0 clear"),
        (0x84, "5.24", "Sanitize: SANICAP 0"), (0xc0, "5", "vendor specific"),
    ]

    static func hex(_ byte: UInt8) -> String { (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true) }

    @Test("optional admin commands the controller lacks: Invalid Command Opcode", arguments: absent.map { Row(section: $0.section, behaviour: "opcode \(Self.hex($0.opcode))h, \($0.why): Invalid Command Opcode", ioQueue: false, steps: [.run(NVMeCommand(opcode: $0.opcode, namespace: 1), .invalidOpcode)]) })
    func absentCommand(_ row: NVMeConformance) throws { try row.run() }
}
