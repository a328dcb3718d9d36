import KernelRules

/// The IOMMU core (`drivers/iommu/iommu.c`), as a source of errors.
public enum IOMMULayer: ErrorLayer {}

/// The IOMMU layer's error: the errno the kernel returns for the same call, what failed, on which
/// object, and the rule of `kernel-semantics.md` that decides it (`OWN-04`, `DOM-04`, …).
public typealias IOMMUError = SimulationError<IOMMULayer>
