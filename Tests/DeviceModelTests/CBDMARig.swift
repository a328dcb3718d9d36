import DeviceModels
import Machine
import PCIBus
import SampleDrivers
import VFIO

/// The CBDMA model at 00:04.0 of the default machine, rebound to vfio-pci and opened: bus master
/// and MSI-X vector 0 on, and a 256 KiB DMA region with descriptors in its first 4 KiB (64 bytes
/// each), the completion at 0x1000 and data from 0x10000. Registers are BAR0 offsets.
struct CBDMARig {
    static let address = PCIAddress(parsing: "0000:00:04.0")!
    static let unmapped: UInt64 = 0x7_0000_0000
    static let completionOffset = 0x1000
    static let dataOffset = 0x10000

    /// Channel 0's registers (`registers.h`, from BAR0's start).
    enum Channel {
        static let control: UInt64 = 0x80
        static let command: UInt64 = 0x84
        static let dmaCount: UInt64 = 0x86
        static let status: UInt64 = 0x88
        static let chainAddress: UInt64 = 0x90
        static let completion: UInt64 = 0x98
        static let current: UInt64 = 0xa0
        static let error: UInt64 = 0xa8
        static let errorMask: UInt64 = 0xac
    }

    /// CHANCTRL bits.
    enum Control {
        static let rearm: UInt16 = 0x01
        static let errorCompletion: UInt16 = 0x04
        static let abort: UInt16 = 0x08
        static let errorInterrupt: UInt16 = 0x10
        /// What the selftests' driver writes before each start.
        static let run = rearm | abort
    }

    /// Descriptor `ctl` bits.
    enum Descriptor {
        static let interrupt: UInt32 = 0x01
        static let completion: UInt32 = 0x08
        static let null: UInt32 = 0x20
    }

    /// CHANSTS states.
    enum State {
        static let done: UInt64 = 1
        static let suspended: UInt64 = 2
        static let halted: UInt64 = 3
    }

    let machine: SimulatedMachine
    let device: UserspaceDevice
    let region: DMARegion
    let interrupt: EventFD
    var model: CBDMA { machine.devices[Self.address] as! CBDMA }

    init() throws {
        machine = try SimulatedMachine.load(machine: "default", attaching: [.init(address: Self.address, model: "cbdma")])
        device = try UserspaceDevice(Self.address, in: machine.vfio)
        region = try device.mapDMA(size: 256 << 10)
        interrupt = try EventFD()
        try device.setBusMaster(true)
        try device.device.enableInterrupts(.msix, eventFDs: [interrupt.fd])
    }

    func close() { device.close() }

    /// A `width`-byte register read.
    func read(_ offset: UInt64, width: Int = 8) throws -> UInt64 {
        switch width {
        case 1: UInt64(try device.device.readRegister(UInt8.self, bar: 0, offset: offset))
        case 2: UInt64(try device.device.readRegister(UInt16.self, bar: 0, offset: offset))
        case 4: UInt64(try device.device.readRegister(UInt32.self, bar: 0, offset: offset))
        default: try device.device.readRegister(UInt64.self, bar: 0, offset: offset)
        }
    }

    /// A register write as wide as `value`'s type.
    func write<T: FixedWidthInteger & UnsignedInteger>(_ value: T, _ offset: UInt64) throws {
        try device.device.writeRegister(value, bar: 0, offset: offset)
    }

    /// CHANSTS.
    var status: UInt64 { get throws { try read(Channel.status) } }

    /// The completion as the channel wrote it.
    var completion: UInt64 { region.bytes.load(fromByteOffset: Self.completionOffset, as: UInt64.self) }

    func iova(_ offset: Int) -> UInt64 { region.iova + UInt64(offset) }

    /// The IOVA of descriptor `index`.
    func descriptor(_ index: Int) -> UInt64 { iova(64 * index) }

    /// Writes descriptor `index`; `next` defaults to itself.
    func place(_ index: Int, size: UInt32, control: UInt32 = 0, source: UInt64 = 0, destination: UInt64 = 0, next: UInt64? = nil) {
        let words: [UInt64] = [UInt64(size) | UInt64(control) << 32, source, destination, next ?? descriptor(index), 0, 0, 0, 0]
        for (n, word) in words.enumerated() { region.bytes.storeBytes(of: word.littleEndian, toByteOffset: 64 * index + 8 * n, as: UInt64.self) }
    }

    /// What `__ioat_memcpy_start` writes (with CHANCMP too): CHAINADDR, CHANCMP, CHANCTRL, DMACOUNT.
    func start(at chain: UInt64, count: UInt16, control: UInt16 = Control.run) throws {
        try write(chain, Channel.chainAddress)
        try write(iova(Self.completionOffset), Channel.completion)
        try write(control, Channel.control)
        try write(count, Channel.dmaCount)
    }

    /// A one-byte shift as a descriptor: `size` bytes at the data to one byte further. Each run
    /// moves the pattern on by one, so the data tells how often it ran.
    func placeShift(_ index: Int, size: Int, control: UInt32 = 0, next: UInt64? = nil) {
        place(index, size: UInt32(size), control: control, source: iova(Self.dataOffset), destination: iova(Self.dataOffset + 1), next: next)
    }

    /// Fills `size + 1` bytes of data with a pattern for `placeShift`.
    func fillShiftPattern(size: Int) {
        for i in 0...size { region.bytes[Self.dataOffset + i] = Self.pattern(i) }
    }

    /// Whether the data is the pattern shifted `runs` times by a `size`-byte shift.
    func shifted(_ runs: Int, size: Int) -> Bool {
        (0...size).allSatisfy { region.bytes[Self.dataOffset + $0] == Self.pattern(max(0, $0 - runs)) }
    }

    private static func pattern(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 7 &+ 3) }
}
