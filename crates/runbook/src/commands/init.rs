//! `runbook init`: example config, data directory and a random repository password (0600).

use std::{fs, io::Write, os::unix::fs::OpenOptionsExt, path::Path, process::ExitCode};

use anyhow::{Context, bail};
use runbook_config::{Config, EXAMPLE_CONFIG};

use crate::cli::InitArgs;

pub fn run(config_path: &Path, args: &InitArgs) -> anyhow::Result<ExitCode> {
    // An existing config is kept as it is: init then only sets up its data directory and
    // password (a config copied from another host, or written by hand).
    let existing = config_path.exists();
    if existing && args.demo {
        bail!(
            "{} already exists; --demo writes a new config, so pass --config to put it elsewhere (or run `runbook init` alone to set up this config's data directory)",
            config_path.display()
        );
    }
    if !existing {
        if let Some(dir) = config_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fs::write(config_path, EXAMPLE_CONFIG)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
    }
    let config = Config::load(config_path)?;
    fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    if existing {
        println!("kept existing {}", config_path.display());
    } else {
        println!("wrote {}", config_path.display());
    }
    println!("data directory {}", config.data_dir.display());

    let key = &config.repository.password_file;
    if key.exists() {
        println!("kept existing repository password file {}", key.display());
    } else {
        write_password(key)?;
        println!(
            "created repository password file {} (mode 0600)",
            key.display()
        );
    }
    eprintln!();
    eprintln!(
        "IMPORTANT: {} is the only key to your backups.",
        key.display()
    );
    eprintln!(
        "IMPORTANT: if it is lost, every backup is unreadable. Copy it somewhere safe, off this machine, now."
    );
    eprintln!();

    if args.demo {
        let db = config_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("app.db");
        create_demo_db(&db)?;
        println!("created sample database {}", db.display());
    }
    println!("next: runbook config check && runbook backup --all");
    Ok(ExitCode::SUCCESS)
}

fn write_password(path: &Path) -> anyhow::Result<()> {
    let password = runbook_backup::new_password();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{}", secrecy::ExposeSecret::expose_secret(&password))
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all()?;
    Ok(())
}

fn create_demo_db(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        bail!(
            "{} already exists; not overwriting it with sample data",
            path.display()
        );
    }
    let mut conn = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    let tx = conn.transaction()?;
    tx.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
                              amount_cents INTEGER NOT NULL, note TEXT);",
    )?;
    for i in 0..1000 {
        tx.execute(
            "INSERT INTO users (email, created) VALUES (?1, datetime('now'))",
            [format!("user{i}@example.com")],
        )?;
        tx.execute(
            "INSERT INTO orders (user_id, amount_cents, note) VALUES (?1, ?2, ?3)",
            rusqlite::params![i + 1, (i * 37) % 10_000, format!("sample order {i}")],
        )?;
    }
    tx.commit()?;
    Ok(())
}
