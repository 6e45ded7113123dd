//! Line framing: `\n`, `\r\n` and `\r` all end a line; blank lines and
//! lines that are not UTF-8 are skipped; a line longer than a limit is
//! skipped whole (its bytes are not kept).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What [`LineReader::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A non-blank UTF-8 line, without its terminator.
    Text(String),
    /// A line that was skipped: not UTF-8, or longer than the limit.
    Skipped(&'static str),
}

/// Reads lines from a buffered reader: `\n`, `\r\n` and `\r` all end a
/// line; blank lines and lines that are not UTF-8 are skipped; a line
/// longer than the limit is skipped whole (its bytes are not kept).
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    max_len: usize,
    buf: Vec<u8>,
    /// The previous line ended in `\r`: a `\n` right after it belongs to it.
    after_cr: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Lines of at most `max_len` bytes are returned; longer ones skipped.
    pub fn new(inner: R, max_len: usize) -> Self {
        LineReader {
            inner,
            max_len,
            buf: Vec::new(),
            after_cr: false,
        }
    }

    /// The next non-blank line, or `None` at end of input. A last line
    /// without a terminator is returned at end of input.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        let mut too_long = false;
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                self.after_cr = false;
                if self.buf.is_empty() && !too_long {
                    return Ok(None);
                }
                match self.finish(too_long) {
                    Some(line) => return Ok(Some(line)),
                    None => return Ok(None),
                }
            }
            let mut start = 0;
            if self.after_cr {
                self.after_cr = false;
                if chunk[0] == b'\n' {
                    start = 1;
                }
            }
            let rest = &chunk[start..];
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    let cr = rest[end] == b'\r';
                    if !too_long {
                        if self.buf.len() + end > self.max_len {
                            too_long = true;
                            self.buf.clear();
                        } else {
                            self.buf.extend_from_slice(&rest[..end]);
                        }
                    }
                    self.inner.consume(start + end + 1);
                    self.after_cr = cr;
                    if let Some(line) = self.finish(too_long) {
                        return Ok(Some(line));
                    }
                    too_long = false;
                }
                None => {
                    let len = rest.len();
                    if !too_long {
                        if self.buf.len() + len > self.max_len {
                            too_long = true;
                            self.buf.clear();
                        } else {
                            self.buf.extend_from_slice(rest);
                        }
                    }
                    self.inner.consume(start + len);
                }
            }
        }
    }

    /// Turn the collected bytes into a line; `None` for a blank one.
    fn finish(&mut self, too_long: bool) -> Option<Line> {
        if too_long {
            self.buf.clear();
            return Some(Line::Skipped("line longer than the limit"));
        }
        let bytes = std::mem::take(&mut self.buf);
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return None;
        }
        match String::from_utf8(bytes) {
            Ok(s) => Some(Line::Text(s)),
            Err(_) => Some(Line::Skipped("line is not UTF-8")),
        }
    }
}
