//! The mixing step the on-disk id hashes share: the trace-id filters of span files
//! (`table::id_filter`) and the id digests of log indexes (`logs::schema::IdDigest`). Both
//! are part of their files' formats, pinned by their own tests.

/// splitmix64's finalizer: every input bit reaches every output bit, so ids that are not
/// random (64-bit Jaeger trace ids are zero-padded) still spread.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
