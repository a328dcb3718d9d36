import Locking
import PCIBus

/// An Ethernet controller in the spirit of the Intel 82576 (igb), which the VFIO selftests drive
/// as a DMA engine through PHY loopback: one transmit and one receive descriptor ring in host
/// memory, each with a base, a size, a head the device advances and a tail doorbell the driver
/// writes, and an internal loopback that turns every transmitted frame into a received one.
///
/// A TX doorbell makes the device transmit every complete frame between TX head and tail: it
/// reads the frame's descriptors up to the one marked end-of-packet (a frame whose EOP is not
/// posted yet waits for the next doorbell), gathers the buffers by DMA (each anywhere, crossing
/// pages as it likes), writes DD back into those descriptors and advances TX head. With loopback
/// on, the frame is then scattered into as many RX buffers as it needs (RX_BUFFER_SIZE each, the
/// last one marked EOP) with length and DD written back; a frame that finds too few free RX
/// descriptors is dropped and counted in RX_MISSED. Without loopback it leaves for a wire with no
/// link partner and is lost.
///
/// Interrupts: each event sets a cause bit in ICR — TXDW when a transmitted frame had a
/// descriptor with RS, RXDW when a frame was received, RXMISS when one was dropped — and a
/// doorbell that set a cause enabled in IMS signals vector 0 (MSI-X, else MSI, else INTx).
///
/// Errors: a bad ring (size not a power of two in 1…4096, base not 16-byte aligned, tail beyond
/// the ring; RX also a bad buffer size; checked when TX rings its doorbell and when a frame
/// reaches RX), a frame outside 60…9018 bytes, or any DMA fault halts the device: STATUS reads 1,
/// ERROR says why and ERROR_ADDRESS holds the faulting IOVA (the ring base for a bad ring, the
/// frame's first descriptor for a bad frame). Processing stops where it was: the side that failed
/// writes no DD (a frame that fails in RX was already transmitted and written back on TX), a TX
/// failure writes nothing to RX, and the doorbell raises no interrupt. RESET restarts.
///
/// BAR0 registers (little-endian; MSI-X table at 0x10000, pending bits at 0x11000):
///
/// | offset | name           | access | meaning |
/// |--------|----------------|--------|---------|
/// | 0x00   | CTRL           | RW u32 | bit 0: enable; bit 1: internal loopback |
/// | 0x04   | STATUS         | RO u32 | 0 running, 1 halted on error |
/// | 0x08   | ERROR          | RO u32 | why it halted (`LoopbackNIC.Error`) |
/// | 0x10   | ERROR_ADDRESS  | RO u64 | the IOVA that faulted |
/// | 0x18   | ICR            | RC u32 | causes since the last read (the read clears): bit 0 TXDW, 1 RXDW, 2 RXMISS |
/// | 0x1c   | IMS            | RW u32 | the causes that signal the interrupt |
/// | 0x20   | RESET          | WO u32 | write 1: clear the halt, heads and tails to 0; configuration stays |
/// | 0x24   | RX_BUFFER_SIZE | RW u32 | bytes per RX buffer: a power of two, 256…16384 (2048 at reset) |
/// | 0x28   | TX_PACKETS     | RO u32 | frames transmitted |
/// | 0x2c   | RX_PACKETS     | RO u32 | frames received |
/// | 0x30   | RX_MISSED      | RO u32 | frames dropped for want of RX descriptors |
/// | 0x100  | TX_BASE        | RW u64 | IOVA of the TX ring (writing it sets head and tail to 0) |
/// | 0x108  | TX_SIZE        | RW u32 | descriptors in the ring (writing it sets head and tail to 0) |
/// | 0x110  | TX_HEAD        | RO u32 | next descriptor the device processes |
/// | 0x118  | TX_TAIL        | RW u32 | doorbell: one past the last descriptor the driver posted |
/// | 0x200  | RX_BASE…RX_TAIL| as TX  | the RX ring; descriptors from head up to tail are free buffers |
///
/// Either ring is empty when head equals tail, so it holds size − 1 descriptors. Descriptors are
/// 16 bytes. TX: `u64 buffer`, `u16 length`, `u8 command` (bit 0 EOP, bit 1 RS), `u8 status`
/// (bit 0 DD, written back), `u32 reserved`. RX: `u64 buffer`, `u16 length`, `u8 status` (bit 0
/// DD, bit 1 EOP), `u8 errors`, `u32 reserved` — length, status and errors (0) written back.
public final class LoopbackNIC: VirtualPCIDevice, @unchecked Sendable {
    public static let summary = "Ethernet controller (igb-style TX/RX descriptor rings, internal loopback, MSI-X, a boot ROM)"
    public static let vendorID = ModelCatalog.vendorID
    public static let deviceID: UInt16 = 0x5602
    public static let maxRingSize: UInt32 = 4096
    public static let descriptorSize: UInt64 = 16
    /// Ethernet frame sizes without FCS: the 60-byte minimum up to a 9018-byte jumbo frame.
    public static let frameSizes = 60...9018
    public static let rxBufferSizes: ClosedRange<UInt32> = 256...16384
    public static let defaultRXBufferSize: UInt32 = 2048

