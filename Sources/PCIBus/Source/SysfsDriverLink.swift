#if canImport(Glibc)
    import Glibc
#endif

/// The driver bound to a function, read from its sysfs `driver` symlink
/// (`devices/DDDD:BB:DD.F/driver -> .../drivers/NAME`): what libpci 3.8 and later fill as
/// `PCI_FILL_DRIVER`, read here where the installed libpci predates it (3.7 on Ubuntu 22.04 and
/// Debian 11). The corresponding C function is `readlink`, as libpci's `sysfs_fill_info` uses it.
enum SysfsDriverLink {
    /// The last path component of the link's target; nil when the function is unbound (no link).
    static func driver(of address: PCIAddress, sysfsRoot: String) -> String? {
        var target = [CChar](repeating: 0, count: Int(PATH_MAX))
        let length = readlink("\(sysfsRoot)/devices/\(address)/driver", &target, target.count - 1)
        guard length > 0 else { return nil }
        let text = String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: "/").last.map(String.init)
    }
}
