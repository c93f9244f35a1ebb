//! `isc`: the terminal client (default), the bundled server, and the demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "isc",
    version,
    about = "Co-watch and chat over SIP/MSRP from a terminal (OMA ISC / CPM / IM)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bundled server: registrar, proxy and the ISC / CPM / IM functions.
    Server(ServerArgs),
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Server(args)) => run_server(args),
        None => {
            eprintln!("isc: the client is not built yet; run `isc server`");
            return ExitCode::from(2);
        }
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
    let options = isc::server::runner::ServerOptions::new(config);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let server = isc::server::runner::Server::start(options).await?;
        println!(
            "isc server listening on {} (UDP and TCP)",
            server.local_addr()
        );
        if let Some(path) = log {
            println!("log: {}", path.display());
        }
        tokio::signal::ctrl_c().await?;
        server.shutdown().await;
        Ok(())
    })
}
