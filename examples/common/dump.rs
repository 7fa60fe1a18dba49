//! `SIGUSR1` prints a dump of the loop's tasks to stderr (SPEC K6), in every example
//! server: `kill -USR1 <pid>` shows what each task waits on without disturbing the loop.

use evloop::LoopHandle;

/// Installs the `SIGUSR1` handler on `loop_` (the handler runs on that loop, where
/// `dump_tasks` reads its task table).
pub fn dump_tasks_on_sigusr1(loop_: &LoopHandle) -> std::io::Result<()> {
    let on = loop_.clone();
    loop_.add_signal_handler(libc::SIGUSR1, move || {
        eprintln!("== SIGUSR1: task dump\n{}", on.dump_tasks());
    })
}
