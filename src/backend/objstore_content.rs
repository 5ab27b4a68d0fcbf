//! Object content for content faults, through the drill's `ObjectStore`: reading and
//! rewriting one archived object in place, finding a segment's, a history file's or a base
//! backup's objects, and the barman-cloud compressions (decompress, recompress, damage a
//! stream). Never touches a key outside the drill's prefix: every write and delete goes
//! through the store's scope check.

use std::io::{Read, Write};

use super::BackendError;
use super::objstore::{ObjectInfo, ObjectStore};
use crate::wal::{COMPRESSION_SUFFIXES, SegmentName};

/// A barman-cloud compression pgdrill can read and write, named by the object's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Bzip2,
    Snappy,
    None,
}

impl Codec {
    /// The codec of an archived object key; an error names a suffix pgdrill cannot handle.
    pub fn of_key(key: &str) -> Result<Self, String> {
        if key.ends_with(".gz") {
            Ok(Codec::Gzip)
        } else if key.ends_with(".bz2") {
            Ok(Codec::Bzip2)
        } else if key.ends_with(".snappy") {
            Ok(Codec::Snappy)
        } else if let Some(ext) = COMPRESSION_SUFFIXES.iter().find(|s| key.ends_with(*s)) {
            Err(format!(
                "pgdrill cannot rewrite `{ext}` objects (supported: .gz, .bz2, .snappy, uncompressed)"
            ))
        } else {
            Ok(Codec::None)
        }
    }

    pub fn decompress(self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Codec::Gzip => {
                flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
            }
            Codec::Bzip2 => {
                bzip2::read::BzDecoder::new(bytes).read_to_end(&mut out)?;
            }
            Codec::Snappy => {
                snap::read::FrameDecoder::new(bytes).read_to_end(&mut out)?;
            }
            Codec::None => out.extend_from_slice(bytes),
        }
        Ok(out)
    }

    pub fn compress(self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        Ok(match self {
            Codec::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(bytes)?;
                e.finish()?
            }
            Codec::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
                e.write_all(bytes)?;
                e.finish()?
            }
            Codec::Snappy => {
                let mut e = snap::write::FrameEncoder::new(Vec::new());
                e.write_all(bytes)?;
                e.into_inner().map_err(|e| e.into_error())?
            }
            Codec::None => bytes.to_vec(),
        })
    }

    /// Damage a compressed stream so it no longer decompresses: keep its first bytes (the
    /// format's header), scramble up to the middle, drop the rest (body and trailer).
    /// Checked: the result must fail to decompress with this codec.
    pub fn damage(self, compressed: &[u8]) -> Result<Vec<u8>, String> {
        if self == Codec::None {
            return Err("an uncompressed object always \"decompresses\": nothing to damage".into());
        }
        let n = compressed.len();
        if n < 32 {
            return Err(format!("a {n}-byte stream is too short to damage"));
        }
        let keep = 20.min(n / 4);
        let mut out: Vec<u8> = compressed[..keep].to_vec();
        out.extend(compressed[keep..n / 2].iter().map(|b| b ^ 0x55));
        match self.decompress(&out) {
            Err(_) => Ok(out),
            Ok(_) => Err("the damaged stream still decompresses".into()),
        }
    }
}

impl ObjectStore {
    /// The single archived object of one WAL segment (not a `.partial` or `.backup` file).
    pub async fn wal_object(
        &self,
        server_name: &str,
        segment: &SegmentName,
    ) -> Result<ObjectInfo, BackendError> {
        let mut found = self.wal_segment_objects(server_name, segment).await?;
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(BackendError::infra(format!(
                "WAL segment {segment} is not in the archive {}/{server_name}",
                self.url()
            ))),
            _ => Err(BackendError::infra(format!(
                "WAL segment {segment} is archived more than once ({}): which one recovery reads is not defined",
                found
                    .iter()
                    .map(|o| o.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The archived `.history` objects of `timeline` (any compression suffix).
    pub async fn history_objects(
        &self,
        server_name: &str,
        timeline: u32,
    ) -> Result<Vec<ObjectInfo>, BackendError> {
        let name = format!("{timeline:08X}.history");
        let prefix = format!("{server_name}/wals/{name}");
        Ok(self
            .list(&prefix)
            .await?
            .into_iter()
            .filter(|o| {
                let file = o.key.rsplit('/').next().unwrap_or_default();
                file == name
                    || COMPRESSION_SUFFIXES
                        .iter()
                        .any(|s| file.strip_suffix(s) == Some(name.as_str()))
            })
            .collect())
    }

    /// Every object of one base backup: `base/<backup_id>/…`.
    pub async fn backup_objects(
        &self,
        server_name: &str,
        backup_id: &str,
    ) -> Result<Vec<ObjectInfo>, BackendError> {
        self.list(&format!("{server_name}/base/{backup_id}/")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_follow_the_suffix_and_round_trip() {
        assert_eq!(Codec::of_key("a/wals/0/X.gz").unwrap(), Codec::Gzip);
        assert_eq!(Codec::of_key("a/wals/0/X.bz2").unwrap(), Codec::Bzip2);
        assert_eq!(Codec::of_key("a/wals/0/X.snappy").unwrap(), Codec::Snappy);
        assert_eq!(Codec::of_key("a/wals/0/X").unwrap(), Codec::None);
        let e = Codec::of_key("a/wals/0/X.zst").unwrap_err();
        assert!(e.contains("`.zst`"), "{e}");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for c in [Codec::Gzip, Codec::Bzip2, Codec::Snappy, Codec::None] {
            let z = c.compress(&data).unwrap();
            assert_eq!(c.decompress(&z).unwrap(), data, "{c:?}");
        }
    }

    #[test]
    fn a_damaged_stream_no_longer_decompresses() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
        for c in [Codec::Gzip, Codec::Bzip2, Codec::Snappy] {
            let z = c.compress(&data).unwrap();
            let d = c.damage(&z).unwrap();
            assert!(d.len() < z.len());
            assert_eq!(d[..4], z[..4], "{c:?}: the header is kept");
            assert!(c.decompress(&d).is_err(), "{c:?}");
        }
        assert!(Codec::None.damage(&data).is_err());
    }
}
