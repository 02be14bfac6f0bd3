//! TensorBoard event files: scalars, histograms and the hparams of a run,
//! written without TensorFlow.
//!
//! An event file is a sequence of TFRecords, each
//! `u64 length | u32 masked_crc(length) | data | u32 masked_crc(data)`, all
//! little-endian, where the CRC is CRC-32C (Castagnoli), masked as
//! `rotate_right(crc, 15) + 0xa282ead8`. Each record's data is a protobuf
//! `Event` (see [`proto`]); the first one carries the file version
//! `"brain.Event:2"`. TensorBoard silently stops reading at a bad CRC, so
//! the tests read every record back, checking its length and CRC.

use crate::error::{Error, Result};
use prost::Message;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Number of histogram buckets between the minimum and the maximum.
pub const HISTOGRAM_BUCKETS: usize = 30;

/// The protobuf messages of an event file (defined in `crate::proto`).
// Hidden with `crate::proto`: public for `tests/formats.rs`, which decodes
// the records it reads back.
#[doc(hidden)]
pub use crate::proto::tensorboard as proto;

/// The masked CRC-32C of TFRecords.
pub(crate) fn masked_crc(data: &[u8]) -> u32 {
    crate::crc::crc32c(data)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

/// Appends one TFRecord holding `data` to `out`.
fn write_record(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc(&len).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc(data).to_le_bytes())
}

// Hidden from the docs (a test reader, not part of the writer's API):
// public for `tests/formats.rs`, which reads the written event files back.
/// Splits the bytes of an event file into record payloads, checking every
/// length and CRC.
///
/// # Errors
/// [`Error::Data`] (with `name` as the path) on a truncated record or a
/// CRC mismatch, naming the record index.
///
/// # Example
/// ```
/// assert_eq!(vnn::tensorboard::read_records(b"", "empty").unwrap().len(), 0);
/// assert!(vnn::tensorboard::read_records(b"\x01", "short").is_err());
/// ```
#[doc(hidden)]
pub fn read_records<'a>(bytes: &'a [u8], name: &str) -> Result<Vec<&'a [u8]>> {
    let err = |i: usize, msg: &str| Error::Data {
        path: name.into(),
        line: None,
        column: None,
        msg: format!("record {i}: {msg}"),
    };
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let i = out.len();
        if rest.len() < 12 {
            return Err(err(i, "truncated length"));
        }
        let (len_bytes, tail) = rest.split_at(8);
        let (len_crc, tail) = tail.split_at(4);
        if masked_crc(len_bytes).to_le_bytes() != len_crc {
            return Err(err(i, "length CRC mismatch"));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(len_bytes);
        let len = u64::from_le_bytes(len);
        if len > tail.len().saturating_sub(4) as u64 {
            return Err(err(i, "truncated data"));
        }
        let (data, tail) = tail.split_at(len as usize);
        let (data_crc, tail) = tail.split_at(4);
        if masked_crc(data).to_le_bytes() != data_crc {
            return Err(err(i, "data CRC mismatch"));
        }
        out.push(data);
        rest = tail;
    }
    Ok(out)
}

