//! Byte compatibility with the reference KPL aggregation library: the PyPI
//! package `aws-kinesis-agg`, which `scripts/servers/kpl.sh` installs and
//! names in `KCL_TEST_KPL_AGG_PYTHONPATH`.
//!
//! Both directions: records aggregated by the Python library are
//! de-aggregated here, and aggregates written by [`Aggregator`] are
//! de-aggregated by the Python library; everything is compared field by
//! field. Data crosses the process boundary as hex, one record per line.

use std::io::Write;
use std::process::{Command, Stdio};

use bytes::Bytes;
use kcl_core::SequenceNumber;
use kcl_core::kpl::{Aggregator, deaggregate_into};
use kcl_core::retrieval::Record;
use kcl_core::testkit::server_from_env;

/// Aggregates (`aggregate MAX_SIZE`) or de-aggregates (`deaggregate`) the
/// records on stdin with `aws_kinesis_agg`.
const SCRIPT: &str = r#"
import base64, sys
# aggregator first: it puts its own directory on sys.path, which the
# generated messages_pb2 needs to import config_pb2.
from aws_kinesis_agg import aggregator, deaggregator

def unhex(s):
    return None if s == '-' else bytes.fromhex(s)

def tohex(b):
    if b is None:
        return '-'
    if isinstance(b, str):
        b = b.encode('utf-8')
    return b.hex() if b else '='

def fields(line):
    return [b'' if f == '=' else unhex(f) for f in line.split()]

mode = sys.argv[1]
if mode == 'aggregate':
    agg = aggregator.RecordAggregator(int(sys.argv[2]))
    done = []
    for line in sys.stdin:
        pk, ehk, data = fields(line)
        full = agg.add_user_record(pk.decode('utf-8'), data, None if ehk is None else ehk.decode())
        if full is not None:
            done.append(full)
    last = agg.clear_and_get()
    if last is not None:
        done.append(last)
    for record in done:
        pk, ehk, data = record.get_contents()
        print(tohex(pk), tohex(ehk), tohex(data), record.get_num_user_records())
elif mode == 'deaggregate':
    records = []
    for line in sys.stdin:
        seq, pk, data = line.split()
        records.append({'SequenceNumber': seq, 'PartitionKey': unhex(pk).decode('utf-8'),
                        'ApproximateArrivalTimestamp': 0, 'Data': b'' if data == '=' else unhex(data)})
    for user in deaggregator.iter_deaggregate_records(records, data_format='Boto3'):
        k = user['kinesis']
        aggregated = k.get('aggregated', False)
        data = base64.b64decode(k['data']) if aggregated else k['data']
        print(k['sequenceNumber'], k.get('subSequenceNumber', 0), int(aggregated),
              tohex(k['partitionKey']), tohex(k.get('explicitHashKey')), tohex(data))
"#;

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "=".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(field: &str) -> Option<Vec<u8>> {
    match field {
        "-" => None,
        "=" => Some(Vec::new()),
        hex => Some(
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect(),
        ),
    }
}

fn unhex_str(field: &str) -> Option<String> {
    unhex(field).map(|b| String::from_utf8(b).unwrap())
}

fn python(pythonpath: &str, args: &[&str], input: &str) -> Vec<Vec<String>> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(args)
        .env("PYTHONPATH", pythonpath)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "python failed: {stderr}");
    // The library prints de-aggregation errors on stderr and carries on.
    assert!(stderr.trim().is_empty(), "python complained: {stderr}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.split(' ').map(String::from).collect())
        .collect()
}

/// A user record as a producer hands it over.
#[derive(Clone, Debug, PartialEq)]
struct UserRecord {
    partition_key: String,
    explicit_hash_key: Option<u128>,
    data: Vec<u8>,
}

