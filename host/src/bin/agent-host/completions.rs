//! `agent-host completions SHELL`: the shell's completion script, made from the
//! CLI's own definition (`clap_complete`), so it never falls behind a new command
//! or flag.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::out;

#[derive(clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell (bash, zsh, fish, elvish or powershell).
    #[arg(value_enum)]
    shell: Shell,
}

/// Prints the script on stdout.
pub(crate) fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut crate::Cli::command(),
        "agent-host",
        &mut script,
    );
    out::chunk(&String::from_utf8(script)?)
}
