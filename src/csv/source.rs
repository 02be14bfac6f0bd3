//! The reading half of the CSV loaders: opening a file within the size
//! limits, a byte-counting reader that enforces them while the parser reads,
//! and [`Source`], which hands out checked records, fields and errors.

use super::{MAX_INPUT_BYTES, MAX_RECORD_BYTES};
use crate::error::{shown, Error, Result};
use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;

/// Capacity of the CSV reader's own buffer.
const BUFFER_BYTES: usize = 64 * 1024;

/// Opens a CSV file for reading after checking a regular file is within
/// the size limit. A pipe, FIFO or device (`/dev/stdin`) is read once, as a
/// stream (the limits are checked while reading); a FIFO without a writer
/// is given up on after [`crate::fsutil::OPEN_TIMEOUT`]. The path `-` is
/// standard input, read the same way.
pub(super) fn open_input(path: &Path, name: &str) -> Result<Box<dyn Read>> {
    if super::is_stdin(path) {
        return Ok(Box::new(std::io::stdin()));
    }
    Ok(Box::new(open_file(path, name)?))
}

/// [`open_input`] of a path that is not `-`.
fn open_file(path: &Path, name: &str) -> Result<std::fs::File> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let data_err = |msg: String| Error::Data {
        path: name.into(),
        line: None,
        column: None,
        msg,
    };
    if meta.is_dir() {
        return Err(data_err("is a directory, not a CSV file".into()));
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(data_err(format!(
            "the file has {} bytes, more than the limit of {MAX_INPUT_BYTES} bytes",
            meta.len()
        )));
    }
    let timeout = crate::fsutil::OPEN_TIMEOUT;
    crate::fsutil::open_with_timeout(path, timeout)
        .map_err(io)?
        .ok_or_else(|| {
            let secs = timeout.as_secs();
            data_err(format!(
                "no writer opened this FIFO within {secs} s, so nothing was read"
            ))
        })
}

/// A reader that fails instead of reading past `ceiling` bytes, so the CSV
/// parser never buffers an unbounded record. It also keeps the raw bytes
/// from the start of the current record (`window`), which the parser has
/// already buffered, to count the empty lines it skips before a record.
struct Limited<R> {
    inner: R,
    consumed: u64,
    /// Reading past this many bytes (since the start) fails.
    ceiling: u64,
    /// Set when a read failed on the ceiling.
    hit: bool,
    /// Raw bytes from offset `window_start` to `consumed`.
    window: VecDeque<u8>,
    window_start: u64,
}

impl<R> Limited<R> {
    /// Starts a new record at byte `start`: sets the ceiling for it and
    /// forgets the bytes before it.
    fn begin_record(&mut self, start: u64, ceiling: u64) {
        self.ceiling = ceiling;
        self.hit = false;
        let drop = start
            .saturating_sub(self.window_start)
            .min(self.window.len() as u64);
        self.window.drain(..drop as usize);
        self.window_start += drop;
    }

    /// Number of line feeds in the run of line ends at the start of the
    /// current record: the empty lines the parser skipped.
    fn leading_newlines(&self) -> u64 {
        self.window
            .iter()
            .take_while(|&&b| b == b'\n' || b == b'\r')
            .filter(|&&b| b == b'\n')
            .count() as u64
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One byte past the ceiling may be read, so that input ending exactly
        // at the ceiling still reaches end of file.
        if self.consumed > self.ceiling {
            self.hit = true;
            return Err(std::io::Error::other("input size limit reached"));
        }
        let room = (self.ceiling + 1 - self.consumed).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..room])?;
        self.consumed += n as u64;
        self.window.extend(&buf[..n]);
        Ok(n)
    }
}

/// A CSV being read: the parser, the current record and the file's name.
pub(super) struct Source<R: Read> {
    name: String,
    rdr: ::csv::Reader<Limited<R>>,
    record: ::csv::ByteRecord,
}

impl<R: Read> Source<R> {
    /// A CSV on `reader` with fields split at `delimiter` (not a quote or a
    /// line end); `name` stands for the file in errors.
    pub(super) fn new(reader: R, name: &str, delimiter: u8) -> Result<Source<R>> {
        if matches!(delimiter, b'"' | b'\n' | b'\r') {
            return Err(Error::setting(
                "the CSV delimiter",
                "neither a quote nor a line end",
                format!("{:?}", delimiter as char),
            ));
        }
        let limited = Limited {
            inner: reader,
            consumed: 0,
            ceiling: 0,
            hit: false,
            window: VecDeque::new(),
            window_start: 0,
        };
        let rdr = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .buffer_capacity(BUFFER_BYTES)
            .from_reader(limited);
        Ok(Source {
            name: name.to_string(),
            rdr,
            record: ::csv::ByteRecord::new(),
        })
    }

