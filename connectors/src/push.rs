//! The records of an HTTP push body, found as the body arrives: the lines of NDJSON or the
//! elements of a JSON array, one at a time, whatever the size of the body.
//!
//! The splitter holds at most one record's text (up to the per-record limit) and a few bytes
//! of state; a record over the limit is not kept, only its first [`RAW_KEEP_LIMIT`] bytes and
//! its size, so that it reaches the dead-letter topic with its reason while the records after
//! it go on. The framing is checked as loosely as a record's own text is checked strictly:
//! text between two separators is one record, refused by the record parser if it is not a
//! JSON object; what is wrong with the array itself (text after its end, a body that ends
//! before it) is a record of its own with the reason. Only a body that is neither an array
//! nor NDJSON from its first byte is refused whole ([`FramingError`]).

use crate::{parse_json_record, Body, ReadFailure, SourceRecord, RAW_KEEP_LIMIT};

/// How the records of a body are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One record a line (`application/x-ndjson`, `application/jsonl`).
    Ndjson,
    /// A JSON array (`application/json`).
    Array,
    /// Decided by the body's first non-blank byte: `[` a JSON array, `{` NDJSON.
    Detect,
}

/// A body that is neither a JSON array nor NDJSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body must be a JSON array of records, or NDJSON with Content-Type application/x-ndjson{found}")]
pub struct FramingError {
    found: String,
}

/// One record's text, as found in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The record's bytes: all of them, or the first [`RAW_KEEP_LIMIT`] of a record over the
    /// limit.
    pub raw: Vec<u8>,
    /// The record's size in bytes.
    pub size: usize,
    /// What is wrong with the body around this piece, when something is (the piece is then
    /// not a record's text but the body's fault, kept as a record to report it).
    pub framing_fault: Option<&'static str>,
}

impl Piece {
    /// The record this piece is, as the validator takes it: text to parse on the checking
    /// threads, a larger record parsed now (its bytes are then kept only in part), or why it
    /// is no record (over `max_record` bytes, or a fault of the body's framing).
    pub fn into_record(self, seq: u64, origin: String, max_record: usize) -> SourceRecord {
        let body = if let Some(fault) = self.framing_fault {
            Body::Unreadable(ReadFailure {
                pointer: String::new(),
                rule: "json_syntax",
                message: fault.to_owned(),
            })
        } else if self.size > max_record {
            Body::Unreadable(ReadFailure {
                pointer: String::new(),
                rule: "size_limit",
                message: format!(
                    "record is {} bytes, over the limit of {max_record}",
                    self.size
                ),
            })
        } else if self.raw.len() <= RAW_KEEP_LIMIT {
            // Parsed on the checking threads, and published as these bytes if valid.
            Body::JsonText
        } else {
            parse_json_record(&self.raw).into()
        };
        let mut raw = self.raw;
        raw.truncate(RAW_KEEP_LIMIT);
        SourceRecord {
            origin,
            seq,
            stream: None,
            body,
            raw,
        }
    }
}

/// Where the splitter is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first non-blank byte: `arrays_only` for [`Framing::Array`].
    Start {
        /// Only an array will do.
        arrays_only: bool,
    },
    /// Reading lines.
    Lines,
    /// Inside the array, before an element (just after `[` or `,`).
    BeforeElement {
        /// Right after `[`: a `]` here closes an empty array.
        first: bool,
    },
    /// Inside an element of the array.
    Element,
    /// After the array's `]`.
    AfterArray {
        /// Text after the end was already reported.
        reported: bool,
    },
}