/// Varied records: shared and unique keys, non-ASCII keys, binary and
/// empty payloads, sizes up to a few KB; explicit hash keys per `ehk`.
fn user_records(count: usize, ehk: impl Fn(usize) -> Option<u128>) -> Vec<UserRecord> {
    (0..count)
        .map(|i| {
            let partition_key = match i % 4 {
                0 => format!("user-{}", i % 7),
                1 => format!("ключ-{i}"),
                2 => format!("🦀-{}", i % 3),
                _ => format!("device/{i:05}"),
            };
            let len = (i * 131) % 3000;
            let data = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
            UserRecord {
                partition_key,
                explicit_hash_key: ehk(i),
                data,
            }
        })
        .collect()
}

fn mixed_ehk(i: usize) -> Option<u128> {
    i.is_multiple_of(3)
        .then(|| (i as u128).wrapping_mul(0x1234_5678_9abc_def0_1234_5678_9abc_def1))
}

fn all_ehk(i: usize) -> Option<u128> {
    Some(u128::MAX - i as u128 * 977)
}

fn no_ehk(_: usize) -> Option<u128> {
    None
}

fn aggregate_in_python(
    pythonpath: &str,
    records: &[UserRecord],
    max_size: usize,
) -> Vec<Vec<String>> {
    let input: String = records
        .iter()
        .map(|r| {
            let ehk = r
                .explicit_hash_key
                .map_or("-".into(), |k| hex(k.to_string().as_bytes()));
            format!(
                "{} {} {}\n",
                hex(r.partition_key.as_bytes()),
                ehk,
                hex(&r.data)
            )
        })
        .collect();
    python(pythonpath, &["aggregate", &max_size.to_string()], &input)
}

#[test]
fn we_deaggregate_what_aws_kinesis_agg_aggregates() {
    let Some(pythonpath) = server_from_env("KCL_TEST_KPL_AGG_PYTHONPATH") else {
        return;
    };
    for ehk in [no_ehk, mixed_ehk, all_ehk] {
        let records = user_records(300, ehk);
        let aggregates = aggregate_in_python(&pythonpath, &records, 20_000);
        assert!(aggregates.len() > 5, "the size limit split the records");
        let mut out = Vec::new();
        for (i, line) in aggregates.iter().enumerate() {
            let data = Bytes::from(unhex(&line[2]).unwrap());
            let sequence_number = SequenceNumber::from(500 + i as u128);
            let before = out.len();
            deaggregate_into(
                Record::new(sequence_number.clone(), unhex_str(&line[0]).unwrap(), data),
                None,
                &mut out,
            );
            let count: usize = line[3].parse().unwrap();
            assert_eq!(out.len() - before, count, "aggregate {i}");
            for (sub, record) in out[before..].iter().enumerate() {
                assert!(record.aggregated);
                assert_eq!(record.sequence_number, sequence_number);
                assert_eq!(record.sub_sequence_number, sub as u64);
            }
            // The outer keys are the first user record's.
            assert_eq!(unhex_str(&line[0]).unwrap(), &*out[before].partition_key);
            assert_eq!(unhex_str(&line[1]), out[before].explicit_hash_key);
        }
        let got: Vec<UserRecord> = out
            .into_iter()
            .map(|r| UserRecord {
                partition_key: r.partition_key.to_string(),
                explicit_hash_key: r.explicit_hash_key.map(|k| k.parse().unwrap()),
                data: r.data.to_vec(),
            })
            .collect();
        assert_eq!(got, records);
    }
}

