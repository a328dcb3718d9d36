import KernelRules
import PCIBus
import SystemPackage
import Testing

@testable import IOMMU

/// DOM-05 per profile: the geometry (`aperture_start`, inclusive `aperture_end`, `force_aperture`)
/// and `pgsize_bitmap` of the domains each IOMMU allocates, and what happens at an IOVA outside
/// the aperture: the core maps it without complaint (VFIO's IOVA list keeps users out, T1-4x),
/// and DMA there faults where the aperture is forced and bypasses translation where it is not.
@Suite("Domain geometry (DOM-05)")
struct DomainGeometryTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let rule: String
        let profile: PlatformProfile
        let geometry: String
        let pageSizes: String
        /// An IOVA outside the aperture, whether to map it (to 0x1_0000_0000) first, and what DMA
        /// to it reaches.
        var outside: (iova: UInt64, mapFirst: Bool, reaches: IOTranslation)? = nil
        var testDescription: String { rule }
    }

    static let rows: [Row] = [
        Row(rule: "DOM-05 VT-d 48-bit: [0, 2^48 - 1], forced", profile: .vtd(), geometry: "aperture [0x0, 0xffffffffffff], force_aperture true", pageSizes: "4K|2M|1G"),
        Row(
            rule: "DOM-05 VT-d 39-bit: [0, 2^39 - 1], forced: DMA above it faults", profile: .vtd(addressWidth: 39),
            geometry: "aperture [0x0, 0x7fffffffff], force_aperture true", pageSizes: "4K|2M|1G",
            outside: (1 << 39, false, .fault(.outsideAperture))),
        Row(rule: "DOM-05 SMMUv3 40-bit input", profile: .smmuv3(inputBits: 40), geometry: "aperture [0x0, 0xffffffffff], force_aperture true", pageSizes: "4K|2M|1G"),
        Row(
            rule: "DOM-05 mock: [16 MiB, 2 GiB - 1] with 2 KiB pages; a map below the aperture is accepted, DMA there faults",
            profile: .mock(), geometry: "aperture [0x1000000, 0x7fffffff], force_aperture true", pageSizes: "2K",
            outside: (0x80_0000, true, .fault(.outsideAperture))),
        Row(
            rule: "DOM-05 bypass: an unforced 32-bit aperture; DMA above it reaches the address untranslated", profile: .bypass,
            geometry: "aperture [0x0, 0xffffffff], force_aperture false", pageSizes: "4K",
            outside: (0x1_0000_0000, false, .mapped(address: 0x1_0000_0000, contiguous: 0 &- 0x1_0000_0000))),
    ]

    @Test(arguments: rows)
    func geometry(_ row: Row) throws {
        let domain = try IOMMUDomain(type: .unmanaged, profile: row.profile)
        #expect(domain.geometry.description == row.geometry)
        #expect(domain.pageSizes.description == row.pageSizes)
        guard let outside = row.outside else { return }
        #expect(!domain.geometry.contains(outside.iova))
        if outside.mapFirst {
            #expect(try domain.map(iova: outside.iova, to: 0x1_0000_0000, size: domain.pageSizes.minimumPageSize, access: .readWrite) > 0)
        }
        #expect(domain.translate(outside.iova, access: .read) == outside.reaches)
    }

    @Test("DOM-05 an aperture whose start is above its end is refused with EINVAL")
    func invertedAperture() {
        #expect(throws: IOMMUError(.invalidArgument, rule: .DOM_05, "geometry: aperture_start 0x2000 is above aperture_end 0x1fff")) {
            try DomainGeometry(apertureStart: 0x2000, apertureEnd: 0x1fff, forceAperture: true)
        }
    }
}
