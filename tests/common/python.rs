//! Python peers for the interop tests: whether `python3` (with a module) is there, and
//! a child process that is killed and reaped when dropped.

use std::process::{Child, Command, Stdio};

/// Whether `python3 -c "import {module}"` works; prints a note when it does not (the
/// caller then skips its test).
pub fn has_module(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("note: python3 with {module} is not available; test skipped");
    }
    ok
}

/// Kills and reaps the child when dropped (also when the test panics).
pub struct KillOnDrop(pub Option<Child>);

impl KillOnDrop {
    pub fn new(child: Child) -> KillOnDrop {
        KillOnDrop(Some(child))
    }

    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child is still here")
    }

    /// The child, no longer killed on drop.
    pub fn take(&mut self) -> Child {
        self.0.take().expect("the child is still here")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
