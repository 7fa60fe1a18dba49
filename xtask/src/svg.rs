//! `benchmarks.svg`: one horizontal bar per workload with a ratio (evloop vs tokio
//! `current_thread`, log scale), its target as a black tick; green when met, red when
//! not. Hand-written SVG: a bar chart needs no plotting library.

use std::fmt::Write;

use crate::report::Row;

const LEFT: f64 = 250.0;
const WIDTH: f64 = 560.0;
const BAR: f64 = 18.0;
const GAP: f64 = 8.0;
const TOP: f64 = 50.0;
/// The axis spans 2^MIN_LOG2 ..= 2^MAX_LOG2.
const MIN_LOG2: f64 = -2.0;
const MAX_LOG2: f64 = 6.0;

/// Horizontal position of a ratio.
fn x(ratio: f64) -> f64 {
    let l = ratio.log2().clamp(MIN_LOG2, MAX_LOG2);
    LEFT + (l - MIN_LOG2) / (MAX_LOG2 - MIN_LOG2) * WIDTH
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "")
}

pub fn plot(rows: &[Row]) -> String {
    let plotted: Vec<&Row> = rows.iter().filter(|r| r.ratio.is_some()).collect();
    let height = TOP + plotted.len() as f64 * (BAR + GAP) + 50.0;
    let total = LEFT + WIDTH + 90.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="15" font-weight="bold">evloop vs tokio current_thread (ratio, log scale; tick = target)</text>"#
    );
    // Grid lines at powers of two.
    let bottom = height - 40.0;
    for p in (MIN_LOG2 as i32)..=(MAX_LOG2 as i32) {
        let r = 2f64.powi(p);
        let gx = x(r);
        let stroke = if p == 0 { "#444" } else { "#ddd" };
        let _ = writeln!(
            s,
            r#"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{bottom}" stroke="{stroke}"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">{}×</text>"#,
            bottom + 16.0,
            if r < 1.0 {
                format!("{r}")
            } else {
                format!("{r:.0}")
            }
        );
    }
    for (i, row) in plotted.iter().enumerate() {
        let y = TOP + i as f64 * (BAR + GAP);
        let ratio = row.ratio.unwrap_or(1.0);
        let (x0, x1) = if ratio >= 1.0 {
            (x(1.0), x(ratio))
        } else {
            (x(ratio), x(1.0))
        };
        let color = match row.met {
            Some(true) => "#3a9d4f",
            Some(false) => "#d0453a",
            None => "#999",
        };
        let label = format!("{} {}", row.id, row.short);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{BAR}" fill="{color}"/><text x="{:.1}" y="{:.1}">{ratio:.2}×</text>"#,
            LEFT - 8.0,
            y + BAR - 5.0,
            escape(&label),
            (x1 - x0).max(1.0),
            x1.max(x(row.target_ratio.unwrap_or(1.0))) + 6.0,
            y + BAR - 5.0,
        );
        if let Some(t) = row.target_ratio {
            let tx = x(t);
            let _ = writeln!(
                s,
                r#"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="black" stroke-width="2"/>"#,
                y - 2.0,
                y + BAR + 2.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::x;

    #[test]
    fn scale_is_logarithmic_and_clamped() {
        assert_eq!(x(1.0), super::LEFT + 0.25 * super::WIDTH);
        assert!((x(2.0) - x(1.0) - (x(4.0) - x(2.0))).abs() < 1e-9);
        assert_eq!(x(1e9), x(64.0));
        assert_eq!(x(0.0), x(0.25));
    }
}
