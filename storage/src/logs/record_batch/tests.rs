use super::*;
use crate::logs::test_records::{fixture, fixture_with_request_ids};

const VERSIONS: [BatchVersion; 3] = [BatchVersion::V1, BatchVersion::V2, BatchVersion::V3];

/// What the index keeps as `record`'s document's `timestamp` (version 3 reads its time there).
fn indexed(record: &LogRecord) -> Option<u64> {
    Some(record.effective_time_unix_nano())
}

fn encoded(version: BatchVersion, records: &[LogRecord]) -> Vec<u8> {
    let refs: Vec<&LogRecord> = records.iter().collect();
    let mut out = vec![0xee];
    encode(version, &refs, &mut out).unwrap();
    out
}

fn read_back(version: BatchVersion, records: &[LogRecord]) -> Vec<LogRecord> {
    let batch = RecordBatch::parse(encoded(version, records), version).unwrap();
    assert_eq!(batch.len(), records.len());
    (0..batch.len())
        .map(|i| batch.record(i, indexed(&records[i])).unwrap())
        .collect()
}

#[test]
fn records_read_back_exactly_one_by_one() {
    let mut records = fixture_with_request_ids();
    records.extend(fixture());
    // Times out of order, at the extremes, observed before the event.
    records[1].time_unix_nano = u64::MAX;
    records[1].observed_time_unix_nano = 0;
    records[2].time_unix_nano = 0;
    records[3].observed_time_unix_nano = records[3].time_unix_nano - 7;
    records[4].trace_id = None;
    records[5].span_id = None;
    records[6].correlation_id = Some("held apart".into());
    records[7].event_name = "order.placed".into();
    records[7].body = AttributeValue::Map(vec![Attribute::string("k", "v")]);
    // Text bodies the text columns refuse, or that are mostly ids and numbers.
    records[8].body = AttributeValue::String("nul \0 inside".into());
    records[9].body = AttributeValue::String(String::new());
    records[10].body =
        AttributeValue::String("order=3fa2b1c4 took=0087ms 18446744073709551615".into());
    records[11].body = AttributeValue::Bytes(vec![0, 1, 2]);
    for version in VERSIONS {
        assert_eq!(read_back(version, &records), records, "{version:?}");
        // Any one record reads alone.
        let batch = RecordBatch::parse(encoded(version, &records), version).unwrap();
        assert_eq!(batch.record(7, indexed(&records[7])).unwrap(), records[7]);
        assert_eq!(
            batch.record(10, indexed(&records[10])).unwrap(),
            records[10]
        );
        assert!(batch.record(records.len(), Some(1)).is_err());
    }
}

#[test]
fn version_3_reads_event_times_from_the_index_and_keeps_records_without_one() {
    let mut records = fixture_with_request_ids();
    records[2].time_unix_nano = 0;
    records[4].time_unix_nano = 0;
    records[4].observed_time_unix_nano = 0;
    let bytes = encoded(BatchVersion::V3, &records);
    let batch = RecordBatch::parse(bytes.clone(), BatchVersion::V3).unwrap();
    // Each record's time is what the index says; one without an event time keeps 0, and
    // its observed time (which the index held) comes back whole.
    let mut later = records[1].clone();
    later.time_unix_nano += 5;
    later.observed_time_unix_nano += 5;
    assert_eq!(batch.record(1, indexed(&later)).unwrap(), later);
    assert_eq!(batch.record(2, indexed(&records[2])).unwrap(), records[2]);
    assert_eq!(batch.record(4, None).unwrap(), records[4]);
    assert!(batch.record(1, None).is_err());
    // What the index says must agree with the head: an event time is never 0, and a record
    // without one is indexed at its observed time.
    assert!(batch.record(1, Some(0)).is_err());
    assert!(batch.record(2, Some(12_345)).is_err());
    // A head whose list of records without an event time is out of order or range is
    // damage.
    for unset in [vec![4, 2], vec![2, 2], vec![records.len() as u32]] {
        let damaged = v2::with_unset(&bytes, unset.clone());
        let error = RecordBatch::parse(damaged, BatchVersion::V3).unwrap_err();
        assert!(
            matches!(error, LogIndexError::CorruptRecord { .. }),
            "{unset:?}"
        );
    }
    let same = v2::with_unset(&bytes, vec![2, 4]);
    assert!(RecordBatch::parse(same, BatchVersion::V3).is_ok());
    // Version 2 keeps times in the batch: what the index says is not asked.
    let kept = RecordBatch::parse(encoded(BatchVersion::V2, &records), BatchVersion::V2).unwrap();
    assert_eq!(kept.record(1, Some(7)).unwrap(), records[1]);
    // Version 3 is version 2 less the time deltas.
    let two = encoded(BatchVersion::V2, &records);
    assert!(bytes.len() < two.len(), "{} {}", bytes.len(), two.len());
}

