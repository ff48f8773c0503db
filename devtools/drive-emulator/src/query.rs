//! The `q` search language of `files.list`, for the forms coursedrop uses:
//! `name = '…'`, `name != '…'`, `'<id>' in parents`, `trashed = true|false`,
//! `mimeType = '…'`, `mimeType != '…'`, joined by `and` (any case), with the spacing Drive
//! accepts. Strings take `\'` and `\\` escapes, as Drive documents.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Name { equal: bool, value: String },
    MimeType { equal: bool, value: String },
    InParents(String),
    Trashed(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(String),
    Op(&'static str),
}

impl Lexer<'_> {
    fn tokens(mut self) -> Result<Vec<Token>, QueryError> {
        let mut out = Vec::new();
        while self.i < self.s.len() {
            let c = self.s[self.i];
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => self.i += 1,
                b'\'' => out.push(Token::Str(self.string()?)),
                b'=' => {
                    out.push(Token::Op("="));
                    self.i += 1;
                }
                b'!' if self.s.get(self.i + 1) == Some(&b'=') => {
                    out.push(Token::Op("!="));
                    self.i += 2;
                }
                c if c.is_ascii_alphanumeric() || c == b'_' => {
                    let start = self.i;
                    while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
                        self.i += 1;
                    }
                    out.push(Token::Word(String::from_utf8_lossy(&self.s[start..self.i]).into_owned()));
                }
                other => return Err(QueryError(format!("unexpected character {:?}", other as char))),
            }
        }
        Ok(out)
    }

    fn string(&mut self) -> Result<String, QueryError> {
        self.i += 1;
        let mut bytes = Vec::new();
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'\\' if self.i + 1 < self.s.len() => {
                    bytes.push(self.s[self.i + 1]);
                    self.i += 2;
                }
                b'\'' => {
                    self.i += 1;
                    return String::from_utf8(bytes).map_err(|_| QueryError("string is not UTF-8".into()));
                }
                b => {
                    bytes.push(b);
                    self.i += 1;
                }
            }
        }
        Err(QueryError("unterminated string".into()))
    }
}

pub fn parse(q: &str) -> Result<Vec<Term>, QueryError> {
    let tokens = Lexer { s: q.as_bytes(), i: 0 }.tokens()?;
    let mut terms = Vec::new();
    let mut rest = tokens.as_slice();
    loop {
        let (term, tail) = match rest {
            [Token::Word(f), Token::Op(op), Token::Str(v), tail @ ..] if f == "name" || f == "mimeType" => {
                let equal = *op == "=";
                let term = if f == "name" {
                    Term::Name { equal, value: v.clone() }
                } else {
                    Term::MimeType { equal, value: v.clone() }
                };
                (term, tail)
            }
            [Token::Str(id), Token::Word(w), Token::Word(p), tail @ ..] if w == "in" && p == "parents" => {
                (Term::InParents(id.clone()), tail)
            }
            [Token::Word(f), Token::Op("="), Token::Word(b), tail @ ..]
                if f == "trashed" && (b == "true" || b == "false") =>
            {
                (Term::Trashed(b == "true"), tail)
            }
            _ => return Err(QueryError(format!("Invalid Value: cannot parse {q:?}"))),
        };
        terms.push(term);
        match tail {
            [] => return Ok(terms),
            [Token::Word(and), next @ ..] if and.eq_ignore_ascii_case("and") && !next.is_empty() => rest = next,
            _ => return Err(QueryError(format!("Invalid Value: expected 'and' in {q:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_we_use_with_any_spacing() {
        assert_eq!(
            parse("name = 'Bài 1 \\'intro\\'.mp4' and 'abc123' in parents and trashed = false").unwrap(),
            vec![
                Term::Name { equal: true, value: "Bài 1 'intro'.mp4".into() },
                Term::InParents("abc123".into()),
                Term::Trashed(false)
            ]
        );
        assert_eq!(
            parse("mimeType='application/vnd.google-apps.folder'AND trashed=true").unwrap(),
            vec![
                Term::MimeType { equal: true, value: "application/vnd.google-apps.folder".into() },
                Term::Trashed(true)
            ]
        );
        assert_eq!(parse("mimeType != 'x'").unwrap(), vec![Term::MimeType { equal: false, value: "x".into() }]);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for q in ["", "name = ", "name = 'x' and", "name = 'x' or trashed = false", "size > 5", "name = 'unterminated"]
        {
            assert!(parse(q).is_err(), "{q:?}");
        }
    }
}
