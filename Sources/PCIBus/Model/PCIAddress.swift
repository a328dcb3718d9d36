/// A PCI function address: domain (segment), bus, device (slot) and function.
///
/// Mirrors the kernel's `pci_name()` format, `%04x:%02x:%02x.%d`; domains wider than 16 bits
/// (VMD-style `10000:`) print with as many digits as they need, as the kernel does.
public struct PCIAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var domain: UInt32
    public var bus: UInt8
    public var device: UInt8
    public var function: UInt8

    public init(domain: UInt32 = 0, bus: UInt8, device: UInt8, function: UInt8) {
        precondition(device < 32 && function < 8, "device must be < 32 and function < 8")
        self.domain = domain
        self.bus = bus
        self.device = device
        self.function = function
    }

    /// Device and function packed as the kernel's `devfn` (`PCI_DEVFN(slot, func)`).
    public var devfn: UInt8 { device << 3 | function }

    /// The 16-bit requester ID (`PCI_DEVID(bus, devfn)`).
    public var requesterID: UInt16 { UInt16(bus) << 8 | UInt16(devfn) }

    /// The address of another function on the same bus.
    public func sibling(devfn: UInt8) -> PCIAddress {
        PCIAddress(domain: domain, bus: bus, device: devfn >> 3, function: devfn & 7)
    }

    public var description: String {
        hex(domain, width: 4) + ":" + hex(bus, width: 2) + ":" + hex(device, width: 2) + "." + String(function)
    }

    /// The short form lspci prints for domain 0 (`00:1c.0`).
    public var shortDescription: String {
        domain == 0 ? String(description.dropFirst(5)) : description
    }

    /// Parses `dddd:bb:dd.f` (4 to 8 hex digits of domain) or `bb:dd.f` (domain 0).
    public init?(parsing text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { return nil }
        let domainText = parts.count == 3 ? parts[0] : "0"
        guard parts.count == 2 || (4...8).contains(domainText.count) else { return nil }
        let slotParts = parts[parts.count - 1].split(separator: ".", omittingEmptySubsequences: false)
        guard slotParts.count == 2, parts[parts.count - 2].count == 2, slotParts[0].count == 2,
            slotParts[1].count == 1,
            let domain = UInt32(domainText, radix: 16),
            let bus = UInt8(parts[parts.count - 2], radix: 16),
            let device = UInt8(slotParts[0], radix: 16), device < 32,
            let function = UInt8(slotParts[1], radix: 8), function < 8
        else { return nil }
        self.init(domain: domain, bus: bus, device: device, function: function)
    }

    public static func < (lhs: PCIAddress, rhs: PCIAddress) -> Bool {
        (lhs.domain, lhs.bus, lhs.devfn) < (rhs.domain, rhs.bus, rhs.devfn)
    }
}

/// Lowercase hex, zero-padded to at least `width` digits.
func hex(_ value: some BinaryInteger, width: Int) -> String {
    let digits = String(value, radix: 16)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
