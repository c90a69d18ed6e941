//! Reading the files a run is made of (runbooks, secret files): regular
//! files only, and of a bounded size, so that a FIFO, a device or a huge
//! file is a clear error instead of a command that never returns.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest runbook or secret file read (far larger than any real one).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads a regular file whole. A FIFO, a device, a socket or a directory is
/// refused without blocking on it, and so is a file over [`MAX_FILE_BYTES`].
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    // Opened without blocking (a FIFO's open would wait for a writer),
    // then judged by what was opened, not by a name that may change.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            use std::os::unix::fs::FileTypeExt;
            let kind = meta.file_type();
            if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_socket() {
                "a socket"
            } else if kind.is_char_device() || kind.is_block_device() {
                "a device"
            } else {
                "not a regular file"
            }
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file"),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    read_bounded(file)
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is larger than {} MiB", MAX_FILE_BYTES >> 20),
    )
}

/// Reads at most [`MAX_FILE_BYTES`] (a file may grow while it is read).
fn read_bounded(file: File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let error = read_regular(&fifo).unwrap_err();
        assert_eq!(error.to_string(), "it is a FIFO, not a regular file");
        assert!(
            read_regular(dir.path())
                .unwrap_err()
                .to_string()
                .contains("a directory")
        );
        assert!(
            read_regular(Path::new("/dev/zero"))
                .unwrap_err()
                .to_string()
                .contains("a device")
        );
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(read_regular(&file).unwrap(), b"x");
    }
}