#[test]
fn our_aggregates_are_byte_identical_to_aws_kinesis_agg() {
    let Some(pythonpath) = server_from_env("KCL_TEST_KPL_AGG_PYTHONPATH") else {
        return;
    };
    // Below every size limit, so both produce exactly one aggregate.
    for ehk in [no_ehk, mixed_ehk, all_ehk] {
        let records = user_records(80, ehk);
        let theirs = aggregate_in_python(&pythonpath, &records, 1024 * 1024);
        assert_eq!(theirs.len(), 1);
        let mut aggregator = Aggregator::new();
        for r in &records {
            assert!(
                aggregator
                    .add(r.partition_key.clone(), r.explicit_hash_key, r.data.clone())
                    .unwrap()
                    .is_none()
            );
        }
        let ours = aggregator.flush().unwrap();
        assert_eq!(hex(&ours.data), theirs[0][2], "aggregate bytes differ");
        assert_eq!(hex(ours.partition_key.as_bytes()), theirs[0][0]);
        assert_eq!(ours.explicit_hash_key, unhex_str(&theirs[0][1]));
        assert_eq!(ours.user_records.to_string(), theirs[0][3]);
    }
}

#[test]
fn aws_kinesis_agg_deaggregates_what_we_aggregate() {
    let Some(pythonpath) = server_from_env("KCL_TEST_KPL_AGG_PYTHONPATH") else {
        return;
    };
    for ehk in [no_ehk, mixed_ehk, all_ehk] {
        let records = user_records(300, ehk);
        let mut aggregator = Aggregator::with_max_bytes(20_000).unwrap();
        let mut aggregates = Vec::new();
        for r in &records {
            aggregates.extend(
                aggregator
                    .add(r.partition_key.clone(), r.explicit_hash_key, r.data.clone())
                    .unwrap(),
            );
        }
        aggregates.extend(aggregator.flush());
        assert!(aggregates.len() > 5);

        // Each aggregate, then a plain record and a corrupted aggregate:
        // both libraries must hand those two back untouched.
        let mut corrupt = aggregates[0].data.to_vec();
        corrupt[10] ^= 0x55;
        let mut lines = Vec::new();
        let mut expected = Vec::new();
        for (i, aggregate) in aggregates.iter().enumerate() {
            let seq = 1000 + i;
            lines.push(format!(
                "{seq} {} {}\n",
                hex(aggregate.partition_key.as_bytes()),
                hex(&aggregate.data)
            ));
            let mut ours = Vec::new();
            let outer = Record::new(
                SequenceNumber::from(seq as u128),
                aggregate.partition_key.clone(),
                aggregate.data.clone(),
            );
            deaggregate_into(outer, None, &mut ours);
            expected.extend(ours);
        }
        for (seq, data) in [(5000u128, b"plain payload".to_vec()), (5001, corrupt)] {
            lines.push(format!("{seq} {} {}\n", hex(b"pk"), hex(&data)));
            let outer = Record::new(SequenceNumber::from(seq), "pk", data);
            deaggregate_into(outer, None, &mut expected);
        }
        let theirs = python(&pythonpath, &["deaggregate"], &lines.concat());
        assert_eq!(theirs.len(), expected.len());
        for (line, ours) in theirs.iter().zip(&expected) {
            assert_eq!(line[0], ours.sequence_number.to_string());
            assert_eq!(line[1], ours.sub_sequence_number.to_string());
            assert_eq!(line[2] == "1", ours.aggregated);
            assert_eq!(unhex_str(&line[3]).unwrap(), &*ours.partition_key);
            assert_eq!(unhex(&line[5]).unwrap(), ours.data.to_vec());
            // aws_kinesis_agg reads a missing explicit_hash_key_index as 0,
            // so a record without one reports the table's first key when
            // the table is not empty: compare only the ones that were set.
            if ours.explicit_hash_key.is_some() {
                assert_eq!(unhex_str(&line[4]), ours.explicit_hash_key);
            }
        }
        // And what we de-aggregated is what went in.
        let user: Vec<_> = expected.iter().filter(|r| r.aggregated).collect();
        assert_eq!(user.len(), records.len());
        for (r, input) in user.iter().zip(&records) {
            assert_eq!(&*r.partition_key, input.partition_key);
            assert_eq!(
                r.explicit_hash_key,
                input.explicit_hash_key.map(|k| k.to_string())
            );
            assert_eq!(r.data, input.data);
        }
    }
}
