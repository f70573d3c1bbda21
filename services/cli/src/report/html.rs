//! The report as one self-contained HTML page: inline styles, and charts as inline SVG drawn
//! by plotters, so it opens offline, from a mail attachment or an audit archive, and fetches
//! nothing from the network.

use super::{CopyReport, RecoveryPoint, Report, ResourceReport, RestoreState};
use crate::account::age;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use plotters::prelude::*;

/// The recovery point's line, and the restore time bars of verified copies: solid colours a
/// browser test can find painted.
pub const RECOVERY_POINT_COLOUR: RGBColor = RGBColor(31, 119, 180);
pub const VERIFIED_COLOUR: RGBColor = RGBColor(44, 160, 44);
const SUSPICIOUS_COLOUR: RGBColor = RGBColor(255, 127, 14);
const RPO_COLOUR: RGBColor = RGBColor(214, 39, 40);
const CHART_SIZE: (u32, u32) = (560, 260);

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}\
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}\
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.summary td,.summary th{white-space:nowrap}td.num{text-align:right}.meta,.horizon{color:#555}\
.charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}\
.failed,.past{color:#b00}.suspicious{color:#c60}.ok{color:#080}code{font-size:.95em;white-space:nowrap}";

/// The page.
pub fn render(report: &Report) -> String {
    let mut page = String::new();
    let period = format!("{} to {}", stamp(report.from), stamp(report.to));
    page.push_str(&format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>snapferry report: {} {}</title><style>{STYLE}</style></head><body>\n",
        esc(&report.backup_account),
        esc(&period)
    ));
    page.push_str("<h1>snapferry backup evidence</h1>\n");
    page.push_str(&format!(
        "<p class=\"meta\">Backup account <code>{}</code>, home region {}{}; period {}; RPO {}; generated {}.</p>\n",
        esc(&report.backup_account),
        esc(&report.home_region),
        if report.extra_regions.is_empty() {
            String::new()
        } else {
            format!(", extra regions {}", esc(&report.extra_regions.join(", ")))
        },
        esc(&period),
        age(report.rpo_seconds),
        stamp(report.generated_at)
    ));
    page.push_str(&format!("<p class=\"horizon\">{}</p>\n", esc(&report.horizon)));
    page.push_str(&summary_table(report));
    for r in &report.resources {
        page.push_str(&section(report, r));
    }
    page.push_str("</body></html>\n");
    page
}

fn summary_table(report: &Report) -> String {
    let mut t = String::from(
        "<h2>Summary</h2>\n<table class=\"summary\"><tr><th>resource</th><th>kind</th><th>source account</th>\
         <th>copies</th><th>verified</th><th>failed</th><th>suspicious</th><th>worst recovery point</th>\
         <th>within the RPO</th><th>gaps</th><th>failures</th></tr>\n",
    );
    if report.resources.is_empty() {
        t.push_str("<tr><td colspan=\"11\">no copies held in the backup account</td></tr>\n");
    }
    for r in &report.resources {
        let count = |state: RestoreState| r.copies.iter().filter(|c| c.restore == state).count();
        let worst = r.worst_recovery_point_seconds;
        let past = worst.is_some_and(|w| w > report.rpo_seconds);
        t.push_str(&format!(
            "<tr><td><a href=\"#{}\">{}</a></td><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num{}\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            anchor(r),
            esc(&r.resource),
            r.kind,
            esc(&r.source_account),
            r.copies.len(),
            count(RestoreState::Verified),
            count(RestoreState::Failed),
            count(RestoreState::Suspicious),
            if past { " past" } else { "" },
            worst.map(age).unwrap_or_else(|| "-".into()),
            r.within_rpo_percent.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into()),
            r.gaps.len(),
            r.failures.len()
        ));
    }
    t.push_str("</table>\n");
    t
}

