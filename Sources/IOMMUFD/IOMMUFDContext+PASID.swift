import IOMMU
import KernelRules
import Locking
import SystemPackage

/// Attaching HWPTs at a PASID of a mock device (`IOMMU_TEST_OP_PASID_*`, IOMMUFD-603, -605, -606
/// at a PASID, -819): `iommufd_device_attach`/`_replace`/`_detach` with a PASID other than
/// `IOMMU_NO_PASID`, on paging HWPTs (nested HWPTs are not modelled). A PASID attachment needs a
/// PASID-compatible HWPT (`IOMMU_HWPT_ALLOC_PASID`) while the device's RID is on one too, and
/// holds a reference on its HWPT.
extension IOMMUFDContext.State {
    /// The devices and PASIDs `hwpt` is attached at.
    func pasidUsers(of hwpt: UInt32) -> [(device: UInt32, pasid: UInt32)] {
        objects.compactMap { id, object -> [(device: UInt32, pasid: UInt32)]? in
            guard case .device(let device) = object else { return nil }
            return device.pasids.filter { $0.value == hwpt }.map { (id, $0.key) }
        }.flatMap { $0 }.sorted { ($0.device, $0.pasid) < ($1.device, $1.pasid) }
    }
}

extension IOMMUFDContext {
    /// `iommufd_hwpt_pasid_compat` for the RID (`IOMMU_NO_PASID`): with PASIDs attached, the RID
    /// may only go to a PASID-compatible HWPT (`EINVAL`).
    static func checkPASIDCompatible(_ hwpt: HWPTPaging, _ id: UInt32, _ device: BoundDevice, _ what: String) throws(IOMMUFDError) {
        guard hwpt.pasidCompatible || device.pasids.isEmpty else {
            throw IOMMUFDError(
                .invalidArgument, rule: .IOMMUFD_603,
                "\(what): HWPT \(id) was not allocated with IOMMU_HWPT_ALLOC_PASID, and the device has PASIDs \(device.pasids.keys.sorted()) attached")
        }
    }

    /// The device behind SELFTEST object `stdev` and its DEVICE ID.
    private static func selftestDevice(_ stdev: UInt32, _ state: State, _ what: String) throws(IOMMUFDError) -> (UInt32, BoundDevice, IOMMUFDMockDevice) {
        guard case .selftest(let object) = state.objects[stdev] else { throw State.missing(stdev, "SELFTEST object", state.objects[stdev], rule: .IOMMUFD_819, what) }
        return (object.idev, try state.device(object.idev, rule: .IOMMUFD_819, what), object.device)
    }

