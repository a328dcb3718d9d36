/// The register map of an I/OAT v3 function, as the kernel's `drivers/dma/ioat/registers.h`
/// names it: offsets in BAR0 (the device block, then a 0x80-byte block per channel), the bits of
/// the registers the model implements, and the vendor-specific config registers.
extension CBDMA {
    /// BAR0 device registers ("MMIO Device Registers").
    public enum Register {
        /// `IOAT_CHANCNT_OFFSET` (u8, RO): channels, bits 4:0.
        public static let channelCount: UInt64 = 0x00
        /// `IOAT_XFERCAP_OFFSET` (u8, RO): log2 of the largest transfer one descriptor moves.
        public static let transferCapability: UInt64 = 0x01
        /// `IOAT_GENCTRL_OFFSET` (u8): bit 0 `IOAT_GENCTRL_DEBUG_EN`.
        public static let generalControl: UInt64 = 0x02
        /// `IOAT_INTRCTRL_OFFSET` (u8): `InterruptControl`.
        public static let interruptControl: UInt64 = 0x03
        /// `IOAT_ATTNSTATUS_OFFSET` (u32, RO): a bit per channel that signalled its interrupt.
        public static let attentionStatus: UInt64 = 0x04
        /// `IOAT_VER_OFFSET` (u8, RO): major version in bits 7:4, minor in 3:0.
        public static let version: UInt64 = 0x08
        /// `IOAT_CHANNEL_MMIO_SIZE`: where channel 0's registers begin.
        public static let channel: UInt64 = 0x80
    }

    /// A channel's registers, from its block's start ("DMA Channel Registers").
    public enum ChannelRegister {
        /// `IOAT_CHANCTRL_OFFSET` (u16): `ChannelControl`.
        public static let control: UInt64 = 0x00
        /// `IOAT2_CHANCMD_OFFSET` (u8): `ChannelCommand`; commands complete at once and read back 0.
        public static let command: UInt64 = 0x04
        /// `IOAT_CHAN_DMACOUNT_OFFSET` (u16): the doorbell, a free-running count of descriptors.
        public static let dmaCount: UInt64 = 0x06
        /// `IOAT_CHANSTS_OFFSET` (u64, RO): the last completed descriptor's address (bits 63:6)
        /// and the channel's state (`ChannelState`, bits 2:0).
        public static let status: UInt64 = 0x08
        /// `IOAT2_CHAINADDR_OFFSET` (u64): the first descriptor of a chain.
        public static let chainAddress: UInt64 = 0x10
        /// `IOAT_CHANCMP_OFFSET` (u64): where completions (CHANSTS values) are written.
        public static let completionAddress: UInt64 = 0x18
        /// `IOAT_CDAR_OFFSET` (u64, RO): the descriptor the channel works on (or stopped at).
        public static let currentDescriptor: UInt64 = 0x20
        /// `IOAT_CHANERR_OFFSET` (u32, RW1C): `ChannelError`.
        public static let error: UInt64 = 0x28
        /// `IOAT_CHANERR_MASK_OFFSET` (u32): errors that raise no error interrupt.
        public static let errorMask: UInt64 = 0x2c
    }

    /// Vendor-specific config registers (`IOAT_PCI_*_OFFSET`), past the capabilities.
    public enum ConfigRegister {
        /// `IOAT_PCI_DMAUNCERRSTS_OFFSET` (u32, RW1C): the DMA cluster's uncorrectable errors.
        public static let uncorrectableErrorStatus = 0x148
        /// `IOAT_PCI_CHANERR_INT_OFFSET` (u32, RW1C): the channel errors, logged for the platform.
        public static let channelErrorInternal = 0x180
        /// `IOAT_PCI_CHANERRMASK_INT_OFFSET` (u32): errors not logged in CHANERR_INT.
        public static let channelErrorMaskInternal = 0x184
    }