#[test]
fn resources_and_scopes_are_kept_once_per_batch() {
    let records = fixture_with_request_ids();
    let distinct = {
        let mut groups: Vec<(&Resource, &InstrumentationScope)> = Vec::new();
        for record in &records {
            let group = (&*record.resource, &*record.scope);
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        groups.len()
    };
    assert!(distinct < records.len());
    // Equal by value though not shared: still one group.
    let mut copies = records.clone();
    for record in &mut copies {
        record.resource = Arc::new((*record.resource).clone());
    }
    for version in VERSIONS {
        let batch = RecordBatch::parse(encoded(version, &records), version).unwrap();
        assert_eq!(batch.groups.len(), distinct);
        let batch = RecordBatch::parse(encoded(version, &copies), version).unwrap();
        assert_eq!(batch.groups.len(), distinct);
        assert_eq!(read_back(version, &copies), records);
    }
}

#[test]
fn an_empty_batch_reads_back_empty() {
    for version in VERSIONS {
        assert!(read_back(version, &[]).is_empty());
    }
}

#[test]
fn damaged_batches_are_reported_not_misread() {
    for version in VERSIONS {
        let bytes = encoded(version, &fixture());
        let mut wrong_byte = bytes.clone();
        wrong_byte[0] = 2;
        let mut extra = bytes.clone();
        extra.push(0);
        let other_version = match version {
            BatchVersion::V1 => encoded(BatchVersion::V2, &fixture()),
            BatchVersion::V2 => encoded(BatchVersion::V1, &fixture()),
            BatchVersion::V3 => encoded(BatchVersion::V2, &fixture()),
        };
        let mut damaged = vec![
            bytes[..bytes.len() - 1].to_vec(),
            bytes[..3].to_vec(),
            Vec::new(),
            wrong_byte,
            extra,
            other_version,
        ];
        if version != BatchVersion::V1 {
            // Any one byte changed: the sections' lengths, packings, checksums and the
            // columns' own checks find it, or it is a byte of an id, a hex id or a
            // stored section's value, which reads back changed, never a panic.
            for at in 1..bytes.len() {
                let mut flipped = bytes.clone();
                flipped[at] ^= 0x5a;
                if let Ok(batch) = RecordBatch::parse(flipped, version) {
                    for row in 0..batch.len() {
                        let _ = batch.record(row, Some(1));
                    }
                }
            }
            damaged.push(bytes[..bytes.len() / 2].to_vec());
        }
        for damaged in damaged {
            let error = RecordBatch::parse(damaged, version).unwrap_err();
            assert!(
                matches!(error, LogIndexError::CorruptRecord { .. }),
                "{error}"
            );
        }
    }
}

#[test]
fn the_encoding_is_pinned() {
    // If this fails, the batch format changed: batches already on disk would no longer
    // read. Add a new format byte and keep decoding the old one instead.
    let records = fixture_with_request_ids()[..2].to_vec();
    let bytes = encoded(BatchVersion::V1, &records);
    assert_eq!(hex::encode(&bytes), PINNED_BATCH);
    let pinned = hex::decode(PINNED_BATCH).unwrap();
    assert_eq!(read_back_bytes(pinned, BatchVersion::V1, &records), records);
    // Version 2 is pinned by its sections decompressed: zstd may compress the same bytes
    // differently from one release to the next.
    let bytes = encoded(BatchVersion::V2, &records);
    let pinned = hex::decode(PINNED_BATCH_V2).unwrap();
    assert_eq!(bytes[0], pinned[0]);
    assert_eq!(v2::plain_sections(&bytes), v2::plain_sections(&pinned));
    assert_eq!(read_back_bytes(pinned, BatchVersion::V2, &records), records);
    // Version 3, with a record without an event time (listed in the head).
    let mut untimed = records.clone();
    untimed[1].time_unix_nano = 0;
    let bytes = encoded(BatchVersion::V3, &untimed);
    let pinned = hex::decode(PINNED_BATCH_V3).unwrap();
    assert_eq!(bytes[0], pinned[0]);
    assert_eq!(v2::plain_sections(&bytes), v2::plain_sections(&pinned));
    assert_eq!(read_back_bytes(pinned, BatchVersion::V3, &untimed), untimed);
}

/// Reads every record of `bytes` back, with the times the index would hold for `records`.
fn read_back_bytes(bytes: Vec<u8>, version: BatchVersion, records: &[LogRecord]) -> Vec<LogRecord> {
    let batch = RecordBatch::parse(bytes, version).unwrap();
    (0..batch.len())
        .map(|i| batch.record(i, indexed(&records[i])).unwrap())
        .collect()
}

const PINNED_BATCH_V3: &str = concat!(
    "1260017328b52ffd24739d0200a244111980b9390889728e753c4956ec60840fa7657432a7aa5b933205360e",
    "047877c665288db31d30a758fd1af676a58a7d0084b76375a564114be5532277033a986721c1ae0b6203004c",
    "3f4d10a4f3b0e9044f00545f320003a5a5a5a5a5a5a5a50000000000000001a5a5a5a5a5a5a5a50000000000",
    "00000203800000000000000180000000000000026601900128b52ffd2490cd0200e4040a1204494e464f030b",
    "687474702e6d6574686f640103474554107374617475735f636f64650390030a726571756573742e69640105",
    "7265712d3100010001028ad0d489ef8588a62f3200010001020200d613a448edc4032660b608000042000575",
    "73657220066c6f67696e200a7375636365656465642004666f722006616c6963650005636172742008757064",
    "61746564200777697468200220066974656d730009000001020304050607080100030000",
);

const PINNED_BATCH_V2: &str = concat!(
    "117101800128b52ffd2480250300740502020c736572766963652e6e616d650108636865636b6f757409686f",
    "7374057765622d3100000b736b657765722e7465737403312e300000000104636172740200010280a8fecfe7",
    "8588a62f80a8d6b90702444402000003004c3f4d10a4f3b0e904a9b3c265320003a5a5a5a5a5a5a5a5000000",
    "0000000001a5a5a5a5a5a5a5a5000000000000000203800000000000000180000000000000025d01880128b5",
    "2ffd248885020054040a1204494e464f030b687474702e6d6574686f640103474554107374617475735f636f",
    "64650390030a726571756573742e696401057265712d3100010001023200010001020200dd11e449ed1c032a",
    "de80aa00004200057573657220066c6f67696e200a7375636365656465642004666f722006616c6963650005",
    "63617274200875706461746564200777697468200220066974656d7300090000010203040506070801000300",
    "00",
);

const PINNED_BATCH: &str = concat!(
    "1002020c736572766963652e6e616d650108636865636b6f757409686f73742e6e616d6501057765622d3100",
    "000b736b657765722e7465737403312e30000000010c736572766963652e6e616d6501046361727400000b73",
    "6b657765722e7465737403312e300000000200010280a8fecfe78588a62f80a8d6b907020110a5a5a5a5a5a5",
    "a5a500000000000000010110a5a5a5a5a5a5a5a5000000000000000202010880000000000000010108800000",
    "000000000202444402201b0a1204494e464f030b687474702e6d6574686f64010347455410687474702e7374",
    "617475735f636f64650390030a726571756573742e696401057265712d3100010001020a1204494e464f030b",
    "687474702e6d6574686f64010347455410687474702e7374617475735f636f64650390030a72657175657374",
    "2e696401057265712d320001000102011e75736572206c6f67696e2073756363656564656420666f7220616c",
    "696365011963617274207570646174656420776974682033206974656d73",
);
