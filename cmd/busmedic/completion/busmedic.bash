# bash completion for busmedic                             -*- shell-script -*-
# Printed by "busmedic completion bash"; installed as
# share/bash-completion/completions/busmedic. It asks busmedic itself
# ("busmedic __complete WORD... CURRENT") for the commands, flags, rule ids
# and casualty ids, so that it never goes stale.

_busmedic() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local IFS=$'\n'
	local out
	out=$("${COMP_WORDS[0]}" __complete -- "${COMP_WORDS[@]:1:COMP_CWORD-1}" "$cur" 2>/dev/null) || return
	if [[ $out == :file ]]; then
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur"))
		return
	fi
	local line
	COMPREPLY=()
	for line in $out; do
		COMPREPLY+=("${line%%$'\t'*}")
	done
}

complete -F _busmedic busmedic
