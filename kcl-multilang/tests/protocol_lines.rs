//! Line framing: `\n`, `\r\n`, `\r`, blank and undecodable lines, limits;
//! and neither the framing nor the parsers panic on any input.

use kcl_multilang::protocol::{Line, LineReader, parse_child_line, parse_daemon_line};
use proptest::prelude::*;

async fn lines(input: &[u8], max: usize, chunk: usize) -> Vec<Line> {
    // A reader that hands out `chunk` bytes at a time, so terminators
    // split across reads are exercised.
    let reader = tokio::io::BufReader::with_capacity(chunk.max(1), input);
    let mut reader = LineReader::new(reader, max);
    let mut out = Vec::new();
    while let Some(line) = reader.next_line().await.unwrap() {
        out.push(line);
    }
    out
}

fn text(s: &str) -> Line {
    Line::Text(s.to_string())
}

#[tokio::test]
async fn every_terminator_and_blank_line() {
    let input = b"\na\nb\r\nc\rd\r\r\n\n  \ne\xff\xfe\nlast";
    for chunk in [1, 2, 3, 64] {
        assert_eq!(
            lines(input, 1024, chunk).await,
            vec![
                text("a"),
                text("b"),
                text("c"),
                text("d"),
                Line::Skipped("line is not UTF-8"),
                text("last"),
            ],
            "chunk {chunk}"
        );
    }
}

#[tokio::test]
async fn long_lines_are_skipped_whole() {
    let mut input = vec![b'x'; 100];
    input.extend_from_slice(b"\nok\n");
    input.extend(vec![b'y'; 100]);
    for chunk in [1, 7, 1000] {
        assert_eq!(
            lines(&input, 10, chunk).await,
            vec![
                Line::Skipped("line longer than the limit"),
                text("ok"),
                Line::Skipped("line longer than the limit"),
            ]
        );
    }
}

proptest! {
    #[test]
    fn parsers_never_panic(line in ".{0,200}") {
        let _ = parse_child_line(&line);
        let _ = parse_daemon_line(&line);
    }

    #[test]
    fn json_shaped_input_never_panics(
        action in prop_oneof![Just("status".to_string()), Just("checkpoint".to_string()), Just("processRecords".to_string()), Just("initialize".to_string()), Just("shutdown".to_string()), ".{0,8}"],
        key in prop_oneof![Just("responseFor".to_string()), Just("sequenceNumber".to_string()), Just("subSequenceNumber".to_string()), Just("records".to_string()), Just("data".to_string()), Just("reason".to_string()), ".{0,8}"],
        value in prop_oneof![Just("null".to_string()), Just("[{\"data\":\"@@\"}]".to_string()), Just("[{}]".to_string()), any::<i64>().prop_map(|n| n.to_string()), any::<f64>().prop_map(|n| n.to_string()), ".{0,12}".prop_map(|s| format!("{s:?}")), Just("{}".to_string())],
    ) {
        let line = format!("{{\"action\":{action:?},{key:?}:{value}}}");
        let _ = parse_child_line(&line);
        let _ = parse_daemon_line(&line);
    }

    #[test]
    fn framing_never_panics(input in proptest::collection::vec(any::<u8>(), 0..300), max in 0usize..40, chunk in 1usize..16) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got = rt.block_on(lines(&input, max, chunk));
        for line in got {
            if let Line::Text(t) = line {
                prop_assert!(t.len() <= max);
                prop_assert!(!t.contains('\n') && !t.contains('\r'));
            }
        }
    }
}
