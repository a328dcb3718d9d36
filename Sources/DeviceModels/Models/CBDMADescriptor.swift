/// One 64-byte DMA descriptor as the channel fetches it (`struct ioat_dma_descriptor`, `hw.h`):
/// `u32 size`, `u32 ctl`, `u64 src_addr`, `u64 dst_addr`, `u64 next`, then 32 bytes the engine
/// ignores (reserved and the driver's own). Descriptors are 64-byte aligned.
struct CBDMADescriptor {
    static let size: UInt64 = 64
    /// `IOAT_OP_COPY`, the one operation (`ctl_f.op`) the model executes.
    static let copyOperation: UInt32 = 0x00

    /// The 64 bytes as fetched: eight little-endian words.
    typealias Raw = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    let size: UInt32
    let control: UInt32
    let source: UInt64
    let destination: UInt64
    let next: UInt64

    init(_ raw: Raw) {
        let first = UInt64(littleEndian: raw.0)
        size = UInt32(truncatingIfNeeded: first)
        control = UInt32(truncatingIfNeeded: first >> 32)
        source = UInt64(littleEndian: raw.1)
        destination = UInt64(littleEndian: raw.2)
        next = UInt64(littleEndian: raw.3)
    }

    /// `ctl_f.int_en`: signal the channel's interrupt when this descriptor completes.
    var interruptOnCompletion: Bool { control & 0x01 != 0 }
    /// `ctl_f.compl_write`: write the completion (CHANSTS) to CHANCMP when it completes.
    var writesCompletion: Bool { control & 0x08 != 0 }
    /// `ctl_f.null`: moves no data (its size must still be valid).
    var isNull: Bool { control & 0x20 != 0 }
    /// `ctl_f.op`, bits 31:24.
    var operation: UInt32 { control >> 24 }
}
