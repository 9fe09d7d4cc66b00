//! `--pipe`: standard input cut into blocks of whole records, one block per job's stdin.
//!
//! A block is about `--block` bytes: what was read, less the last, partial record, which
//! starts the next block (GNU parallel's rule). A record longer than a block makes its block
//! longer, never cut. Records end with `--recend` (a newline by default) and, when
//! `--recstart` is given, the next starts with it: a block is cut only between the two.

use std::io::{self, Read};

/// How input is cut.
#[derive(Debug, Clone)]
pub struct BlockSpec {
    /// `--block`: the size to aim at.
    pub size: usize,
    /// `--recend`: what ends a record (empty: anything may end one).
    pub recend: Vec<u8>,
    /// `--recstart`: what starts a record (empty: anything may start one).
    pub recstart: Vec<u8>,
    /// `-N`: exactly this many records a block (the last may have fewer), whatever its size.
    pub records: Option<usize>,
}

/// `--block`'s default, as GNU parallel's.
pub const DEFAULT_BLOCK: usize = 1 << 20;

/// The blocks of a stream.
pub struct Blocks<R> {
    reader: R,
    spec: BlockSpec,
    /// Read and not yet given out: the start of the next block.
    buf: Vec<u8>,
    eof: bool,
}

impl<R: Read> Blocks<R> {
    pub fn new(reader: R, spec: BlockSpec) -> Blocks<R> {
        Blocks {
            reader,
            spec,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Reads until `buf` holds `want` bytes or the input ends (into the buffer's spare room:
    /// nothing is zeroed or copied twice).
    fn fill(&mut self, want: usize) -> io::Result<()> {
        if self.buf.len() < want && !self.eof {
            let need = (want - self.buf.len()) as u64;
            let got = (&mut self.reader).take(need).read_to_end(&mut self.buf)?;
            if (got as u64) < need {
                self.eof = true;
            }
        }
        Ok(())
    }

    /// The next block, or `None` at the end of the input.
    pub fn next_block(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(n) = self.spec.records {
            return self.next_records(n);
        }
        let size = self.spec.size.max(1);
        self.fill(size)?;
        loop {
            if self.buf.is_empty() {
                return Ok(None);
            }
            if self.eof && self.buf.len() <= size {
                // The rest is the last block, whatever it ends with.
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            let within = size.min(self.buf.len());
            // The last boundary within the block's size; else the end of the record that
            // crosses it (a record longer than a block is kept whole).
            let cut = last_boundary(&self.buf[..within], &self.spec)
                .or_else(|| first_boundary_from(&self.buf, within, &self.spec));
            if let Some(cut) = cut {
                let rest = self.buf.split_off(cut);
                return Ok(Some(std::mem::replace(&mut self.buf, rest)));
            }
            if self.eof {
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            let more = self.buf.len().saturating_mul(2);
            self.fill(more)?;
        }
    }
}

impl<R: Read> Blocks<R> {
    /// `-N n`: the next `n` records, reading `--block` bytes at a time until they are in.
    fn next_records(&mut self, n: usize) -> io::Result<Option<Vec<u8>>> {
        let step = self.spec.size.max(1);
        let mut want = step;
        loop {
            self.fill(want)?;
            if self.buf.is_empty() {
                return Ok(None);
            }
            if let Some(cut) = nth_boundary(&self.buf, n, &self.spec) {
                let rest = self.buf.split_off(cut);
                return Ok(Some(std::mem::replace(&mut self.buf, rest)));
            }
            if self.eof {
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            want = self.buf.len().saturating_add(step);
        }
    }
}

/// The end of the `n`th record in `data`, if `n` records are there.
fn nth_boundary(data: &[u8], n: usize, spec: &BlockSpec) -> Option<usize> {
    let pair = [&spec.recend[..], &spec.recstart[..]].concat();
    if pair.is_empty() {
        // No records: every byte may end one.
        return (data.len() >= n).then_some(n);
    }
    memchr::memmem::find_iter(data, &pair)
        .map(|i| i + spec.recend.len())
        .filter(|&cut| cut > 0)
        .nth(n.max(1) - 1)
}

/// The first record boundary at or after `from` in `data`.
fn first_boundary_from(data: &[u8], from: usize, spec: &BlockSpec) -> Option<usize> {
    let pair = [&spec.recend[..], &spec.recstart[..]].concat();
    if pair.is_empty() {
        return (data.len() > from).then_some(data.len());
    }
    let start = from.saturating_sub(pair.len() - 1);
    let i = start + memchr::memmem::find(&data[start..], &pair)?;
    let cut = i + spec.recend.len();
    (cut > 0).then_some(cut)
}

/// Where the last record boundary in `data` is (a cut there leaves whole records before it),
/// if there is one past the start.
fn last_boundary(data: &[u8], spec: &BlockSpec) -> Option<usize> {
    let (end, start) = (&spec.recend[..], &spec.recstart[..]);
    let pair = [end, start].concat();
    if pair.is_empty() {
        return (!data.is_empty()).then_some(data.len());
    }
    // The last occurrence of recend+recstart: the cut goes between the two (not at the very
    // start, which would give an empty block).
    let cut = memchr::memmem::rfind(data, &pair)? + end.len();
    (cut > 0).then_some(cut)
}

/// `--block SIZE`: bytes, with GNU parallel's suffixes (k, M, G, T, P, either case; powers of
/// 1024).
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let n: f64 = digits.parse().ok()?;
    let shift = match unit {
        "" | "b" | "B" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        _ => return None,
    };
    let bytes = n * (1u64 << shift) as f64;
    (bytes >= 1.0 && bytes < usize::MAX as f64).then_some(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit_free::*;

    /// A tiny generator: deterministic, no dependency.
    mod testkit_free {
        pub struct Rng(pub u64);
        impl Rng {
            pub fn below(&mut self, n: u64) -> u64 {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (self.0 >> 33) % n
            }
        }
    }

    /// A reader that gives out at most `step` bytes a read: blocks must not depend on it.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn blocks(data: &[u8], spec: BlockSpec, step: usize) -> Vec<Vec<u8>> {
        let mut b = Blocks::new(Trickle(data, step), spec);
        let mut out = Vec::new();
        while let Some(block) = b.next_block().unwrap() {
            out.push(block);
        }
        out
    }

    fn spec(size: usize, recend: &str, recstart: &str) -> BlockSpec {
        BlockSpec {
            size,
            recend: recend.as_bytes().to_vec(),
            recstart: recstart.as_bytes().to_vec(),
            records: None,
        }
    }

    #[test]
    fn n_records_a_block() {
        let data = b"1\n22\n333\n4444\n55555\n6";
        for size in [1, 3, 100] {
            let mut s = spec(size, "\n", "");
            s.records = Some(2);
            let got = blocks(data, s, 2);
            assert_eq!(
                got,
                [
                    b"1\n22\n".to_vec(),
                    b"333\n4444\n".to_vec(),
                    b"55555\n6".to_vec()
                ],
                "block size {size}"
            );
        }
        // --recstart with -N: a record is from one start to the next.
        let mut s = spec(4, "", ">");
        s.records = Some(1);
        let got = blocks(b">a\nb\n>c\n>d\n", s, 3);
        assert_eq!(
            got,
            [b">a\nb\n".to_vec(), b">c\n".to_vec(), b">d\n".to_vec()]
        );
    }

    #[test]
    fn blocks_are_whole_records_and_give_back_the_input() {
        let mut rng = Rng(7);
        for round in 0..200 {
            let mut data = Vec::new();
            for _ in 0..rng.below(60) {
                let len = rng.below(if round % 5 == 0 { 300 } else { 20 });
                for _ in 0..len {
                    data.push(b'a' + rng.below(3) as u8);
                }
                data.push(b'\n');
            }
            if round % 3 == 0 {
                data.extend_from_slice(b"no final newline");
            }
            let size = 1 + rng.below(100) as usize;
            let step = 1 + rng.below(50) as usize;
            let got = blocks(&data, spec(size, "\n", ""), step);
            assert_eq!(got.concat(), data, "round {round}");
            for (i, block) in got.iter().enumerate() {
                assert!(!block.is_empty());
                if i + 1 < got.len() {
                    // Every block but the last ends a record.
                    assert!(block.ends_with(b"\n"), "round {round}: {block:?}");
                }
            }
        }
    }

    #[test]
    fn a_record_longer_than_a_block_is_not_cut() {
        let data = b"short\nthis record is far longer than a block\nx\n";
        let got = blocks(data, spec(8, "\n", ""), 3);
        assert_eq!(
            got,
            [
                b"short\n".to_vec(),
                b"this record is far longer than a block\n".to_vec(),
                b"x\n".to_vec()
            ]
        );
    }

    #[test]
    fn recstart_and_recend_cut_only_between_them() {
        // Records are "<r>...</r>\n"; a newline inside a record is not a boundary.
        let data = b"<r>a\nb</r>\n<r>c</r>\n<r>d\ne</r>\n";
        let got = blocks(data, spec(6, "</r>\n", "<r>"), 4);
        assert_eq!(got.concat(), data);
        for block in &got {
            assert!(
                block.starts_with(b"<r>") && block.ends_with(b"</r>\n"),
                "{block:?}"
            );
        }
    }

    #[test]
    fn sizes_take_gnu_suffixes() {
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("10k"), Some(10 << 10));
        assert_eq!(parse_size("1.5K"), Some(1536));
        assert_eq!(parse_size("300"), Some(300));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("1x"), None);
        assert_eq!(parse_size("0"), None);
    }
}
