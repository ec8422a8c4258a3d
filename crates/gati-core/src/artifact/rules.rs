//! The checks a document must pass beyond its shape: names, versions, licenses, file references,
//! and the rules of each type (an agent's skill graph is acyclic, a template's variables are well
//! formed, a model's card is structured). Every problem is collected with its field's path.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{self, TypedConfig};
use super::document::{
    Author, Dependency, FieldError, RawDocument, RequiredArtifact, ValidatedDocument, file_path_problem, repo_of,
    unique_paths,
};
use super::kind::ArtifactKind;
use super::names::{ArtifactRef, ArtifactVersion, RefTarget};
use crate::time::{is_date, is_rfc3339};
use crate::version_range::VersionRange;

const MAX_DESCRIPTION: usize = 4096;
const MAX_KEYWORDS: usize = 32;
/// Dependencies one version may declare: far above real use, low enough to bound resolution.
const MAX_DEPENDENCIES: usize = 500;

struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
}

pub(crate) fn check(kind: ArtifactKind, raw: &RawDocument) -> Result<ValidatedDocument, Vec<FieldError>> {
    let mut p = Problems(Vec::new());
    let m = &raw.manifest;

    let repo = repo_of(&raw.namespace, &raw.name).map_err(|e| p.add("name", e)).ok();
    let version = raw.version.parse::<ArtifactVersion>().map_err(|e| p.add("version", e.to_string())).ok();
    if let Some(name) = &m.name
        && name != &raw.name
    {
        p.add("manifest.name", format!("{name:?} differs from the document's name {:?}", raw.name));
    }
    if let (Some(v), Some(top)) = (&m.version, &version)
        && v.parse::<ArtifactVersion>().ok().as_ref() != Some(top)
    {
        p.add("manifest.version", format!("{v:?} differs from the document's version {top}"));
    }
    let description = m.description.clone().unwrap_or_default();
    if description.len() > MAX_DESCRIPTION {
        p.add("manifest.description", format!("longer than {MAX_DESCRIPTION} bytes"));
    }
    if let Some(Author::Name(name) | Author::Person { name, .. }) = &m.author
        && (name.trim().is_empty() || name.len() > 256)
    {
        p.add("manifest.author", "an author's name is 1 to 256 characters");
    }
    if let Some(license) = &m.license {
        check_license(&mut p, license);
    }
    if m.keywords.len() > MAX_KEYWORDS {
        p.add("manifest.keywords", format!("at most {MAX_KEYWORDS} keywords"));
    }
    for (i, k) in m.keywords.iter().enumerate() {
        if k.is_empty() || k.len() > 64 || k.chars().any(|c| c.is_control() || c.is_whitespace()) {
            p.add(format!("manifest.keywords[{i}]"), "a keyword is 1 to 64 characters without spaces");
        }
    }
    for (i, c) in m.capabilities.iter().enumerate() {
        if !is_capability(c) {
            p.add(
                format!("manifest.capabilities[{i}]"),
                format!("{c:?} is not a capability such as db:read or network:outbound"),
            );
        }
    }

    // Files.
    if raw.contents.len() > super::document::MAX_FILES {
        p.add("contents", format!("at most {} files", super::document::MAX_FILES));
    }
    let mut seen = BTreeSet::new();
    for (i, f) in raw.contents.iter().enumerate() {
        if let Some(problem) = file_path_problem(&f.path) {
            p.add(format!("contents[{i}].path"), problem);
        } else if f.path == "gati.json" {
            // Installs place the document itself there.
            p.add(format!("contents[{i}].path"), "gati.json is the document's own name");
        } else if !seen.insert(f.path.as_str()) {
            p.add(format!("contents[{i}].path"), format!("{:?} is listed twice", f.path));
        }
        if !is_hex(&f.sha256, 64) {
            p.add(format!("contents[{i}].sha256"), "64 lowercase hex digits");
        }
        if !is_hex(&f.sha512, 128) {
            p.add(format!("contents[{i}].sha512"), "128 lowercase hex digits");
        }
    }
    if let Some(c) = &raw.checksums {
        if !is_hex(&c.sha256, 64) {
            p.add("checksums.sha256", "64 lowercase hex digits");
        }
        if c.sha512.as_ref().is_some_and(|s| !is_hex(s, 128)) {
            p.add("checksums.sha512", "128 lowercase hex digits");
        }
    }
    if let Some(prov) = &raw.provenance
        && prov.build_timestamp.as_ref().is_some_and(|t| !is_rfc3339(t))
    {
        p.add("provenance.buildTimestamp", "an RFC 3339 timestamp such as 2025-11-23T09:55:00Z");
    }
    let paths = unique_paths(&raw.contents);

    // Dependencies.
    if m.dependencies.len() > MAX_DEPENDENCIES {
        p.add("manifest.dependencies", format!("at most {MAX_DEPENDENCIES} dependencies"));
    }
    // Taken from the namespace alone, so that a bad name does not also fail every bare reference.
    let namespace = repo_of(&raw.namespace, "x").ok().map(|r| r.namespace());
    let mut dependencies = Vec::new();
    let mut dep_names = BTreeSet::new();
    for (i, d) in m.dependencies.iter().enumerate() {
        let field = format!("manifest.dependencies[{i}]");
        let range =
            d.version.parse::<VersionRange>().map_err(|e| p.add(format!("{field}.version"), e.to_string())).ok();
        let target = ArtifactRef::parse(&d.name, namespace.as_ref());
        match target {
            Ok(r) if r.target != RefTarget::Latest => {
                p.add(format!("{field}.name"), "name only; the version range goes in \"version\"");
            }
            Ok(r) => {
                if Some(&r.repo) == repo.as_ref() {
                    p.add(format!("{field}.name"), "an artifact cannot depend on itself");
                } else if !dep_names.insert(r.repo.clone()) {
                    p.add(format!("{field}.name"), format!("{} is listed twice", r.repo));
                } else if let Some(range) = range {
                    dependencies.push(Dependency { repo: r.repo, range, field });
                }
            }
            Err(e) => p.add(format!("{field}.name"), e.to_string()),
        }
    }

    // GTypes and Timescape.
    let mut gtype_names = BTreeSet::new();
    for (i, g) in m.gtypes.iter().enumerate() {
        if !is_identifier(&g.name) {
            p.add(format!("manifest.gtypes[{i}].name"), "a GType name is a letter followed by letters, digits or _");
        } else if !gtype_names.insert(g.name.as_str()) {
            p.add(format!("manifest.gtypes[{i}].name"), format!("{} is declared twice", g.name));
        }
        for (field, ty) in &g.fields {
            if !is_identifier(field) {
                p.add(
                    format!("manifest.gtypes[{i}].fields.{field}"),
                    "a field name is a letter followed by letters, digits or _",
                );
            }
            if ty.trim().is_empty() {
                p.add(format!("manifest.gtypes[{i}].fields.{field}"), "a field needs a type");
            }
        }
    }
    if let Some(ts) = &m.timescape {
        for (i, e) in ts.version_graph.iter().enumerate() {
            let field = format!("manifest.timescape.versionGraph[{i}]");
            if e.version.parse::<ArtifactVersion>().is_err() {
                p.add(format!("{field}.version"), "a SemVer version");
            }
            if !is_rfc3339(&e.timestamp) {
                p.add(format!("{field}.timestamp"), "an RFC 3339 timestamp");
            }
            if e.gtype_hash.as_ref().is_some_and(|h| h.is_empty()) {
                p.add(format!("{field}.gtypeHash"), "empty");
            }
            for (j, v) in e.parent_versions.iter().enumerate() {
                if v.parse::<ArtifactVersion>().is_err() {
                    p.add(format!("{field}.parentVersions[{j}]"), "a SemVer version");
                }
            }
        }
    }

    // The type's config and rules.
    let mut required = Vec::new();
    let config = match (&m.config, kind) {
        (None, ArtifactKind::Transformer) => None,
        (None, _) => {
            p.add("manifest.config", format!("a {kind} needs a config; see /api/v1/schemas/{kind}"));
            None
        }
        (Some(value), _) => match config::parse(kind, value) {
            Ok(c) => Some(c),
            Err((path, message)) => {
                let field =
                    if path.is_empty() { "manifest.config".to_owned() } else { format!("manifest.config.{path}") };
                p.add(field, message);
                None
            }
        },
    };
    let file = |p: &mut Problems, field: &str, path: &str| {
        if !paths.contains(path) {
            p.add(field, format!("{path:?} is not among the artifact's files"));
        }
    };
    match &config {
        Some(TypedConfig::Wasm(c)) => {
            file(&mut p, "manifest.config.wasmFile", &c.wasm_file);
            for (i, cap) in c.capabilities.iter().enumerate() {
                if !is_capability(cap) {
                    p.add(format!("manifest.config.capabilities[{i}]"), format!("{cap:?} is not a capability"));
                }
            }
        }
        Some(TypedConfig::Node(c)) => file(&mut p, "manifest.config.entry", &c.entry),
        Some(TypedConfig::Plugin(c)) => file(&mut p, "manifest.config.entry", &c.entry),
        Some(TypedConfig::Binary(c)) => {
            if c.builds.is_empty() {
                p.add("manifest.config.builds", "at least one build");
            }
            for (i, b) in c.builds.iter().enumerate() {
                file(&mut p, &format!("manifest.config.builds[{i}].file"), &b.file);
            }
        }
        Some(TypedConfig::External(c)) => {
            if !(c.url.starts_with("https://") || c.url.starts_with("http://")) || c.url.len() > 2048 {
                p.add("manifest.config.url", "an http(s) URL");
            }
        }
        Some(TypedConfig::Oci(c)) => {
            if c.image.trim().is_empty() || c.image.len() > 512 {
                p.add("manifest.config.image", "an image reference");
            }
        }
        Some(TypedConfig::Model(c)) => {
            file(&mut p, "manifest.config.modelFile", &c.model_file);
            for (name, shape) in [("inputShape", &c.input_shape), ("outputShape", &c.output_shape)] {
                for (i, d) in shape.iter().enumerate() {
                    if *d == 0 || *d < -1 {
                        p.add(format!("manifest.config.{name}[{i}]"), "a dimension is positive, or -1 when dynamic");
                    }
                }
            }
        }
        Some(TypedConfig::Agent(c)) => {
            if let Some(f) = &c.wasm_file {
                file(&mut p, "manifest.config.wasmFile", f);
            }
            if let Some(f) = &c.entry {
                file(&mut p, "manifest.config.entry", f);
            }
            if c.runtime == "wasm" && c.wasm_file.is_none() {
                p.add("manifest.config.wasmFile", "a wasm agent names its .wasm file");
            }
            check_skill_graph(&mut p, &c.skill_graph);
            for (i, r) in c.model_references.iter().enumerate() {
                let field = format!("manifest.config.modelReferences[{i}]");
                match ArtifactRef::parse(r, namespace.as_ref()) {
                    Ok(reference) => {
                        required.push(RequiredArtifact { reference, kinds: vec![ArtifactKind::Model], field })
                    }
                    Err(e) => p.add(field, e.to_string()),
                }
            }
        }
        Some(TypedConfig::Template(c)) => {
            check_variables(&mut p, &c.variables);
            for (i, r) in c.includes_modules.iter().enumerate() {
                if let Err(e) = ArtifactRef::parse(r, namespace.as_ref()) {
                    p.add(format!("manifest.config.includesModules[{i}]"), e.to_string());
                }
            }
        }
        Some(TypedConfig::Snapshot(c)) => {
            if !is_rfc3339(&c.captured_at) {
                p.add("manifest.config.capturedAt", "an RFC 3339 timestamp");
            }
            for (i, r) in c.artifacts.iter().enumerate() {
                let field = format!("manifest.config.artifacts[{i}]");
                match ArtifactRef::parse(r, namespace.as_ref()) {
                    Ok(ArtifactRef { target: RefTarget::Version(_), .. }) => {}
                    Ok(_) => p.add(field, "a snapshot pins exact versions (name@1.2.3)"),
                    Err(e) => p.add(field, e.to_string()),
                }
            }
        }
        Some(TypedConfig::Transformer(_)) | None => {}
    }
    if kind == ArtifactKind::Plugin {
        for (i, r) in m.required_modules.iter().enumerate() {
            let field = format!("manifest.requiredModules[{i}]");
            match ArtifactRef::parse(r, namespace.as_ref()) {
                Ok(reference) => required.push(RequiredArtifact {
                    reference,
                    kinds: ArtifactKind::ALL.into_iter().filter(|k| k.is_module()).collect(),
                    field,
                }),
                Err(e) => p.add(field, e.to_string()),
            }
        }
    }
    if kind == ArtifactKind::Model {
        check_model_card(&mut p, raw);
    }
    if kind == ArtifactKind::Transformer {
        check_transformer(&mut p, raw, namespace.as_ref());
    }

    match (repo, version, p.0.is_empty()) {
        (Some(repo), Some(version), true) => Ok(ValidatedDocument {
            repo,
            version,
            kind,
            description,
            license: m.license.clone(),
            keywords: m.keywords.clone(),
            config,
            dependencies,
            required,
            contents: raw.contents.clone(),
            checksums: raw.checksums.clone(),
        }),
        _ => Err(p.0),
    }
}

