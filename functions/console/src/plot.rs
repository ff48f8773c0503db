//! Plots drawn on the server as SVG: no script, no chart library in the browser, and a
//! picture that scales to a phone's width. Every label is a number or a date we format, and
//! is escaped anyway.

use std::fmt::Write;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A bar per value, labelled under the first, middle and last bars, with the largest value
/// written at the top left. `fmt` writes a value as the reader reads it. `title` is the
/// picture's accessible name.
pub fn bars(title: &str, points: &[(String, i64)], fmt: impl Fn(i64) -> String) -> String {
    const W: f64 = 600.0;
    const H: f64 = 180.0;
    const TOP: f64 = 20.0;
    const BOTTOM: f64 = 24.0;
    let max = points.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let n = points.len().max(1) as f64;
    let slot = W / n;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg class="plot" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"##,
        t = escape(title)
    );
    let _ =
        write!(svg, r##"<line x1="0" y1="{y}" x2="{W}" y2="{y}" stroke="#ccd" stroke-width="1"/>"##, y = H - BOTTOM);
    let _ = write!(svg, r##"<text x="2" y="12" font-size="11" fill="#556">{}</text>"##, escape(&fmt(max)));
    for (i, (label, value)) in points.iter().enumerate() {
        let h = (H - TOP - BOTTOM) * (*value).max(0) as f64 / max as f64;
        let x = i as f64 * slot + slot * 0.15;
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="#1a56db"><title>{l}: {v}</title></rect>"##,
            y = H - BOTTOM - h,
            w = slot * 0.7,
            l = escape(label),
            v = escape(&fmt(*value)),
        );
        if i == 0 || i + 1 == points.len() || i == points.len() / 2 {
            let _ = write!(
                svg,
                r##"<text x="{x:.1}" y="{y}" font-size="11" fill="#556">{l}</text>"##,
                x = (i as f64 * slot).min(W - 40.0),
                y = H - 6.0,
                l = escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_point_scaled_to_the_largest() {
        let svg =
            bars("Revenue", &[("01/12".into(), 50), ("02/12".into(), 100), ("03/12".into(), 0)], |v| v.to_string());
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains(r#"height="136.0""#), "the largest fills the height: {svg}");
        assert!(svg.contains(r#"height="68.0""#), "half of it half: {svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(!bars("<x>", &[], |v| v.to_string()).contains("<x>"));
    }
}
