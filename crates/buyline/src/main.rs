//! The `buyline` command.

use buyline::config::{Cli, Command, LogFormat};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc gives freed memory back to the system: with glibc's allocator each password hash
/// (Argon2, 19 MiB) stayed resident after it was freed, and sign-ups alone grew the server
/// past 1 GiB (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("BUYLINE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Serve(cfg) => {
            let running = buyline::spawn(cfg).await?;
            println!("Buyline is running at {}", running.public_url);
            if let Some(d) = &running.demo {
                println!("{}", d.banner());
            }
            running.until_signal().await
        }
        Command::Migrate(args) => {
            let url = buyline::config::database_url(&args.data_dir, args.database_url.as_deref());
            std::fs::create_dir_all(&args.data_dir)?;
            let db = buyline_store::Db::connect(&url, 1).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            db.close().await;
            println!("migrations applied to {}", buyline::config::redact_url(&url));
            Ok(())
        }
        Command::Keys(buyline::config::KeysCommand::Rotate(args)) => {
            let url = buyline::config::database_url(&args.data_dir, args.database_url.as_deref());
            let report = buyline::rotate_keys(&args.data_dir, &url).await?;
            println!("{report}");
            Ok(())
        }
        Command::Bench(args) => bench(args.args),
        Command::AdminToken(args) => {
            match std::env::var("BUYLINE_ADMIN_TOKEN").ok().filter(|s| !s.is_empty()) {
                Some(t) => println!("{t}"),
                None => println!("{}", buyline::config::admin_token_file(&args.data_dir)?),
            }
            Ok(())
        }
    }
}

/// `buyline bench …`: the load scenarios live in their own program, `buyline-bench`, which
/// reaches the product only through this binary's CLI and the HTTP API. Runs the one built
/// beside this binary, telling it which `buyline` to start.
fn bench(args: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    let program = me.with_file_name(format!("buyline-bench{}", std::env::consts::EXE_SUFFIX));
    if !program.is_file() {
        anyhow::bail!(
            "{} not found: build it beside buyline (`cargo build -p buyline -p buyline-bench`, with --release for figures)",
            program.display()
        );
    }
    let mut cmd = std::process::Command::new(&program);
    cmd.args(args).env("BUYLINE_BENCH_SERVER", &me);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(anyhow::anyhow!("cannot run {}: {}", program.display(), cmd.exec()))
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status()?;
        std::process::exit(status.code().unwrap_or(1));
    }
}
