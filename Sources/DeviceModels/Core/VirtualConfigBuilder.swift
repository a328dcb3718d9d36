import PCIBus

/// Where a function's MSI capability sits and what it offers (`struct msi_desc` setup).
public struct MSILayout: Sendable, Equatable {
    public let offset: Int
    public let vectors: Int
    public let is64Bit: Bool
}

/// Where a function's MSI-X capability, table and pending-bit array sit.
public struct MSIXLayout: Sendable, Equatable {
    public let offset: Int
    public let tableSize: Int
    public let tableBAR: Int
    public let tableOffset: UInt64
    public let pbaBAR: Int
    public let pbaOffset: UInt64
}

/// Builds a virtual function's config space with the masks hardware gives each register: the
/// header (identity, command, status, BARs, interrupt pin), then a capability list — power
/// management, MSI, MSI-X, PCI Express (with FLR) and ACS for ports — each with its read-only,
/// read-write and write-1-to-clear bits as the PCI specifications define them.
public struct VirtualConfigBuilder: Sendable {
    private var config: ConfigSpaceBuilder
    private var writable: [UInt8]
    private var writeOneToClear: [UInt8]
    public private(set) var bars: [PCIBARResource?] = Array(repeating: nil, count: 6)
    public private(set) var msi: MSILayout?
    public private(set) var msix: MSIXLayout?
    public private(set) var pcieOffset: Int?
    public private(set) var supportsFLR = false
    /// The expansion ROM: its BAR and the bytes behind it (`addExpansionROM`).
    public private(set) var rom: (resource: PCIBARResource, image: [UInt8])?

    /// `PCI_COMMAND`: I/O, memory, bus master, SERR, INTx disable are read-write.
    static let commandWritable: UInt16 = 0x0547
    /// `PCI_STATUS`: parity, signalled/received aborts, SERR, detected parity error are RW1C.
    static let statusWriteOneToClear: UInt16 = 0xf900

    /// An endpoint (type 0 header) with the given identity; `pcie` gives 4 KiB of config space,
    /// `multifunction` sets the header type's multi-function bit (a function of a device with others).
    public init(
        vendor: UInt16, device: UInt16, classCode: UInt32, subsystemVendor: UInt16 = 0, subsystem: UInt16 = 0,
        revision: UInt8 = 1, interruptPin: UInt8 = 1, pcie: Bool = true, multifunction: Bool = false
    ) {
        let size = pcie ? PCIRegister.extendedSpaceSize : PCIRegister.legacySpaceSize
        config = ConfigSpaceBuilder(vendor: vendor, device: device, classCode: classCode, multifunction: multifunction, size: size)
        writable = Array(repeating: 0, count: size)
        writeOneToClear = Array(repeating: 0, count: size)
        config.write8(PCIRegister.revision, revision)
        config.write16(PCIRegister.subsystemVendorID, subsystemVendor)
        config.write16(PCIRegister.subsystemID, subsystem)
        config.write8(0x3d, interruptPin)
        mask(PCIRegister.command, width: 2, writable: UInt32(Self.commandWritable))
        mask(PCIRegister.status, width: 2, writeOneToClear: UInt32(Self.statusWriteOneToClear))
        mask(0x0c, width: 1, writable: 0xff)  // cache line size
        mask(0x3c, width: 1, writable: 0xff)  // interrupt line
    }

    private mutating func mask(_ offset: Int, width: Int, writable bits: UInt32 = 0, writeOneToClear clear: UInt32 = 0) {
        for i in 0..<width {
            writable[offset + i] |= UInt8(truncatingIfNeeded: bits >> (8 * UInt32(i)))
            writeOneToClear[offset + i] |= UInt8(truncatingIfNeeded: clear >> (8 * UInt32(i)))
        }
    }