/// Writes one TensorBoard event file. Writes are buffered; call
/// [`EventWriter::flush`] to make them visible to a running TensorBoard
/// (dropping the writer flushes too, ignoring errors).
pub struct EventWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// Creates `events.out.tfevents.<unix seconds>.<host name>` in `dir`
    /// (creating `dir` if needed; the host name is `vnn` when unknown, and a
    /// `.1`, `.2`, ... suffix avoids overwriting an existing file) and
    /// writes the file-version record.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory or the file cannot be created or
    /// written.
    ///
    /// # Example
    /// ```
    /// let dir = std::env::temp_dir().join(format!("vnn-doc-tb-{}", std::process::id()));
    /// let mut w = vnn::tensorboard::EventWriter::create(&dir).unwrap();
    /// w.add_scalar("train/loss", 1, 0.5).unwrap();
    /// w.add_histogram("weights/layers.0", 1, &[0.1, -0.2, 0.3]).unwrap();
    /// w.flush().unwrap();
    /// assert!(std::fs::metadata(w.path()).unwrap().len() > 0);
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn create(dir: impl AsRef<Path>) -> Result<EventWriter> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let base = format!("events.out.tfevents.{now}.{}", host_name());
        let mut suffix = 0u32;
        let (file, path) = loop {
            let name = if suffix == 0 {
                base.clone()
            } else {
                format!("{base}.{suffix}")
            };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (f, path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && suffix < 1000 => {
                    suffix += 1
                }
                Err(source) => return Err(Error::Io { path, source }),
            }
        };
        let mut w = EventWriter {
            out: BufWriter::new(file),
            path,
        };
        w.write_event(proto::Event {
            wall_time: wall_time(),
            step: 0,
            what: Some(proto::What::FileVersion("brain.Event:2".into())),
        })?;
        Ok(w)
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, event: proto::Event) -> Result<()> {
        write_record(&mut self.out, &event.encode_to_vec()).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn write_value(&mut self, step: i64, value: proto::Value) -> Result<()> {
        self.write_event(proto::Event {
            wall_time: wall_time(),
            step,
            what: Some(proto::What::Summary(proto::Summary { value: vec![value] })),
        })
    }

    /// Records `value` of series `tag` at `step`.
    ///
    /// # Errors
    /// [`Error::Io`] if the buffered write fails.
    pub fn add_scalar(&mut self, tag: &str, step: i64, value: f32) -> Result<()> {
        self.write_value(
            step,
            proto::Value {
                tag: tag.to_string(),
                simple_value: Some(value),
                ..Default::default()
            },
        )
    }

    /// Records the distribution of `values` as series `tag` at `step` (see
    /// [`histogram`]).
    ///
    /// # Errors
    /// [`Error::Io`] if the buffered write fails.
    pub fn add_histogram(&mut self, tag: &str, step: i64, values: &[f32]) -> Result<()> {
        self.write_value(
            step,
            proto::Value {
                tag: tag.to_string(),
                histo: Some(histogram(values)),
                ..Default::default()
            },
        )
    }

    /// Records a session's hyper-parameters for TensorBoard's HParams
    /// dashboard: the hparams plugin's summaries `_hparams_/session_start_info`
    /// (the values of `hparams`, see [`hparam_values`], started at
    /// `start_time_secs`, seconds since the Unix epoch) and
    /// `_hparams_/session_end_info` (`STATUS_SUCCESS`, ended now), at
    /// `step`. Each is an empty tensor whose metadata holds an
    /// `HParamsPluginData` of version 0.
    ///
    /// Without an experiment summary ([`EventWriter::add_hparams_experiment`])
    /// anywhere in the log folder, TensorBoard makes the experiment from
    /// every session: all their hparams, and the scalar tags of their runs
    /// as metrics. That suits a folder of runs with different settings: an
    /// experiment summary in each run would have TensorBoard pick one of
    /// them, and show only that run's hparams and metrics for all.
    ///
    /// # Errors
    /// [`Error::Io`] if the buffered write fails.
    ///
    /// # Example
    /// ```
    /// let dir = std::env::temp_dir().join(format!("vnn-doc-hparams-{}", std::process::id()));
    /// let mut w = vnn::tensorboard::EventWriter::create(&dir).unwrap();
    /// w.add_scalar("final/train_loss", 10, 0.25).unwrap();
    /// let hparams = serde_json::json!({"lr": 0.01, "optimizer": "adam"});
    /// w.add_hparams_session(10, &hparams, 0.0).unwrap();
    /// w.flush().unwrap();
    /// let bytes = std::fs::read(w.path()).unwrap();
    /// // The file version, the scalar and the two session summaries.
    /// assert_eq!(vnn::tensorboard::read_records(&bytes, "events").unwrap().len(), 4);
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn add_hparams_session(
        &mut self,
        step: i64,
        hparams: &serde_json::Value,
        start_time_secs: f64,
    ) -> Result<()> {
        use proto::hparams::{self as hp, Data};
        let start = hp::SessionStartInfo {
            hparams: hparam_values(hparams),
            start_time_secs,
        };
        let end = hp::SessionEndInfo {
            status: hp::STATUS_SUCCESS,
            end_time_secs: wall_time(),
        };
        self.add_hparams_data(step, "session_start_info", Data::SessionStartInfo(start))?;
        self.add_hparams_data(step, "session_end_info", Data::SessionEndInfo(end))
    }

    /// Records the experiment of TensorBoard's HParams dashboard: the
    /// summary `_hparams_/experiment` (an `HParamsPluginData` of version 0)
    /// naming the hparams of `hparams` with their types (string, bool or
    /// float64, as [`hparam_values`] gives them) and the scalar tags
    /// `metric_tags` as its metrics. TensorBoard uses one experiment for a
    /// log folder, so write it once, for example into the folder's own
    /// event file above the runs'.
    ///
    /// # Errors
    /// [`Error::Io`] if the buffered write fails.
    pub fn add_hparams_experiment(
        &mut self,
        step: i64,
        hparams: &serde_json::Value,
        metric_tags: &[&str],
    ) -> Result<()> {
        use proto::hparams::{self as hp, Data};
        let hparam_infos = hparam_values(hparams)
            .into_iter()
            .map(|(name, v)| hp::HParamInfo {
                name,
                r#type: match v.kind {
                    Some(hp::Kind::BoolValue(_)) => hp::DATA_TYPE_BOOL,
                    Some(hp::Kind::NumberValue(_)) => hp::DATA_TYPE_FLOAT64,
                    _ => hp::DATA_TYPE_STRING,
                },
            })
            .collect();
        let metric_infos = metric_tags
            .iter()
            .map(|tag| hp::MetricInfo {
                name: Some(hp::MetricName {
                    group: String::new(),
                    tag: tag.to_string(),
                }),
            })
            .collect();
        let experiment = hp::Experiment {
            hparam_infos,
            metric_infos,
        };
        self.add_hparams_data(step, "experiment", Data::Experiment(experiment))
    }

    /// Writes one hparams plugin summary, tagged `_hparams_/{name}`.
    fn add_hparams_data(
        &mut self,
        step: i64,
        name: &str,
        data: proto::hparams::Data,
    ) -> Result<()> {
        let content = proto::hparams::HParamsPluginData {
            version: 0,
            data: Some(data),
        };
        let metadata = proto::SummaryMetadata {
            plugin_data: Some(proto::PluginData {
                plugin_name: "hparams".into(),
                content: content.encode_to_vec(),
            }),
        };
        // TensorBoard's own empty tensor: float32 of shape [0].
        let tensor = proto::TensorProto {
            dtype: proto::DT_FLOAT,
            tensor_shape: Some(proto::TensorShapeProto {
                dim: vec![proto::TensorDim { size: 0 }],
            }),
        };
        self.write_value(
            step,
            proto::Value {
                tag: format!("_hparams_/{name}"),
                tensor: Some(tensor),
                metadata: Some(metadata),
                ..Default::default()
            },
        )
    }

    /// Writes buffered events to the file.
    ///
    /// # Errors
    /// [`Error::Io`] if the write fails.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// The histogram of `values`: [`HISTOGRAM_BUCKETS`] equal-width buckets
