//! A backup script's output, read as it arrives: its `key=value` lines
//! (`orchestrator_version=`, `size=`), then `data=` and the archive in
//! base64 to the end of that line, decoded into a writer as it comes. So an
//! archive of any size passes through in bounded memory, never whole.

use std::io::Write;
use std::ops::ControlFlow;

use base64::Engine;

use super::ShellError;

/// The most read before `data=`: the lines a backup script prints first.
const HEADER_LIMIT: usize = 64 * 1024;
/// Base64 decoded at a time.
const BATCH: usize = 256 * 1024;

/// What a backup script said of its archive, besides the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// The archive's size, as decoded and as the script announced it.
    pub size: u64,
    /// The orchestrator's version on the node, in a version's form
    /// (`unknown` otherwise: what a node prints is untrusted).
    pub orchestrator_version: String,
}

enum State {
    Header,
    Data,
    Done,
}

/// Decodes a backup script's output into `to` as chunks arrive; see the
/// module's documentation.
pub struct ArchiveOutput<'w> {
    to: &'w mut (dyn Write + Send),
    state: State,
    header: Vec<u8>,
    base64: Vec<u8>,
    decoded: u64,
    /// Bytes of output taken, against `limit`.
    taken: u64,
    limit: u64,
    problem: Option<String>,
    over: bool,
}

