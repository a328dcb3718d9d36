import CPciAccess
import SystemPackage

/// One function as libpci hands it over: address, captured config bytes and, on a live host,
/// what sysfs says about it. Plain values; no libpci pointer leaves this file.
struct LibPCIDevice: Sendable {
    let address: PCIAddress
    let config: [UInt8]
    let driver: String?
    let iommuGroup: Int?
}

/// Owns one libpci `struct pci_access`: allocated in `init`, freed in `deinit` (`pci_cleanup`),
/// and touched nowhere else. Every call that libpci could abort on runs under the shim's guard,
/// so a libpci error becomes a thrown `PCIBusError` rather than `exit(1)`.
///
/// One thread uses an access at a time (it is handed over, never shared), hence `@unchecked`.
///
/// The corresponding C API is `pci_alloc`/`pci_init`/`pci_scan_bus` in `<pci/pci.h>`.
final class LibPCIAccess: @unchecked Sendable {
    enum Method {
        /// `PCI_ACCESS_SYS_BUS_PCI`, optionally with `sysfs.path` overridden.
        case sysfs(path: String?)
        /// `PCI_ACCESS_DUMP` with `dump.name`.
        case dump(path: String)
    }

    private let access: UnsafeMutablePointer<pci_access>
    /// The sysfs root (`sysfs.path`) of the sysfs method; nil for a dump.
    private let sysfsRoot: String?
    private var messageBuffer = [CChar](repeating: 0, count: 512)

    /// Allocates the access object, selects the method and scans the bus.
    /// Throws with libpci's own message when `pci_init`/`pci_scan_bus` fail.
    init(method: Method) throws(PCIBusError) {
        access = vk_pci_alloc()
        switch method {
        case .sysfs(let path):
            sysfsRoot = path ?? "/sys/bus/pci"
            access.pointee.method = UInt32(PCI_ACCESS_SYS_BUS_PCI.rawValue)
            if let path { _ = vk_pci_set_param(access, "sysfs.path", path) }
        case .dump(let path):
            sysfsRoot = nil
            access.pointee.method = UInt32(PCI_ACCESS_DUMP.rawValue)
            _ = vk_pci_set_param(access, "dump.name", path)
        }
        if vk_pci_init_and_scan(access, &messageBuffer, messageBuffer.count) != 0 {
            // Every stored property is set, so `deinit` runs and frees the access: no cleanup here.
            let message = messageText
            throw PCIBusError(.libpci, .ioError, "libpci: \(message)")
        }
    }

    deinit { pci_cleanup(access) }

    private var messageText: String {
        String(decoding: messageBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Every function libpci found, in its list order, with config bytes read as far as available.
    func devices(withKernelAttributes: Bool) throws(PCIBusError) -> [LibPCIDevice] {
        var result: [LibPCIDevice] = []
        var device = access.pointee.devices
        // Without PCI_FILL_DRIVER (libpci < 3.8) the flag is 0 and the `driver` link is read here.
        let fillDriver = vk_pci_fill_driver_flag()
        let flags = withKernelAttributes ? (Int32(PCI_FILL_IDENT | PCI_FILL_IOMMU_GROUP) | fillDriver) : 0
        while let current = device {
            if flags != 0, vk_pci_fill_info(current, flags, &messageBuffer, messageBuffer.count) != 0 {
                throw PCIBusError(.libpci, .ioError, "libpci: \(messageText)")
            }
            let dev = current.pointee
            guard dev.dev < 32, dev.func < 8, dev.domain >= 0 else {
                throw PCIBusError(.libpci, .invalidArgument, "libpci returned an impossible address")
            }
            let address = PCIAddress(domain: UInt32(dev.domain), bus: dev.bus, device: dev.dev, function: dev.func)
            let config = try readCapturedConfig(current)
            var driver: String? = nil
            var group: Int? = nil
            if withKernelAttributes {
                if fillDriver != 0 {
                    driver = vk_pci_driver(current).map { String(cString: $0) }
                } else if let sysfsRoot {
                    driver = SysfsDriverLink.driver(of: address, sysfsRoot: sysfsRoot)
                }
                group = pci_get_string_property(current, UInt32(PCI_FILL_IOMMU_GROUP)).flatMap { Int(String(cString: $0)) }
            }
            result.append(LibPCIDevice(address: address, config: config, driver: driver, iommuGroup: group))
            device = dev.next
        }
        return result
    }

    /// Reads the longest prefix of config space the source holds: 4096, 256 or 64 bytes, or, for
    /// a short dump, the exact captured length (found by bisection; reads are all-or-nothing).
    private func readCapturedConfig(_ device: UnsafeMutablePointer<pci_dev>) throws(PCIBusError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0xff, count: PCIRegister.extendedSpaceSize)
        func available(_ length: Int) throws(PCIBusError) -> Bool {
            var ok: Int32 = 0
            if vk_pci_read_block(device, 0, &buffer, Int32(length), &ok, &messageBuffer, messageBuffer.count) != 0 {
                throw PCIBusError(.libpci, .ioError, "libpci: \(messageText)")
            }
            return ok != 0
        }
        for length in [PCIRegister.extendedSpaceSize, PCIRegister.legacySpaceSize, 64] where try available(length) {
            return Array(buffer[0..<length])
        }
        var low = 0
        var high = 64  // invariant: `low` bytes readable, `high` not
        while high - low > 1 {
            let middle = (low + high) / 2
            if try available(middle) { low = middle } else { high = middle }
        }
        if low > 0 { _ = try available(low) }
        return Array(buffer[0..<low])
    }

    /// Looks up names in pci.ids (the path libpci was built with, or `pci.ids` beside it).
    func names(for function: PCIFunction) -> PCINames {
        var buffer = [CChar](repeating: 0, count: 1024)
        func text(_ pointer: UnsafePointer<CChar>?) -> String? { pointer.map { String(cString: $0) } }
        let vendor = text(vk_pci_lookup_vendor(access, &buffer, Int32(buffer.count), Int32(function.vendorID)))
        let device = text(
            vk_pci_lookup_device(access, &buffer, Int32(buffer.count), Int32(function.vendorID), Int32(function.deviceID)))
        let className = text(vk_pci_lookup_class(access, &buffer, Int32(buffer.count), Int32(function.classID)))
        var subsystem: String? = nil
        if function.subsystemVendorID != 0, function.subsystemVendorID != 0xffff {
            subsystem = text(
                vk_pci_lookup_subsystem(
                    access, &buffer, Int32(buffer.count), Int32(function.vendorID), Int32(function.deviceID),
                    Int32(function.subsystemVendorID), Int32(function.subsystemID)))
        }
        return PCINames(vendor: vendor, device: device, className: className, subsystem: subsystem)
    }
}
