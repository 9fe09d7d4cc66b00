//! `--group-by`: the lines that share a value in a column go to one job together, as one
//! record (GNU parallel's `--pipe --group-by`).
//!
//! Done as GNU parallel does it: a marker is put before each line whose value differs from the
//! line before, and the markers are where records start (`--recstart`, no `--recend`), taken
//! out of each block as `--rrs` takes separators out. Everything that cuts blocks then works
//! on groups unchanged: `-N1` gives each job one group, `--block` blocks of whole groups,
//! `--round-robin` deals groups. herd puts the markers in as it reads (GNU parallel runs a
//! `perl` filter in front of itself for that). The marker is random, so data cannot hold it.

use crate::input::Columns;
use std::io::{self, BufRead, BufReader, Read};

/// The column whose value groups lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// Counted from 1.
    Number(usize),
    /// Named by the header line (the input's first line).
    Name(Vec<u8>),
}

impl Column {
    /// Where a name stands in `header` (a line), from 0; `option` names the option in the
    /// error, which lists the header's columns.
    pub fn find_in(
        name: &[u8],
        header: &[u8],
        colsep: &Columns,
        option: &str,
    ) -> Result<usize, String> {
        let names = colsep.split(header.strip_suffix(b"\n").unwrap_or(header));
        names.iter().position(|n| n == name).ok_or_else(|| {
            let have: Vec<String> = names
                .iter()
                .map(|n| format!("'{}'", String::from_utf8_lossy(n)))
                .collect();
            format!(
                "{option} {}: the header has no such column (it has {})",
                String::from_utf8_lossy(name),
                have.join(", ")
            )
        })
    }
}

/// The value in column `index` (from 0) of `line`, its newline left out; empty when the line
/// has no such column.
pub fn value_of(line: &[u8], index: usize, colsep: &Columns) -> Vec<u8> {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    colsep
        .split(text)
        .into_iter()
        .nth(index)
        .unwrap_or_default()
}

/// How `--group-by` groups: by `column` split with `colsep` (a TAB by default, as in GNU
/// parallel), groups marked with `marker`.
#[derive(Debug, Clone)]
pub struct GroupBy {
    pub column: Column,
    pub colsep: Columns,
    pub marker: Vec<u8>,
}

/// `--group-by`'s value: a column number or name. GNU parallel also takes a Perl expression
/// (alone or after the column); herd does not have that yet, and says so.
pub fn parse(text: &str) -> Result<Column, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<usize>() {
        return match n {
            0 => Err("invalid value '0' for --group-by: columns count from 1".into()),
            n => Ok(Column::Number(n)),
        };
    }
    let name = t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if name {
        return Ok(Column::Name(t.as_bytes().to_vec()));
    }
    Err(format!(
        "--group-by '{text}': a Perl expression in --group-by is not available yet; give a \
         column number or a column name"
    ))
}

/// A marker that cannot be in the data: 20 random letters and digits, as GNU parallel's (its
/// length counts in `--block`, as there).
pub fn marker() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bits = [0u64; 2].map(|_| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    (0..20)
        .map(|i| {
            let word = &mut bits[i % 2];
            let digit = DIGITS[(*word % 62) as usize];
            *word /= 62;
            digit
        })
        .collect()
}

/// The input with a marker before each group of lines.
pub struct Marked<R> {
    input: BufReader<R>,
    column: Column,
    colsep: Columns,
    marker: Vec<u8>,
    /// Lines of the header, passed on as they are.
    header_lines: usize,
    /// The column's index, once known (a name is looked up in the header).
    index: Option<usize>,
    /// The value of the group being read.
    last: Option<Vec<u8>>,
    /// What is ready to be read, from `at` on.
    out: Vec<u8>,
    at: usize,
}

impl<R: Read> Marked<R> {
    pub fn new(
        input: R,
        column: Column,
        colsep: Columns,
        marker: Vec<u8>,
        header_lines: usize,
    ) -> Marked<R> {
        let index = match column {
            Column::Number(n) => Some(n - 1),
            Column::Name(_) => None,
        };
        Marked {
            input: BufReader::with_capacity(1 << 16, input),
            column,
            colsep,
            marker,
            header_lines,
            index,
            last: None,
            out: Vec::new(),
            at: 0,
        }
    }

    /// Reads the next line into `out`, with a marker before it if it starts a group. False at
    /// the end of the input.
    fn next_line(&mut self) -> io::Result<bool> {
        self.out.clear();
        self.at = 0;
        let mut line = Vec::new();
        if self.input.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        if self.header_lines > 0 {
            self.header_lines -= 1;
            if let (None, Column::Name(name)) = (self.index, &self.column) {
                let found = Column::find_in(name, &line, &self.colsep, "--group-by");
                self.index = Some(found.map_err(io::Error::other)?);
            }
            self.out = line;
            return Ok(true);
        }
        let value = value_of(&line, self.index.unwrap_or(0), &self.colsep);
        if self.last.as_ref() != Some(&value) {
            self.out.extend_from_slice(&self.marker);
            self.last = Some(value);
        }
        self.out.extend_from_slice(&line);
        Ok(true)
    }
}

impl<R: Read> Read for Marked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut given = 0;
        while given < buf.len() {
            if self.at == self.out.len() && !self.next_line()? {
                break;
            }
            let n = (self.out.len() - self.at).min(buf.len() - given);
            buf[given..given + n].copy_from_slice(&self.out[self.at..self.at + n]);
            self.at += n;
            given += n;
        }
        Ok(given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(input: &str, column: Column, header_lines: usize) -> String {
        let colsep = Columns::Regex(regex::bytes::Regex::new(",").unwrap());
        let mut out = String::new();
        Marked::new(
            input.as_bytes(),
            column,
            colsep,
            b"|".to_vec(),
            header_lines,
        )
        .read_to_string(&mut out)
        .unwrap();
        out
    }

    #[test]
    fn a_marker_starts_each_group() {
        let table = "123,1\n123,2\n12-3,1\n221,3\n221,1\n2/21,5";
        assert_eq!(
            marked(table, Column::Number(1), 0),
            "|123,1\n123,2\n|12-3,1\n|221,3\n221,1\n|2/21,5"
        );
        assert_eq!(
            marked(&format!("Id,n\n{table}"), Column::Name(b"Id".to_vec()), 1),
            "Id,n\n|123,1\n123,2\n|12-3,1\n|221,3\n221,1\n|2/21,5"
        );
        // A missing column is an empty value.
        assert_eq!(
            marked("a\nb,1\nc,1\n", Column::Number(2), 0),
            "|a\n|b,1\nc,1\n"
        );
    }

    #[test]
    fn values_are_columns_or_refused() {
        assert_eq!(parse("2"), Ok(Column::Number(2)));
        assert_eq!(parse("UserID"), Ok(Column::Name(b"UserID".to_vec())));
        assert!(parse("0").unwrap_err().contains("count from 1"));
        assert!(parse("UserID s/\\D//g")
            .unwrap_err()
            .contains("not available yet"));
        assert_ne!(marker(), marker());
    }
}
