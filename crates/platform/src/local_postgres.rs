//! A private PostgreSQL cluster for `polyclinic all` on a machine where none is running.
//!
//! When nothing answers at the default `DATABASE_URL` (127.0.0.1:5432), the launcher starts
//! PostgreSQL from the installed server binaries (`initdb`, `pg_ctl`) in a data directory of
//! its own, listening where the default URL points, and stops it on exit. The directory is
//! kept, so the clinic's data survives between runs. A URL set by the operator is never
//! replaced: an unreachable one is an error, as it always was.
//!
//! This drives PostgreSQL's own tools (`initdb`, `pg_ctl`) rather than a crate that embeds
//! a server: those download PostgreSQL at build or run time, which a clinic's machine (and
//! this one) cannot, while the distribution's packages are what operators already install.
//!
//! The cluster listens on 127.0.0.1 only and asks for a password there (SCRAM): a random one
//! made at `initdb`, kept beside the data directory in a file only its user can read, so that
//! other users of the machine cannot reach the clinic's data.
//!
//! PostgreSQL refuses to run as root. Run as root, the cluster belongs to the `postgres`
//! system user the distribution's package creates, and its tools run as that user.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

/// Where the distributions put PostgreSQL's server binaries, one directory per major
/// version (Debian and Ubuntu: `/usr/lib/postgresql/<major>/bin`; Fedora and Arch put them
/// on `PATH`).
const VERSIONED_ROOTS: &[&str] = &["/usr/lib/postgresql", "/usr/pgsql"];

/// The one line an operator reads when no server binaries are installed.
pub const INSTALL_HINT: &str = "install PostgreSQL's server (Debian/Ubuntu: `apt-get install postgresql`; \
     Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql`) or set \
     DATABASE_URL to a running server";

/// A cluster this process started (or found running in its directory).
#[derive(Debug)]
pub struct LocalPostgres {
    bin: PathBuf,
    data: PathBuf,
    owner: Option<Owner>,
    port: u16,
    /// Whether this process started it, and so stops it.
    started: bool,
}

/// The user PostgreSQL's tools run as when this process is root.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