    /// BAR `index` decoding `resource`: the address bits above the size are read-write, the flag
    /// bits and those below the size read-only — so writing all ones reads back the size mask.
    /// A 64-bit BAR takes `index + 1` too.
    public mutating func addBAR(_ index: Int, _ resource: PCIBARResource) {
        precondition((0..<6).contains(index) && resource.size.nonzeroBitCount == 1, "BAR \(index): size must be a power of two")
        precondition(resource.kind != .memory64 || index < 5, "a 64-bit BAR needs two slots")
        let register = 0x10 + 4 * index
        let addressMask = ~(resource.size - 1)
        config.write32(register, UInt32(truncatingIfNeeded: resource.busAddress) | resource.registerFlags)
        mask(register, width: 4, writable: UInt32(truncatingIfNeeded: addressMask) & (resource.kind == .io ? ~0x3 : ~0xf))
        if resource.kind == .memory64 {
            config.write32(register + 4, UInt32(truncatingIfNeeded: resource.busAddress >> 32))
            mask(register + 4, width: 4, writable: UInt32(truncatingIfNeeded: addressMask >> 32))
        }
        bars[index] = resource
    }

    /// An expansion ROM BAR of `size` bytes (a power of two, 2 KiB or more) at 32-bit bus address
    /// `busAddress`, holding `image` (the bytes past it read 0xFF, as erased flash does): address
    /// bits above the size and the enable bit read-write, the enable bit clear at power-on.
    public mutating func addExpansionROM(_ image: [UInt8], size: UInt64, busAddress: UInt32) {
        precondition(size.nonzeroBitCount == 1 && size >= 0x800 && UInt64(image.count) <= size, "ROM BAR: size must be a power of two ≥ 2 KiB and hold the image")
        let register = PCIExpansionROM.register
        config.write32(register, busAddress & PCIExpansionROM.addressMask)
        mask(register, width: 4, writable: UInt32(truncatingIfNeeded: ~(size - 1)) | PCIExpansionROM.enable)
        rom = (PCIBARResource(kind: .memory32, size: size, busAddress: UInt64(busAddress & PCIExpansionROM.addressMask)), image)
    }

    /// Places the next capability at `offset` (a multiple of 4 past the last one), as the
    /// function being modelled has it.
    public mutating func placeNextCapability(at offset: Int) { config.skipCapabilities(to: offset) }

