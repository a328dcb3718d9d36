import Glibc
import KernelRules
import SystemPackage
import VFIO

/// A userspace driver for Intel CBDMA — I/OAT 3.2 or 3.3 at 8086:2021, the model
/// (`DeviceModels.CBDMA`) or the real function — in the shape of the VFIO selftests' ioat
/// driver (`lib/drivers/ioat/ioat.c`): one 64-byte `ioat_dma_descriptor` linked to itself, so a
/// single DMACOUNT write runs `count` copies. Unlike the selftests' driver it asks for a
/// completion (`compl_write`) and has `memcpy_wait` check it names the descriptor. Once the
/// channel is DONE it is suspended for the next start; a halted channel is reported with its
/// CHANERR bits and reset, so the device stays usable (`mix_and_match`). `send_msi` is an 8-byte
/// copy with `int_en`, signalled on MSI-X vector 0.
public final class CBDMADriver: VFIOPCIDriver {
    public static let name = "ioat"
    public static let vendorID: UInt16 = 0x8086
    public static let deviceID: UInt16 = 0x2021

    /// BAR0 registers (`registers.h`): the device's, then channel 0's at 0x80.
    enum Register {
        static let transferCapability: UInt64 = 0x01
        static let interruptControl: UInt64 = 0x03
        static let version: UInt64 = 0x08
        static let channelControl: UInt64 = 0x80
        static let channelCommand: UInt64 = 0x84
        static let dmaCount: UInt64 = 0x86
        static let channelStatus: UInt64 = 0x88
        static let chainAddress: UInt64 = 0x90
        static let completionAddress: UInt64 = 0x98
        static let channelError: UInt64 = 0xa8
    }

    /// Config registers the driver reads and clears: DMAUNCERRSTS and CHANERR_INT.
    static let errorLogs = [0x148, 0x180]
    /// INTRCTRL `MSIX_VECTOR_CONTROL`, as the selftests' driver writes it.
    static let msixVectorControl: UInt8 = 0x08
    /// CHANCTRL `INT_REARM | ANY_ERR_ABORT_EN`.
    static let run: UInt16 = 0x0009
    /// CHANCMD `RESET` and `SUSPEND`.
    static let reset: UInt8 = 0x20
    static let suspend: UInt8 = 0x04
    /// CHANSTS states (bits 2:0).
    static let done: UInt64 = 1
    static let suspended: UInt64 = 2
    static let halted: UInt64 = 3
    /// `ctl`: `int_en`, `compl_write`; op 0 is `IOAT_OP_COPY`.
    static let interruptOnCompletion: UInt32 = 0x01
    static let completionWrite: UInt32 = 0x08

    /// CHANERR bits 0…18 as the kernel's `ioat_print_chanerrs` names them.
    static let errors = [
        "DMA Transfer Source Address Error", "DMA Transfer Destination Address Error", "Next Descriptor Address Error", "Descriptor Error",
        "Chan Address Value Error", "CHANCMD Error", "Chipset Uncorrectable Data Integrity Error", "DMA Uncorrectable Data Integrity Error",
        "Read Data Error", "Write Data Error", "Descriptor Control Error", "Descriptor Transfer Size Error", "Completion Address Error",
        "Interrupt Configuration Error", "Super extended descriptor Address Error", "Unaffiliated Error", "CRC or XOR P Error",
        "XOR Q Error", "Descriptor Count Error",
    ]

    /// The driver's region: the descriptor, the completion, `send_msi`'s source and destination.
    private static let descriptorOffset = 0
    private static let completionOffset = 64
    private static let messageOffset = 128
    /// How long a wait polls CHANCMD or CHANSTS (the selftests' driver allows 5 s for a reset).
    private static let timeout = Duration.seconds(5)

    public let device: UserspaceDevice
    public let interrupt: EventFD
    public private(set) var maxMemcpySize: UInt64 = 0
    public private(set) var maxMemcpyCount: UInt64 = 0
    private var region: DMARegion?

    public init(_ device: UserspaceDevice) throws(VFIOError) {
        self.device = device
        interrupt = try EventFD()
    }

    /// `ioat_probe`: the SKX device ID and VER 3.2 or 3.3.
    public static func probe(_ device: UserspaceDevice) throws(VFIOError) -> Bool {
        guard try device.matches(vendor: vendorID, device: deviceID) else { return false }
        return [0x32, 0x33].contains(try device.device.readRegister(UInt8.self, bar: 0, offset: Register.version))
    }

    /// `ioat_init`: memory, bus master and INTx disable on, the channel reset, MSI-X vector 0 wired.
    public func initialize() throws(VFIOError) {
        region = try device.mapDMA(size: 4096)
        try device.device.writeConfig(UInt16(0x0406), at: 0x04)
        try resetChannel()
        try write8(Register.interruptControl, Self.msixVectorControl)
        try device.device.enableInterrupts(.msix, eventFDs: [interrupt.fd])
        maxMemcpySize = 1 << UInt64(try read8(Register.transferCapability) & 0x1f)
        maxMemcpyCount = UInt64(UInt16.max)
    }

    /// `ioat_remove`: the channel reset, interrupts off, bus mastering off.
    public func remove() throws(VFIOError) {
        try resetChannel()
        try device.device.disableInterrupts(.msix)
        try device.setBusMaster(false)
        if let region { try device.unmapDMA(region) }
        region = nil
    }

    public func memcpyStart(source: UInt64, destination: UInt64, size: UInt64, count: UInt64) throws(VFIOError) {
        try start(source: source, destination: destination, size: size, count: count, interrupt: false)
    }

