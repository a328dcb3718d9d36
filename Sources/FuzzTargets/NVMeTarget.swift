import DeviceModels

/// `nvme`: a driver programming the NVMe controller (`NVMeController`) with hostile values —
/// admin queues anywhere and of any size, admin commands creating and deleting I/O queues with
/// bad identifiers, sizes, vectors and bases, I/O commands whose PRP entries and PRP lists point
/// anywhere (chained, unaligned, unmapped, wrapping), doorbells for absent queues or past a
/// queue's size, controller resets mid-run.
enum NVMeTarget {
    typealias Register = NVMeController.Register

    static let program = DeviceProgram(
        model: "nvme",
        registers: [
            Register.capabilities, Register.capabilities + 4, Register.version, Register.interruptMaskSet,
            Register.interruptMaskClear, Register.configuration, Register.status, Register.adminQueueAttributes,
            Register.adminSubmissionQueue, Register.adminSubmissionQueue + 4, Register.adminCompletionQueue,
            Register.adminCompletionQueue + 4, Register.doorbells, Register.doorbells + 4, Register.doorbells + 8,
            Register.doorbells + 12, Register.doorbells + 0x84, 0x2000, 0x3000,
        ],
        moves: [enable, postCommand, writePRPList, ringDoorbell])

    static let run: FuzzEntryPoint = { program.run($0) }

    /// CC.EN 1→0, then AQA, ASQ, ACQ and CC with 64/16-byte I/O entries and EN set (or CC's
    /// other bits fuzzed).
    private static let enable: DeviceProgram.Move = { bench, input in
        bench.writeRegister(bar: 0, offset: Register.configuration, width: 4, 0)
        let entries = input.pick([2, 4, 16, 64, 1, 4096] as [UInt32]) - 1
        let attributes = input.bool() ? entries | entries << 16 : input.u32()
        bench.writeRegister(bar: 0, offset: Register.adminQueueAttributes, width: 4, UInt64(attributes))
        bench.writeRegister(bar: 0, offset: Register.adminSubmissionQueue, width: 8, program.address(bench, &input))
        bench.writeRegister(bar: 0, offset: Register.adminCompletionQueue, width: 8, program.address(bench, &input))
        let configuration: UInt32 = input.bool() ? 1 | 6 << 16 | 4 << 20 : input.u32()
        bench.writeRegister(bar: 0, offset: Register.configuration, width: 4, UInt64(configuration))
    }

    /// A 64-byte submission queue entry in a buffer slot: an admin or I/O opcode, command ID,
    /// namespace, PRP1, PRP2 and CDW10–12 (queue parameters, or SLBA and NLB).
    private static let postCommand: DeviceProgram.Move = { bench, input in
        let index = input.pick([0, 1, 4])
        let offset = Int(input.u8()) * 64
        // Admin: Delete/Create SQ/CQ, Get Log Page, Identify, Abort, Set/Get Features, AER; I/O:
        // Flush, Write, Read, Write Zeroes, Dataset Management; and an opcode neither has.
        let opcode = input.pick([0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0a, 0x0c, 0x7f] as [UInt32])
        let flags = input.u8() % 4 == 0 ? input.u32() & 0xc300 : 0
        bench.store(opcode | flags | UInt32(input.u16()) << 16, in: index, at: offset)
        bench.store(input.pick([1, 0, 2, 0xffff_ffff] as [UInt32]), in: index, at: offset + 4)
        bench.store(program.address(bench, &input), in: index, at: offset + 24)
        bench.store(program.address(bench, &input), in: index, at: offset + 32)
        // CDW10: QID and QSIZE, or SLBA low; CDW11: flags and CQID/IV, or SLBA high; CDW12: NLB.
        let queue = UInt32(input.u8() % 34) | UInt32(input.pick([1, 15, 1023, 1024, 0xffff] as [UInt32])) << 16
        bench.store(input.bool() ? queue : input.u32(), in: index, at: offset + 40)
        let queueFlags = input.pick([1, 3, 0, 2] as [UInt32]) | UInt32(input.u8() % 34) << 16
        bench.store(input.bool() ? queueFlags : input.u32(), in: index, at: offset + 44)
        bench.store(UInt32(input.pick([0, 7, 255, 0xffff] as [UInt16])), in: index, at: offset + 48)
    }

    /// A run of PRP list entries (addresses, one chaining on) at a buffer offset.
    private static let writePRPList: DeviceProgram.Move = { bench, input in
        let (index, offset) = program.place(bench, &input)
        for entry in 0..<Int(input.u8() % 8) {
            bench.store(program.address(bench, &input), in: index, at: offset + 8 * entry)
        }
    }

    /// A submission queue tail or completion queue head doorbell of queue 0–33 (one past the
    /// 32 I/O queues): a few entries on, or anywhere.
    private static let ringDoorbell: DeviceProgram.Move = { bench, input in
        let doorbell = Register.doorbells + 4 * UInt64(input.u8() % 68)
        bench.writeRegister(bar: 0, offset: doorbell, width: 4, input.bool() ? UInt64(input.u8() % 8) : UInt64(input.u32()))
    }
}
