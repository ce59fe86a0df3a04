//! `mpfr repl` and `mpfr exec` against the QEMU virtual board running the reference firmware:
//! the console passes through, exec explains why it cannot work there, and a restarted board
//! is found again.

use std::path::Path;

use mpfr_tests::{Env, Tmux, mpfr_bin};

const BOARD: &str = "qemu-mps2-an385";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn q(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

#[test]
fn repl_passes_the_reference_console_through_and_follows_a_restart() {
    let env = Env::new("mpfr-replq-");
    let o = env.mpfr(&["build", "--board", BOARD]);
    assert!(o.status.success(), "build: {}", text(&o.stderr));
    let o = env.mpfr(&["flash", "--board", BOARD]);
    assert!(o.status.success(), "flash: {}", text(&o.stderr));

    // exec needs MicroPython's raw REPL, which the reference console does not have.
    let o = env.mpfr(&["exec", "--board", BOARD, "print(1)"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("reference firmware"),
        "{}",
        text(&o.stderr)
    );

    let tmux = Tmux::new(env.state().join("tmux.sock"), "t");
    let shell = format!(
        "MPFR_STATE_DIR={} {} repl --board {BOARD}; sleep 60",
        q(env.state()),
        q(&mpfr_bin())
    );
    let st = tmux
        .cmd()
        .args([
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "120",
            "-y",
            "60",
            &shell,
        ])
        .status()
        .expect("tmux");
    assert!(st.success());
    tmux.wait_for_n("[mpfr] connected to", 1);
    tmux.type_line("help");
    tmux.wait_for_n("commands:", 1);

    // Flashing again restarts QEMU on a new pty: the open repl waits for it and reconnects.
    let o = env.mpfr(&["flash", "--board", BOARD]);
    assert!(o.status.success(), "reflash: {}", text(&o.stderr));
    tmux.wait_for_n("waiting for the virtual board", 1);
    tmux.wait_for_n("[mpfr] connected to", 2);
    tmux.type_line("help");
    tmux.wait_for_n("commands:", 2);
}
