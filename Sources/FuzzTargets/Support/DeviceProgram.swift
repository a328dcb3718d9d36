import UserMemory
import VFIO

/// A device-model target: the input is a driver's sequence of moves against one model of the
/// default machine (`DeviceBench`). Every target shares the generic moves — register accesses of
/// any width at known or arbitrary offsets with hostile values, raw bytes and addresses written
/// into DMA buffers, UNMAP_DMA and MAP_DMA of a buffer under the device's feet, bus mastering
/// off and on, function reset, interrupt set-up, config-space writes — and adds its model's own
/// (ring set-up, a well-formed descriptor or command, a doorbell) that random bytes would rarely
/// assemble. Addresses come from `address`: inside, across the end of or past every buffer,
/// unmapped, the MSI window, beyond the aperture, wrapping, or raw. After the last move the bench
/// checks that no DMA wrote memory it had no mapping to write.
struct DeviceProgram: Sendable {
    typealias Move = @Sendable (DeviceBench, inout FuzzInput) -> Void

    let model: String
    /// BAR0 register offsets worth aiming at.
    let registers: [UInt64]
    let moves: [Move]
    /// Moves per input: a bound on one input's work, so a slow input is a finding about the
    /// model, not about the input's length.
    static let maximumMoves = 64
    private static let genericMoves = 12

    func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let bench = DeviceBench(model: model)
        var count = 0
        while !input.isEmpty, count < Self.maximumMoves {
            step(bench, &input)
            count += 1
        }
        bench.verify()
    }

    private func step(_ bench: DeviceBench, _ input: inout FuzzInput) {
        let choice = Int(input.u8()) % (Self.genericMoves + moves.count)
        switch choice {
        case 0:
            let (bar, offset, width) = registerAccess(&input)
            bench.writeRegister(bar: bar, offset: offset, width: width, value(bench, &input))
        case 1:
            let (bar, offset, width) = registerAccess(&input)
            bench.readRegister(bar: bar, offset: offset, width: width)
        case 2:
            let (index, offset) = place(bench, &input)
            bench.store(input.bytes(Int(input.u8())), in: index, at: offset)
        case 3:
            let (index, offset) = place(bench, &input)
            bench.store(address(bench, &input), in: index, at: offset)
        case 4:
            let (index, offset) = place(bench, &input)
            bench.store(input.u32(), in: index, at: offset)
        case 5: bench.unmap(Int(input.u8()) % bench.buffers.count)
        case 6: bench.remap(Int(input.u8()) % bench.buffers.count)
        case 7: try? bench.setBusMaster(input.bool())
        case 8: try? bench.device.reset()
        case 9: interrupts(bench, &input)
        case 10: _ = bench.interrupt.read()
        case 11:
            let offset = UInt64(input.u16() % 0x1001)
            let width = input.pick([1, 2, 4])
            withUnsafeBytes(of: input.u32().littleEndian) { bytes in
                _ = try? bench.device.write(.config, offset: offset, from: UnsafeRawBufferPointer(rebasing: bytes[0..<width]))
            }
        default:
            moves[choice - Self.genericMoves](bench, &input)
        }
    }

    /// A BAR (mostly 0), an offset (a known register, one a few bytes off, or anywhere up to
    /// past the BAR's end) and an access width.
    private func registerAccess(_ input: inout FuzzInput) -> (bar: Int, offset: UInt64, width: Int) {
        let bar = input.pick([0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5])
        let offset: UInt64
        switch input.u8() % 4 {
        case 0, 1: offset = input.pick(registers)
        case 2: offset = input.pick(registers) &+ UInt64(input.u8() % 8)
        default: offset = UInt64(input.u32() % 0x2_1000)
        }
        return (bar, offset, input.pick([4, 4, 8, 8, 1, 2]))
    }

    /// A register value: small, 32-bit, 64-bit, or an address.
    func value(_ bench: DeviceBench, _ input: inout FuzzInput) -> UInt64 {
        switch input.u8() % 4 {
        case 0: UInt64(input.u8())
        case 1: UInt64(input.u32())
        case 2: input.u64()
        default: address(bench, &input)
        }
    }

    /// An IOVA for the device to use: in a buffer, straddling its end, unmapped, the MSI window,
    /// beyond the aperture, wrapping past 2^64, or raw.
    func address(_ bench: DeviceBench, _ input: inout FuzzInput) -> UInt64 {
        let buffer = input.pick(bench.buffers)
        switch input.u8() % 8 {
        case 0: return buffer.iova
        case 1: return buffer.iova &+ UInt64(input.u16())
        case 2: return buffer.iova &+ UInt64(input.u32()) % buffer.memory.size
        case 3: return buffer.iova &+ buffer.memory.size &- UInt64(input.u8())
        case 4: return input.pick([0, 0x1000, 0xdead_0000, 0xfee0_0000, 0x8000_0000] as [UInt64])
        case 5: return input.pick([1 << 48, 1 << 52, 1 << 63] as [UInt64])
        case 6: return UInt64.max &- UInt64(input.u8())
        default: return input.u64()
        }
    }

    /// A buffer and an offset in it.
    func place(_ bench: DeviceBench, _ input: inout FuzzInput) -> (index: Int, offset: Int) {
        let index = Int(input.u8()) % bench.buffers.count
        return (index, Int(input.u32()) % bench.buffers[index].bytes.count)
    }

    /// MSI-X, MSI or INTx wired to the bench's eventfd (at vector 0 or a later one), disabled,
    /// or vectors triggered from userspace.
    private func interrupts(_ bench: DeviceBench, _ input: inout FuzzInput) {
        let index = input.pick([VFIOIRQIndex.msix, .msi, .intx])
        let start = UInt32(input.u8() % 8)
        switch input.u8() % 3 {
        case 0: try? bench.device.enableInterrupts(index, start: start, eventFDs: [bench.interrupt.fd])
        case 1: try? bench.device.disableInterrupts(index)
        default: try? bench.device.triggerInterrupts(index, start: start, count: UInt32(input.u8() % 3))
        }
    }
}
