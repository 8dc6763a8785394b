//! Which files to merge: the compaction policy and its planner. Pure (manifest entries and a
//! clock in, merge plans out), so every rule is tested without I/O; [`super::merge`] carries
//! the plans out.
//!
//! Files are merged within one tenant, signal and hour, never across hours, so retention and
//! time-bounded reads keep working on whole files. Two rules:
//!
//! - **Size tiers while an hour fills.** Files are grouped by size tier (a factor of
//!   `merge_factor` per tier, from 1 MiB); as soon as a tier holds `merge_factor` files they
//!   become one. Each byte is rewritten once per tier (about four times from a 1 MiB flush
//!   file to a 2 GiB file), and an hour never holds more than `merge_factor` files per tier.
//! - **Settled hours end in few large files.** Once an hour ended `settle` ago, every file
//!   under half the target size is merged with the others into files of up to the target, so
//!   an hour ends as one or two files (more only when it holds more than a target's worth).
//!   Records that arrive later make small files, merged among themselves (never more than two
//!   small files stay); the largest is rewritten with them only once they reach a tenth of its
//!   size, so a trickle of late data does not rewrite the hour each time.
//!
//! A file that must be rewritten whatever its size (a span file without a trace-id filter,
//! written before filters existed) is merged like a small file.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::catalog::DataFileMeta;
use crate::layout::WINDOW_NANOS;

/// How files are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Largest file a merge writes; files of at least half this size are left alone.
    pub target_file_bytes: u64,
    /// Files of one size tier merged at once, and the size ratio between tiers.
    pub merge_factor: usize,
    /// An hour is settled (merged down to large files) this long after it ends.
    pub settle: Duration,
    /// Most files read by one merge (memory: one batch per input).
    pub max_merge_inputs: usize,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            target_file_bytes: 2 << 30,
            merge_factor: 10,
            settle: Duration::from_secs(600),
            max_merge_inputs: 32,
        }
    }
}

/// One merge to run: files of one hour that become one or more files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    /// The hour (time / 1 h) the files belong to.
    pub partition_hour: u64,
    /// Paths of the files to merge, smallest first.
    pub inputs: Vec<String>,
}

/// Size tiers start at this size.
const TIER_BASE_BYTES: u64 = 1 << 20;

fn tier(size_bytes: u64, factor: u64) -> u32 {
    let mut tier = 0;
    let mut bound = TIER_BASE_BYTES.saturating_mul(factor);
    while size_bytes >= bound && bound < u64::MAX {
        tier += 1;
        bound = bound.saturating_mul(factor);
    }
    tier
}

