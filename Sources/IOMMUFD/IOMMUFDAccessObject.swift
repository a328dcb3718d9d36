import UserMemory

/// `struct iommufd_access` with the selftest driver's `struct selftest_access` around it
/// (IOMMUFD-607, -814, -815): an emulated device's view of an IOAS, pinning pages through it
/// rather than DMAing. It has an object ID (`IOMMUFD_OBJ_ACCESS`, which `IOMMU_DESTROY` refuses:
/// its creator holds it), raises its IOAS's IOVA alignment to `PAGE_SIZE` when it pins pages,
/// and keeps the pins it made as numbered items (`selftest_access_item`). An unmap of the IOAS
/// over an item's range calls its `unmap` op, which drops the item and its pins. Guarded by the
/// owning context's lock.
final class IOMMUFDAccessObject: @unchecked Sendable {
    /// One `IOMMU_TEST_OP_ACCESS_PAGES` pin: its range and the pages it holds pinned.
    struct Item {
        let id: UInt32
        let iova: UInt64
        let length: UInt64
        let pinned: [IOPTPages]

        var last: UInt64 { iova + (length - 1) }
    }

    let id: UInt32
    /// `ops->needs_pin_pages` (`MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES`).
    let needsPinPages: Bool
    /// `access->ioas`: nil once destroyed.
    var ioas: UInt32?
    var items: [Item] = []
    /// `staccess->next_id`.
    var nextItemID: UInt32 = 0

    init(id: UInt32, needsPinPages: Bool) {
        self.id = id
        self.needsPinPages = needsPinPages
    }

    /// `access->iova_alignment`: `PAGE_SIZE` for an access that pins pages, else 1.
    var iovaAlignment: UInt64 { needsPinPages ? hostPageSize : 1 }

    /// `iommufd_test_access_unmap` (the access's `unmap` op): every item meeting `[first, last]`
    /// goes and its pages are unpinned.
    func unmap(first: UInt64, last: UInt64) {
        let (gone, kept) = (items.filter { $0.iova <= last && first <= $0.last }, items.filter { !($0.iova <= last && first <= $0.last) })
        items = kept
        for item in gone { item.pinned.forEach { $0.unpin() } }
    }
}