    /// INTRCTRL (`IOAT_INTRCTRL_*`).
    public struct InterruptControl: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// `MASTER_INT_EN`: the function's interrupt (MSI, INTx) may be signalled.
        public static let masterEnable = InterruptControl(rawValue: 0x01)
        /// `INT_STATUS` (RO): some channel is in ATTNSTATUS.
        public static let status = InterruptControl(rawValue: 0x02)
        /// `INT` (RO): `status` and `masterEnable`.
        public static let interrupt = InterruptControl(rawValue: 0x04)
        /// `MSIX_VECTOR_CONTROL`: each channel signals its own MSI-X vector.
        public static let msixVectorControl = InterruptControl(rawValue: 0x08)
        /// The bits software writes.
        static let writable: InterruptControl = [.masterEnable, .msixVectorControl]
    }

    /// CHANCTRL (`IOAT_CHANCTRL_*`).
    public struct ChannelControl: OptionSet, Sendable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// `INT_REARM`: the next interrupt may be signalled; the channel clears it when it signals.
        public static let interruptRearm = ChannelControl(rawValue: 0x0001)
        /// `ERR_COMPLETION_EN`: a halt writes a completion (state HALTED).
        public static let errorCompletion = ChannelControl(rawValue: 0x0004)
        /// `ANY_ERR_ABORT_EN`: data errors halt the channel too, not only descriptor errors.
        public static let anyErrorAbort = ChannelControl(rawValue: 0x0008)
        /// `ERR_INT_EN`: an error (not masked in CHANERR_MASK) signals the interrupt.
        public static let errorInterrupt = ChannelControl(rawValue: 0x0010)
        /// The bits software writes: the above, descriptor snoop control, in use, completion DCA
        /// and the priority (stored, without effect on a model that has no caches or arbiter).
        static let writable = ChannelControl(rawValue: 0xf33d)
    }

    /// CHANCMD commands (`IOAT_CHANCMD_*`).
    public enum ChannelCommand {
        /// `RESET`: the channel's registers back to reset values; the channel HALTED.
        public static let reset: UInt8 = 0x20
        /// `RESUME`: a suspended channel goes on with the descriptors counted.
        public static let resume: UInt8 = 0x10
        /// `SUSPEND`: the channel stops after the current descriptor (SUSPENDED).
        public static let suspend: UInt8 = 0x04
    }

    /// CHANSTS bits 2:0 (`IOAT_CHANSTS_ACTIVE` … `HALTED`).
    public enum ChannelState: UInt64, Sendable {
        case active = 0
        case done = 1
        case suspended = 2
        case halted = 3
    }

    /// CHANERR (`IOAT_CHANERR_*`): the errors this model detects.
    public struct ChannelError: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// `NEXT_ADDR_ERR`: a descriptor reached through `next` could not be fetched.
        public static let nextAddress = ChannelError(rawValue: 0x0004)
        /// `NEXT_DESC_ALIGN_ERR`: `next` is not 64-byte aligned.
        public static let nextDescriptorAlignment = ChannelError(rawValue: 0x0008)
        /// `CHAIN_ADDR_VALUE_ERR`: CHAINADDR is not 64-byte aligned or its descriptor could not be fetched.
        public static let chainAddressValue = ChannelError(rawValue: 0x0010)
        /// `READ_DATA_ERR`: a source read failed (an IOMMU fault, bus mastering off).
        public static let readData = ChannelError(rawValue: 0x0100)
        /// `WRITE_DATA_ERR`: a destination write failed.
        public static let writeData = ChannelError(rawValue: 0x0200)
        /// `CONTROL_ERR`: an operation other than copy.
        public static let descriptorControl = ChannelError(rawValue: 0x0400)
        /// `LENGTH_ERR`: size 0 or beyond 1 << XFERCAP.
        public static let transferSize = ChannelError(rawValue: 0x0800)
        /// `COMPLETION_ADDR_ERR`: CHANCMP is not 8-byte aligned or the completion could not be written.
        public static let completionAddress = ChannelError(rawValue: 0x1000)
        /// The errors a channel may go on after when ANY_ERR_ABORT_EN is clear
        /// (`IOAT_CHANERR_RECOVER_MASK`).
        static let data: ChannelError = [.readData, .writeData]
    }
}