/// from the smallest to the largest finite value, `bucket_limit` holding the
/// right edges (the last is the maximum) and the counts summing to `num`.
/// Non-finite values are left out. All-equal values give one bucket at that
/// value; no values give one empty bucket at 0.
///
/// # Example
/// ```
/// let h = vnn::tensorboard::histogram(&[0.0, 1.0, 1.0, 3.0]);
/// assert_eq!((h.min, h.max, h.num, h.sum), (0.0, 3.0, 4.0, 5.0));
/// assert_eq!(h.bucket.iter().sum::<f64>(), 4.0);
/// assert_eq!(*h.bucket_limit.last().unwrap(), 3.0);
/// assert_eq!(vnn::tensorboard::histogram(&[2.0; 5]).bucket, [5.0]);
/// ```
// Hidden from the docs with `crate::proto`, the type it returns: public for
// `tests/formats.rs`, which checks the buckets.
#[doc(hidden)]
pub fn histogram(values: &[f32]) -> proto::HistogramProto {
    let finite = || values.iter().filter(|v| v.is_finite()).map(|&v| v as f64);
    let (mut min, mut max, mut num, mut sum, mut sum_squares) =
        (f64::INFINITY, f64::NEG_INFINITY, 0f64, 0f64, 0f64);
    for v in finite() {
        min = min.min(v);
        max = max.max(v);
        num += 1.0;
        sum += v;
        sum_squares += v * v;
    }
    if num == 0.0 {
        return proto::HistogramProto {
            bucket_limit: vec![0.0],
            bucket: vec![0.0],
            ..Default::default()
        };
    }
    if min == max {
        return proto::HistogramProto {
            min,
            max,
            num,
            sum,
            sum_squares,
            bucket_limit: vec![max],
            bucket: vec![num],
        };
    }
    let n = HISTOGRAM_BUCKETS;
    let width = (max - min) / n as f64;
    let mut bucket_limit: Vec<f64> = (1..=n).map(|i| min + width * i as f64).collect();
    bucket_limit[n - 1] = max;
    let mut bucket = vec![0f64; n];
    for v in finite() {
        // Bucket i holds (limit[i-1], limit[i]]; the minimum goes to bucket 0.
        let i = (((v - min) / width).ceil() as usize).clamp(1, n) - 1;
        bucket[i] += 1.0;
    }
    proto::HistogramProto {
        min,
        max,
        num,
        sum,
        sum_squares,
        bucket_limit,
        bucket,
    }
}