impl LocalPostgres {
    /// The data directory used when none is given: `$XDG_DATA_HOME/polyclinic/postgres`
    /// (`~/.local/share/...`), or `/var/lib/polyclinic/postgres` for root (whose home the
    /// `postgres` user cannot enter).
    pub fn default_dir() -> anyhow::Result<PathBuf> {
        if running_as_root() {
            return Ok(PathBuf::from("/var/lib/polyclinic/postgres"));
        }
        let base = match std::env::var_os("XDG_DATA_HOME") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => {
                let home = std::env::var_os("HOME")
                    .context("HOME is not set: cannot choose a data directory for PostgreSQL")?;
                PathBuf::from(home).join(".local/share")
            }
        };
        Ok(base.join("polyclinic/postgres"))
    }

    /// Starts the cluster in `data` on 127.0.0.1:`port` (creating it on first use), or
    /// adopts the one already running there. `bin_dirs` are searched for the server
    /// binaries, in order.
    pub fn start(data: &Path, port: u16, bin_dirs: &[PathBuf]) -> anyhow::Result<Self> {
        let bin = server_binaries(bin_dirs).with_context(|| {
            format!("no PostgreSQL is reachable at 127.0.0.1:{port} and none is installed to start one: {INSTALL_HINT}")
        })?;
        let owner = if running_as_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        let mut cluster = Self {
            bin,
            data: data.to_path_buf(),
            owner,
            port,
            started: false,
        };
        cluster.prepare_directory()?;
        if !data.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        if cluster.is_running() {
            let running = cluster.running_port();
            if running != Some(port) {
                bail!(
                    "the PostgreSQL cluster in {} is running on another port ({running:?}); stop it with `pg_ctl stop -D {}`",
                    data.display(),
                    data.display()
                );
            }
        } else {
            cluster.pg_ctl_start()?;
            cluster.started = true;
        }
        Ok(cluster)
    }

    /// The URL of the `polyclinic` database on this cluster.
    /// (It holds the cluster's password: not for logs.)
    pub fn url(&self) -> String {
        match fs::read_to_string(self.password_file()) {
            Ok(password) => format!(
                "postgres://postgres:{}@127.0.0.1:{}/polyclinic",
                password.trim(),
                self.port
            ),
            // A cluster made before passwords were: trust, as it was made.
            Err(_) => format!("postgres://postgres@127.0.0.1:{}/polyclinic", self.port),
        }
    }

    /// Beside the data directory, readable by this process's user only.
    fn password_file(&self) -> PathBuf {
        PathBuf::from(format!("{}.password", self.data.display()))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Whether this process started the cluster (rather than finding it running).
    pub fn started_here(&self) -> bool {
        self.started
    }

    /// Stops the cluster if this process started it (a fast shutdown: sessions are ended,
    /// nothing committed is lost).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.started {
            return Ok(());
        }
        let status = self
            .tool("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "-t", "60"])
            .status()
            .context("running pg_ctl stop")?;
        if !status.success() {
            bail!("pg_ctl stop -D {} failed ({status})", self.data.display());
        }
        self.started = false;
        Ok(())
    }

    /// Creates the directory (and, as root, hands it to the `postgres` user). PostgreSQL
    /// wants its data directory private to its owner; the parent stays enterable.
    fn prepare_directory(&self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.data)
            .with_context(|| format!("creating {}", self.data.display()))?;
        fs::set_permissions(&self.data, fs::Permissions::from_mode(0o700))?;
        if let Some(owner) = self.owner {
            std::os::unix::fs::chown(&self.data, Some(owner.uid), Some(owner.gid))
                .with_context(|| format!("handing {} to the postgres user", self.data.display()))?;
            if let Some(parent) = self.data.parent() {
                let mode = fs::metadata(parent)?.permissions().mode();
                fs::set_permissions(parent, fs::Permissions::from_mode(mode | 0o711))?;
            }
        }
        Ok(())
    }

    fn initdb(&self) -> anyhow::Result<()> {
        let password = random_hex(24)?;
        let kept = self.password_file();
        fs::write(&kept, &password).with_context(|| format!("writing {}", kept.display()))?;
        fs::set_permissions(&kept, fs::Permissions::from_mode(0o600))?;
        // initdb reads the password from a file of its user's (the data directory must be
        // empty, so the file sits beside it), removed once read.
        let handed = PathBuf::from(format!("{}.initdb-password", self.data.display()));
        fs::write(&handed, &password)?;
        fs::set_permissions(&handed, fs::Permissions::from_mode(0o600))?;
        if let Some(owner) = self.owner {
            std::os::unix::fs::chown(&handed, Some(owner.uid), Some(owner.gid))?;
        }
        let output = self
            .tool("initdb")
            .arg("-D")
            .arg(&self.data)
            .args([
                "-U",
                "postgres",
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
            ])
            .arg(format!("--pwfile={}", handed.display()))
            .args(["-E", "UTF8", "--locale=C"])
            .output()
            .context("running initdb");
        fs::remove_file(&handed).ok();
        let output = output?;
        if !output.status.success() {
            bail!(
                "initdb -D {} failed: {}",
                self.data.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        // Loopback only, with a password. The socket sits in the data directory (its owner's
        // alone), away from the system's /run/postgresql; pg_ctl hands these options to a
        // shell, so the path is quoted.
        let socket_dir = self.data.display().to_string().replace('\'', "'\\''");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k '{socket_dir}' -c max_connections=200",
            self.port
        );
        let output = self
            .tool("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "-s"])
            .arg("-l")
            .arg(self.data.join("server.log"))
            .arg("-o")
            .arg(options)
            .output()
            .context("running pg_ctl start")?;
        if !output.status.success() {
            let log = fs::read_to_string(self.data.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            bail!(
                "PostgreSQL in {} did not start: {} {}",
                self.data.display(),
                String::from_utf8_lossy(&output.stderr).trim(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
        }
        Ok(())
    }

    fn is_running(&self) -> bool {
        self.tool("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(&self.data)
            .output()
            .is_ok_and(|output| output.status.success())
    }

    /// The port in `postmaster.pid` (its fourth line).
    fn running_port(&self) -> Option<u16> {
        let pid = fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        pid.lines().nth(3)?.trim().parse().ok()
    }

    fn tool(&self, name: &str) -> Command {
        let mut command = Command::new(self.bin.join(name));
        if let Some(owner) = self.owner {
            command.uid(owner.uid).gid(owner.gid);
            // The postgres user cannot read root's working directory.
            command.current_dir("/");
        }
        command
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("polyclinic: {err:#}");
        }
    }
}

/// Whether anything accepts connections at `address` (within a second).
pub fn reachable(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

/// The directories searched for PostgreSQL's server binaries: each versioned directory of
/// the distributions' layout, newest major first, then every directory on `PATH`.
pub fn candidate_bin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for root in VERSIONED_ROOTS {
        let Ok(entries) = fs::read_dir(root) else {
            continue;
        };
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let major = name.to_str()?.trim_start_matches('-').parse::<u32>().ok()?;
                Some((major, entry.path().join("bin")))
            })
            .collect();
        versions.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
        dirs.extend(versions.into_iter().map(|(_, dir)| dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

/// The first directory that holds both `initdb` and `pg_ctl`.
fn server_binaries(dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .cloned()
}

/// `bytes` random bytes from the kernel, in hex.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buffer = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut buffer))
        .context("reading /dev/urandom")?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// The effective user is root (the owner of `/proc/self` is the process's effective user).
fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// The `postgres` system user, from `/etc/passwd`.
fn postgres_user() -> anyhow::Result<Owner> {
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3).then(|| {
                Some(Owner {
                    uid: fields[2].parse().ok()?,
                    gid: fields[3].parse().ok()?,
                })
            })?
        })
        .context(
            "running as root, PostgreSQL needs the `postgres` system user (its package creates it) to own its cluster",
        )
}
