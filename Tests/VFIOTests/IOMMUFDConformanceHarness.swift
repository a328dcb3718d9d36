import DeviceModels
import Glibc
import IOMMU
import KernelRules
import Locking
import Machine
import PCIBus
import SystemPackage
import Testing

@testable import IOMMUFD
@testable import Syscalls
@testable import VFIO
import UserMemory

/// One iommufd conformance row (`iommufd.md`, IOMMUFD-100 and up): a fresh `/dev/iommu` on
/// `devices/default` set up as `config` says, `prepare` run (each step must succeed, or fail when
/// wrapped in `.failing`), then `operation`, whose outcome must be `expect`, then the follow-up
/// checks `then` — through the Swift API (`IOMMUFDContext`, `VFIODeviceCdev`, `VFIOGroup`) and
/// again through `ioctl` with the raw structs in real memory. A failure must leave the context as
/// it was (objects, areas, reservations, pins) unless the kernel keeps partial progress there.
struct IOMMUFDRow: CustomTestStringConvertible, Sendable {
    let rule: String
    let name: String
    var config = IOMMUFDConfig()
    var prepare: [FDOp] = []
    let operation: FDOp
    let expect: FDOutcome
    var then: [FDCheck] = []
    /// Further rules the row checks (another step of the same path, or a `kernel-semantics.md` rule).
    var also: [String] = []
    /// Why the row runs on the raw ioctl only (a struct field, a pointer, an fd, a request number
    /// the Swift API has no spelling for); nil: both paths.
    var uapiOnly: String?
    /// Why the row runs on the Swift API only (the raw path would need a closed fd number that a
    /// test running in parallel may reuse).
    var swiftOnly: String?
    /// The kernel keeps what the failing call did before it failed (IOMMUFD-233, -713, -714).
    var keepsProgress = false
    /// A divergence from the kernel that is known and not fixed here: the row's operation and
    /// checks run as a known issue, which fails the row once the simulation conforms.
    var knownIssue: String?

    var paths: [APIPath] { uapiOnly != nil ? [.uapi] : swiftOnly != nil ? [.swiftAPI] : APIPath.allCases }
    var rules: [String] { [rule] + also }
    var testDescription: String { "\(rule): \(name)" }
}

/// A follow-up call and the outcome it must have.
struct FDCheck: Sendable {
    let operation: FDOp
    let expect: FDOutcome

    init(_ operation: FDOp, _ expect: FDOutcome) {
        self.operation = operation
        self.expect = expect
    }
}

struct IOMMUFDConfig: Sendable {
    var profile: PlatformProfile?
    /// Functions rebound to vfio-pci first (they get device cdevs).
    var vfio: [String] = []
    /// `devices/default` with its device models (`SimulatedMachine`): the memcpy engine at
    /// 0000:5f:00.0 DMAs through the IOMMU.
    var models = false
    /// IOASes allocated before the row (IDs 1…).
    var ioas = 1
    var lockedMemoryLimit: UInt64?
}

/// A user address: in the row's 2 MiB of writable memory (2 MiB aligned), in its 2 MiB of
/// read-only memory, or absolute.
enum FDAddress: Sendable {
    case memory(UInt64)
    case readOnly(UInt64)
    case absolute(UInt64)
}

/// The `iommufd` field of VFIO_DEVICE_BIND_IOMMUFD.
enum FDRef: Sendable {
    /// The row's `/dev/iommu`.
    case own
    /// A number that is no open fd (beyond any `RLIMIT_NOFILE`, so no other test can reuse it).
    case notOpen
    /// An open fd that is not an iommufd: a VFIO container.
    case container
    case number(Int32)
}

/// Where a raw struct lies: right before a `PROT_NONE` page (its first `visible` bytes readable),
/// or in a read-only page.
enum FDPlacement: Sendable {
    case beforeGuard(visible: Int)
    case readOnly
}

/// `IOMMU_OPTION`'s option IDs.
enum FDOption: UInt32, Sendable {
    case rlimitMode = 0
    case hugePages = 1
    case unknown = 2
}

