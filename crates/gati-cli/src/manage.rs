//! Account and artifact management commands: login, logout, whoami, search, info, versions,
//! unpublish, deprecate, dist-tag.

use std::io::{BufRead as _, IsTerminal as _};

use gati_core::artifact::{ArtifactRef, RefTarget};
use serde_json::json;

use crate::config::{Context, Credentials, apply_tokens};
use crate::exit::Failure;
use crate::output;

fn read_line(what: &str) -> Result<String, Failure> {
    if std::io::stdin().is_terminal() {
        eprint!("{what}: ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure::other(format!("reading {what}: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub async fn login(
    ctx: &Context,
    username: Option<String>,
    password_stdin: bool,
    token: Option<String>,
) -> Result<(), Failure> {
    let client = ctx.anonymous()?;
    let creds = if let Some(token) = token {
        let key = if token == "-" { read_line("API key")? } else { token };
        let who = client.clone().with_auth(Some(gati_client::Auth::Bearer(key.clone()))).whoami().await?;
        Credentials { username: who["name"].as_str().map(str::to_owned), api_key: Some(key), ..Credentials::default() }
    } else {
        let username = match username {
            Some(u) => u,
            None => read_line("user name")?,
        };
        if !password_stdin && !std::io::stdin().is_terminal() {
            return Err(Failure::usage("pass --password-stdin to read the password from a pipe"));
        }
        let password = read_line("password")?;
        let tokens = client.login(&username, &password).await?;
        let mut creds = Credentials { username: Some(username), ..Credentials::default() };
        apply_tokens(&mut creds, &tokens);
        creds
    };
    let name = creds.username.clone().unwrap_or_default();
    ctx.save_credentials(Some(creds))?;
    output::print(ctx.json, &json!({ "registry": ctx.registry, "username": name }), || {
        format!("signed in to {} as {name}", ctx.registry)
    });
    Ok(())
}

pub async fn logout(ctx: &Context) -> Result<(), Failure> {
    if let Some(refresh) = ctx.credentials()?.and_then(|c| c.refresh_token) {
        // The session ends on the registry too; an unreachable registry still forgets it here.
        if let Err(e) = ctx.anonymous()?.logout(&refresh).await {
            output::note(ctx.json, &format!("warning: the registry did not end the session: {e}"));
        }
    }
    ctx.save_credentials(None)?;
    output::print(ctx.json, &json!({ "registry": ctx.registry, "signedOut": true }), || {
        format!("signed out of {}", ctx.registry)
    });
    Ok(())
}

pub async fn whoami(ctx: &Context) -> Result<(), Failure> {
    if ctx.credentials()?.is_none() {
        return Err(Failure::new(4, format!("not signed in to {}", ctx.registry)));
    }
    let who = ctx.client().await?.whoami().await?;
    output::print(ctx.json, &who, || who["name"].as_str().unwrap_or_default().to_owned());
    Ok(())
}

pub async fn search(
    ctx: &Context,
    text: &str,
    kind: Option<&str>,
    namespace: Option<&str>,
    limit: usize,
) -> Result<(), Failure> {
    let text = Some(text).filter(|t| !t.trim().is_empty());
    let page = ctx.client().await?.search(text, kind, namespace, limit.clamp(1, 100)).await?;
    output::print(ctx.json, &json!(page), || {
        if page.results.is_empty() {
            return "no artifacts found".into();
        }
        page.results
            .iter()
            .map(|h| format!("{}@{}  {}  {}", h.name, h.latest.as_deref().unwrap_or("-"), h.kind, h.description))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// `name[@version|@tag]` split into the artifact and, if any, the version or tag.
fn name_and_target(spec: &str) -> Result<(String, Option<String>), Failure> {
    let r = ArtifactRef::parse(spec, None)?;
    let target = match r.target {
        RefTarget::Latest => None,
        RefTarget::Version(v) => Some(v.to_string()),
        RefTarget::Tag(t) => Some(t.to_string()),
        RefTarget::Range(range) => {
            return Err(Failure::usage(format!("name one version or tag, not the range {range}")));
        }
    };
    Ok((r.repo.to_string(), target))
}

pub async fn info(ctx: &Context, spec: &str) -> Result<(), Failure> {
    let (name, target) = name_and_target(spec)?;
    let client = ctx.client().await?;
    match target {
        Some(v) => {
            let d = client.version(&name, &v).await?;
            output::print(ctx.json, &json!(d), || {
                let mut t = format!("{}@{} ({})\n{}\n", d.name, d.summary.version, d.kind, d.summary.description);
                t.push_str(&format!(
                    "published {} by {}, {}\n",
                    d.summary.published_at,
                    d.summary.publisher,
                    output::size(d.summary.size)
                ));
                if let Some(m) = &d.summary.deprecated {
                    t.push_str(&format!("DEPRECATED: {m}\n"));
                }
                for (dep, range) in &d.summary.dependencies {
                    t.push_str(&format!("depends on {dep} {range}\n"));
                }
                for f in &d.files {
                    t.push_str(&format!("  {}  {}\n", f.path, output::size(f.size)));
                }
                t
            });
        }
        None => {
            let i = client.info(&name).await?;
            output::print(ctx.json, &json!(i), || {
                let latest = i.dist_tags.get("latest").cloned().unwrap_or_else(|| "-".into());
                let description =
                    i.versions.iter().find(|v| v.version == latest).map(|v| v.description.clone()).unwrap_or_default();
                let tags: Vec<String> = i.dist_tags.iter().map(|(t, v)| format!("{t}: {v}")).collect();
                format!(
                    "{}@{latest} ({})\n{description}\ndist-tags: {}\nversions: {}",
                    i.name,
                    i.kind,
                    tags.join(", "),
                    i.versions.iter().filter(|v| !v.unpublished).count()
                )
            });
        }
    }
    Ok(())
}

pub async fn versions(ctx: &Context, name: &str) -> Result<(), Failure> {
    let (name, _) = name_and_target(name)?;
    let i = ctx.client().await?.info(&name).await?;
    output::print(ctx.json, &json!({ "name": i.name, "versions": i.versions }), || {
        i.versions
            .iter()
            .map(|v| {
                let state = if v.unpublished {
                    " (unpublished)".to_owned()
                } else if let Some(m) = &v.deprecated {
                    format!(" (deprecated: {m})")
                } else {
                    String::new()
                };
                format!("{}  {}{state}", v.version, v.published_at)
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

pub async fn unpublish(ctx: &Context, spec: &str) -> Result<(), Failure> {
    let r = ArtifactRef::parse(spec, None)?;
    let RefTarget::Version(v) = r.target else {
        return Err(Failure::usage("name the exact version to unpublish: namespace/name@1.2.3"));
    };
    ctx.client().await?.unpublish(r.repo.as_str(), &v.to_string()).await?;
    output::print(ctx.json, &json!({ "name": r.repo.as_str(), "version": v.to_string(), "unpublished": true }), || {
        format!("unpublished {}@{v}", r.repo)
    });
    Ok(())
}

pub async fn deprecate(ctx: &Context, spec: &str, message: &str) -> Result<(), Failure> {
    let r = ArtifactRef::parse(spec, None)?;
    let range = match r.target {
        RefTarget::Version(v) => v.to_string(),
        RefTarget::Range(range) => range.to_string(),
        RefTarget::Latest => "*".to_owned(),
        RefTarget::Tag(t) => return Err(Failure::usage(format!("name versions or a range, not the dist-tag {t}"))),
    };
    let message = Some(message).filter(|m| !m.trim().is_empty());
    let changed = ctx.client().await?.deprecate(r.repo.as_str(), &range, message).await?;
    output::print(ctx.json, &json!({ "name": r.repo.as_str(), "versions": changed, "message": message }), || {
        let verb = if message.is_some() { "deprecated" } else { "lifted the deprecation of" };
        format!("{verb} {} {}", r.repo, changed.join(", "))
    });
    Ok(())
}

pub async fn dist_tag_add(ctx: &Context, spec: &str, tag: &str) -> Result<(), Failure> {
    let r = ArtifactRef::parse(spec, None)?;
    let RefTarget::Version(v) = r.target else {
        return Err(Failure::usage("name the version to tag: namespace/name@1.2.3"));
    };
    ctx.client().await?.set_dist_tag(r.repo.as_str(), tag, &v.to_string()).await?;
    output::print(ctx.json, &json!({ "name": r.repo.as_str(), "tag": tag, "version": v.to_string() }), || {
        format!("{tag}: {}@{v}", r.repo)
    });
    Ok(())
}

pub async fn dist_tag_rm(ctx: &Context, name: &str, tag: &str) -> Result<(), Failure> {
    let (name, _) = name_and_target(name)?;
    ctx.client().await?.remove_dist_tag(&name, tag).await?;
    output::print(ctx.json, &json!({ "name": name, "tag": tag, "removed": true }), || {
        format!("removed {tag} from {name}")
    });
    Ok(())
}

pub async fn dist_tag_ls(ctx: &Context, name: &str) -> Result<(), Failure> {
    let (name, _) = name_and_target(name)?;
    let tags = ctx.client().await?.dist_tags(&name).await?;
    output::print(ctx.json, &json!(tags), || {
        tags.iter().map(|(t, v)| format!("{t}: {v}")).collect::<Vec<_>>().join("\n")
    });
    Ok(())
}