/// Splits a body into records as its bytes arrive.
#[derive(Debug)]
pub struct Splitter {
    state: State,
    max_record: usize,
    /// The current record's bytes (at most `max_record`, or the first [`RAW_KEEP_LIMIT`] of
    /// a record over it).
    current: Vec<u8>,
    /// The current record's size so far, kept or not.
    size: usize,
    /// Inside the current element: nesting depth, inside a string, after a backslash.
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Splitter {
    /// A splitter for a body framed as `framing`, keeping records up to `max_record` bytes.
    pub fn new(framing: Framing, max_record: usize) -> Self {
        Self {
            state: match framing {
                Framing::Ndjson => State::Lines,
                Framing::Array => State::Start { arrays_only: true },
                Framing::Detect => State::Start { arrays_only: false },
            },
            max_record,
            current: Vec::new(),
            size: 0,
            depth: 0,
            in_string: false,
            escaped: false,
        }
    }

    /// Reads the next bytes of the body, appending every record they complete to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Piece>) -> Result<(), FramingError> {
        while !bytes.is_empty() {
            bytes = match self.state {
                State::Start { arrays_only } => {
                    let Some(at) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
                        return Ok(());
                    };
                    match bytes[at] {
                        b'[' => {
                            self.state = State::BeforeElement { first: true };
                            &bytes[at + 1..]
                        }
                        b'{' if !arrays_only => {
                            self.state = State::Lines;
                            &bytes[at..]
                        }
                        other => {
                            return Err(FramingError {
                                found: format!("; it starts with {:?}", char::from(other)),
                            })
                        }
                    }
                }
                State::Lines => self.lines(bytes, out),
                State::BeforeElement { first } => {
                    let Some(at) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
                        return Ok(());
                    };
                    match bytes[at] {
                        b']' if first => {
                            self.state = State::AfterArray { reported: false };
                            &bytes[at + 1..]
                        }
                        b',' | b']' => {
                            // An element left out: `[,` `[1,,2]` `[1,]`.
                            out.push(fault("an element of the array is missing"));
                            self.state = if bytes[at] == b']' {
                                State::AfterArray { reported: false }
                            } else {
                                State::BeforeElement { first: false }
                            };
                            &bytes[at + 1..]
                        }
                        _ => {
                            self.state = State::Element;
                            &bytes[at..]
                        }
                    }
                }
                State::Element => self.element(bytes, out),
                State::AfterArray { reported } => {
                    if !reported && bytes.iter().any(|b| !b.is_ascii_whitespace()) {
                        out.push(fault("there is text after the end of the array"));
                        self.state = State::AfterArray { reported: true };
                    }
                    &[]
                }
            };
        }
        Ok(())
    }

    /// The body ended: appends the record it left unfinished, if any, and what is wrong with
    /// the body's end.
    pub fn finish(mut self, out: &mut Vec<Piece>) -> Result<(), FramingError> {
        match self.state {
            State::Start { .. } => {
                return Err(FramingError {
                    found: "; it is empty".to_owned(),
                })
            }
            State::Lines => {
                if self.size > 0 {
                    self.end_line(out);
                }
            }
            State::Element => {
                self.end_record(out);
                out.push(fault("the body ended before the array's closing `]`"));
            }
            State::BeforeElement { .. } => {
                out.push(fault("the body ended before the array's closing `]`"));
            }
            State::AfterArray { .. } => {}
        }
        Ok(())
    }

    /// Takes bytes of NDJSON up to the end of the chunk.
    fn lines<'b>(&mut self, mut bytes: &'b [u8], out: &mut Vec<Piece>) -> &'b [u8] {
        while let Some(at) = memchr::memchr(b'\n', bytes) {
            self.keep(&bytes[..at]);
            self.end_line(out);
            bytes = &bytes[at + 1..];
        }
        self.keep(bytes);
        &[]
    }

    /// A line ended: a record, unless it is blank.
    fn end_line(&mut self, out: &mut Vec<Piece>) {
        if self.current.last() == Some(&b'\r') && self.size <= self.max_record {
            self.current.pop();
            self.size -= 1;
        }
        if self.size <= self.max_record && self.current.iter().all(u8::is_ascii_whitespace) {
            self.current.clear();
            self.size = 0;
            return;
        }
        self.end_record(out);
    }

    /// Takes bytes of an array element, up to its end or the end of the chunk.
    fn element<'b>(&mut self, bytes: &'b [u8], out: &mut Vec<Piece>) -> &'b [u8] {
        for (i, &b) in bytes.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b',' | b']' if self.depth == 0 => {
                    self.keep(&bytes[..i]);
                    self.end_record(out);
                    self.state = if b == b']' {
                        State::AfterArray { reported: false }
                    } else {
                        State::BeforeElement { first: false }
                    };
                    return &bytes[i + 1..];
                }
                // Unbalanced closers are the element's own fault, found when it is parsed.
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        self.keep(bytes);
        &[]
    }

    /// Keeps bytes of the current record: all of them up to the limit, then only the first
    /// [`RAW_KEEP_LIMIT`] and the count.
    fn keep(&mut self, bytes: &[u8]) {
        let before = self.size;
        self.size += bytes.len();
        if self.size <= self.max_record {
            self.current.extend_from_slice(bytes);
        } else if before <= self.max_record {
            // Just went over: keep only the head.
            self.current.truncate(RAW_KEEP_LIMIT);
            let room = RAW_KEEP_LIMIT.saturating_sub(self.current.len());
            self.current
                .extend_from_slice(&bytes[..room.min(bytes.len())]);
        }
    }

    /// The current record is complete.
    fn end_record(&mut self, out: &mut Vec<Piece>) {
        let mut raw = std::mem::take(&mut self.current);
        let mut size = self.size;
        if size <= self.max_record {
            // Blanks around an element are not the record's.
            let end = raw.trim_ascii_end().len();
            raw.truncate(end);
            let lead = raw.len() - raw.trim_ascii_start().len();
            raw.drain(..lead);
            size = raw.len();
        }
        out.push(Piece {
            raw,
            size,
            framing_fault: None,
        });
        self.size = 0;
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
    }
}

