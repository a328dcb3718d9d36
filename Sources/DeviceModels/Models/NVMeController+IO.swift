extension NVMeController {
    /// Flush (NVMe 1.4 §6.8) of namespace 1 or, as VWC's bits 2:1 say, of every namespace
    /// (NSID FFFFFFFFh). Writes reach the media before they complete, so there is nothing left
    /// to write back: the volatile write cache is write-through.
    func flush(_ command: Command) -> Status {
        command.namespace == 1 || command.namespace == 0xffff_ffff ? .success : .invalidNamespace
    }

    /// Read (§6.9) and Write (§6.15): CDW10–11 SLBA, CDW12 NLB (15:0, blocks − 1); FUA, LR and
    /// PRINFO are ignored (no cache to bypass, no protection information). Checked as QEMU's
    /// `nvme_rw`: namespace, MDTS (Invalid Field), then the LBA range. A Write stages all its
    /// data before any reaches the media.
    func readWrite(_ state: inout State, _ command: Command) -> Status {
        guard command.namespace == 1 else { return .invalidNamespace }
        let first = command.startingLBA
        let blocks = UInt64(command.dword(12) & 0xffff) + 1
        let length = Int(blocks) * Self.blockSize
        guard length <= Self.maxTransfer else { return .invalidField }
        guard let extent = extent(first, blocks) else { return .lbaOutOfRange }
        let status: Status
        if command.opcode == 0x02 {
            status = transfer(&state, command, extent, toHost: true)
            if status.isSuccess { (state.health.readCommands, state.health.blocksRead) = (state.health.readCommands + 1, state.health.blocksRead + blocks) }
        } else {
            let staged = UnsafeMutableRawBufferPointer(rebasing: staging[0..<length])
            status = transfer(&state, command, staged, toHost: false)
            if status.isSuccess {
                extent.copyMemory(from: UnsafeRawBufferPointer(staged))
                (state.health.writeCommands, state.health.blocksWritten) = (state.health.writeCommands + 1, state.health.blocksWritten + blocks)
            }
        }
        return status
    }

    /// Write Zeroes (§6.17): CDW10–11 SLBA, CDW12 NLB (15:0) and DEAC (25). No data moves, so
    /// MDTS does not limit it; the blocks read as zeros after, deallocated or not (DLFEAT).
    func writeZeroes(_ state: inout State, _ command: Command) -> Status {
        guard command.namespace == 1 else { return .invalidNamespace }
        guard let extent = extent(command.startingLBA, UInt64(command.dword(12) & 0xffff) + 1) else { return .lbaOutOfRange }
        extent.initializeMemory(as: UInt8.self, repeating: 0)
        return .success
    }

    /// Dataset Management (§6.7): CDW10 NR (7:0, ranges − 1), CDW11 IDR (0), IDW (1), AD (2); the
    /// ranges — context attributes, length in blocks, starting LBA: 16 bytes each — at
    /// PRP1/PRP2. With AD every range is deallocated (reads as zeros, DLFEAT), once all of them
    /// were found inside the namespace (else LBA Out of Range, nothing deallocated); without it
    /// the command is a hint, and succeeds.
    func datasetManagement(_ state: inout State, _ command: Command) -> Status {
        guard command.namespace == 1 else { return .invalidNamespace }
        let count = Int(command.dword(10) & 0xff) + 1
        let ranges = UnsafeMutableRawBufferPointer(rebasing: staging[0..<count * 16])
        let status = transfer(&state, command, ranges, toHost: false)
        guard status.isSuccess, command.dword(11) & 1 << 2 != 0 else { return status }
        var extents: [UnsafeMutableRawBufferPointer] = []
        for range in 0..<count {
            let blocks = UInt64(UInt32(littleEndian: ranges.load(fromByteOffset: 16 * range + 4, as: UInt32.self)))
            let first = UInt64(littleEndian: ranges.load(fromByteOffset: 16 * range + 8, as: UInt64.self))
            guard blocks > 0 else { continue }
            guard let extent = extent(first, blocks) else { return .lbaOutOfRange }
            extents.append(extent)
        }
        for extent in extents { extent.initializeMemory(as: UInt8.self, repeating: 0) }
        return .success
    }

    /// The media of `blocks` blocks from `first`; nil when they run past the namespace.
    private func extent(_ first: UInt64, _ blocks: UInt64) -> UnsafeMutableRawBufferPointer? {
        guard first < Self.namespaceBlocks, blocks <= Self.namespaceBlocks - first else { return nil }
        let start = Int(first) * Self.blockSize
        return UnsafeMutableRawBufferPointer(rebasing: media[start..<start + Int(blocks) * Self.blockSize])
    }

    /// Moves `buffer` to (`toHost`) or from the host memory the command's PRPs describe. A fault
    /// is a Data Transfer Error; what moved before it stays moved.
    func transfer(_ state: inout State, _ command: Command, _ buffer: UnsafeMutableRawBufferPointer, toHost: Bool) -> Status {
        let status = collectPages(&state, command, length: buffer.count)
        guard status == .success else { return status }
        var done = 0
        do throws(DMAFault) {
            for page in state.pages {
                let count = min(buffer.count - done, Self.pageSize - Int(page & Self.pageMask))
                let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + count])
                if toHost {
                    try state.port!.write(to: page, from: UnsafeRawBufferPointer(chunk))
                } else {
                    try state.port!.read(from: page, into: chunk)
                }
                done += count
            }
        } catch {
            return .dataTransferError
        }
        return .success
    }

    /// The PRP entries of a `length`-byte transfer (§4.3) into `state.pages`: PRP1, dword
    /// aligned, covers up to the end of its page; one more page is PRP2 itself, more than that a
    /// PRP list at PRP2 (qword aligned) whose entries are pages, the last entry of each list page
    /// pointing to the next list page when more entries are needed. Every page but the first is
    /// page aligned, or PRP Offset Invalid.
    private func collectPages(_ state: inout State, _ command: Command, length: Int) -> Status {
        state.pages.removeAll(keepingCapacity: true)
        guard command.prp1 & 3 == 0 else { return .prpOffsetInvalid }
        state.pages.append(command.prp1)
        var remaining = length - min(length, Self.pageSize - Int(command.prp1 & Self.pageMask))
        guard remaining > Self.pageSize else {
            guard remaining > 0 else { return .success }
            guard command.prp2 & Self.pageMask == 0 else { return .prpOffsetInvalid }
            state.pages.append(command.prp2)
            return .success
        }
        var entry = command.prp2
        guard entry & 7 == 0 else { return .prpOffsetInvalid }
        do throws(DMAFault) {
            while remaining > 0 {
                let value = try state.port!.load(UInt64.self, from: entry)
                guard value & Self.pageMask == 0 else { return .prpOffsetInvalid }
                if entry & Self.pageMask == Self.pageMask - 7, remaining > Self.pageSize {
                    entry = value
                    continue
                }
                state.pages.append(value)
                remaining -= min(remaining, Self.pageSize)
                entry &+= 8
            }
        } catch {
            return .dataTransferError
        }
        return .success
    }
}
