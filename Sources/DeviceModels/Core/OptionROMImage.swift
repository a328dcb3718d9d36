import PCIBus

/// A PCI expansion ROM image as firmware finds it (PCI Firmware Specification 3.x, §5.1): one
/// legacy x86 image — the 0x55AA header with its length in 512-byte units, an initialisation entry
/// that returns at once (`retf`), the PCI Data Structure ("PCIR": vendor and device ID, class
/// code, image length, code type 0, the last-image bit) — padded to its length with a checksum
/// byte making every byte sum to 0 mod 256, as the BIOS checks.
public enum OptionROMImage {
    /// An image of `blocks` × 512 bytes for a function with these IDs and class code.
    public static func legacy(vendor: UInt16, device: UInt16, classCode: UInt32, blocks: UInt8 = 4) -> [UInt8] {
        precondition(blocks > 0, "an option ROM image holds at least one 512-byte block")
        var image = [UInt8](repeating: 0, count: Int(blocks) * 512)
        func put16(_ at: Int, _ value: UInt16) { (image[at], image[at + 1]) = (UInt8(value & 0xff), UInt8(value >> 8)) }
        put16(0, PCIExpansionROM.signature)
        image[2] = blocks  // initialisation size
        image[3] = 0xcb  // entry point: retf
        let pcir = 0x1c
        put16(0x18, UInt16(pcir))
        for (i, byte) in "PCIR".utf8.enumerated() { image[pcir + i] = byte }
        put16(pcir + 4, vendor)
        put16(pcir + 6, device)
        put16(pcir + 0x0a, 0x18)  // structure length
        image[pcir + 0x0c] = 3  // structure revision (PCI 3.0)
        (image[pcir + 0x0d], image[pcir + 0x0e], image[pcir + 0x0f]) = (UInt8(classCode & 0xff), UInt8(classCode >> 8 & 0xff), UInt8(classCode >> 16 & 0xff))
        put16(pcir + 0x10, UInt16(blocks))  // image length, 512-byte units
        put16(pcir + 0x12, 1)  // code revision
        image[pcir + 0x14] = 0  // code type: x86 PC-AT compatible
        image[pcir + 0x15] = 0x80  // last image
        put16(pcir + 0x16, UInt16(blocks))  // maximum runtime image length
        let sum = image.reduce(UInt8(0), &+)
        image[image.count - 1] = 0 &- sum
        return image
    }
}
