//! The file connector: CSV with a header row or JSON Lines, in UTF-8 or GB18030/GBK; one file
//! read once, or a drop folder watched for new files.
//!
//! The checkpoint is the byte offset after the last record handed out, with the file's
//! fingerprint, so a restart resumes exactly there. In a drop folder a file is moved to the
//! done folder only after the checkpoint that marks it finished was stored: it is never read
//! twice. Writers should create files under a name starting with `.` or ending in `.part` and
//! rename them when complete; files changed within the last second are left for later too.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::SourceContext;
use crate::text::{typed_value, Encoding};
use crate::{
    Batch, Body, Checkpoint, FieldTypes, ReadFailure, Source, SourceError, SourceRecord,
    RAW_KEEP_LIMIT,
};

/// `[source] kind = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// One file to read once. Give `path` or `drop_dir`, not both.
    pub path: Option<PathBuf>,
    /// A folder to watch: every file with the format's extension (`.csv`; `.jsonl`, `.ndjson`)
    /// is read in name order, then moved to `done_dir`.
    pub drop_dir: Option<PathBuf>,
    /// Where finished files of the drop folder go. Default: `done/` inside `drop_dir`.
    pub done_dir: Option<PathBuf>,
    /// `csv` (header row first) or `jsonl` (one JSON object a line).
    pub format: FileFormat,
    /// `utf-8` (default) or `gb18030` (alias `gbk`).
    #[serde(default)]
    pub encoding: Encoding,
    /// CSV field delimiter, one ASCII character. Default `,`.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
}

fn default_delimiter() -> char {
    ','
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// JSON Lines: one JSON object a line.
    Jsonl,
}

impl FileFormat {
    fn matches(self, name: &str) -> bool {
        match self {
            FileFormat::Csv => name.ends_with(".csv"),
            FileFormat::Jsonl => name.ends_with(".jsonl") || name.ends_with(".ndjson"),
        }
    }
}

impl FileConfig {
    /// Problems with the values, each naming its key.
    pub(crate) fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match (&self.path, &self.drop_dir) {
            (None, None) => {
                problems.push("key `source.path` or `source.drop_dir`: one is needed".to_owned())
            }
            (Some(_), Some(_)) => problems
                .push("keys `source.path` and `source.drop_dir`: give one, not both".to_owned()),
            _ => {}
        }
        if self.done_dir.is_some() && self.drop_dir.is_none() {
            problems.push("key `source.done_dir`: only with `source.drop_dir`".to_owned());
        }
        if !self.delimiter.is_ascii() {
            problems.push("key `source.delimiter`: must be one ASCII character".to_owned());
        }
        problems
    }
}

/// Where a file source is, stored as the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FilePosition {
    /// The file's name (drop folder) or path (single file).
    file: String,
    /// SHA-256 of the file's first KiB, to notice a file replaced under the same name.
    fingerprint: String,
    /// Byte offset of the next record.
    offset: u64,
    /// Sequence number of the next record.
    seq: u64,
    /// Line number of the next record (CSV), for messages.
    line: u64,
    /// Whether the file was read to its end.
    done: bool,
}

/// A file being read.
#[derive(Debug)]
struct OpenFile {
    path: PathBuf,
    position: FilePosition,
    reader: Reader,
    /// A second handle for reading the raw bytes of rejected records by offset.
    raw: File,
}

#[derive(Debug)]
enum Reader {
    Csv {
        reader: Box<csv::Reader<File>>,
        headers: Vec<String>,
    },
    Jsonl(BufReader<File>),
}

/// The file connector.
#[derive(Debug)]
pub struct FileSource {
    config: FileConfig,
    context: SourceContext,
    current: Option<OpenFile>,
    /// The checkpoint to resume from (until the first file is opened).
    resume: Option<FilePosition>,
    finished: bool,
}