    /// Why the device halted (register ERROR).
    public enum Error: UInt32, Sendable {
        case none = 0
        case txRing = 1
        case rxRing = 2
        case txDescriptorRead = 3
        case txBufferRead = 4
        case txWriteBack = 5
        case invalidFrame = 6
        case rxDescriptorRead = 7
        case rxBufferWrite = 8
        case rxWriteBack = 9
    }

    public enum Register {
        public static let control: UInt64 = 0x00
        public static let status: UInt64 = 0x04
        public static let error: UInt64 = 0x08
        public static let errorAddress: UInt64 = 0x10
        public static let interruptCause: UInt64 = 0x18
        public static let interruptMask: UInt64 = 0x1c
        public static let reset: UInt64 = 0x20
        public static let rxBufferSize: UInt64 = 0x24
        public static let txPackets: UInt64 = 0x28
        public static let rxPackets: UInt64 = 0x2c
        public static let rxMissed: UInt64 = 0x30
        public static let txBase: UInt64 = 0x100
        public static let txSize: UInt64 = 0x108
        public static let txHead: UInt64 = 0x110
        public static let txTail: UInt64 = 0x118
        public static let rxBase: UInt64 = 0x200
        public static let rxSize: UInt64 = 0x208
        public static let rxHead: UInt64 = 0x210
        public static let rxTail: UInt64 = 0x218
    }

    /// CTRL bits.
    public enum Control {
        public static let enable: UInt32 = 1 << 0
        public static let loopback: UInt32 = 1 << 1
    }

    /// ICR and IMS bits.
    public enum Cause {
        public static let txDescriptorWritten: UInt32 = 1 << 0
        public static let rxDescriptorWritten: UInt32 = 1 << 1
        public static let rxMissed: UInt32 = 1 << 2
    }

    /// Descriptor command and status bits.
    public enum DescriptorBits {
        public static let endOfPacket: UInt8 = 1 << 0
        public static let reportStatus: UInt8 = 1 << 1
        public static let done: UInt8 = 1 << 0
        public static let rxEndOfPacket: UInt8 = 1 << 1
    }

    /// A descriptor ring as the device tracks it.
    private struct Ring {
        var base: UInt64 = 0
        var size: UInt32 = 0
        var head: UInt32 = 0
        var tail: UInt32 = 0

        var isUsable: Bool {
            size > 0 && size <= LoopbackNIC.maxRingSize && size.nonzeroBitCount == 1 && base % LoopbackNIC.descriptorSize == 0
                && head < size && tail < size
        }

        /// Descriptors from head up to tail.
        var posted: UInt32 { (tail &- head) & (size &- 1) }

        func address(_ index: UInt32) -> UInt64 { base &+ UInt64(index) * LoopbackNIC.descriptorSize }
        func after(_ index: UInt32, _ count: UInt32 = 1) -> UInt32 { (index &+ count) & (size &- 1) }

        mutating func write(_ offset: UInt64, width: Int, _ value: UInt64) {
            switch offset {
            case 0: base = width == 8 ? value : (base & ~0xffff_ffff) | value
            case 4: base = (base & 0xffff_ffff) | value << 32
            case 8: size = UInt32(truncatingIfNeeded: value)
            case 0x18:
                tail = UInt32(truncatingIfNeeded: value)
                return
            default: return
            }
            head = 0
            tail = 0
        }

        func read(_ offset: UInt64) -> UInt64 {
            switch offset {
            case 0: base
            case 8: UInt64(size)
            case 0x10: UInt64(head)
            case 0x18: UInt64(tail)
            default: 0
            }
        }
    }

    /// One TX descriptor's buffer.
    private struct Fragment {
        var buffer: UInt64
        var length: Int
    }

    private struct State {
        var control: UInt32 = 0
        var halted = false
        var error = Error.none
        var errorAddress: UInt64 = 0
        var causes: UInt32 = 0
        var interruptMask: UInt32 = 0
        var rxBufferSize = LoopbackNIC.defaultRXBufferSize
        var txPackets: UInt32 = 0
        var rxPackets: UInt32 = 0
        var rxMissed: UInt32 = 0
        var tx = Ring()
        var rx = Ring()
        var port: DMAPort?

        mutating func halt(_ error: Error, at address: UInt64) {
            halted = true
            self.error = error
            errorAddress = address
        }

