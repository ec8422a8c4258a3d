//! `gati`: publish, install and manage Gati artifacts.
//!
//! Human output by default and `--json` everywhere; the exit status says what kind of failure
//! happened (see [`exit`]), so scripts can branch on it.

mod config;
mod exit;
mod glob;
mod install;
mod manage;
mod output;
mod project;
mod publish;
mod template;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::exit::Failure;

#[derive(Parser)]
#[command(name = "gati", version, about = "Publish, install and manage Gati artifacts", after_help = exit::HELP)]
struct Cli {
    /// The registry's URL (default: the one last signed in to, else `http://127.0.0.1:5000`).
    #[arg(long, global = true, env = "GATI_REGISTRY")]
    registry: Option<String>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in with a user name and password (read from stdin with --password-stdin), or store an API key.
    Login {
        /// User name or email.
        #[arg(long, short)]
        username: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Use an API key (gati_...) instead of a password; `-` reads it from standard input.
        #[arg(long)]
        token: Option<String>,
    },
    /// Sign out of the registry and forget its credentials.
    Logout,
    /// Show who the stored credentials speak for.
    Whoami,
    /// Publish the artifact described by gati.json in a directory.
    Publish {
        /// The directory holding gati.json.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Point this dist-tag at the new version instead of moving `latest`.
        #[arg(long)]
        tag: Option<String>,
        /// Check and print the document without uploading anything.
        #[arg(long)]
        dry_run: bool,
        /// Upload each file at most this fast: bytes per second, or with a K, M or G suffix.
        #[arg(long, value_parser = parse_rate)]
        limit_rate: Option<u64>,
    },
    /// Install artifacts (or the dependencies of gati.json, or exactly what gati.lock pins).
    Install {
        /// Artifacts to install: namespace/name, namespace/name@1.2.3, namespace/name@^1.2, namespace/name@next.
        specs: Vec<String>,
        /// The project directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Never use the network: install from gati.lock and the local cache only.
        #[arg(long)]
        offline: bool,
        /// Fail instead of resolving when gati.lock is missing or does not match.
        #[arg(long)]
        frozen: bool,
        /// Downloads at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Search artifacts.
    Search {
        /// Words that must appear in the name or description.
        words: Vec<String>,
        /// Only this type (module-wasm, model, agent...).
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show an artifact, or one version of it (name@version or name@tag).
    Info {
        /// namespace/name[@version|@tag].
        spec: String,
    },
    /// List an artifact's versions.
    Versions {
        /// namespace/name.
        name: String,
    },
    /// Withdraw a version (within 72 hours of publishing, when nothing depends on it).
    Unpublish {
        /// namespace/name@version.
        spec: String,
    },
    /// Deprecate the versions in a range with a message; an empty message lifts the deprecation.
    Deprecate {
        /// namespace/name@range (a version, ^1.2, <2...).
        spec: String,
        /// The message shown to installers.
        message: String,
    },
    /// Manage dist-tags.
    #[command(subcommand)]
    DistTag(DistTagCommand),
    /// Project templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum DistTagCommand {
    /// Point a tag at a version: gati dist-tag add name@1.2.3 next
    Add {
        /// namespace/name@version.
        spec: String,
        /// The tag.
        tag: String,
    },
    /// Remove a tag (not latest).
    Rm {
        /// namespace/name.
        name: String,
        /// The tag.
        tag: String,
    },
    /// List the tags.
    Ls {
        /// namespace/name.
        name: String,
    },
}

#[derive(Subcommand)]
enum TemplateCommand {
    /// Render a template into a new directory.
    Init {
        /// namespace/name[@version|@tag] of a template.
        spec: String,
        /// The directory to create.
        dir: PathBuf,
        /// A variable's value: --var projectName=my-app (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Never ask: use defaults and fail on missing required variables.
        #[arg(long, short)]
        yes: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return output::fail(json, &Failure::other(format!("cannot start: {e}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => output::fail(json, &failure),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let ctx = config::Context::new(cli.registry.as_deref(), cli.json)?;
    match cli.command {
        Command::Login { username, password_stdin, token } => {
            manage::login(&ctx, username, password_stdin, token).await
        }
        Command::Logout => manage::logout(&ctx).await,
        Command::Whoami => manage::whoami(&ctx).await,
        Command::Publish { dir, tag, dry_run, limit_rate } => {
            publish::run(&ctx, &dir, tag.as_deref(), dry_run, limit_rate).await
        }
        Command::Install { specs, dir, offline, frozen, concurrency } => {
            install::run(&ctx, &specs, &dir, install::Mode { offline, frozen, concurrency: concurrency.clamp(1, 32) })
                .await
        }
        Command::Search { words, kind, namespace, limit } => {
            manage::search(&ctx, &words.join(" "), kind.as_deref(), namespace.as_deref(), limit).await
        }
        Command::Info { spec } => manage::info(&ctx, &spec).await,
        Command::Versions { name } => manage::versions(&ctx, &name).await,
        Command::Unpublish { spec } => manage::unpublish(&ctx, &spec).await,
        Command::Deprecate { spec, message } => manage::deprecate(&ctx, &spec, &message).await,
        Command::DistTag(DistTagCommand::Add { spec, tag }) => manage::dist_tag_add(&ctx, &spec, &tag).await,
        Command::DistTag(DistTagCommand::Rm { name, tag }) => manage::dist_tag_rm(&ctx, &name, &tag).await,
        Command::DistTag(DistTagCommand::Ls { name }) => manage::dist_tag_ls(&ctx, &name).await,
        Command::Template(TemplateCommand::Init { spec, dir, vars, yes }) => {
            template::init(&ctx, &spec, &dir, &vars, yes).await
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "gati", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// `500K`, `2M`, `1G` or plain bytes per second.
fn parse_rate(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{text:?}: a number of bytes per second, such as 500K or 2M"))?;
    let factor = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("{text:?}: the unit is K, M or G")),
    };
    n.checked_mul(factor).filter(|r| *r > 0).ok_or_else(|| format!("{text:?}: out of range"))
}
