import SystemPackage
import Testing

@testable import VFIO

/// Flags of `<linux/vfio.h>`, short for the tables.
private let read: UInt32 = 1, write: UInt32 = 2, vaddrFlag: UInt32 = 4, readWrite: UInt32 = 3
private let dirtyBitmap: UInt32 = 1, all: UInt32 = 2
private let start: UInt32 = 1, stop: UInt32 = 2, getBitmap: UInt32 = 4
private let page: UInt64 = 0x1000
private let msiStart: UInt64 = 0xFEE0_0000
private let top48: UInt64 = 1 << 48

private func map(_ iova: UInt64, _ size: UInt64 = page, _ flags: UInt32 = readWrite, at offset: UInt64 = 0) -> Type1Op {
    .map(flags, .memory(offset), iova: iova, size: size)
}

private func unmap(_ iova: UInt64, _ size: UInt64, _ flags: UInt32 = 0, bitmap: DirtyBitmapRequest? = nil) -> Type1Op {
    .unmap(flags, iova: iova, size: size, bitmap: bitmap)
}

private let bitmap8 = DirtyBitmapRequest(pageSize: page, size: 8)

/// Spec §3 (T1 rules) and §4.6 (container ioctls), one row per rule and case.
let type1Rows: [Type1Row] = [
    // §3.2 / §4.6: open, extensions, SET_IOMMU
    Type1Row(rule: "VG-20", name: "GET_API_VERSION is 0", operation: .rawRequest(VFIORequest.getAPIVersion), expect: .value(0), paths: [.uapi]),
    Type1Row(rule: "T1-03", name: "TYPE1 before SET_IOMMU", config: Type1Config(type: nil), operation: .checkExtension(1), expect: .value(1)),
    Type1Row(rule: "T1-03", name: "TYPE1v2 after SET_IOMMU", operation: .checkExtension(3), expect: .value(1)),
    Type1Row(rule: "T1-03", name: "UNMAP_ALL", operation: .checkExtension(9), expect: .value(1)),
    Type1Row(rule: "T1-03", name: "UPDATE_VADDR is 0 before SET_IOMMU", config: Type1Config(type: nil), operation: .checkExtension(10), expect: .value(0)),
    Type1Row(rule: "T1-03", name: "UPDATE_VADDR is 1 with an IOMMU", operation: .checkExtension(10), expect: .value(1)),
    Type1Row(rule: "T1-03", name: "DMA_CC is 0 before SET_IOMMU", config: Type1Config(type: nil), operation: .checkExtension(4), expect: .value(0)),
    Type1Row(rule: "T1-03", name: "DMA_CC is 1 when VT-d enforces coherency", operation: .checkExtension(4), expect: .value(1)),
    Type1Row(rule: "T1-03", name: "DMA_CC is 0 on SMMUv3", config: Type1Config(profile: .smmuv3()), operation: .checkExtension(4), expect: .value(0)),
    Type1Row(rule: "T1-03", name: "the retired nesting ID is 0", operation: .checkExtension(6), expect: .value(0)),
    Type1Row(rule: "T1-03", name: "SPAPR is 0 on x86", config: Type1Config(type: nil), operation: .checkExtension(2), expect: .value(0)),
    Type1Row(rule: "T1-02", name: "SET_IOMMU(TYPE1) gives a v1 container", config: Type1Config(type: nil), operation: .setIOMMU(1), expect: .ok),
    Type1Row(rule: "VG-22", name: "SET_IOMMU(nesting) finds no driver", config: Type1Config(type: nil), operation: .setIOMMU(6), expect: .failure(.operationNotSupportedByDevice)),
    Type1Row(rule: "VG-22", name: "SET_IOMMU(SPAPR) finds no driver", config: Type1Config(type: nil), operation: .setIOMMU(7), expect: .failure(.operationNotSupportedByDevice)),
    Type1Row(rule: "VG-22", name: "SET_IOMMU twice", operation: .setIOMMU(3), expect: .failure(.invalidArgument)),
    Type1Row(rule: "VG-24", name: "MAP_DMA before SET_IOMMU", config: Type1Config(type: nil), operation: map(0), expect: .failure(.invalidArgument)),
    Type1Row(rule: "VG-23", name: "an unknown ioctl before SET_IOMMU", config: Type1Config(type: nil), operation: .rawRequest(VFIORequest.io(50)), expect: .failure(.invalidArgument), paths: [.uapi]),
    Type1Row(rule: "T1-04", name: "an unknown ioctl after SET_IOMMU", operation: .rawRequest(VFIORequest.io(50)), expect: .failure(.inappropriateIOCTLForDevice), paths: [.uapi]),
    Type1Row(rule: "T1-44", name: "project policy: a bypassing IOMMU is refused", config: Type1Config(type: nil, profile: .bypass), operation: .setIOMMU(3), expect: .failure(.notPermitted)),
    Type1Row(
        rule: "T1-44", name: "project policy: allowBypassingIOMMU lifts the refusal",
        config: Type1Config(type: nil, options: VFIOContainerOptions(allowUnsafeInterrupts: true, allowBypassingIOMMU: true), profile: .bypass),
        operation: .setIOMMU(3), expect: .ok),
    Type1Row(rule: "T1-50", name: "no interrupt remapping: EPERM", config: Type1Config(type: nil, profile: .vtd(interruptRemapping: false)), operation: .setIOMMU(3), expect: .failure(.notPermitted)),
    Type1Row(
        rule: "T1-50", name: "allow_unsafe_interrupts lifts it",
        config: Type1Config(type: nil, options: VFIOContainerOptions(allowUnsafeInterrupts: true), profile: .vtd(interruptRemapping: false)),
        operation: .setIOMMU(3), expect: .ok),

    // §3.3 MAP_DMA, in the kernel's order
    Type1Row(rule: "T1-10", name: "argsz below 32", operation: .rawArgsz(request: VFIORequest.iommuMapDMA, argsz: 31), expect: .failure(.invalidArgument), paths: [.uapi]),
    Type1Row(rule: "T1-11", name: "an unknown flag", operation: map(0, page, 0x9), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-13", name: "size 0", operation: map(0, 0), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-13", name: "size 0 wins over misalignment", operation: .map(readWrite, .absolute(0x123), iova: 0x7, size: 0), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-14", name: "IOVA wraps past 2^64", operation: map(UInt64.max - page + 1, 2 * page), expect: .failure(.overflow)),
    Type1Row(rule: "T1-14", name: "vaddr wraps past 2^64", operation: .map(readWrite, .absolute(UInt64.max - page + 1), iova: 0, size: 2 * page), expect: .failure(.overflow)),
    Type1Row(rule: "T1-14", name: "wrap is checked before alignment", operation: map(UInt64.max, 2), expect: .failure(.overflow)),
    Type1Row(rule: "T1-15", name: "neither READ nor WRITE", operation: map(0, page, 0), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-15", name: "VADDR with READ", operation: map(0, page, read | vaddrFlag), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-16", name: "unaligned IOVA", operation: map(0x800), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-16", name: "unaligned size", operation: map(0, 0x1800), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-16", name: "unaligned vaddr", operation: map(0, page, at: 0x10), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-16", name: "alignment is checked before overlap", prepare: [map(0)], operation: map(0x800), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-17", name: "an exact duplicate", prepare: [map(0x10000)], operation: map(0x10000), expect: .failure(.fileExists)),
    Type1Row(rule: "T1-17", name: "a partial overlap from below", prepare: [map(0x10000, 2 * page)], operation: map(0xF000, 2 * page), expect: .failure(.fileExists)),
    Type1Row(rule: "T1-17", name: "a range swallowing a mapping", prepare: [map(0x11000)], operation: map(0x10000, 4 * page), expect: .failure(.fileExists)),
    Type1Row(rule: "T1-22", name: "an adjacent mapping is fine", prepare: [map(0x10000)], operation: map(0x11000, page, at: page), expect: .ok),
    Type1Row(
        rule: "T1-18", name: "no DMA entries left", config: Type1Config(options: VFIOContainerOptions(dmaEntryLimit: 1)), prepare: [map(0)],
        operation: map(0x10000), expect: .failure(.noSpace)),
    Type1Row(
        rule: "T1-18", name: "EEXIST is checked before ENOSPC", config: Type1Config(options: VFIOContainerOptions(dmaEntryLimit: 1)), prepare: [map(0)],
        operation: map(0), expect: .failure(.fileExists)),
    Type1Row(rule: "T1-19", name: "inside the MSI window", operation: map(msiStart), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-19", name: "across the MSI window's start", operation: map(msiStart - page, 2 * page), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-19", name: "just below the MSI window", operation: map(msiStart - page), expect: .ok),
    Type1Row(rule: "T1-19", name: "just above the MSI window", operation: map(0xFEF0_0000), expect: .ok),
    Type1Row(rule: "T1-19", name: "the last page of the 48-bit aperture", operation: map(top48 - page), expect: .ok),
    Type1Row(rule: "T1-19", name: "beyond the aperture", operation: map(top48), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-20", name: "vaddr not process memory", operation: .map(readWrite, .absolute(0x1000), iova: 0, size: page), expect: .failure(.badAddress)),
    Type1Row(rule: "T1-20", name: "vaddr running off the host memory", operation: map(0, 2 * page, at: (1 << 20) - page), expect: .failure(.badAddress)),
    Type1Row(rule: "T1-20", name: "device writes to read-only memory", config: Type1Config(readOnlyMemory: true), operation: map(0), expect: .failure(.badAddress)),
    Type1Row(rule: "T1-20", name: "device reads of read-only memory", config: Type1Config(readOnlyMemory: true), operation: map(0, page, read), expect: .ok),
    Type1Row(rule: "T1-20", name: "RLIMIT_MEMLOCK exceeded", config: Type1Config(lockedMemoryLimit: 2 * page), prepare: [map(0, 2 * page)], operation: map(0x10000), expect: .failure(.noMemory)),
    Type1Row(rule: "T1-20", name: "within RLIMIT_MEMLOCK", config: Type1Config(lockedMemoryLimit: 2 * page), prepare: [map(0)], operation: map(0x10000, page, at: page), expect: .ok),
    Type1Row(rule: "T1-20", name: "a failed pin consumes no entry", config: Type1Config(options: VFIOContainerOptions(dmaEntryLimit: 1)), prepare: [.failing(.map(readWrite, .absolute(0x1000), iova: 0, size: page))], operation: map(0), expect: .ok),

    // §3.4 UNMAP_DMA
    Type1Row(rule: "T1-30", name: "argsz below 24", operation: .rawArgsz(request: VFIORequest.iommuUnmapDMA, argsz: 23), expect: .failure(.invalidArgument), paths: [.uapi]),
    Type1Row(rule: "T1-30", name: "an unknown flag", operation: unmap(0, page, 8), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-30", name: "GET_DIRTY_BITMAP with ALL", operation: unmap(0, 0, dirtyBitmap | all, bitmap: bitmap8), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-31", name: "GET_DIRTY_BITMAP without a bitmap", operation: unmap(0, page, dirtyBitmap), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "T1-31", name: "a bitmap too small for the range", prepare: [.dirty(start)],
        operation: unmap(0, 65 * page, dirtyBitmap, bitmap: bitmap8), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-32", name: "unaligned IOVA", operation: unmap(0x800, page), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-32", name: "size 0", operation: unmap(0, 0), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-32", name: "unaligned size", operation: unmap(0, 0x800), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-32", name: "a range wrapping past 2^64", operation: unmap(UInt64.max - page + 1, 2 * page), expect: .failure(.overflow)),
    Type1Row(rule: "T1-32", name: "ALL with an IOVA", operation: unmap(page, 0, all), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-32", name: "GET_DIRTY_BITMAP while not tracking", prepare: [map(0)], operation: unmap(0, page, dirtyBitmap, bitmap: bitmap8), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "T1-32", name: "GET_DIRTY_BITMAP at another page size", prepare: [map(0), .dirty(start)],
        operation: unmap(0, page, dirtyBitmap, bitmap: DirtyBitmapRequest(pageSize: 0x2000, size: 8)), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-32", name: "v2: starting inside a mapping", prepare: [map(0x10000, 2 * page)], operation: unmap(0x11000, page), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-32", name: "v2: ending inside a mapping", prepare: [map(0x10000, 2 * page)], operation: unmap(0x10000, page), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-33", name: "v2: two whole mappings and a hole", prepare: [map(0x10000), map(0x13000, 2 * page, at: page)], operation: unmap(0x10000, 5 * page), expect: .value(3 * page)),
    Type1Row(rule: "T1-33", name: "a range without mappings", prepare: [map(0x10000)], operation: unmap(0x20000, page), expect: .value(0)),
    Type1Row(
        rule: "T1-34", name: "v1: starting inside a mapping unmaps nothing", config: Type1Config(type: .type1), prepare: [map(0x10000, 2 * page), map(0x12000, page, at: 0x2000)],
        operation: unmap(0x11000, 2 * page), expect: .value(0)),
    Type1Row(
        rule: "T1-34", name: "v1: covering the first IOVA takes the whole mapping", config: Type1Config(type: .type1), prepare: [map(0x10000, 4 * page)],
        operation: unmap(0x10000, page), expect: .value(4 * page)),
    Type1Row(rule: "T1-35", name: "VADDR invalidates whole mappings", prepare: [map(0x10000, 2 * page)], operation: unmap(0x10000, 2 * page, vaddrFlag), expect: .value(2 * page)),
    Type1Row(
        rule: "T1-35", name: "VADDR twice", prepare: [map(0x10000), unmap(0x10000, page, vaddrFlag)],
        operation: unmap(0x10000, page, vaddrFlag), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "T1-35", name: "VADDR with one already invalid rolls back", prepare: [map(0x10000), map(0x11000, page, at: page), unmap(0x11000, page, vaddrFlag)],
        operation: unmap(0x10000, 2 * page, vaddrFlag), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-38", name: "UNMAP_ALL takes everything", prepare: [map(0), map(top48 - page, page, at: page)], operation: unmap(0, 0, all), expect: .value(2 * page)),
    Type1Row(rule: "T1-38", name: "dma_avail is back in full after UNMAP_ALL", prepare: [map(0), map(page, page, at: page), unmap(0, 0, all)], operation: .info(), expect: .value(65535)),

    // §3.9 VADDR
    Type1Row(rule: "T1-60", name: "MAP VADDR without a mapping", operation: map(0x10000, page, vaddrFlag, at: page), expect: .failure(.noSuchFileOrDirectory)),
    Type1Row(rule: "T1-60", name: "MAP VADDR while the vaddr is valid", prepare: [map(0x10000)], operation: map(0x10000, page, vaddrFlag, at: page), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "T1-60", name: "MAP VADDR with another size", prepare: [map(0x10000, 2 * page), unmap(0x10000, 2 * page, vaddrFlag)],
        operation: map(0x10000, page, vaddrFlag, at: page), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "T1-60", name: "MAP VADDR re-validates", prepare: [map(0x10000), unmap(0x10000, page, vaddrFlag)],
        operation: map(0x10000, page, vaddrFlag, at: page), expect: .ok),

    // §3.8 GET_INFO
    Type1Row(rule: "T1-70", name: "argsz below 16", operation: .info(argsz: 15), expect: .failure(.invalidArgument), paths: [.uapi]),
    Type1Row(rule: "T1-71", name: "DMA_AVAIL counts entries", prepare: [map(0), map(0x10000, page, at: page)], operation: .info(), expect: .value(65533)),

    // §3.10 DIRTY_PAGES
    Type1Row(rule: "T1-80", name: "a v1 container", config: Type1Config(type: .type1), operation: .dirty(start), expect: .failure(.permissionDenied)),
    Type1Row(rule: "T1-80", name: "argsz below 8", operation: .rawArgsz(request: VFIORequest.iommuDirtyPages, argsz: 7), expect: .failure(.invalidArgument), paths: [.uapi]),
    Type1Row(rule: "T1-80", name: "START and STOP together", operation: .dirty(start | stop), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-80", name: "no flag", operation: .dirty(0), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-80", name: "an unknown flag", operation: .dirty(8), expect: .failure(.invalidArgument)),
    Type1Row(rule: "T1-81", name: "START is idempotent", prepare: [.dirty(start)], operation: .dirty(start), expect: .value(0)),
    Type1Row(rule: "T1-81", name: "STOP without START", operation: .dirty(stop), expect: .value(0)),
    Type1Row(
        rule: "T1-82", name: "GET_BITMAP while not tracking", prepare: [map(0)],
        operation: .dirty(getBitmap, DirtyBitmapQuery(iova: 0, size: page, bitmap: bitmap8)), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "T1-82", name: "GET_BITMAP wrapping past 2^64", prepare: [.dirty(start)],
        operation: .dirty(getBitmap, DirtyBitmapQuery(iova: UInt64.max - page + 1, size: 2 * page, bitmap: bitmap8)), expect: .failure(.overflow)),
    Type1Row(
        rule: "T1-82", name: "GET_BITMAP of size 0", prepare: [.dirty(start)],
        operation: .dirty(getBitmap, DirtyBitmapQuery(iova: 0, size: 0, bitmap: bitmap8)), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "T1-82", name: "GET_BITMAP at another page size", prepare: [.dirty(start)],
        operation: .dirty(getBitmap, DirtyBitmapQuery(iova: 0, size: 0x10000, bitmap: DirtyBitmapRequest(pageSize: 0x2000, size: 8))), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "T1-82", name: "GET_BITMAP bisecting a mapping", prepare: [map(0x10000, 2 * page), .dirty(start)],
        operation: .dirty(getBitmap, DirtyBitmapQuery(iova: 0x11000, size: page, bitmap: bitmap8)), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "T1-83", name: "every mapped page is dirty", prepare: [map(0x10000, 2 * page), map(0x20000, page, at: 0x2000), .dirty(start)],
        operation: .dirty(getBitmap, DirtyBitmapQuery(iova: 0x10000, size: 0x20000, bitmap: bitmap8)), expect: .value(3)),
    Type1Row(
        rule: "T1-84", name: "UNMAP with GET_DIRTY_BITMAP reports the removed pages", prepare: [map(0x10000, 2 * page), .dirty(start)],
        operation: unmap(0x10000, 4 * page, dirtyBitmap, bitmap: bitmap8), expect: .value(2)),
]

@Suite("Type1 conformance (spec §3, §4.6)")
struct Type1ConformanceTests {
    @Test(arguments: type1Rows, APIPath.allCases)
    func row(_ row: Type1Row, path: APIPath) throws {
        guard row.paths.contains(path) else { return }
        let fixture = try Type1Fixture(row.config)
        for (index, step) in row.prepare.enumerated() {
            let outcome = fixture.run(step, via: path)
            if case .failing = step { continue }
            guard case .value = outcome else {
                Issue.record("\(row.rule) \(row.name): preparation step \(index) failed with \(outcome)")
                return
            }
        }
        let mappingsBefore = fixture.container.mappings
        let lockedBefore = fixture.container.process.lockedBytes
        let outcome = fixture.run(row.operation, via: path)
        #expect(outcome == row.expect, "\(row.rule) \(row.name) via \(path)")
        if case .failure = outcome {
            #expect(fixture.container.mappings == mappingsBefore, "\(row.rule): a failed call changed the mappings")
            #expect(fixture.container.process.lockedBytes == lockedBefore, "\(row.rule): a failed call changed locked memory")
        }
    }
}