        /// Transmits every complete frame from TX head to tail; returns the causes raised, or nil
        /// when the device halted.
        mutating func transmit(_ port: inout DMAPort) -> UInt32? {
            guard tx.isUsable else {
                halt(.txRing, at: tx.base)
                return nil
            }
            var raised: UInt32 = 0
            defer { causes |= raised }  // a halt keeps the causes of the frames before it
            while tx.head != tx.tail {
                var fragments: [Fragment] = []
                var reportStatus = false
                var next = tx.head
                var complete = false
                while next != tx.tail, !complete {
                    let address = tx.address(next)
                    let second: UInt64
                    let buffer: UInt64
                    do throws(DMAFault) {
                        buffer = try port.load(UInt64.self, from: address)
                        second = try port.load(UInt64.self, from: address &+ 8)
                    } catch {
                        halt(.txDescriptorRead, at: error.iova)
                        return nil
                    }
                    let command = UInt8(truncatingIfNeeded: second >> 16)
                    fragments.append(Fragment(buffer: buffer, length: Int(UInt16(truncatingIfNeeded: second))))
                    reportStatus = reportStatus || command & DescriptorBits.reportStatus != 0
                    complete = command & DescriptorBits.endOfPacket != 0
                    next = tx.after(next)
                }
                guard complete else { break }  // the rest of the frame is not posted yet
                let length = fragments.reduce(0) { $0 + $1.length }
                guard LoopbackNIC.frameSizes.contains(length) else {
                    halt(.invalidFrame, at: tx.address(tx.head))
                    return nil
                }
                let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 8)
                defer { frame.deallocate() }
                guard gather(fragments, into: frame, &port), writeBackTX(through: next, &port) else { return nil }
                tx.head = next
                txPackets &+= 1
                if reportStatus { raised |= Cause.txDescriptorWritten }
                if control & Control.loopback != 0 {
                    guard let received = receive(UnsafeRawBufferPointer(frame), &port) else { return nil }
                    raised |= received
                }
            }
            return raised
        }

        /// Reads the frame's buffers in order into `frame`.
        private mutating func gather(_ fragments: [Fragment], into frame: UnsafeMutableRawBufferPointer, _ port: inout DMAPort) -> Bool {
            var offset = 0
            for fragment in fragments where fragment.length > 0 {
                do throws(DMAFault) {
                    try port.read(from: fragment.buffer, into: UnsafeMutableRawBufferPointer(rebasing: frame[offset..<offset + fragment.length]))
                } catch {
                    halt(.txBufferRead, at: error.iova)
                    return false
                }
                offset += fragment.length
            }
            return true
        }

        /// Sets DD in the status byte of the TX descriptors from head up to `end`.
        private mutating func writeBackTX(through end: UInt32, _ port: inout DMAPort) -> Bool {
            var index = tx.head
            while index != end {
                do throws(DMAFault) {
                    try port.store(DescriptorBits.done, to: tx.address(index) &+ 11)
                } catch {
                    halt(.txWriteBack, at: error.iova)
                    return false
                }
                index = tx.after(index)
            }
            return true
        }

