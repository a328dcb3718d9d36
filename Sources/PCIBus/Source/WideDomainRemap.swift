#if canImport(Glibc)
    import Glibc
#endif

/// libpci's dump reader accepts 4- and 5-digit domains only (`dump_init`); a 6- to 8-digit
/// domain would be taken for text and its rows written into the previous function. Such files
/// are fed to libpci as a copy whose wide domains are renamed to unused 5-digit ones, and the
/// addresses libpci returns are renamed back.
struct WideDomainRemap {
    private var forward: [UInt32: UInt32] = [:]
    private var backward: [UInt32: UInt32] = [:]

    init(entries: [DumpFileScanner.FunctionEntry]) {
        let wide = Set(entries.filter { $0.domainDigits > 5 }.map(\.address.domain))
        guard !wide.isEmpty else { return }
        let used = Set(entries.map(\.address.domain))
        var candidate: UInt32 = 0xfffff
        for domain in wide.sorted() {
            while used.contains(candidate) { candidate -= 1 }
            forward[domain] = candidate
            backward[candidate] = domain
            candidate -= 1
        }
    }

    var isNeeded: Bool { !forward.isEmpty }

    func restore(_ device: LibPCIDevice) -> LibPCIDevice {
        guard let domain = backward[device.address.domain] else { return device }
        var address = device.address
        address.domain = domain
        return LibPCIDevice(address: address, config: device.config, driver: device.driver, iommuGroup: device.iommuGroup)
    }

    /// Writes the renamed copy to a private temporary file and returns its path.
    func writeRemappedCopy(of bytes: UnsafeBufferPointer<UInt8>, entries: [DumpFileScanner.FunctionEntry], original: String)
        throws(PCIBusError) -> String
    {
        var lines = bytes.split(separator: 0x0a, omittingEmptySubsequences: false).map(Array.init)
        for entry in entries where entry.domainDigits > 5 {
            guard let replacement = forward[entry.address.domain] else { continue }
            let index = entry.line - 1
            lines[index] = Array(hex(replacement, width: 5).utf8) + lines[index].dropFirst(entry.domainDigits)
        }
        let joined = Array(lines.joined(separator: [0x0a]))
        return try joined.withUnsafeBufferPointer { (buffer) throws(PCIBusError) in
            try TemporaryFile.write(buffer, describing: original)
        }
    }
}
