//! Arbitrary bytes framed as a KPL aggregate with a correct MD5 trailer,
//! so the fuzzer explores the protobuf decoding and validation rather than
//! the checksum. The first 32 bytes, when present, pick a shard hash key
//! range for the reshard filter.
#![no_main]

use kcl_core::HashKeyRange;
use kcl_core::kpl::{MAGIC, deaggregate_into, effective_hash_key};
use kcl_core::retrieval::Record;
use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};

fuzz_target!(|input: &[u8]| {
    let (range, body) = match input.split_first_chunk::<32>() {
        Some((head, body)) if head[0] & 1 == 1 => {
            let a = u128::from_be_bytes(head[..16].try_into().unwrap());
            let b = u128::from_be_bytes(head[16..].try_into().unwrap());
            (Some(HashKeyRange::new(a.min(b), a.max(b)).unwrap()), body)
        }
        _ => (None, input),
    };
    let mut data = MAGIC.to_vec();
    data.extend_from_slice(body);
    data.extend_from_slice(&Md5::digest(body));
    let record = Record::new(7u128.into(), "pk", data);
    let mut out = Vec::new();
    deaggregate_into(record.clone(), range.as_ref(), &mut out);
    if out.iter().any(|r| !r.aggregated) {
        assert_eq!(out, vec![record]);
        return;
    }
    for (i, sub) in out.iter().enumerate() {
        assert_eq!(sub.sub_sequence_number, i as u64);
        if let Some(range) = &range {
            let ehk = sub
                .explicit_hash_key
                .as_ref()
                .map(|k| k.parse::<u128>().unwrap());
            assert!(range.contains(effective_hash_key(&sub.partition_key, ehk)));
        }
    }
});
