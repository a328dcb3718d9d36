import Locking
import PCIBus

/// Intel Crystal Beach DMA, I/OAT version 3.3: the Sky Lake-SP "CBDMA Registers" function
/// (8086:2021, `PCI_DEVICE_ID_INTEL_IOAT_SKX`) that the kernel's `ioatdma` and the VFIO
/// selftests' ioat driver program, register for register. Its config space is function
/// 0000:00:04.0 of the `default` machine's dump — revision 04, class 088000, subsystem
/// 15d9:095d, a multi-function root-complex integrated endpoint with PM (0x40, No_Soft_Reset),
/// MSI (0x50, one vector), PCI Express (0x60, no FLR) and MSI-X (0xa0, one vector, table at BAR0
/// + 0x2000, pending bits at + 0x3000) — plus the vendor registers `ioat_eh` and the selftests
/// read and clear: DMAUNCERRSTS (0x148, RW1C, never set here), CHANERR_INT (0x180, RW1C: the
/// channel's errors as CHANERR logs them, less those masked in CHANERRMASK_INT at 0x184).
/// Without FLR or a PM reset the function has no reset method: vfio-pci neither resets it on
/// open nor offers VFIO_DEVICE_RESET, and drivers reset the channel with CHANCMD.
///
/// BAR0 (64-bit, 16 KiB, registers only) holds one channel (`CBDMAChannel`, which runs the
/// descriptors) and the device registers (`CBDMA.Register`). Accesses of 1, 2, 4 or 8 bytes at
/// any offset read and write the bytes of whichever registers they cover; elsewhere reads
/// return 0 and writes are dropped — INTRDELAY (no coalescing), DEVICE_STATUS, DMACAPABILITY
/// (copy only: no XOR, PQ, fill or DCA) and the DCA offset (no DCA) all read 0.
///
/// | offset | name       | access | meaning |
/// |--------|------------|--------|---------|
/// | 0x00   | CHANCNT    | RO u8  | 1 |
/// | 0x01   | XFERCAP    | RO u8  | 20: a descriptor moves up to 1 MiB |
/// | 0x02   | GENCTRL    | RW u8  | bit 0 DEBUG_EN (no effect) |
/// | 0x03   | INTRCTRL   | RW u8  | MASTER_INT_EN, MSIX_VECTOR_CONTROL; INT_STATUS and INT read-only |
/// | 0x04   | ATTNSTATUS | RO u32 | bit 0: the channel signalled and was not rearmed since |
/// | 0x08   | VER        | RO u8  | 0x33 |
/// | 0x80   | CHANCTRL   | RW u16 | INT_REARM, ERR_COMPLETION_EN, ANY_ERR_ABORT_EN, ERR_INT_EN, … |
/// | 0x84   | CHANCMD    | WO u8  | RESET (channel HALTED), SUSPEND, RESUME; reads 0 |
/// | 0x86   | DMACOUNT   | RW u16 | doorbell: descriptors counted since CHAINADDR was written |
/// | 0x88   | CHANSTS    | RO u64 | last completed descriptor (63:6), state (2:0) |
/// | 0x90   | CHAINADDR  | RW u64 | first descriptor of the chain |
/// | 0x98   | CHANCMP    | RW u64 | completion address |
/// | 0xa0   | CDAR       | RO u64 | current descriptor |
/// | 0xa8   | CHANERR    | RW1C u32 | `CBDMA.ChannelError` |
/// | 0xac   | CHANERR_MASK | RW u32 | errors that raise no error interrupt |
///
/// The channel's interrupt goes to MSI-X vector 0 (else MSI, else INTx) when INTRCTRL has
/// MASTER_INT_EN or MSIX_VECTOR_CONTROL — the selftests' driver sets only the latter and counts
/// on the MSI-X vector. Everything runs on the thread that writes the register.
public final class CBDMA: VirtualPCIDevice, @unchecked Sendable {
    public static let summary = "Intel CBDMA (I/OAT 3.3, 8086:2021): one channel running ioat_dma_descriptor chains, MSI-X"
    public static let vendorID: UInt16 = 0x8086
    public static let deviceID: UInt16 = 0x2021
    /// VER: `IOAT_VER_3_3`.
    public static let version: UInt8 = 0x33
    /// XFERCAP: log2 of `maxTransferSize`, as on Sky Lake-SP parts.
    public static let transferCapability: UInt8 = 20
    public static let maxTransferSize: UInt64 = 1 << UInt64(transferCapability)

    private struct State {
        var generalControl: UInt8 = 0
        var interruptControl = InterruptControl()
        var channel = CBDMAChannel()
    }

    private let state = PThreadMutex(State())

    /// BAR0's registers by offset and width, for accesses that cover several or part of one.
    private static let registers: [(offset: UInt64, width: Int)] =
        [
            (Register.channelCount, 1), (Register.transferCapability, 1), (Register.generalControl, 1), (Register.interruptControl, 1),
            (Register.attentionStatus, 4), (Register.version, 1),
        ]
        + [
            (ChannelRegister.control, 2), (ChannelRegister.command, 1), (ChannelRegister.dmaCount, 2), (ChannelRegister.status, 8),
            (ChannelRegister.chainAddress, 8), (ChannelRegister.completionAddress, 8), (ChannelRegister.currentDescriptor, 8),
            (ChannelRegister.error, 4), (ChannelRegister.errorMask, 4),
        ].map { (Register.channel + $0.0, $0.1) }