fn section(report: &Report, r: &ResourceReport) -> String {
    let mut s = format!(
        "<section class=\"resource\" id=\"{}\"><h2>{} <small>{} in <code>{}</code></small></h2>\n<div class=\"charts\">",
        anchor(r),
        esc(&r.resource),
        r.kind,
        esc(&r.source_account)
    );
    s.push_str(&figure("recovery-point", recovery_chart(report, r)));
    s.push_str(&figure("restore-time", restore_chart(&r.copies)));
    s.push_str(
        "</div>\n<h3>Copies</h3>\n<table class=\"copies\"><tr><th>copy</th><th>source snapshot taken</th>\
        <th>regions</th><th>restore test</th><th>time to restore</th><th>data checks found</th>\
        <th>data recovery point</th><th>locked</th></tr>\n",
    );
    if r.copies.is_empty() {
        s.push_str("<tr><td colspan=\"8\">no copy taken in the period is held</td></tr>\n");
    }
    for c in &r.copies {
        s.push_str(&copy_row(c));
    }
    s.push_str("</table>\n");
    if !r.gaps.is_empty() {
        s.push_str("<h3>Past the RPO</h3>\n<table class=\"gaps\"><tr><th>from</th><th>to</th><th>worst recovery point</th></tr>\n");
        for g in &r.gaps {
            s.push_str(&format!(
                "<tr class=\"past\"><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>\n",
                stamp(g.from),
                stamp(g.to),
                age(g.worst_seconds)
            ));
        }
        s.push_str("</table>\n");
    }
    if !r.failures.is_empty() {
        s.push_str("<h3>Failures</h3>\n<table class=\"failures\"><tr><th>when</th><th>where</th><th>what</th><th>reason</th></tr>\n");
        for f in &r.failures {
            s.push_str(&format!(
                "<tr class=\"failed\"><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
                f.at.map(stamp).unwrap_or_else(|| "-".into()),
                esc(&f.step),
                esc(&f.subject),
                esc(&f.reason)
            ));
        }
        s.push_str("</table>\n");
    }
    s.push_str("</section>\n");
    s
}

fn copy_row(c: &CopyReport) -> String {
    let class = match c.restore {
        RestoreState::Verified | RestoreState::Accepted => "ok",
        RestoreState::Suspicious => "suspicious",
        RestoreState::Failed => "failed",
        RestoreState::NotTested => "",
    };
    let mut test = c.restore.as_str().to_string();
    if let Some(at) = c.verified_at.or(c.failed_at) {
        test.push_str(&format!(" {}", stamp(at)));
    }
    if let Some(why) = &c.failure {
        test.push_str(&format!(": {why}"));
    }
    let data = match (c.tables, c.rows) {
        (Some(t), Some(r)) => format!(
            "{t} table{}, {r} rows{}",
            if t == 1 { "" } else { "s" },
            c.newest_data_at.map(|n| format!(", newest {}", stamp(n))).unwrap_or_default()
        ),
        _ => "-".into(),
    };
    format!(
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td class=\"num\">{}</td>\
         <td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
        esc(&c.copy),
        c.taken_at.map(stamp).unwrap_or_else(|| "-".into()),
        esc(&c.regions.join(", ")),
        esc(&test),
        c.restore_seconds.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".into()),
        esc(&data),
        c.data_recovery_seconds.map(|s| age(s as i64)).unwrap_or_else(|| "-".into()),
        match c.locked {
            Some(true) => "locked",
            Some(false) => "not locked",
            None => "no lock for this kind",
        }
    )
}

fn figure(class: &str, chart: Result<String, String>) -> String {
    match chart {
        Ok(svg) => format!("<figure class=\"chart {class}\">{svg}</figure>"),
        Err(why) => format!("<figure class=\"chart {class} empty\"><p>{}</p></figure>", esc(&why)),
    }
}

