//! `midscript completions SHELL`: clap's completion script, plus completion of method names
//! (`midscript call app.<Tab>`) from `midscript methods --names`, which reads the cached
//! catalog without connecting.

use clap::CommandFactory as _;
use clap_complete::Shell;

use super::Cli;

/// Commands whose first positional argument is a method name.
const METHOD_COMMANDS: &str = "call job doc";

/// The completion script for `shell`.
pub fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "midscript", &mut out);
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push_str(&methods_hook(shell));
    text
}

/// What completes method names in `shell` (bash and fish; other shells keep clap's script).
fn methods_hook(shell: Shell) -> String {
    match shell {
        Shell::Bash => format!(
            r#"
# Method names after `call`, `job` and `doc`, from the cached catalog (never connects).
_midscript_with_methods() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" i word command="" positional=0
    for (( i = 1; i < COMP_CWORD; i++ )); do
        word="${{COMP_WORDS[i]}}"
        if [[ -z $command ]]; then
            case " {METHOD_COMMANDS} " in *" $word "*) command=$word ;; esac
        elif [[ $word != -* ]]; then
            positional=$((positional + 1))
        fi
    done
    if [[ -n $command && $positional -eq 0 && $cur != -* ]]; then
        COMPREPLY=( $(compgen -W "$(midscript methods --names 2>/dev/null)" -- "$cur") )
        return 0
    fi
    _midscript "$@"
}}
complete -F _midscript_with_methods -o bashdefault -o default midscript
"#
        ),
        Shell::Fish => format!(
            "\n# Method names after `call`, `job` and `doc`, from the cached catalog (never connects).\n\
             complete -c midscript -n '__fish_seen_subcommand_from {METHOD_COMMANDS}' -f -a '(midscript methods --names 2>/dev/null)'\n"
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_and_fish_complete_method_names_from_the_cache() {
        let bash = script(Shell::Bash);
        assert!(bash.contains("_midscript()"), "clap's script is kept");
        assert!(bash.contains("complete -F _midscript_with_methods"));
        assert!(bash.contains("midscript methods --names"));
        let fish = script(Shell::Fish);
        assert!(fish.contains("__fish_seen_subcommand_from call job doc"));
        assert!(!script(Shell::Zsh).contains("methods --names"));
    }
}
