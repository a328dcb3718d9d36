/// The controller's features (NVMe 1.4 §5.21.1, Figure 271) as Set Features (09h, §5.21) and
/// Get Features (0Ah, §5.13) see them; a controller reset returns them to these defaults. None is
/// saveable: Set Features with SV is Feature Identifier Not Saveable, and Get Features of the
/// saved value returns the default (ONCS bit 4 says the controller takes SV and SEL).
///
/// | FID | feature | CDW11 / completion DW0 |
/// |-----|---------|------------------------|
/// | 01h | Arbitration (§5.21.1.1) | AB (2:0, default 111b: no limit), LPW, MPW, HPW: stored; round robin ignores the weights |
/// | 02h | Power Management (§5.21.1.2) | PS (4:0, only 0: NPSS is 0), WH (7:5) |
/// | 04h | Temperature Threshold (§5.21.1.4) | TMPTH (15:0, kelvin), TMPSEL (19:16: 0 Composite; Fh all, Set only), THSEL (21:20: 0 over, default WCTEMP; 1 under, default 0) |
/// | 05h | Error Recovery (§5.21.1.5) | TLER (15:0); DULBE (16) is Invalid Field (NSFEAT.DAE 0); namespace specific |
/// | 06h | Volatile Write Cache (§5.21.1.6) | WCE (0), default 1 |
/// | 07h | Number of Queues (§5.21.1.7) | NSQR/NSQA (15:0), NCQR/NCQA (31:16), 0's based; grants min(requested, 32) |
/// | 08h | Interrupt Coalescing (§5.21.1.8) | THR (7:0), TIME (15:8): stored; every completion signals at once |
/// | 09h | Interrupt Vector Configuration (§5.21.1.9) | IV (15:0, < 33), CD (16); the admin vector never coalesces |
/// | 0Ah | Write Atomicity Normal (§5.21.1.10) | DN (0) |
/// | 0Bh | Asynchronous Event Configuration (§5.21.1.11) | SMART/Health critical warnings (7:0); OAES is 0, so no notices |
///
/// Keep Alive Timer (0Fh) and every other FID are Invalid Field: KAS is 0, the controller has no
/// keep alive, as PCIe controllers need none.
struct NVMeFeatures {
    /// WCTEMP and CCTEMP of Identify Controller, and the composite temperature the controller
    /// reports: 37 °C, steady.
    static let warningTemperature: UInt16 = 343
    static let criticalTemperature: UInt16 = 358
    static let compositeTemperature: UInt16 = 310

    var arbitration: UInt32 = 0b111
    var powerManagement: UInt32 = 0
    var overTemperature = warningTemperature
    var underTemperature: UInt16 = 0
    var errorRecovery: UInt32 = 0
    var volatileWriteCache = true
    /// How many I/O submission and completion queues Number of Queues allocated (1…32).
    var submissionQueues = NVMeController.maxIOQueues
    var completionQueues = NVMeController.maxIOQueues
    var interruptCoalescing: UInt32 = 0
    /// Interrupt Vector Configuration's CD, per vector.
    var coalescingDisabled: UInt64 = 0
    var writeAtomicityNormal: UInt32 = 0
    var asyncEventConfiguration: UInt32 = 0

    /// The FIDs this controller has, with whether each is namespace specific.
    static let supported: [UInt8: Bool] = [
        0x01: false, 0x02: false, 0x04: false, 0x05: true, 0x06: false, 0x07: false, 0x08: false, 0x09: false, 0x0a: false, 0x0b: false,
    ]

    /// Whether the composite temperature is at or past a threshold: SMART critical warning bit 1.
    var temperatureWarning: Bool {
        Self.compositeTemperature >= overTemperature || Self.compositeTemperature <= underTemperature
    }

    /// The value Get Features returns in DW0 for `fid`, with CDW11 selecting the threshold or
    /// vector where the feature has several; nil for an invalid selection.
    func value(_ fid: UInt8, _ cdw11: UInt32) -> UInt32? {
        switch fid {
        case 0x01: return arbitration
        case 0x02: return powerManagement
        case 0x04:
            guard cdw11 >> 16 & 0xf == 0 else { return nil }
            switch cdw11 >> 20 & 3 {
            case 0: return UInt32(overTemperature)
            case 1: return UInt32(underTemperature) | 1 << 20
            default: return nil
            }
        case 0x05: return errorRecovery
        case 0x06: return volatileWriteCache ? 1 : 0
        case 0x07: return UInt32(submissionQueues - 1) | UInt32(completionQueues - 1) << 16
        case 0x08: return interruptCoalescing
        case 0x09:
            let vector = cdw11 & 0xffff
            guard vector < NVMeController.msixVectors else { return nil }
            return vector | (vector == 0 || coalescingDisabled >> UInt64(vector) & 1 != 0 ? 1 << 16 : 0)
        case 0x0a: return writeAtomicityNormal
        case 0x0b: return asyncEventConfiguration
        default: return nil
        }
    }

