import Foundation
import KernelRules
import PCIBus
import SystemPackage

/// What the IOMMU core needs beyond the topology: the platform profile, firmware-described
/// regions per device (RMRR, unity map), untrusted devices, and the global default domain type
/// chosen on the kernel command line (`iommu.passthrough=1` → identity, `iommu.strict=1` → DMA).
public struct IOMMUConfiguration: Sendable {
    public var profile: PlatformProfile
    public var firmwareRegions: [PCIAddress: [FirmwareRegion]]
    public var untrusted: Set<PCIAddress>
    /// The kernel's global default (`iommu_def_domain_type`), which groups get unless their
    /// devices force another type (DT-06); not a request. Nil: the profile's default.
    public var defaultDomainType: IOMMUDomainType?

    public init(
        profile: PlatformProfile, firmwareRegions: [PCIAddress: [FirmwareRegion]] = [:], untrusted: Set<PCIAddress> = [],
        defaultDomainType: IOMMUDomainType? = nil
    ) {
        self.profile = profile
        self.firmwareRegions = firmwareRegions
        self.untrusted = untrusted
        self.defaultDomainType = defaultDomainType
    }

    /// The configuration of a snapshot: a machine's manifest keys `iommu` (`profile`,
    /// `defaultDomainType`, `floppyWorkaround`), `reservedRegions` and `untrusted`; else the
    /// detected platform's profile. `profileName` overrides the profile. `nil` when the platform has no IOMMU model.
    public static func of(_ snapshot: BusSnapshot, profileName: String? = nil) throws(IOMMUError) -> IOMMUConfiguration? {
        var manifest = Manifest()
        if case .machine(let machine) = snapshot.origin { manifest = try Manifest.decode(machine) }
        let name = profileName ?? manifest.iommu?.profile
        var profile: PlatformProfile
        if let name {
            guard let named = PlatformProfile.named(name) else {
                throw IOMMUError(
                    .invalidArgument, rule: .none,
                    "unknown IOMMU profile \"\(name)\" (known: \(PlatformProfile.names.joined(separator: ", ")))")
            }
            profile = named
        } else {
            guard let platformDefault = PlatformProfile.default(for: snapshot.grouping.platform) else { return nil }
            profile = platformDefault
        }
        if let floppy = manifest.iommu?.floppyWorkaround {
            guard profile.firmwareRegions == .intelRMRR else {
                throw IOMMUError(
                    .invalidArgument, rule: .none,
                    "\(manifest.path): iommu.floppyWorkaround: \(profile.name) is not Intel VT-d, whose driver alone has CONFIG_INTEL_IOMMU_FLOPPY_WA")
            }
            profile.floppyWorkaround = floppy
        }
        return IOMMUConfiguration(
            profile: profile, firmwareRegions: try manifest.firmwareRegions(), untrusted: try manifest.untrustedDevices(),
            defaultDomainType: try manifest.defaultDomainType())
    }

    /// The IOMMU keys of `manifest.json`; the bus layer reads the others.
    struct Manifest: Decodable {
        struct IOMMU: Decodable {
            let profile: String?
            let defaultDomainType: String?
            let floppyWorkaround: Bool?
        }
        struct Region: Decodable {
            let start: String
            let end: String
            let type: String?
        }
        var iommu: IOMMU?
        var reservedRegions: [String: [Region]]?
        var untrusted: [String]?
        var path = ""

        enum CodingKeys: String, CodingKey { case iommu, reservedRegions, untrusted }

        init() {}

        static func decode(_ machine: FixtureMachine) throws(IOMMUError) -> Manifest {
            let path = machine.directory + "/manifest.json"
            do {
                var manifest = try JSONDecoder().decode(Manifest.self, from: machine.manifestData)
                manifest.path = path
                return manifest
            } catch {
                throw IOMMUError(.invalidArgument, rule: .none, "\(path): invalid IOMMU keys: \(error)")
            }
        }

        func firmwareRegions() throws(IOMMUError) -> [PCIAddress: [FirmwareRegion]] {
            var result: [PCIAddress: [FirmwareRegion]] = [:]
            for (key, regions) in reservedRegions ?? [:] {
                let address = try parseAddress(key, in: "reservedRegions")
                for region in regions {
                    guard let start = parseHex(region.start), let last = parseHex(region.end), start <= last else {
                        throw IOMMUError(
                            .invalidArgument, rule: .none, "\(path): reservedRegions \(key): [\(region.start), \(region.end)] is not a range")
                    }
                    var type: ReservedRegionType?
                    if let name = region.type {
                        guard let parsed = ReservedRegionType(name: name) else {
                            throw IOMMUError(.invalidArgument, rule: .none, "\(path): reservedRegions \(key): unknown type \"\(name)\"")
                        }
                        type = parsed
                    }
                    result[address, default: []].append(FirmwareRegion(start: start, last: last, type: type))
                }
            }
            return result
        }

        func untrustedDevices() throws(IOMMUError) -> Set<PCIAddress> {
            var result: Set<PCIAddress> = []
            for key in untrusted ?? [] { result.insert(try parseAddress(key, in: "untrusted")) }
            return result
        }

        func defaultDomainType() throws(IOMMUError) -> IOMMUDomainType? {
            guard let name = iommu?.defaultDomainType else { return nil }
            guard let type = IOMMUDomainType(rawValue: name), type == .identity || type.isDMAAPI else {
                throw IOMMUError(.invalidArgument, rule: .none, "\(path): iommu.defaultDomainType \"\(name)\" is not identity, DMA or DMA-FQ")
            }
            return type
        }

        private func parseAddress(_ text: String, in key: String) throws(IOMMUError) -> PCIAddress {
            guard let address = PCIAddress(parsing: text) else {
                throw IOMMUError(.invalidArgument, rule: .none, "\(path): \(key): \"\(text)\" is not a PCI address")
            }
            return address
        }

        private func parseHex(_ text: String) -> UInt64? {
            UInt64(text.hasPrefix("0x") ? String(text.dropFirst(2)) : text, radix: 16)
        }
    }
}

extension IOMMUCore {
    /// The core of a loaded snapshot with the configuration its source implies (see
    /// `IOMMUConfiguration.of`); `nil` when the platform has no IOMMU model or no groups.
    public static func load(_ snapshot: BusSnapshot, profileName: String? = nil) throws(IOMMUError) -> IOMMUCore? {
        guard snapshot.grouping.unavailableReason == nil, let configuration = try IOMMUConfiguration.of(snapshot, profileName: profileName) else {
            return nil
        }
        return try IOMMUCore(snapshot: snapshot, configuration: configuration)
    }
}
