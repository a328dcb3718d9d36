import KernelRules
import SystemPackage

private let page = mockHostPage

/// `iommufd.md` §8.1–§8.2 for `IOMMU_TEST_CMD` itself, the mock domain and the device ops
/// (IOMMUFD-800…813, -817), with the §1/§2/§5/§6 rules the mock exercises. In a fresh context IOAS
/// 1 is allocated first; `MOCK_DOMAIN(1)` then makes SELFTEST object 2, DEVICE 3 and auto HWPT 4
/// (the kernel's allocation order).
private let ioas: [MockOp] = [.ioas]
private let mocked: [MockOp] = [.ioas, .mockDomain(1)]
private let mappedMock: [MockOp] = mocked + [.map(1, .anonymous(0), length: 16 * page, iova: mockStart)]
private let layout = "struct iommu_test_cmd's size, op and __reserved fields and raw request numbers have no Swift API spelling"
private let limit: [UInt32] = [65536]

let selftestCommandRows: [MockRow] = [
    // IOMMUFD-800: the command and its plumbing.
    MockRow(
        rule: "IOMMUFD-800", name: "without CONFIG_IOMMUFD_TEST, IOMMU_TEST_CMD (0xa0) is ENOTTY", operation: .rawTest(size: 72, op: 9, words: limit),
        expect: .failure(.inappropriateIOCTLForDevice), also: ["IOMMUFD-102"], uapiOnly: layout, selftest: false),
    MockRow(
        rule: "IOMMUFD-800", name: "without CONFIG_IOMMUFD_TEST the Swift API's selftest ops answer ENOTTY too", operation: .memoryLimit(65536),
        expect: .failure(.inappropriateIOCTLForDevice), selftest: false),
    MockRow(
        rule: "IOMMUFD-800", name: "without CONFIG_IOMMUFD_TEST a NULL arg to 0x96 goes to the VFIO compat ioctls: ENOTTY",
        operation: .rawNumber(0x96, size: 72, null: true), expect: .failure(.inappropriateIOCTLForDevice), also: ["IOMMUFD-102"], uapiOnly: layout,
        selftest: false),
    MockRow(
        rule: "IOMMUFD-800", name: "with it the table reaches 0xa0: a NULL arg to the hole 0x96 reads the size first, EFAULT",
        operation: .rawNumber(0x96, size: 72, null: true), expect: .failure(.badAddress), also: ["IOMMUFD-102"], uapiOnly: layout),
    MockRow(
        rule: "IOMMUFD-800", name: "0x96…0x9f are holes: ENOTTY once the size is read", operation: .rawNumber(0x9f, size: 72),
        expect: .failure(.inappropriateIOCTLForDevice), also: ["IOMMUFD-102"], uapiOnly: layout),
    MockRow(rule: "IOMMUFD-800", name: "an unknown op (24) is EOPNOTSUPP", operation: .rawTest(size: 72, op: 24), expect: .failure(.notSupported), uapiOnly: layout),
    MockRow(rule: "IOMMUFD-800", name: "op 0 is EOPNOTSUPP", operation: .rawTest(size: 72, op: 0), expect: .failure(.notSupported), uapiOnly: layout),
    MockRow(
        rule: "IOMMUFD-800", name: "size 67, below offsetofend(last), is EINVAL", operation: .rawTest(size: 67, op: 9, words: limit),
        expect: .failure(.invalidArgument), also: ["IOMMUFD-103"], uapiOnly: layout),
    MockRow(
        rule: "IOMMUFD-800", name: "size 68 is taken and zero-extended", operation: .rawTest(size: 68, op: 9, words: limit), expect: .ok,
        also: ["IOMMUFD-103"], uapiOnly: layout),
    MockRow(
        rule: "IOMMUFD-800", name: "a non-zero byte past sizeof (72) is E2BIG",
        operation: .rawTest(size: 76, op: 9, words: limit + [UInt32](repeating: 0, count: 13) + [1]), expect: .failure(.argListTooLong), also: ["IOMMUFD-102"],
        uapiOnly: layout),
    MockRow(
        rule: "IOMMUFD-800", name: "a longer struct with zeros past sizeof is taken", operation: .rawTest(size: 80, op: 9, words: limit), expect: .ok,
        also: ["IOMMUFD-102"], uapiOnly: layout),
    MockRow(rule: "IOMMUFD-800", name: "__reserved is not checked", operation: .rawTest(size: 72, op: 9, reserved: 7, words: limit), expect: .ok, uapiOnly: layout),

    // IOMMUFD-801: the op numbers.
    MockRow(
        rule: "IOMMUFD-801", name: "op 1 is ADD_RESERVED: length 0 is EINVAL", prepare: ioas, operation: .rawTest(size: 72, op: 1, id: 1),
        expect: .failure(.invalidArgument), also: ["IOMMUFD-810"], uapiOnly: layout),
    MockRow(
        rule: "IOMMUFD-801", name: "op 9 is SET_TEMP_MEMORY_LIMIT: 11 is EINVAL", operation: .rawTest(size: 72, op: 9, words: [11]), expect: .failure(.invalidArgument),
        also: ["IOMMUFD-817"], uapiOnly: layout),
    MockRow(
        rule: "IOMMUFD-801", name: "op 16 is DEV_CHECK_CACHE: entry 0 of a mock device holds 0xbaddad", prepare: mocked,
        operation: .rawTest(size: 72, op: 16, id: 3, words: [0, 0xbaddad]), expect: .ok, also: ["IOMMUFD-819"], uapiOnly: layout),

    // IOMMUFD-802/803: the constants and the mock domain.
    MockRow(
        rule: "IOMMUFD-802", name: "a mock domain reserves all but [MOCK_APERTURE_START, MOCK_APERTURE_LAST]", prepare: mocked, operation: .ranges(1),
        expect: .fields([1 << 24, (1 << 31) - 1]), then: [(.alignment(1), .value(2048))], also: ["IOMMUFD-302", "IOMMUFD-202"]),
    MockRow(
        rule: "IOMMUFD-802", name: "MOCK_PAGE_SIZE: a 2 KiB area at a 2 KiB offset maps, and translates", prepare: mocked,
        operation: .map(1, .anonymous(mockPage), length: mockPage, iova: mockStart + mockPage), expect: .value(mockStart + mockPage),
        then: [(.checkMap(hwpt: 4, iova: mockStart + mockPage, length: mockPage, .anonymous(mockPage)), .ok)], also: ["IOMMUFD-903"]),
    MockRow(
        rule: "IOMMUFD-803", name: "with a mock domain the IOVA alignment is 2048: a 1 KiB length is EINVAL", prepare: mocked,
        operation: .map(1, .anonymous(0), length: 1024), expect: .failure(.invalidArgument), also: ["IOMMUFD-212", "IOMMUFD-300"]),
    MockRow(
        rule: "IOMMUFD-803", name: "the default domain forces the mock aperture: IOVA 0x1000 is reserved, EINVAL", prepare: mocked,
        operation: .map(1, .anonymous(0), length: page, iova: 0x1000), expect: .failure(.invalidArgument), also: ["IOMMUFD-213"]),
    MockRow(
        rule: "IOMMUFD-803", name: "MOCK_IOMMUPT_HUGE keeps the table's wide aperture", prepare: mocked + ioas,
        operation: .hwptAlloc(dev: 3, pt: 5, pageTable: 1), expect: .value(6), then: [(.ranges(5), .fields([0, (1 << 56) - 1]))]),
    MockRow(
        rule: "IOMMUFD-803", name: "MOCK_IOMMUPT_HUGE maps 1 MiB leaves: one dirty mark dirties 512 bitmap pages",
        prepare: mocked + [
            .map(1, .anonymous(0), length: 2 << 20, iova: mockStart), .hwptAlloc(dev: 3, pt: 1, flags: 2, pageTable: 1), .setDirtyTracking(5, true),
        ], operation: .markDirty(5, iova: mockStart + 0x1000, length: 2 << 20, pageSize: mockPage, bits: [0]), expect: .value(1),
        then: [(.readDirty(5, iova: mockStart, length: 2 << 20, pageSize: mockPage), .fields((0..<512).map(UInt64.init)))], also: ["IOMMUFD-513"]),
    MockRow(
        rule: "IOMMUFD-803", name: "the default mock domain's leaves are 2 KiB: one mark, one bit",
        prepare: mocked + [.map(1, .anonymous(0), length: 2 << 20, iova: mockStart), .hwptAlloc(dev: 3, pt: 1, flags: 2), .setDirtyTracking(5, true)],
        operation: .markDirty(5, iova: mockStart, length: 2 << 20, pageSize: mockPage, bits: [3]), expect: .value(1),
        then: [(.readDirty(5, iova: mockStart, length: 2 << 20, pageSize: mockPage), .fields([3]))]),

    // IOMMUFD-804: the mock's allocation rules.
    MockRow(
        rule: "IOMMUFD-804", name: "a mock device with an unknown flag (0x2) is EINVAL; nothing stays", prepare: ioas, operation: .mockDomain(1, flags: 2),
        expect: .failure(.invalidArgument), then: [(.objects, .fields([1]))], also: ["IOMMUFD-111"]),
    MockRow(
        rule: "IOMMUFD-804", name: "DIRTY_TRACKING for a NO_DIRTY device is EOPNOTSUPP", prepare: ioas + [.mockDomain(1, flags: 1)],
        operation: .hwptAlloc(dev: 3, pt: 1, flags: 2), expect: .failure(.notSupported), also: ["IOMMUFD-502"]),
    MockRow(
        rule: "IOMMUFD-804", name: "an unknown pagetable_type (2) is EOPNOTSUPP", prepare: mocked, operation: .hwptAlloc(dev: 3, pt: 1, pageTable: 2),
        expect: .failure(.notSupported), then: [(.objects, .fields([1, 2, 3, 4]))]),
    MockRow(
        rule: "IOMMUFD-804", name: "a NO_DIRTY device attaching a dirty-tracking domain is EINVAL", prepare: mocked + [.hwptAlloc(dev: 3, pt: 1, flags: 2)],
        operation: .mockDomain(5, flags: 1), expect: .failure(.invalidArgument), then: [(.objects, .fields([1, 2, 3, 4, 5]))], also: ["IOMMUFD-510"]),
    MockRow(
        rule: "IOMMUFD-804", name: "NEST_PARENT | PASID paging domains are allocated", prepare: mocked, operation: .hwptAlloc(dev: 3, pt: 1, flags: 1 | 8),
        expect: .value(5)),
    MockRow(
        rule: "IOMMUFD-804", name: "flags ~NEST_PARENT are EOPNOTSUPP", prepare: mocked, operation: .hwptAlloc(dev: 3, pt: 1, flags: ~1),
        expect: .failure(.notSupported), also: ["IOMMUFD-502"]),

    // IOMMUFD-810: ADD_RESERVED.
    MockRow(rule: "IOMMUFD-810", name: "length 0 is EINVAL", prepare: ioas, operation: .addReserved(1, start: 0x1000, length: 0), expect: .failure(.invalidArgument)),
    MockRow(rule: "IOMMUFD-810", name: "a range that wraps is EOVERFLOW", prepare: ioas, operation: .addReserved(1, start: .max, length: 2), expect: .failure(.overflow)),
    MockRow(rule: "IOMMUFD-810", name: "no IOAS is ENOENT", prepare: ioas, operation: .addReserved(9, start: 0x1000, length: 0x1000), expect: .failure(.noSuchFileOrDirectory)),
    MockRow(
        rule: "IOMMUFD-810", name: "over an area is EADDRINUSE", prepare: ioas + [.map(1, .anonymous(0), length: page, iova: 0x10_0000)],
        operation: .addReserved(1, start: 0x10_0000, length: page), expect: .failure(.addressInUse), also: ["IOMMUFD-303"]),
    MockRow(
        rule: "IOMMUFD-810", name: "a reservation splits IOVA_RANGES and refuses a fixed map", prepare: ioas + [.addReserved(1, start: 0x1_0000, length: 0x1_0000)],
        operation: .map(1, .anonymous(0), length: page, iova: 0x1_0000), expect: .failure(.invalidArgument),
        then: [(.ranges(1), .fields([0, 0xffff, 0x2_0000, .max]))], also: ["IOMMUFD-213", "IOMMUFD-201"]),
    MockRow(
        rule: "IOMMUFD-810", name: "automatic IOVAs avoid it", prepare: ioas + [.addReserved(1, start: 0x1000, length: 0x10_0000)],
        operation: .map(1, .anonymous(0), length: page), expect: .value(0x10_1000), also: ["IOMMUFD-310"]),
    MockRow(
        rule: "IOMMUFD-810", name: "reserved_overflow: [6, 0xffffffffffff8006] leaves no room for 0x5000 bytes, ENOSPC",
        prepare: ioas + [.addReserved(1, start: 6, length: 0xffff_ffff_ffff_8001)], operation: .map(1, .anonymous(0), length: 0x5000), expect: .failure(.noSpace),
        also: ["IOMMUFD-312"]),

    // IOMMUFD-811: MOCK_DOMAIN.
    MockRow(
        rule: "IOMMUFD-811", name: "on an IOAS: SELFTEST object 2, auto HWPT 4, DEVICE 3", prepare: ioas, operation: .mockDomain(1), expect: .fields([2, 4, 3]),
        then: [(.objects, .fields([1, 2, 3, 4]))], also: ["IOMMUFD-604", "IOMMUFD-111"]),
    MockRow(
        rule: "IOMMUFD-811", name: "a second mock device shares the auto HWPT", prepare: mocked, operation: .mockDomain(1), expect: .fields([5, 4, 6]),
        also: ["IOMMUFD-604"]),
    MockRow(rule: "IOMMUFD-811", name: "on an HWPT directly", prepare: mocked, operation: .mockDomain(4), expect: .fields([5, 4, 6]), also: ["IOMMUFD-602"]),
    MockRow(
        rule: "IOMMUFD-811", name: "an ID that names nothing is ENOENT; no ID stays used", prepare: ioas, operation: .mockDomain(7),
        expect: .failure(.noSuchFileOrDirectory), then: [(.objects, .fields([1]))], also: ["IOMMUFD-602"]),
    MockRow(
        rule: "IOMMUFD-811", name: "a DEVICE ID is EINVAL", prepare: mocked, operation: .mockDomain(3), expect: .failure(.invalidArgument), also: ["IOMMUFD-602"]),
    MockRow(
        rule: "IOMMUFD-811", name: "fork_gone: pages that cannot be pinned for the new domain are EFAULT", prepare: ioas + [.map(1, .absolute(0x2000), length: page, iova: mockStart)],
        operation: .mockDomain(1), expect: .failure(.badAddress), then: [(.objects, .fields([1]))], also: ["IOMMUFD-401"]),
    MockRow(
        rule: "IOMMUFD-811", name: "destroying the SELFTEST object detaches and unbinds the device; its auto HWPT goes", prepare: mappedMock,
        operation: .destroy(2), expect: .ok, then: [(.objects, .fields([1])), (.checkRefs(.anonymous(0), length: 16 * page, refs: 0), .ok)],
        also: ["IOMMUFD-606", "IOMMUFD-305"]),
    MockRow(
        rule: "IOMMUFD-811", name: "the IOAS is EBUSY while the mock device's HWPT uses it", prepare: mocked, operation: .destroy(1), expect: .failure(.resourceBusy),
        also: ["IOMMUFD-113", "IOMMUFD-114"]),
    MockRow(rule: "IOMMUFD-811", name: "the DEVICE is EBUSY: only the SELFTEST object unbinds it", prepare: mocked, operation: .destroy(3), expect: .failure(.resourceBusy), also: ["IOMMUFD-114"]),

    // IOMMUFD-812: MOCK_DOMAIN_REPLACE.
    MockRow(
        rule: "IOMMUFD-812", name: "an ID that is no SELFTEST object is ENOENT", prepare: mocked, operation: .replace(stdev: 1, pt: 1),
        expect: .failure(.noSuchFileOrDirectory)),
    MockRow(rule: "IOMMUFD-812", name: "ID 0 is ENOENT", prepare: mocked, operation: .replace(stdev: 0, pt: 1), expect: .failure(.noSuchFileOrDirectory)),
    MockRow(
        rule: "IOMMUFD-812", name: "to another IOAS: a new auto HWPT, the old one destroyed (its ID ENOENT)", prepare: mocked + ioas,
        operation: .replace(stdev: 2, pt: 5), expect: .value(6), then: [(.replace(stdev: 2, pt: 4), .failure(.noSuchFileOrDirectory)), (.objects, .fields([1, 2, 3, 5, 6]))],
        also: ["IOMMUFD-605"]),
    MockRow(rule: "IOMMUFD-812", name: "to its own IOAS again: the same auto HWPT", prepare: mocked, operation: .replace(stdev: 2, pt: 1), expect: .value(4), also: ["IOMMUFD-605"]),
    MockRow(
        rule: "IOMMUFD-812", name: "to a manual HWPT, which is then EBUSY to destroy", prepare: mocked + [.hwptAlloc(dev: 3, pt: 1)], operation: .replace(stdev: 2, pt: 5),
        expect: .value(5), then: [(.destroy(5), .failure(.resourceBusy)), (.objects, .fields([1, 2, 3, 5]))], also: ["IOMMUFD-605", "IOMMUFD-506"]),

    // IOMMUFD-813: MD_CHECK_MAP and MD_CHECK_REFS.
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_MAP: every mock page translates to the user page", prepare: mappedMock,
        operation: .checkMap(hwpt: 4, iova: mockStart, length: 16 * page, .anonymous(0)), expect: .ok),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_MAP: another user page is EINVAL", prepare: mappedMock,
        operation: .checkMap(hwpt: 4, iova: mockStart, length: page, .anonymous(page)), expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_MAP: an IOVA not mapped is EINVAL", prepare: mappedMock,
        operation: .checkMap(hwpt: 4, iova: mockStart + 16 * page, length: mockPage, .anonymous(16 * page)), expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_MAP: values not aligned to the mock page are EINVAL", prepare: mappedMock,
        operation: .checkMap(hwpt: 4, iova: mockStart + 1024, length: mockPage, .anonymous(1024)), expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_MAP: an IOAS ID is ENOENT", prepare: mappedMock,
        operation: .checkMap(hwpt: 1, iova: mockStart, length: mockPage, .anonymous(0)), expect: .failure(.noSuchFileOrDirectory)),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_MAP: a user address with no page is EFAULT", prepare: mappedMock,
        operation: .checkMap(hwpt: 4, iova: mockStart, length: mockPage, .absolute(0x2000)), expect: .failure(.badAddress)),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_MAP: length 0 checks nothing", prepare: mappedMock, operation: .checkMap(hwpt: 4, iova: mockStart, length: 0, .absolute(0x2000)),
        expect: .ok),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_REFS: a MAP into a domain pins each page once", prepare: mappedMock,
        operation: .checkRefs(.anonymous(0), length: 16 * page, refs: 1), expect: .ok,
        then: [(.checkRefs(.anonymous(16 * page), length: page, refs: 0), .ok), (.checkRefs(.anonymous(0), length: page, refs: 0), .failure(.ioError))],
        also: ["IOMMUFD-400"]),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_REFS: two MAPs of the same pages pin them twice",
        prepare: mappedMock + [.map(1, .anonymous(0), length: 4 * page, iova: mockStart + 16 * page)], operation: .checkRefs(.anonymous(0), length: 4 * page, refs: 2),
        expect: .ok, also: ["IOMMUFD-400"]),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_REFS: without a domain nothing is pinned", prepare: ioas + [.map(1, .anonymous(0), length: 4 * page)],
        operation: .checkRefs(.anonymous(0), length: 4 * page, refs: 0), expect: .ok, also: ["IOMMUFD-215"]),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_REFS: an unaligned length is EINVAL", operation: .checkRefs(.anonymous(0), length: 100, refs: 0),
        expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_REFS: a range that wraps is EINVAL", operation: .checkRefs(.absolute(0xffff_ffff_ffff_f000), length: 2 * page, refs: 0),
        expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-813", name: "MD_CHECK_REFS: a page the process does not have is EFAULT", operation: .checkRefs(.absolute(0x2000), length: page, refs: 0),
        expect: .failure(.badAddress)),

    // IOMMUFD-817: SET_TEMP_MEMORY_LIMIT.
    MockRow(rule: "IOMMUFD-817", name: "11 bytes is EINVAL", operation: .memoryLimit(11), expect: .failure(.invalidArgument)),
    MockRow(
        rule: "IOMMUFD-817", name: "12 bytes is taken and changes no result", operation: .memoryLimit(12), expect: .ok,
        then: [(.ioas, .value(1)), (.mockDomain(1), .fields([2, 4, 3])), (.map(1, .anonymous(0), length: 16 * page, iova: mockStart), .value(mockStart))]),
]
