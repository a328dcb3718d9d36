import KernelRules
import SystemPackage
import VFIO

/// The VFIO selftests' minimal userspace driver (`struct vfio_pci_driver_ops`, VST-06): enough of
/// a real driver to make a device copy memory by DMA and raise an MSI. Each driver owns a small
/// DMA region of its own (rings, completion records) and states its limits.
public protocol VFIOPCIDriver: AnyObject, SendableMetatype {
    /// `ops->name`.
    static var name: String { get }
    /// The config-space identity the driver binds to.
    static var vendorID: UInt16 { get }
    static var deviceID: UInt16 { get }
    /// `ops->probe`: whether this driver handles the device (default: by vendor and device ID).
    static func probe(_ device: UserspaceDevice) throws(VFIOError) -> Bool
    /// Binds to an opened device; `init` is `initialize()`.
    init(_ device: UserspaceDevice) throws(VFIOError)
    /// `ops->init`: bring the device up (bus master on, rings programmed, interrupts wired).
    func initialize() throws(VFIOError)
    /// `ops->remove`: quiesce the device and release what `initialize` set up.
    func remove() throws(VFIOError)
    /// `driver->max_memcpy_size` and `max_memcpy_count`.
    var maxMemcpySize: UInt64 { get }
    var maxMemcpyCount: UInt64 { get }
    /// `ops->memcpy_start`: `count` copies of `size` bytes from IOVA `source` to `destination`.
    func memcpyStart(source: UInt64, destination: UInt64, size: UInt64, count: UInt64) throws(VFIOError)
    /// `ops->memcpy_wait`: nil on success, else what the device reported.
    func memcpyWait() throws(VFIOError) -> String?
    /// `ops->send_msi`: makes the device raise its interrupt (`driver->msi`).
    func sendMSI() throws(VFIOError)
    /// The eventfd the device's interrupt is wired to.
    var interrupt: EventFD { get }
    /// The opened device the driver drives.
    var device: UserspaceDevice { get }
}

extension VFIOPCIDriver {
    /// `readl(bar0 + offset)`: a 32-bit register of BAR 0.
    func read32(_ offset: UInt64) throws(VFIOError) -> UInt32 { try device.device.readRegister(UInt32.self, bar: 0, offset: offset) }

    /// `writel(value, bar0 + offset)`.
    func write32(_ offset: UInt64, _ value: UInt32) throws(VFIOError) { try device.device.writeRegister(value, bar: 0, offset: offset) }

    /// What `init` set up, or `EINVAL` for an op called before it (VST-06).
    func initialized<Value>(_ value: Value?) throws(VFIOError) -> Value {
        guard let value else { throw VFIOError(.invalidArgument, rule: .VST_06, "\(Self.name): not initialized") }
        return value
    }

    public static func probe(_ device: UserspaceDevice) throws(VFIOError) -> Bool {
        try device.matches(vendor: vendorID, device: deviceID)
    }

    /// `vfio_pci_driver_memcpy`: start and wait.
    public func memcpy(source: UInt64, destination: UInt64, size: UInt64, count: UInt64 = 1) throws(VFIOError) -> String? {
        try memcpyStart(source: source, destination: destination, size: size, count: count)
        return try memcpyWait()
    }
}

extension UserspaceDevice {
    /// Vendor and device ID from config space (`vfio_pci_device_match`).
    public func matches(vendor: UInt16, device id: UInt16) throws(VFIOError) -> Bool {
        let found = (try device.readConfig(UInt16.self, at: 0), try device.readConfig(UInt16.self, at: 2))
        return found == (vendor, id)
    }
}