/// The recovery point over the period against the RPO, in hours, minutes or seconds as its
/// size asks. An RPO far above every point is named in the caption, not drawn: the line
/// would flatten what it is measured against.
fn recovery_chart(report: &Report, r: &ResourceReport) -> Result<String, String> {
    let points: &[RecoveryPoint] = &r.recovery_points;
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Err("Recovery point: no verified copy in the period".into());
    };
    let start = first.at;
    let hours_since = |t: DateTime<Utc>| (t - start).num_seconds() as f64 / 3600.0;
    let span = hours_since(last.at).max(1.0 / 3600.0);
    let worst = points.iter().map(|p| p.seconds).max().unwrap_or(0).max(1) as f64;
    let rpo = report.rpo_seconds as f64;
    let rpo_drawn = rpo <= worst * 3.0;
    let top = if rpo_drawn { worst.max(rpo) } else { worst } * 1.15;
    let (unit, per) = unit_of(top);
    let caption = if rpo_drawn {
        format!("Recovery point ({unit}) against the RPO")
    } else {
        format!("Recovery point ({unit}); the RPO, {}, is far above", age(report.rpo_seconds))
    };
    let format = time_format(span);
    let label = move |x: &f64| (start + Duration::seconds((x * 3600.0) as i64)).format(format).to_string();
    draw(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..span, 0f64..top / per)?;
        chart.configure_mesh().x_labels(4).x_label_formatter(&label).y_desc(unit).draw()?;
        let line = points.iter().map(|p| (hours_since(p.at), p.seconds as f64 / per));
        chart
            .draw_series(LineSeries::new(line, RECOVERY_POINT_COLOUR.stroke_width(3)))?
            .label("recovery point")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RECOVERY_POINT_COLOUR.stroke_width(3)));
        if rpo_drawn {
            chart
                .draw_series(LineSeries::new([(0.0, rpo / per), (span, rpo / per)], RPO_COLOUR.stroke_width(1)))?
                .label("RPO")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RPO_COLOUR));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.7))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// Each tested copy's time to restore, oldest first.
fn restore_chart(copies: &[CopyReport]) -> Result<String, String> {
    let tested: Vec<&CopyReport> = copies.iter().filter(|c| c.restore_seconds.is_some()).collect();
    if tested.is_empty() {
        return Err("Time to restore: no copy restored in the period".into());
    }
    let seconds = |c: &CopyReport| c.restore_seconds.unwrap_or_default();
    let top = tested.iter().map(|c| seconds(c)).fold(0.0, f64::max).max(1.0) * 1.15;
    let (unit, per) = unit_of(top);
    let n = tested.len();
    let taken: Vec<DateTime<Utc>> = tested.iter().filter_map(|c| c.taken_at).collect();
    let span = match (taken.first(), taken.last()) {
        (Some(a), Some(b)) => (*b - *a).num_seconds() as f64 / 3600.0,
        _ => 0.0,
    };
    let format = time_format(span);
    let labels: Vec<String> =
        tested.iter().map(|c| c.taken_at.map(|t| t.format(format).to_string()).unwrap_or_default()).collect();
    let label = move |x: &f64| labels.get(x.floor() as usize).cloned().unwrap_or_default();
    draw(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Time to restore per copy ({unit})"), ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..n as f64, 0f64..top / per)?;
        chart.configure_mesh().disable_x_mesh().x_labels(n.min(6)).x_label_formatter(&label).y_desc(unit).draw()?;
        chart.draw_series(tested.iter().enumerate().map(|(i, c)| {
            let colour = if c.restore == RestoreState::Suspicious { SUSPICIOUS_COLOUR } else { VERIFIED_COLOUR };
            Rectangle::new([(i as f64 + 0.15, 0.0), (i as f64 + 0.85, seconds(c) / per)], colour.filled())
        }))?;
        Ok(())
    })
}

/// The unit a chart of values up to `top` seconds reads best in, and its seconds.
fn unit_of(top: f64) -> (&'static str, f64) {
    if top >= 7200.0 {
        ("hours", 3600.0)
    } else if top >= 120.0 {
        ("minutes", 60.0)
    } else {
        ("seconds", 1.0)
    }
}

/// How times along an axis of `span_hours` are labelled: to the second within an hour, to the
/// minute within two days, else by day.
fn time_format(span_hours: f64) -> &'static str {
    if span_hours < 1.0 {
        "%H:%M:%S"
    } else if span_hours < 48.0 {
        "%m-%d %H:%M"
    } else {
        "%m-%d"
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// An SVG chart of [`CHART_SIZE`] drawn by `paint`.
fn draw(paint: impl FnOnce(&Area<'_>) -> Result<(), Box<dyn std::error::Error>>) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        paint(&root).map_err(|e| format!("chart not drawn: {e}"))?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn anchor(r: &ResourceReport) -> String {
    format!("{}-{}", r.source_account, r.resource)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Text made safe inside HTML elements and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
