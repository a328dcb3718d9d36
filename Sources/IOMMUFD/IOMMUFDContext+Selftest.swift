import IOMMU
import KernelRules
import Locking
import SystemPackage
import UserMemory

/// The selftest mock's device and domain ops (`IOMMU_TEST_CMD`, `selftest.c`, §8), on Swift
/// values; the UAPI decodes `struct iommu_test_cmd` and calls these. Each needs a context opened
/// with `selftest` (`CONFIG_IOMMUFD_TEST`): without it they answer `ENOTTY`, as the command does.
extension IOMMUFDContext {
    /// What `IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS)` returns: the SELFTEST object, the HWPT the mock
    /// device was attached to (an auto HWPT for an IOAS), and the DEVICE object.
    public struct MockDomain: Sendable, Equatable {
        public let stdev: UInt32
        public let hwpt: UInt32
        public let idev: UInt32
    }

    /// `ENOTTY` unless the kernel has the selftest (IOMMUFD-800).
    func requireSelftest(_ what: String) throws(IOMMUFDError) {
        guard selftest else {
            throw IOMMUFDError(.inappropriateIOCTLForDevice, rule: .IOMMUFD_800, "\(self) \(what): the selftest mock needs CONFIG_IOMMUFD_TEST (vfiokit run --iommufd-test)")
        }
    }

    /// `IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS)` (IOMMUFD-811): a SELFTEST object (its ID first), a
    /// mock device with `flags` (`EINVAL` for unknown ones, IOMMUFD-804), bound (a new DEVICE) and
    /// attached to `pt` — an IOAS through an auto domain, or an HWPT — with the attach's errors
    /// (`ENOENT` for no object, `EINVAL` for one nothing attaches to, `EFAULT` when filling a new
    /// domain cannot pin, `EADDRINUSE`). Nothing stays on failure.
    public func mockDomain(_ pt: UInt32, flags: UInt32 = 0) throws(IOMMUFDError) -> MockDomain {
        try requireSelftest("MOCK_DOMAIN")
        return try state.withLock { (state) throws(IOMMUFDError) -> MockDomain in
            let stdev = state.freeID()
            state.objects[stdev] = .reserved
            do throws(IOMMUFDError) {
                let device = try IOMMUFDMockDevice(flags: flags)
                // iommufd_device_bind: the mock's IOMMU enforces coherency, and the mock bus is
                // exempt from the isolated-MSI check; its group has no other owner to refuse.
                let idev = state.freeID()
                let bound = BoundDevice(backend: .mock(device))
                state.objects[idev] = .device(bound)
                do throws(IOMMUFDError) {
                    let hwpt = try Self.attach(device: idev, bound, to: pt, &state, "MOCK_DOMAIN \(device) to \(pt)")
                    state.objects[stdev] = .selftest(IOMMUFDSelftestObject(device: device, idev: idev))
                    return MockDomain(stdev: stdev, hwpt: hwpt, idev: idev)
                } catch {
                    Self.unbind(idev, &state)
                    throw error
                }
            } catch {
                state.objects[stdev] = nil
                throw error
            }
        }
    }

    /// `iommufd_test_get_selftest_obj`: `ENOENT` when `id` is no SELFTEST object (IOMMUFD-812).
    private static func selftestObject(_ id: UInt32, _ state: State, _ what: String) throws(IOMMUFDError) -> IOMMUFDSelftestObject {
        guard case .selftest(let object) = state.objects[id] else { throw State.missing(id, "SELFTEST object", state.objects[id], rule: .IOMMUFD_812, what) }
        return object
    }