    /// An [`Error::Data`] about this file.
    pub(super) fn err(&self, line: Option<u64>, column: Option<&str>, msg: String) -> Error {
        Error::Data {
            path: self.name.clone().into(),
            line,
            column: column.map(str::to_string),
            msg,
        }
    }

    /// Reads the next record into `self.record`; returns its line, or `None`
    /// at the end of the input.
    fn next_record(&mut self) -> Result<Option<u64>> {
        let start = self.rdr.position().byte();
        let start_line = self.rdr.position().line();
        // The parser may already hold a buffer's worth of bytes past `start`.
        let ceiling = (start + MAX_RECORD_BYTES + 2 * BUFFER_BYTES as u64).min(MAX_INPUT_BYTES);
        self.rdr.get_mut().begin_record(start, ceiling);
        let result = self.rdr.read_byte_record(&mut self.record);
        // The parser reports the line where it started looking, before any
        // empty lines it skipped.
        let line = start_line + self.rdr.get_ref().leading_newlines();
        match result {
            Ok(false) => Ok(None),
            Ok(true) => {
                let len = self.rdr.position().byte().saturating_sub(start);
                if len > MAX_RECORD_BYTES {
                    return Err(self.too_long(line));
                }
                Ok(Some(line))
            }
            Err(e) => {
                if self.rdr.get_ref().hit {
                    if ceiling >= MAX_INPUT_BYTES {
                        return Err(self.err(
                            None,
                            None,
                            format!(
                                "the input is larger than the limit of {MAX_INPUT_BYTES} bytes"
                            ),
                        ));
                    }
                    return Err(self.too_long(line));
                }
                Err(self.err(Some(line), None, format!("cannot read the CSV: {e}")))
            }
        }
    }

    fn too_long(&self, line: u64) -> Error {
        self.err(
            Some(line),
            None,
            format!("record is longer than the limit of {MAX_RECORD_BYTES} bytes"),
        )
    }

    /// Reads and checks the header: field names (BOM stripped, trimmed,
    /// unique). The header has at least one column.
    pub(super) fn header(&mut self) -> Result<Vec<String>> {
        let Some(line) = self.next_record()? else {
            return Err(self.err(None, None, "empty file: expected a header row".into()));
        };
        let mut names = Vec::with_capacity(self.record.len());
        for (i, field) in self.record.iter().enumerate() {
            let field = if i == 0 {
                field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field)
            } else {
                field
            };
            let name = std::str::from_utf8(field).map_err(|_| {
                self.err(
                    Some(line),
                    None,
                    format!("invalid UTF-8 in the name of column {}", i + 1),
                )
            })?;
            names.push(name.trim().to_string());
        }
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            if !seen.insert(n.as_str()) {
                return Err(self.err(Some(line), Some(n), "duplicate column name".into()));
            }
        }
        Ok(names)
    }

    /// Reads the next data row and checks it has `width` fields.
    pub(super) fn next_row(&mut self, width: usize) -> Result<Option<u64>> {
        let Some(line) = self.next_record()? else {
            return Ok(None);
        };
        if self.record.len() != width {
            return Err(self.err(
                Some(line),
                None,
                format!("expected {width} fields, got {}", self.record.len()),
            ));
        }
        Ok(Some(line))
    }

    /// Field `i` of the current record as trimmed text.
    pub(super) fn text(&self, line: u64, i: usize, column: &str) -> Result<&str> {
        let raw = self.record.get(i).unwrap_or_default();
        std::str::from_utf8(raw)
            .map(str::trim)
            .map_err(|_| self.err(Some(line), Some(column), "invalid UTF-8".into()))
    }

    /// Field `i` of the current record as trimmed text that is not empty;
    /// `what` names the missing thing in the error (`label`, `value`).
    fn filled(&self, line: u64, i: usize, column: &str, what: &str) -> Result<&str> {
        let text = self.text(line, i, column)?;
        if text.is_empty() {
            let msg = format!("missing {what} (empty field)");
            return Err(self.err(Some(line), Some(column), msg));
        }
        Ok(text)
    }

    /// Field `i` of the current record as a label: trimmed text, not empty.
    pub(super) fn label(&self, line: u64, i: usize, column: &str) -> Result<&str> {
        self.filled(line, i, column, "label")
    }

    /// Field `i` of the current record as a finite number.
    pub(super) fn number(&self, line: u64, i: usize, column: &str) -> Result<f32> {
        let s = self.filled(line, i, column, "value")?;
        match s.parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(self.err(
                Some(line),
                Some(column),
                format!("'{}' is not a finite number", shown(s)),
            )),
            Err(_) => Err(self.err(
                Some(line),
                Some(column),
                format!("'{}' is not a number", shown(s)),
            )),
        }
    }
}