        /// Delivers a looped-back frame into RX buffers; returns the causes raised, or nil when
        /// the device halted.
        private mutating func receive(_ frame: UnsafeRawBufferPointer, _ port: inout DMAPort) -> UInt32? {
            guard rx.isUsable, LoopbackNIC.rxBufferSizes.contains(rxBufferSize), rxBufferSize.nonzeroBitCount == 1 else {
                halt(.rxRing, at: rx.base)
                return nil
            }
            let chunk = Int(rxBufferSize)
            let needed = UInt32((frame.count + chunk - 1) / chunk)
            guard needed <= rx.posted else {
                rxMissed &+= 1
                return Cause.rxMissed
            }
            var buffers: [UInt64] = []
            for i in 0..<needed {
                do throws(DMAFault) {
                    buffers.append(try port.load(UInt64.self, from: rx.address(rx.after(rx.head, i))))
                } catch {
                    halt(.rxDescriptorRead, at: error.iova)
                    return nil
                }
            }
            for (i, buffer) in buffers.enumerated() {
                let piece = UnsafeRawBufferPointer(rebasing: frame[i * chunk..<min(frame.count, (i + 1) * chunk)])
                do throws(DMAFault) {
                    try port.write(to: buffer, from: piece)
                } catch {
                    halt(.rxBufferWrite, at: error.iova)
                    return nil
                }
            }
            for i in 0..<needed {
                let length = UInt32(min(frame.count - Int(i) * chunk, chunk))
                let status = DescriptorBits.done | (i == needed - 1 ? DescriptorBits.rxEndOfPacket : 0)
                do throws(DMAFault) {
                    try port.store(length | UInt32(status) << 16, to: rx.address(rx.after(rx.head, i)) &+ 8)
                } catch {
                    halt(.rxWriteBack, at: error.iova)
                    return nil
                }
            }
            rx.head = rx.after(rx.head, needed)
            rxPackets &+= 1
            return Cause.rxDescriptorWritten
        }
    }

    private let state = PThreadMutex(State())

    /// The expansion ROM BAR's length: 16 KiB, of which the boot image (`OptionROMImage.legacy`,
    /// 2 KiB, as a NIC's PXE ROM would be) fills the start.
    public static let romSize: UInt64 = 0x4000

    /// Where the ROM BAR decodes: a ROM BAR is a 32-bit window, so below 4 GiB — 1 MiB per model
    /// from 0xfd00_0000, indexed as `ModelCatalog.mmioBase(forDevice:)` places the 64-bit BARs.
    static func romAddress(mmioBase: UInt64) -> UInt32 { 0xfd00_0000 | UInt32(truncatingIfNeeded: (mmioBase >> 28) & 0xf) << 20 }

    public init(address: PCIAddress, mmioBase: UInt64) {
        var builder = VirtualConfigBuilder(
            vendor: Self.vendorID, device: Self.deviceID, classCode: 0x020000, subsystemVendor: Self.vendorID, subsystem: Self.deviceID)
        builder.addBAR(0, PCIBARResource(kind: .memory64, size: 128 << 10, busAddress: mmioBase))
        builder.addPowerManagement()
        builder.addMSI(vectors: 1)
        builder.addMSIX(tableSize: 4, tableBAR: 0, tableOffset: 0x10000, pbaBAR: 0, pbaOffset: 0x11000)
        builder.addPCIExpress(.endpoint, flr: true)
        builder.addExpansionROM(
            OptionROMImage.legacy(vendor: Self.vendorID, device: Self.deviceID, classCode: 0x020000), size: Self.romSize,
            busAddress: Self.romAddress(mmioBase: mmioBase))
        super.init(address: address, modelName: "loopback NIC", layout: builder.build())
    }

    public override func mmioRead(_ bar: Int, offset: UInt64, width: Int) -> UInt64 {
        guard bar == 0 else { return allOnes(width) }
        let value: UInt64 = state.withLock { state in
            if offset == Register.interruptCause {
                defer { state.causes = 0 }
                return UInt64(state.causes)
            }
            return switch offset {
            case Register.control: UInt64(state.control)
            case Register.status: state.halted ? 1 : 0
            case Register.error: UInt64(state.error.rawValue)
            case Register.errorAddress: state.errorAddress
            case Register.interruptMask: UInt64(state.interruptMask)
            case Register.rxBufferSize: UInt64(state.rxBufferSize)
            case Register.txPackets: UInt64(state.txPackets)
            case Register.rxPackets: UInt64(state.rxPackets)
            case Register.rxMissed: UInt64(state.rxMissed)
            case Register.txBase..<Register.txBase + 0x20: state.tx.read(offset - Register.txBase)
            case Register.rxBase..<Register.rxBase + 0x20: state.rx.read(offset - Register.rxBase)
            default: 0
            }
        }
        return value & allOnes(width)
    }

    public override func mmioWrite(_ bar: Int, offset: UInt64, width: Int, _ value: UInt64) {
        guard bar == 0 else { return }
        let interrupt: Bool = state.withLock { state in
            switch offset {
            case Register.control: state.control = UInt32(truncatingIfNeeded: value) & (Control.enable | Control.loopback)
            case Register.interruptMask: state.interruptMask = UInt32(truncatingIfNeeded: value)
            case Register.rxBufferSize: state.rxBufferSize = UInt32(truncatingIfNeeded: value)
            case Register.reset where value & 1 != 0:
                // Restart: the halt and error clear, both rings start over; configuration stays.
                state.halted = false
                state.error = .none
                state.errorAddress = 0
                state.tx.head = 0
                state.tx.tail = 0
                state.rx.head = 0
                state.rx.tail = 0
            case Register.txTail:
                state.tx.write(offset - Register.txBase, width: width, value)
                guard state.control & Control.enable != 0, !state.halted else { return false }
                var port = state.port.take() ?? dmaPort()
                defer { state.port = port }
                guard let raised = state.transmit(&port) else { return false }
                return raised & state.interruptMask != 0
            case Register.txBase..<Register.txBase + 0x20: state.tx.write(offset - Register.txBase, width: width, value)
            case Register.rxBase..<Register.rxBase + 0x20: state.rx.write(offset - Register.rxBase, width: width, value)
            default: break
            }
            return false
        }
        if interrupt { raiseInterrupt(vector: 0) }
    }

    public override func resetModel() { state.withLock { $0 = State() } }
}
