/// Where a fuzzed ioctl's struct goes: most often on a readable and writable page, sometimes at a
/// hostile pointer — null, a `PROT_NONE` page, an address never mapped, the kernel half — or on a
/// read-only page, or cut short by a `PROT_NONE` page.
struct UAPIPlacement {
    /// A hostile pointer to pass instead of placing the struct at all.
    var pointer: UInt?
    var access = UserArgumentPage.Access.readWrite
    /// Some user memory the argument leads to is hostile: the facade may fault.
    var hostile = false

    init(_ input: inout FuzzInput) {
        let placement = input.u8()
        guard placement % 16 == 0 else { return }
        hostile = true
        switch placement >> 4 {
        case 0: pointer = 0  // copy_from_user from NULL
        case 1, 2: pointer = UserArgumentPage.shared.inaccessible
        case 3: pointer = 0x1000  // below vm.mmap_min_addr: never mapped
        case 4: pointer = 0xffff_8000_0000_0000  // the kernel's half
        case 5...9: access = .readOnly
        default: access = .truncated(by: 1 + Int(input.u8() % 16))
        }
    }
}

/// A struct's bytes, growing as fields are set, and how far the kernel would reach into it:
/// `argsz`, or at least the fixed header it copies whatever `argsz` says.
struct UAPIFields {
    var bytes: [UInt8] = []
    var minimum = 0
    var argsz: UInt32 = 0
    /// `data` of a `struct vfio_bitmap` points where the process cannot write.
    var hostileBitmap = false

    var extent: Int { max(minimum, Int(min(argsz, UInt32(UserArgumentPage.capacity)))) }

    mutating func header(argsz: UInt32, flags: UInt32, minimum: Int) {
        self.argsz = argsz
        self.minimum = minimum
        u32(argsz, at: 0)
        u32(flags, at: 4)
    }

    mutating func u8(_ value: UInt8, at offset: Int) {
        if bytes.count < offset + 1 { bytes += [UInt8](repeating: 0, count: offset + 1 - bytes.count) }
        bytes[offset] = value
    }

    mutating func u32(_ value: UInt32, at offset: Int) {
        for i in 0..<4 { u8(UInt8(truncatingIfNeeded: value >> (8 * i)), at: offset + i) }
    }

    mutating func u64(_ value: UInt64, at offset: Int) {
        for i in 0..<8 { u8(UInt8(truncatingIfNeeded: value >> (8 * i)), at: offset + i) }
    }
}
