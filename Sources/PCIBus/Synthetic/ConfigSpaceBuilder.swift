/// Builds a function's config space byte by byte: header, a standard capability chain from 0x40
/// and an extended chain from 0x100. Used to generate topologies (benchmarks, property tests)
/// and the config space of virtual devices (`DeviceModels.VirtualConfigBuilder`).
public struct ConfigSpaceBuilder: Sendable {
    public private(set) var bytes: [UInt8]
    private var nextStandard = 0x40
    private var lastStandardPointer = PCIRegister.capabilityPointer
    private var nextExtended = PCIRegister.legacySpaceSize
    private var lastExtendedHeader: Int?

    /// A type 0 (endpoint) or type 1 (bridge) header with the given identity.
    public init(
        vendor: UInt16, device: UInt16, classCode: UInt32, headerType: PCIHeaderType = .normal,
        multifunction: Bool = false, size: Int = PCIRegister.extendedSpaceSize
    ) {
        bytes = [UInt8](repeating: 0, count: size)
        write16(PCIRegister.vendorID, vendor)
        write16(PCIRegister.deviceID, device)
        write32(PCIRegister.revision, classCode << 8 | 0x01)
        bytes[PCIRegister.headerType] = headerType.rawValue | (multifunction ? PCIRegister.headerTypeMultifunction : 0)
    }

    public mutating func write8(_ offset: Int, _ value: UInt8) { bytes[offset] = value }
    public mutating func write16(_ offset: Int, _ value: UInt16) {
        bytes[offset] = UInt8(value & 0xff)
        bytes[offset + 1] = UInt8(value >> 8)
    }
    public mutating func write32(_ offset: Int, _ value: UInt32) {
        write16(offset, UInt16(value & 0xffff))
        write16(offset + 2, UInt16(value >> 16))
    }

    /// Bridge bus numbers (type 1 header).
    public mutating func setBuses(primary: UInt8, secondary: UInt8, subordinate: UInt8) {
        bytes[PCIRegister.primaryBus] = primary
        bytes[PCIRegister.secondaryBus] = secondary
        bytes[PCIRegister.subordinateBus] = subordinate
    }

    /// Appends a standard capability with `body` after its 2-byte header; returns its offset.
    @discardableResult
    public mutating func addCapability(_ id: UInt16, body: [UInt8]) -> Int {
        let offset = nextStandard
        write16(PCIRegister.status, UInt16(bytes[PCIRegister.status]) | PCIRegister.statusCapabilityList)
        bytes[lastStandardPointer] = UInt8(offset)
        bytes[offset] = UInt8(id)
        for (i, byte) in body.enumerated() { bytes[offset + 2 + i] = byte }
        lastStandardPointer = offset + 1
        nextStandard = (offset + 2 + body.count + 3) & ~3
        return offset
    }

    /// Leaves the capability space up to `offset` unused, so the next standard capability sits
    /// there — as on a function whose firmware spaced its capabilities out.
    public mutating func skipCapabilities(to offset: Int) {
        precondition(
            offset >= nextStandard && offset % 4 == 0 && offset < PCIRegister.legacySpaceSize,
            "capability offset 0x\(String(offset, radix: 16)) is taken or out of range")
        nextStandard = offset
    }

    /// A PCI Express capability of the given port type; `flr` sets Device Capabilities bit 28.
    /// Returns its offset.
    @discardableResult
    public mutating func addPCIExpress(_ type: PCIePortType, flr: Bool = false) -> Int {
        let flags: UInt16 = 0x0002 | UInt16(type.rawValue) << 4
        let deviceCapabilities: UInt32 = flr ? 1 << 28 : 0
        var body = [UInt8](repeating: 0, count: 58)
        body[0] = UInt8(flags & 0xff)
        body[1] = UInt8(flags >> 8)
        for i in 0..<4 { body[2 + i] = UInt8((deviceCapabilities >> (8 * UInt32(i))) & 0xff) }
        return addCapability(PCICapabilityID.pciExpress, body: body)
    }

    /// Appends an extended capability; returns its offset.
    @discardableResult
    public mutating func addExtendedCapability(_ id: UInt16, version: UInt8 = 1, body: [UInt8]) -> Int {
        let offset = nextExtended
        if let previous = lastExtendedHeader {
            write32(previous, UInt32(readU32(previous)) | UInt32(offset) << 20)
        }
        write32(offset, UInt32(id) | UInt32(version & 0xf) << 16)
        for (i, byte) in body.enumerated() { bytes[offset + 4 + i] = byte }
        lastExtendedHeader = offset
        nextExtended = (offset + 4 + body.count + 3) & ~3
        return offset
    }

    /// An ACS extended capability with the given capability and control bits; returns its offset.
    @discardableResult
    public mutating func addACS(capability: ACSFlags, control: ACSFlags) -> Int {
        let cap = capability.rawValue
        let ctrl = control.rawValue
        return addExtendedCapability(
            PCIExtendedCapabilityID.acs,
            body: [UInt8(cap & 0xff), UInt8(cap >> 8), UInt8(ctrl & 0xff), UInt8(ctrl >> 8)])
    }

    private func readU32(_ offset: Int) -> UInt32 { PCIConfigSpace(bytes: Array(bytes[offset..<offset + 4])).u32(0) }
}
