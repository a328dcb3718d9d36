import KernelRules
import SystemPackage

private let page = mockHostPage

/// `iommufd.md` §8.2 for the selftest's access objects, dirty tracking, PASID, hw_info and file
/// maps (IOMMUFD-814…816, -818, -819, with -220, -510…514, -607, -632). IOAS 1 first; an access is
/// slot 0 (its ACCESS object takes the next ID).
private let ioas: [MockOp] = [.ioas]
private let mocked: [MockOp] = [.ioas, .mockDomain(1)]
private let area: UInt64 = 0x10_0000
/// IOAS 1 with 4 pages at `area`, and a pinning access on it (ACCESS object 2).
private let pinning: [MockOp] = ioas + [.map(1, .anonymous(0), length: 4 * page, iova: area), .createAccess(1, flags: 1)]
private let reading: [MockOp] = ioas + [.map(1, .anonymous(0), length: 4 * page, iova: area), .createAccess(1, flags: 0)]
/// A mock domain, 8 pages at MOCK_APERTURE_START, a dirty-tracking HWPT 5 with tracking on.
private let dirty: [MockOp] = mocked + [.map(1, .anonymous(0), length: 8 * page, iova: mockStart), .hwptAlloc(dev: 3, pt: 1, flags: 2), .setDirtyTracking(5, true)]
/// A PASID-capable mock device (2, 3, auto HWPT 4) moved to a PASID-compatible HWPT 5.
private let pasid: [MockOp] = ioas + [.mockDomain(1, flags: 4), .hwptAlloc(dev: 3, pt: 1, flags: 8), .replace(stdev: 2, pt: 5)]
private let raw = "the raw struct's fd, flags or buffer have no Swift API spelling"
private let hwInfo = "GET_HW_INFO's answer is a UAPI struct; the Swift API exposes the IOMMUFDMockDevice"

