import KernelRules
import IOMMU
import SystemPackage
import Testing

@testable import VFIO
import Syscalls

/// Flags of `<linux/vfio.h>`, short for the tables.
private let read: UInt32 = 1, write: UInt32 = 2, vaddrFlag: UInt32 = 4, readWrite: UInt32 = 3
private let dirtyBitmap: UInt32 = 1, all: UInt32 = 2
private let start: UInt32 = 1, stop: UInt32 = 2, getBitmap: UInt32 = 4
private let page: UInt64 = 0x1000
private let msiStart: UInt64 = 0xFEE0_0000
private let msiLast: UInt64 = 0xFEEF_FFFF
private let top48: UInt64 = 1 << 48
private let x86PageSizes: UInt64 = 0x4020_1000
private let vtdRanges: [(UInt64, UInt64)] = [(0, msiStart - 1), (msiLast + 1, top48 - 1)]
/// `struct vfio_iommu_type1_info` pre-filled with 0xAA where the kernel wrote nothing.
private let untouched: UInt64 = 0xAAAA_AAAA
private let notForSwift = "a raw-struct field: the Swift API takes the values, not the struct"
private let noPointer = "a user pointer: the Swift API takes values, so nothing can fault"
private let noRequest = "a request number: the Swift API has a method per call, so no unknown request"
private let wideID = "an ID beyond 32 bits: VFIOExtension is the UAPI's __u32 extension ID, so only the ioctl's unsigned long can carry it"

private func map(_ iova: UInt64, _ size: UInt64 = page, _ flags: UInt32 = readWrite, at offset: UInt64 = 0) -> Type1Op {
    .map(flags, .memory(offset), iova: iova, size: size)
}

private func unmap(_ iova: UInt64, _ size: UInt64, _ flags: UInt32 = 0, bitmap: DirtyBitmapRequest? = nil) -> Type1Op {
    .unmap(flags, iova: iova, size: size, bitmap: bitmap)
}

private let bitmap8 = DirtyBitmapRequest(pageSize: page, size: 8)

/// The capability chain of GET_INFO as `decodeInfo` lists it (T1-71, T1-72): MIGRATION at 24,
/// DMA_AVAIL at 56, IOVA_RANGE at 72 when there are ranges.
private func infoChain(avail: UInt64, ranges: [(UInt64, UInt64)]) -> [UInt64] {
    [2, 1, 56, 0, page, 1 << 28, 3, 1, ranges.isEmpty ? 0 : 72, avail, 0]
        + (ranges.isEmpty ? [] : [1, 1, 0, UInt64(ranges.count), 0] + ranges.flatMap { [$0.0, $0.1] })
}

private let vtdInfo512: Outcome = .fields([512, 3, x86PageSizes, 24, 0] + infoChain(avail: 65535, ranges: vtdRanges))

