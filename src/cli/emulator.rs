//! `fieldwise emulator`: serves the in-process Kubernetes API emulator, with its simulated controllers, over
//! plain HTTP on loopback, writes a kubeconfig pointing at it once ready, and runs until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use fieldwise_e2e::emulator::{Emulator, Options};
use fieldwise_e2e::sim::{SimOptions, Simulators};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the kubeconfig (written once the emulator accepts connections).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Loopback address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Do not simulate Deployment and StatefulSet status (workloads then never become available).
    #[arg(long)]
    pub no_workload_simulator: bool,
    /// Do not complete Jobs.
    #[arg(long)]
    pub no_job_simulator: bool,
    /// Do not run the HorizontalPodAutoscaler controller.
    #[arg(long)]
    pub no_hpa_simulator: bool,
    /// Do not give KEDA ScaledObjects their HPA.
    #[arg(long)]
    pub no_keda_simulator: bool,
}

impl Args {
    /// The simulated cluster controllers: all on unless switched off.
    fn simulators(&self) -> SimOptions {
        SimOptions {
            workloads: !self.no_workload_simulator,
            jobs: !self.no_job_simulator,
            hpa: !self.no_hpa_simulator,
            keda: !self.no_keda_simulator,
            ..SimOptions::default()
        }
    }
}

/// Resolves when the process is asked to stop.
async fn stop_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed, only SIGTERM (or a kill) stops the emulator.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

pub fn run(args: Args) -> ExitCode {
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "error: --listen must be a loopback address (the emulator has no authentication), got {}",
            args.listen
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        listen: args.listen,
        ..Options::default()
    };
    let kubeconfig = args.kubeconfig.clone();
    let simulators = args.simulators();
    let result: std::io::Result<()> = runtime.block_on(async move {
        let handle = Emulator::start(options).await?;
        // Simulated controllers, so what is applied progresses as in a cluster (status, HPA, Jobs).
        let _simulators = Simulators::start(&handle, simulators);
        handle.write_kubeconfig(&kubeconfig)?;
        eprintln!(
            "emulator serving {} (kubeconfig: {})",
            handle.url(),
            kubeconfig.display()
        );
        stop_signal().await;
        handle.shutdown().await;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: emulator failed: {e}");
            ExitCode::FAILURE
        }
    }
}