let selftestAccessRows: [MockRow] = [
    // IOMMUFD-814: CREATE_ACCESS and ACCESS_REPLACE_IOAS.
    MockRow(rule: "IOMMUFD-814", name: "flags other than NEEDS_PIN_PAGES are EOPNOTSUPP", prepare: ioas, operation: .createAccess(1, flags: 2), expect: .failure(.notSupported)),
    MockRow(
        rule: "IOMMUFD-814", name: "no IOAS is ENOENT and no ID is used", prepare: ioas, operation: .createAccess(9, flags: 0), expect: .failure(.noSuchFileOrDirectory),
        then: [(.objects, .fields([1]))], also: ["IOMMUFD-607"]),
    MockRow(
        rule: "IOMMUFD-814", name: "the access is an ACCESS object its creator holds: DESTROY is EBUSY, and so is its IOAS's", prepare: ioas + [.createAccess(1, flags: 0)],
        operation: .destroy(2), expect: .failure(.resourceBusy), then: [(.destroy(1), .failure(.resourceBusy)), (.objects, .fields([1, 2]))],
        also: ["IOMMUFD-114", "IOMMUFD-110"]),
    MockRow(
        rule: "IOMMUFD-814", name: "closing the access destroys it: its ID and its IOAS are free", prepare: ioas + [.createAccess(1, flags: 1)], operation: .closeAccess(0),
        expect: .ok, then: [(.objects, .fields([1])), (.alignment(1), .value(1)), (.destroy(1), .ok)]),
    MockRow(
        rule: "IOMMUFD-814", name: "a pinning access raises the IOAS alignment to PAGE_SIZE", prepare: ioas + [.createAccess(1, flags: 1)], operation: .alignment(1),
        expect: .value(page), then: [(.map(1, .anonymous(mockPage), length: mockPage), .failure(.invalidArgument))], also: ["IOMMUFD-607", "IOMMUFD-300"]),
    MockRow(
        rule: "IOMMUFD-814", name: "an access that does not pin leaves it at 1", prepare: ioas + [.createAccess(1, flags: 0)], operation: .alignment(1), expect: .value(1),
        also: ["IOMMUFD-300"]),
    MockRow(
        rule: "IOMMUFD-814", name: "a pinning access over an area not page aligned is EADDRINUSE", prepare: ioas + [.map(1, .anonymous(mockPage), length: mockPage, iova: area + mockPage)],
        operation: .createAccess(1, flags: 1), expect: .failure(.addressInUse), then: [(.objects, .fields([1]))], also: ["IOMMUFD-301"]),
    MockRow(
        rule: "IOMMUFD-814", name: "ACCESS_REPLACE_IOAS moves the access; its unmap op drops its pins",
        prepare: pinning + [.accessPages(access: 0, iova: area, length: page), .ioas], operation: .replaceAccess(access: 0, ioas: 3), expect: .ok,
        then: [
            (.destroyAccessPages(access: 0, item: 0), .failure(.noSuchFileOrDirectory)), (.destroy(1), .ok), (.checkRefs(.anonymous(0), length: 4 * page, refs: 0), .ok),
            (.destroy(3), .failure(.resourceBusy)),
        ], also: ["IOMMUFD-607"]),
    MockRow(
        rule: "IOMMUFD-814", name: "ACCESS_REPLACE_IOAS to no IOAS is ENOENT; the pins stay", prepare: pinning + [.accessPages(access: 0, iova: area, length: page)],
        operation: .replaceAccess(access: 0, ioas: 9), expect: .failure(.noSuchFileOrDirectory), then: [(.destroyAccessPages(access: 0, item: 0), .ok)]),
    MockRow(
        rule: "IOMMUFD-814", name: "ACCESS_REPLACE_IOAS to its own IOAS changes nothing", prepare: pinning + [.accessPages(access: 0, iova: area, length: page)],
        operation: .replaceAccess(access: 0, ioas: 1), expect: .ok, then: [(.destroyAccessPages(access: 0, item: 0), .ok)]),

    // IOMMUFD-815: ACCESS_PAGES and DESTROY_ACCESS_PAGES.
    MockRow(
        rule: "IOMMUFD-815", name: "pins through the IOAS: items numbered from 0, each page pinned once", prepare: pinning,
        operation: .accessPages(access: 0, iova: area, length: page, check: .anonymous(0)), expect: .value(0),
        then: [(.accessPages(access: 0, iova: area, length: 2 * page), .value(1)), (.checkRefs(.anonymous(0), length: page, refs: 1), .ok)],
        also: ["IOMMUFD-607", "IOMMUFD-400"]),
    MockRow(
        rule: "IOMMUFD-815", name: "DESTROY_ACCESS_PAGES unpins; a second time is ENOENT", prepare: pinning + [.accessPages(access: 0, iova: area, length: page)],
        operation: .destroyAccessPages(access: 0, item: 0), expect: .ok,
        then: [(.checkRefs(.anonymous(0), length: 4 * page, refs: 0), .ok), (.destroyAccessPages(access: 0, item: 0), .failure(.noSuchFileOrDirectory))]),
    MockRow(
        rule: "IOMMUFD-815", name: "an unmap over an item's range drops it (access_pin_unmap)", prepare: pinning + [.accessPages(access: 0, iova: area, length: 4 * page)],
        operation: .unmap(1, iova: area, length: 4 * page), expect: .value(4 * page),
        then: [(.destroyAccessPages(access: 0, item: 0), .failure(.noSuchFileOrDirectory)), (.checkRefs(.anonymous(0), length: 4 * page, refs: 0), .ok)],
        also: ["IOMMUFD-607", "IOMMUFD-232"]),
    MockRow(
        rule: "IOMMUFD-815", name: "a mock domain added and removed under a pin keeps the pages pinned (access_pin)",
        prepare: ioas + [
            .map(1, .anonymous(0), length: 4 * page, iova: mockStart), .createAccess(1, flags: 1), .accessPages(access: 0, iova: mockStart, length: 4 * page),
            .mockDomain(1),
        ], operation: .checkMap(hwpt: 5, iova: mockStart, length: 4 * page, .anonymous(0)), expect: .ok,
        then: [
            (.destroy(3), .ok), (.checkRefs(.anonymous(0), length: 4 * page, refs: 1), .ok), (.destroyAccessPages(access: 0, item: 0), .ok),
            (.checkRefs(.anonymous(0), length: 4 * page, refs: 0), .ok),
        ], also: ["IOMMUFD-400", "IOMMUFD-404"]),
    MockRow(
        rule: "IOMMUFD-815", name: "over 16 MiB is ENOMEM", prepare: pinning, operation: .accessPages(access: 0, iova: area, length: (16 << 20) + page),
        expect: .failure(.noMemory)),
    MockRow(
        rule: "IOMMUFD-815", name: "an unknown flag is EOPNOTSUPP", prepare: pinning, operation: .accessPages(access: 0, iova: area, length: page, flags: 2),
        expect: .failure(.notSupported)),
    MockRow(
        rule: "IOMMUFD-815", name: "an access created without NEEDS_PIN_PAGES is EOPNOTSUPP", prepare: reading,
        operation: .accessPages(access: 0, iova: area, length: page), expect: .failure(.notSupported)),
    MockRow(
        rule: "IOMMUFD-815", name: "a hole is ENOENT", prepare: pinning, operation: .accessPages(access: 0, iova: area + 4 * page, length: page),
        expect: .failure(.noSuchFileOrDirectory), also: ["IOMMUFD-607"]),
    MockRow(
        rule: "IOMMUFD-815", name: "a range running into a hole is ENOENT, nothing pinned", prepare: pinning, operation: .accessPages(access: 0, iova: area, length: 5 * page),
        expect: .failure(.noSuchFileOrDirectory), then: [(.checkRefs(.anonymous(0), length: 4 * page, refs: 0), .ok)], also: ["IOMMUFD-607"]),
    MockRow(rule: "IOMMUFD-815", name: "length 0 is EINVAL", prepare: pinning, operation: .accessPages(access: 0, iova: area, length: 0), expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-815", name: "a write pin of a read-only area is EPERM",
        prepare: ioas + [.map(1, .anonymous(0), length: 4 * page, iova: area, readOnly: true), .createAccess(1, flags: 1)],
        operation: .accessPages(access: 0, iova: area, length: page, flags: 1), expect: .failure(.notPermitted), also: ["IOMMUFD-607"]),
    MockRow(
        rule: "IOMMUFD-815", name: "the check of the pinned pages against another user page is EBADE", prepare: pinning,
        operation: .accessPages(access: 0, iova: area, length: page, check: .anonymous(page)), expect: .failure(Errno(rawValue: 52)),
        then: [(.checkRefs(.anonymous(0), length: 4 * page, refs: 0), .ok)]),
    MockRow(
        rule: "IOMMUFD-815", name: "an fd that is no access file is EBADFD", prepare: pinning,
        operation: .rawTest(size: 72, op: 7, id: 0, words: [0, 0, UInt32(area), 0, UInt32(page)]), expect: .failure(.fileDescriptorInBadState), uapiOnly: raw),

    // IOMMUFD-816: ACCESS_RW.
    MockRow(
        rule: "IOMMUFD-816", name: "a read copies from the pages behind the IOVAs", prepare: reading, operation: .accessRW(access: 0, iova: area + 3, length: 16),
        expect: .value(0x1111_1111_1111_1111), also: ["IOMMUFD-607"]),
    MockRow(
        rule: "IOMMUFD-816", name: "a write lands in them", prepare: reading, operation: .accessRW(access: 0, iova: area + 8, length: 8, write: true), expect: .ok,
        then: [(.hostWord(.anonymous(8)), .value(0x5a5a_5a5a_5a5a_5a5a)), (.hostWord(.anonymous(0)), .value(0x1111_1111_1111_1111))]),
    MockRow(
        rule: "IOMMUFD-816", name: "across two areas", prepare: reading + [.map(1, .anonymous(8 * page), length: page, iova: area + 4 * page)],
        operation: .accessRW(access: 0, iova: area + 4 * page - 4, length: 8, write: true), expect: .ok,
        then: [(.hostWord(.anonymous(4 * page - 8)), .value(0x5a5a_5a5a_1111_1111)), (.hostWord(.anonymous(8 * page)), .value(0x1111_1111_5a5a_5a5a))]),
    MockRow(rule: "IOMMUFD-816", name: "a hole is ENOENT", prepare: reading, operation: .accessRW(access: 0, iova: area + 4 * page, length: 8), expect: .failure(.noSuchFileOrDirectory)),
    MockRow(
        rule: "IOMMUFD-816", name: "a write to a read-only area is EPERM",
        prepare: ioas + [.map(1, .anonymous(0), length: 4 * page, iova: area, readOnly: true), .createAccess(1, flags: 0)],
        operation: .accessRW(access: 0, iova: area, length: 8, write: true), expect: .failure(.notPermitted)),
    MockRow(rule: "IOMMUFD-816", name: "length 0 is EINVAL", prepare: reading, operation: .accessRW(access: 0, iova: area, length: 0), expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-816", name: "a range that wraps is EOVERFLOW", prepare: reading, operation: .accessRW(access: 0, iova: .max - 3, length: 8), expect: .failure(.overflow)),
    MockRow(
        rule: "IOMMUFD-816", name: "an unknown flag is EOPNOTSUPP", prepare: reading, operation: .accessRW(access: 0, iova: area, length: 8, flags: 8),
        expect: .failure(.notSupported), uapiOnly: raw),
    MockRow(
        rule: "IOMMUFD-816", name: "SLOW_PATH reads alike", prepare: reading, operation: .accessRW(access: 0, iova: area, length: 8, flags: 4),
        expect: .value(0x1111_1111_1111_1111), uapiOnly: raw),
    MockRow(
        rule: "IOMMUFD-816", name: "over 16 MiB is ENOMEM", prepare: reading, operation: .accessRW(access: 0, iova: area, length: (16 << 20) + 1), expect: .failure(.noMemory),
        uapiOnly: "the 16 MiB bound is the test op's own (the Swift API's access has no buffer to bound)"),

    // IOMMUFD-818 and §5.2: dirty tracking.
    MockRow(
        rule: "IOMMUFD-818", name: "DIRTY marks the set bits' pages and counts them; GET_DIRTY_BITMAP reports and clears them", prepare: dirty,
        operation: .markDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage, bits: [0, 3, 5]), expect: .value(3),
        then: [
            (.readDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage), .fields([0, 3, 5])),
            (.readDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage), .fields([])),
        ], also: ["IOMMUFD-512", "IOMMUFD-513"]),
    MockRow(
        rule: "IOMMUFD-818", name: "page_size 0 is EINVAL", prepare: dirty, operation: .markDirty(5, iova: mockStart, length: 8 * page, pageSize: 0, bits: [0]),
        expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-818", name: "an IOAS ID is ENOENT", prepare: dirty, operation: .markDirty(1, iova: mockStart, length: 8 * page, pageSize: mockPage, bits: [0]),
        expect: .failure(.noSuchFileOrDirectory)),
    MockRow(
        rule: "IOMMUFD-818", name: "a domain without dirty ops (the auto HWPT) is EINVAL", prepare: dirty,
        operation: .markDirty(4, iova: mockStart, length: 8 * page, pageSize: mockPage, bits: [0]), expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-818", name: "tracking off is EINVAL", prepare: dirty + [.setDirtyTracking(5, false)],
        operation: .markDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage, bits: [0]), expect: .failure(.invalidArgument), also: ["IOMMUFD-511"]),
    MockRow(
        rule: "IOMMUFD-511", name: "SET_DIRTY_TRACKING on an HWPT without dirty ops is EOPNOTSUPP", prepare: dirty, operation: .setDirtyTracking(4, true),
        expect: .failure(.notSupported)),
    MockRow(rule: "IOMMUFD-511", name: "SET_DIRTY_TRACKING of no HWPT is ENOENT", prepare: dirty, operation: .setDirtyTracking(1, true), expect: .failure(.noSuchFileOrDirectory)),
    MockRow(
        rule: "IOMMUFD-511", name: "enabling again clears the dirty bits (a clean snapshot)",
        prepare: dirty + [.markDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage, bits: [1])], operation: .setDirtyTracking(5, true), expect: .ok,
        then: [(.readDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage), .fields([]))]),
    MockRow(
        rule: "IOMMUFD-510", name: "a NO_DIRTY device's HWPT_ALLOC with DIRTY_TRACKING is EOPNOTSUPP; on an IOAS its auto domain works",
        prepare: ioas + [.mockDomain(1, flags: 1)], operation: .hwptAlloc(dev: 3, pt: 1, flags: 2), expect: .failure(.notSupported),
        then: [(.hwptAlloc(dev: 3, pt: 1), .value(5))], also: ["IOMMUFD-804"]),
    MockRow(
        rule: "IOMMUFD-512", name: "GET_DIRTY_BITMAP with page_size 0 is EINVAL", prepare: dirty, operation: .readDirty(5, iova: mockStart, length: 8 * page, pageSize: 0),
        expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-512", name: "a range not aligned to the IOAS alignment is EINVAL", prepare: dirty,
        operation: .readDirty(5, iova: mockStart + 1024, length: 8 * page, pageSize: 1024), expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-512", name: "a range that wraps is EOVERFLOW", prepare: dirty, operation: .readDirty(5, iova: .max - page + 1, length: 2 * page, pageSize: mockPage),
        expect: .failure(.overflow)),
    MockRow(
        rule: "IOMMUFD-512", name: "an HWPT without dirty ops is EOPNOTSUPP", prepare: dirty, operation: .readDirty(4, iova: mockStart, length: 8 * page, pageSize: mockPage),
        expect: .failure(.notSupported)),
    MockRow(
        rule: "IOMMUFD-512", name: "an ID that is no HWPT is ENOENT", prepare: dirty, operation: .readDirty(1, iova: mockStart, length: 8 * page, pageSize: mockPage),
        expect: .failure(.noSuchFileOrDirectory)),
    MockRow(
        rule: "IOMMUFD-513", name: "NO_CLEAR leaves the bits set", prepare: dirty + [.markDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage, bits: [2, 7])],
        operation: .readDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage, noClear: true), expect: .fields([2, 7]),
        then: [
            (.readDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage), .fields([2, 7])),
            (.readDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage), .fields([])),
        ]),
    MockRow(
        rule: "IOMMUFD-513", name: "a page_size of 4 KiB reports a dirty 2 KiB leaf as its 4 KiB page",
        prepare: dirty + [.markDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage, bits: [3])],
        operation: .readDirty(5, iova: mockStart, length: 8 * page, pageSize: page), expect: .fields([1])),
    MockRow(
        rule: "IOMMUFD-514", name: "a range with holes succeeds", prepare: dirty + [.markDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage, bits: [15])],
        operation: .readDirty(5, iova: mockStart, length: 64 * page, pageSize: mockPage), expect: .fields([15])),
    MockRow(
        rule: "IOMMUFD-513", name: "bits 2^19 apart in one bitmap: each set, nothing between touched",
        prepare: dirty + [
            .map(1, .anonymous(8 * page), length: 8 * page, iova: mockStart + (1 << 30)),
            .markDirty(5, iova: mockStart + (1 << 30), length: 8 * page, pageSize: mockPage, bits: [1]),
            .markDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage, bits: [2]),
        ], operation: .readDirty(5, iova: mockStart, length: (1 << 30) + 8 * page, pageSize: mockPage), expect: .fields([2, (1 << 19) + 1])),
    MockRow(
        rule: "IOMMUFD-513", name: "an unmap takes the dirty bits with the IOPTEs",
        prepare: dirty + [.markDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage, bits: [0]), .unmap(1, iova: mockStart, length: 8 * page)],
        operation: .readDirty(5, iova: mockStart, length: 8 * page, pageSize: mockPage), expect: .fields([])),

    // IOMMUFD-819: DEV_CHECK_CACHE, PASID, what is not modelled.
    MockRow(rule: "IOMMUFD-819", name: "DEV_CHECK_CACHE: every entry holds IOMMU_TEST_DEV_CACHE_DEFAULT", prepare: mocked, operation: .deviceCache(idev: 3, entry: 3, value: 0xbaddad), expect: .ok),
    MockRow(rule: "IOMMUFD-819", name: "DEV_CHECK_CACHE: entry 4 is EINVAL", prepare: mocked, operation: .deviceCache(idev: 3, entry: 4, value: 0xbaddad), expect: .failure(.invalidArgument)),
    MockRow(rule: "IOMMUFD-819", name: "DEV_CHECK_CACHE: another value is EINVAL", prepare: mocked, operation: .deviceCache(idev: 3, entry: 0, value: 1), expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-819", name: "DEV_CHECK_CACHE: an ID that is no DEVICE is ENOENT", prepare: mocked, operation: .deviceCache(idev: 2, entry: 0, value: 0xbaddad),
        expect: .failure(.noSuchFileOrDirectory)),
    MockRow(
        rule: "IOMMUFD-819", name: "PASID_ATTACH of a PASID-compatible HWPT; it is then EBUSY at that PASID and to DESTROY", prepare: pasid,
        operation: .pasidAttach(stdev: 2, pasid: 100, pt: 5), expect: .ok,
        then: [
            (.pasidCheck(stdev: 2, pasid: 100, hwpt: 5), .ok), (.pasidAttach(stdev: 2, pasid: 100, pt: 5), .failure(.resourceBusy)),
            (.destroy(5), .failure(.resourceBusy)), (.pasidDetach(stdev: 2, pasid: 100), .ok), (.pasidCheck(stdev: 2, pasid: 100, hwpt: 0), .ok),
        ], also: ["IOMMUFD-603", "IOMMUFD-606"]),
    MockRow(
        rule: "IOMMUFD-819", name: "PASID_ATTACH of an HWPT not allocated with IOMMU_HWPT_ALLOC_PASID is EINVAL", prepare: pasid + [.hwptAlloc(dev: 3, pt: 1)],
        operation: .pasidAttach(stdev: 2, pasid: 100, pt: 4), expect: .failure(.invalidArgument),
        then: [(.pasidCheck(stdev: 2, pasid: 100, hwpt: 0), .ok)], also: ["IOMMUFD-603"]),
    MockRow(
        rule: "IOMMUFD-819", name: "PASID_ATTACH while the RID is on a non-PASID-compatible HWPT is EINVAL",
        prepare: ioas + [.mockDomain(1, flags: 4), .hwptAlloc(dev: 3, pt: 1, flags: 8)], operation: .pasidAttach(stdev: 2, pasid: 100, pt: 5),
        expect: .failure(.invalidArgument), also: ["IOMMUFD-603"]),
    MockRow(
        rule: "IOMMUFD-819", name: "with a PASID attached the RID cannot move to a non-PASID-compatible HWPT",
        prepare: pasid + [.pasidAttach(stdev: 2, pasid: 100, pt: 5), .hwptAlloc(dev: 3, pt: 1)], operation: .replace(stdev: 2, pt: 4),
        expect: .failure(.invalidArgument), also: ["IOMMUFD-605"]),
    MockRow(
        rule: "IOMMUFD-819", name: "PASID_ATTACH of an IOAS is EINVAL (an auto domain is never PASID-compatible)", prepare: pasid,
        operation: .pasidAttach(stdev: 2, pasid: 100, pt: 1), expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-819", name: "PASID_REPLACE of a PASID not attached is EINVAL", prepare: pasid, operation: .pasidReplace(stdev: 2, pasid: 200, pt: 5),
        expect: .failure(.invalidArgument), also: ["IOMMUFD-605"]),
    MockRow(
        rule: "IOMMUFD-819", name: "PASID_REPLACE moves the PASID", prepare: pasid + [.hwptAlloc(dev: 3, pt: 1, flags: 8), .pasidAttach(stdev: 2, pasid: 200, pt: 5)],
        operation: .pasidReplace(stdev: 2, pasid: 200, pt: 4), expect: .ok, then: [(.pasidCheck(stdev: 2, pasid: 200, hwpt: 4), .ok), (.destroy(4), .failure(.resourceBusy))]),
    MockRow(
        rule: "IOMMUFD-819", name: "PASID 1024 (IOMMU_TEST_PASID_RESERVED): the replace after an attach fails with ENOMEM, the old HWPT stays",
        prepare: pasid + [.hwptAlloc(dev: 3, pt: 1, flags: 8), .pasidAttach(stdev: 2, pasid: 1024, pt: 5)], operation: .pasidReplace(stdev: 2, pasid: 1024, pt: 4),
        expect: .failure(.noMemory), then: [(.pasidCheck(stdev: 2, pasid: 1024, hwpt: 5), .ok)]),
    MockRow(rule: "IOMMUFD-819", name: "PASID_DETACH of a PASID not attached succeeds", prepare: pasid, operation: .pasidDetach(stdev: 2, pasid: 7), expect: .ok, also: ["IOMMUFD-606"]),
    MockRow(
        rule: "IOMMUFD-819", name: "PASID_CHECK_HWPT of an attached PASID against another HWPT is EINVAL, against no object ENOENT",
        prepare: pasid + [.hwptAlloc(dev: 3, pt: 1, flags: 8), .pasidAttach(stdev: 2, pasid: 100, pt: 5)], operation: .pasidCheck(stdev: 2, pasid: 100, hwpt: 4),
        expect: .failure(.invalidArgument),
        then: [(.pasidCheck(stdev: 2, pasid: 100, hwpt: 9), .failure(.noSuchFileOrDirectory)), (.pasidCheck(stdev: 2, pasid: 100, hwpt: 0), .failure(.invalidArgument))]),
    MockRow(
        rule: "IOMMUFD-819", name: "MD_CHECK_IOTLB, TRIGGER_IOPF, TRIGGER_VEVENT and the dma-buf ops are not modelled: EOPNOTSUPP", prepare: mocked,
        operation: .rawTest(size: 72, op: 14, id: 4), expect: .failure(.notSupported),
        uapiOnly: "nested HWPTs, fault queues, vIOMMUs and dma-bufs have no Swift API: only their ops' answer is checked"),

    // IOMMUFD-632: the mock's GET_HW_INFO.
    MockRow(
        rule: "IOMMUFD-632", name: "type SELFTEST, struct iommu_test_hw_info { 0, 0xdeadbeef }, DIRTY_TRACKING | ATS_NOT_SUPPORTED, the rest zeroed", prepare: mocked,
        operation: .hwInfo(dev: 3), expect: .fields([8, 0xfeed_beef, 0, 9, 0, 0xdead_beef, 1]), also: ["IOMMUFD-630", "IOMMUFD-631"], uapiOnly: hwInfo),
    MockRow(
        rule: "IOMMUFD-632", name: "a NO_DIRTY device lacks DIRTY_TRACKING; a PASID device reports 20 PASID bits", prepare: ioas + [.mockDomain(1, flags: 5)],
        operation: .hwInfo(dev: 3), expect: .fields([8, 0xfeed_beef, 20, 8, 0, 0xdead_beef, 1]), also: ["IOMMUFD-631"], uapiOnly: hwInfo),
    MockRow(
        rule: "IOMMUFD-632", name: "asking for type SELFTEST is the same answer", prepare: mocked, operation: .hwInfo(dev: 3, type: 0xfeed_beef),
        expect: .fields([8, 0xfeed_beef, 0, 9, 0, 0xdead_beef, 1]), uapiOnly: hwInfo),
    MockRow(
        rule: "IOMMUFD-632", name: "asking for another type is EOPNOTSUPP", prepare: mocked, operation: .hwInfo(dev: 3, type: 0xfeed_bef0), expect: .failure(.notSupported),
        also: ["IOMMUFD-630"], uapiOnly: hwInfo),

    // IOMMUFD-220: IOAS_MAP_FILE (with the selftest mock).
    MockRow(
        rule: "IOMMUFD-220", name: "a memfd's pages map; MD_CHECK_MAP and MD_CHECK_REFS see them through the program's own mapping",
        prepare: mocked, operation: .mapFile(1, start: 0, length: 4 * page, iova: mockStart), expect: .value(mockStart),
        then: [
            (.checkMap(hwpt: 4, iova: mockStart, length: 4 * page, .file(0)), .ok), (.checkRefs(.file(0), length: 4 * page, refs: 1), .ok),
            (.checkMap(hwpt: 4, iova: mockStart, length: page, .file(page)), .failure(.invalidArgument)),
        ], also: ["IOMMUFD-813"]),
    MockRow(
        rule: "IOMMUFD-220", name: "an offset in the file keeps its place in the page", prepare: mocked,
        operation: .mapFile(1, start: page + mockPage, length: mockPage, iova: mockStart + mockPage), expect: .value(mockStart + mockPage),
        then: [(.checkMap(hwpt: 4, iova: mockStart + mockPage, length: mockPage, .file(page + mockPage)), .ok)]),
    MockRow(rule: "IOMMUFD-220", name: "length 0 is EINVAL", prepare: mocked, operation: .mapFile(1, start: 0, length: 0), expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-220", name: "hostile: bytes past any file offset (start 2^62) are EINVAL", prepare: mocked, operation: .mapFile(1, start: 1 << 62, length: page),
        expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-220", name: "hostile: start + length wrapping is EOVERFLOW", prepare: mocked, operation: .mapFile(1, start: .max - page, length: 2 * page),
        expect: .failure(.overflow)),
    MockRow(rule: "IOMMUFD-220", name: "an fd that is not open is EBADF", prepare: mocked, operation: .mapFile(1, start: 0, length: page, fd: 1_000_000), expect: .failure(.badFileDescriptor)),
    MockRow(
        rule: "IOMMUFD-220", name: "with a domain, pages past the file's end are EINVAL", prepare: mocked, operation: .mapFile(1, start: 0, length: (64 << 10) + mockPage),
        expect: .failure(.invalidArgument), then: [(.objects, .fields([1, 2, 3, 4]))]),
    MockRow(
        rule: "IOMMUFD-220", name: "without one nothing is pinned yet, so the map is taken; the first domain's pin is EINVAL", prepare: ioas,
        operation: .mapFile(1, start: 0, length: (64 << 10) + mockPage, iova: mockStart), expect: .value(mockStart),
        then: [(.mockDomain(1), .failure(.invalidArgument)), (.objects, .fields([1]))]),
    MockRow(
        rule: "IOMMUFD-220", name: "a kernel without the selftest mock keeps IOAS_MAP_FILE EOPNOTSUPP", prepare: ioas, operation: .mapFile(1, start: 0, length: page),
        expect: .failure(.notSupported), selftest: false),
]

/// Every selftest-mock row.
var iommufdSelftestMockRows: [MockRow] { selftestCommandRows + selftestAccessRows }