fn check_license(p: &mut Problems, license: &str) {
    if license == "UNLICENSED" || license.starts_with("SEE LICENSE IN ") {
        return;
    }
    if let Err(e) = spdx::Expression::parse(license) {
        p.add("manifest.license", format!("not an SPDX license expression ({})", e.reason));
    }
}

/// Skills are named and listed once; every skill a dependency names is listed; and no skill
/// needs itself, however indirectly. A cycle is reported as its path.
fn check_skill_graph(p: &mut Problems, g: &config::SkillGraph) {
    let mut skills = BTreeSet::new();
    for (i, s) in g.skills.iter().enumerate() {
        if s.trim().is_empty() || s.len() > 128 {
            p.add(format!("manifest.config.skillGraph.skills[{i}]"), "a skill name is 1 to 128 characters");
        } else if !skills.insert(s.as_str()) {
            p.add(format!("manifest.config.skillGraph.skills[{i}]"), format!("{s:?} is listed twice"));
        }
    }
    let mut ok = true;
    for (skill, needs) in &g.dependencies {
        if !skills.contains(skill.as_str()) {
            p.add(
                format!("manifest.config.skillGraph.dependencies.{skill}"),
                format!("{skill:?} is not among the skills"),
            );
            ok = false;
        }
        for (i, n) in needs.iter().enumerate() {
            if !skills.contains(n.as_str()) {
                p.add(
                    format!("manifest.config.skillGraph.dependencies.{skill}[{i}]"),
                    format!("{n:?} is not among the skills"),
                );
                ok = false;
            }
        }
    }
    if ok && let Some(cycle) = find_cycle(&g.dependencies) {
        p.add(
            format!("manifest.config.skillGraph.dependencies.{}", cycle[0]),
            format!("the skill graph has a cycle: {}", cycle.join(" -> ")),
        );
    }
}