    /// The paging HWPT a PASID attach or replace goes to: `ENOENT` for no object; `EINVAL` for an
    /// IOAS (the auto domain it would get is never PASID-compatible) or anything else.
    private static func pasidTarget(_ pt: UInt32, _ state: State, _ what: String) throws(IOMMUFDError) -> HWPTPaging {
        switch state.objects[pt] {
        case nil, .reserved: throw IOMMUFDError(.noSuchFileOrDirectory, rule: .IOMMUFD_602, "\(what): no object \(pt)")
        case .hwptPaging(let hwpt): return hwpt
        case .ioas: throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_603, "\(what): IOAS \(pt) would get an auto domain, which is never PASID-compatible")
        case .some(let object): throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_602, "\(what): object \(pt) is a \(object.typeName), which nothing attaches to")
        }
    }

    /// `iommufd_hwpt_pasid_compat` at a PASID and `iommu_attach_device_pasid`'s checks: the HWPT
    /// and the RID's HWPT must both be PASID-compatible, the domain the device's IOMMU's, the PASID
    /// below the device's width (`EINVAL`).
    private static func checkPASIDAttach(_ hwpt: HWPTPaging, _ pt: UInt32, _ device: BoundDevice, _ mock: IOMMUFDMockDevice, pasid: UInt32, _ state: State, _ what: String) throws(IOMMUFDError) {
        guard hwpt.pasidCompatible else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_603, "\(what): HWPT \(pt) was not allocated with IOMMU_HWPT_ALLOC_PASID")
        }
        if let rid = device.hwpt, case .hwptPaging(let ridHWPT) = state.objects[rid], !ridHWPT.pasidCompatible {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_603, "\(what): the device's RID is attached to HWPT \(rid), which is not PASID-compatible")
        }
        guard device.backend.owns(hwpt.domain), pasid != 0 else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_603, "\(what): \(hwpt.domain) is not the mock IOMMU's, or the PASID is IOMMU_NO_PASID")
        }
        let width = mock.maxPASIDLog2
        guard width == 0 || UInt64(pasid) < UInt64(1) << width else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_603, "\(what): PASID \(pasid) is past the device's \(width)-bit width")
        }
    }

    /// `IOMMU_TEST_OP_PASID_ATTACH` (IOMMUFD-819, -603): `ENOENT` for no SELFTEST object or no
    /// `pt`, `EBUSY` when the PASID is attached already (replace moves it), `EINVAL` as
    /// `checkPASIDAttach` says, the mock's `ENOMEM` at PASID 1024.
    public func pasidAttach(_ stdev: UInt32, pasid: UInt32, to pt: UInt32) throws(IOMMUFDError) {
        try requireSelftest("PASID_ATTACH")
        try state.withLock { (state) throws(IOMMUFDError) in
            let what = "PASID_ATTACH \(stdev) PASID \(pasid) to \(pt)"
            var (idev, device, mock) = try Self.selftestDevice(stdev, state, what)
            let hwpt = try Self.pasidTarget(pt, state, what)
            if let current = device.pasids[pasid] {
                throw IOMMUFDError(.resourceBusy, rule: .IOMMUFD_603, "\(what): PASID \(pasid) is attached to HWPT \(current) already; replace it instead")
            }
            try Self.checkPASIDAttach(hwpt, pt, device, mock, pasid: pasid, state, what)
            try mock.setPASID(pasid, blocking: false)
            device.pasids[pasid] = pt
            state.objects[idev] = .device(device)
        }
    }

    /// `IOMMU_TEST_OP_PASID_REPLACE` (IOMMUFD-819, -605): `EINVAL` when the PASID is not attached,
    /// nothing for the same HWPT, else the checks of attach; on failure the old HWPT stays.
    public func pasidReplace(_ stdev: UInt32, pasid: UInt32, with pt: UInt32) throws(IOMMUFDError) {
        try requireSelftest("PASID_REPLACE")
        try state.withLock { (state) throws(IOMMUFDError) in
            let what = "PASID_REPLACE \(stdev) PASID \(pasid) with \(pt)"
            var (idev, device, mock) = try Self.selftestDevice(stdev, state, what)
            let hwpt = try Self.pasidTarget(pt, state, what)
            guard let current = device.pasids[pasid] else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_605, "\(what): PASID \(pasid) is not attached")
            }
            guard current != pt else { return }
            try Self.checkPASIDAttach(hwpt, pt, device, mock, pasid: pasid, state, what)
            try mock.setPASID(pasid, blocking: false)
            device.pasids[pasid] = pt
            state.objects[idev] = .device(device)
        }
    }

    /// `IOMMU_TEST_OP_PASID_DETACH` (IOMMUFD-819, -606): a PASID not attached is a silent success.
    public func pasidDetach(_ stdev: UInt32, pasid: UInt32) throws(IOMMUFDError) {
        try requireSelftest("PASID_DETACH")
        try state.withLock { (state) throws(IOMMUFDError) in
            var (idev, device, mock) = try Self.selftestDevice(stdev, state, "PASID_DETACH \(stdev) PASID \(pasid)")
            guard device.pasids.removeValue(forKey: pasid) != nil else { return }
            try? mock.setPASID(pasid, blocking: true)
            state.objects[idev] = .device(device)
        }
    }

    /// `IOMMU_TEST_OP_PASID_CHECK_HWPT` (IOMMUFD-819): with `hwpt` 0 the PASID must be detached,
    /// else attached to that HWPT (`EINVAL` otherwise); `ENOENT` for no such object, `EINVAL` for
    /// one that is no HWPT.
    public func pasidCheck(_ stdev: UInt32, pasid: UInt32, hwpt: UInt32) throws(IOMMUFDError) {
        try requireSelftest("PASID_CHECK_HWPT")
        try state.withLock { (state) throws(IOMMUFDError) in
            let what = "PASID_CHECK_HWPT \(stdev) PASID \(pasid)"
            let (_, device, _) = try Self.selftestDevice(stdev, state, what)
            let attached = device.pasids[pasid]
            guard hwpt != 0 else {
                if let attached { throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_819, "\(what): attached to HWPT \(attached), expected none") }
                return
            }
            switch state.objects[hwpt] {
            case nil, .reserved: throw IOMMUFDError(.noSuchFileOrDirectory, rule: .IOMMUFD_819, "\(what): no object \(hwpt)")
            case .hwptPaging: break
            case .some(let object): throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_819, "\(what): object \(hwpt) is a \(object.typeName), not an HWPT")
            }
            guard attached == hwpt else {
                throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_819, "\(what): attached to \(attached.map { "HWPT \($0)" } ?? "nothing"), expected HWPT \(hwpt)")
            }
        }
    }
}