enum FDInfoQuery: Sendable {
    case pageSizes
    /// `start, last` of each range of the IOVA_RANGE capability.
    case ranges
    /// The whole answer (0xAA-filled buffer of 512 bytes) as `decodeInfo` lists it.
    case layout(argsz: UInt32)
    /// The first 128 bytes of the buffer after the call, as 16 little-endian words.
    case bytes(argsz: UInt32)
}

/// State read directly, the same on both paths.
enum FDProbe: Sendable {
    /// `iova, length` of each area of the IOAS.
    case areas(UInt32)
    /// The object IDs in use.
    case objects
    /// `locked_vm` bytes of the process.
    case lockedBytes
    /// The HWPT a cdev-bound device is attached to, 0 for none.
    case hwpt(String)
    /// The device model at the address stores `value` at `iova` by DMA (bus master on).
    case dmaStore(String, iova: UInt64, value: UInt64)
    /// The 8 bytes at a host address.
    case hostWord(FDAddress)
    /// `open("/dev/vfio/N")` and close again: 0, or the errno.
    case openGroup(Int)
}

indirect enum FDOp: Sendable {
    /// A preparation step whose failure is the point.
    case failing(FDOp)
    case allocIOAS(flags: UInt32 = 0)
    case destroy(UInt32)
    /// IOAS_IOVA_RANGES with room for `room` entries: `num_iovas, alignment`, then the entries written.
    case ranges(UInt32, room: UInt32 = 8, reserved: UInt32 = 0)
    case allow(UInt32, [IOVARange], reserved: UInt32 = 0)
    /// ALLOW_IOVAS whose array has only its first `readable` entries before a `PROT_NONE` page.
    case allowPlaced(UInt32, [IOVARange], readable: Int)
    case map(UInt32, flags: UInt32, FDAddress, length: UInt64, iova: UInt64 = 0, reserved: UInt32 = 0)
    case copy(dst: UInt32, src: UInt32, flags: UInt32, length: UInt64, dstIOVA: UInt64 = 0, srcIOVA: UInt64)
    case unmap(UInt32, iova: UInt64, length: UInt64)
    case option(FDOption, op: UInt16, object: UInt32 = 0, value: UInt64 = 0, reserved: UInt16 = 0)
    case vfioIOAS(op: UInt16, id: UInt32 = 0, reserved: UInt16 = 0)
    case hwptAlloc(dev: UInt32, pt: UInt32, flags: UInt32 = 0, reserved: UInt32 = 0, dataType: UInt32 = 0, dataLength: UInt32 = 0)
    /// GET_HW_INFO: `data_len, out_data_type, out_max_pasid_log2, out_capabilities`, and how many
    /// bytes of the `dataLength`-byte buffer (0xAA before) are zero after.
    case hwInfo(dev: UInt32, flags: UInt32 = 0, dataLength: UInt32 = 0, reserved: UInt8 = 0)
    /// A raw ioctl on the iommufd: the value it returned, or the fields read back.
    case raw(UInt, StructBytes, read: [Int] = [])
    case rawPointer(UInt, UInt)
    case rawPlaced(UInt, StructBytes, FDPlacement)
    /// `open("/dev/vfio/devices/vfioN")` of `address` (or "vfioN") as `slot`.
    case open(String, of: String? = nil)
    case bind(String, iommufd: FDRef = .own, flags: UInt32 = 0, argsz: UInt32 = 24, tail: [UInt8] = [])
    case attach(String, UInt32, flags: UInt32 = 0, argsz: UInt32 = 16)
    case detach(String, flags: UInt32 = 0, argsz: UInt32 = 12)
    case closeDevice(String)
    /// VFIO_DEVICE_GET_INFO on the cdev.
    case deviceInfo(String)
    case openGroup(Int)
    /// VFIO_GROUP_SET_CONTAINER with the iommufd.
    case joinGroup(Int)
    /// VFIO_GROUP_GET_DEVICE_FD.
    case openGroupDevice(Int, String)
    case closeGroup(Int)
    case closeIOMMUFD
    case apiVersion
    case checkExtension(UInt)
    case setIOMMU(UInt)
    case compatMap(flags: UInt32, FDAddress, iova: UInt64, size: UInt64, argsz: UInt32 = 32)
    case compatUnmap(flags: UInt32, iova: UInt64, size: UInt64, argsz: UInt32 = 24)
    case compatInfo(FDInfoQuery)
    case probe(FDProbe)
}

