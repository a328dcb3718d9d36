import SystemPackage
import IOMMU
import UserMemory

/// `struct iopt_area`: one mapped IOVA range of an IOAS — `[iova, last]` over `pages` from byte
/// `startByte` of its first page — with the access the MAP or COPY asked for. Areas never merge
/// (IOMMUFD-216); a v1 compat unmap may split one (IOMMUFD-713).
struct IOPTArea: IOVAInterval {
    let iova: UInt64
    let length: UInt64
    let pages: IOPTPages
    /// Bytes from `pages.uptr` to the area's first byte (`start_byte`).
    let startByte: UInt64
    let access: IOAccess

    /// A run of pages to map as one area (`struct iopt_pages_list`).
    struct Piece: Sendable {
        let pages: IOPTPages
        let startByte: UInt64
        let length: UInt64
    }

    var last: UInt64 { iova + (length - 1) }
    /// `area->page_offset`: the sub-page offset the IOVA keeps.
    var pageOffset: UInt64 { startByte % hostPageSize }
    /// The process address behind the area's first IOVA.
    var hostAddress: UInt64 { pages.uptr + startByte }

    /// The part `[from, to]` of this area (inside it), sharing its pages.
    func slice(from: UInt64, to: UInt64) -> IOPTArea {
        IOPTArea(iova: from, length: to - from + 1, pages: pages, startByte: startByte + (from - iova), access: access)
    }
}

/// An entry of `reserved_itree` and whose it is (IOMMUFD-303): a domain's aperture outside
/// (IOMMUFD-302), a device's reserved region (IOMMUFD-304), or the selftest's
/// `IOMMU_TEST_OP_ADD_RESERVED` (no owner: never removed, IOMMUFD-810).
struct IOVAReservation: Sendable {
    enum Owner: Sendable, Hashable {
        case domain(UInt32)
        case device(String)
        case test
    }

    let range: IOVARange
    let owner: Owner
}