    /// A device-specific register (or a capability field's value) at `offset`: `value` at power-on,
    /// `writable` bits read-write, `writeOneToClear` bits RW1C, the rest read-only.
    public mutating func addRegister(_ offset: Int, width: Int, value: UInt32 = 0, writable: UInt32 = 0, writeOneToClear: UInt32 = 0) {
        precondition(
            [1, 2, 4].contains(width) && offset >= 0 && offset + width <= config.bytes.count,
            "register 0x\(String(offset, radix: 16)) lies outside config space")
        for i in 0..<width { config.write8(offset + i, UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))) }
        mask(offset, width: width, writable: writable, writeOneToClear: writeOneToClear)
    }

    /// Power management (PCI PM 1.2): D0–D3hot in PMCSR bits 0–1 read-write, PME status RW1C.
    public mutating func addPowerManagement() {
        let offset = config.addCapability(PCICapabilityID.powerManagement, body: [0x03, 0x00, 0x08, 0x00, 0x00, 0x00])
        mask(offset + 4, width: 2, writable: 0x0103, writeOneToClear: 0x8000)
    }

    /// MSI with `vectors` (1…32, a power of two), 64-bit addresses. Message control's enable and
    /// multiple-message-enable fields, the address and the data are read-write.
    public mutating func addMSI(vectors: Int) {
        precondition((1...32).contains(vectors) && vectors.nonzeroBitCount == 1, "MSI vectors must be 1, 2, 4, … 32")
        let control = UInt16(0x80 | (vectors.trailingZeroBitCount << 1))  // 64-bit capable, MMC
        let offset = config.addCapability(PCICapabilityID.msi, body: [UInt8(control & 0xff), 0] + Array(repeating: 0, count: 10))
        mask(offset + 2, width: 2, writable: 0x0071)
        mask(offset + 4, width: 4, writable: 0xffff_fffc)
        mask(offset + 8, width: 4, writable: 0xffff_ffff)
        mask(offset + 0x0c, width: 2, writable: 0xffff)
        msi = MSILayout(offset: offset, vectors: vectors, is64Bit: true)
    }

    /// MSI-X with `tableSize` vectors whose table and pending bits live in BARs. Enable and
    /// function mask are read-write; the table size and locations read-only.
    public mutating func addMSIX(tableSize: Int, tableBAR: Int, tableOffset: UInt64, pbaBAR: Int, pbaOffset: UInt64) {
        precondition((1...2048).contains(tableSize), "MSI-X table size must be 1 … 2048")
        let control = UInt16(tableSize - 1)
        let table = UInt32(truncatingIfNeeded: tableOffset) | UInt32(tableBAR)
        let pba = UInt32(truncatingIfNeeded: pbaOffset) | UInt32(pbaBAR)
        var body: [UInt8] = [UInt8(control & 0xff), UInt8(control >> 8)]
        for word in [table, pba] { body += (0..<4).map { UInt8(truncatingIfNeeded: word >> (8 * UInt32($0))) } }
        let offset = config.addCapability(PCICapabilityID.msix, body: body)
        mask(offset + 2, width: 2, writable: 0xc000)
        msix = MSIXLayout(
            offset: offset, tableSize: tableSize, tableBAR: tableBAR, tableOffset: tableOffset, pbaBAR: pbaBAR,
            pbaOffset: pbaOffset)
    }

    /// A PCI Express capability. Device Control is read-write (its bit 15, Initiate FLR, is what
    /// `pcie_flr` writes when `flr` is set), Device Status bits 0–3 are RW1C.
    public mutating func addPCIExpress(_ type: PCIePortType = .endpoint, flr: Bool = true) {
        let offset = config.addPCIExpress(type, flr: flr)
        mask(offset + 8, width: 2, writable: flr ? 0xffff : 0x7fff)
        mask(offset + 0x0a, width: 2, writeOneToClear: 0x000f)
        pcieOffset = offset
        supportsFLR = flr
    }

    /// ACS for a port: the control bits the capability advertises are read-write.
    public mutating func addACS(capability: ACSFlags, control: ACSFlags) {
        let offset = config.addACS(capability: capability, control: control.intersection(capability))
        mask(offset + 6, width: 2, writable: UInt32(capability.rawValue))
    }

    public func build() -> VirtualFunctionLayout {
        VirtualFunctionLayout(
            config: VirtualConfigSpace(bytes: config.bytes, writable: writable, writeOneToClear: writeOneToClear), bars: bars,
            msi: msi, msix: msix, pcieOffset: pcieOffset, supportsFLR: supportsFLR, rom: rom)
    }
}

/// Everything a `VirtualPCIDevice` is built from: its config space with masks, its BARs and
/// where its interrupt and PCI Express capabilities sit.
public struct VirtualFunctionLayout: Sendable {
    public var config: VirtualConfigSpace
    public var bars: [PCIBARResource?]
    public var msi: MSILayout?
    public var msix: MSIXLayout?
    public var pcieOffset: Int?
    public var supportsFLR: Bool
    /// The expansion ROM BAR and its contents, if any.
    public var rom: (resource: PCIBARResource, image: [UInt8])?

    public init(
        config: VirtualConfigSpace, bars: [PCIBARResource?], msi: MSILayout? = nil, msix: MSIXLayout? = nil,
        pcieOffset: Int? = nil, supportsFLR: Bool, rom: (resource: PCIBARResource, image: [UInt8])? = nil
    ) {
        self.rom = rom
        self.config = config
        self.bars = bars
        self.msi = msi
        self.msix = msix
        self.pcieOffset = pcieOffset
        self.supportsFLR = supportsFLR
    }
}