enum FDOutcome: Equatable, Sendable, CustomStringConvertible {
    case value(UInt64)
    case fields([UInt64])
    case failure(Errno)
    /// Failed after writing these fields back (IOMMUFD-201 EMSGSIZE, -712 `size`).
    case failureWriting(Errno, [UInt64])
    /// A DMA probe faulted in the IOMMU.
    case dmaFault

    static let ok = FDOutcome.value(0)

    var description: String {
        switch self {
        case .value(let value): "value 0x\(String(value, radix: 16))"
        case .fields(let fields): "fields [\(fields.map { "0x" + String($0, radix: 16) }.joined(separator: ", "))]"
        case .failure(let errno): errno.symbolicName
        case .failureWriting(let errno, let fields): "\(errno.symbolicName) writing [\(fields.map { "0x" + String($0, radix: 16) }.joined(separator: ", "))]"
        case .dmaFault: "DMA fault"
        }
    }

    var failed: Bool {
        switch self {
        case .failure, .failureWriting: true
        default: false
        }
    }
}

/// A fresh `/dev/iommu` on `devices/default` (or the simulated machine with its device models),
/// `config.ioas` IOASes, 2 MiB of writable and 2 MiB of read-only memory, both 2 MiB aligned so
/// automatic IOVAs (which follow the user address's alignment, IOMMUFD-310) are the same every run.
final class IOMMUFDFixture {
    let system: VFIOSystem
    let machine: SimulatedMachine?
    let process: ProcessMemory
    let fd: Int32
    let context: IOMMUFDContext
    let memory: HostMemory
    let readOnly: HostMemory

    init(_ config: IOMMUFDConfig) throws {
        let process = ProcessMemory(lockedMemoryLimit: config.lockedMemoryLimit)
        if config.models {
            let machine = try SimulatedMachine.load(machine: "default", process: process)
            self.machine = machine
            system = machine.vfio
        } else {
            machine = nil
            system = try VFIOTestMachine.system(profile: config.profile, vfio: config.vfio, process: process)
        }
        self.process = process
        fd = try system.openResult("/dev/iommu").get()
        guard case .iommufd(let context) = VFIOFileTable.shared.file(fd) else { throw VFIOError(.badFileDescriptor, rule: .none, "not an iommufd") }
        self.context = context
        for _ in 0..<config.ioas { _ = context.allocateIOAS() }
        memory = try process.allocate(size: 2 << 20, hugePages: true)
        readOnly = try process.allocate(size: 2 << 20, hugePages: true, writable: false)
    }

    func address(_ address: FDAddress) -> UInt64 {
        switch address {
        case .memory(let offset): memory.address &+ offset
        case .readOnly(let offset): readOnly.address &+ offset
        case .absolute(let value): value
        }
    }

    /// The cdev number of a function ("vfioN" names one directly; a function without one gets a
    /// number past the last).
    func cdevNumber(_ address: String) -> Int {
        if address.hasPrefix("vfio"), let number = Int(address.dropFirst(4)) { return number }
        let addresses = system.cdevAddresses
        return PCIAddress(parsing: address).flatMap { addresses.firstIndex(of: $0) } ?? addresses.count
    }

