/// Expansion ROM helpers of the PCI core (`drivers/pci/rom.c`, not in `../shared/kernel`; the
/// layout is the PCI Firmware Specification's): the ROM BAR register bits, and the walk that finds
/// how much of a ROM BAR its images fill (`pci_get_rom_size`).
public enum PCIExpansionROM {
    /// `PCI_ROM_ADDRESS`: the ROM BAR register in a type 0 header.
    public static let register = 0x30
    /// `PCI_ROM_ADDRESS_ENABLE`: the ROM decodes only while this bit (and memory decode) is set.
    public static let enable: UInt32 = 0x1
    /// `PCI_ROM_ADDRESS_MASK`: the address bits (31:11).
    public static let addressMask: UInt32 = ~0x7ff
    /// A ROM image starts with 0x55 0xAA.
    public static let signature: UInt16 = 0xaa55
    /// The PCI Data Structure's "PCIR", read as a little-endian dword.
    public static let dataSignature: UInt32 = 0x5249_4350

    /// `pci_get_rom_size`: the bytes the ROM's images fill, read through `byte` (offsets inside a
    /// window of `length` bytes). Image by image: a 0xAA55 header, its PCI Data Structure (pointer
    /// at +0x18) signed "PCIR", its length in 512-byte units (+0x10) and the last-image bit (bit 7
    /// of +0x15). The walk stops at a bad signature, a zero length, the last image or the window's
    /// end; the result never exceeds `length`. 0 means no valid image (the first header is bad).
    public static func imageSize(length: UInt64, byte: (UInt64) -> UInt8) -> UInt64 {
        func word(_ at: UInt64) -> UInt64? { at + 2 <= length ? UInt64(byte(at)) | UInt64(byte(at + 1)) << 8 : nil }
        func dword(_ at: UInt64) -> UInt64? { word(at).flatMap { low in word(at + 2).map { low | $0 << 16 } } }
        var image: UInt64 = 0
        while true {
            guard word(image) == UInt64(signature), let pointer = word(image + 0x18),
                dword(image + pointer) == UInt64(dataSignature), let units = word(image + pointer + 0x10),
                image + pointer + 0x15 < length
            else { break }
            let last = byte(image + pointer + 0x15) & 0x80 != 0
            image += units * 512
            if units == 0 || last || image >= length { break }
            // A further image must start with the signature, else the ROM ends here.
            guard word(image) == UInt64(signature) else { break }
        }
        return min(image, length)
    }
}

extension PCIDeviceBackend {
    /// No expansion ROM by default.
    public var romResource: PCIBARResource? { nil }
    /// Nothing decodes without a ROM: all ones.
    public func readROM(offset: UInt64, width: Int) -> UInt64 { width >= 8 ? .max : (1 << UInt64(8 * width)) - 1 }
}
