import IOMMU
import KernelRules
import SystemPackage
import Testing

@testable import VFIO

/// The allowed-IOVA list against T1-19 and T1-40..43, the kernel's edge cases included.
@Suite("type1 allowed-IOVA list (T1-19, T1-40..43)")
struct IOVAListTests {
    typealias R = IOVAList.Range

    struct ResizeCase: Sendable, CustomTestStringConvertible {
        let rule: String
        let before: [R]
        let start: UInt64
        let end: UInt64
        let after: [R]
        var testDescription: String { rule }
    }

    static let resizeCases: [ResizeCase] = [
        ResizeCase(rule: "T1-40 empty list becomes the aperture", before: [], start: 0, end: 0xFFFF_FFFF_FFFF, after: [R(0, 0xFFFF_FFFF_FFFF)]),
        ResizeCase(rule: "T1-40 intersection with a smaller aperture", before: [R(0, 0xFFFF_FFFF_FFFF)], start: 0x100_0000, end: 0x7FFF_FFFF, after: [R(0x100_0000, 0x7FFF_FFFF)]),
        ResizeCase(rule: "T1-40 a larger aperture changes nothing", before: [R(0x1000, 0x1FFF)], start: 0, end: .max, after: [R(0x1000, 0x1FFF)]),
        ResizeCase(rule: "T1-40 ranges wholly below the new start are dropped", before: [R(0x1000, 0x1FFF), R(0x3000, 0x3FFF)], start: 0x2800, end: .max, after: [R(0x3000, 0x3FFF)]),
        ResizeCase(rule: "T1-40 quirk: a range ending exactly at the new start is dropped", before: [R(0x1000, 0x1FFF), R(0x3000, 0x3FFF)], start: 0x1FFF, end: .max, after: [R(0x3000, 0x3FFF)]),
        ResizeCase(rule: "T1-40 quirk: a range starting exactly at the new end is dropped", before: [R(0x1000, 0x1FFF), R(0x3000, 0x3FFF)], start: 0, end: 0x3000, after: [R(0x1000, 0x1FFF)]),
        ResizeCase(rule: "T1-40 the end trims the range it falls in", before: [R(0x1000, 0x1FFF), R(0x3000, 0x3FFF)], start: 0, end: 0x37FF, after: [R(0x1000, 0x1FFF), R(0x3000, 0x37FF)]),
        ResizeCase(rule: "T1-40 disjoint aperture empties the list", before: [R(0x1000, 0x1FFF)], start: 0x10000, end: 0x1FFFF, after: []),
    ]

    @Test(arguments: resizeCases)
    func resize(_ row: ResizeCase) {
        var list = IOVAList(row.before)
        list.resizeAperture(start: row.start, end: row.end)
        #expect(list.ranges == row.after)
    }

    static let msi = ReservedRegion(start: 0xFEE0_0000, last: 0xFEEF_FFFF, type: .msi)!
    static let hole = ReservedRegion(start: 0xFD_0000_0000, last: 0xFF_FFFF_FFFF, type: .reserved)!
    static let rmrr = ReservedRegion(start: 0x7B00_0000, last: 0x7B7F_FFFF, type: .direct)!
    static let relaxable = ReservedRegion(start: 0x7B80_0000, last: 0x7B9F_FFFF, type: .directRelaxable)!

    @Test("T1-40 VT-d 48-bit: the MSI window splits the aperture; direct regions are cut, relaxable ones are not")
    func excludeVTd() throws {
        var list = IOVAList()
        list.resizeAperture(start: 0, end: (1 << 48) - 1)
        try list.excludeReserved([Self.rmrr, Self.relaxable, Self.msi])
        #expect(list.ranges == [R(0, 0x7AFF_FFFF), R(0x7B80_0000, 0xFEDF_FFFF), R(0xFEF0_0000, (1 << 48) - 1)])
    }

    @Test("T1-40 AMD-Vi: MSI window and HyperTransport hole")
    func excludeAMD() throws {
        var list = IOVAList([R(0, (1 << 48) - 1)])
        try list.excludeReserved([Self.msi, Self.hole])
        #expect(list.ranges == [R(0, 0xFEDF_FFFF), R(0xFEF0_0000, 0xFC_FFFF_FFFF), R(0x100_0000_0000, (1 << 48) - 1)])
    }

