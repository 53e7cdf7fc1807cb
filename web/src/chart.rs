//! A small, tested SVG chart model: series of `(x, y)` points in data units become path data,
//! tick positions and labels in a fixed view box; the view only draws what this computes. Pure
//! Rust (no browser types), so `cargo test -p kv-web` checks scales, ticks and placement natively.
//!
//! X axes are log2 (concurrency and context both double), Y axes linear from zero (memory in GiB,
//! requests). Non-finite points are dropped, never drawn.

/// View box size (SVG user units); the page scales it to its width.
pub const WIDTH: f64 = 480.0;
pub const HEIGHT: f64 = 290.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 44.0;

/// One line of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// CSS class (colour) of the line.
    pub class: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// A measured point drawn on top of the lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub x: f64,
    pub y: f64,
    pub label: String,
    pub class: &'static str,
}

/// What to draw, in data units.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Horizontal reference lines (capacity), `(y, label)`.
    pub hlines: Vec<(f64, String)>,
    pub markers: Vec<Marker>,
}

/// The computed drawing, in view-box units.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawing {
    pub paths: Vec<(&'static str, String, String)>,
    pub x_ticks: Vec<(f64, String)>,
    pub y_ticks: Vec<(f64, String)>,
    pub hlines: Vec<(f64, String)>,
    pub markers: Vec<(f64, f64, String, &'static str)>,
    pub x_label: String,
    pub y_label: String,
    /// The plot area: `(left, top, right, bottom)`.
    pub area: (f64, f64, f64, f64),
}

/// `1K`, `128K`, `1M` for powers of two counts.
pub fn count_label(x: f64) -> String {
    if x >= 1_048_576.0 && (x / 1_048_576.0).fract() == 0.0 {
        format!("{}M", x / 1_048_576.0)
    } else if x >= 1024.0 && (x / 1024.0).fract() == 0.0 {
        format!("{}K", x / 1024.0)
    } else {
        format!("{x}")
    }
}

/// About `n` round ticks from 0 to at least `max` (steps of 1, 2 or 5 x 10^k).
pub fn linear_ticks(max: f64, n: usize) -> Vec<f64> {
    if !(max.is_finite() && max > 0.0) {
        return vec![0.0, 1.0];
    }
    let raw = max / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let count = (max / step).ceil() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// Powers of two spanning `[min, max]`, thinned to at most `n` labels.
pub fn log2_ticks(min: f64, max: f64, n: usize) -> Vec<f64> {
    if !(min.is_finite() && max.is_finite() && min > 0.0 && max >= min) {
        return vec![1.0];
    }
    let lo = min.log2().floor() as i32;
    let hi = max.log2().ceil() as i32;
    let span = (hi - lo).max(1) as usize;
    let every = span.div_ceil(n.max(1)).max(1);
    (lo..=hi).filter(|e| ((e - lo) as usize) % every == 0).map(|e| 2f64.powi(e)).collect()
}

fn fmt_y(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 10.0 || v.fract() == 0.0 {
        format!("{}", v.round())
    } else {
        format!("{v:.1}")
    }
}

/// Lays a spec out in the view box.
pub fn draw(spec: &Spec) -> Drawing {
    let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite() && p.0 > 0.0;
    let xs = spec.series.iter().flat_map(|s| s.points.iter()).filter(|p| finite(p)).map(|p| p.0).chain(spec.markers.iter().filter(|m| m.x.is_finite() && m.x > 0.0).map(|m| m.x));
    let (mut x_min, mut x_max) = (f64::INFINITY, 0f64);
    for x in xs {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
    }
    if !x_min.is_finite() {
        x_min = 1.0;
        x_max = 2.0;
    }
    if x_max <= x_min {
        x_max = x_min * 2.0;
    }
    let y_max_data = spec
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| finite(p))
        .map(|p| p.1)
        .chain(spec.hlines.iter().map(|h| h.0).filter(|y| y.is_finite()))
        .chain(spec.markers.iter().map(|m| m.y).filter(|y| y.is_finite()))
        .fold(0f64, f64::max);
    let y_ticks = linear_ticks(y_max_data * 1.05, 5);
    let y_top = y_ticks.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let x_ticks = log2_ticks(x_min, x_max, 8);
    let (lx, hx) = (x_ticks.first().copied().unwrap_or(x_min).log2(), x_ticks.last().copied().unwrap_or(x_max).log2());
    let (left, right, top, bottom) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
    let px = |x: f64| left + (x.log2() - lx) / (hx - lx).max(f64::MIN_POSITIVE) * (right - left);
    let py = |y: f64| bottom - (y / y_top) * (bottom - top);
    let paths = spec
        .series
        .iter()
        .map(|s| {
            let mut d = String::new();
            for (i, p) in s.points.iter().filter(|p| finite(p)).enumerate() {
                d.push_str(&format!("{}{:.1},{:.1}", if i == 0 { "M" } else { " L" }, px(p.0), py(p.1.max(0.0))));
            }
            (s.class, d, s.label.clone())
        })
        .collect();
    Drawing {
        paths,
        x_ticks: x_ticks.iter().map(|&x| (px(x), count_label(x))).collect(),
        y_ticks: y_ticks.iter().map(|&y| (py(y), fmt_y(y))).collect(),
        hlines: spec.hlines.iter().filter(|h| h.0.is_finite()).map(|(y, l)| (py(*y), l.clone())).collect(),
        markers: spec.markers.iter().filter(|m| m.x.is_finite() && m.y.is_finite() && m.x > 0.0).map(|m| (px(m.x), py(m.y), m.label.clone(), m.class)).collect(),
        x_label: spec.x_label.clone(),
        y_label: spec.y_label.clone(),
        area: (left, top, right, bottom),
    }
}

pub use kv_markup::escape;

/// The inside of the chart's `<svg>` as markup, set in one DOM call: a chart is about 40
/// elements, and building them one by one across the wasm/JS boundary costs more than the
/// browser's parser does (every text escaped with [`escape`]).
pub fn svg_markup(d: &Drawing) -> String {
    use std::fmt::Write;
    let (l, t, r, b) = d.area;
    let mut m = String::with_capacity(4096);
    let _ = write!(m, r#"<rect x="{l}" y="{t}" width="{}" height="{}" class="plot"/>"#, r - l, b - t);
    for (y, label) in &d.y_ticks {
        let _ = write!(m, r#"<line x1="{l}" x2="{r}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#, l - 6.0, y + 4.0, escape(label));
    }
    for (x, label) in &d.x_ticks {
        let _ = write!(m, r#"<line x1="{x:.1}" x2="{x:.1}" y1="{b}" y2="{}" class="axis"/><text x="{x:.1}" y="{}" text-anchor="middle" class="tick">{}</text>"#, b + 4.0, b + 17.0, escape(label));
    }
    for (y, label) in &d.hlines {
        let _ = write!(m, r#"<line x1="{l}" x2="{r}" y1="{y:.1}" y2="{y:.1}" class="hline"/><text x="{}" y="{:.1}" text-anchor="end" class="hline-label">{}</text>"#, r - 4.0, y - 4.0, escape(label));
    }
    for (class, path, label) in &d.paths {
        let _ = write!(m, r#"<path d="{}" class="line {}"><title>{}</title></path>"#, escape(path), escape(class), escape(label));
    }
    for (x, y, label, class) in &d.markers {
        let _ = write!(m, r#"<circle cx="{x:.1}" cy="{y:.1}" r="5" class="marker {}" data-label="{}"><title>{}</title></circle>"#, escape(class), escape(label), escape(label));
    }
    let mid_y = (t + b) / 2.0;
    let _ = write!(m, r#"<text x="{}" y="{}" text-anchor="middle" class="axis-label">{}</text>"#, (l + r) / 2.0, HEIGHT - 6.0, escape(&d.x_label));
    let _ = write!(m, r#"<text x="14" y="{mid_y}" text-anchor="middle" class="axis-label" transform="rotate(-90 14 {mid_y})">{}</text>"#, escape(&d.y_label));
    m
}

/// Powers of two from `from` up to `to` (inclusive of `to` as the last point when it is not one).
pub fn doubling(from: u64, to: u64) -> Vec<u64> {
    let mut v = vec![];
    let mut x = from.max(1);
    while x < to {
        v.push(x);
        x = x.saturating_mul(2);
    }
    v.push(to.max(from.max(1)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        assert_eq!(linear_ticks(79.0, 5), vec![0.0, 20.0, 40.0, 60.0, 80.0]);
        assert_eq!(linear_ticks(3.2, 5), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(linear_ticks(f64::NAN, 5), vec![0.0, 1.0]);
        assert_eq!(log2_ticks(1.0, 64.0, 8), vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
        assert_eq!(log2_ticks(1024.0, 131_072.0, 4), vec![1024.0, 4096.0, 16384.0, 65536.0]);
        assert_eq!(count_label(131_072.0), "128K");
        assert_eq!(count_label(3.0), "3");
    }

    #[test]
    fn points_land_inside_the_plot_area() {
        let spec = Spec {
            x_label: "concurrent requests".into(),
            y_label: "GiB".into(),
            series: vec![Series { label: "total".into(), class: "total", points: vec![(1.0, 16.0), (2.0, 18.0), (64.0, 79.0), (128.0, f64::NAN)] }],
            hlines: vec![(71.3, "capacity".into())],
            markers: vec![Marker { x: 8.0, y: 30.0, label: "measured".into(), class: "measured" }],
        };
        let d = draw(&spec);
        let (l, t, r, b) = d.area;
        assert_eq!(d.paths.len(), 1);
        assert_eq!(d.paths[0].1.matches('L').count(), 2, "the NaN point is dropped: {}", d.paths[0].1);
        for (x, y, _, _) in &d.markers {
            assert!(*x >= l && *x <= r && *y >= t && *y <= b);
        }
        // the first point sits on the left edge, the y axis starts at zero at the bottom
        assert!(d.paths[0].1.starts_with(&format!("M{l:.1},")));
        assert_eq!(d.y_ticks[0], (b, "0".to_string()));
        assert!(d.hlines[0].0 > t && d.hlines[0].0 < b);
    }

    #[test]
    fn empty_specs_do_not_divide_by_zero() {
        let d = draw(&Spec { x_label: String::new(), y_label: String::new(), series: vec![], hlines: vec![], markers: vec![] });
        assert!(d.x_ticks.iter().all(|t| t.0.is_finite()));
        assert!(d.y_ticks.iter().all(|t| t.0.is_finite()));
    }

    #[test]
    fn markup_escapes_every_text_and_keeps_every_element() {
        let spec = Spec {
            x_label: "tokens <per> request".into(),
            y_label: "GiB".into(),
            series: vec![Series { label: "a\"b".into(), class: "total", points: vec![(1.0, 1.0), (4.0, 2.0)] }],
            hlines: vec![(3.0, "usable 3 GiB".into())],
            markers: vec![Marker { x: 2.0, y: 1.5, label: "<img src=x onerror=alert(1)> & 'q'".into(), class: "measured" }],
        };
        let d = draw(&spec);
        let m = svg_markup(&d);
        assert!(!m.contains("<img"), "{m}");
        assert!(m.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &#39;q&#39;"));
        assert!(m.contains("tokens &lt;per&gt; request"));
        assert!(m.contains(r#"<title>a&quot;b</title>"#));
        assert_eq!(m.matches("<circle").count(), 1);
        assert_eq!(m.matches(r#"class="marker measured""#).count(), 1);
        assert_eq!(m.matches("<path").count(), 1);
        assert_eq!(m.matches(r#"class="tick""#).count(), d.x_ticks.len() + d.y_ticks.len());
        // every opened element is closed or self-closed
        let opened = m.matches("<text").count() + m.matches("<path").count() + m.matches("<circle").count() + m.matches("<title").count();
        let closed = m.matches("</text>").count() + m.matches("</path>").count() + m.matches("</circle>").count() + m.matches("</title>").count();
        assert_eq!(opened, closed);
    }

    #[test]
    fn doubling_ends_at_the_limit() {
        assert_eq!(doubling(1, 40), vec![1, 2, 4, 8, 16, 32, 40]);
        assert_eq!(doubling(1024, 1024), vec![1024]);
    }
}
