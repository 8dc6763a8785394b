//! The trace-id filter of a span file: a split-block bloom filter (the scheme Parquet uses)
//! over the file's distinct trace ids, stored as a sidecar object of raw 32-byte blocks.
//!
//! A lookup needs one block, so asking "may this file hold trace X?" costs one 32-byte ranged
//! read: nothing is held in memory per file, and finding a trace by id stays flat as files
//! accumulate (compaction keeps the number of files per hour small). Pure: building, encoding
//! and checking; the reads live with the store.

use crate::id_hash::mix;

/// Bytes per block: eight 32-bit words, one bit set in each per id.
pub const BLOCK_BYTES: usize = 32;
/// Filter bits per distinct id: about 0.1% false positives at 16 bits.
const BITS_PER_ID: usize = 16;
/// The salts of the split-block bloom filter (Parquet's).
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

/// A filter being built or checked in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdFilter {
    blocks: Vec<[u32; 8]>,
    num_ids: u64,
}

impl IdFilter {
    /// An empty filter sized for `num_ids` distinct ids.
    pub fn with_capacity(num_ids: usize) -> Self {
        let num_blocks = (num_ids.max(1) * BITS_PER_ID).div_ceil(BLOCK_BYTES * 8);
        Self {
            blocks: vec![[0; 8]; num_blocks],
            num_ids: 0,
        }
    }

    /// Ids inserted (counting repeats, so insert each id once).
    pub fn num_ids(&self) -> u64 {
        self.num_ids
    }

    /// Number of blocks (stored in the manifest, so a lookup can find its block).
    pub fn num_blocks(&self) -> u32 {
        u32::try_from(self.blocks.len()).unwrap_or(u32::MAX)
    }

    /// Adds an id.
    pub fn insert(&mut self, id: &[u8; 16]) {
        self.num_ids += 1;
        let hash = hash_id(id);
        let index = block_index(hash, self.blocks.len());
        let block = &mut self.blocks[index];
        for (word, mask) in block.iter_mut().zip(block_mask(hash)) {
            *word |= mask;
        }
    }

    /// Whether the id may have been inserted (false: it certainly was not).
    pub fn may_contain(&self, id: &[u8; 16]) -> bool {
        let hash = hash_id(id);
        let block = &self.blocks[block_index(hash, self.blocks.len())];
        block_holds(block, hash)
    }

    /// The stored form: every block, words little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.blocks.len() * BLOCK_BYTES);
        for block in &self.blocks {
            for word in block {
                bytes.extend_from_slice(&word.to_le_bytes());
            }
        }
        bytes
    }
}

/// Where the block that decides `id` sits in the stored filter of `num_blocks` blocks.
pub fn block_range(id: &[u8; 16], num_blocks: u32) -> std::ops::Range<u64> {
    let index = block_index(hash_id(id), num_blocks.max(1) as usize) as u64;
    let start = index * BLOCK_BYTES as u64;
    start..start + BLOCK_BYTES as u64
}

/// Checks `id` against the stored block that [`block_range`] named.
pub fn stored_block_may_contain(block_bytes: &[u8], id: &[u8; 16]) -> bool {
    if block_bytes.len() != BLOCK_BYTES {
        return true; // unreadable: never rule a file out
    }
    let mut block = [0u32; 8];
    for (word, chunk) in block.iter_mut().zip(block_bytes.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    block_holds(&block, hash_id(id))
}

fn block_holds(block: &[u32; 8], hash: u64) -> bool {
    block
        .iter()
        .zip(block_mask(hash))
        .all(|(word, mask)| word & mask == mask)
}

fn block_index(hash: u64, num_blocks: usize) -> usize {
    (((hash >> 32) * num_blocks as u64) >> 32) as usize
}

fn block_mask(hash: u64) -> [u32; 8] {
    let key = hash as u32;
    SALT.map(|salt| 1u32 << (key.wrapping_mul(salt) >> 27))
}

/// A 64-bit hash of an id. Ids are not always random (64-bit Jaeger ids are zero-padded), so
/// both halves are mixed with the splitmix64 finalizer.
fn hash_id(id: &[u8; 16]) -> u64 {
    let (high, low) = id.split_at(8);
    let high = u64::from_le_bytes(high.try_into().unwrap_or([0; 8]));
    let low = u64::from_le_bytes(low.try_into().unwrap_or([0; 8]));
    mix(low ^ mix(high ^ 0x9e37_79b9_7f4a_7c15))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> [u8; 16] {
        let mut id = [0u8; 16];
        // Zero-padded sequential ids: the worst case for a weak hash.
        id[8..].copy_from_slice(&n.to_be_bytes());
        id
    }

    #[test]
    fn inserted_ids_are_found_and_false_positives_stay_near_the_target() {
        let mut filter = IdFilter::with_capacity(100_000);
        for n in 0..100_000 {
            filter.insert(&id(n));
        }
        assert!((0..100_000).all(|n| filter.may_contain(&id(n))));
        let false_positives = (1_000_000..1_200_000)
            .filter(|&n| filter.may_contain(&id(n)))
            .count();
        let rate = false_positives as f64 / 200_000.0;
        // 16 bits per id: ~0.1% expected; 0.3% would mean a broken hash or sizing.
        assert!(rate < 0.003, "false positive rate {rate}");
        assert!(rate > 0.0001, "suspiciously perfect: {rate}");
    }

    #[test]
    fn one_stored_block_answers_like_the_whole_filter() {
        let mut filter = IdFilter::with_capacity(1000);
        for n in 0..1000 {
            filter.insert(&id(n * 7));
        }
        let bytes = filter.to_bytes();
        assert_eq!(bytes.len(), filter.num_blocks() as usize * BLOCK_BYTES);
        for n in 0..5000 {
            let range = block_range(&id(n), filter.num_blocks());
            let block = &bytes[range.start as usize..range.end as usize];
            assert_eq!(
                stored_block_may_contain(block, &id(n)),
                filter.may_contain(&id(n))
            );
        }
        assert!(
            stored_block_may_contain(&[], &id(1)),
            "short reads rule nothing out"
        );
    }

    #[test]
    fn an_empty_filter_has_a_block_and_holds_nothing() {
        let filter = IdFilter::with_capacity(0);
        assert_eq!(filter.num_blocks(), 1);
        assert!(!filter.may_contain(&id(1)));
    }
}
