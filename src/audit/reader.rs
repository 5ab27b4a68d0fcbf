//! Reads a barman-cloud archive for the audit, on S3 or Azure Blob Storage: lists objects
//! and fetches `backup.info` and `.history` files. Read-only by construction: it holds a
//! `ReadOnlyStore`, which can only list and get, and no other audit module holds a store.

use crate::backend::BackendError;
use crate::backend::azure::AzureTarget;
use crate::backend::objstore::{ObjectStore, ReadOnlyStore, S3Target};

use super::model::{ArchiveListing, ArchiveObject};

/// A read-only view of `<prefix>/<server_name>/` in one bucket or container.
pub struct ArchiveReader {
    store: ReadOnlyStore,
}

fn root_of(prefix: &str, server_name: &str) -> String {
    [prefix.trim_matches('/'), server_name.trim_matches('/')]
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("/")
}

impl ArchiveReader {
    /// `target.bucket` is replaced by `bucket`; `prefix` may be empty.
    pub fn new(target: &S3Target, bucket: &str, prefix: &str, server_name: &str) -> Self {
        let mut target = target.clone();
        target.bucket = bucket.to_string();
        let store = ObjectStore::new(&target, &root_of(prefix, server_name));
        Self {
            store: store.read_only(),
        }
    }

    /// `<prefix>/<server_name>/` in the container of `target`.
    pub fn azure(
        target: &AzureTarget,
        prefix: &str,
        server_name: &str,
    ) -> Result<Self, BackendError> {
        let store = ObjectStore::azure(target, &root_of(prefix, server_name))?;
        Ok(Self {
            store: store.read_only(),
        })
    }

    /// `<store's root>/<server_name>/`, reusing the store's client (drills audit their own archive).
    pub fn for_store(store: &ObjectStore, server_name: &str) -> Self {
        Self {
            store: store.narrowed(server_name).read_only(),
        }
    }

    /// `s3://bucket/prefix/server` or `azure://container/prefix/server`.
    pub fn url(&self) -> String {
        self.store.url()
    }

    /// The object's content, decompressed by its barman-cloud suffix.
    async fn get_text(&self, key: &str) -> Result<String, BackendError> {
        let bytes = self.store.get(key).await?;
        let text = decompress(key, &bytes)
            .map_err(|e| BackendError::io(format!("decompressing {}/{key}", self.url()), e))?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// List the archive and read every backup.info and history file.
    pub async fn read(&self) -> Result<ArchiveListing, BackendError> {
        let prefix = format!("{}/", self.store.root());
        let mut listing = ArchiveListing::default();
        for o in self.store.list("").await? {
            let Some(rel) = o.key.strip_prefix(&prefix) else {
                continue;
            };
            listing.objects.push(ArchiveObject {
                key: rel.to_string(),
                size: o.size,
                last_modified: o.last_modified,
            });
        }
        listing.objects.sort_by(|a, b| a.key.cmp(&b.key));
        for o in &listing.objects {
            let parts: Vec<&str> = o.key.split('/').collect();
            match parts.as_slice() {
                ["base", id, "backup.info"] => {
                    let text = self.get_text(&format!("{prefix}{}", o.key)).await?;
                    listing.backup_infos.insert(id.to_string(), text);
                }
                ["wals", name] if name.contains(".history") => {
                    let tli = name
                        .split_once(".history")
                        .map(|(tli, _)| tli)
                        .filter(|tli| tli.len() == 8)
                        .and_then(|h| u32::from_str_radix(h, 16).ok());
                    if let Some(tli) = tli {
                        let text = self.get_text(&format!("{prefix}{}", o.key)).await?;
                        listing.histories.insert(tli, text);
                    }
                }
                _ => {}
            }
        }
        Ok(listing)
    }
}

/// barman-cloud compresses every archived file, history files included, by its suffix.
fn decompress(key: &str, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    if key.ends_with(".gz") {
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    } else if key.ends_with(".bz2") {
        bzip2::read::BzDecoder::new(bytes).read_to_end(&mut out)?;
    } else if key.ends_with(".snappy") {
        snap::read::FrameDecoder::new(bytes).read_to_end(&mut out)?;
    } else if let Some(ext) = crate::wal::COMPRESSION_SUFFIXES
        .iter()
        .find(|s| key.ends_with(*s))
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("pgdrill cannot decompress `{ext}` files yet"),
        ));
    } else {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_files_decompress_by_suffix() {
        use std::io::Write;
        let text = b"1\t0/5000108\tno recovery target specified\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress("wals/00000002.history.gz", &gz).unwrap(), text);
        let zst = decompress("wals/00000002.history.zst", b"\x28\xb5\x2f\xfd").unwrap_err();
        assert!(zst.to_string().contains("`.zst`"), "{zst}");
        assert_eq!(decompress("wals/00000002.history", text).unwrap(), text);
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(text).unwrap();
        let bz = bz.finish().unwrap();
        assert_eq!(decompress("wals/00000002.history.bz2", &bz).unwrap(), text);
        let mut sn = snap::write::FrameEncoder::new(Vec::new());
        sn.write_all(text).unwrap();
        let sn = sn.into_inner().unwrap();
        assert_eq!(
            decompress("wals/00000002.history.snappy", &sn).unwrap(),
            text
        );
        assert_eq!(decompress("wals/00000002.history", text).unwrap(), text);
        assert!(decompress("wals/00000002.history.gz", text).is_err());
    }
}