impl FileSource {
    /// Opens the source at its last checkpoint.
    pub fn open(config: FileConfig, context: SourceContext) -> Result<Self, SourceError> {
        let resume = match &context.checkpoint {
            Some(c) => Some(
                serde_json::from_value::<FilePosition>(c.clone())
                    .map_err(|e| SourceError::Checkpoint(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Self {
            config,
            context,
            current: None,
            resume,
            finished: false,
        })
    }

    fn done_dir(&self) -> Option<PathBuf> {
        let drop = self.config.drop_dir.as_ref()?;
        Some(
            self.config
                .done_dir
                .clone()
                .unwrap_or_else(|| drop.join("done")),
        )
    }

    /// The next file to read, or `None` when there is none now.
    fn next_file(&mut self) -> Result<Option<PathBuf>, SourceError> {
        if let Some(path) = &self.config.path {
            return Ok(Some(path.clone()));
        }
        let Some(dir) = self.config.drop_dir.clone() else {
            return Ok(None);
        };
        let io = |source| SourceError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut names = Vec::new();
        let now = SystemTime::now();
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata().map_err(io)?;
            if !meta.is_file()
                || name.starts_with('.')
                || name.ends_with(".part")
                || !self.config.format.matches(&name)
            {
                continue;
            }
            let settled = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= Duration::from_secs(1));
            if settled {
                names.push(name);
            }
        }
        names.sort();
        Ok(names.into_iter().next().map(|n| dir.join(n)))
    }

    fn file_key(&self, path: &Path) -> String {
        if self.config.drop_dir.is_some() {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            path.display().to_string()
        }
    }

    /// Opens `path`, at the resume position when it names this file.
    fn open_file(&mut self, path: PathBuf) -> Result<OpenFile, SourceError> {
        let io = |source| SourceError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let raw = file.try_clone().map_err(io)?;
        let fingerprint = fingerprint(&raw).map_err(io)?;
        let key = self.file_key(&path);
        let mut position = FilePosition {
            file: key.clone(),
            fingerprint: fingerprint.clone(),
            offset: 0,
            seq: 0,
            line: 1,
            done: false,
        };
        if let Some(resume) = self.resume.take() {
            if resume.file == key {
                if resume.fingerprint != fingerprint {
                    return Err(SourceError::Checkpoint(format!(
                        "{} changed since it was partly read (its first KiB differs); move it \
                         aside or reset the connector's checkpoint",
                        path.display()
                    )));
                }
                position = resume;
            }
        }
        let reader = match self.config.format {
            FileFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .delimiter(self.config.delimiter as u8)
                    .from_reader(file);
                let header_bytes = reader.byte_headers().map_err(|e| io(csv_io(e)))?.clone();
                let mut headers = Vec::with_capacity(header_bytes.len());
                for (i, h) in header_bytes.iter().enumerate() {
                    let text = self.config.encoding.decode(h).map_err(|why| {
                        SourceError::Checkpoint(format!(
                            "{}: header column {} cannot be decoded: {why}",
                            path.display(),
                            i + 1
                        ))
                    })?;
                    headers.push(text.trim_start_matches('\u{feff}').trim().to_owned());
                }
                if position.offset == 0 {
                    position.offset = reader.position().byte();
                    position.line = reader.position().line();
                } else {
                    let mut p = csv::Position::new();
                    p.set_byte(position.offset)
                        .set_line(position.line)
                        .set_record(position.seq + 1);
                    reader.seek(p).map_err(|e| io(csv_io(e)))?;
                }
                Reader::Csv {
                    reader: Box::new(reader),
                    headers,
                }
            }
            FileFormat::Jsonl => {
                let mut file = file;
                file.seek(SeekFrom::Start(position.offset)).map_err(io)?;
                Reader::Jsonl(BufReader::with_capacity(256 * 1024, file))
            }
        };
        Ok(OpenFile {
            path,
            position,
            reader,
            raw,
        })
    }
}

