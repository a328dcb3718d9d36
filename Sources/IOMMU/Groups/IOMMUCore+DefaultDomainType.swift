import KernelRules
import PCIBus
import SystemPackage

/// Which type a group's default domain gets (DT-06, DT-08, DT-09): what its devices force, what a
/// sysfs write asks for, and the kernel's global default.
extension IOMMUCore.State {
    /// `iommu_get_default_domain_type` (DT-06, DT-09): the type the group's devices force, checked
    /// against `requested`; nil (the kernel's 0) leaves the choice to the global default. A driver
    /// with a fixed `ops->default_domain` forces its type (`iommu_get_def_domain_type`; the
    /// profiles model no per-device `def_domain_type`); an untrusted device forces `DMA` and
    /// refuses a driver that forces anything else. As the kernel does, the device named is the
    /// group's last untrusted one.
    mutating func defaultDomainType(for group: IOMMUGroup, requested: IOMMUDomainType?) throws(IOMMUError) -> IOMMUDomainType? {
        var forced: IOMMUDomainType? = profile.fixedDefaultDomain ? profile.defaultDomainType : nil
        let untrusted = group.devices.last { devices[$0]!.untrusted }
        if let untrusted {
            if let driverType = forced, driverType != .dma {
                warn(untrusted, "Device is not trusted, but driver is overriding group \(group.id) to \(driverType.logName), refusing to probe.")
                throw IOMMUError(
                    .invalidArgument, rule: .DT_06,
                    "group \(group.id): \(untrusted) is untrusted and needs a strict DMA domain, but \(profile.title) fixes its default domain as \(driverType)")
            }
            forced = .dma
        }
        guard let requested else { return forced }
        guard let forced, forced != requested else { return requested }
        guard let untrusted, !profile.fixedDefaultDomain else {
            throw IOMMUError(
                .invalidArgument, rule: .DT_09, "group \(group.id) type: \(profile.title) has a fixed \(forced) default domain, not \(requested)")
        }
        // The wording of v6.5–v6.6; later trees refuse with the same EINVAL and no message.
        warn(untrusted, "Device cannot be in \(requested.logName) domain - it is forcing \(forced.logName)")
        throw IOMMUError(
            .invalidArgument, rule: .DT_06,
            "group \(group.id) type: \(untrusted) is untrusted and forces a strict DMA domain, not \(requested)")
    }

    /// `iommu_group_alloc_default_domain` (DT-06, DT-08): the requested or forced type (a fixed
    /// driver default arrives here as forced), else the global default (`iommu_def_domain_type`);
    /// where the IOMMU cannot allocate that (identity without an identity domain) it falls back to
    /// `DMA` with the kernel's warning, returned for the caller to log.
    func allocationType(_ requested: IOMMUDomainType?) -> (type: IOMMUDomainType, warning: String?) {
        if let requested { return (requested, nil) }
        guard defaultDomainType == .identity, !profile.supportsIdentity else { return (defaultDomainType, nil) }
        // `group->name` is NULL for PCI groups: `%s` prints "(null)".
        return (
            .dma,
            "Failed to allocate default IOMMU domain of type \(defaultDomainType.kernelValue) for group (null) - Falling back to IOMMU_DOMAIN_DMA"
        )
    }
}