/// The merges one table needs now. `needs_rewrite` marks files to rewrite whatever their
/// size; `merges_format` says which formats merges take (files of others are left alone).
pub fn plan_merges(
    files: &[DataFileMeta],
    now_unix_nano: u64,
    policy: &CompactionPolicy,
    merges_format: impl Fn(&str) -> bool,
    needs_rewrite: impl Fn(&DataFileMeta) -> bool,
) -> Vec<MergePlan> {
    let factor = policy.merge_factor.max(2);
    let max_inputs = policy.max_merge_inputs.max(2);
    let large = policy.target_file_bytes / 2;
    let mut hours: BTreeMap<u64, Vec<&DataFileMeta>> = BTreeMap::new();
    for file in files.iter().filter(|file| merges_format(&file.format)) {
        hours.entry(file.partition_hour).or_default().push(file);
    }
    let mut plans = Vec::new();
    for (hour, mut hour_files) in hours {
        hour_files.sort_by_key(|file| (file.size_bytes, file.path.as_str()));
        let hour_end = hour.saturating_add(1).saturating_mul(WINDOW_NANOS);
        let settled = hour_end.saturating_add(policy.settle.as_nanos() as u64) <= now_unix_nano;
        let small: Vec<&DataFileMeta> = hour_files
            .iter()
            .copied()
            .filter(|file| file.size_bytes < large || needs_rewrite(file))
            .collect();
        let mut push = |inputs: Vec<&DataFileMeta>| {
            plans.push(MergePlan {
                partition_hour: hour,
                inputs: inputs.iter().map(|file| file.path.clone()).collect(),
            });
        };
        if settled {
            let rewrite = small.iter().any(|file| needs_rewrite(file));
            let largest = small.last().map_or(0, |file| file.size_bytes);
            let others: u64 = small.iter().rev().skip(1).map(|f| f.size_bytes).sum();
            let worth_rewriting_the_largest = small.len() >= factor
                || (small.len() >= 2 && others.saturating_mul(factor as u64) >= largest);
            if worth_rewriting_the_largest || rewrite {
                push(small.into_iter().take(max_inputs).collect());
            } else if small.len() >= 3 {
                // Late files are merged among themselves: the hour keeps at most two small
                // files without rewriting the largest for a trickle.
                let newer: Vec<&DataFileMeta> = small[..small.len() - 1].to_vec();
                push(newer.into_iter().take(max_inputs).collect());
            }
            continue;
        }
        let mut tiers: BTreeMap<u32, Vec<&DataFileMeta>> = BTreeMap::new();
        for file in small {
            tiers
                .entry(tier(file.size_bytes, factor as u64))
                .or_default()
                .push(file);
        }
        for (_, tier_files) in tiers {
            if tier_files.len() >= factor {
                push(tier_files.into_iter().take(max_inputs).collect());
            }
        }
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const HOUR: u64 = WINDOW_NANOS;

    fn file(name: &str, hour: u64, size_bytes: u64) -> DataFileMeta {
        DataFileMeta {
            size_bytes,
            min_time_unix_nano: hour * HOUR,
            max_time_unix_nano: hour * HOUR + 1,
            partition_hour: hour,
            ..crate::catalog::manifest::test_file(name)
        }
    }

    fn plan(files: &[DataFileMeta], now_hour: f64) -> Vec<MergePlan> {
        let now = (now_hour * HOUR as f64) as u64;
        plan_merges(
            files,
            now,
            &CompactionPolicy::default(),
            |format| format == "spans-v1",
            |_| false,
        )
    }

    #[test]
    fn tiers_group_sizes_by_the_merge_factor() {
        assert_eq!(tier(0, 10), 0);
        assert_eq!(tier(9 * MIB, 10), 0);
        assert_eq!(tier(10 * MIB, 10), 1);
        assert_eq!(tier(150 * MIB, 10), 2);
        assert!(
            tier(u64::MAX, 10) > tier(1 << 50, 10),
            "huge sizes end in a last tier"
        );
    }

    #[test]
    fn an_open_hour_merges_a_full_tier_only() {
        let nine: Vec<_> = (0..9).map(|n| file(&format!("f{n}"), 5, MIB)).collect();
        assert!(plan(&nine, 5.5).is_empty(), "nine files of a tier wait");
        let mut ten = nine.clone();
        ten.push(file("f9", 5, 2 * MIB));
        ten.push(file("big", 5, 50 * MIB));
        let plans = plan(&ten, 5.5);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].partition_hour, 5);
        assert_eq!(plans[0].inputs.len(), 10);
        assert!(
            !plans[0].inputs.contains(&"big".to_owned()),
            "other tiers wait"
        );
    }

    #[test]
    fn a_settled_hour_merges_every_small_file_and_leaves_large_ones() {
        let files = vec![
            file("large", 5, 1500 * MIB),
            file("a", 5, 30 * MIB),
            file("b", 5, 5 * MIB),
            file("other-hour", 6, MIB),
        ];
        assert!(
            plan(&files, 6.1).is_empty(),
            "hour 5 is not settled 6 min after its end"
        );
        let plans = plan(&files, 6.2);
        assert_eq!(
            plans,
            [MergePlan {
                partition_hour: 5,
                inputs: vec!["b".into(), "a".into()],
            }]
        );
        let one_small = vec![file("large", 5, 1500 * MIB), file("late", 5, MIB)];
        assert!(
            plan(&one_small, 9.0).is_empty(),
            "nothing to merge a lone file with"
        );
        let trickle = vec![file("merged", 5, 500 * MIB), file("late", 5, MIB)];
        assert!(
            plan(&trickle, 9.0).is_empty(),
            "one late file does not rewrite 500 MiB"
        );
        let mut many_late = trickle.clone();
        many_late.extend((0..9).map(|n| file(&format!("late{n}"), 5, MIB)));
        assert_eq!(
            plan(&many_late, 9.0)[0].inputs.len(),
            11,
            "ten late files do"
        );
    }

    #[test]
    fn files_to_rewrite_are_merged_even_alone_and_other_formats_are_left_alone() {
        let legacy = vec![file("old", 2, 4000 * MIB)];
        let plans = plan_merges(
            &legacy,
            10 * HOUR,
            &CompactionPolicy::default(),
            |format| format == "spans-v1",
            |f| f.trace_id_filter.is_none(),
        );
        assert_eq!(plans.len(), 1);
        let foreign = vec![
            DataFileMeta {
                format: "spans-v0".into(),
                ..file("x", 2, MIB)
            },
            DataFileMeta {
                format: "spans-v0".into(),
                ..file("y", 2, MIB)
            },
        ];
        assert!(plan(&foreign, 10.0).is_empty());
    }

    #[test]
    fn a_merge_reads_at_most_the_fan_in() {
        let many: Vec<_> = (0..100)
            .map(|n| file(&format!("f{n:03}"), 1, MIB))
            .collect();
        let plans = plan(&many, 10.0);
        assert_eq!(
            plans[0].inputs.len(),
            CompactionPolicy::default().max_merge_inputs
        );
    }
}