/// Returns one cycle of the graph as a path that ends where it starts, if there is any.
fn find_cycle(edges: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for start in edges.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        // Iterative DFS: the stack holds (node, index of the next edge to follow).
        let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        marks.insert(start, Mark::Active);
        while let Some((node, next)) = stack.last().copied() {
            let out = edges.get(node).map(Vec::as_slice).unwrap_or_default();
            if let Some(child) = out.get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                match marks.get(child.as_str()) {
                    Some(Mark::Active) => {
                        let from = stack.iter().position(|(n, _)| *n == child.as_str()).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[from..].iter().map(|(n, _)| (*n).to_owned()).collect();
                        cycle.push(child.clone());
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(child, Mark::Active);
                        stack.push((child, 0));
                    }
                }
            } else {
                marks.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    None
}

fn check_variables(p: &mut Problems, vars: &[config::TemplateVariable]) {
    let mut names = BTreeSet::new();
    for (i, v) in vars.iter().enumerate() {
        let field = format!("manifest.config.variables[{i}]");
        if !is_identifier(&v.name) || v.name.len() > 64 {
            p.add(format!("{field}.name"), "a variable name is a letter followed by letters, digits or _ (at most 64)");
        } else if !names.insert(v.name.as_str()) {
            p.add(format!("{field}.name"), format!("{:?} is declared twice", v.name));
        }
        if let Some(options) = &v.options {
            if options.is_empty() {
                p.add(format!("{field}.options"), "a choice needs at least one option");
            }
            let unique: BTreeSet<&String> = options.iter().collect();
            if unique.len() != options.len() {
                p.add(format!("{field}.options"), "options are listed once each");
            }
            if let Some(d) = &v.default
                && !options.contains(d)
            {
                p.add(format!("{field}.default"), format!("{d:?} is not one of the options"));
            }
        }
        if v.required && v.default.is_some() {
            p.add(format!("{field}.required"), "a variable with a default is never required");
        }
    }
}

fn check_model_card(p: &mut Problems, raw: &RawDocument) {
    if let Some(card) = &raw.manifest.model_card {
        for (name, score) in [
            ("accuracy", card.accuracy),
            ("f1Score", card.f1_score),
            ("precision", card.precision),
            ("recall", card.recall),
        ] {
            if score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
                p.add(format!("manifest.modelCard.{name}"), "a score between 0 and 1");
            }
        }
        if card.training_date.as_ref().is_some_and(|d| !is_date(d) && !is_rfc3339(d)) {
            p.add("manifest.modelCard.trainingDate", "a date such as 2025-10-15");
        }
        if card.dataset.as_ref().is_some_and(|d| d.trim().is_empty()) {
            p.add("manifest.modelCard.dataset", "empty");
        }
    }
    if let Some(b) = &raw.manifest.benchmarks {
        if b.inference_time.as_ref().is_some_and(|t| !is_quantity(t, &["ns", "us", "µs", "ms", "s"])) {
            p.add("manifest.benchmarks.inferenceTime", "a duration such as 12ms");
        }
        if b.memory_usage
            .as_ref()
            .is_some_and(|m| !is_quantity(m, &["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"]))
        {
            p.add("manifest.benchmarks.memoryUsage", "a size such as 256MB");
        }
    }
}

