import KernelRules
import IOMMU
import SystemPackage

extension Type1IOMMU {
    /// `vfio_iommu_type1_attach_group` (T1-50): every check and action in the kernel's order; any
    /// failure after the domain is attached detaches it again, so nothing changes.
    mutating func attach(_ group: Type1Group) throws(VFIOError) {
        let what = "\(name): attach IOMMU group \(group.id)"
        guard invalidVaddrs.isEmpty else {
            throw VFIOError(.resourceBusy, rule: .T1_61, "\(what): \(invalidVaddrs.count) mapping(s) have an invalidated vaddr; finish the VADDR update first")
        }
        guard !groups.contains(where: { $0.key == group.key }) else {
            throw VFIOError(.invalidArgument, rule: .T1_50, "\(what): already attached")
        }
        let domain: IOMMUDomain
        domain = try iommuCall { () throws(IOMMUError) in try group.core.allocatePagingDomain() }
        let geometry = domain.geometry
        guard geometry.forceAperture || options.allowBypassingIOMMU else {
            throw VFIOError(
                .notPermitted, rule: .T1_44,
                "\(what): IOMMU \(domain.ops) does not force its aperture (\(geometry)), so DMA outside it bypasses translation and the group cannot be isolated; set allowBypassingIOMMU to use it anyway (project policy)")
        }
        try iommuCall { () throws(IOMMUError) in try group.core.attach(domain, toGroup: group.id) }
        do throws(VFIOError) {
            let list = try iovaList(afterAttaching: group, geometry: geometry, what: what)
            guard options.allowUnsafeInterrupts || group.core.profile.interruptRemapping else {
                throw VFIOError(
                    .notPermitted, rule: .T1_50,
                    "\(what): No interrupt remapping support.  Use the module param \"allow_unsafe_interrupts\" to enable VFIO IOMMU support on this platform")
            }
            if try joinExistingDomain(group, leaving: domain) {
                iovaList = list
                return
            }
            let common = domains.reduce(domain.pageSizes.rawValue) { $0 & $1.domain.pageSizes.rawValue }
            guard common != 0 else {
                throw VFIOError(
                    .invalidArgument, rule: .T1_52,
                    "\(what): IOMMU \(domain.ops) (\(domain.pageSizes)) shares no page size with the container's other IOMMUs, so no mapping could be aligned for all (project policy: the kernel would compute an empty bitmap)")
            }
            try replay(into: domain)
            domains.append(Domain(domain: domain, groups: [group]))
            updatePageSizes()
            iovaList = list
        } catch {
            try? group.core.detach(domain, fromGroup: group.id)
            throw error
        }
    }

    /// T1-50 steps 6–8 (T1-40, T1-41): the aperture and reserved regions may not strand an
    /// existing mapping; the new list is the old one trimmed to the aperture, reserved regions cut out.
    private func iovaList(afterAttaching group: Type1Group, geometry: DomainGeometry, what: String) throws(VFIOError) -> IOVAList {
        if iovaList.apertureConflicts(start: geometry.apertureStart, end: geometry.apertureEnd, hasMapping: hasMapping) {
            throw VFIOError(
                .invalidArgument, rule: .T1_41,
                "\(what): its aperture \(rangeText(geometry.apertureStart, geometry.apertureEnd)) would leave existing mappings outside (allowed IOVA list \(iovaList))")
        }
        let regions = group.reservedRegions
        if let conflict = IOVAList.reservedConflicts(regions, hasMapping: hasMapping) {
            throw VFIOError(.invalidArgument, rule: .T1_41, "\(what): its reserved region \(conflict) overlaps an existing mapping")
        }
        var list = iovaList
        list.resizeAperture(start: geometry.apertureStart, end: geometry.apertureEnd)
        try list.excludeReserved(regions)
        return list
    }

    /// T1-50 step 11: a domain of the same IOMMU ops and cache-coherency enforcement takes the
    /// group; the new domain is dropped. False when none accepts it.
    private mutating func joinExistingDomain(_ group: Type1Group, leaving fresh: IOMMUDomain) throws(VFIOError) -> Bool {
        for index in domains.indices {
            let candidate = domains[index].domain
            guard candidate.ops == fresh.ops, candidate.enforcesCacheCoherency == fresh.enforcesCacheCoherency else { continue }
            try iommuCall { () throws(IOMMUError) in try group.core.detach(fresh, fromGroup: group.id) }
            do {
                try group.core.attach(candidate, toGroup: group.id)
                domains[index].groups.append(group)
                return true
            } catch {
                try iommuCall { () throws(IOMMUError) in try group.core.attach(fresh, toGroup: group.id) }
            }
        }
        return false
    }

    /// `vfio_iommu_replay` (T1-50 step 12): every existing mapping into a new domain; a failure
    /// unmaps what was replayed.
    private func replay(into domain: IOMMUDomain) throws(VFIOError) {
        var replayed: [DMAMapping] = []
        for mapping in table.mappings {
            do {
                try domain.map(iova: mapping.iova, to: mapping.hostAddress, size: mapping.size, access: mapping.access)
                replayed.append(mapping)
            } catch {
                for done in replayed { domain.unmap(iova: done.iova, size: done.size) }
                throw VFIOError(error.errno, rule: .T1_50, "\(name): replaying \(mapping) into \(domain) failed: \(error.message)")
            }
        }
    }

    /// `vfio_iommu_type1_detach_group` (T1-56, T1-43): the group goes back to its blocking domain;
    /// an emptied domain is freed — the last one takes every mapping with it — and the IOVA list
    /// grows back to the remaining apertures, minus the remaining groups' reserved regions.
    mutating func detach(_ key: ObjectIdentifier) throws(VFIOError) {
        guard let domainIndex = domains.firstIndex(where: { $0.groups.contains { $0.key == key } }) else {
            throw VFIOError(.invalidArgument, rule: .T1_56, "\(name): detach: the group is not attached")
        }
        let entry = domains[domainIndex]
        let group = entry.groups.first { $0.key == key }!
        try iommuCall { () throws(IOMMUError) in try group.core.detach(entry.domain, fromGroup: group.id) }
        domains[domainIndex].groups.removeAll { $0.key == key }
        var list = iovaList
        if domains[domainIndex].groups.isEmpty {
            if domains.count == 1 {
                try remove(table.mappings)
            }
            domains.remove(at: domainIndex)
            list.expandAperture(remaining: domains.map(\.domain.geometry))
            updatePageSizes()
        }
        // `vfio_iommu_resv_refresh` works on the expanded copy; when it fails the copy is
        // dropped and the list stays as it was before the detach, unexpanded.
        if let refreshed = list.refreshed(reserved: groups.flatMap(\.reservedRegions)) { iovaList = refreshed }
    }
}