fn csv_io(e: csv::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn fingerprint(file: &File) -> std::io::Result<String> {
    let mut head = vec![0u8; 1024];
    let mut n = 0;
    while n < head.len() {
        let got = file.read_at(&mut head[n..], n as u64)?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &head[..n]);
    Ok(digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[async_trait::async_trait]
impl Source for FileSource {
    async fn next_batch(&mut self, max_records: usize) -> Result<Option<Batch>, SourceError> {
        if self.finished {
            return Ok(None);
        }
        if self.current.is_none() {
            let Some(path) = self.next_file()? else {
                return Ok(None);
            };
            let open = self.open_file(path)?;
            if open.position.done {
                // Finished before a restart, but not yet moved: finish it now.
                let checkpoint = serde_json::to_value(&open.position).unwrap_or_default();
                let stream = stream_id(&open.position);
                self.current = Some(open);
                return Ok(Some(Batch {
                    stream,
                    records: Vec::new(),
                    checkpoint,
                }));
            }
            self.current = Some(open);
        }
        if self.current.as_ref().is_some_and(|o| o.position.done) {
            // The end was handed out already; nothing more until it is committed.
            return Ok(None);
        }
        let Some(mut open) = self.current.take() else {
            return Ok(None);
        };
        let encoding = self.config.encoding;
        let types = self.context.field_types.clone();
        let max_bytes = self.context.max_record_bytes;
        let (open, records) = tokio::task::spawn_blocking(move || {
            let records = read_records(&mut open, max_records, encoding, &types, max_bytes);
            (open, records)
        })
        .await
        .map_err(|e| SourceError::Task(e.to_string()))?;
        let records = records.map_err(|source| SourceError::Io {
            path: open.path.display().to_string(),
            source,
        })?;
        let batch = Batch {
            stream: stream_id(&open.position),
            records,
            checkpoint: serde_json::to_value(&open.position).unwrap_or_default(),
        };
        self.current = Some(open);
        Ok(Some(batch))
    }

    async fn committed(&mut self, checkpoint: &Checkpoint) -> Result<(), SourceError> {
        let done = checkpoint
            .get("done")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !done {
            return Ok(());
        }
        let Some(open) = self.current.take() else {
            return Ok(());
        };
        match self.done_dir() {
            Some(done_dir) => {
                let io = |source| SourceError::Io {
                    path: done_dir.display().to_string(),
                    source,
                };
                std::fs::create_dir_all(&done_dir).map_err(io)?;
                let name = open.path.file_name().map(PathBuf::from).unwrap_or_default();
                let mut target = done_dir.join(&name);
                if target.exists() {
                    // Another export with the same name was finished before: keep both.
                    target =
                        done_dir.join(format!("{}.{}", name.display(), open.position.fingerprint));
                }
                std::fs::rename(&open.path, &target).map_err(io)?;
                tracing::info!(file = %open.path.display(), to = %target.display(), records = open.position.seq, "file finished");
            }
            None => self.finished = true,
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.finished
    }
}

fn stream_id(position: &FilePosition) -> String {
    format!("file:{}#{}", position.file, position.fingerprint)
}

/// Reads up to `max` records; at the end of the file marks the position done.
fn read_records(
    open: &mut OpenFile,
    max: usize,
    encoding: Encoding,
    types: &FieldTypes,
    max_bytes: usize,
) -> std::io::Result<Vec<SourceRecord>> {
    let mut out = Vec::with_capacity(max.min(4096));
    let name = open
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    while out.len() < max {
        let start = open.position.offset;
        let line = open.position.line;
        // The original bytes, for the dead-letter topic should the record be rejected later,
        // when the reader kept them whole.
        let mut kept_raw = None;
        let body_and_end = match &mut open.reader {
            Reader::Csv { reader, headers } => {
                let mut record = csv::ByteRecord::new();
                if !reader.read_byte_record(&mut record).map_err(csv_io)? {
                    None
                } else {
                    let pos = reader.position();
                    open.position.line = pos.line();
                    let end = pos.byte();
                    let body = if end - start > max_bytes as u64 {
                        Body::Unreadable(too_big(end - start, max_bytes))
                    } else {
                        csv_body(&record, headers, encoding, types).into()
                    };
                    Some((body, end))
                }
            }
            Reader::Jsonl(reader) => match read_line(reader, max_bytes)? {
                None => None,
                Some((bytes, consumed, truncated)) => {
                    open.position.line += 1;
                    let end = start + consumed;
                    if !truncated && bytes.iter().all(u8::is_ascii_whitespace) {
                        open.position.offset = end;
                        continue;
                    }
                    let body = if truncated {
                        Body::Unreadable(too_big(consumed, max_bytes))
                    } else {
                        let line = match bytes.strip_suffix(b"\n") {
                            Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
                            None => &bytes,
                        };
                        // A UTF-8 line without a byte-order mark, kept whole, is the record's
                        // JSON text: it is parsed on the checking threads. Others are decoded
                        // and parsed here.
                        if encoding == Encoding::Utf8
                            && !line.starts_with(b"\xef\xbb\xbf")
                            && bytes.len() <= RAW_KEEP_LIMIT
                        {
                            Body::JsonText
                        } else {
                            jsonl_body(line, encoding).into()
                        }
                    };
                    kept_raw = (!truncated).then_some(bytes);
                    Some((body, end))
                }
            },
        };
        let Some((body, end)) = body_and_end else {
            open.position.done = true;
            break;
        };
        let raw = match kept_raw {
            Some(mut raw) => {
                raw.truncate(RAW_KEEP_LIMIT);
                raw
            }
            None => {
                let len = usize::try_from(end - start)
                    .unwrap_or(usize::MAX)
                    .min(RAW_KEEP_LIMIT);
                let mut raw = vec![0u8; len];
                let n = open.raw.read_at(&mut raw, start)?;
                raw.truncate(n);
                raw
            }
        };
        out.push(SourceRecord {
            origin: line_origin(&name, line),
            seq: open.position.seq,
            stream: None,
            body,
            raw,
        });
        open.position.seq += 1;
        open.position.offset = end;
    }
    Ok(out)
}

/// `feed.csv line 17`, built without the formatting machinery: it is made for every record.
fn line_origin(file: &str, line: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(line);
    let mut origin = String::with_capacity(file.len() + 6 + digits.len());
    origin.push_str(file);
    origin.push_str(" line ");
    origin.push_str(digits);
    origin
}

fn too_big(size: u64, limit: usize) -> ReadFailure {
    ReadFailure {
        pointer: String::new(),
        rule: "size_limit",
        message: format!("record is {size} bytes, over the limit of {limit}"),
    }
}

fn csv_body(
    record: &csv::ByteRecord,
    headers: &[String],
    encoding: Encoding,
    types: &FieldTypes,
) -> Result<Map<String, Value>, ReadFailure> {
    if record.len() != headers.len() {
        return Err(ReadFailure {
            pointer: String::new(),
            rule: "csv_syntax",
            message: format!(
                "expected {} fields as in the header row, found {}",
                headers.len(),
                record.len()
            ),
        });
    }
    let mut map = Map::with_capacity(headers.len());
    for (i, (field, header)) in record.iter().zip(headers).enumerate() {
        let text = encoding.decode(field).map_err(|why| ReadFailure {
            pointer: format!("/{header}"),
            rule: "encoding",
            message: format!("field `{header}` (column {}): {why}", i + 1),
        })?;
        if text.is_empty() {
            continue;
        }
        map.insert(
            header.clone(),
            typed_value(&text, types.get(header).map(String::as_str)),
        );
    }
    Ok(map)
}

fn jsonl_body(bytes: &[u8], encoding: Encoding) -> Result<Map<String, Value>, ReadFailure> {
    let text = encoding.decode(bytes).map_err(|why| ReadFailure {
        pointer: String::new(),
        rule: "encoding",
        message: why,
    })?;
    crate::json::json_object(text.trim_start_matches('\u{feff}'))
}

/// Reads one line, keeping at most `limit` bytes of it: `(kept bytes with the line's `\n` or
/// `\r\n`, bytes consumed, whether it was longer than the limit)`, or `None` at the end.
fn read_line(
    reader: &mut BufReader<File>,
    limit: usize,
) -> std::io::Result<Option<(Vec<u8>, u64, bool)>> {
    let mut kept = Vec::new();
    let mut consumed = 0u64;
    let mut truncated = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((consumed > 0).then_some((kept, consumed, truncated)));
        }
        let (chunk, found) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], Some(i)),
            None => (buf, None),
        };
        if !truncated {
            // The `\n` does not count towards the limit.
            if kept.len() + chunk.len() > limit {
                truncated = true;
                kept.clear();
            } else {
                let with_newline = found.map_or(chunk.len(), |i| i + 1);
                kept.extend_from_slice(&buf[..with_newline]);
            }
        }
        let used = found.map_or(chunk.len(), |i| i + 1);
        consumed += used as u64;
        reader.consume(used);
        if found.is_some() {
            return Ok(Some((kept, consumed, truncated)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(checkpoint: Option<Checkpoint>) -> SourceContext {
        let mut field_types = FieldTypes::new();
        field_types.insert("amount".to_owned(), "number".to_owned());
        SourceContext {
            name: "t".to_owned(),
            field_types,
            max_record_bytes: 200,
            checkpoint,
        }
    }

    fn single(path: &Path, format: FileFormat, encoding: Encoding) -> FileConfig {
        FileConfig {
            path: Some(path.to_owned()),
            drop_dir: None,
            done_dir: None,
            format,
            encoding,
            delimiter: ',',
        }
    }

    async fn drain(source: &mut FileSource, batch: usize) -> Vec<(Batch, Vec<SourceRecord>)> {
        let mut out = Vec::new();
        while let Some(b) = source.next_batch(batch).await.unwrap() {
            source.committed(&b.checkpoint).await.unwrap();
            let records = b.records.clone();
            out.push((b, records));
            if source.finished() {
                break;
            }
        }
        out
    }

    /// Every record of a whole JSON Lines file.
    async fn read_jsonl(path: &Path, encoding: Encoding) -> Vec<SourceRecord> {
        let mut source =
            FileSource::open(single(path, FileFormat::Jsonl, encoding), context(None)).unwrap();
        drain(&mut source, 100)
            .await
            .into_iter()
            .flat_map(|(_, r)| r)
            .collect()
    }

    #[tokio::test]
    async fn gbk_csv_with_bad_rows_and_resume_from_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.csv");
        let text = "name,amount\n张三,12.50\n李四,abc\n王五\n赵六,7\n";
        let (mut bytes, _, _) = encoding_rs::GBK.encode(text);
        let mut bytes = bytes.to_mut().clone();
        // A row whose name is not valid GBK.
        bytes.extend_from_slice(b"\x81\x20,1\n");
        std::fs::write(&path, &bytes).unwrap();

        let config = single(&path, FileFormat::Csv, Encoding::Gb18030);
        let mut source = FileSource::open(config.clone(), context(None)).unwrap();
        let first = source.next_batch(2).await.unwrap().unwrap();
        assert_eq!(first.records.len(), 2);
        let r0 = first.records[0].fields().unwrap();
        assert_eq!(r0["name"], "张三");
        assert_eq!(r0["amount"], serde_json::json!(12.5));
        assert_eq!(first.records[1].fields().unwrap()["amount"], "abc");

        // Restart from the first batch's checkpoint: the rest, with the same numbering.
        let mut resumed =
            FileSource::open(config, context(Some(first.checkpoint.clone()))).unwrap();
        let rest: Vec<SourceRecord> = drain(&mut resumed, 10)
            .await
            .into_iter()
            .flat_map(|(_, r)| r)
            .collect();
        assert_eq!(
            rest.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        let short = rest[0].fields().unwrap_err();
        assert_eq!(short.rule, "csv_syntax");
        assert_eq!(rest[0].origin, "feed.csv line 4");
        assert!(!rest[0].raw.is_empty());
        assert_eq!(rest[1].fields().unwrap()["name"], "赵六");
        let bad = rest[2].fields().unwrap_err();
        assert_eq!((bad.rule, bad.pointer.as_str()), ("encoding", "/name"));
        assert!(resumed.finished());
    }

    #[tokio::test]
    async fn jsonl_bad_lines_are_failures_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.jsonl");
        let long = format!("{{\"name\": \"{}\"}}", "x".repeat(500));
        std::fs::write(
            &path,
            format!("{{\"name\":\"a\"}}\n\nnot json\n[1]\n{long}\r\n{{\"name\":\"b\"}}"),
        )
        .unwrap();
        let records = read_jsonl(&path, Encoding::Utf8).await;
        let rules: Vec<&str> = records
            .iter()
            .map(|r| r.fields().map(|_| "ok").unwrap_or_else(|f| f.rule))
            .collect();
        assert_eq!(
            rules,
            vec!["ok", "json_syntax", "not_an_object", "size_limit", "ok"]
        );
        assert_eq!(records[4].fields().unwrap()["name"], "b");
        assert_eq!(records[1].raw, b"not json\n");
    }

    #[tokio::test]
    async fn only_a_whole_utf8_json_line_is_left_as_json_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.jsonl");
        let lines: [&[u8]; 4] = [
            "\u{feff}{\"name\":\"bom\"}\n".as_bytes(),
            b"{ \"name\" : \"spaced\" }\r\n",
            b"not json\n",
            b"{\"name\":\"\xff\"}\n",
        ];
        std::fs::write(&path, lines.concat()).unwrap();
        let records = read_jsonl(&path, Encoding::Utf8).await;
        let text: Vec<bool> = records
            .iter()
            .map(|r| matches!(r.body, Body::JsonText))
            .collect();
        // The line with a byte-order mark is parsed as it is read; the others are text whose
        // parse happens where they are checked, with the same reasons.
        assert_eq!(text, [false, true, true, true]);
        assert_eq!(records[0].fields().unwrap()["name"], "bom");
        assert_eq!(records[1].raw.trim_ascii(), b"{ \"name\" : \"spaced\" }");
        assert_eq!(records[1].fields().unwrap()["name"], "spaced");
        assert_eq!(records[2].fields().unwrap_err().rule, "json_syntax");
        assert_eq!(records[3].fields().unwrap_err().rule, "encoding");

        // GB 18030 lines are decoded: their bytes are not the JSON text.
        let gbk = dir.path().join("gbk.jsonl");
        let (bytes, _, _) = encoding_rs::GBK.encode("{\"name\":\"张三\"}\n");
        std::fs::write(&gbk, &bytes).unwrap();
        let records = read_jsonl(&gbk, Encoding::Gb18030).await;
        assert!(matches!(&records[0].body, Body::Fields(f) if f["name"] == "张三"));
    }

    #[tokio::test]
    async fn drop_folder_files_are_read_once_and_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let drop = dir.path().join("in");
        std::fs::create_dir(&drop).unwrap();
        std::fs::write(drop.join("a.jsonl"), "{\"n\":1}\n{\"n\":2}\n").unwrap();
        std::fs::write(drop.join("b.jsonl"), "{\"n\":3}\n").unwrap();
        std::fs::write(drop.join(".c.jsonl"), "{\"n\":4}\n").unwrap();
        std::fs::write(drop.join("d.csv"), "n\n5\n").unwrap();
        // Let the files settle.
        let old = SystemTime::now() - Duration::from_secs(5);
        for n in ["a.jsonl", "b.jsonl"] {
            File::options()
                .write(true)
                .open(drop.join(n))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let config = FileConfig {
            path: None,
            drop_dir: Some(drop.clone()),
            done_dir: None,
            format: FileFormat::Jsonl,
            encoding: Encoding::Utf8,
            delimiter: ',',
        };
        let mut source = FileSource::open(config, context(None)).unwrap();
        let mut streams = Vec::new();
        let mut values = Vec::new();
        while let Some(b) = source.next_batch(10).await.unwrap() {
            streams.push(b.stream.clone());
            values.extend(b.records.iter().map(|r| r.fields().unwrap()["n"].clone()));
            source.committed(&b.checkpoint).await.unwrap();
        }
        assert_eq!(
            values,
            vec![
                serde_json::json!(1),
                serde_json::json!(2),
                serde_json::json!(3)
            ]
        );
        assert!(streams[0].starts_with("file:a.jsonl#") && streams[1].starts_with("file:b.jsonl#"));
        assert!(drop.join("done/a.jsonl").exists() && drop.join("done/b.jsonl").exists());
        assert!(!drop.join("a.jsonl").exists());
        assert!(drop.join(".c.jsonl").exists() && drop.join("d.csv").exists());
        assert!(!source.finished(), "a drop folder is watched for ever");
    }

    #[tokio::test]
    async fn a_changed_file_is_refused_instead_of_misread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.jsonl");
        std::fs::write(&path, "{\"n\":1}\n{\"n\":2}\n").unwrap();
        let config = single(&path, FileFormat::Jsonl, Encoding::Utf8);
        let mut source = FileSource::open(config.clone(), context(None)).unwrap();
        let b = source.next_batch(1).await.unwrap().unwrap();
        std::fs::write(&path, "{\"n\":9}\n").unwrap();
        let mut again = FileSource::open(config, context(Some(b.checkpoint))).unwrap();
        let err = again.next_batch(1).await.unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
    }
}
