import SampleDrivers
import Testing

/// Set Features (NVMe 1.4 §5.21) and Get Features (§5.13), per feature (§5.21.1.x): the value set
/// is the value got, completion dword 0 carries it, and what a feature refuses fails as the
/// section says.
@Suite struct NVMeFeaturesConformanceTests {
    typealias Row = NVMeConformance

    static func set(_ fid: UInt32, _ cdw11: UInt32, nsid: UInt32 = 0, save: Bool = false) -> NVMeCommand {
        NVMeCommand(opcode: 0x09, namespace: nsid, cdw10: (save ? 1 << 31 : 0) | fid, cdw11: cdw11)
    }

    static func get(_ fid: UInt32, select: UInt32 = 0, cdw11: UInt32 = 0, nsid: UInt32 = 0) -> NVMeCommand {
        NVMeCommand(opcode: 0x0a, namespace: nsid, cdw10: select << 8 | fid, cdw11: cdw11)
    }

    static let rows: [Row] = [
        // Number of Queues (07h).
        Row(
            section: "5.21.1.7", behaviour: "Number of Queues: 4 and 3 asked, 4 and 3 granted in DW0 (NSQA 15:0, NCQA 31:16, 0's based); Get Features returns the grant",
            ioQueue: false, steps: [.run(set(0x07, 2 << 16 | 3), .success, result: 2 << 16 | 3), .run(get(0x07), .success, result: 2 << 16 | 3)]),
        Row(
            section: "5.21.1.7", behaviour: "Number of Queues: 65535 asked, 32 granted — no more than the MSI-X vectors (33) serve",
            ioQueue: false, steps: [.run(set(0x07, 0xfffe << 16 | 0xfffe), .success, result: 31 << 16 | 31)]),
        Row(
            section: "5.21.1.7", behaviour: "Number of Queues: before any Set Features, Get Features reports the 32 the controller allocates",
            ioQueue: false, steps: [.run(get(0x07), .success, result: 31 << 16 | 31)]),
        Row(section: "5.21.1.7", behaviour: "Number of Queues: NSQR FFFFh is Invalid Field in Command", ioQueue: false, steps: [.run(set(0x07, 0xffff), .invalidField)]),
        Row(section: "5.21.1.7", behaviour: "Number of Queues: NCQR FFFFh is Invalid Field in Command", ioQueue: false, steps: [.run(set(0x07, 0xffff << 16), .invalidField)]),
        Row(
            section: "5.21.1.7", behaviour: "Number of Queues after an I/O queue was created: Command Sequence Error",
            steps: [.run(set(0x07, 0), .commandSequenceError), .run(get(0x07), .success, result: 31 << 16 | 31)]),
        Row(
            section: "5.21.1.7", behaviour: "Number of Queues is enforced: with one pair granted, Create I/O Queue 2 is Invalid Queue Identifier; a controller reset restores the default",
            ioQueue: false,
            steps: [
                .run(set(0x07, 0), .success, result: 0),
                .run(NVMeCommand(opcode: 0x05, prp1: NVMeConformance.data, cdw10: 15 << 16 | 2, cdw11: 2 << 16 | 0b11), .invalidQueueIdentifier),
                .run(NVMeCommand(opcode: 0x05, prp1: NVMeConformance.data, cdw10: 15 << 16 | 1, cdw11: 1 << 16 | 0b11), .success),
                .act { host in try host.enable() },
                .run(get(0x07), .success, result: 31 << 16 | 31),
            ]),
        // Temperature Threshold (04h).
        Row(
            section: "5.21.1.4", behaviour: "Temperature Threshold: the over threshold (THSEL 0) defaults to WCTEMP, 343 K",
            steps: [.run(get(0x04), .success, result: 343), .run(get(0x04, select: 1), .success, result: 343)]),
        Row(
            section: "5.21.1.4", behaviour: "Temperature Threshold: an over threshold set is got back",
            steps: [.run(set(0x04, 350), .success), .run(get(0x04), .success, result: 350), .run(get(0x04, select: 1), .success, result: 343)]),
        Row(
            section: "5.21.1.4", behaviour: "Temperature Threshold: the under threshold (THSEL 1) defaults to 0 and keeps its own value",
            steps: [
                .run(get(0x04, cdw11: 1 << 20), .success, result: 1 << 20), .run(set(0x04, 1 << 20 | 280), .success),
                .run(get(0x04, cdw11: 1 << 20), .success, result: 1 << 20 | 280), .run(get(0x04), .success, result: 343),
            ]),
        Row(
            section: "5.21.1.4", behaviour: "Temperature Threshold: TMPSEL Fh (all sensors) sets the composite temperature's",
            steps: [.run(set(0x04, 0xf << 16 | 345), .success), .run(get(0x04), .success, result: 345)]),
        Row(section: "5.21.1.4", behaviour: "Temperature Threshold: THSEL 10b is Invalid Field in Command", steps: [.run(set(0x04, 2 << 20 | 300), .invalidField)]),
        Row(
            section: "5.21.1.4", behaviour: "Temperature Threshold: a sensor not implemented (TMPSEL 1) is Invalid Field in Command",
            steps: [.run(set(0x04, 1 << 16 | 300), .invalidField), .run(get(0x04, cdw11: 1 << 16), .invalidField)]),
        // Asynchronous Event Configuration (0Bh).
        Row(
            section: "5.21.1.11", behaviour: "Asynchronous Event Configuration: 0 by default; the SMART/Health warnings enabled are got back",
            steps: [.run(get(0x0b), .success, result: 0), .run(set(0x0b, 0x1f), .success), .run(get(0x0b), .success, result: 0x1f)]),
        // Arbitration (01h), Power Management (02h).
        Row(
            section: "5.21.1.1", behaviour: "Arbitration: AB 111b (no limit) by default; AB and the weights are got back",
            steps: [.run(get(0x01), .success, result: 7), .run(set(0x01, 0x0403_0201), .success), .run(get(0x01), .success, result: 0x0403_0201)]),
        Row(
            section: "5.21.1.2", behaviour: "Power Management: power state 0 with a workload hint is got back",
            steps: [.run(set(0x02, 1 << 5), .success), .run(get(0x02), .success, result: 1 << 5)]),
        Row(section: "5.21.1.2", behaviour: "Power Management: PS 1 past NPSS is Invalid Field in Command", steps: [.run(set(0x02, 1), .invalidField), .run(get(0x02), .success, result: 0)]),
        // Error Recovery (05h): namespace specific.
        Row(
            section: "5.21.1.5", behaviour: "Error Recovery (namespace specific): TLER set on NSID 1 is got back on NSID 1",
            steps: [.run(set(0x05, 100, nsid: 1), .success), .run(get(0x05, nsid: 1), .success, result: 100), .run(set(0x05, 50, nsid: 0xffff_ffff), .success), .run(get(0x05, nsid: 1), .success, result: 50)]),
        Row(
            section: "5.21.1.5", behaviour: "Error Recovery: DULBE without deallocated-block errors (NSFEAT.DAE 0) is Invalid Field in Command",
            steps: [.run(set(0x05, 1 << 16, nsid: 1), .invalidField)]),
        Row(
            section: "5.21.1.5", behaviour: "Error Recovery: NSID 0 is Invalid Namespace or Format, for Set and Get",
            steps: [.run(set(0x05, 100), .invalidNamespace), .run(get(0x05), .invalidNamespace)]),
        // Volatile Write Cache (06h).
        Row(
            section: "5.21.1.6", behaviour: "Volatile Write Cache: enabled by default (VWC present); WCE 0 is got back",
            steps: [.run(get(0x06), .success, result: 1), .run(set(0x06, 0), .success), .run(get(0x06), .success, result: 0), .run(get(0x06, select: 1), .success, result: 1)]),
        // Interrupt Coalescing (08h), Interrupt Vector Configuration (09h), Write Atomicity Normal (0Ah).
        Row(
            section: "5.21.1.8", behaviour: "Interrupt Coalescing: THR and TIME are got back",
            steps: [.run(set(0x08, 0x0a04), .success), .run(get(0x08), .success, result: 0x0a04)]),
        Row(
            section: "5.21.1.9", behaviour: "Interrupt Vector Configuration: CD per vector; the admin vector never coalesces",
            steps: [
                .run(get(0x09, cdw11: 5), .success, result: 5), .run(set(0x09, 1 << 16 | 5), .success),
                .run(get(0x09, cdw11: 5), .success, result: 1 << 16 | 5), .run(get(0x09, cdw11: 6), .success, result: 6),
                .run(get(0x09), .success, result: 1 << 16),
            ]),
        Row(
            section: "5.21.1.9", behaviour: "Interrupt Vector Configuration: vector 33, past the MSI-X table, is Invalid Field in Command",
            steps: [.run(set(0x09, 33), .invalidField), .run(get(0x09, cdw11: 33), .invalidField), .run(get(0x09, cdw11: 32), .success, result: 32)]),
        Row(
            section: "5.21.1.10", behaviour: "Write Atomicity Normal: DN is got back",
            steps: [.run(get(0x0a), .success, result: 0), .run(set(0x0a, 1), .success), .run(get(0x0a), .success, result: 1)]),
        // What the controller does not have.
        Row(
            section: "5.21.1.15", behaviour: "Keep Alive Timer with KAS 0: Invalid Field in Command, Set and Get",
            steps: [.run(set(0x0f, 1000), .invalidField), .run(get(0x0f), .invalidField)]),
        Row(section: "5.21.1.3", behaviour: "LBA Range Type (optional, absent): Invalid Field in Command", steps: [.run(get(0x03, nsid: 1), .invalidField)]),
        Row(section: "5.21.1.12", behaviour: "Autonomous Power State Transition (APSTA 0): Invalid Field in Command", steps: [.run(set(0x0c, 1), .invalidField)]),
        Row(section: "5.21.1.14", behaviour: "Timestamp (ONCS bit 6 clear): Invalid Field in Command", steps: [.run(get(0x0e), .invalidField)]),
        Row(section: "5.21", behaviour: "FID 00h (reserved): Invalid Field in Command", steps: [.run(set(0x00, 0), .invalidField), .run(get(0x00), .invalidField)]),
        // The Save and Select fields (ONCS bit 4), and NSID rules.
        Row(
            section: "5.21", behaviour: "SV set: Feature Identifier Not Saveable, and nothing changes",
            steps: [.run(set(0x0b, 0x02, save: true), .featureNotSaveable), .run(get(0x0b), .success, result: 0)]),
        Row(
            section: "5.21", behaviour: "NSID 1 on a feature that is not namespace specific: Feature Not Namespace Specific; NSID 2: Invalid Namespace or Format",
            steps: [.run(set(0x06, 0, nsid: 1), .featureNotNamespaceSpecific), .run(set(0x06, 0, nsid: 2), .invalidNamespace), .run(set(0x06, 0, nsid: 0xffff_ffff), .success)]),
        Row(
            section: "5.13", behaviour: "SEL 011b: the supported capabilities — changeable, and namespace specific for Error Recovery",
            steps: [.run(get(0x07, select: 3), .success, result: 0b100), .run(get(0x05, select: 3, nsid: 1), .success, result: 0b110)]),
        Row(
            section: "5.13", behaviour: "SEL 010b (saved): nothing is saveable, so the default",
            steps: [.run(set(0x08, 0x0101), .success), .run(get(0x08, select: 2), .success, result: 0), .run(get(0x08), .success, result: 0x0101)]),
        Row(section: "5.13", behaviour: "SEL 100b (reserved): Invalid Field in Command", steps: [.run(get(0x08, select: 4), .invalidField)]),
    ]

    @Test("Set Features and Get Features, per feature", arguments: rows)
    func feature(_ row: NVMeConformance) throws { try row.run() }
}