    /// Everything a failed call must leave as it was: every object (IOAS areas, reservations,
    /// allowed ranges, alignment, large pages, domains; HWPTs; devices), the compat IOAS, the
    /// account mode and the pinned bytes.
    var snapshot: String {
        let objects = context.state.withLock { state in
            var lines: [String] = []
            for id in state.objects.keys.sorted() {
                switch state.objects[id]! {
                case .ioas(let ioas):
                    let areas = ioas.areas.mappings.map { "\(hexText($0.iova))+\(hexText($0.length))@\(hexText($0.hostAddress)) \($0.access)" }
                    let reserved = ioas.reserved.map { "\($0.range) \($0.owner)" }.sorted()
                    lines.append(
                        "\(id) IOAS areas \(areas) reserved \(reserved) allowed \(ioas.allowed) alignment \(ioas.alignment) large \(!ioas.largePagesDisabled) domains \(ioas.domains.map(\.hwpt))"
                    )
                case .hwptPaging(let hwpt): lines.append("\(id) HWPT ioas \(hwpt.ioas) auto \(hwpt.automatic) devices \(hwpt.devices)")
                case .device(let device): lines.append("\(id) DEVICE \(device.name) hwpt \(device.hwpt.map(String.init) ?? "-")")
                case .selftest(let object): lines.append("\(id) SELFTEST \(object.device) idev \(object.idev)")
                case .access(let access): lines.append("\(id) ACCESS ioas \(access.ioas.map(String.init) ?? "-") items \(access.items.map(\.id))")
                case .reserved: lines.append("\(id) reserved")
                }
            }
            lines.append("compat \(state.compatIOAS.map(String.init) ?? "-") account \(state.accountMode) closed \(state.fileClosed)")
            return lines
        }
        return (objects + ["locked \(process.lockedBytes)"]).joined(separator: "\n")
    }
}

func hexText(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

/// The rows of every section, in the spec's order.
var iommufdRows: [IOMMUFDRow] { plumbingRows + ioasRows + iovaRows + deviceRows + compatRows + compatInfoSweepRows }

@Suite("IOMMUFD conformance (iommufd.md §1–§7)")
struct IOMMUFDConformanceTests {
    /// Each row on each path it runs on.
    static let cases = iommufdRows.flatMap { row in row.paths.map { (row, $0) } }

    @Test(arguments: cases)
    func row(_ row: IOMMUFDRow, path: APIPath) throws {
        let fixture = try IOMMUFDFixture(row.config)
        let calls = FDCalls(path: path, fixture: fixture)
        defer { calls.closeAll() }
        let what = "\(row.rule) \(row.name) via \(path)"
        for (index, step) in row.prepare.enumerated() {
            // Only a step meant to fail is checked for leaving no trace (snapshots cost O(objects)).
            let (outcome, error) = isFailing(step) ? calls.runChecked(step, "\(what), preparation step \(index)", keepsProgress: false) : calls.run(step)
            // A `.failing` step must fail, any other must succeed.
            if isFailing(step) == outcome.failed { continue }
            Issue.record("\(what): preparation step \(index) (\(step)) gave \(outcome)\(error.map { " — \($0)" } ?? "")")
            return
        }
        let assertions = {
            let (outcome, error) = calls.runChecked(row.operation, what, keepsProgress: row.keepsProgress)
            #expect(outcome == row.expect, "\(what)\(error.map { " — \($0)" } ?? "")")
            if let error, row.expect.failed {
                // The error names the rule that decided it (any IOMMUFD, VG or VST rule: the layers cite their own).
                #expect(!error.rule.id.isEmpty, "\(what): the error cites no rule: \(error)")
            }
            for (index, check) in row.then.enumerated() {
                let (after, error) = calls.runChecked(check.operation, "\(what), check \(index)", keepsProgress: false)
                #expect(after == check.expect, "\(what): check \(index) (\(check.operation))\(error.map { " — \($0)" } ?? "")")
            }
        }
        if let knownIssue = row.knownIssue {
            withKnownIssue(Comment(rawValue: knownIssue)) { assertions() }
        } else {
            assertions()
        }
    }

    private func isFailing(_ step: FDOp) -> Bool {
        if case .failing = step { true } else { false }
    }
}