    /// Applies Set Features of `fid` with CDW11; the completion's status and DW0. Number of
    /// Queues is the caller's: it depends on the queues created.
    mutating func set(_ fid: UInt8, _ cdw11: UInt32) -> NVMeController.Completion {
        switch fid {
        case 0x01: arbitration = cdw11
        case 0x02:
            guard cdw11 & 0x1f == 0 else { return .init(.invalidField) }
            powerManagement = cdw11 & 0xff
        case 0x04:
            let threshold = UInt16(truncatingIfNeeded: cdw11)
            guard [0, 0xf].contains(cdw11 >> 16 & 0xf) else { return .init(.invalidField) }
            switch cdw11 >> 20 & 3 {
            case 0: overTemperature = threshold
            case 1: underTemperature = threshold
            default: return .init(.invalidField)
            }
        case 0x05:
            guard cdw11 & 1 << 16 == 0 else { return .init(.invalidField) }
            errorRecovery = cdw11 & 0xffff
        case 0x06: volatileWriteCache = cdw11 & 1 != 0
        case 0x07:
            let (submission, completion) = (cdw11 & 0xffff, cdw11 >> 16)
            guard submission != 0xffff, completion != 0xffff else { return .init(.invalidField) }
            submissionQueues = min(Int(submission) + 1, NVMeController.maxIOQueues)
            completionQueues = min(Int(completion) + 1, NVMeController.maxIOQueues)
            return .init(.success, result: value(0x07, 0)!)
        case 0x08: interruptCoalescing = cdw11 & 0xffff
        case 0x09:
            let vector = UInt64(cdw11 & 0xffff)
            guard vector < NVMeController.msixVectors else { return .init(.invalidField) }
            if cdw11 & 1 << 16 != 0 {
                coalescingDisabled |= 1 << vector
            } else {
                coalescingDisabled &= ~(1 << vector)
            }
        case 0x0a: writeAtomicityNormal = cdw11 & 1
        case 0x0b: asyncEventConfiguration = cdw11 & 0xff
        default: return .init(.invalidField)
        }
        return .init(.success)
    }
}

extension NVMeController {
    /// Set Features (NVMe 1.4 §5.21): CDW10 FID (7:0) and SV (31), CDW11 the value. Checked as
    /// QEMU's `nvme_set_feature`: an unknown FID is Invalid Field, SV Feature Identifier Not
    /// Saveable; a namespace-specific feature takes NSID 1 or FFFFFFFFh, any other feature NSID 0
    /// or FFFFFFFFh (NSID 1 there is Feature Not Namespace Specific). Number of Queues after an
    /// I/O queue was created is a Command Sequence Error (§5.21.1.7). Raising a temperature
    /// threshold past the composite temperature sets SMART critical warning bit 1 and, where
    /// Asynchronous Event Configuration enables it, reports a SMART/Health event.
    func setFeatures(_ state: inout State, _ command: Command) -> Completion {
        let fid = UInt8(truncatingIfNeeded: command.dword(10))
        guard let namespaceSpecific = NVMeFeatures.supported[fid] else { return Completion(.invalidField) }
        guard command.dword(10) & 1 << 31 == 0 else { return Completion(.featureNotSaveable) }
        let nsid = command.namespace
        if namespaceSpecific {
            guard nsid == 1 || nsid == 0xffff_ffff else { return Completion(.invalidNamespace) }
        } else if nsid != 0 && nsid != 0xffff_ffff {
            return Completion(nsid == 1 ? .featureNotNamespaceSpecific : .invalidNamespace)
        }
        if fid == 0x07, state.createdIOQueues { return Completion(.commandSequenceError) }
        let warned = state.features.temperatureWarning
        let completion = state.features.set(fid, command.dword(11))
        if !warned, state.features.temperatureWarning, state.features.asyncEventConfiguration & NVMeHealth.CriticalWarning.temperature != 0 {
            state.events.raise(.temperatureThreshold)
        }
        return completion
    }

    /// Get Features (§5.13): CDW10 FID (7:0) and SEL (10:8: current, default, saved — the
    /// default, nothing is saveable — or supported capabilities: changeable, and namespace
    /// specific where so); the value in DW0. A namespace-specific feature needs NSID 1.
    func getFeatures(_ state: inout State, _ command: Command) -> Completion {
        let fid = UInt8(truncatingIfNeeded: command.dword(10))
        guard let namespaceSpecific = NVMeFeatures.supported[fid] else { return Completion(.invalidField) }
        if namespaceSpecific, command.namespace != 1 { return Completion(.invalidNamespace) }
        let features: NVMeFeatures
        switch command.dword(10) >> 8 & 7 {
        case 0: features = state.features
        case 1, 2: features = NVMeFeatures()
        case 3: return Completion(.success, result: 1 << 2 | (namespaceSpecific ? 1 << 1 : 0))
        default: return Completion(.invalidField)
        }
        guard let value = features.value(fid, command.dword(11)) else { return Completion(.invalidField) }
        return Completion(.success, result: value)
    }
}
