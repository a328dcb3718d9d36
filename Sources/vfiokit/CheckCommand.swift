import ArgumentParser
import Foundation
import PCIBus

/// `vfiokit check`: whether this host can hand a device to VFIO, one line per item with a
/// verdict, read from sysfs, procfs and devtmpfs under a root (`--root` plays another host from
/// a tree). Exit 0 only when every required item passes, 1 when one fails.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check this host's VFIO readiness: IOMMU, command line, interrupt remapping, modules, device nodes, limits.",
        discussion: """
            Reads ROOT/sys, ROOT/proc and ROOT/dev (ROOT is / unless --root is given). Each line is a verdict: \
            ok, FAIL (VFIO cannot work until it is fixed; what to change follows), warn (works, with a limit worth \
            knowing) or info. Exit status 0 when nothing fails, 1 when something does, 66 when --root is missing.
            """)

    @Option(name: .long, help: ArgumentHelp("Read sys/, proc/ and dev/ under this directory instead of /.", valueName: "dir"))
    var root: String = "/"

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            try reportError(
                errno: "ENOENT", "--root \(root): no such directory (give a directory holding sys/, proc/ and dev/)", json: json)
            throw ExitCode(66)
        }
        let report = ReadinessReport(HostFiles(root: root))
        if json {
            try printJSON(report)
        } else {
            print("VFIO readiness of \(root == "/" ? "this host" : "the host tree \(root)")")
            let width = report.items.map(\.title.count).max() ?? 0
            for item in report.items {
                let verdict = item.verdict.label.padding(toLength: 5, withPad: " ", startingAt: 0)
                // Within 132 columns: long details and remedies wrap under their own text.
                let head = "  \(verdict) \(item.title.padding(toLength: width, withPad: " ", startingAt: 0))  "
                for line in HostIOMMUState.hang(head, item.detail) { print(line) }
                for step in item.remedy {
                    for line in HostIOMMUState.hang("        → ", step) { print(line) }
                }
            }
            print("")
            let failed = report.items.filter { $0.verdict == .fail }.map(\.title)
            print(report.ready ? "ready: VFIO can take devices on this host" : "not ready: \(failed.joined(separator: ", ")) (see the → lines)")
        }
        if !report.ready { throw ExitCode(1) }
    }
}

/// The host's files, under a root: every path the check reads goes through here.
struct HostFiles {
    let root: String

    func path(_ absolute: String) -> String { root == "/" ? absolute : root + absolute }
    func read(_ absolute: String) -> String? { try? String(contentsOfFile: path(absolute), encoding: .utf8) }
    func list(_ absolute: String) -> [String]? {
        (try? FileManager.default.contentsOfDirectory(atPath: path(absolute)))?.filter { !$0.hasPrefix(".") }.sorted()
    }
    func exists(_ absolute: String) -> Bool { FileManager.default.fileExists(atPath: path(absolute)) }
}

/// The verdicts of `vfiokit check`, in the order a person fixes them.
struct ReadinessReport: Encodable {
    enum Verdict: String, Encodable {
        case ok, fail, warn, info
        var label: String { self == .fail ? "FAIL" : rawValue }
    }
    struct Item: Encodable {
        /// A stable key for scripts: iommu, groups, cmdline, interruptRemapping, domainType, modules,
        /// devVfio, devIommu, memlock, hugepages.
        let item: String
        let title: String
        let verdict: Verdict
        let detail: String
        /// What to change, when the verdict is fail or warn.
        let remedy: [String]
    }

    let root: String
    /// True when no item fails.
    let ready: Bool
    /// "intel", "amd" or null: which IOMMU the remedies are for (`HostIOMMUKind`, the decision the
    /// other commands' IOMMU-off notice takes too); null when both ways are given.
    @Nullable var vendor: String?
    let items: [Item]

