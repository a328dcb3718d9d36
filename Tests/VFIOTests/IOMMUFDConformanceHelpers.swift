import IOMMUFD

/// Short spellings for the iommufd tables.
enum FD {
    static let page: UInt64 = 0x1000
    /// IOMMU_IOAS_MAP_WRITEABLE | READABLE, and with FIXED_IOVA.
    static let rw: UInt32 = 6
    static let fixedRW: UInt32 = 7
    static let fixedRead: UInt32 = 5
    static let msiFirst: UInt64 = 0xFEE0_0000
    static let msiLast: UInt64 = 0xFEEF_FFFF
    static let top48: UInt64 = 1 << 48
    static let max = UInt64.max
    /// `devices/default`'s vfio-pci functions: the NVMe (group 27) and the 82599 function 1 (group 22), both behind VT-d.
    static let nvme = "0000:5e:00.0"
    static let nic = "0000:3c:00.1"
    /// The memcpy engine model (with `config.models`).
    static let engine = "0000:5f:00.0"
    /// The USB controller (relaxable RMRR) and the PCH thermal function of its group 3.
    static let usb = "0000:00:14.0"
    static let thermal = "0000:00:14.2"

    /// IOVA_RANGES of an IOAS with a VT-d domain and a device attached: the 48-bit aperture
    /// without the MSI window, 4 KiB alignment.
    static let vtdRanges: FDOutcome = .fields([2, page, 0, msiFirst - 1, msiLast + 1, top48 - 1])
    /// IOVA_RANGES of an IOAS without domains: everything, alignment 1.
    static let allRanges: FDOutcome = .fields([1, 1, 0, max])

    static func range(_ start: UInt64, _ last: UInt64) -> IOVARange { IOVARange(start: start, last: last) }

    /// A fixed-IOVA map of `length` bytes of the row's memory at `offset`.
    static func map(_ iova: UInt64, _ length: UInt64 = page, ioas: UInt32 = 1, at offset: UInt64 = 0, flags: UInt32 = fixedRW) -> FDOp {
        .map(ioas, flags: flags, .memory(offset), length: length, iova: iova)
    }

    /// An automatic-IOVA map.
    static func auto(_ length: UInt64 = page, ioas: UInt32 = 1, at offset: UInt64 = 0, flags: UInt32 = rw) -> FDOp {
        .map(ioas, flags: flags, .memory(offset), length: length)
    }

    static func unmap(_ iova: UInt64, _ length: UInt64, ioas: UInt32 = 1) -> FDOp { .unmap(ioas, iova: iova, length: length) }

    /// Open `address`'s cdev and bind it to the row's iommufd.
    static func bound(_ address: String) -> [FDOp] { [.open(address), .bind(address)] }

    /// Bound, then attached to `pt`.
    static func attached(_ address: String, to pt: UInt32 = 1) -> [FDOp] { bound(address) + [.attach(address, pt)] }

    static func option(_ option: FDOption, get object: UInt32 = 0) -> FDOp { .option(option, op: 1, object: object) }
    static func option(_ option: FDOption, set value: UInt64, object: UInt32 = 0) -> FDOp { .option(option, op: 0, object: object, value: value) }

    // Why a row runs on the raw ioctl only.
    static let notForSwift = "a raw-struct field (size, flags, __reserved, argsz): the Swift API takes the values, not the struct"
    static let noPointer = "a user pointer: the Swift API takes values, so nothing can fault"
    static let noRequest = "a request number: the Swift API has a method per command, so no unknown or malformed number"
    static let noFD = "an fd number: the Swift API binds to an IOMMUFDContext, not to a descriptor"
    static let protocolOnly = "the struct protocol itself (room in a user array, a capability chain): the Swift API returns whole values"
    static let noSwiftSpelling = "no Swift spelling: IOMMUFDContext has no method for this command or value (the UAPI decodes it and answers on its own)"
}
