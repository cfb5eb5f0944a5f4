//! The `ferroboot` binary: parse the command line, load config, run, map errors to exit codes.

use clap::Parser;
use ferroboot::cli::{Cli, Command};
use ferroboot::config::Config;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(c) => {
                println!("{}: OK: {}", file.display(), c.summary());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("{e}");
                }
                eprintln!("{}: {} error(s)", file.display(), errors.0.len());
                ExitCode::from(1)
            }
        },
        Command::Provision(a) => ferroboot::orchestrate::commands::provision_main(&a),
        Command::ClusterConfig(a) => ferroboot::orchestrate::commands::cluster_config_main(&a),
        Command::Cluster(a) => ferroboot::orchestrate::commands::cluster_main(&a),
        Command::Status(args) => ferroboot::lifecycle::client::status(&args),
        Command::Node(args) => ferroboot::lifecycle::client::node(&args),
        Command::Loadgen(args) => ferroboot::loadgen::main(args),
        Command::Boot(args) => ferroboot::ipxe::boot_cmd::main(args),
        Command::Serve(args) => {
            ferroboot::logging::init(args.log_format);
            let result = ferroboot::serve::effective_config(&args).and_then(|c| ferroboot::serve::run(&c));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e}");
                    eprintln!("ferroboot: error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