impl<'w> ArchiveOutput<'w> {
    pub fn new(to: &'w mut (dyn Write + Send), limit: u64) -> ArchiveOutput<'w> {
        ArchiveOutput {
            to,
            state: State::Header,
            header: Vec::new(),
            base64: Vec::new(),
            decoded: 0,
            taken: 0,
            limit,
            problem: None,
            over: false,
        }
    }

    /// Takes one chunk of output; `Break` once it cannot go on (past the
    /// limit, not base64, the writer failed).
    pub fn take(&mut self, chunk: &[u8]) -> ControlFlow<()> {
        self.taken += chunk.len() as u64;
        if self.taken > self.limit {
            self.over = true;
            return ControlFlow::Break(());
        }
        match self.take_bytes(chunk) {
            Ok(()) => ControlFlow::Continue(()),
            Err(problem) => {
                self.problem = Some(problem);
                ControlFlow::Break(())
            }
        }
    }

    fn take_bytes(&mut self, mut chunk: &[u8]) -> Result<(), String> {
        while !chunk.is_empty() {
            match self.state {
                State::Header => {
                    let end = chunk.iter().position(|b| *b == b'\n');
                    let line_part = &chunk[..end.map_or(chunk.len(), |e| e + 1)];
                    self.header.extend_from_slice(line_part);
                    chunk = &chunk[line_part.len()..];
                    // The current line: after the header's last newline.
                    let line_start = self.header[..self.header.len() - usize::from(end.is_some())]
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map_or(0, |p| p + 1);
                    if self.header[line_start..].starts_with(b"data=") {
                        let data: Vec<u8> = self.header.drain(line_start..).skip(5).collect();
                        self.state = State::Data;
                        self.take_data(&data)?;
                    } else if self.header.len() > HEADER_LIMIT {
                        return Err(format!(
                            "more than {HEADER_LIMIT} bytes before the archive's data"
                        ));
                    }
                }
                State::Data => {
                    self.take_data(chunk)?;
                    chunk = &[];
                }
                // What follows the archive's line is not read.
                State::Done => chunk = &[],
            }
        }
        Ok(())
    }

    fn take_data(&mut self, data: &[u8]) -> Result<(), String> {
        let end = data.iter().position(|b| *b == b'\n' || *b == b'\r');
        self.base64
            .extend_from_slice(&data[..end.unwrap_or(data.len())]);
        if end.is_some() {
            self.decode(self.base64.len())?;
            self.state = State::Done;
        } else if self.base64.len() >= BATCH {
            // Whole groups of four only: the rest waits for its end.
            self.decode(self.base64.len() / 4 * 4)?;
        }
        Ok(())
    }

    fn decode(&mut self, len: usize) -> Result<(), String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.base64[..len])
            .map_err(|_| "the archive is not base64".to_string())?;
        self.base64.drain(..len);
        self.to
            .write_all(&bytes)
            .map_err(|e| format!("the archive could not be written here: {e}"))?;
        self.decoded += bytes.len() as u64;
        Ok(())
    }

    /// Whether reading stopped short (past the limit, not base64, the
    /// writer failed): then the script's exit status (the closed channel's)
    /// says nothing, and [`finish`](Self::finish) says why.
    pub fn stopped(&self) -> bool {
        self.over || self.problem.is_some()
    }

    /// What the script said of the archive, once its output has ended; an
    /// error when the archive did not arrive whole.
    pub fn finish(mut self, node: &str, script: &str) -> Result<ArchiveInfo, ShellError> {
        let unreadable = |m: &str| ShellError::unreadable(node, script, m.to_string());
        if self.over {
            return Err(ShellError::OutputLimit {
                node: node.to_string(),
                script: script.to_string(),
                limit: self.limit as usize,
            });
        }
        if let Some(problem) = self.problem.take() {
            return Err(unreadable(&problem));
        }
        match self.state {
            State::Header => return Err(unreadable("the manager printed no archive")),
            // Output that ends without the line's end: the rest is the archive.
            State::Data => {
                self.decode(self.base64.len())
                    .map_err(|problem| unreadable(&problem))?;
            }
            State::Done => {}
        }
        self.to
            .flush()
            .map_err(|e| unreadable(&format!("the archive could not be written here: {e}")))?;
        let header = String::from_utf8_lossy(&self.header);
        let size: u64 = super::shell::field(&header, "size")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| unreadable("the manager printed no archive size"))?;
        if size != self.decoded {
            return Err(unreadable("the archive arrived cut short"));
        }
        Ok(ArchiveInfo {
            size,
            // What the node says of itself goes into the manifest and an
            // event: only in the form a version has.
            orchestrator_version: super::shell::field(&header, "orchestrator_version")
                .filter(|v| {
                    v.len() <= 64
                        && v.chars()
                            .all(|c| c.is_ascii_alphanumeric() || ".+-~_".contains(c))
                })
                .unwrap_or("unknown")
                .to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(output: &[u8], split: usize, limit: u64) -> (Result<ArchiveInfo, ShellError>, Vec<u8>) {
        let mut archive = Vec::new();
        let result = {
            let mut reader = ArchiveOutput::new(&mut archive, limit);
            for chunk in output.chunks(split.max(1)) {
                if reader.take(chunk).is_break() {
                    break;
                }
            }
            reader.finish("m1", "swarm/backup.sh")
        };
        (result, archive)
    }

    fn output(version: &str, size: usize, data: &[u8]) -> Vec<u8> {
        format!(
            "orchestrator_version={version}\nsize={size}\ndata={}\n",
            base64::engine::general_purpose::STANDARD.encode(data)
        )
        .into_bytes()
    }

    #[test]
    fn an_archive_is_decoded_as_it_arrives_whatever_the_chunks() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 31 % 256) as u8).collect();
        let out = output("24.0.7", data.len(), &data);
        for split in [1, 3, 4, 5, 4096, 65_537, out.len()] {
            if split == 1 && out.len() > 100_000 {
                // One byte a chunk over 900 KB: the small archive below covers it.
                continue;
            }
            let (info, archive) = read(&out, split, u64::MAX);
            let info = info.unwrap();
            assert_eq!(info.size, data.len() as u64);
            assert_eq!(info.orchestrator_version, "24.0.7");
            assert_eq!(archive, data, "split {split}");
        }
        let small = output("1.7.1", 5, b"hello");
        let (info, archive) = read(&small, 1, u64::MAX);
        assert_eq!((info.unwrap().size, archive), (5, b"hello".to_vec()));
    }

    #[test]
    fn an_archive_cut_short_not_base64_unannounced_or_too_long_is_refused() {
        let data = b"0123456789".repeat(100);
        let out = output("x", data.len(), &data);
        let cut = &out[..out.len() - 20];
        let e = read(cut, 7, u64::MAX).0.unwrap_err().to_string();
        assert!(e.contains("cut short") || e.contains("not base64"), "{e}");
        let e = read(b"size=3\ndata=!!!!\n", 4, u64::MAX)
            .0
            .unwrap_err()
            .to_string();
        assert!(e.contains("not base64"), "{e}");
        let e = read(b"size=3\n", 4, u64::MAX).0.unwrap_err().to_string();
        assert!(e.contains("printed no archive"), "{e}");
        let e = read(b"data=YWJj\n", 4, u64::MAX).0.unwrap_err().to_string();
        assert!(e.contains("no archive size"), "{e}");
        let e = read(&out, 64, 100).0.unwrap_err();
        assert!(
            matches!(e, ShellError::OutputLimit { limit: 100, .. }),
            "{e}"
        );
        let e = read(&vec![b'x'; HEADER_LIMIT + 10], 4096, u64::MAX)
            .0
            .unwrap_err()
            .to_string();
        assert!(e.contains("before the archive"), "{e}");
        // A version in another form is not passed on.
        let odd = output("$(reboot)", 3, b"abc");
        assert_eq!(
            read(&odd, 5, u64::MAX).0.unwrap().orchestrator_version,
            "unknown"
        );
    }
}
