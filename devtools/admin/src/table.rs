//! Plain-text tables for people: columns as wide as their widest cell, long cells cut.

/// A cell longer than this is cut with an ellipsis; `--json` has the whole text.
const MAX_CELL: usize = 60;

pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        let cells = cells
            .into_iter()
            .map(|c| {
                // One line per row: newlines and tabs in stored text would break the columns.
                let c: String = c.chars().map(|ch| if ch.is_control() { ' ' } else { ch }).collect();
                if c.chars().count() > MAX_CELL {
                    format!("{}…", c.chars().take(MAX_CELL - 1).collect::<String>())
                } else {
                    c
                }
            })
            .collect();
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows.iter().map(|r| r[i].chars().count()).chain([self.headers[i].chars().count()]).max().unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> =
                cells.iter().zip(&widths).map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count()))).collect();
            padded.join("  ").trim_end().to_string()
        };
        let mut out = vec![line(&self.headers)];
        out.extend(self.rows.iter().map(|r| line(r)));
        if self.rows.is_empty() {
            out.push("(none)".into());
        }
        out.join("\n")
    }
}

/// `1990000` → `1.990.000 ₫`, as Vietnamese prices are written.
pub fn vnd(amount: i64) -> String {
    coursedrop::domain::format_vnd(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_grouped_the_vietnamese_way() {
        assert_eq!(vnd(0), "0 ₫");
        assert_eq!(vnd(999), "999 ₫");
        assert_eq!(vnd(1_990_000), "1.990.000 ₫");
        assert_eq!(vnd(-25_000), "-25.000 ₫");
    }

    #[test]
    fn columns_line_up_and_control_characters_cannot_break_them() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["xyz\ninjected".into(), "1".into()]);
        t.row(vec!["ô".into(), "22".into()]);
        let out = t.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(lines[0], "A             LONGER");
        assert_eq!(lines[1], "xyz injected  1");
        assert_eq!(lines[2], "ô             22");
    }
}