    /// `IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE` (IOMMUFD-812, -605): the mock device of SELFTEST object
    /// `stdev` moves to `pt` (an IOAS through an auto domain, or an HWPT) without detaching; an
    /// auto HWPT it leaves unused is destroyed. The HWPT ID now attached.
    public func mockDomainReplace(_ stdev: UInt32, with pt: UInt32) throws(IOMMUFDError) -> UInt32 {
        try requireSelftest("MOCK_DOMAIN_REPLACE")
        return try state.withLock { (state) throws(IOMMUFDError) -> UInt32 in
            let object = try Self.selftestObject(stdev, state, "MOCK_DOMAIN_REPLACE")
            let device = try state.device(object.idev, rule: .IOMMUFD_812, "MOCK_DOMAIN_REPLACE")
            let what = "MOCK_DOMAIN_REPLACE \(object.device) to \(pt)"
            guard device.hwpt != nil else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_605, "\(what): the device is not attached, so there is nothing to replace")
            }
            return try Self.attach(device: object.idev, device, to: pt, &state, what)
        }
    }

    /// `iommufd_selftest_destroy`: the mock device detached, unbound and gone with its object.
    static func removeSelftest(_ id: UInt32, _ object: IOMMUFDSelftestObject, _ state: inout State) {
        if case .device(var device) = state.objects[object.idev], !device.pasids.isEmpty {
            device.pasids.removeAll()
            state.objects[object.idev] = .device(device)
        }
        unbind(object.idev, &state)
        state.objects[id] = nil
    }

    /// `IOMMU_TEST_OP_ADD_RESERVED` (IOMMUFD-810): `EINVAL` for length 0, `EOVERFLOW` when the
    /// range wraps, `ENOENT` for no IOAS, `EADDRINUSE` over an area or an allowed range. The
    /// reservation has no owner and stays for the IOAS's life.
    public func addReserved(ioas id: UInt32, start: UInt64, length: UInt64) throws(IOMMUFDError) {
        try requireSelftest("ADD_RESERVED")
        guard length != 0 else { throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_810, "ADD_RESERVED \(hex(start)): length 0") }
        guard start <= .max - (length - 1) else {
            throw IOMMUFDError(.overflow, rule: .IOMMUFD_810, "ADD_RESERVED \(hex(start)) + \(hex(length)): wraps past 2^64")
        }
        try withIOAS(id, rule: .IOMMUFD_810, "ADD_RESERVED") { (ioas, _) throws(IOMMUFDError) in
            try ioas.reserve(IOVARange(start: start, last: start + (length - 1)), owner: .test, rule: .IOMMUFD_810)
        }
    }

    /// `get_md_pagetable` (IOMMUFD-813): `ENOENT` when `id` is no paging HWPT, `EINVAL` when its
    /// domain is not the mock's.
    static func mockHWPT(_ id: UInt32, _ state: State, _ what: String) throws(IOMMUFDError) -> HWPTPaging {
        let hwpt = try state.hwptPaging(id, rule: .IOMMUFD_813, what)
        guard IOMMUFDMockIOMMU.owns(hwpt.domain) else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_813, "\(what): HWPT \(id) is a domain of \(hwpt.domain.ops), not of the mock IOMMU")
        }
        return hwpt
    }

    /// `IOMMU_TEST_OP_MD_CHECK_MAP` (IOMMUFD-813): every mock page of `[iova, iova + length)` in
    /// the mock HWPT translates to the page behind the user address `uptr` at the same offset.
    /// `ENOENT`/`EINVAL` for the HWPT (`mockHWPT`), `EINVAL` for an IOVA, length or address not
    /// aligned to the domain's smallest page or an address range that wraps, `EFAULT` where the
    /// process has no page, `EINVAL` at the first page translated elsewhere (or not at all).
    public func checkMap(hwpt id: UInt32, iova: UInt64, length: UInt64, uptr: UInt64) throws(IOMMUFDError) {
        try requireSelftest("MD_CHECK_MAP")
        let domain = try state.withLock { (state) throws(IOMMUFDError) in try Self.mockHWPT(id, state, "MD_CHECK_MAP").domain }
        let page = domain.pageSizes.minimumPageSize
        guard (iova | length | uptr) & (page - 1) == 0, uptr <= .max - length else {
            throw IOMMUFDError(
                .invalidArgument, rule: .IOMMUFD_813,
                "MD_CHECK_MAP HWPT \(id): iova \(hex(iova)), length \(hex(length)) and uptr \(hex(uptr)) must be aligned to the mock page \(hex(page)) and not wrap")
        }
        // Each user page must exist (get_user_pages_fast); then every mock page's translation
        // must be the user page — the same address, or the same page of a file both map.
        var offset: UInt64 = 0
        var differing: [(iova: UInt64, address: UInt64, translated: UInt64)] = []
        while offset < length {
            let address = uptr + offset
            try lowerCall { () throws(MemoryError) in try process.touch(vaddr: address & ~(hostPageSize - 1), size: hostPageSize, rule: .IOMMUFD_813) }
            let translated = domain.translate(iova + offset, access: [])
            guard case .mapped(let physical, _) = translated, physical % hostPageSize == address % hostPageSize else {
                throw IOMMUFDError(
                    .invalidArgument, rule: .IOMMUFD_813,
                    "MD_CHECK_MAP HWPT \(id): IOVA \(hex(iova + offset)) translates to \(Self.describe(translated)), not to the page of uptr \(hex(address))")
            }
            if physical != address { differing.append((iova + offset, address, physical)) }
            offset += page
        }
        guard !differing.isEmpty else { return }
        let identities = UserPageIdentity.of(differing.flatMap { [$0.address, $0.translated] })
        for (index, entry) in differing.enumerated() where identities[2 * index] != identities[2 * index + 1] {
            throw IOMMUFDError(
                .invalidArgument, rule: .IOMMUFD_813,
                "MD_CHECK_MAP HWPT \(id): IOVA \(hex(entry.iova)) translates to \(hex(entry.translated)), another page than uptr \(hex(entry.address))")
        }
    }

    private static func describe(_ translation: IOTranslation) -> String {
        switch translation {
        case .mapped(let address, _): hex(address)
        case .fault(let reason): "a fault (\(reason))"
        }
    }

    /// `IOMMU_TEST_OP_MD_CHECK_REFS` (IOMMUFD-813): every page of `[uptr, uptr + length)` is held by
    /// exactly `refs` pins. `EINVAL` unless page aligned and not wrapping, `EFAULT` where the
    /// process has no page, `EIO` at the first page with another count.
    public func checkRefs(uptr: UInt64, length: UInt64, refs: UInt32) throws(IOMMUFDError) {
        try requireSelftest("MD_CHECK_REFS")
        guard (uptr | length) & (hostPageSize - 1) == 0, uptr <= .max - length else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_813, "MD_CHECK_REFS: uptr \(hex(uptr)) and length \(hex(length)) must be page aligned and not wrap")
        }
        let counts = try lowerCall { () throws(MemoryError) in try process.pinCounts(vaddr: uptr, size: length, rule: .IOMMUFD_813) }
        if let index = counts.firstIndex(where: { $0 != Int(refs) }) {
            throw IOMMUFDError(
                .ioError, rule: .IOMMUFD_813,
                "MD_CHECK_REFS: the page at \(hex(uptr + UInt64(index) * hostPageSize)) is pinned \(counts[index]) time(s), expected \(refs)")
        }
    }

    /// `IOMMU_TEST_OP_DEV_CHECK_CACHE` (IOMMUFD-819): entry `cacheID` of the mock device behind
    /// DEVICE `idev` holds `value`. `ENOENT` for no DEVICE; `EINVAL` for an entry past
    /// `MOCK_DEV_CACHE_ID_MAX`, another value, or a device that is no mock device.
    public func checkDeviceCache(idev: UInt32, cacheID: UInt32, value: UInt32) throws(IOMMUFDError) {
        try requireSelftest("DEV_CHECK_CACHE")
        guard let device = try mockDevice(idev, rule: .IOMMUFD_819) else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_819, "DEV_CHECK_CACHE: device \(idev) is a PCI function, not a mock device")
        }
        guard Int(cacheID) < IOMMUFDMockDevice.cacheEntries, device.cache[Int(cacheID)] == value else {
            let found = Int(cacheID) < IOMMUFDMockDevice.cacheEntries ? "holds \(hex(UInt64(device.cache[Int(cacheID)])))" : "does not exist (0…3)"
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_819, "DEV_CHECK_CACHE \(device): entry \(cacheID) \(found), expected \(hex(UInt64(value)))")
        }
    }

    /// `IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT` (IOMMUFD-817): `EINVAL` below `sizeof(unsigned long) +
    /// sizeof(u32)`; it sizes the kernel's page batches, so nothing a caller sees changes.
    public func setTemporaryMemoryLimit(_ limit: UInt32) throws(IOMMUFDError) {
        try requireSelftest("SET_TEMP_MEMORY_LIMIT")
        guard limit >= 12 else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_817, "SET_TEMP_MEMORY_LIMIT \(limit): below sizeof(unsigned long) + sizeof(u32) = 12")
        }
        state.withLock { $0.temporaryMemoryLimit = limit }
    }
}
