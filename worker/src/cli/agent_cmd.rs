//! The sweep participant (no subcommand, `--coordinator URL`): one worker that pulls and trains
//! jobs on an async runtime until the sweep ends or a signal stops it, or with `--slots K > 1`
//! a supervisor of K such processes of this binary.

use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{CommandError, bad_input, failed};
use super::{AgentArgs, LogFormat, parse_device};
use crate::agent::{AgentConfig, AgentError};
use crate::slots::{SLOT_HEALTHY_AFTER, STOP_GRACE, Slots, wait_for_signal};

/// Joins a sweep; with `--slots K > 1`, runs K worker processes of this binary (logging in
/// `log_format` too).
pub fn run(args: AgentArgs, log_format: LogFormat) -> Result<(), CommandError> {
    let Some(url) = args.coordinator.clone() else {
        return Err(bad_input("nothing to do: give a subcommand (see --help) or --coordinator URL"));
    };
    let device = parse_device(&args.device).map_err(bad_input)?;
    if args.slots == 0 {
        return Err(bad_input("--slots must be at least 1"));
    }
    if args.slots > 1 {
        return slots(&args, log_format);
    }
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "host".to_owned(), |h| h.trim().to_owned());
    let cfg = AgentConfig {
        coordinator: url,
        device,
        data_dir: args.data.clone(),
        work_dir: args.work_dir.clone(),
        name: format!("{host}/pid {}", std::process::id()),
        token: args.client.token().map_err(bad_input)?,
        speed: args.speed.resolve(device),
        tls: args.client.tls().map_err(bad_input)?,
    };
    participate(cfg)
}

/// Runs the sweep participant until the sweep finishes or SIGTERM/SIGINT; its errors become exit
/// statuses (a lost device, a refused token, 1 for the rest).
fn participate(cfg: AgentConfig) -> Result<(), CommandError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| failed(format!("starting the async runtime: {e}")))?;
    runtime.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received; stopping the running job and giving its lease back");
            flag.store(true, Ordering::SeqCst);
        });
        crate::agent::run(cfg, stop).await.map_err(|e| match e {
            AgentError::DeviceLost(_) => CommandError::DeviceLost(e.to_string()),
            AgentError::Unauthenticated { .. } => CommandError::BadToken(e.to_string()),
            _ => failed(e),
        })
    })
}

/// `--slots K`: K child workers of this binary with one slot each, under `crate::slots`.
fn slots(args: &AgentArgs, log_format: LogFormat) -> Result<(), CommandError> {
    let program = std::env::current_exe().map_err(|e| failed(format!("locating this binary: {e}")))?;
    let slot_args = |k: u32| {
        let mut a: Vec<OsString> = vec!["--log-format".into(), log_format.name().into()];
        a.extend(["--coordinator".into(), args.coordinator.as_deref().unwrap_or_default().into()]);
        a.extend(["--device".into(), args.device.clone().into()]);
        a.extend(["--work-dir".into(), args.work_dir.join(format!("slot-{k}")).into()]);
        if let Some(d) = &args.data {
            a.extend(["--data".into(), d.clone().into()]);
        }
        if let Some(t) = args.threads {
            a.extend(["--threads".into(), t.to_string().into()]);
        }
        a.extend(args.client.to_args());
        a.extend(args.speed.to_args().into_iter().map(OsString::from));
        a
    };
    let slots = Slots {
        program,
        args: (0..args.slots).map(slot_args).collect(),
        grace: STOP_GRACE,
        healthy_after: SLOT_HEALTHY_AFTER,
    };
    slots.run().map_err(failed)
}
