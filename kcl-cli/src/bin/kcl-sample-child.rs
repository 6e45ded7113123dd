//! A Rust MultiLang child on `kcl_multilang::child::run`: appends every
//! record it is given to the file `KCL_SAMPLE_OUT` (one line per record:
//! `shard sequence sub data`), checkpoints after each batch, and prints a
//! stray line to stdout first, which must not reach the daemon.
//!
//! `KCL_SAMPLE_NOOP=1` does nothing but checkpoint (the benchmark's child).

use std::io::Write;

use kcl_core::{BoxError, Checkpointer, InitializeInput, ProcessRecordsInput, ShardProcessor};

struct Sample {
    out: Option<std::fs::File>,
    shard: String,
}

impl ShardProcessor for Sample {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), BoxError> {
        self.shard = input.shard_id.to_string();
        // A stray print, as from a careless dependency: must go to stderr.
        println!("sample child starting on {}", self.shard);
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), BoxError> {
        if let Some(out) = &mut self.out {
            let mut text = String::new();
            for r in input.records() {
                text.push_str(&format!(
                    "{} {} {} {}\n",
                    self.shard,
                    r.sequence_number,
                    r.sub_sequence_number,
                    String::from_utf8_lossy(&r.data)
                ));
            }
            out.write_all(text.as_bytes())?;
        }
        checkpointer.checkpoint().await?;
        Ok(())
    }
}

fn main() -> std::io::Result<()> {
    let out = match std::env::var_os("KCL_SAMPLE_OUT") {
        Some(path) if std::env::var_os("KCL_SAMPLE_NOOP").is_none() => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        _ => None,
    };
    kcl_multilang::child::run(Sample {
        out,
        shard: String::new(),
    })
}
