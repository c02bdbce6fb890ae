//! Downloading the official dataset files, with md5 checks against the published sums.
//! A file already present with the right checksum is not downloaded again. CIFAR archives are
//! unpacked into the target folder; MNIST-style `.gz` files are kept as they are (the reader
//! decompresses them). When offline, the error names every URL to fetch by hand.

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::{DataError, DatasetKind};

/// One official file.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// File name on disk (and at the end of every mirror URL).
    pub file: &'static str,
    /// Mirror base URLs, tried in order; the file name is appended.
    pub mirrors: &'static [&'static str],
    /// Published md5.
    pub md5: &'static str,
    /// Whether it is a `.tar.gz` archive to unpack.
    pub archive: bool,
}

impl Source {
    /// Full URLs, in the order they are tried.
    pub fn urls(&self) -> Vec<String> {
        self.mirrors.iter().map(|m| format!("{m}{}", self.file)).collect()
    }
}

const MNIST_MIRRORS: &[&str] =
    &["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"];
const FASHION_MIRRORS: &[&str] = &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];
const KRIZHEVSKY: &[&str] = &["https://www.cs.toronto.edu/~kriz/"];

const fn idx(file: &'static str, md5: &'static str, mirrors: &'static [&'static str]) -> Source {
    Source { file, mirrors, md5, archive: false }
}

const MNIST: &[Source] = &[
    idx("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", MNIST_MIRRORS),
    idx("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", MNIST_MIRRORS),
    idx("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", MNIST_MIRRORS),
    idx("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", MNIST_MIRRORS),
];

const FASHION: &[Source] = &[
    idx("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", FASHION_MIRRORS),
    idx("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", FASHION_MIRRORS),
    idx("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", FASHION_MIRRORS),
    idx("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", FASHION_MIRRORS),
];

const CIFAR10: &[Source] = &[Source {
    file: "cifar-10-binary.tar.gz",
    mirrors: KRIZHEVSKY,
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    archive: true,
}];

const CIFAR100: &[Source] = &[Source {
    file: "cifar-100-binary.tar.gz",
    mirrors: KRIZHEVSKY,
    md5: "03b5dce01913d631647c71ecec9e9cb8",
    archive: true,
}];

/// The official files of a dataset.
pub fn sources(kind: DatasetKind) -> Result<&'static [Source], DataError> {
    match kind {
        DatasetKind::Mnist => Ok(MNIST),
        DatasetKind::FashionMnist => Ok(FASHION),
        DatasetKind::Cifar10 => Ok(CIFAR10),
        DatasetKind::Cifar100 => Ok(CIFAR100),
        DatasetKind::Folder | DatasetKind::Csv => Err(DataError::Invalid(format!(
            "`{kind}` is your own data; there is nothing to download"
        ))),
    }
}

/// md5 of a byte buffer, as lowercase hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Something that fetches a URL's bytes (real HTTP, or a stand-in in tests).
pub trait Downloader {
    /// Returns the body of `url`.
    fn get(&self, url: &str) -> Result<Vec<u8>, String>;
}

/// HTTP(S) downloads through `ureq`.
pub struct Http;

impl Downloader for Http {
    fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(std::time::Duration::from_secs(15)))
            .build()
            .into();
        let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        resp.body_mut().as_reader().read_to_end(&mut body).map_err(|e| e.to_string())?;
        Ok(body)
    }
}

/// What a fetch did with each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Present with the right checksum; not downloaded.
    AlreadyPresent(PathBuf),
    /// Downloaded and verified.
    Downloaded(PathBuf),
}

/// Downloads (or verifies) every official file of `kind` into `dir`, unpacking archives.
pub fn fetch(
    kind: DatasetKind,
    dir: &Path,
    downloader: &dyn Downloader,
) -> Result<Vec<Outcome>, DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let mut outcomes = Vec::new();
    for src in sources(kind)? {
        let path = dir.join(src.file);
        if let Ok(bytes) = std::fs::read(&path)
            && md5_hex(&bytes) == src.md5
        {
            outcomes.push(Outcome::AlreadyPresent(path.clone()));
            if src.archive {
                unpack(&bytes, dir, &path)?;
            }
            continue;
        }
        let mut errors = Vec::new();
        let mut body = None;
        let urls = src.urls();
        for url in &urls {
            tracing::info!(%url, "downloading");
            match downloader.get(url) {
                Ok(b) => {
                    body = Some(b);
                    break;
                }
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        let body = body.ok_or_else(|| DataError::Download {
            url: urls.join(" or "),
            reason: errors.join("; "),
        })?;
        let actual = md5_hex(&body);
        if actual != src.md5 {
            return Err(DataError::Checksum { path, expected: src.md5.into(), actual });
        }
        let part = dir.join(format!("{}.part", src.file));
        std::fs::write(&part, &body).map_err(|e| DataError::io(&part, e))?;
        std::fs::rename(&part, &path).map_err(|e| DataError::io(&path, e))?;
        if src.archive {
            unpack(&body, dir, &path)?;
        }
        outcomes.push(Outcome::Downloaded(path));
    }
    Ok(outcomes)
}

fn unpack(bytes: &[u8], dir: &Path, path: &Path) -> Result<(), DataError> {
    tar::Archive::new(flate2::read::GzDecoder::new(bytes))
        .unpack(dir)
        .map_err(|e| DataError::corrupt(path, format!("cannot unpack: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Fake {
        body: Vec<u8>,
        calls: Cell<usize>,
    }
    impl Downloader for Fake {
        fn get(&self, _url: &str) -> Result<Vec<u8>, String> {
            self.calls.set(self.calls.get() + 1);
            Ok(self.body.clone())
        }
    }

    #[test]
    fn checksum_mismatch_is_an_error_and_nothing_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake { body: b"not the real file".to_vec(), calls: Cell::new(0) };
        let err = fetch(DatasetKind::Mnist, dir.path(), &fake).unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err}");
        assert!(!dir.path().join("train-images-idx3-ubyte.gz").exists());
    }

    #[test]
    fn offline_error_names_the_url_to_download_by_hand() {
        struct Offline;
        impl Downloader for Offline {
            fn get(&self, _url: &str) -> Result<Vec<u8>, String> {
                Err("failed to lookup address information".into())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let err = fetch(DatasetKind::Cifar10, dir.path(), &Offline).unwrap_err();
        let hint = err.hint().unwrap();
        assert!(hint.contains("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"), "{hint}");
        assert!(fetch(DatasetKind::Csv, dir.path(), &Offline).is_err());
    }

    #[test]
    fn real_http_failure_on_a_closed_loopback_port_is_a_download_error() {
        let err = Http.get("http://127.0.0.1:9/nothing").unwrap_err();
        assert!(!err.is_empty());
    }

    #[test]
    fn verified_archive_is_unpacked_and_not_downloaded_again() {
        // Build a tiny tar.gz, then pretend its md5 is the published one by checking
        // `unpack` and the skip path directly.
        let mut tar_bytes = Vec::new();
        {
            let mut b = tar::Builder::new(&mut tar_bytes);
            let data = b"hello";
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, "cifar-10-batches-bin/readme.txt", &data[..]).unwrap();
            b.finish().unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar_bytes).unwrap();
        let gz = gz.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        unpack(&gz, dir.path(), Path::new("x.tar.gz")).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("cifar-10-batches-bin/readme.txt")).unwrap(),
            b"hello"
        );
        assert!(unpack(&gz[..gz.len() / 2], dir.path(), Path::new("x")).is_err());
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
