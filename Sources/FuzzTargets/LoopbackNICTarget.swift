import DeviceModels

/// `loopback-nic`: a driver programming the loopback NIC (`LoopbackNIC`) with hostile values —
/// TX and RX rings of any size anywhere, frames of any length scattered over buffers anywhere,
/// end-of-packet never posted, RX buffers of bad sizes, tails past the ring, resets mid-run.
enum LoopbackNICTarget {
    typealias Register = LoopbackNIC.Register

    static let program = DeviceProgram(
        model: "loopback-nic",
        registers: [
            Register.control, Register.status, Register.error, Register.errorAddress, Register.interruptCause,
            Register.interruptMask, Register.reset, Register.rxBufferSize, Register.txPackets, Register.rxPackets,
            Register.rxMissed, Register.txBase, Register.txBase + 4, Register.txSize, Register.txHead, Register.txTail,
            Register.rxBase, Register.rxBase + 4, Register.rxSize, Register.rxHead, Register.rxTail, 0x10000, 0x11000,
        ],
        moves: [configureRings, postTX, postRX, ringDoorbells])

    static let run: FuzzEntryPoint = { program.run($0) }

    private static let ringSizes: [UInt32] = [2, 4, 16, 256, 4096, 0, 1, 3, 8192]

    /// Both rings, the RX buffer size, CTRL and IMS as a driver's init sets them.
    private static let configureRings: DeviceProgram.Move = { bench, input in
        for (base, size) in [(Register.txBase, Register.txSize), (Register.rxBase, Register.rxSize)] {
            bench.writeRegister(bar: 0, offset: base, width: 8, program.address(bench, &input))
            bench.writeRegister(bar: 0, offset: size, width: 4, UInt64(input.pick(ringSizes)))
        }
        let bufferSize = input.pick([2048, 256, 16384, 100, 512, 32768] as [UInt32])
        bench.writeRegister(bar: 0, offset: Register.rxBufferSize, width: 4, UInt64(input.bool() ? bufferSize : input.u32()))
        let control = LoopbackNIC.Control.enable | (input.u8() % 4 == 0 ? 0 : LoopbackNIC.Control.loopback)
        bench.writeRegister(bar: 0, offset: Register.control, width: 4, UInt64(control))
        bench.writeRegister(bar: 0, offset: Register.interruptMask, width: 4, UInt64(input.u8() & 7))
    }

    /// A 16-byte TX descriptor in a buffer slot: buffer, length, command (EOP, RS).
    private static let postTX: DeviceProgram.Move = { bench, input in
        let (index, offset) = slot(bench, &input)
        let length = input.pick([60, 1514, 9018, 0, 59, 9019, 30, 4096] as [UInt16])
        bench.store(program.address(bench, &input), in: index, at: offset)
        bench.store(UInt64(input.bool() ? length : input.u16()) | UInt64(input.u8() & 3) << 16, in: index, at: offset + 8)
    }

    /// A 16-byte RX descriptor in a buffer slot: its buffer, status cleared.
    private static let postRX: DeviceProgram.Move = { bench, input in
        let (index, offset) = slot(bench, &input)
        bench.store(program.address(bench, &input), in: index, at: offset)
        bench.store(UInt64(0), in: index, at: offset + 8)
    }

    /// RX and TX tails: a few slots on, or anywhere.
    private static let ringDoorbells: DeviceProgram.Move = { bench, input in
        for tail in [Register.rxTail, Register.txTail] {
            let value = input.bool() ? UInt64(input.u8() % 16) : UInt64(input.u32())
            bench.writeRegister(bar: 0, offset: tail, width: 4, value)
        }
    }

    /// A descriptor slot in the first two buffers (where rings usually sit).
    private static func slot(_ bench: DeviceBench, _ input: inout FuzzInput) -> (Int, Int) {
        (Int(input.u8() & 1), Int(input.u8()) * Int(LoopbackNIC.descriptorSize))
    }
}
