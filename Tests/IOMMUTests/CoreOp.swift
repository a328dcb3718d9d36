import PCIBus

@testable import IOMMU

/// One call into the IOMMU core, as tests and the property test script them.
enum CoreOp: Sendable, CustomStringConvertible {
    case bind(String, String)
    case unbind(String)
    case claimGroup(Int, owner: Int)
    case releaseGroup(Int)
    case claimDevice(String, owner: Int)
    case releaseDevice(String)
    /// Allocate a paging domain and attach it to the group.
    case attachPaging(Int)
    /// Attach a domain allocated by another IOMMU (the mock).
    case attachForeign(Int)
    /// Attach a newly allocated blocked-type domain (not the group's blocking domain).
    case attachBlocked(Int)
    case detachCurrent(Int)
    case attachDevicePaging(String)
    case setType(Int, String, capable: Bool)
    case prepareReset(String)
    case finishReset(String)

    /// Owners by index, so rows can say "owner 0" and "owner 1".
    struct Context {
        var owners = [DMAOwner("owner 0"), DMAOwner("owner 1")]
    }

    func apply(to core: IOMMUCore, context: inout Context) throws(IOMMUError) {
        switch self {
        case .bind(let driver, let address): try core.bind(driver: driver, to: Self.address(address))
        case .unbind(let address): try core.unbindDriver(from: Self.address(address))
        case .claimGroup(let id, let owner): try core.claimGroup(id, owner: context.owners[owner])
        case .releaseGroup(let id): try core.releaseGroup(id)
        case .claimDevice(let address, let owner): try core.claimDevice(Self.address(address), owner: context.owners[owner])
        case .releaseDevice(let address): try core.releaseDevice(Self.address(address))
        case .attachPaging(let id): try core.attach(core.allocatePagingDomain(), toGroup: id)
        case .attachForeign(let id): try core.attach(IOMMUDomain(type: .unmanaged, profile: .mock()), toGroup: id)
        case .attachBlocked(let id): try core.attach(IOMMUDomain(type: .blocked, profile: core.profile), toGroup: id)
        case .detachCurrent(let id):
            guard let domain = core.group(id)?.domain else { return }
            try core.detach(domain, fromGroup: id)
        case .attachDevicePaging(let address): try core.attach(core.allocatePagingDomain(), toDevice: Self.address(address))
        case .setType(let id, let text, let capable): try core.writeDefaultDomainType(group: id, text, capable: capable)
        case .prepareReset(let address): try core.prepareReset(of: Self.address(address))
        case .finishReset(let address): try core.finishReset(of: Self.address(address))
        }
    }

    static func address(_ text: String) -> PCIAddress { TestMachines.address(text) }

    var description: String {
        switch self {
        case .bind(let driver, let address): "bind \(driver) to \(address)"
        case .unbind(let address): "unbind \(address)"
        case .claimGroup(let id, let owner): "claim group \(id) for owner \(owner)"
        case .releaseGroup(let id): "release group \(id)"
        case .claimDevice(let address, let owner): "claim \(address) for owner \(owner)"
        case .releaseDevice(let address): "release \(address)"
        case .attachPaging(let id): "attach a paging domain to group \(id)"
        case .attachForeign(let id): "attach a mock domain to group \(id)"
        case .attachBlocked(let id): "attach a blocked domain to group \(id)"
        case .detachCurrent(let id): "detach group \(id)'s domain"
        case .attachDevicePaging(let address): "attach a paging domain to \(address)"
        case .setType(let id, let text, let capable): "write \"\(text)\" to group \(id)'s type\(capable ? "" : " without capabilities")"
        case .prepareReset(let address): "begin reset of \(address)"
        case .finishReset(let address): "finish reset of \(address)"
        }
    }
}
