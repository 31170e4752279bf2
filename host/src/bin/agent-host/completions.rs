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
    let mut script = String::from_utf8(script)?;
    if matches!(args.shell, Shell::Bash) {
        script = bash_fixed(&script);
    }
    out::chunk(&script)
}

/// clap_complete 4.6 names a hyphenated program's subcommands one way where it
/// sets them (`agent__host__subcmd__serve`) and another in the `case` that offers
/// their flags (`agent__subcmd__host__subcmd__serve`), so bash completed nothing
/// after a subcommand (clap-rs/clap#6421): the second is made the first.
fn bash_fixed(script: &str) -> String {
    script.replace("agent__subcmd__host", "agent__host")
}
