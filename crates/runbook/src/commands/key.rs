//! `runbook key rotate`: a new repository password, added to every repository before the old
//! one is removed (see `runbook_backup::rotate`).

use std::{io::IsTerminal, process::ExitCode};

use runbook_backup::Engine;
use secrecy::SecretString;

use crate::output;

pub fn rotate(engine: &Engine, json: bool) -> anyhow::Result<ExitCode> {
    let config = engine.config();
    let anchor_path = config.data_dir.join("oplog.anchor");
    // The ops log's anchor is authenticated with a key derived from the password: move it to
    // the new one before the old password is gone.
    let mut rekey = |old: &SecretString, new: &SecretString| {
        runbook_store::Anchor::new(anchor_path.clone(), old)
            .rekey(&runbook_store::Anchor::new(anchor_path.clone(), new))
            .map_err(|e| format!("cannot re-key the ops log anchor: {e}"))
    };
    let chatty = !json && std::io::stderr().is_terminal();
    let report = engine.rotate_password(&mut rekey, &mut |step| {
        if chatty {
            eprintln!("{step}…");
        }
    })?;
    let detail = format!(
        "{} repositories{}",
        report.repositories.len(),
        if report.resumed {
            " (an interrupted rotation finished)"
        } else {
            ""
        }
    );
    let recorded = super::audit(config, "key.rotate", "repository", "ok", detail);
    if json {
        output::json(&report)?;
    } else {
        if report.resumed {
            println!("finished an interrupted rotation");
        }
        for r in &report.repositories {
            println!("{r}: opens with the new password only");
        }
        println!(
            "the new password is in {}; update any copy of the password kept elsewhere (a password manager, the off-site escrow)",
            config.repository.password_file.display()
        );
    }
    Ok(if recorded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
