//! Arbitrary bytes as a Kinesis record's data: `deaggregate_into` must not
//! panic, and must either hand the record back whole or produce a run of
//! sub-records numbered 0..n-1.
#![no_main]

use kcl_core::kpl::deaggregate_into;
use kcl_core::retrieval::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let record = Record::new(7u128.into(), "pk", data.to_vec());
    let mut out = Vec::new();
    deaggregate_into(record.clone(), None, &mut out);
    if out.iter().any(|r| !r.aggregated) {
        assert_eq!(out, vec![record]);
    } else {
        for (i, sub) in out.iter().enumerate() {
            assert_eq!(sub.sub_sequence_number, i as u64);
        }
    }
});
