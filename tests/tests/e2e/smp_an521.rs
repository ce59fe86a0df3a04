//! End-to-end tests on the two-core virtual board `qemu-mps2-an521` (FreeRTOS SMP): the reference
//! firmware builds and flashes from board data, `threads top` sees both cores, and `mpfr stress`
//! runs the native workloads with the SMP checks (a lock-free race that loses updates, the same
//! race exact under a spinlock) across both cores. One build serves every step.

use std::time::Duration;

use crate::support::{check, qemu_tools_present};
use mpfr_tests::{Env, wait_for};

const BOARD: &str = "qemu-mps2-an521";

fn json_lines(text: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// What one `threads top --once --json` sample must show on two cores; `Err` says what is missing.
fn two_core_sample(s: &serde_json::Value) -> Result<(), String> {
    let cores = s["cores"].as_array().ok_or("no cores")?;
    if cores.len() != 2 {
        return Err(format!("{} cores", cores.len()));
    }
    let tasks = s["tasks"].as_array().ok_or("no tasks")?;
    let idle: Vec<&str> = tasks
        .iter()
        .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("IDLE")))
        .map(|t| t["affinity"].as_str().unwrap_or(""))
        .collect();
    if idle.len() != 2 || !idle.contains(&"0") || !idle.contains(&"1") {
        return Err(format!("idle tasks pinned to {idle:?}, want one per core"));
    }
    if !tasks.iter().any(|t| t["core"] == 1) {
        return Err("no task on core 1".into());
    }
    for c in cores {
        // Each core's tasks add up to about 100% of it: idle included, unpinned time shared.
        let pct = c["tasks_pct"].as_f64().ok_or("no per-core CPU% yet")?;
        if !(60.0..=140.0).contains(&pct) {
            return Err(format!("core {} adds up to {pct:.1}%", c["core"]));
        }
    }
    Ok(())
}

#[test]
fn builds_flashes_shows_both_cores_and_stress_passes_the_smp_checks() {
    if !qemu_tools_present() {
        return;
    }
    let env = Env::new("mpfr-an521-");
    check(&env.mpfr(&["build", "--board", BOARD]), "mpfr build");
    check(&env.mpfr(&["flash", "--board", BOARD]), "mpfr flash");

    // 1. threads top: a sample with two cores, an idle task per core, a task on core 1, and
    //    each core's figures near 100%. A single sample can miss (a loaded host stalls one
    //    core's thread in the middle of a window): try again until the deadline.
    wait_for("a two-core sample", Duration::from_secs(180), || {
        let out = env.mpfr(&["threads", "top", "--board", BOARD, "--once", "--json"]);
        check(&out, "mpfr threads top --once --json");
        let lines = json_lines(&out.stdout);
        let sample = lines
            .iter()
            .find(|v| v["type"] == "sample")
            .expect("a sample line");
        two_core_sample(sample).map_err(|why| format!("{why}: {sample}"))
    });

    // 2. stress: the native workloads and the SMP checks pass; results carry the core count
    //    and where the tasks ran. Guest time follows the host clock: on a loaded host the
    //    second-long windows of `smp` stretch far past the default 10 s of silence.
    let jsonl = env.state().join("R.jsonl");
    let out = env.mpfr(&[
        "stress",
        "--board",
        BOARD,
        "--timeout",
        "600s",
        "--idle-timeout",
        "300s",
        "--jsonl",
        jsonl.to_str().unwrap(),
    ]);
    check(&out, "mpfr stress");
    let text = std::fs::read(&jsonl).expect("the report");
    let all = json_lines(&text);
    let run = all.iter().find(|v| v["type"] == "run").expect("run line");
    assert_eq!(run["cores"], 2, "{run}");
    let rs: Vec<&serde_json::Value> = all.iter().filter(|v| v["type"] == "result").collect();
    for r in &rs {
        assert_eq!(r["verdict"], "PASS", "{r}");
        assert_eq!(r["cores"], 2, "{r}");
    }
    let smp = rs
        .iter()
        .find(|r| r["test"] == "smp")
        .expect("the smp workload ran");
    let m = &smp["metrics"];
    assert_eq!(m["smp-race"]["verdict"], "EXPECTED", "{smp}");
    assert!(m["smp-race"]["lost"].as_i64().unwrap_or(0) > 0, "{smp}");
    assert_eq!(m["smp-lock"]["verdict"], "PASS", "{smp}");
    assert_eq!(m["smp-fpu"]["verdict"], "PASS", "{smp}");
    assert_eq!(m["smp-pinned"]["verdict"], "PASS", "{smp}");
    assert_eq!(m["smp-runtime"]["verdict"], "PASS", "{smp}");
    // The unpinned task moved to the free core in both phases.
    assert_eq!(m["smp-migrate"]["verdict"], "PASS", "{smp}");
    assert_eq!(m["smp-migrate"]["core0_taken"], "0x00000002", "{smp}");
    assert_eq!(m["smp-migrate"]["core1_taken"], "0x00000001", "{smp}");
    assert!(
        rs.iter().any(|r| r["test"] == "smp_pingpong"),
        "pingpong ran: {rs:?}"
    );
    // The telemetry saw the workloads' tasks on both cores over the run.
    let seen: Vec<i64> = rs
        .iter()
        .filter_map(|r| r["telemetry"]["ran_on_cores"].as_array())
        .flatten()
        .filter_map(|c| c.as_i64())
        .collect();
    assert!(
        seen.contains(&0) && seen.contains(&1),
        "tasks seen on cores {seen:?}"
    );
}
