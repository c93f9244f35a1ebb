//! `isc`: the terminal client (default), the bundled server, and the demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use isc::client::headless::ClientArgs;

#[derive(Parser)]
#[command(
    name = "isc",
    version,
    about = "Co-watch and chat over SIP/MSRP from a terminal (OMA ISC / CPM / IM)"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no command: the client's flags (`isc --profile alice-phone`).
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the client in the terminal UI (the default when no command is
    /// given); with no server answering at the configured address, the
    /// bundled server starts in-process.
    Client(Box<ClientArgs>),
    /// Run the bundled server: registrar, proxy and the ISC / CPM / IM functions.
    Server(ServerArgs),
    /// Play a scenario with an in-process server and bot devices, then print
    /// its message ladder, every message in full and the step checklist.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct DemoArgs {
    /// The scenario to play (see the possible values; default free-play:
    /// bots that greet you and answer).
    #[arg(value_name = "SCENARIO", default_value = "free-play", value_parser = clap::builder::PossibleValuesParser::new(scenario_names()))]
    scenario: String,
    /// Print the ladder, the messages and the checklist instead of showing
    /// the flow in the terminal UI.
    #[arg(long)]
    headless: bool,
    /// Give up (and fail) when the scenario has not finished after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    timeout: u64,
}

fn scenario_names() -> Vec<&'static str> {
    isc::demo::SCENARIOS.iter().map(|s| s.name).collect()
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Address for SIP over UDP and TCP (port 0 picks a free port; the bound
    /// address is printed on start). Overrides `server.listen` of the config.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Configuration file (default: the platform config dir's isc/config.toml,
    /// else built-in loopback defaults with the demo cast).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Run as the application server behind a SIP/IP core (Kamailio) at
    /// this address: `server.mode = "as"` with `server.core` = ADDR:PORT.
    #[arg(long, value_name = "ADDR:PORT")]
    behind: Option<SocketAddr>,
    /// Write the Kamailio deployment for this config into DIR
    /// (`kamailio.cfg` with the core and AS addresses, `isc-users.cfg` with
    /// the users) and exit; see README "Behind Kamailio".
    #[arg(long, value_name = "DIR")]
    write_kamailio: Option<PathBuf>,
    /// Scale-out: this instance's number among several behind Kamailio's
    /// dispatcher (`server.instance`; its session identities are
    /// `conf-i<N>.…`). See README "Scale-out".
    #[arg(long, value_name = "N")]
    instance: Option<u16>,
    /// With --write-kamailio: write the dispatcher variant, one
    /// `--dispatch N=ADDR:PORT` per `isc server` instance.
    #[arg(long, value_name = "N=ADDR:PORT", value_parser = parse_dispatch)]
    dispatch: Vec<(u16, SocketAddr)>,
}