    /// `ioat_memcpy_wait`: nil once the channel is DONE and its completion names the descriptor
    /// (the channel then suspended); a halted channel's errors, after resetting it.
    public func memcpyWait() throws(VFIOError) -> String? {
        let region = try initialized(region)
        let status = try waitForStatus { $0 == Self.done || $0 == Self.halted }
        if status & 7 == Self.halted {
            let errors = try read32(Register.channelError)
            try resetChannel()
            return "channel halted: CHANERR 0x\(String(errors, radix: 16)) (\(Self.describe(errors)))"
        }
        let completion = UInt64(littleEndian: region.bytes.load(fromByteOffset: Self.completionOffset, as: UInt64.self))
        let descriptor = region.iova + UInt64(Self.descriptorOffset)
        try write8(Register.channelCommand, Self.suspend)
        _ = try waitForStatus { $0 == Self.suspended }
        guard completion == descriptor | Self.done else {
            return "completion 0x\(String(completion, radix: 16)), expected descriptor 0x\(String(descriptor, radix: 16)) done"
        }
        return nil
    }

    /// `ioat_send_msi`: an 8-byte copy inside the driver's region with `int_en`.
    public func sendMSI() throws(VFIOError) {
        let region = try initialized(region)
        let message = region.iova + UInt64(Self.messageOffset)
        try start(source: message, destination: message + 8, size: 8, count: 1, interrupt: true)
        if let failure = try memcpyWait() { throw VFIOError(.ioError, rule: .VST_06, "\(Self.name): send_msi: \(failure)") }
    }

    /// `__ioat_memcpy_start`: the self-linked descriptor, then CHAINADDR, CHANCMP, CHANCTRL and
    /// DMACOUNT = `count`.
    private func start(source: UInt64, destination: UInt64, size: UInt64, count: UInt64, interrupt: Bool) throws(VFIOError) {
        let region = try initialized(region)
        guard (1...maxMemcpySize).contains(size), (1...maxMemcpyCount).contains(count) else {
            throw VFIOError(
                .invalidArgument, rule: .VST_06, "\(Self.name): \(count) copies of \(size) bytes (1 … \(maxMemcpyCount) of 1 … \(maxMemcpySize))")
        }
        let descriptor = region.iova + UInt64(Self.descriptorOffset)
        let control = Self.completionWrite | (interrupt ? Self.interruptOnCompletion : 0)
        let words: [UInt64] = [size | UInt64(control) << 32, source, destination, descriptor, 0, 0, 0, 0]
        for (n, word) in words.enumerated() {
            region.bytes.storeBytes(of: word.littleEndian, toByteOffset: Self.descriptorOffset + 8 * n, as: UInt64.self)
        }
        region.bytes.storeBytes(of: UInt64(0), toByteOffset: Self.completionOffset, as: UInt64.self)
        try device.device.writeRegister(descriptor, bar: 0, offset: Register.chainAddress)
        try device.device.writeRegister(region.iova + UInt64(Self.completionOffset), bar: 0, offset: Register.completionAddress)
        try device.device.writeRegister(Self.run, bar: 0, offset: Register.channelControl)
        try device.device.writeRegister(UInt16(count), bar: 0, offset: Register.dmaCount)
    }

    /// `ioat_reset`: the error logs cleared (each written back to itself), CHANCMD RESET until it
    /// self-clears; the channel must then be HALTED.
    private func resetChannel() throws(VFIOError) {
        for offset in Self.errorLogs { try device.device.writeConfig(try device.device.readConfig(UInt32.self, at: offset), at: offset) }
        try write32(Register.channelError, try read32(Register.channelError))
        try write8(Register.channelCommand, Self.reset)
        let deadline = ContinuousClock.now + Self.timeout
        while try read8(Register.channelCommand) & Self.reset != 0 {
            guard ContinuousClock.now < deadline else { throw VFIOError(.timedOut, rule: .VST_06, "\(Self.name): CHANCMD RESET did not complete") }
            usleep(1000)
        }
        let status = try device.device.readRegister(UInt64.self, bar: 0, offset: Register.channelStatus)
        guard status & 7 == Self.halted else {
            throw VFIOError(.ioError, rule: .VST_06, "\(Self.name): CHANSTS 0x\(String(status, radix: 16)) after reset, expected HALTED")
        }
    }

    /// Polls CHANSTS until its state satisfies `until`; `ETIMEDOUT` after `timeout`.
    private func waitForStatus(until: (UInt64) -> Bool) throws(VFIOError) -> UInt64 {
        let deadline = ContinuousClock.now + Self.timeout
        while true {
            let status = try device.device.readRegister(UInt64.self, bar: 0, offset: Register.channelStatus)
            if until(status & 7) { return status }
            guard ContinuousClock.now < deadline else {
                throw VFIOError(.timedOut, rule: .VST_06, "\(Self.name): CHANSTS 0x\(String(status, radix: 16)) after \(Self.timeout)")
            }
        }
    }

    private func read8(_ offset: UInt64) throws(VFIOError) -> UInt8 { try device.device.readRegister(UInt8.self, bar: 0, offset: offset) }

    private func write8(_ offset: UInt64, _ value: UInt8) throws(VFIOError) { try device.device.writeRegister(value, bar: 0, offset: offset) }

    /// The names of CHANERR's bits.
    static func describe(_ errors: UInt32) -> String {
        (0..<32).filter { errors >> $0 & 1 != 0 }.map { $0 < Self.errors.count ? Self.errors[$0] : "bit \($0)" }.joined(separator: ", ")
    }
}
