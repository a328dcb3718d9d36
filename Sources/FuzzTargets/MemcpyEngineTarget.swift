import DeviceModels

/// `memcpy-engine`: a driver programming the memcpy engine (`MemcpyEngine`) with hostile values —
/// rings of any size anywhere, descriptors whose sizes, repeat counts, sources and destinations
/// point anywhere, completion records anywhere, doorbells past the ring, resets mid-run.
enum MemcpyEngineTarget {
    typealias Register = MemcpyEngine.Register

    static let program = DeviceProgram(
        model: "memcpy-engine",
        registers: [
            Register.capability, Register.ringBase, Register.ringBase + 4, Register.ringSize, Register.control, Register.tail,
            Register.head, Register.status, Register.error, Register.completion, Register.completion + 4,
            Register.errorAddress, Register.bytes, Register.reset, 0x2000, 0x3000,
        ],
        moves: [configureRing, postDescriptor, ringDoorbell])

    static let run: FuzzEntryPoint = { program.run($0) }

    /// RING_BASE, RING_SIZE, COMPLETION and CTRL as a driver's init sets them.
    private static let configureRing: DeviceProgram.Move = { bench, input in
        bench.writeRegister(bar: 0, offset: Register.ringBase, width: 8, program.address(bench, &input))
        let size = input.pick([1, 2, 4, 16, 256, 4096, 0, 3, 8192] as [UInt32])
        bench.writeRegister(bar: 0, offset: Register.ringSize, width: 4, UInt64(input.bool() ? size : input.u32()))
        bench.writeRegister(bar: 0, offset: Register.completion, width: 8, input.bool() ? 0 : program.address(bench, &input))
        bench.writeRegister(bar: 0, offset: Register.control, width: 4, 1)
    }

    /// A 32-byte descriptor in a buffer slot: flags, size, source, destination, repeat.
    private static let postDescriptor: DeviceProgram.Move = { bench, input in
        let index = input.pick([0, 1, 4])
        let offset = Int(input.u8()) * Int(MemcpyEngine.descriptorSize)
        let size = input.pick([1, 8, 4096, 65536, 0, 65537] as [UInt32])
        bench.store(UInt32(input.u8() & 1), in: index, at: offset)
        bench.store(input.bool() ? size : input.u32(), in: index, at: offset + 4)
        bench.store(program.address(bench, &input), in: index, at: offset + 8)
        bench.store(program.address(bench, &input), in: index, at: offset + 16)
        bench.store(UInt64(input.pick([0, 1, 2, 16, 4095, 4096] as [UInt32])), in: index, at: offset + 24)
    }

    /// TAIL a few descriptors past HEAD, or anywhere.
    private static let ringDoorbell: DeviceProgram.Move = { bench, input in
        let head = bench.readRegister(bar: 0, offset: Register.head, width: 4) ?? 0
        let tail = input.bool() ? head &+ UInt64(input.u8() % 8) : UInt64(input.u32())
        bench.writeRegister(bar: 0, offset: Register.tail, width: 4, tail)
    }
}
