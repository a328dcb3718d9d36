import KernelRules
import Locking
import PCIBus
import Synchronization
import SystemPackage

/// The IOMMU core of `drivers/iommu/iommu.c` for one machine: every group with its domains and
/// DMA ownership, every covered device with its reserved regions and bound driver, and the fault
/// log its IOMMU reports into. All calls are thread-safe; each either succeeds or throws an
/// `IOMMUError` and changes nothing (the kernel log may still gain the warning a check printed).
public final class IOMMUCore: Sendable {
    public let profile: PlatformProfile
    /// The kernel's global default domain type (`iommu_def_domain_type`): the manifest's
    /// `iommu.defaultDomainType` (`iommu.passthrough=`, `iommu.strict=`), else the profile's. A group
    /// gets it when neither its devices nor a sysfs write ask for another (DT-06).
    public let defaultDomainType: IOMMUDomainType
    public let faults: FaultLog
    /// Whether the bound drivers are known (a bare dump carries none).
    public let driversKnown: Bool
    let state: PThreadMutex<State>
    /// Bumped under the lock by every control-path change, so a `DMAPath` can tell with one atomic
    /// load whether the domain it cached is still its group's.
    let generation = Atomic<Int>(0)

    /// The core's state: what `vfiokit` reports and what tests compare before and after a call.
    public struct State: Sendable, Equatable {
        public internal(set) var groups: [Int: IOMMUGroup]
        public internal(set) var devices: [PCIAddress: IOMMUDevice]
        /// Drivers bound to functions the IOMMU does not cover (no group: OWN-01 returns 0).
        public internal(set) var uncoveredDrivers: [PCIAddress: String]
        /// Where the rules print their warnings; compared by identity, since what it holds is not
        /// state a failed call must leave unchanged (`KernelLog`).
        let kernelLog: KernelLog
        let profile: PlatformProfile
        /// `iommu_def_domain_type`, see `IOMMUCore.defaultDomainType`.
        let defaultDomainType: IOMMUDomainType
        /// What each domain the groups hold (default, current, blocking) contained when this copy
        /// was taken, by domain ID. Domains are shared objects that change in place (DT-04 switches
        /// a type, maps fill page tables), so the references in `groups` alone would compare equal
        /// after such a change. Filled by `IOMMUCore.snapshot`; empty in the live state.
        public internal(set) var domainContents: [Int: DomainContents] = [:]
        // `==` is synthesised: a field added here is compared by every "a failed call changes
        // nothing" check without anyone remembering to.
    }

    /// A domain's type and what its page table maps, as captured in a `State` copy.
    public struct DomainContents: Sendable, Equatable {
        public let type: IOMMUDomainType
        public let mappedBytes: UInt64
        public let pageTableBytes: Int

        init(_ domain: IOMMUDomain) {
            type = domain.type
            mappedBytes = domain.mappedBytes
            pageTableBytes = domain.pageTableBytes
        }
    }

    /// Builds the core for a machine: one group per isolation group (same IDs, devices in probe
    /// order), reserved regions per device, a default domain per group with its direct mappings
    /// (RR-05), then the machine's drivers bound in device-add order (OWN-01). As `bus_iommu_probe`
    /// does, each group's default domain is set up with no requested type (0): the configuration's
    /// `defaultDomainType` is the global default a group falls back to, not a request (DT-06).
    public init(snapshot: BusSnapshot, configuration: IOMMUConfiguration, faultLogCapacity: Int = 256) throws(IOMMUError) {
        // Registering for membarrier(2) waits out an RCU grace period in the kernel (≈ 12 ms here
        // once the process has threads): pay it, once per process, while an IOMMU is built rather
        // than in the first DMA through it.
        _ = DMAQuiescence.readerFence
        let globalDefault = configuration.defaultDomainType ?? configuration.profile.defaultDomainType
        profile = configuration.profile
        defaultDomainType = globalDefault
        faults = FaultLog(capacity: faultLogCapacity)
        driversKnown = snapshot.driversKnown
        var state = State(
            groups: [:], devices: [:], uncoveredDrivers: [:], kernelLog: KernelLog(), profile: configuration.profile,
            defaultDomainType: globalDefault)
        let topology = snapshot.topology
        for group in snapshot.grouping.groups {
            for address in group.members {
                let function = topology.functions[topology.index(of: address)!]
                let regions = profile.reservedRegions(of: function, firmware: configuration.firmwareRegions[address] ?? [])
                state.devices[address] = IOMMUDevice(
                    address: address, groupID: group.id, reservedRegions: regions,
                    requireDirect: regions.contains { $0.type == .direct }, untrusted: configuration.untrusted.contains(address))
            }
            // RR-02: devices in list order, each region inserted per RR-03.
            let merged = ReservedRegionList(group.members.flatMap { state.devices[$0]!.reservedRegions })
            state.groups[group.id] = IOMMUGroup(id: group.id, devices: group.members, reservedRegions: merged)
            try state.setUpDefaultDomain(groupID: group.id, requested: nil)
        }
        for address in topology.addOrder.map({ topology.functions[$0].address }) {
            guard let driver = snapshot.drivers[address] else { continue }
            try state.bind(driver: driver, to: address)
        }
        self.state = PThreadMutex(state)
    }

