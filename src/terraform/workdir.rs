//! Job work directories that outlive their daemon. A daemon that is killed
//! (SIGKILL, OOM, power loss) cannot remove its job's directory, which holds
//! the template, the plan and the state (secrets among them). Each running
//! job holds an exclusive `flock` on a file in its directory; the kernel
//! drops it when the daemon dies, however it dies. Before each job, a daemon
//! removes the directories under its work root whose lock it can take, so
//! the next job after a restart cleans up, while directories of live jobs
//! (of this daemon or of another sharing the work root) are left alone.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

/// Name prefix of job directories under the work root.
pub const PREFIX: &str = "provisionerd-job-";

/// The lock file inside a job directory.
const LOCK: &str = ".provisionerd-job.lock";

/// A directory without a lock file is either being created this instant or
/// was left by a daemon that died before locking it: only the second kind
/// is this old.
const UNLOCKED_GRACE: Duration = Duration::from_secs(600);

/// Locks a fresh job directory for as long as the returned lock lives.
pub fn lock(dir: &Path) -> io::Result<Flock<File>> {
    try_lock(File::create(dir.join(LOCK))?)
}

fn try_lock(file: File) -> io::Result<Flock<File>> {
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| errno.into())
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    pub removed: usize,
    pub failed: Vec<(PathBuf, io::Error)>,
}

/// Removes the job directories under `root` whose job is dead.
pub fn sweep(root: &Path) -> Swept {
    let mut swept = Swept::default();
    let Ok(entries) = std::fs::read_dir(root) else { return swept };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_job = entry.file_name().to_str().is_some_and(|n| n.starts_with(PREFIX));
        if !is_job || !entry.file_type().is_ok_and(|t| t.is_dir()) || !dead(&path) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => swept.removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => swept.failed.push((path, e)),
        }
    }
    swept
}

/// Whether nobody holds the directory's lock.
fn dead(dir: &Path) -> bool {
    match File::open(dir.join(LOCK)) {
        // Released at once: nobody locks an old directory again (new jobs
        // get fresh names), and two sweeps removing one directory is fine.
        Ok(file) => try_lock(file).is_ok(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::metadata(dir).and_then(|m| m.modified()).is_ok_and(|t| {
                SystemTime::now().duration_since(t).unwrap_or_default() > UNLOCKED_GRACE
            })
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_whose_lock_is_free_are_removed() {
        let root = tempfile::tempdir().expect("root");
        let live = root.path().join(format!("{PREFIX}live"));
        let dead = root.path().join(format!("{PREFIX}dead"));
        let fresh = root.path().join(format!("{PREFIX}fresh"));
        let other = root.path().join("not-a-job");
        for d in [&live, &dead, &fresh, &other] {
            std::fs::create_dir(d).expect("mkdir");
        }
        let held = lock(&live).expect("lock");
        // A dead job's lock file, closed as when its daemon died.
        drop(lock(&dead).expect("lock"));
        let swept = sweep(root.path());
        assert_eq!(swept.removed, 1, "{swept:?}");
        assert!(live.exists() && fresh.exists() && other.exists());
        assert!(!dead.exists());
        drop(held);
        assert_eq!(sweep(root.path()).removed, 1);
        assert!(!live.exists());
    }
}
