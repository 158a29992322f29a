use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/runbook/runbook.toml"))
}

fn err(text: &str) -> String {
    parse(text)
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn shipped_example_parses() {
    let cfg = parse(EXAMPLE_CONFIG).expect("example config parses");
    let db = cfg.target("app-db").expect("example has app-db");
    assert_eq!(db.kind.name(), "sqlite");
    assert_eq!(db.keep.last, Some(5));
    assert_eq!(cfg.data_dir, Path::new("/etc/runbook/runbook-data"));
}

#[test]
fn issue_example_parses_with_defaults_and_env_paths() {
    let cfg = parse(
        r#"
[targets.app-db]
kind = "sqlite"
path = "/srv/app/app.db"
schedule = "0 3 * * *"
keep = { last = 5, daily = 7, within = "30d" }
[targets.state]
kind = "files"
paths = ["server/data/state.json"]
exclude = ["*.tmp"]
"#,
    )
    .expect("parses");
    assert_eq!(
        cfg.repository.path,
        Path::new("/etc/runbook/runbook-data/repo")
    );
    assert_eq!(
        cfg.repository.password_file,
        Path::new("/etc/runbook/runbook-data/repo.key")
    );
    let keep = &cfg.targets["app-db"].keep;
    assert_eq!(
        keep.within,
        Some(std::time::Duration::from_secs(30 * 86400))
    );
    match &cfg.targets["state"].kind {
        TargetKind::Files { paths, exclude } => {
            assert_eq!(paths[0], Path::new("/etc/runbook/server/data/state.json"));
            assert_eq!(exclude, &["*.tmp"]);
        }
        other => panic!("state is a files target, not {}", other.name()),
    }
}

#[test]
fn unknown_key_names_file_line_and_table() {
    let e = err("[targets.db]\nkind = \"sqlite\"\npath = \"a.db\"\npathz = 1\n");
    assert!(e.contains("runbook.toml:"), "{e}");
    assert!(e.contains("pathz"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn unknown_top_level_key_is_rejected() {
    let e = err("data_dirr = \"x\"\n");
    assert!(
        e.contains("runbook.toml:1") && e.contains("data_dirr"),
        "{e}"
    );
}

#[test]
fn bad_duration_names_key() {
    let e = err("[targets.db]\nkind = \"sqlite\"\npath = \"a.db\"\nkeep = { within = \"30x\" }\n");
    assert!(e.contains("targets.db.keep.within"), "{e}");
    assert!(e.contains("30x"), "{e}");
}

#[test]
fn a_keep_count_of_zero_is_refused_naming_the_rule() {
    // `last = 0` alone keeps nothing: every backup would remove every snapshot, its own too.
    for rule in ["last", "hourly", "daily", "weekly", "monthly"] {
        let e = err(&format!(
            "[targets.db]\nkind = \"sqlite\"\npath = \"a.db\"\nkeep = {{ within = \"7d\", {rule} = 0 }}\n"
        ));
        assert!(e.contains(&format!("targets.db.keep.{rule}")), "{e}");
        assert!(e.contains("at least 1"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    let e = err(
        "[repositories.offsite]\npath = \"/mnt/usb\"\nkeep = { last = 0 }\n\
         [targets.db]\nkind = \"sqlite\"\npath = \"a.db\"\ncopy_to = [\"offsite\"]\n",
    );
    assert!(e.contains("repositories.offsite.keep.last"), "{e}");
    let ok = parse("[targets.db]\nkind = \"sqlite\"\npath = \"a.db\"\nkeep = { last = 1 }\n")
        .expect("a count of 1 is a rule");
    assert_eq!(ok.targets["db"].keep.last, Some(1));
}

#[test]
fn bad_cron_names_key() {
    for bad in ["61 3 * * *", "every day", "daily at 25 UTC", "0 3 * *"] {
        let e = err(&format!(
            "[targets.db]\nkind = \"sqlite\"\npath = \"a.db\"\nschedule = \"{bad}\"\n"
        ));
        assert!(e.contains("targets.db.schedule"), "{bad}: {e}");
    }
}

#[test]
fn daily_at_hour_is_a_cron() {
    let s = Schedule::parse("daily at 03 UTC").expect("valid");
    assert_eq!(s.cron().pattern.to_string(), "0 3 * * *");
    let s = Schedule::parse("daily at 4:30 utc").expect("valid");
    assert_eq!(s.cron().pattern.to_string(), "30 4 * * *");
}

#[test]
fn duplicate_target_is_rejected() {
    let e = err(
        "[targets.db]\nkind = \"sqlite\"\npath = \"a.db\"\n[targets.db]\nkind = \"sqlite\"\npath = \"b.db\"\n",
    );
    assert!(e.contains("runbook.toml:4"), "{e}");
    assert!(e.to_lowercase().contains("duplicate"), "{e}");
}

#[test]
fn unknown_kind_and_bad_name_are_rejected() {
    let e = err("[targets.db]\nkind = \"oracle\"\npath = \"a.db\"\n");
    assert!(e.contains("oracle"), "{e}");
    let e = err("[targets.\"../x\"]\nkind = \"sqlite\"\npath = \"a.db\"\n");
    assert!(e.contains("invalid target name"), "{e}");
}

#[test]
fn bad_exclude_glob_is_rejected() {
    let e = err("[targets.f]\nkind = \"files\"\npaths = [\"a\"]\nexclude = [\"a[\"]\n");
    assert!(e.contains("targets.f.exclude[0]"), "{e}");
}

#[test]
fn missing_source_is_reported_by_check_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("runbook.toml");
    let cfg = Config::parse(
        "[targets.db]\nkind = \"sqlite\"\npath = \"nope.db\"\n",
        &file,
    )
    .expect("parses");
    let e = cfg.check_sources().expect_err("missing source").to_string();
    assert!(e.contains("target `db`") && e.contains("nope.db"), "{e}");
}

#[test]
fn unknown_target_lists_known_ones() {
    let cfg = parse(EXAMPLE_CONFIG).expect("parses");
    let e = cfg.target("nope").expect_err("unknown").to_string();
    assert!(e.contains("nope") && e.contains("app-db"), "{e}");
}

#[test]
fn postgres_target_keeps_the_password_out_of_its_url() {
    let cfg = parse(
        "[targets.pg]\nkind = \"postgres\"\nurl = \"postgres://app:pw1@db:5432/shop\"\nexclude_tables = [\"audit\"]\n",
    )
    .expect("parses");
    match &cfg.targets["pg"].kind {
        TargetKind::Postgres(pg) => {
            assert_eq!(pg.url.to_string(), "postgresql://app@db:5432/shop");
            assert_eq!(pg.url.password(), Some("pw1"));
            assert_eq!(pg.exclude_tables, ["audit"]);
        }
        other => panic!("not postgres: {other:?}"),
    }
    assert!(!format!("{cfg:?}").contains("pw1"), "Debug never shows it");
    let e = err("[targets.pg]\nkind = \"postgres\"\nurl = \"postgres://app:pw1@db:port/shop\"\n");
    assert!(e.contains("targets.pg.url") && !e.contains("pw1"), "{e}");
}

#[test]
fn example_with_every_commented_section_enabled_parses() {
    let text: String = EXAMPLE_CONFIG
        .lines()
        .map(|l| {
            let t = l.strip_prefix("# ").unwrap_or(l);
            let enabled = [
                "[",
                "kind",
                "url",
                "paths",
                "exclude",
                "password_file",
                "schedule",
                "keep",
                "sql",
                "row_counts",
                "ready_",
                "interval",
                "expect",
                "period",
                "grace",
                "when",
                "repeat",
            ]
            .iter()
            .any(|k| t.starts_with(k));
            if enabled {
                t.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = parse(&text).expect("every example section parses");
    assert_eq!(
        cfg.targets.len(),
        4,
        "{:?}",
        cfg.targets.keys().collect::<Vec<_>>()
    );
    assert!(
        cfg.state_url.starts_with("postgres://"),
        "{}",
        cfg.state_url
    );
    assert_eq!(
        (
            cfg.monitor.probes.len(),
            cfg.monitor.heartbeats.len(),
            cfg.monitor.alerts.len()
        ),
        (1, 1, 1),
        "the example's monitor sections"
    );
    let drill = cfg.targets["app-db"].drill.as_ref().expect("example drill");
    assert_eq!(drill.checks.len(), 2);
    assert!(drill.ready_command.is_some());
}

#[test]
fn database_url_must_match_the_target_kind() {
    let e = err("[targets.pg]\nkind = \"postgres\"\nurl = \"mysql://root@db:3306/shop\"\n");
    assert!(
        e.contains("targets.pg.url") && e.contains("postgres://"),
        "{e}"
    );
    let e = err("[targets.my]\nkind = \"mariadb\"\nurl = \"postgres://app@db/shop\"\n");
    assert!(
        e.contains("targets.my.url") && e.contains("mysql://"),
        "{e}"
    );
}

#[test]
fn issue_drill_example_parses() {
    let cfg = parse(
        r#"
[targets.app-db]
kind = "postgres"
url = "postgres://app@db:5432/app"
[targets.app-db.drill]
schedule = "0 5 * * 1"
snapshot = "latest"
max_restore = "15m"
max_data_age = "26h"
ready_command = "./bin/migrate --check"
server = "postgres://drill:s3cret@scratch-db:5432/postgres"
[[targets.app-db.drill.checks]]
sql = "select count(*) > 0 from users"
[[targets.app-db.drill.checks]]
row_counts = { tolerance = "1%" }
"#,
    )
    .expect("parses");
    let d = cfg.targets["app-db"].drill.as_ref().expect("has a drill");
    assert_eq!(d.max_restore, Some(std::time::Duration::from_secs(900)));
    assert_eq!(
        d.max_data_age,
        Some(std::time::Duration::from_secs(26 * 3600))
    );
    assert_eq!(d.snapshot, DrillSnapshot::Latest);
    assert_eq!(d.ready_timeout, std::time::Duration::from_secs(300));
    assert_eq!(
        d.checks,
        vec![
            DrillCheck::Sql("select count(*) > 0 from users".into()),
            DrillCheck::RowCounts {
                tolerance_percent: 1.0
            }
        ]
    );
    let server = d.server.as_ref().expect("server");
    assert_eq!(server.host, "scratch-db");
    assert!(!server.to_string().contains("s3cret"));
}

#[test]
fn drill_shorthands_and_random_snapshot() {
    let cfg = parse(
        r#"
[targets.db]
kind = "sqlite"
path = "/srv/app.db"
drill = { schedule = "quarterly", snapshot = "random-within:30d" }
"#,
    )
    .expect("parses");
    let d = cfg.targets["db"].drill.as_ref().expect("has a drill");
    assert_eq!(
        d.snapshot,
        DrillSnapshot::RandomWithin(std::time::Duration::from_secs(30 * 86400))
    );
    assert_eq!(d.schedule.as_ref().map(Schedule::as_str), Some("quarterly"));
}

#[test]
fn bad_drill_settings_name_their_key() {
    let base = "[targets.db]\nkind = \"sqlite\"\npath = \"/a.db\"\n[targets.db.drill]\n";
    let cases = [
        ("max_restore = \"soon\"", "targets.db.drill.max_restore"),
        ("snapshot = \"oldest\"", "targets.db.drill.snapshot"),
        ("schedule = \"fortnightly\"", "targets.db.drill.schedule"),
        ("server = \"postgres://x@h/d\"", "targets.db.drill.server"),
        ("checks = [{}]", "targets.db.drill.checks[0]"),
        (
            "checks = [{ sql = \"select 1\", row_counts = {} }]",
            "targets.db.drill.checks[0]",
        ),
        (
            "checks = [{ row_counts = { tolerance = \"5\" } }]",
            "targets.db.drill.checks[0].row_counts.tolerance",
        ),
        ("colour = \"red\"", "colour"),
    ];
    for (line, key) in cases {
        let msg = err(&format!("{base}{line}\n"));
        assert!(msg.contains(key), "{line}: {msg}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
    }
    let files = "[targets.f]\nkind = \"files\"\npaths = [\"/x\"]\n[targets.f.drill]\nchecks = [{ sql = \"select 1\" }]\n";
    assert!(err(files).contains("need a database target"));
}

#[test]
fn bucket_drills_sample_a_count_or_a_share() {
    use crate::Sample;
    assert_eq!(Sample::Count(50).of(12), 12);
    assert_eq!(Sample::Count(50).of(1000), 50);
    assert_eq!(Sample::Percent(1.0).of(1000), 10);
    assert_eq!(Sample::Percent(1.0).of(10), 1, "at least one");
    assert_eq!(Sample::Percent(100.0).of(0), 0);
    let bucket = "[targets.b]\nkind = \"bucket\"\nurl = \"s3:http://h/b\"\n[targets.b.drill]\n";
    assert_eq!(
        parse(&format!("{bucket}sample = \"5%\"\n"))
            .expect("parses")
            .targets["b"]
            .drill
            .as_ref()
            .expect("drill")
            .sample,
        Sample::Percent(5.0)
    );
    for (bad, why) in [
        ("sample = 0", "at least one"),
        ("sample = \"lots\"", "a count (50) or a percentage"),
    ] {
        let e = err(&format!("{bucket}{bad}\n"));
        assert!(
            e.contains("targets.b.drill.sample") && e.contains(why),
            "{e}"
        );
    }
    let e = err("[targets.f]\nkind = \"files\"\npaths = [\"x\"]\n[targets.f.drill]\nsample = 5\n");
    assert!(e.contains("only bucket targets"), "{e}");
}
