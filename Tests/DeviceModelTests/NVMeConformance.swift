import SampleDrivers
import Testing

/// One row of an NVMe conformance table: the NVMe Base Specification 1.4 section it follows,
/// the behaviour, and the steps that show it on a fresh `NVMeHost` — commands with the status
/// (and completion dword 0) the section says they complete with, commands left outstanding,
/// and checks of what the controller wrote.
struct NVMeConformance: Sendable, CustomTestStringConvertible {
    enum Step: Sendable {
        /// Submit to the admin queue (or I/O queue 1) and reap: the status, and DW0 when given.
        case run(NVMeCommand, NVMeStatus, result: UInt32? = nil, io: Bool = false)
        /// Submit to the admin queue without reaping: the command completes later, or never.
        case post(NVMeCommand)
        /// The next admin completion is that of the `posted`th `.post` (from 0).
        case completes(posted: Int, NVMeStatus, result: UInt32? = nil)
        /// The admin completion queue holds nothing new.
        case quiet
        /// Anything else, with its own expectations: register writes, data to check.
        case act(@Sendable (NVMeHost) throws -> Void)
    }

    /// Stand-ins for the host's IOVAs in a row's commands (`NVMeHost.resolve`): the
    /// Identify/log buffer and the data area, plus an offset.
    static let buffer = NVMeHost.bufferStandIn
    static let data = NVMeHost.dataStandIn

    let section: String
    let behaviour: String
    var ioQueue = true
    let steps: [Step]

    var testDescription: String { "§\(section) \(behaviour)" }

    /// Runs the steps on a new host; every mismatch is an issue naming the row and the step.
    func run() throws {
        let host = try NVMeHost(ioQueue: ioQueue)
        defer { host.close() }
        var posted: [UInt16] = []
        for (n, step) in steps.enumerated() {
            let at = "§\(section) \(behaviour), step \(n + 1)"
            switch step {
            case .run(let command, let status, let result, let io):
                let reaped = try host.run(command, io: io)
                #expect(reaped.status == status, "\(at): \(reaped), expected \(status)")
                if let result { #expect(reaped.result == result, "\(at): DW0 0x\(String(reaped.result, radix: 16)), expected 0x\(String(result, radix: 16))") }
            case .post(let command):
                posted.append(try host.submit(command, on: &host.admin))
            case .completes(let index, let status, let result):
                let reaped = try #require(try host.reap(&host.admin), "\(at): no completion for posted command \(index)")
                #expect(reaped.identifier == posted[index], "\(at): \(reaped), expected CID \(posted[index])")
                #expect(reaped.status == status, "\(at): \(reaped), expected \(status)")
                if let result { #expect(reaped.result == result, "\(at): DW0 0x\(String(reaped.result, radix: 16)), expected 0x\(String(result, radix: 16))") }
            case .quiet:
                let reaped = try host.reap(&host.admin)
                #expect(reaped == nil, "\(at): \(reaped.map(String.init(describing:)) ?? "") completed")
            case .act(let body):
                try body(host)
            }
        }
    }
}