    public init(address: PCIAddress, mmioBase: UInt64) {
        var builder = VirtualConfigBuilder(
            vendor: Self.vendorID, device: Self.deviceID, classCode: 0x088000, subsystemVendor: 0x15d9, subsystem: 0x095d, revision: 0x04,
            multifunction: true)
        builder.addBAR(0, PCIBARResource(kind: .memory64, size: 16 << 10, busAddress: mmioBase))
        builder.addPowerManagement()
        builder.placeNextCapability(at: 0x50)
        builder.addMSI(vectors: 1)
        builder.placeNextCapability(at: 0x60)
        builder.addPCIExpress(.rootComplexEndpoint, flr: false)
        builder.placeNextCapability(at: 0xa0)
        builder.addMSIX(tableSize: 1, tableBAR: 0, tableOffset: 0x2000, pbaBAR: 0, pbaOffset: 0x3000)
        builder.addRegister(ConfigRegister.uncorrectableErrorStatus, width: 4, writeOneToClear: .max)
        builder.addRegister(ConfigRegister.channelErrorInternal, width: 4, writeOneToClear: .max)
        builder.addRegister(ConfigRegister.channelErrorMaskInternal, width: 4, writable: .max)
        super.init(address: address, modelName: "CBDMA (I/OAT 3.3)", layout: builder.build())
    }

    public override func mmioRead(_ bar: Int, offset: UInt64, width: Int) -> UInt64 {
        guard bar == 0 else { return allOnes(width) }
        return state.withLock { state in
            var value: UInt64 = 0
            for register in Self.registers where Self.access(offset, width, covers: register) {
                let bits = read(register.offset, state)
                value |= register.offset >= offset ? bits << (8 * (register.offset - offset)) : bits >> (8 * (offset - register.offset))
            }
            return value & allOnes(width)
        }
    }

    public override func mmioWrite(_ bar: Int, offset: UInt64, width: Int, _ value: UInt64) {
        guard bar == 0 else { return }
        let (outcome, deliver): (CBDMAChannel.Outcome, Bool) = state.withLock { state in
            var outcome = CBDMAChannel.Outcome()
            for register in Self.registers where Self.access(offset, width, covers: register) {
                // The access's bytes that fall in the register, moved to the register's bit 0.
                let (data, lanes) =
                    register.offset >= offset
                    ? (value >> (8 * (register.offset - offset)), allOnes(width - Int(register.offset - offset)))
                    : (value << (8 * (offset - register.offset)), allOnes(width) << (8 * (offset - register.offset)))
                outcome.merge(write(register.offset, data, lanes: lanes & allOnes(register.width), &state))
            }
            return (outcome, !state.interruptControl.isDisjoint(with: [.masterEnable, .msixVectorControl]))
        }
        if !outcome.errors.isEmpty {
            let masked = readConfig(ConfigRegister.channelErrorMaskInternal, width: 4)
            reportConfigStatus(ConfigRegister.channelErrorInternal, width: 4, outcome.errors.rawValue & ~masked)
        }
        if outcome.interrupt, deliver { raiseInterrupt(vector: 0) }
    }

    public override func resetModel() { state.withLock { $0 = State() } }

    private static func access(_ offset: UInt64, _ width: Int, covers register: (offset: UInt64, width: Int)) -> Bool {
        register.offset < offset + UInt64(width) && offset < register.offset + UInt64(register.width)
    }

    private func read(_ register: UInt64, _ state: State) -> UInt64 {
        switch register {
        case Register.channelCount: 1
        case Register.transferCapability: UInt64(Self.transferCapability)
        case Register.generalControl: UInt64(state.generalControl)
        case Register.interruptControl: UInt64(interruptControl(state).rawValue)
        case Register.attentionStatus: state.channel.attention ? 1 : 0
        case Register.version: UInt64(Self.version)
        default: state.channel.read(register - Register.channel)
        }
    }

    /// INTRCTRL as read: the bits written, INT_STATUS while the channel has attention, INT while
    /// that and MASTER_INT_EN.
    private func interruptControl(_ state: State) -> InterruptControl {
        guard state.channel.attention else { return state.interruptControl }
        return state.interruptControl.union(state.interruptControl.contains(.masterEnable) ? [.status, .interrupt] : .status)
    }

    /// Writes the bytes `lanes` selects of `register` (all of a one-byte register) with `data`.
    private func write(_ register: UInt64, _ data: UInt64, lanes: UInt64, _ state: inout State) -> CBDMAChannel.Outcome {
        switch register {
        case Register.generalControl:
            state.generalControl = UInt8(truncatingIfNeeded: data) & 0x01
        case Register.interruptControl:
            state.interruptControl = InterruptControl(rawValue: UInt8(truncatingIfNeeded: data)).intersection(.writable)
        case Register.channel...:
            return state.channel.write(register - Register.channel, data, lanes: lanes, port: dmaPort)
        default:
            break
        }
        return CBDMAChannel.Outcome()
    }
}