/// Spec §3 (T1 rules) and §4.6 (container ioctls), one row per rule and case.
let type1Rows: [Type1Row] = [
    // §3.2 / §4.6: open, extensions, SET_IOMMU
    Type1Row(rule: "T1-01", name: "dma_avail starts at dma_entry_limit's default, 65535", operation: .info(.dmaAvailable), expect: .value(65535)),
    Type1Row(
        rule: "T1-01", name: "a configured dma_entry_limit is the initial dma_avail", config: Type1Config(options: VFIOContainerOptions(dmaEntryLimit: 7)),
        operation: .info(.dmaAvailable), expect: .value(7)),
    Type1Row(
        rule: "T1-01", name: "allow_unsafe_interrupts is off by default", config: Type1Config(type: nil, profile: .vtd(interruptRemapping: false)),
        operation: .setIOMMU(3), expect: .failure(.notPermitted), messageContains: ["No interrupt remapping support"]),
    Type1Row(rule: "VG-20", name: "GET_API_VERSION is 0", operation: .apiVersion, expect: .value(0)),
    Type1Row(rule: "VG-21", name: "before SET_IOMMU, type1 answers TYPE1v2", config: Type1Config(type: nil), operation: .checkExtension(3), expect: .value(1)),
    Type1Row(rule: "VG-21", name: "NOIOMMU is 0 for a container that is not no-IOMMU", config: Type1Config(type: nil), operation: .checkExtension(8), expect: .value(0)),
    Type1Row(rule: "VG-21", name: "after SET_IOMMU, the selected driver answers", operation: .checkExtension(1), expect: .value(1)),
    Type1Row(
        rule: "VG-21", name: "an ID beyond 32 bits is no extension, not its low half", config: Type1Config(type: nil), operation: .checkExtension(0x1_0000_0003),
        expect: .value(0), uapiOnly: wideID),
    Type1Row(rule: "T1-03", name: "an ID beyond 32 bits after SET_IOMMU is 0", operation: .checkExtension(0x1_0000_0009), expect: .value(0), uapiOnly: wideID),
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
    Type1Row(
        rule: "VG-22", name: "SET_IOMMU(UNMAP_ALL): type1 answers 1 to the extension, then its open refuses it with EINVAL",
        config: Type1Config(type: nil), operation: .setIOMMU(9), expect: .failure(.invalidArgument)),
    Type1Row(rule: "VG-22", name: "SET_IOMMU(UPDATE_VADDR) finds no driver (0 before an IOMMU is set)", config: Type1Config(type: nil), operation: .setIOMMU(10), expect: .failure(.operationNotSupportedByDevice)),
    Type1Row(rule: "VG-22", name: "SET_IOMMU twice", operation: .setIOMMU(3), expect: .failure(.invalidArgument)),
    Type1Row(rule: "VG-22", name: "SET_IOMMU without a group", config: Type1Config(type: nil, groups: []), operation: .setIOMMU(3), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "VG-22", name: "SET_IOMMU of an ID beyond 32 bits finds no driver", config: Type1Config(type: nil), operation: .setIOMMU(0x1_0000_0003),
        expect: .failure(.operationNotSupportedByDevice), then: [Type1Check(.setIOMMU(3), .ok)], uapiOnly: wideID),
    Type1Row(rule: "VG-24", name: "MAP_DMA before SET_IOMMU", config: Type1Config(type: nil), operation: map(0), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "VG-23", name: "an unknown ioctl before SET_IOMMU", config: Type1Config(type: nil), operation: .rawRequest(VFIORequest.io(50)),
        expect: .failure(.invalidArgument), uapiOnly: noRequest),
    Type1Row(rule: "VG-23", name: "GET_INFO before SET_IOMMU has no driver to go to", config: Type1Config(type: nil), operation: .info(.pageSizes), expect: .failure(.invalidArgument)),
    Type1Row(rule: "VG-23", name: "DIRTY_PAGES before SET_IOMMU has no driver to go to", config: Type1Config(type: nil), operation: .dirty(start), expect: .failure(.invalidArgument)),
    Type1Row(
        rule: "T1-04", name: "an unknown ioctl after SET_IOMMU", operation: .rawRequest(VFIORequest.io(50)), expect: .failure(.inappropriateIOCTLForDevice),
        uapiOnly: noRequest),
    Type1Row(
        rule: "T1-44", name: "project policy: a bypassing IOMMU is refused, naming it and its geometry", config: Type1Config(type: nil, profile: .bypass),
        operation: .setIOMMU(3), expect: .failure(.notPermitted),
        messageContains: ["IOMMU bypass", "aperture [0x0, 0xffffffff], force_aperture false", "allowBypassingIOMMU"],
        then: [Type1Check(.info(.pageSizes), .failure(.invalidArgument))]),
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
    Type1Row(
        rule: "T1-10", name: "the struct cannot be copied in", operation: .rawPointer(request: VFIORequest.iommuMapDMA, address: 8), expect: .failure(.badAddress),
        uapiOnly: noPointer),
    Type1Row(rule: "T1-11", name: "argsz below 32", operation: .rawArgsz(request: VFIORequest.iommuMapDMA, argsz: 31), expect: .failure(.invalidArgument), uapiOnly: notForSwift),
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
        rule: "T1-22", name: "adjacent mappings stay two entries", prepare: [map(0x10000), map(0x11000, page, at: page)], operation: .info(.dmaAvailable),
        expect: .value(65533), then: [Type1Check(unmap(0x10000, page), .value(page)), Type1Check(unmap(0x11000, page), .value(page))]),
    Type1Row(
        rule: "T1-92", name: "a mapping ending right below another does not overlap it", prepare: [map(0x10000)], operation: map(0xF000, page, at: page),
        expect: .ok),
    Type1Row(
        rule: "T1-92", name: "ends are inclusive up to 2^64 - 1: the top page is found", config: Type1Config(profile: .fullWidth),
        prepare: [map(UInt64.max - page + 1)], operation: map(UInt64.max - 2 * page + 1, 2 * page, at: page), expect: .failure(.fileExists)),
    Type1Row(
        rule: "T1-23", name: "a successful MAP_DMA writes nothing back", operation: map(0x10000), expect: .ok,
        then: [Type1Check(.info(.dmaAvailable), .value(65534))]),
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
    Type1Row(
        rule: "T1-20", name: "the RLIMIT_MEMLOCK message prints the limit in whole pages", config: Type1Config(lockedMemoryLimit: 2 * page + 0x800),
        prepare: [map(0, 2 * page)], operation: map(0x10000), expect: .failure(.noMemory), messageContains: ["vfio_pin_pages_remote: RLIMIT_MEMLOCK (8192) exceeded"]),
    Type1Row(
        rule: "T1-21", name: "a mapping made while tracking is tracked", prepare: [.dirty(start), map(0x10000, 2 * page)],
        operation: .dirty(getBitmap, DirtyBitmapQuery(iova: 0x10000, size: 0x10000, bitmap: bitmap8)), expect: .value(2)),
    Type1Row(
        rule: "T1-91", name: "each mapping is charged, the same pages twice", prepare: [map(0, 2 * page), map(0x10000, page)], operation: .probe(.lockedBytes),
        expect: .value(3 * page)),
    Type1Row(
        rule: "T1-91", name: "UNMAP_DMA uncharges what it removes", prepare: [map(0, 2 * page), map(0x10000, page), unmap(0, 2 * page)],
        operation: .probe(.lockedBytes), expect: .value(page)),

    // §3.4 UNMAP_DMA
    Type1Row(
        rule: "T1-30", name: "the struct cannot be copied in", operation: .rawPointer(request: VFIORequest.iommuUnmapDMA, address: 8), expect: .failure(.badAddress),
        uapiOnly: noPointer),
    Type1Row(rule: "T1-30", name: "argsz below 24", operation: .rawArgsz(request: VFIORequest.iommuUnmapDMA, argsz: 23), expect: .failure(.invalidArgument), uapiOnly: notForSwift),
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
        operation: unmap(0x10000, 2 * page, vaddrFlag), expect: .failure(.invalidArgument),
        then: [
            Type1Check(map(0x10000, page, vaddrFlag, at: 2 * page), .failure(.invalidArgument)),
            Type1Check(map(0x11000, page, vaddrFlag, at: 2 * page), .ok),
        ]),
    Type1Row(
        rule: "T1-35", name: "VADDR|ALL invalidates every mapping", prepare: [map(0), map(top48 - page, page, at: page)], operation: unmap(0, 0, vaddrFlag | all),
        expect: .value(2 * page),
        then: [
            Type1Check(.probe(.lockedBytes), .value(2 * page)), Type1Check(map(0, page, vaddrFlag, at: 2 * page), .ok),
            Type1Check(map(top48 - page, page, vaddrFlag, at: 3 * page), .ok), Type1Check(unmap(0, 0, vaddrFlag | all), .value(2 * page)),
        ]),
    Type1Row(
        rule: "T1-35", name: "VADDR|ALL with one already invalid invalidates none", prepare: [map(0), map(0x10000, page, at: page), unmap(0x10000, page, vaddrFlag)],
        operation: unmap(0, 0, vaddrFlag | all), expect: .failure(.invalidArgument), then: [Type1Check(map(0, page, vaddrFlag, at: 2 * page), .failure(.invalidArgument))]),
    Type1Row(rule: "T1-37", name: "success writes the bytes unmapped back", prepare: [map(0x10000, 2 * page)], operation: unmap(0x10000, 4 * page), expect: .value(2 * page)),
    Type1Row(
        rule: "T1-37", name: "an error writes nothing back", prepare: [map(0x10000, 2 * page)], operation: unmap(0x10000, page), expect: .failure(.invalidArgument),
        then: [Type1Check(.probe(.lockedBytes), .value(2 * page))]),
    Type1Row(rule: "T1-38", name: "UNMAP_ALL takes everything", prepare: [map(0), map(top48 - page, page, at: page)], operation: unmap(0, 0, all), expect: .value(2 * page)),
    Type1Row(rule: "T1-38", name: "dma_avail is back in full after UNMAP_ALL", prepare: [map(0), map(page, page, at: page), unmap(0, 0, all)], operation: .info(.dmaAvailable), expect: .value(65535)),
    Type1Row(rule: "T1-38", name: "UNMAP_ALL is an extension type1 always has", operation: .checkExtension(9), expect: .value(1)),

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
    Type1Row(rule: "T1-70", name: "argsz below 16", operation: .info(.layout(argsz: 15)), expect: .failure(.invalidArgument), uapiOnly: notForSwift),
    Type1Row(
        rule: "T1-70", name: "the struct cannot be copied in", operation: .rawPointer(request: VFIORequest.iommuGetInfo, address: 8), expect: .failure(.badAddress),
        uapiOnly: noPointer),
    Type1Row(
        rule: "T1-70", name: "argsz 16: flags PGSIZES|CAPS, iova_pgsizes, argsz grown; nothing past byte 16", operation: .info(.layout(argsz: 16)),
        expect: .fields([120, 3, x86PageSizes, untouched, untouched])),
    Type1Row(rule: "T1-71", name: "DMA_AVAIL counts entries", prepare: [map(0), map(0x10000, page, at: page)], operation: .info(.dmaAvailable), expect: .value(65533)),
    Type1Row(rule: "T1-71", name: "the chain: MIGRATION, DMA_AVAIL, IOVA_RANGE", operation: .info(.layout(argsz: 512)), expect: vtdInfo512),
    Type1Row(
        rule: "T1-72", name: "argsz one short of the chain: argsz grows, cap_offset 0, no capability", operation: .info(.layout(argsz: 119)),
        expect: .fields([120, 3, x86PageSizes, 0, 0])),
    Type1Row(
        rule: "T1-72", name: "argsz exactly the chain's", operation: .info(.layout(argsz: 120)),
        expect: .fields([120, 3, x86PageSizes, 24, 0] + infoChain(avail: 65535, ranges: vtdRanges))),
    Type1Row(
        rule: "T1-73", name: "the 104-byte example: one domain, 4 KiB pages, one IOVA range", config: Type1Config(profile: .mock()), prepare: [map(1 << 24)],
        operation: .info(.layout(argsz: 104)), expect: .fields([104, 3, page, 24, 0] + infoChain(avail: 65534, ranges: [(1 << 24, (1 << 31) - 1)]))),
    Type1Row(
        rule: "T1-74", name: "argsz 20: cap_offset written as 0, pad not, as older kernels did", operation: .info(.layout(argsz: 20)),
        expect: .fields([120, 3, x86PageSizes, 0, untouched])),
    Type1Row(
        rule: "T1-74", name: "argsz 16: only 16 bytes written, as older kernels did", operation: .info(.layout(argsz: 16)),
        expect: .fields([120, 3, x86PageSizes, untouched, untouched])),
    Type1Row(rule: "T1-90", name: "GET_INFO before any mapping already has the IOVA list", operation: .info(.iovaRanges), expect: .fields(vtdRanges.flatMap { [$0.0, $0.1] })),
    Type1Row(
        rule: "T1-90", name: "after SET_IOMMU the list reflects every group joined before it", config: Type1Config(groups: [27, 22]), operation: .info(.layout(argsz: 512)),
        expect: vtdInfo512),

    // §3.10 DIRTY_PAGES
    Type1Row(rule: "T1-80", name: "a v1 container", config: Type1Config(type: .type1), operation: .dirty(start), expect: .failure(.permissionDenied)),
    Type1Row(rule: "T1-80", name: "argsz below 8", operation: .rawArgsz(request: VFIORequest.iommuDirtyPages, argsz: 7), expect: .failure(.invalidArgument), uapiOnly: notForSwift),
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
    Type1Row(
        rule: "T1-82", name: "GET_BITMAP puts each mapping's pages at its page offset; a zeroed bitmap reads back as the Swift API's words",
        prepare: dirtyWordsMappings, operation: .bitmapWords(.dirty(getBitmap, dirtyWordsQuery), prefill: 0, count: 5),
        expect: .fields([0x18, 0, .max, 0x3, 0])),
    Type1Row(
        rule: "T1-82",
        name: "GET_BITMAP writes only the mappings' words (update_user_bitmap): the user's pattern survives outside them and is OR'd into a word a mapping starts inside",
        prepare: dirtyWordsMappings, operation: .bitmapWords(.dirty(getBitmap, dirtyWordsQuery), prefill: dirtyWordsPattern, count: 5),
        expect: .fields([dirtyWordsPattern | 0x18, dirtyWordsPattern, .max, 0x3, dirtyWordsPattern]), uapiOnly: userBitmap),
    Type1Row(
        rule: "T1-84", name: "UNMAP with GET_DIRTY_BITMAP writes only the removed mappings' words: the user's pattern survives outside them",
        prepare: dirtyWordsMappings,
        operation: .bitmapWords(unmap(0, 256 * page, dirtyBitmap, bitmap: DirtyBitmapRequest(pageSize: page, size: 32)), prefill: dirtyWordsPattern, count: 5),
        expect: .fields([dirtyWordsPattern | 0x18, dirtyWordsPattern, .max, 0x3, dirtyWordsPattern]), uapiOnly: userBitmap),
]

