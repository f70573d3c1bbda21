//! The demo's report: the demo runs as `scripts/demo` runs it, its report's figures are the
//! ones the pipeline's events carried, and the page renders in a real headless browser
//! (Debian's Chromium, which `scripts/test` installs) with both charts of each resource
//! painted.

use serde_json::Value;
use snapferry::events::{EventEnvelope, PipelineEvent, Step};
use snapferry_cli::report::html::{RECOVERY_POINT_COLOUR, VERIFIED_COLOUR};
use snapferry_e2e::{OTHER_REGION, REGION, emulator};
use snapferry_local::demo::{DemoArgs, LocalArgs};
use std::path::Path;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_report_holds_the_figures_its_events_carried_and_renders_in_chromium() {
    let dir = std::env::temp_dir().join(format!("snapferry-demo-report-{}", std::process::id()));
    let args = DemoArgs {
        local: LocalArgs {
            endpoint: emulator().endpoint.clone(),
            region: REGION.into(),
            extra_regions: vec![OTHER_REGION.into()],
            select: ".*".into(),
            copy_slots: None,
            sources: 2,
            concurrency: 2,
            no_throttling: false,
            no_restore_tests: false,
        },
        timeout_seconds: 300,
        keep_running: false,
        report_dir: dir.clone(),
    };
    let run = snapferry_local::demo::demo(&args).await.expect("the demo");
    assert!(run.ok, "every backup of the demo verified");

    let report: Value = serde_json::from_str(&read(&run.report.json)).expect("report.json");
    let copies: Vec<&Value> = report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .flat_map(|r| r["copies"].as_array().unwrap())
        .collect();
    let mut verified: Vec<&EventEnvelope<PipelineEvent>> =
        run.events.iter().filter(|e| matches!(e.detail.step, Step::RestoreVerified { .. })).collect();
    // An event may come twice (EventBridge delivers at least once): one per copy.
    verified.sort_by(|a, b| a.detail.snapshot.arn.cmp(&b.detail.snapshot.arn));
    verified.dedup_by(|a, b| a.detail.snapshot.arn == b.detail.snapshot.arn);
    assert!(verified.len() >= 7, "the demo's backups: {}", verified.len());
    assert_eq!(copies.len(), verified.len(), "one home copy per verified backup, each tested");
    for event in &verified {
        let Step::RestoreVerified { restore_seconds, data, locked_until, .. } = &event.detail.step else { continue };
        let arn = &event.detail.snapshot.arn;
        let copy = copies.iter().find(|c| c["arn"] == arn.as_str()).unwrap_or_else(|| panic!("{arn} in the report"));
        assert_eq!(copy["restore"], "verified", "{arn}");
        let shown = copy["restore_seconds"].as_f64().expect("restore seconds");
        assert!(
            (shown - restore_seconds).abs() <= 0.051,
            "{arn}: {shown} against the event's {restore_seconds} (the tag keeps tenths)"
        );
        assert_eq!(copy["tables"].as_u64(), data.as_ref().map(|d| u64::from(d.tables)), "{arn}");
        assert_eq!(copy["rows"].as_u64(), data.as_ref().map(|d| d.rows), "{arn}");
        let point = data.as_ref().and_then(|d| d.recovery_point_seconds);
        match (copy["data_recovery_seconds"].as_f64(), point) {
            (Some(shown), Some(sent)) => assert!((shown - sent).abs() <= 0.5, "{arn}: {shown} against {sent}"),
            (shown, sent) => assert_eq!(shown, sent, "{arn}"),
        }
        if event.detail.snapshot.kind.to_string() == "ebs" {
            assert_eq!(copy["locked"].as_bool(), Some(locked_until.is_some()), "{arn}");
        } else {
            assert!(copy["locked"].is_null(), "{arn}: no lock for its kind");
        }
    }
    // A copy the pipeline announced copied into the extra region is reported there (one may
    // finish there after the demo stopped reading events: reported, not yet announced).
    let copied_there: Vec<&str> = run
        .events
        .iter()
        .filter(|e| matches!(e.detail.step, Step::Copied { .. }) && e.detail.snapshot.region == OTHER_REGION)
        .filter_map(|e| verified.iter().find(|v| v.detail.origin.arn == e.detail.origin.arn))
        .map(|v| v.detail.snapshot.arn.as_str())
        .collect();
    assert!(!copied_there.is_empty(), "the demo copies into {OTHER_REGION}");
    for arn in copied_there {
        let copy = copies.iter().find(|c| c["arn"] == arn).expect("the copy");
        assert!(copy["regions"].as_array().unwrap().iter().any(|r| r == OTHER_REGION), "{arn} in {OTHER_REGION}");
    }
    // The CSV holds the JSON's figures, a row a copy.
    let csv = read(&run.report.copies_csv);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("column {name}"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), copies.len());
    for copy in &copies {
        let row = rows.iter().find(|r| r[column("copy")] == copy["copy"]).expect("the copy's row");
        assert_eq!(row[column("restore_seconds")], format!("{:.1}", copy["restore_seconds"].as_f64().unwrap()));
        assert_eq!(row[column("rows")], copy["rows"].as_u64().map(|n| n.to_string()).unwrap_or_default());
        assert_eq!(row[column("restore")], "verified");
    }

    // The page, in Chromium: every resource's section, both charts drawn, and painted.
    let resources = report["resources"].as_array().unwrap().len();
    let dom = chromium(&run.report.html, &["--dump-dom"]);
    assert!(dom.contains("<title>snapferry report: 222222222222"), "the page loaded: {}", &dom[..dom.len().min(300)]);
    assert_eq!(dom.matches("<section class=\"resource\"").count(), resources);
    assert_eq!(dom.matches("<figure class=\"chart recovery-point\"><svg").count(), resources);
    assert_eq!(dom.matches("<figure class=\"chart restore-time\"><svg").count(), resources);
    let shot = dir.join("report.png");
    chromium(
        &run.report.html,
        &["--hide-scrollbars", "--window-size=1280,9000", &format!("--screenshot={}", shot.display())],
    );
    let bars = pixels_of(&shot, (VERIFIED_COLOUR.0, VERIFIED_COLOUR.1, VERIFIED_COLOUR.2));
    let lines = pixels_of(&shot, (RECOVERY_POINT_COLOUR.0, RECOVERY_POINT_COLOUR.1, RECOVERY_POINT_COLOUR.2));
    assert!(bars >= 2_000 * resources, "each resource's restore time bars painted: {bars} pixels");
    assert!(lines >= 100 * resources, "each resource's recovery point line painted: {lines} pixels");
    std::fs::remove_dir_all(&dir).ok();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Debian's Chromium, headless, on the report's file: what it printed. Without network
/// services of its own (refused on this machine's closed network) and a fresh profile.
fn chromium(page: &Path, args: &[&str]) -> String {
    let profile = std::env::temp_dir().join(format!("snapferry-chromium-{}", std::process::id()));
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("Debian's chromium (scripts/test installs it: apt-get install chromium)");
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How many pixels of the screenshot are exactly `rgb`.
fn pixels_of(png_file: &Path, rgb: (u8, u8, u8)) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_file).expect("the screenshot")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    assert!(channels >= 3, "an RGB screenshot: {:?}", info.color_type);
    buf[..info.buffer_size()].chunks(channels).filter(|p| (p[0], p[1], p[2]) == rgb).count()
}