fn check_transformer(p: &mut Problems, raw: &RawDocument, namespace: Option<&crate::name::Namespace>) {
    let m = &raw.manifest;
    match &m.from_artifact {
        None => p.add("manifest.fromArtifact", "a transformer names the artifact it transforms"),
        Some(a) => {
            if let Err(e) = ArtifactRef::parse(a, namespace) {
                p.add("manifest.fromArtifact", e.to_string());
            }
        }
    }
    for (name, range) in [("fromVersion", &m.from_version), ("toVersion", &m.to_version)] {
        match range {
            None => p.add(format!("manifest.{name}"), "a version range"),
            Some(r) => {
                if let Err(e) = r.parse::<VersionRange>() {
                    p.add(format!("manifest.{name}"), e.to_string());
                }
            }
        }
    }
    if m.transformations.is_empty() {
        p.add("manifest.transformations", "at least one transformation");
    }
    for (i, t) in m.transformations.iter().enumerate() {
        if !is_identifier(&t.gtype) {
            p.add(format!("manifest.transformations[{i}].type"), "a GType name");
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `db:read`, `network:outbound`, `crypto`, `ai:inference`.
fn is_capability(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split(':').all(|part| {
            let mut c = part.chars();
            c.next().is_some_and(|f| f.is_ascii_lowercase())
                && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, '-' | '_' | '.' | '*'))
        })
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A number followed by one of `units`: `12ms`, `1.5GB`.
fn is_quantity(s: &str, units: &[&str]) -> bool {
    let n = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(n);
    !num.is_empty() && num.parse::<f64>().is_ok() && units.contains(&unit.trim())
}
