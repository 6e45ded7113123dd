//! Kinesis retrieval and the engine on it, against real emulators: the
//! in-process ferrokinesis (`kcl_core::testkit::kinesis`) and kinesis-mock
//! at `KCL_TEST_KINESIS_ENDPOINT`. One binary with a module per area; the
//! scenarios both emulators run live in `support` and `fanout_support`.

mod support;

mod fanout_support;

mod fanout_ferro;
mod fanout_local;
mod ferro;
mod local;
mod multistream;
mod worker;