/// The hparams values of the JSON object `hparams`: strings, numbers and
/// booleans as they are, arrays and objects as their JSON text; nulls (and
/// anything that is not an object) left out.
///
/// # Example
/// ```
/// use vnn::tensorboard::proto::hparams::Kind;
/// let v = vnn::tensorboard::hparam_values(&serde_json::json!(
///     {"lr": 0.5, "optimizer": "sgd", "standardize": true, "batch_size": null, "sizes": [2, 3]}));
/// let kinds: Vec<_> = v.iter().map(|(k, v)| (k.as_str(), v.kind.clone().unwrap())).collect();
/// assert_eq!(kinds, [
///     ("lr", Kind::NumberValue(0.5)),
///     ("optimizer", Kind::StringValue("sgd".into())),
///     ("sizes", Kind::StringValue("[2,3]".into())),
///     ("standardize", Kind::BoolValue(true)),
/// ]);
/// ```
// Hidden from the docs with `crate::proto`, the type it returns.
#[doc(hidden)]
pub fn hparam_values(
    hparams: &serde_json::Value,
) -> std::collections::BTreeMap<String, proto::hparams::PbValue> {
    use proto::hparams::{Kind, PbValue};
    use serde_json::Value;
    let Some(object) = hparams.as_object() else {
        return Default::default();
    };
    let kind = |v: &Value| match v {
        Value::Null => None,
        Value::Bool(b) => Some(Kind::BoolValue(*b)),
        Value::Number(n) => n.as_f64().map(Kind::NumberValue),
        Value::String(s) => Some(Kind::StringValue(s.clone())),
        other => Some(Kind::StringValue(other.to_string())),
    };
    object
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.clone(),
                PbValue {
                    kind: Some(kind(v)?),
                },
            ))
        })
        .collect()
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The host name for file names (letters, digits, `-`, `_`, `.`), or `vnn`.
fn host_name() -> String {
    let raw = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    if clean.is_empty() {
        "vnn".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::{masked_crc, proto, read_records, EventWriter};
    use prost::Message;

    /// The hparams plugin data of every record of the event file of `w`, by tag.
    fn plugin_data(w: &EventWriter) -> Vec<(String, proto::hparams::HParamsPluginData)> {
        let bytes = std::fs::read(w.path()).unwrap();
        let mut out = Vec::new();
        for record in read_records(&bytes, "events").unwrap() {
            let event = proto::Event::decode(record).unwrap();
            let Some(proto::What::Summary(summary)) = event.what else {
                continue;
            };
            for value in summary.value {
                let Some(meta) = value.metadata else { continue };
                let plugin = meta.plugin_data.unwrap();
                assert_eq!(plugin.plugin_name, "hparams");
                let tensor = value.tensor.unwrap();
                assert_eq!(
                    (tensor.dtype, tensor.tensor_shape.unwrap().dim.len()),
                    (1, 1)
                );
                let data = proto::hparams::HParamsPluginData::decode(&plugin.content[..]).unwrap();
                out.push((value.tag, data));
            }
        }
        out
    }

    #[test]
    fn hparams_summaries_round_trip() {
        use proto::hparams::{Data, Kind};
        let dir = std::env::temp_dir().join(format!("vnn-tb-hparams-{}", std::process::id()));
        let mut w = EventWriter::create(&dir).unwrap();
        let hparams = serde_json::json!({"lr": 0.5, "data": null, "adam": true});
        w.add_hparams_experiment(2, &hparams, &["final/train_loss"])
            .unwrap();
        w.add_hparams_session(2, &hparams, 7.0).unwrap();
        w.flush().unwrap();
        let data = plugin_data(&w);
        let tags: Vec<&str> = data.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            tags,
            [
                "_hparams_/experiment",
                "_hparams_/session_start_info",
                "_hparams_/session_end_info"
            ]
        );
        assert!(data.iter().all(|(_, d)| d.version == 0));
        let Some(Data::Experiment(e)) = &data[0].1.data else {
            panic!("{data:?}")
        };
        let infos: Vec<(&str, i32)> = e
            .hparam_infos
            .iter()
            .map(|h| (h.name.as_str(), h.r#type))
            .collect();
        assert_eq!(infos, [("adam", 2), ("lr", 3)]);
        assert_eq!(
            e.metric_infos[0].name.as_ref().unwrap().tag,
            "final/train_loss"
        );
        let Some(Data::SessionStartInfo(start)) = &data[1].1.data else {
            panic!("{data:?}")
        };
        assert_eq!(start.start_time_secs, 7.0);
        assert_eq!(start.hparams["lr"].kind, Some(Kind::NumberValue(0.5)));
        assert_eq!(start.hparams["adam"].kind, Some(Kind::BoolValue(true)));
        assert!(!start.hparams.contains_key("data"));
        let Some(Data::SessionEndInfo(end)) = &data[2].1.data else {
            panic!("{data:?}")
        };
        assert_eq!(end.status, proto::hparams::STATUS_SUCCESS);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn masked_crc_of_no_bytes_is_the_mask_constant() {
        // The CRC of no bytes is 0, so its mask is the mask constant itself.
        assert_eq!(masked_crc(b""), 0xa282_ead8);
    }
}
