//! Pretty JSON, byte for byte as `serde_json::to_string_pretty` writes it, but
//! with each line break and its indentation written in one call.
//!
//! serde_json's `PrettyFormatter` writes the indentation two spaces at a time,
//! one `write_all` each: for `list` at a thousand programs that is about a
//! hundred thousand tiny writes, a tenth of the command's instructions.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

/// A line break, then enough indentation for any depth bpfman's output has;
/// deeper levels fall back to a loop.
const BREAK: &[u8] = b",\n                                                                ";
/// Spaces per level, as `to_string_pretty`.
const STEP: usize = 2;

/// The formatter; see the module doc.
#[derive(Debug, Default)]
pub struct Pretty {
    depth: usize,
    has_value: bool,
}

impl Pretty {
    /// `,` (unless `first`), a line break and the indentation of the depth.
    fn line<W: ?Sized + Write>(&self, w: &mut W, first: bool) -> io::Result<()> {
        let from = usize::from(first);
        let width = self.depth * STEP;
        let end = 2 + width;
        if end <= BREAK.len() {
            return w.write_all(&BREAK[from..end]);
        }
        w.write_all(&BREAK[from..2])?;
        for _ in 0..width {
            w.write_all(b" ")?;
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(&mut self, w: &mut W, c: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(c)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, c: &[u8]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.line(w, true)?;
        }
        w.write_all(c)
    }
}

impl Formatter for Pretty {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.line(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.line(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Writes `v` as pretty JSON to `w`.
pub fn to_writer<W: Write, T: ?Sized + Serialize>(w: W, v: &T) -> serde_json::Result<()> {
    v.serialize(&mut serde_json::Serializer::with_formatter(
        w,
        Pretty::default(),
    ))
}

/// `v` as pretty JSON.
pub fn to_string<T: ?Sized + Serialize>(v: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(256);
    to_writer(&mut out, v)?;
    // serde_json writes UTF-8 only: its strings are `str`s, escaped or not.
    String::from_utf8(out).map_err(serde::ser::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn same(v: &serde_json::Value) {
        assert_eq!(
            to_string(v).unwrap(),
            serde_json::to_string_pretty(v).unwrap(),
            "{v}"
        );
    }

    #[test]
    fn writes_what_serde_json_pretty_writes() {
        same(&json!(null));
        same(&json!(1));
        same(&json!("a\"b\n"));
        same(&json!([]));
        same(&json!({}));
        same(&json!([[], {}, [1], {"a": []}]));
        same(&json!({"id": 7, "m": {"k": "v", "e": {}}, "l": [1, 2, {"x": [null]}]}));
        same(&json!([{"a": 1}, {"b": [true, false]}]));
    }

    #[test]
    fn deeper_than_the_indent_buffer_falls_back_to_spaces() {
        let mut v = json!("leaf");
        for i in 0..70 {
            v = if i % 2 == 0 {
                json!([v, i])
            } else {
                json!({ "k": v })
            };
        }
        same(&v);
    }
}
