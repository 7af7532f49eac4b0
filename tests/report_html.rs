//! `report/report.html` opened in a real headless browser (Debian's Chromium, installed
//! with apt-get where missing and possible; skipped, saying why, where it cannot be had):
//! the page must render every chart with every condition in its legend, draw the seeds'
//! bands, build the sortable tables, and raise no script error, with nothing fetched
//! (the page is opened from a file, with the network switched off).

mod common;

use std::path::Path;
use std::process::Command;

use common::text;

/// The path of a Chromium, installing Debian's package if needed; why not, if none.
fn chromium() -> Result<String, String> {
    let found = |name: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    if let Some(path) = found("chromium") {
        return Ok(path);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&root.stdout).trim() != "0" || found("apt-get").is_none() {
        return Err("no chromium, and it cannot be installed here (needs root and apt-get)".into());
    }
    let install = "DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
                   || { apt-get update -q >/dev/null 2>&1 && \
                   DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }";
    let status = Command::new("sh").args(["-c", install]).status();
    match (status, found("chromium")) {
        (Ok(s), Some(path)) if s.success() => Ok(path),
        _ => Err("installing Debian's chromium with apt-get failed".into()),
    }
}

/// The `<body ...>` tag of `page` after its scripts ran, as Chromium's DOM dump shows it.
fn rendered_body(browser: &str, page: &Path, profile: &Path) -> String {
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // No request may leave the page: everything it needs is inside it.
            "--proxy-server=127.0.0.1:9",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    let start = dom
        .find("<body")
        .unwrap_or_else(|| panic!("no body in:\n{dom}"));
    let end = start + dom[start..].find('>').unwrap();
    // Attribute values as the DOM dump escapes them, read back.
    dom[start..=end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attribute(body: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    let start = body
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        + key.len();
    // Values are JSON with their quotes written as &quot; (already turned back): the
    // attribute ends at the next `" data-` or at the end of the tag.
    let rest = &body[start..];
    let end = rest.find("\" data-").or_else(|| rest.rfind('"')).unwrap();
    rest[..end].to_owned()
}

#[test]
fn the_interactive_report_renders_every_condition_with_no_script_error() {
    let browser = match chromium() {
        Ok(path) => path,
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("rankprobe-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Two conditions, two seeds each: lines, bands and bars.
    let text_of_study = common::tiny_with_sweep(
        r#"Conditions([
            (name: "A1", description: "Muon <b>bold</b> & co <!-- </script><script>x</script> -->"),
            (name: "B1", set: {"optimizer": AdamW(lr: 0.006, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.2)}),
        ]),
        Seeds([1, 2]),"#,
    )
    .replace("name: \"tiny\"", "name: \"html\"")
    // Every kind of probe, so that the page draws their charts too.
    .replace(
        "metrics: [StudyPr, R90, ConditionNumber],",
        "metrics: [StudyPr, R90, DeadHeads(below_pr: 30.0), AttentionEntropy, MaxAttentionLogit, IclScore(early: (0, 16), late: (96, 128))],",
    );
    let (results, sweep) = common::sweep_study(&dir, "html.ron", &text_of_study, &[]);
    assert!(sweep.status.success(), "{}", text(&sweep));
    let page = results.join("html/report/report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://cdn"),
        "fetches nothing"
    );
    let body = rendered_body(&browser, &page, &dir.join("profile"));
    assert_eq!(attribute(&body, "data-status"), "rendered", "{body}");
    assert_eq!(attribute(&body, "data-errors"), "0", "{body}");
    // Loss, the report metric, the other probes, the layers.
    let charts: usize = attribute(&body, "data-charts").parse().unwrap();
    assert!(charts >= 6, "the probes' charts are missing: {body}");
    // At least the loss and report metric charts with a band (two edges) per condition.
    let bands: usize = attribute(&body, "data-bands").parse().unwrap();
    assert!(bands >= 8, "{body}");
    let legends: Vec<Vec<String>> = serde_json::from_str(&attribute(&body, "data-legends"))
        .unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(legends.len(), charts);
    for legend in &legends {
        for condition in [
            "A1 Muon <b>bold</b> & co <!-- </script><script>x</script> -->",
            "B1",
        ] {
            assert!(
                legend.iter().any(|l| l == condition),
                "{condition} not in {legend:?}"
            );
        }
        assert!(
            !legend.iter().any(|l| l.contains("95%")),
            "bands in the legend: {legend:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_learning_rate_sweep_draws_its_log_axis_charts_with_no_script_error() {
    let browser = match chromium() {
        Ok(path) => path,
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("rankprobe-html-lr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The micro model over three rates, the top one far past stability, two seeds.
    let text_of_study = common::micro_study("htmllr", r#"(name: "adamw", set: {"optimizer": AdamW(lr: 0.006, betas: (0.9, 0.95), eps: 1e-8, weight_decay: 0.0)})"#)
        .replace(
            "sweep: [Conditions([",
            r#"sweep: [LogGrid(path: "schedule.lr_scale", from: 0.1, to: 1000.0, points: 3), Seeds([1, 2]), Conditions(["#,
        )
        .replace("checkpoint_every_tokens: 2_048", "divergence_expected: true");
    let (results, sweep) = common::sweep_study(&dir, "htmllr.ron", &text_of_study, &[]);
    assert!(sweep.status.success(), "{}", text(&sweep));
    let page = results.join("htmllr/report/report.html");
    let body = rendered_body(&browser, &page, &dir.join("profile"));
    assert_eq!(attribute(&body, "data-status"), "rendered", "{body}");
    assert_eq!(attribute(&body, "data-errors"), "0", "{body}");
    // Loss and metric over training, the layers, and the three charts against the rate.
    let charts: usize = attribute(&body, "data-charts").parse().unwrap();
    assert!(charts >= 6, "{body}");
    let legends: Vec<Vec<String>> = serde_json::from_str(&attribute(&body, "data-legends"))
        .unwrap_or_else(|e| panic!("{e}: {body}"));
    let sweep_charts = legends
        .iter()
        .filter(|legend| legend.iter().any(|l| l == "adamw"))
        .count();
    assert_eq!(sweep_charts, 3, "{legends:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