/// Three mappings in pages 0…255 (bitmap words 0…3): pages 3–4 (inside word 0, not on a word
/// boundary), 128–191 (word 2 exactly) and 192–193 (the start of word 3); word 1 has none.
private let dirtyWordsMappings: [Type1Op] = [map(3 * page, 2 * page), map(128 * page, 64 * page, at: 0x10000), map(192 * page, 2 * page, at: 0x60000), .dirty(start)]
private let dirtyWordsQuery = DirtyBitmapQuery(iova: 0, size: 256 * page, bitmap: DirtyBitmapRequest(pageSize: page, size: 32))
private let dirtyWordsPattern: UInt64 = 0xA5A5_A5A5_A5A5_A5A0
private let userBitmap = "the user's bitmap words: the Swift API returns the bits, so there is no user memory to leave as it was"

@Suite("Type1 conformance (spec §3, §4.6)")
struct Type1ConformanceTests {
    /// Each row on each path it runs on (a row names its paths; the others are not cases).
    static let cases = type1Rows.flatMap { row in APIPath.allCases.filter(row.paths.contains).map { (row, $0) } }

    @Test(arguments: cases)
    func row(_ row: Type1Row, path: APIPath) throws {
        let fixture = try Type1Fixture(row.config)
        let calls = fixture.calls(path)
        let what = "\(row.rule) \(row.name) via \(path)"
        for (index, step) in row.prepare.enumerated() {
            let (outcome, _) = expectUnchangedOnFailure(fixture.container, "\(what), preparation step \(index)") { calls.run(step) }
            switch (step, outcome) {
            case (.failing, .failure), (_, .value), (_, .fields): continue
            default:
                Issue.record("\(what): preparation step \(index) gave \(outcome)")
                return
            }
        }
        let (outcome, error) = expectUnchangedOnFailure(fixture.container, what) { calls.run(row.operation) }
        #expect(outcome == row.expect, "\(what)")
        if !row.messageContains.isEmpty {
            let message = error?.message ?? "(no error)"
            for word in row.messageContains { #expect(message.contains(word), "\(what): the error must say \"\(word)\": \(message)") }
        }
        for (index, check) in row.then.enumerated() {
            let (after, _) = expectUnchangedOnFailure(fixture.container, "\(what), check \(index)") { calls.run(check.operation) }
            #expect(after == check.expect, "\(what): check \(index) after the operation")
        }
    }
}
