//! PostgreSQL for the test suites: the server `EMPORIUM_TEST_POSTGRES_URL` names, or else a
//! throw-away one started once per test binary (initdb into a temporary folder, on a free
//! loopback port) when the PostgreSQL binaries are installed, and stopped once the binary exits.
//! Only tests call this; it reads the environment for that reason alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The admin URL of the PostgreSQL server the tests of this binary use, or `None` after saying
/// loudly that `test`'s PostgreSQL run did not happen. With `EMPORIUM_TEST_REQUIRE_POSTGRES=1`
/// (CI) a missing PostgreSQL fails the test instead.
///
/// # Panics
///
/// When PostgreSQL is required and neither a URL nor a throw-away server is available.
pub fn postgres_admin_url(test: &str) -> Option<String> {
    if let Ok(url) = std::env::var("EMPORIUM_TEST_POSTGRES_URL")
        && !url.is_empty()
    {
        return Some(url);
    }
    static THROWAWAY: OnceLock<Result<String, String>> = OnceLock::new();
    match THROWAWAY.get_or_init(start_throwaway) {
        Ok(url) => Some(url.clone()),
        Err(why) => {
            assert!(
                std::env::var("EMPORIUM_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "EMPORIUM_TEST_POSTGRES_URL is not set, no throw-away PostgreSQL ({why}), but \
                 EMPORIUM_TEST_REQUIRE_POSTGRES=1"
            );
            eprintln!(
                "NOT RUN: {test}: PostgreSQL suite skipped: EMPORIUM_TEST_POSTGRES_URL is not set \
                 and no throw-away server could start ({why})"
            );
            None
        }
    }
}

/// The newest `/usr/lib/postgresql/*/bin` holding `initdb` and `pg_ctl`.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// A command run as the `postgres` user when this process is root (initdb refuses root).
fn as_postgres(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start_throwaway() -> Result<String, String> {
    let bin = postgres_bin().ok_or("no initdb and pg_ctl under /usr/lib/postgresql/*/bin")?;
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let dir = std::env::temp_dir().join(format!("emporium-test-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
    if root {
        let chown = Command::new("chown")
            .arg("postgres")
            .arg(&dir)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !chown.success() {
            return Err("chown of the temp dir to postgres failed".to_owned());
        }
    }
    let data = dir.join("data");
    let init = as_postgres(&bin.join("initdb"), root)
        .args(["--auth=trust", "-U", "postgres", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("initdb: {e}"))?;
    if !init.success() {
        return Err("initdb failed".to_owned());
    }
    // A free port: bound and released; the server takes it a moment later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("free port: {e}"))?
        .port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
        dir.display()
    );
    let start = as_postgres(&bin.join("pg_ctl"), root)
        .arg("-D")
        .arg(&data)
        .args(["-o", &options, "-l"])
        .arg(dir.join("log"))
        .args(["-w", "start"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("pg_ctl start: {e}"))?;
    if !start.success() {
        return Err(format!("pg_ctl start failed (see {}/log)", dir.display()));
    }
    // Statics are never dropped: a watcher outlives this process, then stops the server and
    // removes its folder.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {run}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        run = if root { "runuser -u postgres -- " } else { "" },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &stop])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("watcher: {e}"))?;
    eprintln!("PostgreSQL: throw-away server on 127.0.0.1:{port} for this test binary");
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}