    /// A copy of the whole state, with the contents of every domain its groups hold.
    public var snapshot: State {
        state.withLock { state in
            var copy = state
            for group in state.groups.values {
                for domain in [group.defaultDomain, group.domain, group.blockingDomain].compactMap({ $0 }) {
                    copy.domainContents[domain.id] = DomainContents(domain)
                }
            }
            return copy
        }
    }

    public var groups: [IOMMUGroup] { state.withLock { $0.groups.values.sorted { $0.id < $1.id } } }

    public func group(_ id: Int) -> IOMMUGroup? { state.withLock { $0.groups[id] } }

    public func device(_ address: PCIAddress) -> IOMMUDevice? { state.withLock { $0.devices[address] } }

    public func group(of address: PCIAddress) -> IOMMUGroup? {
        state.withLock { state in state.devices[address].flatMap { state.groups[$0.groupID] } }
    }

    public var kernelLog: [String] { state.withLock { $0.kernelLog }.contents }

    /// Runs one rule against the state: the rule validates before it mutates, so a throw leaves
    /// the state as it was. A change returns once no DMA transfer that began before it is still
    /// in flight (a group moved off a domain no longer reaches it, `DMAQuiescence`).
    func perform<Result: Sendable>(_ body: (inout State) throws(IOMMUError) -> Result) throws(IOMMUError) -> Result {
        let result = try state.withLock { (state) throws(IOMMUError) -> Result in
            let result = try body(&state)
            generation.wrappingAdd(1, ordering: .sequentiallyConsistent)
            return result
        }
        DMAQuiescence.synchronize()
        return result
    }

    /// Where a DMA from `address` (its requester after aliasing) to `iova` lands: the group's
    /// current domain translates it; a fault is recorded in `faults` with the requester ID.
    /// Takes the core's lock on every call; a device model's hot path keeps a `DMAPath` instead.
    public func translate(from address: PCIAddress, requesterID: UInt16? = nil, iova: UInt64, access: IOAccess) -> IOTranslation {
        var path = dmaPath(from: address, requesterID: requesterID)
        return path.translate(iova, access: access)
    }

    /// The group's current domain with the generation it was read at (nil: not behind the IOMMU).
    func currentDomain(of address: PCIAddress) -> (domain: IOMMUDomain?, generation: Int) {
        state.withLock { state in
            (state.devices[address].flatMap { state.groups[$0.groupID]?.domain }, generation.load(ordering: .relaxed))
        }
    }
}

extension IOMMUCore.State {
    /// `dev_warn`: the line starts with the device's driver (or its bus) and name.
    mutating func warn(_ address: PCIAddress, _ message: String) {
        let prefix = devices[address]?.driver ?? uncoveredDrivers[address] ?? "pci"
        log("\(prefix) \(address): \(message)")
    }

    /// `pr_warn` from `drivers/iommu/iommu.c`, whose `pr_fmt` prefixes `iommu: `.
    mutating func warnCore(_ message: String) { log("iommu: \(message)") }

    private mutating func log(_ line: String) {
        kernelLog.append(line)
    }

    func group(_ id: Int) throws(IOMMUError) -> IOMMUGroup {
        guard let group = groups[id] else { throw IOMMUError(.noSuchFileOrDirectory, rule: .none, "no IOMMU group \(id)") }
        return group
    }

    func device(_ address: PCIAddress) throws(IOMMUError) -> IOMMUDevice {
        guard let device = devices[address] else {
            throw IOMMUError(.operationNotSupportedByDevice, rule: .OWN_06, "\(address) is not behind the IOMMU (no group)")
        }
        return device
    }
}
