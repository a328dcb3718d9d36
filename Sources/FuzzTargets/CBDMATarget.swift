import DeviceModels

/// `cbdma`: a driver programming the Intel CBDMA (I/OAT v3.3) channel (`CBDMA`) with hostile
/// values — chains of 64-byte descriptors of any size, operation and control bits whose sources,
/// destinations and `next` pointers go anywhere (into buffers, across their ends, unmapped, the
/// MSI window, looping back on themselves), completion addresses anywhere, doorbells
/// (`DMACOUNT`) far ahead of or behind the channel, `CHANCMD` reset and suspend mid-chain,
/// `CHANERR` cleared or not, interrupts re-armed or not.
enum CBDMATarget {
    typealias Device = CBDMA.Register
    typealias Channel = CBDMA.ChannelRegister

    static let program = DeviceProgram(
        model: "cbdma",
        registers: [
            Device.channelCount, Device.transferCapability, Device.generalControl, Device.interruptControl, Device.attentionStatus,
            Device.version, Device.channel + Channel.control, Device.channel + Channel.command, Device.channel + Channel.dmaCount,
            Device.channel + Channel.status, Device.channel + Channel.chainAddress, Device.channel + Channel.completionAddress,
            Device.channel + Channel.currentDescriptor, Device.channel + Channel.error, Device.channel + Channel.errorMask, 0x2000, 0x3000,
        ],
        moves: [configureChannel, postDescriptor, ringDoorbell, command])

    static let run: FuzzEntryPoint = { program.run($0) }

    /// CHANCTRL, CHANCMP, CHAINADDR and INTRCTRL as the ioat driver sets them up.
    private static let configureChannel: DeviceProgram.Move = { bench, input in
        let base = Device.channel
        bench.writeRegister(bar: 0, offset: Device.interruptControl, width: 1, UInt64(input.pick([0x01, 0x09, 0x00, 0x08] as [UInt8])))
        bench.writeRegister(bar: 0, offset: base + Channel.control, width: 2, UInt64(input.u8() % 4 == 0 ? input.u16() : input.pick([0x0001, 0x0005, 0x0025, 0x0000] as [UInt16])))
        bench.writeRegister(bar: 0, offset: base + Channel.completionAddress, width: 8, program.address(bench, &input))
        bench.writeRegister(bar: 0, offset: base + Channel.chainAddress, width: 8, program.address(bench, &input))
    }

    /// A 64-byte descriptor at a 64-byte slot of a buffer: size, control (op COPY mostly, int_en,
    /// compl_write, null, fence), source, destination, next.
    private static let postDescriptor: DeviceProgram.Move = { bench, input in
        let index = input.pick([0, 1, 4])
        let offset = Int(input.u8()) * 64
        let size = input.pick([1, 8, 4096, 65536, 0, 1 << 20, 1 << 21] as [UInt32])
        let control = input.u8() % 8 == 0 ? input.u32() : UInt32(input.u8() & 0x2f)
        bench.store(input.bool() ? size : input.u32(), in: index, at: offset)
        bench.store(control, in: index, at: offset + 4)
        bench.store(program.address(bench, &input), in: index, at: offset + 8)
        bench.store(program.address(bench, &input), in: index, at: offset + 16)
        bench.store(program.address(bench, &input), in: index, at: offset + 24)
    }

    /// DMACOUNT a few descriptors past the last doorbell, or anywhere (16-bit, wrapping).
    private static let ringDoorbell: DeviceProgram.Move = { bench, input in
        let count = bench.readRegister(bar: 0, offset: Device.channel + Channel.dmaCount, width: 2) ?? 0
        let next = input.bool() ? (count &+ UInt64(input.u8() % 8)) & 0xffff : UInt64(input.u16())
        bench.writeRegister(bar: 0, offset: Device.channel + Channel.dmaCount, width: 2, next)
    }

    /// CHANCMD reset or suspend, or CHANERR written back to clear what is set.
    private static let command: DeviceProgram.Move = { bench, input in
        if input.bool() {
            bench.writeRegister(bar: 0, offset: Device.channel + Channel.command, width: 1, UInt64(input.pick([0x20, 0x04, 0x00] as [UInt8])))
        } else {
            let error = bench.readRegister(bar: 0, offset: Device.channel + Channel.error, width: 4) ?? 0
            bench.writeRegister(bar: 0, offset: Device.channel + Channel.error, width: 4, input.bool() ? error : UInt64(input.u32()))
        }
    }
}
