#!/usr/bin/env python3
"""Render fixture machines into `lspci -xxxx` dumps.

Each machine lives in devices/NAME/: a readable description `machine.json`
(written by hand), the dump `lspci-xxxx.txt` rendered from it by this script,
and `manifest.json` (written by hand: drivers, expected IOMMU groups, ...).

    python3 devices/render.py            render every devices/*/machine.json
    python3 devices/render.py NAME ...   render only these machines
    python3 devices/render.py --check    exit 1 if a committed dump differs
                                         from what would be rendered, or a
                                         manifest does not match its machine

The dump is what libpci's dump method (`lspci -F FILE`) reads: per function a
header line `BB:DD.F <class>: <name>` (domain prefix when a machine uses a
domain other than 0000), rows `OO: xx xx ...` of 16 bytes, a blank line.
Conventional PCI functions get 256 bytes, PCI Express functions 4096.
See devices/README.md for the description format. Output is deterministic.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# kind -> (header type, PCIe Device/Port type or None for conventional PCI)
KINDS = {
    "endpoint": (0, 0x0),
    "legacy-endpoint": (0, 0x1),
    "rciep": (0, 0x9),
    "rcec": (0, 0xA),
    "root-port": (1, 0x4),
    "upstream-port": (1, 0x5),
    "downstream-port": (1, 0x6),
    "pcie-to-pci-bridge": (1, 0x7),
    "pci-to-pcie-bridge": (1, 0x8),
    "conventional": (0, None),
    "conventional-bridge": (1, None),
}

ACS_BITS = {"SV": 0x01, "TB": 0x02, "RR": 0x04, "CR": 0x08, "UF": 0x10, "EC": 0x20, "DT": 0x40}

# Class names for the header line only (libpci ignores the text after the address).
CLASS_NAMES = {
    0x0100: "SCSI storage controller", 0x0101: "IDE interface", 0x0104: "RAID bus controller",
    0x0106: "SATA controller", 0x0107: "Serial Attached SCSI controller",
    0x0108: "Non-Volatile memory controller", 0x0200: "Ethernet controller",
    0x0280: "Network controller", 0x0300: "VGA compatible controller", 0x0302: "3D controller",
    0x0401: "Multimedia audio controller", 0x0403: "Audio device", 0x0600: "Host bridge",
    0x0601: "ISA bridge", 0x0604: "PCI bridge", 0x0700: "Serial controller",
    0x0780: "Communication controller", 0x0805: "SD Host controller", 0x0806: "IOMMU",
    0x0807: "Root Complex Event Collector", 0x0880: "System peripheral",
    0x0c00: "FireWire (IEEE 1394)", 0x0c03: "USB controller", 0x0c05: "SMBus",
    0x0c80: "Serial bus controller", 0x1080: "Encryption controller",
    0x1180: "Signal processing controller", 0x1200: "Processing accelerators",
}

LINK_SPEEDS = {"2.5GT/s": 1, "5GT/s": 2, "8GT/s": 3, "16GT/s": 4, "32GT/s": 5}

SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


class MachineError(Exception):
    pass


def parse_hex(value, what, bits):
    if not isinstance(value, str) or not re.fullmatch(r"(0x)?[0-9a-fA-F]+", value):
        raise MachineError(f"{what}: expected a hex string, got {value!r}")
    n = int(value, 16)
    if n >> bits:
        raise MachineError(f"{what}: {value} does not fit in {bits} bits")
    return n


def parse_bus(value, what):
    if isinstance(value, int):
        return value
    return parse_hex(value, what, 8)


def align_up(n, a):
    return (n + a - 1) // a * a


class Function:
    """One PCI function of a machine description, with derived facts."""

    def __init__(self, d, index):
        self.d = d
        where = f"function #{index}"
        m = re.fullmatch(r"(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([01][0-9a-fA-F])\.([0-7])", str(d.get("bdf", "")))
        if not m:
            raise MachineError(f"{where}: bad or missing bdf {d.get('bdf')!r}")
        self.domain = int(m.group(1) or "0", 16)
        self.bus, self.dev, self.fn = int(m.group(2), 16), int(m.group(3), 16), int(m.group(4))
        where = d["bdf"]
        self.where = where
        known = {"bdf", "vendor", "device", "class", "rev", "name", "kind", "secondary", "subordinate",
                 "acs", "flr", "msi", "msix", "aer", "multifunction", "subsystem", "bars", "link",
                 "regs", "command", "note"}
        unknown = set(d) - known
        if unknown:
            raise MachineError(f"{where}: unknown keys {sorted(unknown)}")
        self.vendor = parse_hex(d.get("vendor"), f"{where} vendor", 16)
        self.device = parse_hex(d.get("device"), f"{where} device", 16)
        self.cls = parse_hex(d.get("class"), f"{where} class", 24)
        self.rev = parse_hex(d.get("rev", "00"), f"{where} rev", 8)
        self.name = d.get("name", "Device")
        if d.get("kind", "endpoint") not in KINDS:
            raise MachineError(f"{where}: unknown kind {d.get('kind')!r}; one of {sorted(KINDS)}")
        self.kind = d.get("kind", "endpoint")
        self.header, self.pcie_type = KINDS[self.kind]
        self.is_pcie = self.pcie_type is not None
        self.is_bridge = self.header == 1
        if self.is_bridge:
            if "secondary" not in d or "subordinate" not in d:
                raise MachineError(f"{where}: a bridge needs secondary and subordinate")
            self.secondary = parse_bus(d["secondary"], f"{where} secondary")
            self.subordinate = parse_bus(d["subordinate"], f"{where} subordinate")
            if not self.bus < self.secondary <= self.subordinate:
                raise MachineError(f"{where}: need bus < secondary <= subordinate")
        elif "secondary" in d or "subordinate" in d:
            raise MachineError(f"{where}: only bridges have secondary/subordinate")
        self.acs = d.get("acs")
        if self.acs is not None:
            if not self.is_pcie:
                raise MachineError(f"{where}: ACS needs PCIe extended config space")
            for key in ("cap", "ctrl"):
                for bit in self.acs.get(key, []):
                    if bit not in ACS_BITS:
                        raise MachineError(f"{where}: unknown ACS bit {bit!r}")
            if self.acs.get("layout", "standard") not in ("standard", "intel-spt"):
                raise MachineError(f"{where}: ACS layout is 'standard' or 'intel-spt'")
            if self.acs.get("layout") == "intel-spt" and "EC" in self.acs.get("cap", []):
                raise MachineError(f"{where}: intel-spt ACS layout has no room for egress control")
        if (self.acs is not None or d.get("aer")) and not self.is_pcie:
            raise MachineError(f"{where}: extended capabilities need a PCIe function")
        self.multifunction = d.get("multifunction")  # None: decided from the slot
        self.sort_key = (self.domain, self.bus, self.dev * 8 + self.fn)
        self.bars = []  # filled by allocate(): (kind, size, prefetch, address)
        self.windows = {}  # bridges: pool -> (start, end) or None

    def bar_specs(self):
        if "bars" in self.d:
            specs = self.d["bars"]
        elif self.is_bridge or self.cls >> 8 in (0x0600, 0x0601, 0x0806, 0x0807):
            specs = []  # bridges, host/ISA bridges, IOMMU and RCEC functions: no BARs by default
        else:
            specs = ["mem64 16K"] if self.is_pcie else ["mem32 4K"]
        out = []
        for spec in specs:
            m = re.fullmatch(r"(mem32|mem64) (\d+)([KMG]?)( prefetch)?|(io) (\d+)()()", spec)
            if not m:
                raise MachineError(f"{self.where}: bad BAR {spec!r} (e.g. 'mem64 16K', 'mem64 256M prefetch', 'io 256')")
            kind, count, unit, prefetch = m.groups()[:4] if m.group(1) else m.groups()[4:]
            size = int(count) * SIZE_UNITS[unit]
            if size & (size - 1) or size < (4 if kind == "io" else 16):
                raise MachineError(f"{self.where}: BAR size must be a power of two (>= 16, I/O >= 4)")
            out.append((kind, size, bool(prefetch)))
        slots = sum(2 if k == "mem64" else 1 for k, _, _ in out)
        if slots > (2 if self.is_bridge else 6):
            raise MachineError(f"{self.where}: too many BARs")
        return out


class Machine:
    def __init__(self, path):
        self.path = path
        with open(path) as f:
            try:
                self.d = json.load(f)
            except json.JSONDecodeError as e:
                raise MachineError(f"{path}: {e}")
        self.functions = [Function(fd, i) for i, fd in enumerate(self.d.get("functions", []))]
        if not self.functions:
            raise MachineError(f"{path}: no functions")
        self.functions.sort(key=lambda f: f.sort_key)
        seen = set()
        for f in self.functions:
            if f.sort_key in seen:
                raise MachineError(f"{f.where}: duplicate address")
            seen.add(f.sort_key)
        self.use_domain = any(f.domain for f in self.functions)
        self.link_topology()

    def bdf(self, f):
        text = f"{f.bus:02x}:{f.dev:02x}.{f.fn}"
        return f"{f.domain:04x}:{text}" if self.use_domain else text

    def link_topology(self):
        self.bridge_of = {}  # (domain, bus) -> bridge whose secondary bus it is
        for f in self.functions:
            if f.is_bridge:
                key = (f.domain, f.secondary)
                if key in self.bridge_of:
                    raise MachineError(f"{f.where}: secondary bus {f.secondary:02x} already used")
                self.bridge_of[key] = f
        self.on_bus = {}
        for f in self.functions:
            self.on_bus.setdefault((f.domain, f.bus), []).append(f)
            parent = self.bridge_of.get((f.domain, f.bus))
            if parent and f.is_bridge and not parent.secondary < f.secondary <= f.subordinate <= parent.subordinate:
                raise MachineError(f"{f.where}: bus range not inside {parent.where}'s")
            if f.multifunction is None:
                f.multifunction = any(g is not f and (g.domain, g.bus, g.dev) == (f.domain, f.bus, f.dev)
                                      for g in self.functions)
        for key in self.bridge_of:
            self.on_bus.setdefault(key, [])
        self.root_buses = sorted(k for k in self.on_bus if k not in self.bridge_of)
        for domain, bus in self.root_buses:
            for b in self.bridge_of.values():
                if b.domain == domain and b.secondary <= bus <= b.subordinate:
                    raise MachineError(f"bus {bus:02x} lies in {b.where}'s bus range but is no bridge's secondary bus")

    def allocate(self):
        """Assign BAR addresses and bridge windows in depth-first order."""
        base = self.d.get("resources", {})
        cursor = {
            "mem": parse_hex(base.get("mem32", "c0000000"), "resources.mem32", 32),
            "pref": parse_hex(base.get("pref", "80000000"), "resources.pref", 64),
            "io": parse_hex(base.get("io", "3000"), "resources.io", 32),
        }
        granule = {"mem": 1 << 20, "pref": 1 << 20, "io": 1 << 12}

        def pool_of(kind, prefetch):
            return "io" if kind == "io" else "pref" if kind == "mem64" and prefetch else "mem"

        def walk(key):
            for f in self.on_bus[key]:
                f.bars = []
                for kind, size, prefetch in f.bar_specs():
                    pool = pool_of(kind, prefetch)
                    addr = align_up(cursor[pool], max(size, 4 if pool == "io" else 4096))
                    cursor[pool] = addr + size
                    f.bars.append((kind, size, prefetch, addr))
            for f in self.on_bus[key]:
                if not f.is_bridge:
                    continue
                start = {p: align_up(cursor[p], granule[p]) for p in cursor}
                cursor.update(start)
                walk((f.domain, f.secondary))
                for p in cursor:
                    end = align_up(cursor[p], granule[p])
                    f.windows[p] = (start[p], end - 1) if end > start[p] else None
                    cursor[p] = end

        for key in self.root_buses:
            walk(key)

    def children(self, f):
        return self.on_bus.get((f.domain, f.secondary), []) if f.is_bridge else []


class Config:
    def __init__(self, size):
        self.b = bytearray(size)

    def w8(self, off, v):
        self.b[off] = v & 0xFF

    def w16(self, off, v):
        self.b[off:off + 2] = (v & 0xFFFF).to_bytes(2, "little")

    def w32(self, off, v):
        self.b[off:off + 4] = (v & 0xFFFFFFFF).to_bytes(4, "little")


def link_of(f):
    m = re.fullmatch(r"(\S+) x(\d+)", f.d.get("link", "8GT/s x4"))
    if not m or m.group(1) not in LINK_SPEEDS:
        raise MachineError(f"{f.where}: link must look like '8GT/s x4'")
    return LINK_SPEEDS[m.group(1)], int(m.group(2))


def render_function(machine, f, slot_number):
    cfg = Config(4096 if f.is_pcie else 256)
    cls = f.cls
    cfg.w16(0x00, f.vendor)
    cfg.w16(0x02, f.device)
    use_msi = f.d.get("msi", cls >> 8 not in (0x0600, 0x0601, 0x0806))
    msix = f.d.get("msix")
    default_cmd = 0x0007 if f.is_bridge else 0x0006
    if f.is_pcie and (use_msi or msix):
        default_cmd |= 0x0400  # INTx disabled: interrupts come as messages
    cfg.w16(0x04, parse_hex(f.d["command"], f"{f.where} command", 16) if "command" in f.d else default_cmd)
    cfg.w8(0x08, f.rev)
    cfg.w8(0x09, cls)
    cfg.w8(0x0A, cls >> 8)
    cfg.w8(0x0B, cls >> 16)
    cfg.w8(0x0C, 0x10)  # cache line size 64 bytes
    cfg.w8(0x0D, 0x00 if f.is_pcie else 0x20)
    cfg.w8(0x0E, f.header | (0x80 if f.multifunction else 0))

    bar_off = 0x10
    for kind, size, prefetch, addr in f.bars:
        if kind == "io":
            cfg.w32(bar_off, addr | 1)
            bar_off += 4
        elif kind == "mem32":
            cfg.w32(bar_off, addr | (0x8 if prefetch else 0))
            bar_off += 4
        else:
            cfg.w32(bar_off, (addr & 0xFFFFFFF0) | 0x4 | (0x8 if prefetch else 0))
            cfg.w32(bar_off + 4, addr >> 32)
            bar_off += 8

    subsystem = f.d.get("subsystem")
    ss = None
    if subsystem:
        m = re.fullmatch(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{4})", subsystem)
        if not m:
            raise MachineError(f"{f.where}: subsystem must look like '8086:7270'")
        ss = (int(m.group(1), 16), int(m.group(2), 16))

    if f.is_bridge:
        cfg.w8(0x18, f.bus)
        cfg.w8(0x19, f.secondary)
        cfg.w8(0x1A, f.subordinate)
        cfg.w8(0x1B, 0x00 if f.is_pcie else 0x20)
        io, mem, pref = f.windows.get("io"), f.windows.get("mem"), f.windows.get("pref")
        if io:
            cfg.w8(0x1C, (io[0] >> 8) & 0xF0)
            cfg.w8(0x1D, (io[1] >> 8) & 0xF0)
        else:
            cfg.w8(0x1C, 0xF0)
        if mem:
            cfg.w16(0x20, (mem[0] >> 16) & 0xFFF0)
            cfg.w16(0x22, (mem[1] >> 16) & 0xFFF0)
        else:
            cfg.w16(0x20, 0xFFF0)
        if pref:
            cfg.w16(0x24, ((pref[0] >> 16) & 0xFFF0) | 1)
            cfg.w16(0x26, ((pref[1] >> 16) & 0xFFF0) | 1)
            cfg.w32(0x28, pref[0] >> 32)
            cfg.w32(0x2C, pref[1] >> 32)
        else:
            cfg.w16(0x24, 0xFFF1)
            cfg.w16(0x26, 0x0001)
        cfg.w16(0x1E, 0x0000 if f.is_pcie else 0x0220)
    elif ss:
        cfg.w16(0x2C, ss[0])
        cfg.w16(0x2E, ss[1])

    is_host = cls >> 8 in (0x0600, 0x0601, 0x0806)  # chipset functions: no INTx pin, no MSI
    cfg.w8(0x3C, 0x00 if is_host else 0x0B)
    cfg.w8(0x3D, 0 if is_host else 1)

    # Standard capabilities, chained from 0x40 upwards.
    caps = []  # (id, size, writer)
    pmc = 0xC803 if f.is_bridge else 0x0003
    caps.append((0x01, 8, lambda o: (cfg.w16(o + 2, pmc), cfg.w16(o + 4, 0x0008))))
    if use_msi:
        caps.append((0x05, 0x0E, lambda o: cfg.w16(o + 2, 0x0080)))  # 64-bit address, 1 vector, off
    if f.is_pcie:
        caps.append((0x10, 0x3C, lambda o: write_pcie_cap(machine, f, cfg, o, slot_number)))
    if msix:
        caps.append((0x11, 0x0C, lambda o: (cfg.w16(o + 2, int(msix) - 1), cfg.w32(o + 4, 0x2000),
                                            cfg.w32(o + 8, 0x3000))))
    if f.d.get("flr") and not f.is_pcie:
        caps.append((0x13, 0x06, lambda o: (cfg.w8(o + 2, 0x06), cfg.w8(o + 3, 0x03))))  # AF: TP+ FLR+
    if f.is_bridge and ss:
        caps.append((0x0D, 0x08, lambda o: (cfg.w16(o + 4, ss[0]), cfg.w16(o + 6, ss[1]))))
    off = 0x40
    offsets = []
    for cap_id, size, writer in caps:
        offsets.append(off)
        off = align_up(off + size, 0x10)
    if off > 0x100:
        raise MachineError(f"{f.where}: capabilities do not fit in 256 bytes")
    cfg.w8(0x34, offsets[0])
    cfg.w16(0x06, 0x0010 | (0x0000 if f.is_pcie else 0x0200))  # Cap+, DEVSEL=medium on PCI
    for i, (cap_id, size, writer) in enumerate(caps):
        o = offsets[i]
        cfg.w8(o, cap_id)
        cfg.w8(o + 1, offsets[i + 1] if i + 1 < len(caps) else 0)
        writer(o)

    # Extended capabilities from 0x100 (PCIe only).
    if f.is_pcie:
        ext = []
        if f.d.get("aer"):
            ext.append((0x0001, 2, 0x48, lambda o: (cfg.w32(o + 0x0C, 0x00462030), cfg.w32(o + 0x14, 0x00002000))))
        if f.acs is not None:
            ext.append((0x000D, 1, 0x10, lambda o: write_acs_cap(f, cfg, o)))
        off = 0x100
        for i, (cap_id, version, size, writer) in enumerate(ext):
            nxt = align_up(off + size, 0x10) if i + 1 < len(ext) else 0
            cfg.w32(off, cap_id | version << 16 | nxt << 20)
            writer(off)
            off = nxt

    for reg, value in sorted(f.d.get("regs", {}).items()):
        o = parse_hex(reg, f"{f.where} regs offset", 12)
        if o % 4 or o + 4 > len(cfg.b):
            raise MachineError(f"{f.where}: regs offset {reg} not a dword inside config space")
        cfg.w32(o, parse_hex(value, f"{f.where} regs[{reg}]", 32))
    return bytes(cfg.b)


def acs_mask(names):
    mask = 0
    for n in names:
        mask |= ACS_BITS[n]
    return mask


def write_acs_cap(f, cfg, o):
    cap, ctrl = acs_mask(f.acs.get("cap", [])), acs_mask(f.acs.get("ctrl", []))
    if f.acs.get("layout") == "intel-spt":
        # Sunrise Point erratum (ACS-33): CAP and CTRL are dwords, CTRL at cap+8.
        cfg.w32(o + 4, cap)
        cfg.w32(o + 8, ctrl)
    else:
        if cap & ACS_BITS["EC"]:
            cap |= 8 << 8  # egress control vector of 8 bits, one dword at cap+8
        cfg.w16(o + 4, cap)
        cfg.w16(o + 6, ctrl)


def write_pcie_cap(machine, f, cfg, o, slot_number):
    t = f.pcie_type
    port = t in (0x4, 0x6)  # root port / downstream port: a slot below it
    has_link = t not in (0x9, 0xA)
    children = machine.children(f)
    cfg.w16(o + 2, 0x0002 | t << 4 | (0x0100 if port else 0))
    devcap = 0x00008021 if f.is_bridge else 0x00008FE1  # MPS 256, ExtTag, RBE (+ L0s/L1 latencies)
    if f.d.get("flr"):
        devcap |= 1 << 28
    cfg.w32(o + 4, devcap)
    cfg.w16(o + 8, 0x2930)  # RlxdOrd+ ExtTag+ NoSnoop+ MaxPayload 256 MaxReadReq 512
    if has_link:
        speed, width = link_of(f)
        portnum = f.dev if t == 0x4 else 0
        dl_active_reporting = 1 << 20 if port else 0
        cfg.w32(o + 0x0C, speed | width << 4 | 0x2 << 10 | 0x7 << 15 | dl_active_reporting | portnum << 24)
        up = bool(children) or not port
        cfg.w16(o + 0x10, 0x0040)
        cfg.w16(o + 0x12, (speed if up else 1) | (width if up else 0) << 4 | 0x1000
                | (0x2000 if port and up else 0))
        cfg.w32(o + 0x2C, ((1 << speed) - 1) << 1)
        cfg.w16(o + 0x30, speed)
    if port:
        hotplug = not children  # empty slots are where virtual devices get plugged in
        cfg.w32(o + 0x14, slot_number << 19 | (0x60 if hotplug else 0))
        cfg.w16(o + 0x1A, 0x0040 if children else 0)
    cfg.w32(o + 0x24, 0x0000081F | (0x20 if port else 0))  # completion timeouts, LTR (+ ARI forwarding)


def render(machine):
    machine.allocate()
    out = []
    slot_number = 0
    for f in machine.functions:
        if f.pcie_type in (0x4, 0x6):
            slot_number += 1
        data = render_function(machine, f, slot_number)
        cls_name = CLASS_NAMES.get(f.cls >> 8, f"Class {f.cls >> 8:04x}")
        line = f"{machine.bdf(f)} {cls_name}: {f.name}"
        if f.rev:
            line += f" (rev {f.rev:02x})"
        if len(line) >= 200:
            raise MachineError(f"{f.where}: header line too long for libpci ({len(line)} chars)")
        out.append(line)
        for row in range(0, len(data), 16):
            out.append(f"{row:02x}: " + " ".join(f"{b:02x}" for b in data[row:row + 16]))
        out.append("")
    return "\n".join(out) + "\n"


def check_manifest(machine, mdir):
    """Consistency of a hand-written manifest with its machine (not the grouping itself)."""
    problems = []
    path = os.path.join(mdir, "manifest.json")
    try:
        with open(path) as fh:
            man = json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        return [f"{path}: {e}"]
    full = {}
    for f in machine.functions:
        full[f"{f.domain:04x}:{f.bus:02x}:{f.dev:02x}.{f.fn}"] = f
    for key in ("name", "description", "platform", "dump", "drivers", "expectedGroups", "ungrouped"):
        if key not in man:
            problems.append(f"{path}: missing {key}")
    if man.get("platform") not in ("vt-d", "amd-vi", "smmuv3"):
        problems.append(f"{path}: platform must be vt-d, amd-vi or smmuv3")
    if man.get("name") != os.path.basename(mdir):
        problems.append(f"{path}: name is not the directory name")
    for bdf in man.get("drivers", {}):
        if bdf not in full:
            problems.append(f"{path}: drivers: {bdf} is not in the machine")
    # Device-add order: root buses in (domain, bus) order; a bus's functions, then its bridges' buses.
    order = []

    def walk(key):
        order.extend(machine.on_bus[key])
        for f in machine.on_bus[key]:
            if f.is_bridge:
                walk((f.domain, f.secondary))

    for key in machine.root_buses:
        walk(key)
    # Probe order, which numbers the groups (Linux 6.8+: per IOMMU unit in registration order):
    # on VT-d an Intel display function at 0000:00:02.0 has its own DRHD, registered first.
    if man.get("platform") == "vt-d":
        gfx = [f for f in order if (f.domain, f.bus, f.dev, f.fn) == (0, 0, 2, 0) and f.vendor == 0x8086 and f.cls >> 16 == 0x03]
        order = gfx + [f for f in order if f not in gfx]
    position = {f"{f.domain:04x}:{f.bus:02x}:{f.dev:02x}.{f.fn}": i for i, f in enumerate(order)}
    for groups_key in ("expectedGroups", "expectedGroupsAsDumped"):
        if groups_key not in man:
            continue
        seen = {}
        firsts = []
        for i, g in enumerate(man[groups_key]):
            if g.get("id") != i:
                problems.append(f"{path}: {groups_key}[{i}] has id {g.get('id')}, expected {i}")
            for bdf in g.get("devices", []):
                if bdf not in full:
                    problems.append(f"{path}: {groups_key}: {bdf} is not in the machine")
                elif bdf in seen:
                    problems.append(f"{path}: {groups_key}: {bdf} in groups {seen[bdf]} and {i}")
                seen[bdf] = i
            members = [position[b] for b in g.get("devices", []) if b in position]
            firsts.append(min(members) if members else -1)
        if firsts != sorted(firsts):
            problems.append(f"{path}: {groups_key}: ids are not in probe order")
        for bdf in man.get("ungrouped", []):
            if bdf in seen:
                problems.append(f"{path}: {bdf} is both grouped and ungrouped")
            seen[bdf] = "ungrouped"
        for bdf in full:
            if bdf not in seen:
                problems.append(f"{path}: {groups_key}: {bdf} is in no group and not ungrouped")
    for bdf in man.get("freeSlots", []) + list(man.get("reservedRegions", {})) + list(man.get("dmaAliases", {})):
        bus_key = (int(bdf[:4], 16), int(bdf[5:7], 16))
        if bdf not in full and bus_key not in machine.bridge_of:
            problems.append(f"{path}: {bdf} is neither a function nor on a bridge's bus")
    return problems


def main(argv):
    check = "--check" in argv
    names = [a for a in argv if not a.startswith("--")]
    if not names:
        names = sorted(n for n in os.listdir(HERE) if os.path.isfile(os.path.join(HERE, n, "machine.json")))
    failed = False
    for name in names:
        mdir = os.path.join(HERE, name)
        dump_path = os.path.join(mdir, "lspci-xxxx.txt")
        rel = os.path.relpath(dump_path)
        try:
            machine = Machine(os.path.join(mdir, "machine.json"))
            text = render(machine)
        except MachineError as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            failed = True
            continue
        if check:
            try:
                with open(dump_path) as fh:
                    current = fh.read()
            except OSError:
                current = None
            if current != text:
                print(f"stale: {rel} differs from what {name}/machine.json renders "
                      f"(run python3 devices/render.py {name})", file=sys.stderr)
                failed = True
            for problem in check_manifest(machine, mdir):
                print(f"manifest: {problem}", file=sys.stderr)
                failed = True
        else:
            with open(dump_path, "w") as fh:
                fh.write(text)
            print(f"rendered {rel} ({len(machine.functions)} functions)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
