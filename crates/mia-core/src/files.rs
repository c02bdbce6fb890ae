//! The one way MIA Lab writes a file: to a fresh temporary name in the same folder, flushed
//! to disk, then renamed over the destination. A process killed at any moment (`kill -9`,
//! a cluster job hitting its time limit) leaves either the old complete file or the new
//! complete file, never a truncated one that a later command would take as complete; a stray
//! temporary (`.NAME.*.tmp`) is all that can remain. Temporary names are unique per process,
//! thread and call (created with `create_new`, so even two hosts sharing a cluster file system
//! with equal process ids never write into the same temporary), so concurrent writers of the
//! same destination each rename a complete file and the last rename wins.
//!
//! Native only in practice: in the browser (wasm32) `std::fs` reports "unsupported", which
//! comes back as an error like any other.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary path next to `path`, not existing yet, opened for writing.
fn create_temp(path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map_or("file".into(), |n| n.to_string_lossy());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{nanos:x}.{n}.tmp", std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The environment variable of the crash-test hook: with `MIA_CRASH_AT=N` the process
/// aborts (like `kill -9`: no destructors, no clean-up) at the N-th crash point. Every write
/// has two: after the temporary is written and before the rename, and after the rename.
/// `tests/crash.rs` sweeps N over a whole training run; unset, it costs one lookup.
pub const CRASH_AT_VAR: &str = "MIA_CRASH_AT";

fn crash_point() {
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| std::env::var(CRASH_AT_VAR).ok().and_then(|v| v.parse().ok()));
    if let Some(at) = *at
        && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == at
    {
        std::process::abort();
    }
}

/// Writes and flushes `bytes` to disk, closing the file (before the rename, which some systems
/// require).
fn fill(mut file: std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes `bytes` to `path` atomically (see the module docs). On error the destination is
/// unchanged and the temporary is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (tmp, file) = create_temp(path)?;
    let written = fill(file, bytes);
    crash_point();
    let result = written.and_then(|()| std::fs::rename(&tmp, path));
    crash_point();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether `name` is one of [`write_atomic`]'s temporaries.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mia-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_replace_the_file_and_leave_no_temporary() {
        let dir = scratch("replace");
        let p = dir.join("a.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "only the destination remains");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_writers_of_one_file_each_rename_a_complete_copy() {
        let dir = scratch("concurrent");
        let p = dir.join("shared.bin");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let p = p.clone();
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(&p, &vec![t; 100_000]).unwrap();
                    }
                });
            }
        });
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 100_000);
        assert!(bytes.iter().all(|&b| b == bytes[0]), "one writer's complete copy");
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| is_temporary(&e.file_name().to_string_lossy()))
            .count();
        assert_eq!(leftovers, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_destination_alone() {
        let dir = scratch("fail");
        let p = dir.join("missing-folder").join("x.json");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
