/// What the controller keeps over its life for the Error Information and SMART/Health logs (NVMe
/// 1.4 §5.14.1.1, §5.14.1.2): failed commands, the I/O it did. No reset clears it — as on a real
/// drive, where it outlives power cycles.
struct NVMeHealth {
    /// SMART/Health Critical Warning bits (§5.14.1.2, Figure 194 byte 0).
    enum CriticalWarning {
        static let temperature: UInt32 = 1 << 1
    }

    /// One Error Information log entry (§5.14.1.1, Figure 193).
    struct ErrorEntry {
        var count: UInt64
        var queue: UInt16
        var identifier: UInt16
        /// Status Field (15:1) and the phase tag of the completion that reported it (0).
        var status: UInt16
        var location: UInt16
        var lba: UInt64
        var namespace: UInt32

        /// The 64-byte entry.
        var bytes: [UInt8] {
            var entry = [UInt8](repeating: 0, count: 64)
            func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
                withUnsafeBytes(of: value.littleEndian) { for (n, byte) in $0.enumerated() { entry[offset + n] = byte } }
            }
            put(count, at: 0)
            put(queue, at: 8)
            put(identifier, at: 10)
            put(status, at: 12)
            put(location, at: 14)
            put(lba, at: 16)
            put(namespace, at: 24)
            return entry
        }
    }

    /// Newest first, at most ELPE + 1.
    private(set) var errors: [ErrorEntry] = []
    /// Errors ever logged: the Error Count of the newest entry and the SMART log's Number of
    /// Error Information Log Entries.
    private(set) var errorCount: UInt64 = 0
    /// Blocks read and written by Read and Write commands, and those commands.
    var blocksRead: UInt64 = 0
    var blocksWritten: UInt64 = 0
    var readCommands: UInt64 = 0
    var writeCommands: UInt64 = 0

    /// Logs a command that completed with `status`. Parameter Error Location names the field at
    /// fault where the status says which: the opcode (byte 0), the NSID (byte 4) or the starting
    /// LBA (byte 40) of a Read, Write or Write Zeroes; FFFFh otherwise.
    mutating func recordError(
        queue: UInt16, identifier: UInt16, status: NVMeController.Status, phase: Bool, context: NVMeController.ErrorContext, isAdmin: Bool
    ) {
        errorCount &+= 1
        let location: UInt16 =
            switch status {
            case .invalidOpcode: 0
            case .invalidNamespace: 4
            case .lbaOutOfRange where !isAdmin && [0x01, 0x02, 0x08].contains(context.opcode): 40
            default: 0xffff
            }
        let entry = ErrorEntry(
            count: errorCount, queue: queue, identifier: identifier, status: status.field << 1 | (phase ? 1 : 0), location: location,
            lba: context.lba, namespace: context.namespace)
        errors.insert(entry, at: 0)
        if errors.count > Int(NVMeController.Identity.errorLogEntries) + 1 { errors.removeLast() }
    }

    /// The Error Information log: ELPE + 1 entries, newest first, unused ones zero.
    var errorLog: [UInt8] {
        var log = errors.flatMap(\.bytes)
        log += [UInt8](repeating: 0, count: (Int(NVMeController.Identity.errorLogEntries) + 1) * 64 - log.count)
        return log
    }

    /// The SMART/Health Information log (§5.14.1.2, Figure 194), 512 bytes: the critical warning,
    /// composite temperature, spare 100 % (threshold 10 %), none used, data units (thousands of
    /// 512-byte units, rounded up) and commands, one power cycle, power-on hours, the error count.
    func smartLog(features: NVMeFeatures, poweredOnHours: UInt64) -> [UInt8] {
        var log = [UInt8](repeating: 0, count: 512)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (n, byte) in $0.enumerated() { log[offset + n] = byte } }
        }
        log[0] = features.temperatureWarning ? UInt8(CriticalWarning.temperature) : 0
        put(NVMeFeatures.compositeTemperature, at: 1)
        log[3] = 100  // Available Spare
        log[4] = 10  // Available Spare Threshold
        // 16-byte counters; these never pass 64 bits.
        put((blocksRead + 999) / 1000, at: 32)
        put((blocksWritten + 999) / 1000, at: 48)
        put(readCommands, at: 64)
        put(writeCommands, at: 80)
        put(UInt64(1), at: 112)  // Power Cycles
        put(poweredOnHours, at: 128)
        put(errorCount, at: 176)  // Number of Error Information Log Entries
        put(NVMeFeatures.compositeTemperature, at: 200)  // Temperature Sensor 1
        return log
    }
}

extension NVMeController {
    /// Get Log Page (NVMe 1.4 §5.14): CDW10 LID (7:0), RAE (15), NUMDL (31:16); CDW11 NUMDU
    /// (15:0); CDW12–13 the byte offset LPO (dword aligned, inside the log). NUMD + 1 dwords go
    /// to PRP1/PRP2: the log from the offset, zeros past its end; more than MDTS is Invalid Field.
    /// LID 01h Error Information, 02h SMART/Health (NSID 0 or FFFFFFFFh: LPA says the log is not
    /// per namespace, so any other NSID is Invalid Field), 03h Firmware Slot Information; any
    /// other LID is Invalid Log Page. Reading 01h or 02h without RAE clears the asynchronous
    /// event of its type (§5.2), so the next one can be reported.
    func getLogPage(_ state: inout State, _ command: Command) -> Status {
        let cdw10 = command.dword(10)
        let dwords = (UInt64(command.dword(11) & 0xffff) << 16 | UInt64(cdw10 >> 16)) + 1
        let offset = UInt64(command.dword(12)) | UInt64(command.dword(13)) << 32
        let log: [UInt8]
        let eventType: UInt8?
        switch UInt8(truncatingIfNeeded: cdw10) {
        case 0x01:
            log = state.health.errorLog
            eventType = NVMeAsyncEvent.errorStatus
        case 0x02:
            guard command.namespace == 0 || command.namespace == 0xffff_ffff else { return .invalidField }
            let hours = (ContinuousClock.now - poweredOn).components.seconds / 3600
            log = state.health.smartLog(features: state.features, poweredOnHours: UInt64(max(0, hours)))
            eventType = NVMeAsyncEvent.smartHealthStatus
        case 0x03:
            // AFI: slot 1 active (2:0), no activation pending; FRS1 the running revision.
            var slots = [UInt8](repeating: 0, count: 512)
            slots[0] = 1
            let revision = Array(Identity.firmware.utf8) + Array(repeating: UInt8(ascii: " "), count: 8 - Identity.firmware.utf8.count)
            slots.replaceSubrange(8..<16, with: revision)
            log = slots
            eventType = nil
        default:
            return .invalidLogPage
        }
        guard offset & 3 == 0, offset < UInt64(log.count), dwords * 4 <= UInt64(Self.maxTransfer) else { return .invalidField }
        let length = Int(dwords * 4)
        let buffer = UnsafeMutableRawBufferPointer(rebasing: staging[0..<length])
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let available = min(length, log.count - Int(offset))
        UnsafeMutableRawBufferPointer(rebasing: buffer[0..<available]).copyBytes(from: log[Int(offset)..<Int(offset) + available])
        let status = transfer(&state, command, buffer, toHost: true)
        if status.isSuccess, cdw10 & 1 << 15 == 0, let eventType { state.events.clear(type: eventType) }
        return status
    }
}
