import SystemPackage
import KernelRules

/// iommufd (`drivers/iommu/iommufd`: IOAS, HW page tables, devices, VFIO compatibility), as a
/// source of errors.
public enum IOMMUFDLayer: ErrorLayer {}

/// The iommufd layer's error: the errno iommufd returns for the same command — iommufd's own
/// contract (IOMMUFD-105: `EOPNOTSUPP` for unknown flags and reserved fields, `ENOENT` for an ID
/// or IOVA that does not exist, `EADDRINUSE` for reservation conflicts), which differs from
/// type1's on purpose — the IOMMUFD rule that decides it, and a message naming the object.
public typealias IOMMUFDError = SimulationError<IOMMUFDLayer>

/// Runs a lower layer's call (the IOMMU core, user memory), surfacing its failure as an
/// `IOMMUFDError` with the same errno, rule and message.
func lowerCall<Lower: ErrorLayer, Result>(_ body: () throws(SimulationError<Lower>) -> Result) throws(IOMMUFDError) -> Result {
    do {
        return try body()
    } catch {
        throw IOMMUFDError(error)
    }
}

/// `0x…` for messages.
func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
