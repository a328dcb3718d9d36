import SampleDrivers
import Testing

/// Asynchronous Event Request (NVMe 1.4 §5.2): requests stay outstanding until an event, up to
/// AERL + 1 of them; an event completes one with its type, information and log page in DW0; its
/// type stays masked until the host reads that log page without RAE.
@Suite struct NVMeAsyncEventConformanceTests {
    typealias Row = NVMeConformance
    static let request = NVMeCommand(opcode: 0x0c)
    /// DW0 of the events the controller reports: type (2:0), information (15:8), log page (23:16).
    static let invalidDoorbellRegister: UInt32 = 0x01_00_00
    static let invalidDoorbellWriteValue: UInt32 = 0x01_01_00
    static let temperatureThreshold: UInt32 = 0x02_01_01

    /// Writes the submission queue tail doorbell of queue 7, which does not exist.
    static let absentQueueDoorbell = Row.Step.act { host in try host.write32(0x1000 + 8 * 7, 1) }
    /// Writes I/O queue 1's tail doorbell past its 64 entries.
    static let outOfRangeDoorbell = Row.Step.act { host in try host.write32(0x1000 + 8 * 1, 64) }

    static func errorLog(retain: Bool) -> NVMeCommand {
        NVMeCommand(opcode: 0x02, prp1: NVMeConformance.buffer, prp2: NVMeConformance.buffer + 4096, cdw10: 1023 << 16 | (retain ? 1 << 15 : 0) | 0x01)
    }

    static let rows: [Row] = [
        Row(
            section: "5.2", behaviour: "AERL + 1 (4) requests stay outstanding; the fifth completes at once with Asynchronous Event Request Limit Exceeded",
            steps: [
                .post(request), .post(request), .post(request), .post(request), .quiet,
                .run(NVMeCommand(opcode: 0x0a, cdw10: 0x07), .success, result: 31 << 16 | 31),
                .post(request), .completes(posted: 4, .asyncEventRequestLimitExceeded), .quiet,
            ]),
        Row(
            section: "5.2", behaviour: "a doorbell of a queue that does not exist completes a request: error status, Write to Invalid Doorbell Register, log 01h",
            steps: [.post(request), .quiet, absentQueueDoorbell, .completes(posted: 0, .success, result: invalidDoorbellRegister), .quiet]),
        Row(
            section: "5.2", behaviour: "an event before any request waits for the request, which then completes at once",
            steps: [outOfRangeDoorbell, .quiet, .post(request), .completes(posted: 0, .success, result: invalidDoorbellWriteValue)]),
        Row(
            section: "5.2", behaviour: "a reported type stays masked until its log page is read without RAE (RAE 1 keeps it masked)",
            steps: [
                .post(request), .post(request), absentQueueDoorbell, .completes(posted: 0, .success, result: invalidDoorbellRegister),
                outOfRangeDoorbell, .quiet,
                .run(errorLog(retain: true), .success), .quiet,
                .run(errorLog(retain: false), .success), .completes(posted: 1, .success, result: invalidDoorbellWriteValue),
            ]),
        Row(
            section: "5.2", behaviour: "the same event raised twice while it waits is reported once",
            steps: [
                absentQueueDoorbell, absentQueueDoorbell, .post(request), .completes(posted: 0, .success, result: invalidDoorbellRegister),
                .run(errorLog(retain: false), .success), .post(request), .quiet,
            ]),
        Row(
            section: "5.21.1.4", behaviour: "a temperature threshold below the composite temperature, SMART warnings enabled: SMART/Health, Temperature Threshold, log 02h",
            steps: [
                .run(NVMeCommand(opcode: 0x09, cdw10: 0x0b, cdw11: 0x02), .success), .post(request), .quiet,
                .run(NVMeCommand(opcode: 0x09, cdw10: 0x04, cdw11: 300), .success),
                .completes(posted: 0, .success, result: temperatureThreshold),
                .run(NVMeCommand(opcode: 0x02, namespace: 0xffff_ffff, prp1: NVMeConformance.buffer, cdw10: 127 << 16 | 0x02), .success),
                .act { host in #expect(host.bytes(NVMeHost.Layout.buffer, 1) == [0x02], "SMART critical warning: temperature") },
            ]),
        Row(
            section: "5.21.1.11", behaviour: "the same threshold with SMART warnings disabled: no event, the critical warning still set",
            steps: [
                .post(request), .run(NVMeCommand(opcode: 0x09, cdw10: 0x04, cdw11: 1 << 20 | 315), .success), .quiet,
                .run(NVMeCommand(opcode: 0x02, namespace: 0xffff_ffff, prp1: NVMeConformance.buffer, cdw10: 127 << 16 | 0x02), .success),
                .act { host in #expect(host.bytes(NVMeHost.Layout.buffer, 1) == [0x02]) },
            ]),
        Row(
            section: "5.1", behaviour: "Abort of an outstanding request (CID 100h, the host's first): it completes with Command Abort Requested, Abort's DW0 bit 0 is 0",
            ioQueue: false,
            steps: [
                .post(request), .post(NVMeCommand(opcode: 0x08, cdw10: 0x100 << 16)),
                .completes(posted: 0, .commandAbortRequested), .completes(posted: 1, .success, result: 0), .quiet,
            ]),
        Row(
            section: "7.3.2", behaviour: "a controller reset ends outstanding requests without completions: AERL + 1 may be outstanding again",
            steps: [
                .post(request), .post(request), .post(request), .post(request),
                .act { host in try host.enable() },
                .post(request), .post(request), .post(request), .post(request), .quiet,
            ]),
        Row(
            section: "4.2", behaviour: "a request with FUSE set (fused operations unsupported): Invalid Field in Command at once, not held",
            steps: [
                .act { host in
                    let identifier = try host.submit(request, on: &host.admin, flags: 0x0100)
                    let reaped = try #require(try host.reap(&host.admin))
                    #expect(reaped.identifier == identifier && reaped.status == .invalidField, "\(reaped)")
                },
                .post(request), .post(request), .post(request), .post(request), .quiet,
            ]),
    ]

    @Test("Asynchronous Event Request", arguments: rows)
    func asyncEvent(_ row: NVMeConformance) throws { try row.run() }
}
