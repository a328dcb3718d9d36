/// `struct selftest_obj` of type `TYPE_IDEV` (`IOMMUFD_OBJ_SELFTEST`, IOMMUFD-811): what
/// `IOMMU_TEST_OP_MOCK_DOMAIN` leaves behind — a mock device on the mock bus and its
/// `iommufd_device` (`idev`), bound to the context and attached. Destroying it (`IOMMU_DESTROY` of
/// `out_stdev_id`, or closing the context) detaches and unbinds the device and removes it from
/// the bus.
struct IOMMUFDSelftestObject: Sendable {
    let device: IOMMUFDMockDevice
    /// The DEVICE object's ID (`out_idev_id`).
    let idev: UInt32
}

/// The dirty state of a mock domain allocated with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`
/// (`mock->flags & MOCK_DIRTY_TRACK` and the dirty bits of its IOPTEs, IOMMUFD-510..513):
/// whether tracking is on, and the first IOVA of every leaf entry marked dirty. Guarded by the
/// owning context's lock; shared by every copy of its HWPT.
final class IOMMUFDDirtyTracker: @unchecked Sendable {
    var enabled = false
    var dirty: Set<UInt64> = []
}
