//! `gati template init`: fetch a template, take or ask for its variables, and render it into a
//! new directory. `{{name}}` (spaces inside the braces allowed) is replaced in file contents
//! that are UTF-8 text and in file paths; other files are copied as they are.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _};
use std::path::Path;

use gati_client::FileDigests;
use gati_core::artifact::{ArtifactRef, RefTarget};
use serde_json::{Value, json};

use crate::config::Context;
use crate::exit::{Failure, io};
use crate::output;

struct Variable {
    name: String,
    description: Option<String>,
    required: bool,
    options: Option<Vec<String>>,
    default: Option<String>,
}

fn variables_of(document: &Value) -> Vec<Variable> {
    document["manifest"]["config"]["variables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            Some(Variable {
                name: v["name"].as_str()?.to_owned(),
                description: v["description"].as_str().map(str::to_owned),
                required: v["required"].as_bool().unwrap_or(false),
                options: v["options"]
                    .as_array()
                    .map(|o| o.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()),
                default: v["default"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

pub async fn init(ctx: &Context, spec: &str, dir: &Path, vars: &[String], yes: bool) -> Result<(), Failure> {
    let r = ArtifactRef::parse(spec, None)?;
    let client = ctx.client().await?;
    let name = r.repo.to_string();
    let target = match r.target {
        RefTarget::Latest => "latest".to_owned(),
        RefTarget::Version(v) => v.to_string(),
        RefTarget::Tag(t) => t.to_string(),
        RefTarget::Range(range) => {
            let info = client.info(&name).await?;
            let best = info
                .versions
                .iter()
                .filter(|v| !v.unpublished)
                .filter_map(|v| v.version.parse::<gati_core::artifact::ArtifactVersion>().ok())
                .filter(|v| range.matches(v.semver()))
                .max();
            best.ok_or_else(|| Failure::new(3, format!("no version of {name} is in {range}")))?.to_string()
        }
    };
    let detail = client.version(&name, &target).await?;
    if detail.kind != "template" {
        return Err(Failure::usage(format!("{name} is a {}, not a template", detail.kind)));
    }
    if dir.try_exists().unwrap_or(false) && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Failure::usage(format!("{} exists and is not empty", dir.display())));
    }
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    for v in vars {
        let (k, val) = v.split_once('=').ok_or_else(|| Failure::usage(format!("--var {v}: write NAME=VALUE")))?;
        given.insert(k.trim().to_owned(), val.to_owned());
    }
    let declared = variables_of(&detail.document);
    if let Some(unknown) = given.keys().find(|k| !declared.iter().any(|d| &d.name == *k)) {
        let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
        return Err(Failure::usage(format!("{name} has no variable {unknown}; it takes {}", names.join(", "))));
    }
    let interactive = !yes && !ctx.json && std::io::stdin().is_terminal();
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for var in &declared {
        let value = match given.get(&var.name) {
            Some(v) => Some(v.clone()),
            None if interactive => ask(var)?,
            None => var.default.clone(),
        };
        match value {
            Some(v) => {
                if let Some(options) = &var.options
                    && !options.contains(&v)
                {
                    return Err(Failure::usage(format!("{}: {v:?} is not one of {}", var.name, options.join(", "))));
                }
                values.insert(var.name.clone(), v);
            }
            None if var.required => missing.push(var.name.clone()),
            None => {}
        }
    }
    if !missing.is_empty() {
        return Err(Failure::usage(format!("give a value for {} (--var NAME=VALUE)", missing.join(", "))));
    }
    let staging = dir.with_extension(format!("gati-init-{}", std::process::id()));
    std::fs::create_dir_all(&staging).map_err(|e| io(format_args!("creating {}", staging.display()), e))?;
    let result = render_all(ctx, &client, &name, &detail, &values, &staging).await;
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if dir.try_exists().unwrap_or(false) {
        std::fs::remove_dir(dir).map_err(|e| io(format_args!("replacing {}", dir.display()), e))?;
    }
    std::fs::rename(&staging, dir).map_err(|e| io(format_args!("creating {}", dir.display()), e))?;
    output::print(
        ctx.json,
        &json!({ "template": name, "version": detail.summary.version, "dir": dir.display().to_string(), "variables": values, "files": detail.files.len() }),
        || format!("created {} from {name}@{} ({} files)", dir.display(), detail.summary.version, detail.files.len()),
    );
    Ok(())
}

async fn render_all(
    ctx: &Context,
    client: &gati_client::RegistryClient,
    name: &str,
    detail: &gati_client::types::VersionDetail,
    values: &BTreeMap<String, String>,
    out: &Path,
) -> Result<(), Failure> {
    for file in &detail.files {
        let expected = FileDigests { size: file.size, sha256: file.sha256.clone(), sha512: file.sha512.clone() };
        let cached = ctx.cached(&file.sha256);
        if !gati_client::verify_file(&cached, &expected).await? {
            client.download_file(name, &detail.summary.version, &file.path, &expected, &cached, &|_| {}).await?;
        }
        let path = render(&file.path, values);
        if gati_core::artifact::document::file_path_problem(&path).is_some() {
            return Err(Failure::usage(format!("{}: the variables make the path {path:?} unsafe", file.path)));
        }
        let dest = out.join(&path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(format_args!("creating {}", parent.display()), e))?;
        }
        let bytes = std::fs::read(&cached).map_err(|e| io(format_args!("reading {}", cached.display()), e))?;
        let rendered = match String::from_utf8(bytes) {
            Ok(text) => render(&text, values).into_bytes(),
            Err(binary) => binary.into_bytes(),
        };
        std::fs::write(&dest, rendered).map_err(|e| io(format_args!("writing {}", dest.display()), e))?;
    }
    Ok(())
}

fn ask(var: &Variable) -> Result<Option<String>, Failure> {
    let mut prompt = var.description.clone().unwrap_or_else(|| var.name.clone());
    if let Some(options) = &var.options {
        prompt.push_str(&format!(" ({})", options.join("/")));
    }
    if let Some(d) = &var.default {
        prompt.push_str(&format!(" [{d}]"));
    }
    eprint!("{prompt}: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure::other(format!("reading {}: {e}", var.name)))?;
    let line = line.trim().to_owned();
    Ok(if line.is_empty() { var.default.clone() } else { Some(line) })
}

/// Replaces `{{ name }}` with its value; unknown names are left as they are.
fn render(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                match values.get(key) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn renders_known_variables_only() {
        let values = [("projectName".to_owned(), "app".to_owned())].into_iter().collect();
        assert_eq!(render("name: {{projectName}} / {{ projectName }}", &values), "name: app / app");
        assert_eq!(render("{{other}} {{projectName", &values), "{{other}} {{projectName");
    }
}