    @Test("T1-40 a list emptied by reserved regions fails with EINVAL and is left as it was")
    func excludeEverything() {
        var list = IOVAList([R(0xFEE0_0000, 0xFEEF_FFFF)])
        #expect(throws: VFIOError.self) { try list.excludeReserved([Self.msi]) }
        do { try list.excludeReserved([Self.msi]) } catch { #expect(error.errno == .invalidArgument && error.rule.id == "T1-40") }
        #expect(list.ranges == [R(0xFEE0_0000, 0xFEEF_FFFF)])
    }

    struct ValidCase: Sendable, CustomTestStringConvertible {
        let rule: String
        let list: [R]
        let first: UInt64
        let last: UInt64
        let allowed: Bool
        var testDescription: String { rule }
    }

    static let validCases: [ValidCase] = [
        ValidCase(rule: "T1-19 inside one range", list: [R(0, 0xFFFF), R(0x2_0000, 0x2_FFFF)], first: 0x1000, last: 0x1FFF, allowed: true),
        ValidCase(rule: "T1-19 the last page of a range", list: [R(0, 0xFFFF)], first: 0xF000, last: 0xFFFF, allowed: true),
        ValidCase(rule: "T1-19 across a hole", list: [R(0, 0xFFFF), R(0x2_0000, 0x2_FFFF)], first: 0xF000, last: 0x2_0FFF, allowed: false),
        ValidCase(rule: "T1-19 across two adjacent ranges", list: [R(0, 0xFFFF), R(0x1_0000, 0x1_FFFF)], first: 0xF000, last: 0x1_0FFF, allowed: false),
        ValidCase(rule: "T1-19 outside every range", list: [R(0, 0xFFFF)], first: 0x1_0000, last: 0x1_0FFF, allowed: false),
        ValidCase(rule: "T1-19 empty list: unrestricted", list: [], first: 0xFFFF_FFFF_FFFF_F000, last: .max, allowed: true),
    ]

    @Test(arguments: validCases)
    func dmaValid(_ row: ValidCase) {
        #expect(IOVAList(row.list).allows(first: row.first, last: row.last) == row.allowed)
    }

    @Test("T1-41 aperture conflict: disjoint, or an existing mapping left outside the new aperture")
    func apertureConflict() {
        let list = IOVAList([R(0, 0xFFFF_FFFF_FFFF)])
        let mapping = (first: UInt64(0x8000_0000), last: UInt64(0x8000_0FFF))
        let hasMapping = { (first: UInt64, last: UInt64) in first <= mapping.last && mapping.first <= last }
        #expect(!list.apertureConflicts(start: 0x100_0000, end: 0xFFFF_FFFF, hasMapping: hasMapping))
        #expect(list.apertureConflicts(start: 0x100_0000, end: 0x7FFF_FFFF, hasMapping: hasMapping), "mapping above the new end")
        #expect(list.apertureConflicts(start: 0x9000_0000, end: 0xFFFF_FFFF, hasMapping: hasMapping), "mapping below the new start")
        #expect(list.apertureConflicts(start: 1 << 48, end: .max, hasMapping: { _, _ in false }), "disjoint")
        #expect(!IOVAList().apertureConflicts(start: 1 << 48, end: .max, hasMapping: { _, _ in true }), "empty list: no check")
        #expect(IOVAList.reservedConflicts([Self.relaxable, Self.msi], hasMapping: { $0 <= 0xFEE0_0000 && 0xFEE0_0000 <= $1 }) == Self.msi)
        #expect(IOVAList.reservedConflicts([Self.relaxable], hasMapping: { _, _ in true }) == nil, "direct-relaxable never conflicts")
    }

    @Test("T1-43 detach: expand to the remaining apertures, then rebuild without the departed group's regions")
    func expandAndRefresh() {
        var list = IOVAList([R(0x100_0000, 0xFEDF_FFFF), R(0xFEF0_0000, 0x7FFF_FFFF)])
        list.expandAperture(remaining: [.addressWidth(48)])
        #expect(list.ranges == [R(0, 0xFEDF_FFFF), R(0xFEF0_0000, (1 << 48) - 1)])
        #expect(list.refreshed(reserved: [])?.ranges == [R(0, (1 << 48) - 1)])
        #expect(list.refreshed(reserved: [Self.hole])?.ranges == [R(0, 0xFC_FFFF_FFFF), R(0x100_0000_0000, (1 << 48) - 1)])
        var last = IOVAList([R(0x1000, 0x1FFF)])
        last.expandAperture(remaining: [])
        #expect(last.ranges == [R(0, .max)], "the last domain gone: the whole 64-bit space")
        #expect(IOVAList([R(0xFEE0_0000, 0xFEEF_FFFF)]).refreshed(reserved: [Self.msi]) == nil, "emptied: keep the old list")
    }
}