    init(_ files: HostFiles) {
        root = files.root
        let units = files.list("/sys/class/iommu") ?? []
        let groups = (files.list("/sys/kernel/iommu_groups") ?? []).compactMap(Int.init).sorted()
        let cmdline = (files.read("/proc/cmdline") ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
        let kind = HostIOMMUKind.read(sysRoot: files.path("/sys"), pciPath: files.path("/sys/bus/pci"))
        vendor = kind.vendor
        let enableSteps = kind.enableSteps
        var items: [Item] = []

        // The IOMMU drivers register each unit (`iommu_device_sysfs_add`).
        items.append(
            units.isEmpty
                ? Item(item: "iommu", title: "IOMMU present and enabled", verdict: .fail,
                       detail: "no units in /sys/class/iommu: the IOMMU is off or the firmware does not describe it (no DMAR/IVRS table)",
                       remedy: enableSteps)
                : Item(item: "iommu", title: "IOMMU present and enabled", verdict: .ok,
                       detail: "\(units.count) unit\(units.count == 1 ? "" : "s"): \(units.joined(separator: " "))", remedy: []))
        items.append(
            groups.isEmpty
                ? Item(item: "groups", title: "IOMMU groups", verdict: .fail,
                       detail: "none in /sys/kernel/iommu_groups: no device can be opened through /dev/vfio", remedy: units.isEmpty ? [] : enableSteps)
                : Item(item: "groups", title: "IOMMU groups", verdict: .ok,
                       detail: "\(groups.count) in /sys/kernel/iommu_groups (\(groups.first!)..\(groups.last!))", remedy: []))
        items.append(Self.commandLine(cmdline, found: files.exists("/proc/cmdline"), vendor: kind.vendor, iommuOn: !units.isEmpty))
        items.append(Self.interruptRemapping(files, iommuOn: !units.isEmpty && !groups.isEmpty))
        items.append(Self.domainTypes(files, groups: groups))
        items.append(Self.modules(files))
        let vfioNodes = files.list("/dev/vfio")
        items.append(
            vfioNodes == nil
                ? Item(item: "devVfio", title: "/dev/vfio", verdict: .fail, detail: "absent: the vfio module is not loaded",
                       remedy: ["modprobe vfio-pci (loads vfio and creates /dev/vfio/vfio)"])
                : Item(item: "devVfio", title: "/dev/vfio", verdict: .ok,
                       detail: "present: \(vfioNodes!.isEmpty ? "empty" : vfioNodes!.joined(separator: " "))"
                        + (vfioNodes!.contains(where: { Int($0) != nil }) ? "" : " (no group is bound to vfio-pci yet)"), remedy: []))
        items.append(
            files.exists("/dev/iommu")
                ? Item(item: "devIommu", title: "/dev/iommu", verdict: .ok, detail: "present: iommufd can be used (VFIO cdev, /dev/vfio/devices)", remedy: [])
                : Item(item: "devIommu", title: "/dev/iommu", verdict: .info,
                       detail: "absent: iommufd not loaded; the type1 container (/dev/vfio/vfio) works without it", remedy: ["modprobe iommufd, to use iommufd"]))
        items.append(Self.memlock(files))
        items.append(Self.hugepages(files))
        self.items = items
        ready = !items.contains { $0.verdict == .fail }
    }

    /// What `/proc/cmdline` turns on or off: `intel_iommu=`, `amd_iommu=`, `iommu=`, `iommu.passthrough=`, `vfio-pci.ids=`.
    static func commandLine(_ words: [String], found: Bool, vendor: String?, iommuOn: Bool) -> Item {
        let title = "kernel command line"
        guard found else { return Item(item: "cmdline", title: title, verdict: .info, detail: "/proc/cmdline unreadable", remedy: []) }
        let relevant = words.filter {
            $0.hasPrefix("intel_iommu=") || $0.hasPrefix("amd_iommu=") || $0.hasPrefix("iommu=") || $0.hasPrefix("iommu.")
                || $0.hasPrefix("vfio-pci.") || $0.hasPrefix("vfio_iommu_type1.")
        }
        let shown = relevant.isEmpty ? "no IOMMU or VFIO options" : relevant.joined(separator: " ")
        let off = relevant.filter { $0 == "intel_iommu=off" || $0 == "amd_iommu=off" || $0 == "iommu=off" }
        if !off.isEmpty {
            return Item(item: "cmdline", title: title, verdict: .fail, detail: "\(shown): \(off.joined(separator: " ")) turns the IOMMU off",
                        remedy: ["remove \(off.joined(separator: " ")) from the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub), then reboot"])
        }
        if !iommuOn && vendor != "amd" && !relevant.contains(where: { $0.hasPrefix("intel_iommu=on") }) {
            let step = "add intel_iommu=on to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub; update-grub), then reboot"
            // Where the IOMMU may be AMD's (HostIOMMUKind gave both ways) the switch is not the fault.
            return vendor == "intel"
                ? Item(item: "cmdline", title: title, verdict: .fail, detail: "\(shown): no intel_iommu=on", remedy: [step])
                : Item(item: "cmdline", title: title, verdict: .info, detail: "\(shown): no intel_iommu=on", remedy: ["if the IOMMU is Intel's: " + step])
        }
        return Item(item: "cmdline", title: title, verdict: iommuOn ? .ok : .info, detail: shown, remedy: [])
    }

    /// Remapped MSIs show as `IR-PCI-MSI` (`IR-IO-APIC`) chips in `/proc/interrupts`; without them type1
    /// refuses to attach a group unless `allow_unsafe_interrupts` is set (T1 attach, `iommu_group_has_isolated_msi`).
    static func interruptRemapping(_ files: HostFiles, iommuOn: Bool) -> Item {
        let title = "interrupt remapping"
        let interrupts = files.read("/proc/interrupts")
        let remapped = interrupts?.split(separator: "\n").filter { $0.contains(" IR-") }.count ?? 0
        let unsafe = files.read("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts")?.trimmingCharacters(in: .whitespacesAndNewlines)
        if remapped > 0 {
            return Item(item: "interruptRemapping", title: title, verdict: .ok, detail: "on: \(remapped) IR- interrupt lines in /proc/interrupts", remedy: [])
        }
        if !iommuOn {
            return Item(item: "interruptRemapping", title: title, verdict: .fail,
                        detail: "off: needs the IOMMU (no IR- interrupt chips in /proc/interrupts)", remedy: ["turn the IOMMU on (above)"])
        }
        if unsafe == "Y" {
            return Item(item: "interruptRemapping", title: title, verdict: .warn,
                        detail: "off; vfio_iommu_type1.allow_unsafe_interrupts=Y lets type1 attach anyway (a device can forge MSIs)", remedy: [])
        }
        return Item(item: "interruptRemapping", title: title, verdict: .fail,
                    detail: interrupts == nil ? "unknown: /proc/interrupts unreadable" : "off: no IR- interrupt chips in /proc/interrupts; type1 refuses to attach a group (EPERM)",
                    remedy: ["enable interrupt remapping in the firmware (x2APIC / IR), or accept the risk with vfio_iommu_type1.allow_unsafe_interrupts=1"])
    }

    /// Each group's `type` (SYS-01): DMA, DMA-FQ or identity (`iommu=pt`); VFIO replaces it either way.
    static func domainTypes(_ files: HostFiles, groups: [Int]) -> Item {
        let title = "default domain type"
        guard !groups.isEmpty else {
            return Item(item: "domainType", title: title, verdict: .info, detail: "no groups to have one", remedy: [])
        }
        var counts: [String: Int] = [:]
        for group in groups {
            let type = files.read("/sys/kernel/iommu_groups/\(group)/type")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unreadable"
            counts[type, default: 0] += 1
        }
        let detail = counts.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        return Item(item: "domainType", title: title, verdict: .ok, detail: detail + " (VFIO attaches its own domain in place of any of them)", remedy: [])
    }

    /// `/sys/module/NAME` exists for a loaded module and for a built-in one with parameters.
    static func modules(_ files: HostFiles) -> Item {
        let title = "vfio modules"
        let names = ["vfio", "vfio_pci", "vfio_pci_core", "vfio_iommu_type1", "iommufd"]
        let loaded = names.filter { files.exists("/sys/module/\($0)") }
        let missing = ["vfio", "vfio_pci"].filter { !loaded.contains($0) }
        let backend = loaded.contains("vfio_iommu_type1") || loaded.contains("iommufd")
        let detail = "loaded: \(loaded.isEmpty ? "none" : loaded.joined(separator: " "))"
        if !missing.isEmpty || !backend {
            let absent = missing + (backend ? [] : ["vfio_iommu_type1 or iommufd"])
            return Item(item: "modules", title: title, verdict: .fail, detail: "\(detail); missing \(absent.joined(separator: ", "))",
                        remedy: ["modprobe vfio-pci (pulls in vfio and vfio_iommu_type1); to load it at boot: echo vfio-pci > /etc/modules-load.d/vfio.conf"])
        }
        return Item(item: "modules", title: title, verdict: .ok, detail: detail, remedy: [])
    }

    /// RLIMIT_MEMLOCK of this process (`/proc/self/limits`): type1 and iommufd charge every pinned
    /// page against it unless the caller has CAP_IPC_LOCK.
    static func memlock(_ files: HostFiles) -> Item {
        let title = "RLIMIT_MEMLOCK"
        guard let line = files.read("/proc/self/limits")?.split(separator: "\n").first(where: { $0.hasPrefix("Max locked memory") }) else {
            return Item(item: "memlock", title: title, verdict: .info, detail: "/proc/self/limits unreadable", remedy: [])
        }
        let fields = line.dropFirst("Max locked memory".count).split(whereSeparator: \.isWhitespace)
        guard let soft = fields.first else { return Item(item: "memlock", title: title, verdict: .info, detail: String(line), remedy: []) }
        if soft == "unlimited" { return Item(item: "memlock", title: title, verdict: .ok, detail: "unlimited", remedy: []) }
        let bytes = UInt64(soft) ?? 0
        let text = bytes >= 1 << 30 ? "\(bytes >> 30) GiB" : bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB"
        if bytes >= 1 << 30 { return Item(item: "memlock", title: title, verdict: .ok, detail: text, remedy: []) }
        return Item(item: "memlock", title: title, verdict: .warn,
                    detail: "\(text): without CAP_IPC_LOCK a user can pin only \(text) for DMA (a VM pins all its RAM)",
                    remedy: ["raise it for the user that runs the VM (ulimit -l, memlock in /etc/security/limits.conf, LimitMEMLOCK= in a systemd unit), or run with CAP_IPC_LOCK"])
    }

    /// `nr_hugepages` per size: optional, but a VM's RAM pins in far fewer pages with them.
    static func hugepages(_ files: HostFiles) -> Item {
        let title = "hugepages"
        let sizes = (files.list("/sys/kernel/mm/hugepages") ?? []).filter { $0.hasPrefix("hugepages-") }
        guard !sizes.isEmpty else { return Item(item: "hugepages", title: title, verdict: .info, detail: "no hugepage sizes in /sys/kernel/mm/hugepages", remedy: []) }
        let counts = sizes.map { size -> String in
            let count = files.read("/sys/kernel/mm/hugepages/\(size)/nr_hugepages")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            return "\(size.dropFirst("hugepages-".count)): \(count)"
        }
        return Item(item: "hugepages", title: title, verdict: .info, detail: counts.joined(separator: ", ") + " reserved (optional)", remedy: [])
    }
}
