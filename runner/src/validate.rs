//! `kv-runner validate`: every case of an engine-log file beside the estimate (through
//! `kv_estimator::validation`), as a table, JSON or the Markdown report.

use crate::cli::ValidateArgs;
use crate::models;
use anyhow::{Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use kv_estimator::units::fixed;
use kv_estimator::validation::{self, Case, CaseResult, Loaded};

/// Evaluates one case through the estimator, loading configs from the bundled set, or from the
/// Hub unless `offline` (after one failure to reach it, the Hub is not asked again).
pub fn evaluate_case(case: &Case, bundled: &[String], offline: bool, hub_down: &mut bool) -> CaseResult {
    let mut load = |id: &str, is_bundled: bool| -> Loaded {
        if is_bundled {
            return match models::load(id) {
                Ok((_, text, src)) => Loaded::Text(text, src),
                Err(e) => Loaded::Missing(format!("reading the bundled config: {e}")),
            };
        }
        if offline || *hub_down {
            return Loaded::Missing("no bundled config for this model (offline)".into());
        }
        match models::fetch_hub(id) {
            Ok((_, text, src)) => Loaded::Text(text, src),
            Err(e) => {
                let msg = e.to_string();
                if msg.contains("unreachable") {
                    *hub_down = true;
                }
                Loaded::Missing(format!("no bundled config, and the Hub did not give one: {}", msg.split("; ").next().unwrap_or(&msg)))
            }
        }
    };
    validation::evaluate_with(case, bundled, &mut load)
}

/// Reads and evaluates every case of a file.
pub fn evaluate_file(path: &std::path::Path, strict_only: bool, offline: bool) -> Result<Vec<CaseResult>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bundled: Vec<String> = models::bundled().into_iter().map(|(id, _, _)| id).collect();
    let mut hub_down = false;
    let mut out = vec![];
    for case in validation::parse_cases(&text) {
        let case = case?;
        if strict_only && !case.strict() {
            continue;
        }
        out.push(evaluate_case(&case, &bundled, offline, &mut hub_down));
    }
    Ok(out)
}

pub fn run(args: ValidateArgs) -> Result<()> {
    let mut results = vec![];
    for path in &args.cases {
        results.extend(evaluate_file(path, args.strict_only, args.offline)?);
    }
    if args.track_record {
        let sets: Vec<String> = args.cases.iter().map(|p| p.display().to_string()).collect();
        println!("{}", serde_json::to_string_pretty(&validation::track_records(&sets, &results))?);
        return Ok(());
    }
    if args.json {
        let summary = validation::summarize(&results);
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "summary": summary, "cases": results }))?);
        return Ok(());
    }
    if args.markdown {
        let source = args.cases.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        print!("{}", validation::markdown("Accuracy against engine start-up logs", &source, &results));
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(["case", "config", "figure", "logged", "estimate", "error", "target"]);
    for r in &results {
        let config = r.config.as_ref().map_or("-".to_string(), |c| c.config_id.clone());
        if let Some(why) = &r.skipped {
            t.add_row([r.id.clone(), config, "skipped".into(), why.clone(), String::new(), String::new(), String::new()]);
            continue;
        }
        for (i, c) in r.checks.iter().enumerate() {
            let target = match (c.target_pct, c.within_target()) {
                (Some(tp), Some(ok)) => format!("±{} % {}", fixed(tp, 0), if ok { "met" } else { "MISSED" }),
                _ => String::new(),
            };
            let (id, cfg) = if i == 0 { (r.id.clone(), config.clone()) } else { (String::new(), String::new()) };
            t.add_row([id, cfg, format!("{} ({})", c.figure, c.unit), fixed(c.logged, 2), fixed(c.estimated, 2), format!("{} %", fixed(c.error_pct, 2)), target]);
        }
        if let Some((logged, predicted)) = r.starts {
            let word = |b: bool| if b { "starts" } else { "refuses" };
            t.add_row([String::new(), String::new(), "start-up".into(), word(logged).into(), word(predicted).into(), if logged == predicted { "agrees" } else { "DISAGREES" }.into(), String::new()]);
        }
    }
    println!("{t}");
    let s = validation::summarize(&results);
    let mut b = Table::new();
    b.load_preset(UTF8_FULL_CONDENSED).set_header(["headline figure", "cases", "within 1 %", "within 5 %", "within 10 %", "mean |error|"]);
    let pct = |n: usize, of: usize| if of == 0 { "-".to_string() } else { format!("{n}/{of}") };
    for bucket in [&s.all, &s.strict].into_iter().chain(s.by_engine.iter()).chain(s.by_family.iter()) {
        b.add_row([bucket.key.clone(), bucket.cases.to_string(), pct(bucket.within_1, bucket.cases), pct(bucket.within_5, bucket.cases), pct(bucket.within_10, bucket.cases), format!("{} %", fixed(bucket.mean_abs_error_pct, 2))]);
    }
    println!("{b}");
    println!(
        "{} cases: {} evaluated, {} skipped; targets met {}/{}; refusals to start predicted {}/{}",
        s.cases, s.evaluated, s.skipped, s.targets_met, s.targets_checked, s.refusals_predicted, s.refusals
    );
    Ok(())
}
