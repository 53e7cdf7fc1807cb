//! Installing what the build and the tests need on a machine that has never seen the project:
//! the wasm32 target, trunk, the wasm-bindgen CLI of exactly the version in `Cargo.lock`,
//! `wasm-opt` (binaryen from the npm registry), and Chromium with its WebDriver (Debian packages).
//! Tools go to `$KV_TOOLS_DIR` (default `~/.cache/kv-planner-tools`), one folder per version, so
//! a second run finds them and installs nothing.

use crate::{root, run};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

/// The trunk release this project builds with (0.22 needs a newer rustc than ours).
pub const TRUNK_VERSION: &str = "0.21.14";
/// binaryen's `wasm-opt`, as published on npm (a self-contained Node build).
pub const BINARYEN_NPM: &str = "binaryen@132";

pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KV_TOOLS_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    home.join(".cache/kv-planner-tools")
}

fn trunk_bin_dir() -> PathBuf {
    tools_dir().join(format!("trunk-{TRUNK_VERSION}/bin"))
}
fn bindgen_bin_dir(v: &str) -> PathBuf {
    tools_dir().join(format!("wasm-bindgen-{v}/bin"))
}
fn binaryen_bin_dir() -> PathBuf {
    tools_dir().join("binaryen/node_modules/.bin")
}

/// `PATH` with the tool folders first.
pub fn path() -> Result<OsString> {
    let v = wasm_bindgen_version()?;
    let mut dirs = vec![trunk_bin_dir(), bindgen_bin_dir(&v), binaryen_bin_dir()];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    Ok(std::env::join_paths(dirs)?)
}

fn output_of(cmd: &mut Command) -> Option<String> {
    cmd.output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).to_string())
}

pub fn ensure_wasm_target() -> Result<()> {
    let have = output_of(Command::new("rustup").args(["target", "list", "--installed"])).is_some_and(|o| o.contains("wasm32-unknown-unknown"));
    if !have {
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    Ok(())
}

/// The `wasm-bindgen` version `Cargo.lock` resolved (the CLI must match it exactly).
pub fn wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|v| v.trim().strip_prefix("version = \"")).and_then(|v| v.strip_suffix('"')) {
                return Ok(v.to_string());
            }
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package")
}

pub fn ensure_trunk() -> Result<()> {
    let bin = trunk_bin_dir().join("trunk");
    let ok = output_of(&mut Command::new(&bin).arg("--version")).is_some_and(|o| o.contains(TRUNK_VERSION));
    if !ok {
        eprintln!("installing trunk {TRUNK_VERSION} (a few minutes, once)");
        let root_dir = tools_dir().join(format!("trunk-{TRUNK_VERSION}"));
        run(crate::cargo().args(["install", "trunk", "--version", TRUNK_VERSION, "--locked", "--root"]).arg(&root_dir))?;
    }
    Ok(())
}

pub fn ensure_wasm_bindgen() -> Result<()> {
    let v = wasm_bindgen_version()?;
    let bin = bindgen_bin_dir(&v).join("wasm-bindgen");
    let ok = output_of(&mut Command::new(&bin).arg("--version")).is_some_and(|o| o.trim().ends_with(&v));
    if !ok {
        eprintln!("installing wasm-bindgen-cli {v} (a few minutes, once)");
        let root_dir = tools_dir().join(format!("wasm-bindgen-{v}"));
        // without --locked: the CLI's own lock file pins a webpki-roots the index no longer offers
        run(crate::cargo().args(["install", "wasm-bindgen-cli", "--version", &v, "--root"]).arg(&root_dir))?;
    }
    Ok(())
}

pub fn ensure_wasm_opt() -> Result<()> {
    let bin = binaryen_bin_dir().join("wasm-opt");
    if output_of(&mut Command::new(&bin).arg("--version")).is_some() {
        return Ok(());
    }
    eprintln!("installing {BINARYEN_NPM} from the npm registry (wasm-opt)");
    let dir = tools_dir().join("binaryen");
    std::fs::create_dir_all(&dir)?;
    run(Command::new("npm").args(["install", "--no-audit", "--no-fund", "--prefix"]).arg(&dir).arg(BINARYEN_NPM)).context("npm is needed to install wasm-opt (binaryen)")?;
    Ok(())
}

/// Chromium and chromedriver for the browser tests (Debian packages).
pub fn ensure_browser() -> Result<()> {
    let have = |b: &str| output_of(Command::new(b).arg("--version")).is_some();
    if have("chromium") && have("chromedriver") {
        return Ok(());
    }
    eprintln!("installing chromium and chromium-driver (Debian packages) for the browser tests");
    let apt = |args: &[&str]| -> Result<()> {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut c)
    };
    if apt(&["install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]).is_err() {
        apt(&["update"])?;
        apt(&["install", "-y", "--no-install-recommends", "chromium", "chromium-driver"])?;
    }
    if !(have("chromium") && have("chromedriver")) {
        bail!("chromium and chromedriver are still missing after apt-get install");
    }
    Ok(())
}

/// Builds the page into `dist/` (release: size profile, wasm-opt).
pub fn build_web() -> Result<()> {
    ensure_wasm_target()?;
    ensure_trunk()?;
    ensure_wasm_bindgen()?;
    ensure_wasm_opt()?;
    // crates first (online), then trunk offline, so it never tries to download tools itself
    run(crate::cargo().args(["fetch"]))?;
    let trunk = trunk_bin_dir().join("trunk");
    run(Command::new(trunk).args(["build", "--release", "--offline"]).env("PATH", path()?))?;
    Ok(())
}