fn fault(what: &'static str) -> Piece {
    Piece {
        raw: Vec::new(),
        size: 0,
        framing_fault: Some(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces of `body` fed in chunks of `step` bytes.
    fn split(framing: Framing, body: &[u8], step: usize, max: usize) -> Vec<Piece> {
        let mut splitter = Splitter::new(framing, max);
        let mut out = Vec::new();
        for chunk in body.chunks(step) {
            splitter.feed(chunk, &mut out).unwrap();
        }
        splitter.finish(&mut out).unwrap();
        out
    }

    fn texts(pieces: &[Piece]) -> Vec<String> {
        pieces
            .iter()
            .map(|p| match p.framing_fault {
                Some(f) => format!("!{f}"),
                None => String::from_utf8_lossy(&p.raw).into_owned(),
            })
            .collect()
    }

    #[test]
    fn array_elements_are_found_whatever_the_chunks() {
        let body = br#" [ {"a": "x,]}\"{["}, {"b": [1, {"c": 2}]} ,42,"s"] "#;
        for step in [1, 2, 3, 7, body.len()] {
            let pieces = split(Framing::Detect, body, step, 1024);
            assert_eq!(
                texts(&pieces),
                [
                    r#"{"a": "x,]}\"{["}"#,
                    r#"{"b": [1, {"c": 2}]}"#,
                    "42",
                    r#""s""#
                ],
                "step {step}"
            );
        }
        assert!(split(Framing::Detect, b"[]", 1, 10).is_empty());
        assert!(split(Framing::Detect, b" [ \n ] \n", 1, 10).is_empty());
    }

    #[test]
    fn ndjson_lines_are_found_and_blank_lines_skipped() {
        let body = b"{\"a\":1}\r\n\n  \n{\"b\":\n2}\n{\"c\":3}";
        for step in [1, 4, body.len()] {
            let pieces = split(Framing::Ndjson, body, step, 1024);
            assert_eq!(texts(&pieces), ["{\"a\":1}", "{\"b\":", "2}", "{\"c\":3}"]);
            assert_eq!(split(Framing::Detect, body, step, 1024), pieces);
        }
        assert!(split(Framing::Ndjson, b"", 1, 10).is_empty());
    }

    #[test]
    fn a_record_over_the_limit_keeps_its_head_and_size_and_the_next_goes_on() {
        let big = format!("{{\"x\": \"{}\"}}", "y".repeat(3 * RAW_KEEP_LIMIT));
        let body = format!("[{big}, {{\"a\": 1}}]");
        let max = 2 * RAW_KEEP_LIMIT;
        for step in [1000, 65_536, body.len()] {
            let pieces = split(Framing::Detect, body.as_bytes(), step, max);
            assert_eq!(pieces.len(), 2);
            assert_eq!(pieces[0].size, big.len());
            assert_eq!(pieces[0].raw, big.as_bytes()[..RAW_KEEP_LIMIT]);
            assert_eq!(pieces[1].raw, b"{\"a\": 1}");
            let record = pieces[0].clone().into_record(0, "r 0".to_owned(), max);
            match record.body {
                Body::Unreadable(f) => {
                    assert_eq!(f.rule, "size_limit");
                    assert!(f.message.contains(&big.len().to_string()), "{}", f.message);
                }
                other => panic!("{other:?}"),
            }
            let ndjson = format!("{big}\n{{\"a\": 1}}\n");
            let lines = split(Framing::Ndjson, ndjson.as_bytes(), step, max);
            assert_eq!(lines, pieces);
        }
    }

    #[test]
    fn what_is_wrong_with_the_array_is_a_record_of_its_own() {
        let cases: [(&[u8], &[&str]); 5] = [
            (
                b"[1,,2]",
                &["1", "!an element of the array is missing", "2"],
            ),
            (b"[1,]", &["1", "!an element of the array is missing"]),
            (
                b"[1] [2]",
                &["1", "!there is text after the end of the array"],
            ),
            (
                b"[{\"a\": 1}",
                &[
                    "{\"a\": 1}",
                    "!the body ended before the array's closing `]`",
                ],
            ),
            (b"[", &["!the body ended before the array's closing `]`"]),
        ];
        for (body, want) in cases {
            assert_eq!(texts(&split(Framing::Detect, body, 1, 100)), want);
        }
    }

    #[test]
    fn a_json_body_must_be_an_array() {
        let mut out = Vec::new();
        let e = Splitter::new(Framing::Array, 10)
            .feed(b"{\"a\": 1}", &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("'{'"), "{e}");
        assert_eq!(texts(&split(Framing::Array, b"[1]", 1, 10)), ["1"]);
    }

    #[test]
    fn a_body_that_is_neither_is_refused_whole() {
        let mut splitter = Splitter::new(Framing::Detect, 10);
        let e = splitter.feed(b"  hello", &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("'h'"), "{e}");
        let e = Splitter::new(Framing::Detect, 10)
            .finish(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn records_are_parsed_with_the_record_checks() {
        let piece = Piece {
            raw: br#"{"a": 1, "a": 2}"#.to_vec(),
            size: 16,
            framing_fault: None,
        };
        let record = piece.into_record(3, "r 3".to_owned(), 100);
        assert_eq!(record.seq, 3);
        assert_eq!(record.fields().unwrap_err().rule, "duplicate_member");
    }
}
