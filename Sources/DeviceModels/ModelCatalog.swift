import KernelRules
import PCIBus
import SystemPackage

/// The device models a machine manifest (`"virtualDevices"`) or `vfiokit` can attach by name.
public enum ModelCatalog {
    /// The vendor ID the models of no real device use: 0x1234, the ID QEMU's experimental
    /// devices (std-VGA, `edu`) carry, so no real vendor's driver claims them. A model of a real
    /// function (`CBDMA`) carries that function's IDs, for real drivers to recognise.
    public static let vendorID: UInt16 = 0x1234

    /// Each model with a one-line summary.
    public static let models: [(name: String, summary: String)] = [
        ("memcpy-engine", MemcpyEngine.summary),
        ("loopback-nic", LoopbackNIC.summary),
        ("nvme", NVMeController.summary),
        ("cbdma", CBDMA.summary),
    ]

    /// A new model of kind `name` at `address`, its BARs placed at `mmioBase` (256 MiB of bus
    /// address space for it alone). `EINVAL` for an unknown name.
    public static func make(_ name: String, at address: PCIAddress, mmioBase: UInt64) throws(DeviceModelError) -> VirtualPCIDevice {
        switch name {
        case "memcpy-engine": return MemcpyEngine(address: address, mmioBase: mmioBase)
        case "loopback-nic": return LoopbackNIC(address: address, mmioBase: mmioBase)
        case "nvme": return NVMeController(address: address, mmioBase: mmioBase)
        case "cbdma": return CBDMA(address: address, mmioBase: mmioBase)
        default:
            throw DeviceModelError(
                .invalidArgument, rule: .none,
                "unknown device model \"\(name)\" (known: \(models.map(\.name).joined(separator: ", ")))")
        }
    }

    /// Bus addresses for the `n`th virtual device of a machine: 256 MiB windows from 0x3800_0000_0000,
    /// where Sky Lake-SP firmware places 64-bit MMIO.
    public static func mmioBase(forDevice n: Int) -> UInt64 { 0x3800_0000_0000 + UInt64(n) << 28 }
}
