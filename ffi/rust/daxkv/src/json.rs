//! Just enough JSON to learn the device paths of an LMCache configuration
//! (the library keeps a configuration opaque, and a failed open must not
//! leave behind the arena files it created). The library parses and
//! validates the document first; this reader only runs on text it accepted.

#[derive(Debug, PartialEq)]
enum Value {
    Other,
    Str(String),
    Arr(Vec<Value>),
    Obj(Vec<(String, Value)>),
}

// Deeper documents are refused by the library already; the limit keeps
// the recursion bounded whatever the input.
const MAX_DEPTH: usize = 128;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.s.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match *self.s.get(self.i)? {
            b'"' => self.string().map(Value::Str),
            b'[' => {
                self.i += 1;
                let mut v = Vec::new();
                if self.eat(b']').is_some() {
                    return Some(Value::Arr(v));
                }
                loop {
                    v.push(self.value(depth + 1)?);
                    if self.eat(b']').is_some() {
                        return Some(Value::Arr(v));
                    }
                    self.eat(b',')?;
                }
            }
            b'{' => {
                self.i += 1;
                let mut v = Vec::new();
                if self.eat(b'}').is_some() {
                    return Some(Value::Obj(v));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    v.push((k, self.value(depth + 1)?));
                    if self.eat(b'}').is_some() {
                        return Some(Value::Obj(v));
                    }
                    self.eat(b',')?;
                }
            }
            _ => {
                // A number, true, false or null: skipped.
                let start = self.i;
                while self.i < self.s.len() && !matches!(self.s[self.i], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
                    self.i += 1;
                }
                (self.i > start).then_some(Value::Other)
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        if self.s.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2)? != b"\\u" {
                                    return None;
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + lo.checked_sub(0xDC00)?
                            } else {
                                hi
                            };
                            char::from_u32(cp)?
                        }
                        _ => return None,
                    };
                    let mut b = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                }
                c => out.push(c),
            }
        }
    }
}

fn field<'v>(obj: &'v [(String, Value)], key: &str) -> Option<&'v Value> {
    // Duplicate keys: the last one counts, as in the library's parser.
    obj.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The "device_path" values of an LMCache dax configuration: the top-level
/// one and those of the "devices" list. Empty when the text does not parse.
pub(crate) fn device_paths(text: &str) -> Vec<String> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let Some(Value::Obj(doc)) = p.value(0) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(Value::Str(s)) = field(&doc, "device_path") {
        out.push(s.clone());
    }
    if let Some(Value::Arr(devs)) = field(&doc, "devices") {
        for d in devs {
            if let Value::Obj(d) = d {
                if let Some(Value::Str(s)) = field(d, "device_path") {
                    out.push(s.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::device_paths;

    #[test]
    fn finds_both_forms() {
        assert_eq!(device_paths(r#"{"device_path": "/dev/dax0.0", "max_dax_size_gb": 1.5}"#), vec!["/dev/dax0.0"]);
        let j = r#"{ "slot_bytes": 4096, "devices": [ {"device_path": "/a\"b", "max_dax_size_gb": 1},
                    {"max_dax_size_gb": 2, "device_path": "/c\u00e9\ud83d\ude00"} ], "x": [true, null, {"y": []}] }"#;
        assert_eq!(device_paths(j), vec!["/a\"b", "/c\u{e9}\u{1F600}"]);
        assert!(device_paths("[1]").is_empty());
        assert!(device_paths("{").is_empty());
        assert!(device_paths(&"[".repeat(100_000)).is_empty());
    }
}