/// `N=ADDR:PORT` of `--dispatch`.
fn parse_dispatch(s: &str) -> Result<(u16, SocketAddr), String> {
    let (n, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected N=ADDR:PORT, got {s:?}"))?;
    let n: u16 = n
        .parse()
        .ok()
        .filter(|n| (1..=899).contains(n))
        .ok_or_else(|| format!("instance number {n:?} is not 1 to 899"))?;
    let addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an ADDR:PORT"))?;
    Ok((n, addr))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Server(args)) => run_server(args),
        Some(Command::Demo(args)) => return run_demo(args),
        Some(Command::Client(args)) => return run_client(*args),
        None => return run_client(cli.client),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isc: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(args: ServerArgs) -> Result<(), Box<dyn std::error::Error>> {
    let log = isc::logging::init_file_logging("server");
    let mut config = isc::config::Config::load(args.config.as_deref())?.server;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(core) = args.behind {
        config.mode = isc::config::ServerMode::As;
        config.core = Some(core);
    }
    if let Some(n) = args.instance {
        config.instance = Some(n);
    }
    if !args.dispatch.is_empty() && args.write_kamailio.is_none() {
        return Err("--dispatch goes with --write-kamailio DIR".into());
    }
    if let Some(dir) = args.write_kamailio {
        let site = isc::server::kamailio::KamailioSite {
            core: config
                .core
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 5060))),
            app_server: config.listen,
            domain: config.domain.clone(),
        };
        if site.core == site.app_server {
            return Err(format!(
                "Kamailio and isc server cannot both listen on {}: pass --listen for isc server",
                site.core
            )
            .into());
        }
        if !args.dispatch.is_empty() {
            isc::server::kamailio::write_dispatcher_site(&dir, &site, &args.dispatch, &config)
                .map_err(|e| format!("cannot write the Kamailio deployment: {e}"))?;
            println!(
                "wrote {} with WITH_DISPATCHER, dispatcher.list and isc-instances.cfg for {} instances",
                dir.join("kamailio.cfg").display(),
                args.dispatch.len()
            );
            return Ok(());
        }
        isc::server::kamailio::write_site(&dir, &site, &config)
            .map_err(|e| format!("cannot write the Kamailio deployment: {e}"))?;
        println!(
            "wrote {} and {} (Kamailio at {}, isc server at {}); run: kamailio -f {} -DD -E",
            dir.join("kamailio.cfg").display(),
            dir.join(isc::server::kamailio::USERS_FILE).display(),
            site.core,
            site.app_server,
            dir.join("kamailio.cfg").display()
        );
        return Ok(());
    }
    let options = isc::server::runner::ServerOptions::new(config);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let server = isc::server::runner::Server::start(options).await?;
        println!(
            "isc server listening on {} (UDP and TCP)",
            server.local_addr()
        );
        if let (Some(at), Some(cert)) = (server.tls_local_addr(), server.tls_cert()) {
            println!(
                "SIP over TLS on {at}; clients trust {} (--tls-ca)",
                cert.display()
            );
        }
        if let Some(path) = log {
            println!("log: {}", path.display());
        }
        tokio::signal::ctrl_c().await?;
        server.shutdown().await;
        Ok(())
    })
}

fn run_client(args: ClientArgs) -> ExitCode {
    if !args.headless {
        return run_tui(|| isc::tui::launch::run_client_tui(&args), "client");
    }
    // stdout carries the JSON events: logs go to a file.
    let _log = isc::logging::init_file_logging("client");
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("isc: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(isc::client::headless::run_headless_stdio(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isc client: {e}");
            ExitCode::from(2)
        }
    }
}

/// The TUI: logs and stderr go to the log file while it owns the terminal.
fn run_tui<F, Fut>(start: F, log_name: &str) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), isc::tui::launch::LaunchError>>,
{
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        eprintln!("isc: the terminal UI needs a terminal; use `isc client --headless` for scripts");
        return ExitCode::from(2);
    }
    let log = isc::logging::init_file_logging(log_name);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("isc: {e}");
            return ExitCode::FAILURE;
        }
    };
    let redirect = log
        .as_deref()
        .map(isc::tui::launch::StderrRedirect::to_file);
    let result = rt.block_on(start());
    drop(redirect);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isc: {e}");
            if let Some(path) = log {
                eprintln!("log: {}", path.display());
            }
            ExitCode::FAILURE
        }
    }
}

fn run_demo(args: DemoArgs) -> ExitCode {
    let Some(scenario) = isc::demo::find(&args.scenario) else {
        eprintln!("isc: no scenario named {}", args.scenario);
        return ExitCode::from(2);
    };
    if !args.headless {
        return run_tui(|| isc::tui::launch::run_demo_tui(scenario), "demo");
    }
    let _log = isc::logging::init_file_logging("demo");
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("isc: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = isc::demo::DemoOptions {
        deadline: std::time::Duration::from_secs(args.timeout),
    };
    match rt.block_on(isc::demo::run(scenario, opts)) {
        Ok(report) => {
            print!("{}", isc::demo::render_report(&report, scenario.summary));
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("isc demo {}: {e}", scenario.name);
            ExitCode::FAILURE
        }
    }
}
