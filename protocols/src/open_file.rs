//! Opening a file to serve without ever blocking the reactor.
//!
//! A protocol looks a path up (`metadata`), decides it is a regular file,
//! and opens it. Between the two, whoever can write to the served
//! directory can swap the file for a FIFO, whose `open` blocks until a
//! writer appears — the whole reactor with it — or for a symlink to
//! somewhere else. [`open_regular`] opens without following a final
//! symlink and without blocking, then checks the open file itself.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` for reading if it is (still) a regular file, and returns
/// it with its metadata, read from the open descriptor. A FIFO, device,
/// socket or directory is refused with [`io::ErrorKind::InvalidInput`]
/// before anything could block; a final component that is a symlink with
/// the OS's `ELOOP` (callers pass canonical paths, which have none, so a
/// symlink there was swapped in). `O_NONBLOCK` changes nothing for reads
/// of a regular file.
pub fn open_regular(path: &Path) -> io::Result<(File, Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("torsion-open-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_opens_and_reads() {
        let dir = scratch("regular");
        let path = dir.join("a.gmi");
        std::fs::write(&path, b"hello").unwrap();
        let (mut file, meta) = open_regular(&path).unwrap();
        assert_eq!(meta.len(), 5);
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = scratch("fifo");
        let path = dir.join("pipe");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // A blocking open would hang here forever: no writer ever comes.
        let err = open_regular(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn directories_and_final_symlinks_are_refused() {
        let dir = scratch("links");
        assert_eq!(
            open_regular(&dir).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let target = dir.join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = open_regular(&link).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
