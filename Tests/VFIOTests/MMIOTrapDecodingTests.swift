import CMMIOTrap
import Testing

/// The x86-64 instruction forms the MMIO trap emulates (`CMMIOTrap`): what compilers and
/// `<asm/io.h>` emit for `readb`…`writeq` on a mapped BAR, and the reads an optimiser folds into a
/// comparison. Each row: the bytes, then load (1) or store (2), the access width and the length
/// the trap skips; 0 for an instruction it cannot emulate (the program's SIGSEGV, said on stderr).
@Suite("MMIO trap: x86-64 decoding")
struct MMIOTrapDecodingTests {
    static let forms: [(bytes: [UInt8], kind: Int32, width: Int32, length: Int32, what: String)] = [
        ([0x8b, 0x07], 1, 4, 2, "mov (%rdi),%eax — readl"),
        ([0x48, 0x8b, 0x07], 1, 8, 3, "mov (%rdi),%rax — readq"),
        ([0x66, 0x8b, 0x07], 1, 2, 3, "mov (%rdi),%ax — readw"),
        ([0x8a, 0x07], 1, 1, 2, "mov (%rdi),%al — readb"),
        ([0x8a, 0x67, 0x04], 1, 1, 3, "mov 0x4(%rdi),%ah — a high byte register"),
        ([0x0f, 0xb6, 0x07], 1, 1, 3, "movzbl (%rdi),%eax"),
        ([0x0f, 0xb7, 0x47, 0x08], 1, 2, 4, "movzwl 0x8(%rdi),%eax"),
        ([0x48, 0x0f, 0xbe, 0x07], 1, 1, 4, "movsbq (%rdi),%rax"),
        ([0x48, 0x63, 0x07], 1, 4, 3, "movslq (%rdi),%rax"),
        ([0x8b, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00], 1, 4, 7, "mov 0x1000,%eax — SIB without base, disp32"),
        ([0x8b, 0x87, 0x00, 0x01, 0x00, 0x00], 1, 4, 6, "mov 0x100(%rdi),%eax — disp32"),
        ([0x42, 0x8b, 0x04, 0x87], 1, 4, 4, "mov (%rdi,%r8,4),%eax — REX.X index"),
        ([0x65, 0x8b, 0x07], 1, 4, 3, "a segment override"),
        ([0x89, 0x07], 2, 4, 2, "mov %eax,(%rdi) — writel"),
        ([0x48, 0x89, 0x47, 0x10], 2, 8, 4, "mov %rax,0x10(%rdi) — writeq"),
        ([0x66, 0x89, 0x07], 2, 2, 3, "mov %ax,(%rdi) — writew"),
        ([0x88, 0x07], 2, 1, 2, "mov %al,(%rdi) — writeb"),
        ([0x41, 0x88, 0x38], 2, 1, 3, "mov %dil,(%r8) — REX byte register"),
        ([0xc7, 0x07, 0x78, 0x56, 0x34, 0x12], 2, 4, 6, "movl $0x12345678,(%rdi)"),
        ([0x48, 0xc7, 0x07, 0xff, 0xff, 0xff, 0xff], 2, 8, 7, "movq $-1,(%rdi) — imm32 sign-extended"),
        ([0x66, 0xc7, 0x07, 0x34, 0x12], 2, 2, 5, "movw $0x1234,(%rdi)"),
        ([0xc6, 0x47, 0x04, 0x01], 2, 1, 4, "movb $1,0x4(%rdi)"),
        ([0x83, 0x3f, 0x00], 1, 4, 3, "cmpl $0,(%rdi) — a folded `while (readl(p) != 0)`"),
        ([0x83, 0x7f, 0x20, 0x00], 1, 4, 4, "cmpl $0,0x20(%rdi)"),
        ([0x48, 0x81, 0x3f, 0x00, 0x01, 0x00, 0x00], 1, 8, 7, "cmpq $0x100,(%rdi)"),
        ([0x80, 0x3f, 0x33], 1, 1, 3, "cmpb $0x33,(%rdi)"),
        ([0x3b, 0x07], 1, 4, 2, "cmp (%rdi),%eax"),
        ([0x39, 0x07], 1, 4, 2, "cmp %eax,(%rdi)"),
        ([0xf6, 0x07, 0x01], 1, 1, 3, "testb $1,(%rdi)"),
        ([0xf7, 0x07, 0x00, 0x00, 0x00, 0x80], 1, 4, 6, "testl $0x80000000,(%rdi)"),
        ([0x85, 0x07], 1, 4, 2, "test %eax,(%rdi)"),
        ([0x8b, 0xc0], 0, 0, 0, "mov %eax,%eax — no memory operand"),
        ([0x0f, 0x0b], 0, 0, 0, "ud2"),
        ([0xff, 0x07], 0, 0, 0, "incl (%rdi) — a read-modify-write the trap does not emulate"),
        ([0x83, 0x07, 0x01], 0, 0, 0, "addl $1,(%rdi) — likewise"),
        ([0x66, 0x0f, 0x38, 0xf8, 0x02], 0, 0, 0, "movdir64b — DSA's 64-byte portal write, not emulated"),
    ]

    @Test("decodes the instruction forms of MMIO accesses", arguments: forms)
    func decode(_ form: (bytes: [UInt8], kind: Int32, width: Int32, length: Int32, what: String)) {
        let padded = form.bytes + [UInt8](repeating: 0x90, count: 16 - form.bytes.count)
        var width: Int32 = 0
        var length: Int32 = 0
        let kind = padded.withUnsafeBufferPointer { vfiokit_trap_decode($0.baseAddress, &width, &length) }
        #expect(kind == form.kind, "\(form.what)")
        if form.kind != 0 {
            #expect(width == form.width, "\(form.what)")
            #expect(length == form.length, "\(form.what)")
        }
    }

    @Test("a copy to or from memory that faults comes back as EFAULT, not a signal")
    func recoveringCopy() throws {
        var local = [UInt8](repeating: 7, count: 64)
        let unmapped = UnsafeRawPointer(bitPattern: 0x1000)
        #expect(local.withUnsafeMutableBytes { vfiokit_user_copy($0.baseAddress, unmapped, 64) } == -14)
        var source = [UInt8](repeating: 9, count: 64)
        #expect(local.withUnsafeMutableBytes { to in source.withUnsafeMutableBytes { vfiokit_user_copy(to.baseAddress, $0.baseAddress, 64) } } == 0)
        #expect(local == source)
        #expect(vfiokit_user_touch(0x1000, 4096, 0) == -14)
        source.withUnsafeMutableBytes { #expect(vfiokit_user_touch(UInt(bitPattern: $0.baseAddress), 64, 1) == 0) }
        #expect(source.allSatisfy { $0 == 9 }, "a write probe changes nothing")
    }
}
