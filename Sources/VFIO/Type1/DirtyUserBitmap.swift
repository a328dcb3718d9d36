/// One mapping's dirty bits as `update_user_bitmap` (`drivers/vfio/vfio_iommu_type1.c`) writes them
/// into the user's bitmap (T1-82..84): only the words the mapping's bits fall in, starting at the
/// word of its first bit (`copy_offset`); words outside every mapping are never written, so they
/// keep whatever the user had there. When the mapping's first bit is not on a word boundary
/// (`shift != 0`) the kernel first reads the user's word there and ORs all of it into the first
/// word it writes, so the bits before the mapping — a previous mapping's, or the user's own —
/// survive; the bits after the mapping's last bit in its last word are written as zero.
package struct MappingDirtyWords: Sendable, Equatable {
    /// The word of the user's bitmap the first of `words` goes to (`copy_offset`).
    package let offset: Int
    /// The mapping's words.
    package let words: [UInt64]
    /// `shift != 0`: the user's word at `offset` is OR'd into the first word.
    package let mergesFirstWord: Bool

    /// The words as the kernel copies them out, given the user's word at `offset`.
    package func merged(withUserWord userWord: UInt64) -> [UInt64] {
        guard mergesFirstWord, !words.isEmpty else { return words }
        var merged = words
        merged[0] |= userWord
        return merged
    }
}

/// Copies one mapping's words to the user (`update_user_bitmap`); a fault stops the walk.
package typealias DirtyWordsCopy = (MappingDirtyWords) throws(VFIOError) -> Void

extension Type1IOMMU {
    /// The words `update_user_bitmap` writes for `mapping` in a bitmap whose bit 0 is
    /// `rangeStart` and that holds `bitmapWords` words: every page dirty (T1-83), shifted to bit
    /// `(mapping.iova - rangeStart) / pageSize`, clipped to the bitmap.
    static func dirtyWords(of mapping: DMAMapping, rangeStart: UInt64, pageSize: UInt64, bitmapWords: Int) -> MappingDirtyWords {
        let shift = UInt64(pageSize.trailingZeroBitCount)
        let firstBit = (max(mapping.iova, rangeStart) - rangeStart) >> shift
        let end = min(firstBit + (mapping.size >> shift), UInt64(bitmapWords) * 64)
        guard firstBit < end else { return MappingDirtyWords(offset: 0, words: [], mergesFirstWord: false) }
        let offset = Int(firstBit / 64)
        var words = [UInt64](repeating: .max, count: Int((end + 63) / 64) - offset)
        words[0] &= .max << (firstBit % 64)
        if end % 64 != 0 { words[words.count - 1] &= (1 << (end % 64)) - 1 }
        return MappingDirtyWords(offset: offset, words: words, mergesFirstWord: firstBit % 64 != 0)
    }
}
